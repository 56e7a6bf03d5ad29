"""Rebalance: budgets fixed at each period's first bar, trades toward floor(budget/close/lot)*lot
when worth min_trade_pct of the budget, refuses weights it cannot hold."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import step_harness as harness

from workbench.brokers.fills import CostModel
from workbench.engine.backtest import simulate
from workbench.errors import ConfigError, StrategyError
from workbench.feeds.history import merge
from workbench.feeds.qc import BarSeries
from workbench.strategies.rebalance import Rebalance

T0, TF = harness.T0, harness.TF


def bars(closes: dict[str, list[float]]) -> Any:
    out = []
    for symbol, cs in closes.items():
        c = np.array(cs)
        ts = T0 + np.arange(len(c), dtype=np.int64) * TF
        out.append(BarSeries(symbol, TF, ts, c, c, c, c, np.ones(len(c))))
    return merge(out)


def run(strategy: Rebalance, data: Any, cash: float = 10_000.0,
        symbols: tuple[str, ...] = ("AAA", "BBB")) -> Any:
    step = harness.make_step(strategy, costs=CostModel(), cash=cash)
    step.symbols = symbols
    simulate(step, data, start=T0)
    return harness.fills(step)


def test_rebalance_first_bar_buys_each_weight_of_equity_floored_to_lot() -> None:
    fills = run(Rebalance(weights={"AAA": 0.5, "BBB": 0.3}, every_minutes=60),
                bars({"AAA": [100.0, 101.0], "BBB": [7.0, 7.1]}))
    assert [(f.symbol, f.side.value, f.qty_units) for f in fills] == [
        ("AAA", "BUY", math.floor(5_000 / 100.0 / 1e-5) * 1_000),
        ("BBB", "BUY", math.floor(3_000 / 7.0 / 1e-5) * 1_000)]


def test_rebalance_budgets_fixed_before_the_periods_first_order() -> None:
    # AAA's buy pays a fee of 40, yet BBB's budget is taken at the period's first bar
    step = harness.make_step(Rebalance(weights={"AAA": 0.4, "BBB": 0.4}, every_minutes=60),
                             costs=CostModel(fee_bps=100), cash=10_000.0)
    simulate(step, bars({"AAA": [100.0], "BBB": [10.0]}), start=T0)
    bbb = [f for f in harness.fills(step) if f.symbol == "BBB"]
    assert bbb[0].qty_units == 400 * 10**8  # 4,000 / 10, not 0.4 x 9,960 / 10


def test_rebalance_next_period_sells_the_winner_and_skips_small_trades() -> None:
    closes = {"AAA": [100.0] * 60 + [150.0] * 60, "BBB": [10.0] * 60 + [10.01] * 60}
    fills = run(Rebalance(weights={"AAA": 0.5, "BBB": 0.5}, every_minutes=60,
                          min_trade_pct=1.0), bars(closes))
    second = [f for f in fills if f.ts > T0 + 60 * TF]
    assert [(f.symbol, f.side.value) for f in second] == [("AAA", "SELL"), ("BBB", "BUY")]
    few = run(Rebalance(weights={"AAA": 0.5, "BBB": 0.5}, every_minutes=60,
                        min_trade_pct=90.0), bars(closes))
    assert len(few) == 2  # only the first buys were worth 90% of a budget


@pytest.mark.parametrize(("weights", "says"), [
    ({}, "no target weights"),
    ({"AAA": 0.7, "BBB": 0.4}, "add up to 1.1"),
])
def test_rebalance_bad_weights_config_error(weights: dict[str, float], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        Rebalance(weights=weights)


def test_rebalance_weight_for_a_symbol_the_run_does_not_trade_fails_at_start() -> None:
    with pytest.raises(StrategyError, match=r"weights name ETHUSD, which this run does not"):
        run(Rebalance(weights={"AAA": 0.5, "ETHUSD": 0.4}), bars({"AAA": [1.0]}),
            symbols=("AAA", "BBB"))
