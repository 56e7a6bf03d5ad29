"""The backtest loop: bar order across symbols, the equity rows, chunking, determinism, wiring."""

from __future__ import annotations

import csv
import dataclasses
import random
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import step_harness as harness
from step_harness import make_step

from workbench.brokers.fills import CostModel
from workbench.engine import backtest
from workbench.engine.backtest import simulate
from workbench.engine.step import Step
from workbench.feeds.history import LoopData, merge
from workbench.feeds.qc import BarSeries
from workbench.model import QTY_SCALE, Bar, OrderIntent, Side
from workbench.strategies.pullback_limit import PullbackLimit
from workbench.strategies.sma_cross import SmaCross
from workbench.strategy import Context, Strategy

T0 = 1_704_067_200_000
TF = 60_000
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "btcusdt_1m_2024-01_synthetic.csv"


def series(symbol: str, rows: list[tuple[int, float, float, float, float]]) -> BarSeries:
    """(bar index, open, high, low, close) rows -> a BarSeries starting at T0."""
    a = np.array([r[1:] for r in rows], dtype=float)
    ts = np.array([T0 + r[0] * TF for r in rows], dtype=np.int64)
    return BarSeries(symbol, TF, ts, a[:, 0], a[:, 1], a[:, 2], a[:, 3],
                     np.arange(1.0, len(rows) + 1.0))


def closes_series(symbol: str, closes: list[float], start: int = 0,
                  skip: frozenset[int] = frozenset()) -> BarSeries:
    return series(symbol, [(i + start, c, c + 1.0, c - 1.0, c)
                           for i, c in enumerate(closes) if i + start not in skip])


def sample(n: int) -> LoopData:
    rows = []
    with SAMPLE.open(newline="") as fh:
        for i, rec in enumerate(csv.DictReader(fh)):
            if i == n:
                break
            ms = int(datetime.fromisoformat(rec["ts"]).timestamp() * 1000)
            rows.append((ms, float(rec["open"]), float(rec["high"]), float(rec["low"]),
                         float(rec["close"]), float(rec["volume"])))
    a = np.array([r[1:] for r in rows], dtype=float)
    ts = np.array([r[0] for r in rows], dtype=np.int64)
    return merge([BarSeries("BTCUSDT", TF, ts, a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4])])


def run(strategy: Strategy, data: LoopData, **kw: Any) -> tuple[Step, backtest.EquityRows]:
    return harness.run_with_equity(strategy, data, start=data.ts[0] if len(data) else T0, **kw)


def as_lists(rows: backtest.EquityRows) -> tuple[list, list, list, list]:
    return tuple(np.asarray(getattr(rows, k)).tolist()  # type: ignore[return-value]
                 for k in ("ts", "cash", "position_value", "equity"))


def snapshot(step: Step, rows: backtest.EquityRows) -> tuple[Any, ...]:
    j = harness.records(step)
    return (list(harness.orders(step)), list(j.events), list(j.fills),
            [tuple(t) for t in step.book.round_trips],
            as_lists(rows))


class Recorder(Strategy):
    """Records every bar it is given, with ctx.now; runs ``script[(symbol, bar index)]``."""

    def __init__(self, script: dict[tuple[str, int], Callable[[Context, Bar], Any]] | None = None
                 ) -> None:
        super().__init__()
        self.script = script or {}

    def on_start(self, ctx: Context) -> None:
        self.bars: list[tuple[Bar, int]] = []

    def on_bar(self, ctx: Context, bar: Bar) -> Any:
        self.bars.append((bar, ctx.now))
        action = self.script.get((bar.symbol, (bar.ts - T0) // TF))
        return action(ctx, bar) if action else None


def do(*intents: OrderIntent) -> Callable[[Context, Bar], list[OrderIntent]]:
    return lambda ctx, bar: list(intents)


# --- bar order ------------------------------------------------------------------------------
def test_simulate_single_symbol_feeds_every_bar_in_order_with_now_at_close() -> None:
    data = merge([closes_series("X", [10.0, 11.0, 12.0])])
    strat = Recorder()
    run(strat, data)
    assert [(b.symbol, b.ts, b.close) for b, _ in strat.bars] == [
        ("X", T0, 10.0), ("X", T0 + TF, 11.0), ("X", T0 + 2 * TF, 12.0)]
    assert [now for _, now in strat.bars] == [T0 + TF, T0 + 2 * TF, T0 + 3 * TF]
    b = strat.bars[1][0]
    assert (b.open, b.high, b.low, b.volume) == (11.0, 12.0, 10.0, 2.0)


def test_simulate_several_symbols_bars_merged_in_ts_then_symbol_order() -> None:
    # given out of name order, with different spans and a hole in B
    data = merge([closes_series("B", [1.0] * 4, start=1, skip=frozenset({3})),
                  closes_series("A", [2.0] * 4),
                  closes_series("C", [3.0] * 2, start=3)])
    strat = Recorder()
    run(strat, data)
    order = [(b.symbol, (b.ts - T0) // TF) for b, _ in strat.bars]
    assert order == [("A", 0), ("A", 1), ("B", 1), ("A", 2), ("B", 2), ("A", 3), ("C", 3),
                     ("B", 4), ("C", 4)]
    assert order == sorted(order, key=lambda sb: (sb[1], sb[0]))
    assert all(now == b.ts + TF for b, now in strat.bars)


def test_simulate_empty_data_no_bars_no_rows() -> None:
    empty = merge([series("X", [(0, 1.0, 1.0, 1.0, 1.0)])])
    data = dataclasses.replace(empty, **{k: getattr(empty, k)[:0] for k in (
        "ts", "open", "high", "low", "close", "volume", "symbol_index", "filled")})
    strat = Recorder()
    _, rows = run(strat, data)
    assert strat.bars == []
    assert as_lists(rows) == ([], [], [], [])


# --- equity rows ----------------------------------------------------------------------------
def reference_equity(data: LoopData, step: Step, initial_cash: float
                     ) -> list[tuple[int, float, float]]:
    """(ts, cash, position value) after each distinct bar time, replaying the journal's fills
    onto plain dicts and marking at each symbol's last close so far."""
    fills = sorted(harness.fills(step), key=lambda f: f.fill_seq)
    cash, units, last, k, out = initial_cash, {}, {}, 0, []
    names = data.symbols or [data.symbol_names[0]] * len(data)
    for i, ts in enumerate(data.ts):
        last[names[i]] = data.close[i]
        if i + 1 < len(data) and data.ts[i + 1] == ts:
            continue
        while k < len(fills) and fills[k].bar_ts <= ts:
            f = fills[k]
            sign = 1 if f.side is Side.BUY else -1
            cash -= sign * f.qty * f.price + f.fee
            units[f.symbol] = units.get(f.symbol, 0) + sign * f.qty_units
            k += 1
        value = sum(u / QTY_SCALE * last[s] for s, u in units.items() if u)
        out.append((ts, cash, value))
    return out


def check_equity(data: LoopData, step: Step, rows: backtest.EquityRows, cash: float) -> None:
    ts, cash_col, value_col, equity_col = as_lists(rows)
    expected = reference_equity(data, step, cash)
    assert ts == [e[0] for e in expected]
    assert ts == sorted(set(data.ts))
    assert cash_col == pytest.approx([e[1] for e in expected], rel=1e-12, abs=1e-9)
    assert value_col == pytest.approx([e[2] for e in expected], rel=1e-12, abs=1e-9)
    assert equity_col == pytest.approx([c + v for c, v in zip(cash_col, value_col,
                                                              strict=True)], rel=1e-15)


def test_simulate_equity_one_row_per_bar_time_marked_at_last_close() -> None:
    data = merge([closes_series("X", [10.0, 11.0, 12.0, 9.0, 8.0])])
    strat = Recorder({("X", 1): do(OrderIntent("X", Side.BUY, 2.0)),
                      ("X", 3): do(OrderIntent("X", Side.SELL, 1.0))})
    step, rows = run(strat, data, costs=CostModel(fee_bps=10.0), cash=100.0)
    ts, cash, value, equity = as_lists(rows)
    assert ts == [T0 + i * TF for i in range(5)]
    assert value == pytest.approx([0.0, 22.0, 24.0, 9.0, 8.0], rel=1e-15)
    fee1, fee2 = 22.0 * 10 / 1e4, 9.0 * 10 / 1e4
    assert cash == pytest.approx([100.0, 78.0 - fee1, 78.0 - fee1, 87.0 - fee1 - fee2,
                                  87.0 - fee1 - fee2], rel=1e-15)
    assert equity[-1] == pytest.approx(step.book.equity(), rel=1e-15)


def test_simulate_equity_several_symbols_staggered_matches_replayed_fills() -> None:
    data = merge([
        closes_series("X", [10.0, 11.0, 12.0, 13.0, 12.5, 12.0, 11.0, 10.5]),
        closes_series("Y", [100.0, 102.0, 98.0, 97.0, 105.0, 110.0], start=2,
                      skip=frozenset({4})),
    ])
    strat = Recorder({
        ("X", 1): do(OrderIntent("X", Side.BUY, 3.0)),
        ("Y", 2): do(OrderIntent.limit("Y", Side.BUY, 0.5, 99.0)),  # Y's bar 5 opens through
        ("X", 5): do(OrderIntent("X", Side.SELL, 1.0)),
        ("Y", 6): do(OrderIntent("Y", Side.SELL, 0.25)),
    })
    step, rows = run(strat, data, costs=CostModel(fee_bps=7.5, slippage_bps=3.0), cash=500.0)
    assert [(f.symbol, (f.bar_ts - T0) // TF) for f in harness.fills(step)] == [
        ("X", 1), ("X", 5), ("Y", 5), ("Y", 6)]
    check_equity(data, step, rows, 500.0)


def test_simulate_equity_on_sample_with_pullback_matches_replayed_fills() -> None:
    data = sample(3000)
    step, rows = run(PullbackLimit(qty=0.05), data,
                     costs=CostModel(fee_bps=2.0, slippage_bps=5.0, min_notional=5.0))
    j = harness.records(step)
    assert len(j.fills) > 20
    check_equity(data, step, rows, 10_000.0)


# --- chunking and progress ------------------------------------------------------------------
def test_simulate_small_chunks_same_result_and_progress_counts_every_bar(
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = sample(1500)
    costs = CostModel(fee_bps=10.0, slippage_bps=5.0)
    expected = snapshot(*run(SmaCross(fast=5, slow=20, qty=0.1), data, costs=costs))
    monkeypatch.setattr(backtest, "CHUNK", 7)
    monkeypatch.setattr(SmaCross, "wake_on", None)  # every bar, chunk by chunk
    step = make_step(SmaCross(fast=5, slow=20, qty=0.1), costs=costs)
    reported: list[int] = []
    rows = simulate(step, data, reported.append, start=data.ts[0])
    assert snapshot(step, rows) == expected
    assert sum(reported) == len(data)
    assert len(reported) == -(-len(data) // 7)


def test_simulate_progress_reports_total_bars() -> None:
    data = merge([closes_series("X", [1.0] * 5), closes_series("Y", [2.0] * 3)])
    step = make_step(Recorder())
    reported: list[int] = []
    simulate(step, data, reported.append, start=T0)
    assert sum(reported) == 8


# --- determinism ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "costs"),
    [(lambda: SmaCross(fast=10, slow=30, qty=0.1),
      CostModel(fee_bps=10.0, slippage_bps=5.0)),
     (lambda: PullbackLimit(qty=0.05, dip_bps=15, take_profit_bps=25, stop_bps=60,
                            expire_bars=5),
      CostModel(fee_bps=2.0, slippage_bps=5.0, min_notional=5.0, fill_at="next_open"))],
    ids=["sma_cross", "pullback_limit_next_open"],
)
def test_simulate_same_inputs_twice_identical_journal_trades_equity(
        make: Callable[[], Strategy], costs: CostModel) -> None:
    data = sample(4000)
    first = snapshot(*run(make(), data, costs=costs))
    second = snapshot(*run(make(), data, costs=costs))
    assert len(first[2]) > 10  # it traded
    assert first == second


def test_simulate_ctx_random_seeded_per_step() -> None:
    def draws(seed: int) -> list[float]:
        class Draw(Strategy):
            def on_start(self, ctx: Context) -> None:
                self.seen: list[float] = []

            def on_bar(self, ctx: Context, bar: Bar) -> None:
                self.seen.append(ctx.random.random())

        strat = Draw()
        step = make_step(strat, cash=1.0, run_id="r", seed=seed)
        simulate(step, merge([closes_series("X", [1.0] * 4)]), start=T0)
        return strat.seen

    assert draws(42) == draws(42)
    assert draws(42) != draws(43)
    rng = random.Random(42)
    assert draws(42) == [rng.random() for _ in range(4)]
