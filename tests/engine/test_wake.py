"""``Strategy.wake_on``: a backtest hands over only the bars a strategy acts on, and the run is
the same to the byte as with every bar handed over."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import step_harness as harness

from workbench import rundir
from workbench.brokers.fills import CostModel
from workbench.config import RiskConfig
from workbench.engine.backtest import simulate
from workbench.engine.journal import order_states
from workbench.errors import StrategyError
from workbench.feeds.history import merge
from workbench.feeds.qc import BarSeries
from workbench.indicators import Computed
from workbench.model import Bar, OrderIntent, Side
from workbench.risk.engine import RiskEngine
from workbench.strategies.sma_cross import SmaCross
from workbench.strategy import Context

T0, TF = harness.T0, harness.TF


class EveryBar(SmaCross):
    """SmaCross handed every bar (no wake_on); records what it saw."""

    wake_on = None

    def on_start(self, ctx: Context) -> None:
        self.seen: list[int] = []
        self.stopped_at: tuple[int, dict[str, float]] | None = None

    def on_bar(self, ctx: Context, bar: Bar) -> Any:
        self.seen.append(bar.ts)
        return super().on_bar(ctx, bar)

    def on_stop(self, ctx: Context) -> None:
        self.stopped_at = (ctx.now, dict(ctx._book.last))


class Woken(EveryBar):
    wake_on = "cross"


def walk(seed: int, n: int, start: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(start * np.exp(np.cumsum(rng.normal(0, 0.002, n))), 2)


def two_symbols(n: int = 600) -> Any:
    out = []
    for symbol, seed, start, skip in (("AAA", 1, 100.0, {5, 6, 300}), ("BBB", 2, 20.0, {0, 50})):
        c = walk(seed, n, start)
        idx = np.array([i for i in range(n) if i not in skip])
        out.append(BarSeries(symbol, TF, T0 + idx * TF, c[idx], c[idx] + 0.1, c[idx] - 0.1,
                             c[idx], np.ones(len(idx))))
    return merge(out)


def files(step: Any, equity: Any, out: Path) -> dict[str, bytes]:
    records = harness.records(step)
    out.mkdir()
    rundir.write_all(out, step.book.round_trips, order_states(records), records.fills, equity)
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.mark.parametrize("fill_at", ["close", "next_open"])
@pytest.mark.parametrize("data", ["one", "two"])
def test_simulate_wake_on_same_files_as_every_bar(tmp_path: Path, fill_at: str,
                                                  data: str) -> None:
    bars = harness.closes(walk(3, 800, 50.0).tolist()) if data == "one" else two_symbols()
    got = {}
    for cls in (EveryBar, Woken):
        strategy = cls(fast=3, slow=9, qty=1.0)
        step, equity = harness.run_with_equity(
            strategy, bars, costs=CostModel(fee_bps=10, slippage_bps=5, fill_at=fill_at),
            cash=1e6)
        got[cls] = (files(step, equity, tmp_path / cls.__name__), strategy)
    (every, all_bars), (woken, some) = got[EveryBar], got[Woken]
    assert every == woken
    assert len(harness.records(step).fills) > 10
    assert len(some.seen) < len(all_bars.seen) / 3  # most bars were not handed over
    assert some.stopped_at == all_bars.stopped_at  # on_stop: the last bar, every final mark


class EveryBarOther(EveryBar):
    """Trades the other symbol on each symbol's cross: an order whose symbol's last bar the
    event-fed loop must bring up to date (its market impact reads it)."""

    def on_bar(self, ctx: Context, bar: Bar) -> Any:
        other = "BBB" if bar.symbol == "AAA" else "AAA"
        return [OrderIntent(other, i.side, i.qty) for i in super().on_bar(ctx, bar) or []]


class WokenOther(EveryBarOther):
    wake_on = "cross"


@pytest.mark.parametrize("fill_at", ["close", "next_open"])
def test_simulate_wake_on_cross_symbol_orders_with_impact_same_files_as_every_bar(
        tmp_path: Path, fill_at: str) -> None:
    bars = two_symbols()
    bars.volume[:] = np.linspace(1.0, 50.0, len(bars.volume))  # the impact reads each bar's
    got = {}
    for cls in (EveryBarOther, WokenOther):
        strategy = cls(fast=3, slow=9, qty=1.0)
        step, equity = harness.run_with_equity(
            strategy, bars, costs=CostModel(fee_bps=10, impact_k=0.5, fill_at=fill_at),
            cash=1e6)
        got[cls] = files(step, equity, tmp_path / cls.__name__)
        assert len(harness.records(step).fills) > 10
    assert got[EveryBarOther] == got[WokenOther]


def test_simulate_wake_on_with_bar_following_risk_hands_every_bar() -> None:
    costs = CostModel()
    strategy = Woken(fast=3, slow=9, qty=1.0)
    step = harness.make_step(strategy, cash=1e6,
                             risk=RiskEngine(RiskConfig(max_drawdown_pct=50.0), costs))
    assert step.needs_every_bar
    simulate(step, harness.closes(walk(3, 200, 50.0).tolist()), start=T0)
    assert len(strategy.seen) == 200


def test_step_wake_on_not_a_declared_indicator_strategy_error() -> None:
    class Wrong(SmaCross):
        wake_on = "crossing"

    with pytest.raises(StrategyError, match="'crossing', which is not one of its declared"):
        harness.make_step(Wrong())


def test_step_wake_on_without_indicators_strategy_error() -> None:
    class Bare(Woken):
        def indicators(self) -> dict[str, Any]:
            return {}

    with pytest.raises(StrategyError, match="none"):
        harness.make_step(Bare(fast=2, slow=3))


def test_simulate_wake_on_resting_limit_works_on_every_bar_until_done() -> None:
    class Dip(EveryBar):
        wake_on = "signal"

        def indicators(self) -> dict[str, Any]:
            return {"signal": Computed(lambda b: (b["close"] >= 10).astype(float), lookback=0)}

        def on_bar(self, ctx: Context, bar: Bar) -> Any:
            self.seen.append((bar.ts - T0) // TF)
            if len(self.seen) == 1:
                return [OrderIntent.limit(bar.symbol, Side.BUY, 1.0, 9.0)]
            return None

    strategy = Dip(fast=2, slow=3)
    step = harness.run(strategy, harness.closes([10.0, 10.0, 9.5, 8.9, 9.0, 9.1, 9.2]),
                       cash=1e6)
    assert [f.price for f in harness.fills(step)] == [8.9]  # bar 3 opened through the limit
    assert strategy.seen == [0, 1, 2, 3, 6]  # events 0 and 1, resting until 3, the last bar
