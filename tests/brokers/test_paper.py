"""PaperBroker: the backtest's fill model on live bars (issue 8, "Acceptance: paper vs
backtest"). The same bars through the same Step with a SimBroker and with a PaperBroker give
the same orders, events, fills and round trips field by field, and a P&L difference of 0;
paper fills add only their synthetic venue trade id and model time."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from step_harness import T0, TF, journalled, rows, run_with_equity

from workbench.brokers.fills import CostModel
from workbench.brokers.paper import PaperBroker
from workbench.brokers.sim import SimBroker
from workbench.config import RiskConfig
from workbench.feeds.history import LoopData
from workbench.model import Bar, Fill, OrderIntent, OrderType, Side
from workbench.risk.engine import RiskEngine
from workbench.strategies.pullback_limit import PullbackLimit
from workbench.strategies.sma_cross import SmaCross
from workbench.strategy import Strategy

VENUE_FIELDS = ("venue_trade_id", "venue_ts")
COSTS = {
    "close": CostModel(fee_bps=10.0, spread_bps=4.0, slippage_bps=3.0, min_notional=5.0),
    "next_open": CostModel(fee_bps=7.5, spread_bps=2.0, slippage_bps=1.0, fill_at="next_open"),
}


def walk(n: int = 3_000, seed: int = 7) -> LoopData:
    """A random walk of ``n`` one-minute bars: open at the previous close, wicks both ways."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0.0, 0.002, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0.0, 0.002, n))
    return rows(list(zip(open_, high, low, close, strict=True)))


def strategies() -> dict[str, Any]:
    return {"sma": lambda: SmaCross(fast=3, slow=8, qty=0.5),
            "pullback": lambda: PullbackLimit(qty=0.5, dip_bps=10.0, take_profit_bps=15.0,
                                              stop_bps=30.0, expire_bars=3)}


def risk(costs: CostModel) -> RiskEngine:
    """Blocks some orders (notional over 45), so blocked orders are compared too."""
    return RiskEngine(RiskConfig(max_order_notional=45.0), costs)


def without_venue_fields(fill: Fill) -> tuple[Any, ...]:
    return tuple(v for k, v in fill._asdict().items() if k not in VENUE_FIELDS)


@pytest.mark.parametrize("fill_at", sorted(COSTS))
@pytest.mark.parametrize("name", sorted(strategies()))
def test_paper_and_backtest_give_the_same_orders_fills_trades_and_pnl(
        name: str, fill_at: str) -> None:
    data, costs, make = walk(), COSTS[fill_at], strategies()[name]
    sim_step, sim_equity = run_with_equity(make(), data, broker=SimBroker(costs),
                                           risk=risk(costs), run_id="run-7")
    paper_step, paper_equity = run_with_equity(make(), data, broker=PaperBroker(costs, TF),
                                               risk=risk(costs), run_id="run-7")
    sim, paper = journalled(sim_step), journalled(paper_step)

    assert paper.orders == sim.orders  # every field, client_order_id and status included
    assert paper.events == sim.events
    assert [without_venue_fields(f) for f in paper.fills] == [
        without_venue_fields(f) for f in sim.fills]
    assert paper_step.book.round_trips == sim_step.book.round_trips
    assert paper_step.book.realized_pnl - sim_step.book.realized_pnl == 0.0
    assert paper_step.book.equity() - sim_step.book.equity() == 0.0
    for column in ("ts", "cash", "position_value", "equity", "in_market"):
        np.testing.assert_array_equal(getattr(paper_equity, column),
                                      getattr(sim_equity, column))
    # the comparison had something to compare: fills, round trips, and orders risk blocked
    statuses = {o.status for o in sim.orders}
    assert len(sim.fills) >= 10 and len(sim_step.book.round_trips) >= 5
    assert "BLOCKED" in statuses
    if name == "pullback":
        assert {o.type for o in sim.orders} == {OrderType.LIMIT, OrderType.MARKET}
        assert "CANCELED" in statuses
    # what a backtest leaves empty, paper fills carry
    assert all(f.venue_trade_id is None and f.venue_ts is None for f in sim.fills)
    assert [f.venue_trade_id for f in paper.fills] == [
        f"P-{f.client_order_id}-1" for f in paper.fills]
    assert len({f.venue_trade_id for f in paper.fills}) == len(paper.fills)
    assert all(f.venue_ts == f.bar_ts + TF == f.ts for f in paper.fills)


def test_paper_ids_are_deterministic_across_runs() -> None:
    costs = COSTS["close"]

    def trade_ids() -> list[tuple[str, str | None, int | None]]:
        step, _ = run_with_equity(SmaCross(fast=3, slow=8, qty=0.5), walk(600),
                                  broker=PaperBroker(costs, TF), run_id="run-9")
        return [(f.client_order_id, f.venue_trade_id, f.venue_ts)
                for f in journalled(step).fills]

    first = trade_ids()
    assert first and first == trade_ids()
    assert all(coid.startswith("run-9-") for coid, _, _ in first)


def test_a_resting_limit_fill_carries_the_close_time_of_the_bar_it_filled_on() -> None:
    class BidOnce(Strategy):
        def on_bar(self, ctx: Any, bar: Bar) -> None:
            if bar.ts == T0:
                ctx.submit(OrderIntent.limit(bar.symbol, Side.BUY, 1.0, 95.0))

    data = rows([(100, 101, 99, 100), (100, 100, 97, 98), (98, 98, 94, 96), (96, 97, 95, 96)])
    step, _ = run_with_equity(BidOnce(), data, broker=PaperBroker(CostModel(), TF))
    (fill,) = journalled(step).fills
    assert (fill.price, fill.bar_ts) == (95.0, T0 + 2 * TF)
    assert (fill.venue_trade_id, fill.venue_ts, fill.ts) == ("P-t-1-1", T0 + 3 * TF, T0 + 3 * TF)
