"""SmaCross against an independent reference of its contract, on the sample and hand-made ties.

The contract: SMA(n) at a bar is math.fsum of the last n closes as stored, over n, defined once
n bars are seen. Cross up at t (both SMAs defined at t-1 and t): fast[t-1] <= slow[t-1] and
fast[t] > slow[t] -> buy qty if flat. Cross down: fast[t-1] >= slow[t-1] and fast[t] < slow[t]
-> sell the whole position if long.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import step_harness as harness

from workbench.brokers.fills import CostModel
from workbench.engine.step import Step
from workbench.errors import ConfigError
from workbench.feeds.history import merge
from workbench.feeds.qc import BarSeries
from workbench.model import OrderStatus, OrderType, Side
from workbench.strategies.sma_cross import SmaCross
from workbench.strategy import load_strategy_class

T0 = 1_704_067_200_000
TF = 60_000
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "btcusdt_1m_2024-01_synthetic.csv"

Signal = tuple[str, int]  # (side, bar index)


def sample_closes(n: int) -> list[float]:
    with SAMPLE.open(newline="") as fh:
        reader = csv.DictReader(fh)
        return [float(rec["close"]) for _, rec in zip(range(n), reader, strict=False)]


def crossings(smas: list[tuple[int, float, float]]) -> list[Signal]:
    """The cross rule over (bar, fast SMA, slow SMA) from the first bar both are defined."""
    out: list[Signal] = []
    long = False
    prev: tuple[float, float] | None = None
    for t, f, s in smas:
        if prev is not None:
            pf, ps = prev
            if pf <= ps and f > s and not long:
                out.append(("BUY", t))
                long = True
            elif pf >= ps and f < s and long:
                out.append(("SELL", t))
                long = False
        prev = (f, s)
    return out


def reference(closes: list[float], fast: int, slow: int) -> list[Signal]:
    """The contract as a plain loop: recompute both SMAs from scratch at every bar."""
    return crossings([(t, math.fsum(closes[t + 1 - fast:t + 1]) / fast,
                       math.fsum(closes[t + 1 - slow:t + 1]) / slow)
                      for t in range(max(fast, slow) - 1, len(closes))])


def running_sum_signals(closes: list[float], fast: int, slow: int) -> list[Signal]:
    """The same rule with naive running sums (add the new close, subtract the leaving one)."""
    smas = []
    rf = rs = 0.0
    for t, c in enumerate(closes):
        rf += c
        rs += c
        if t >= fast:
            rf -= closes[t - fast]
        if t >= slow:
            rs -= closes[t - slow]
        if t + 1 >= max(fast, slow):
            smas.append((t, rf / fast, rs / slow))
    return crossings(smas)


def bars(symbol: str, closes: list[float]) -> BarSeries:
    c = np.array(closes, dtype=float)
    o = np.concatenate([c[:1], c[:-1]])
    return BarSeries(symbol, TF, T0 + np.arange(len(c), dtype=np.int64) * TF, o,
                     np.maximum(o, c), np.minimum(o, c), c, np.ones(len(c)))


def run(strategy: SmaCross, *series: BarSeries, costs: CostModel | None = None,
        cash: float = 1e9) -> Step:
    return harness.run(strategy, merge(list(series)), costs=costs, cash=cash)


def signals(step: Step, symbol: str = "X") -> list[Signal]:
    j = harness.journalled(step)
    return [(o.side.value, (o.bar_ts - T0) // TF) for o in j.orders if o.symbol == symbol]


def engine(closes: list[float], fast: int, slow: int, **kw: Any) -> list[Signal]:
    return signals(run(SmaCross(fast=fast, slow=slow, qty=1.0), bars("X", closes), **kw))


# --- the sample -----------------------------------------------------------------------------
@pytest.mark.parametrize(("fast", "slow"), [(3, 7), (5, 20), (10, 30), (60, 240)])
def test_sma_cross_sample_5000_bars_signals_match_reference(fast: int, slow: int) -> None:
    closes = sample_closes(5000)
    expected = reference(closes, fast, slow)
    assert len(expected) >= 6
    strat = SmaCross(fast=fast, slow=slow, qty=0.1)
    step = run(strat, bars("X", closes), costs=CostModel(fee_bps=10.0, slippage_bps=5.0),
               cash=10_000.0)
    assert signals(step) == expected
    j = harness.journalled(step)
    assert all(o.status is OrderStatus.FILLED and o.type is OrderType.MARKET for o in j.orders)


# --- exact ties -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("closes", "fast", "slow", "expected"),
    [
        # flat (fast == slow at t-1), then a move up: `<=` makes it a cross up
        ([10.0, 10.0, 10.0, 11.0], 2, 3, [("BUY", 3)]),
        # ... and flat again, then down: `>=` makes it a cross down
        ([10.0, 10.0, 10.0, 11.0, 11.0, 11.0, 11.0, 10.0], 2, 3, [("BUY", 3), ("SELL", 7)]),
        # below, touch (equal at t), then above: the cross is at the bar after the touch
        ([10.0, 9.0, 9.0, 10.0], 1, 2, [("BUY", 3)]),
        # below, touch, below again: no cross up; a "cross down" while flat sells nothing
        ([10.0, 9.0, 9.0, 8.0], 1, 2, []),
        # long, touch, above again: a second cross up while long buys nothing
        ([10.0, 9.0, 10.0, 10.0, 11.0], 1, 2, [("BUY", 2)]),
        # long, touch, below: the cross down from the tie sells
        ([10.0, 9.0, 10.0, 10.0, 9.0], 1, 2, [("BUY", 2), ("SELL", 4)]),
        # fast above slow from the first defined bar is not a cross (needs t-1 defined)
        ([1.0, 5.0, 9.0, 9.0, 9.0, 9.0], 1, 3, []),
        # nothing before the slow SMA is defined
        ([1.0, 9.0, 1.0, 9.0], 1, 5, []),
    ],
    ids=["tie-then-up", "tie-then-down", "touch-then-up", "touch-then-back", "long-touch-up",
         "long-touch-down", "above-from-start", "warmup"],
)
def test_sma_cross_exact_ties_follow_le_ge_rule(closes: list[float], fast: int, slow: int,
                                                expected: list[Signal]) -> None:
    assert reference(closes, fast, slow) == expected
    assert engine(closes, fast, slow) == expected


def test_sma_cross_sma_is_fsum_not_running_sum() -> None:
    # a spike leaves the window: running sums keep its rounding residue, so on the flat tail
    # they see fast != slow where fsum sees an exact tie, and invent a cross at bar 7
    closes = [1.1, 1.1, 100.1, 0.1, 0.7, 0.01, 0.01, 0.01]
    expected = [("BUY", 5), ("SELL", 6)]
    assert reference(closes, 2, 3) == expected
    assert running_sum_signals(closes, 2, 3) != expected
    assert engine(closes, 2, 3) == expected


def test_sma_cross_sma_is_fsum_not_left_to_right_window_sum() -> None:
    # at bar 4 the exact SMAs tie (0.15 == 0.15); a plain left-to-right sum of the window
    # rounds the slow one below the fast one and would buy there instead of at bar 6
    closes = [0.3, 0.2, 0.1, 0.2, 0.1, 0.2, 0.7, 0.6]

    def plain(window: list[float]) -> float:
        total = 0.0
        for c in window:
            total += c
        return total

    assert plain(closes[1:5]) / 4 != math.fsum(closes[1:5]) / 4
    assert reference(closes, 2, 4) == [("BUY", 6)]
    assert engine(closes, 2, 4) == [("BUY", 6)]


# --- orders and positions -------------------------------------------------------------------
def test_sma_cross_buys_qty_at_market_and_sells_whole_position() -> None:
    closes = [10.0, 10.0, 10.0, 11.0, 11.0, 11.0, 11.0, 10.0]
    costs = CostModel(fee_bps=10.0, spread_bps=2.0, slippage_bps=5.0)
    step = run(SmaCross(fast=2, slow=3, qty=0.37), bars("X", closes), costs=costs)
    j = harness.journalled(step)
    buy, sell = j.fills
    assert (buy.side, buy.qty, buy.price) == (Side.BUY, 0.37, costs.market_price(Side.BUY, 11.0))
    assert (sell.side, sell.qty_units) == (Side.SELL, buy.qty_units)
    assert sell.price == costs.market_price(Side.SELL, 10.0)
    assert step.book.position_units("X") == 0
    assert len(step.book.round_trips) == 1


def test_sma_cross_position_open_at_end_stays_open() -> None:
    step = run(SmaCross(fast=2, slow=3, qty=0.5), bars("X", [10.0, 10.0, 10.0, 11.0, 12.0]))
    j = harness.journalled(step)
    assert [(o.side, o.status) for o in j.orders] == [(Side.BUY, OrderStatus.FILLED)]
    assert step.book.position("X") == 0.5
    assert step.book.round_trips == []


def test_sma_cross_several_symbols_each_own_smas_and_position() -> None:
    closes = sample_closes(4000)
    x, y = closes[:2000], [c / 10.0 for c in closes[2000:]]
    step = run(SmaCross(fast=5, slow=20, qty=1.0), bars("Y", y), bars("X", x))
    assert signals(step, "X") == reference(x, 5, 20)
    assert signals(step, "Y") == reference(y, 5, 20)
    assert signals(step, "X") != signals(step, "Y")


def test_sma_cross_rejected_buy_stays_flat_and_retries_next_cross() -> None:
    # cash for nothing: every buy is rejected, and no sell follows a rejected buy
    step = run(SmaCross(fast=5, slow=20, qty=1.0), bars("X", sample_closes(2000)), cash=1.0)
    j = harness.journalled(step)
    assert j.orders
    assert all(o.side is Side.BUY and o.status is OrderStatus.REJECTED for o in j.orders)
    assert j.fills == []


# --- parameters -----------------------------------------------------------------------------
def test_sma_cross_params_declared_with_defaults() -> None:
    assert SmaCross.param_names() == ["fast", "slow", "qty"]
    s = SmaCross()
    assert (s.fast, s.slow, s.qty) == (10, 30, 0.01)


def test_sma_cross_unknown_param_fails_fast_with_did_you_mean() -> None:
    with pytest.raises(ConfigError) as info:
        SmaCross(fsat=5)
    err = info.value
    assert "fsat" in err.what
    assert err.where == "strategy.params.fsat"
    assert err.fix is not None and "did you mean `fast`" in err.fix


def test_sma_cross_unknown_param_without_close_name_lists_known() -> None:
    with pytest.raises(ConfigError) as info:
        SmaCross.validate_params({"zzz": 1})
    assert info.value.fix is not None
    assert "did you mean" not in info.value.fix
    assert "fast, slow, qty" in info.value.fix


@pytest.mark.parametrize(
    ("params", "key"),
    [({"fast": 0}, "fast"), ({"slow": -3}, "slow"), ({"qty": 0.0}, "qty"),
     ({"fast": "ten"}, "fast"), ({"fast": 2.5}, "fast")],
)
def test_sma_cross_invalid_param_value_raises_config_error_naming_key(params: dict,
                                                                      key: str) -> None:
    with pytest.raises(ConfigError) as info:
        SmaCross(**params)
    assert info.value.where == f"strategy.params.{key}"


def test_sma_cross_validate_params_types_and_completes() -> None:
    assert SmaCross.validate_params({"fast": "4", "qty": 1}) == {"fast": 4, "slow": 30,
                                                                 "qty": 1.0}


@pytest.mark.parametrize(("fast", "slow"), [(3, 3), (30, 10)])
def test_sma_cross_fast_not_below_slow_config_error_names_both_keys(fast: int, slow: int
                                                                   ) -> None:
    with pytest.raises(ConfigError) as info:
        SmaCross(fast=fast, slow=slow)
    assert info.value.where == "strategy.params.fast/slow"
    assert "must be shorter than slow" in info.value.what
    assert "strategy.params.fast below strategy.params.slow" in (info.value.fix or "")
    with pytest.raises(ConfigError):
        SmaCross.validate_params({"fast": fast, "slow": slow})


def test_sma_cross_warmup_bars_is_slow() -> None:
    assert SmaCross(fast=5, slow=42).warmup_bars == 42
    assert SmaCross().warmup_bars == 30


def test_load_strategy_class_finds_sma_cross() -> None:
    assert load_strategy_class("workbench.strategies.sma_cross:SmaCross") is SmaCross


@pytest.mark.parametrize(
    ("path", "text"),
    [("workbench.strategies.sma_cross:SmaCros", "did you mean `SmaCross`"),
     ("workbench.strategies.sma_crosss:SmaCross", "cannot import strategy module"),
     ("workbench.strategies.sma_cross:Side", "not a workbench Strategy subclass")],
)
def test_load_strategy_class_bad_path_config_error_with_fix(path: str, text: str) -> None:
    with pytest.raises(ConfigError, match=text):
        load_strategy_class(path)


def test_load_strategy_class_module_calling_sys_exit_at_import_config_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "wbtest_exits_on_import.py").write_text("import sys\nsys.exit(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"'wbtest_exits_on_import' raised SystemExit"):
        load_strategy_class("wbtest_exits_on_import:Anything")


def test_build_strategy_constructor_calling_sys_exit_strategy_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.config import load_config
    from workbench.engine.kernel import build_strategy
    from workbench.errors import StrategyError

    (tmp_path / "wbtest_exits_in_init.py").write_text(
        "import sys\nfrom workbench import Strategy\n\n\nclass Quits(Strategy):\n"
        "    def __init__(self, **params):\n        sys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = load_config(None, [], base={"strategy": {"class": "wbtest_exits_in_init:Quits"}},
                      env={})
    with pytest.raises(StrategyError, match=r"Quits raised SystemExit in __init__: 3"):
        build_strategy(cfg)
