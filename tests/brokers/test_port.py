"""The Broker port as the step uses it: UNKNOWN outcomes, poll between bars, venue fill ids."""

from __future__ import annotations

from typing import Any

import pytest
from step_harness import T0, TF, make_step

from workbench.book import Book
from workbench.brokers.base import OrderSink, OutcomeUnknown, UnknownReason
from workbench.engine.clock import FixedClock
from workbench.engine.journal import MemoryJournal
from workbench.engine.step import Step
from workbench.model import (
    TRANSITIONS,
    Bar,
    Order,
    OrderIntent,
    OrderStatus,
    Side,
    can_move,
)
from workbench.strategy import Strategy

S = OrderStatus


class TimeoutVenue:
    """A venue stub: every submit times out; ``poll`` then finds the order filled."""

    def __init__(self) -> None:
        self.resting: dict[str, list[Order]] = {}
        self.sent: list[Order] = []
        self.sink: OrderSink | None = None

    def bind(self, sink: OrderSink, book: Book) -> None:
        self.sink = sink

    def cap_qty(self, intent: OrderIntent) -> float:
        return intent.qty

    def submit(self, order: Order) -> None:
        self.sent.append(order)
        raise OutcomeUnknown(UnknownReason.TIMEOUT, "no answer within 10 s")

    def cancel(self, order: Order, reason: str = "USER") -> bool:
        raise OutcomeUnknown(UnknownReason.NO_RESPONSE)

    def on_bar(self, bar: Bar) -> None:
        raise AssertionError("nothing rests here: the step must not call on_bar")

    def poll(self, now: int) -> None:
        assert self.sink is not None
        for order in self.sent:
            if order.status is S.UNKNOWN:
                self.sink.order_status(order, S.SUBMITTED)  # the venue query: it exists
                self.sink.order_fill(order, order.qty_units, 10.0, 0.0, "T-77", now - 5)
        self.sent.clear()


class Buy(Strategy):
    def __init__(self) -> None:
        super().__init__()
        self.orders: list[Order] = []
        self.fills: list[Any] = []

    def on_bar(self, ctx: Any, bar: Bar) -> None:
        self.orders.append(ctx.submit(OrderIntent(bar.symbol, Side.BUY, 1.0)))

    def on_fill(self, ctx: Any, fill: Any) -> None:
        self.fills.append(fill)


def make() -> tuple[Step, Buy, TimeoutVenue, FixedClock, MemoryJournal]:
    strategy, venue, clock, journal = Buy(), TimeoutVenue(), FixedClock(T0), MemoryJournal()
    step = make_step(strategy, cash=100.0, broker=venue, journal=journal, clock=clock)
    step.start(T0)
    return step, strategy, venue, clock, journal


def test_submit_timeout_makes_the_order_unknown_and_open_not_an_engine_fault() -> None:
    step, strategy, _, clock, journal = make()
    clock.now_ms = T0 + TF
    step.on_bar(Bar("X", T0, 10.0, 10.0, 10.0, 10.0, 1.0))
    (order,) = strategy.orders
    assert (order.status, order.reason) == (S.UNKNOWN, "TIMEOUT")
    assert step.open_orders() == [order]
    assert [(e[3], e[4]) for e in journal.events] == [(S.NEW, None), (S.UNKNOWN, "TIMEOUT")]


def test_poll_between_bars_resolves_unknown_fill_carries_venue_trade_id_and_clock_time(
        ) -> None:
    step, strategy, _, clock, journal = make()
    clock.now_ms = T0 + TF
    step.on_bar(Bar("X", T0, 10.0, 10.0, 10.0, 10.0, 1.0))
    clock.now_ms = T0 + TF + 1_500  # between bars
    step.poll()
    (order,) = strategy.orders
    assert order.status is S.FILLED and step.open_orders() == []
    (fill,) = strategy.fills
    assert (fill.ts, fill.bar_ts, fill.venue_trade_id, fill.venue_ts) == (
        T0 + TF + 1_500, T0, "T-77", T0 + TF + 1_495)
    assert step.book.position("X") == 1.0  # the step applied it to the books
    assert [e[3] for e in journal.events] == [S.NEW, S.UNKNOWN, S.SUBMITTED, S.FILLED]


def test_cancel_without_response_makes_the_order_unknown_and_returns_false() -> None:
    step, strategy, _, _, _ = make()
    step.on_bar(Bar("X", T0, 10.0, 10.0, 10.0, 10.0, 1.0))
    (order,) = strategy.orders
    assert step.cancel(order) is False
    assert (order.status, order.reason) == (S.UNKNOWN, "NO_RESPONSE")


def test_state_machine_unknown_is_open_resolved_only_to_a_venue_answer() -> None:
    assert not S.UNKNOWN.terminal
    assert TRANSITIONS[S.UNKNOWN] == {S.SUBMITTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED,
                                      S.REJECTED}
    assert all(can_move(s, S.UNKNOWN) for s in (S.NEW, S.SUBMITTED, S.PARTIALLY_FILLED))
    assert not can_move(S.UNKNOWN, S.NEW) and not can_move(S.UNKNOWN, S.BLOCKED)
    assert all(not TRANSITIONS[s] for s in S if s.terminal)
    assert set(TRANSITIONS) == set(S)


@pytest.mark.parametrize("status", list(S))
def test_every_status_has_a_row_in_the_state_machine(status: OrderStatus) -> None:
    assert status in TRANSITIONS
