"""NullBroker (shadow mode) through the step: every proposal recorded, nothing sent or filled."""

from __future__ import annotations

from typing import Any

from step_harness import T0, TF, journalled, rows, run

from workbench.brokers.base import CancelReason
from workbench.brokers.fills import CostModel
from workbench.brokers.null import ALLOWED, NullBroker, Proposal
from workbench.config import RiskConfig
from workbench.engine.journal import OrderEvent, OrderRecord
from workbench.model import Bar, Order, OrderIntent, OrderStatus, OrderType, Side
from workbench.risk.engine import RiskEngine
from workbench.strategy import Strategy

S = OrderStatus


class Propose(Strategy):
    """Every bar: a market buy of 1 and a buy limit of 2 at 90 (notional 180); hears rejects."""

    def on_start(self, ctx: Any) -> None:
        self.rejected: list[Order] = []
        self.fills = 0

    def on_bar(self, ctx: Any, bar: Bar) -> list[OrderIntent]:
        return [OrderIntent(bar.symbol, Side.BUY, 1.0),
                OrderIntent.limit(bar.symbol, Side.BUY, 2.0, 90.0)]

    def on_fill(self, ctx: Any, fill: Any) -> None:
        self.fills += 1

    def on_reject(self, ctx: Any, order: Order) -> None:
        self.rejected.append(order)


def shadow_run() -> tuple[Any, Propose, NullBroker]:
    broker, strategy = NullBroker(), Propose()
    risk = RiskEngine(RiskConfig(max_order_notional=150.0), CostModel())  # blocks each limit
    step = run(strategy, rows([(100, 101, 89, 100)] * 3), broker=broker, risk=risk,
               cash=1_000.0, run_id="sh")
    return step, strategy, broker


def test_every_allowed_order_is_recorded_then_canceled_shadow_and_nothing_fills() -> None:
    step, strategy, broker = shadow_run()
    got = journalled(step)
    market = [o for o in got.orders if o.type is OrderType.MARKET]
    assert [(o.status, o.reason, o.filled_units) for o in market] == [
        (S.CANCELED, CancelReason.SHADOW, 0)] * 3
    assert [e for e in got.events if e.order_seq == 1] == [
        OrderEvent(1, "sh-1", T0 + TF, S.NEW, None),
        OrderEvent(1, "sh-1", T0 + TF, S.SUBMITTED, None),
        OrderEvent(1, "sh-1", T0 + TF, S.CANCELED, "SHADOW")]
    assert got.fills == [] and strategy.fills == 0
    assert (step.book.cash, step.book.units, step.book.reserved_cash) == (1_000.0, {}, 0.0)
    assert step.open_orders() == [] and not broker.resting
    assert broker.proposed == [
        Proposal(OrderRecord(seq, f"sh-{seq}", "X", Side.BUY, OrderType.MARKET, 1.0,
                             100_000_000, None, T0 + TF * (i + 1), T0 + TF * i, None, False,
                             None), ALLOWED)
        for i, seq in enumerate((1, 3, 5))]


def test_risk_blocks_never_reach_the_null_broker_and_stay_in_the_journal() -> None:
    step, strategy, broker = shadow_run()
    limits = [o for o in journalled(step).orders if o.type is OrderType.LIMIT]
    assert [(o.order_seq, o.status) for o in limits] == [(2, S.BLOCKED), (4, S.BLOCKED),
                                                        (6, S.BLOCKED)]
    assert all(o.reason == "RISK_ORDER_NOTIONAL" for o in limits)
    assert [o.order_seq for o in strategy.rejected] == [2, 4, 6]  # the shadow cancel is no reject
    assert {p.order.order_seq for p in broker.proposed}.isdisjoint({2, 4, 6})


def test_cancel_finds_nothing_open_and_bars_and_polls_do_nothing() -> None:
    step, _, broker = shadow_run()
    events = len(journalled(step).events)
    order = Order(99, "x", "X", Side.BUY, OrderType.LIMIT, 1.0, 100_000_000, 90.0, T0, T0)
    assert broker.cancel(order) is False
    broker.on_bar(Bar("X", T0 + 9 * TF, 1.0, 1.0, 1.0, 1.0, 1.0))
    broker.poll(T0 + 10 * TF)
    assert len(journalled(step).events) == events
