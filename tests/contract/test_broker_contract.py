"""The Broker contract (brokers/base.py, adr/0011), run against every broker in ``BROKERS``.

A recording sink stands in for the step: it applies each reported status to the order (as the
step does), checks it against the state machine, and records executions without applying
them, so anything that moves cash or positions must have been the broker's own doing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from workbench.book import Book
from workbench.brokers.base import CancelReason, RejectReason, UnknownReason
from workbench.model import (
    QTY_SCALE,
    Bar,
    Order,
    OrderStatus,
    OrderType,
    Side,
    can_move,
)

S = OrderStatus
T0 = 1_704_067_200_000
TF = 60_000
REASONS = ({r.value for r in RejectReason} | {r.value for r in CancelReason}
           | {r.value for r in UnknownReason})


class RecordingSink:
    def __init__(self) -> None:
        self.moves: list[tuple[int, OrderStatus, OrderStatus, str | None]] = []
        self.fills: list[tuple[int, int, float, float, str | None, int | None]] = []
        self.illegal: list[str] = []

    def order_status(self, order: Order, status: OrderStatus, reason: str | None = None) -> None:
        if not can_move(order.status, status):
            self.illegal.append(f"order {order.order_seq}: {order.status} -> {status}")
        self.moves.append((order.order_seq, order.status, status, reason))
        order.status, order.reason = status, reason

    def order_fill(self, order: Order, units: int, price: float, fee: float,
                   trade_id: str | None = None, venue_ts: int | None = None,
                   fee_units: int = 0, costs: tuple[float, float, float] = (0.0, 0.0, 0.0)
                   ) -> None:
        if order.status.terminal:
            self.illegal.append(f"order {order.order_seq}: a fill after {order.status}")
        self.fills.append((order.order_seq, units, price, fee, trade_id, venue_ts))
        order.filled_units += units
        status = S.FILLED if order.filled_units >= order.qty_units else S.PARTIALLY_FILLED
        self.order_status(order, status)


class Rig:
    def __init__(self, make_broker: Callable[[], Any], cash: float = 10_000.0,
                 units: int = 0) -> None:
        self.broker = make_broker()
        self.sink = RecordingSink()
        self.book = Book(cash)
        if units:
            self.book.units["X"] = units
        self.book.mark("X", 100.0)
        self.broker.bind(self.sink, self.book)
        self.seq = 0
        self.bar_ts = T0

    def order(self, side: Side, qty: float, limit: float | None = None) -> Order:
        self.seq += 1
        kind = OrderType.MARKET if limit is None else OrderType.LIMIT
        return Order(self.seq, f"c-{self.seq}", "X", side, kind, qty, round(qty * QTY_SCALE),
                     limit, self.bar_ts + TF, self.bar_ts)

    def bar(self, o: float, h: float, low: float, c: float) -> None:
        self.bar_ts += TF
        self.book.mark("X", c)
        self.broker.on_bar(Bar("X", self.bar_ts, o, h, low, c, 1.0))

    def books(self) -> tuple[float, dict[str, int]]:
        return self.book.cash, dict(self.book.units)


def test_resting_is_a_mapping_empty_before_any_order(make_broker: Callable[[], Any]) -> None:
    rig = Rig(make_broker)
    assert isinstance(rig.broker.resting, Mapping)
    assert not rig.broker.resting


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_market_order_moves_only_by_the_state_machine_and_never_writes_cash_or_positions(
        make_broker: Callable[[], Any], side: Side) -> None:
    rig = Rig(make_broker, units=5 * QTY_SCALE)
    before = rig.books()
    order = rig.order(side, 1.0)
    rig.broker.submit(order)
    rig.bar(100.0, 101.0, 99.0, 100.0)
    rig.broker.poll(rig.bar_ts + TF)
    assert rig.sink.illegal == []
    assert rig.sink.moves and rig.sink.moves[0][1] is S.NEW
    assert rig.books() == before  # fills were reported, not applied: nothing moved cash/units


def test_limit_orders_rest_then_cancel_releases_every_reservation(
        make_broker: Callable[[], Any]) -> None:
    rig = Rig(make_broker, units=5 * QTY_SCALE)
    buy, sell = rig.order(Side.BUY, 1.0, limit=50.0), rig.order(Side.SELL, 1.0, limit=200.0)
    rig.broker.submit(buy)
    rig.broker.submit(sell)
    rig.bar(100.0, 101.0, 99.0, 100.0)  # touches neither
    open_now = [o for o in (buy, sell) if o.is_open]
    resting = [o for orders in rig.broker.resting.values() for o in orders]
    assert {o.order_seq for o in resting} <= {o.order_seq for o in open_now}
    for order in open_now:
        assert rig.broker.cancel(order) is True
        assert order.status is S.CANCELED
    assert not rig.broker.resting
    assert rig.book.reserved_cash == 0.0 and not any(rig.book.reserved_units.values())
    assert rig.sink.illegal == []


def test_cancel_of_an_order_it_does_not_hold_returns_false_and_reports_nothing(
        make_broker: Callable[[], Any]) -> None:
    rig = Rig(make_broker)
    stranger = rig.order(Side.BUY, 1.0, limit=50.0)
    assert rig.broker.cancel(stranger) is False
    assert rig.sink.moves == []


def test_terminal_orders_hear_nothing_more_across_bars_and_polls(
        make_broker: Callable[[], Any]) -> None:
    rig = Rig(make_broker, units=5 * QTY_SCALE)
    orders = [rig.order(Side.BUY, 1.0), rig.order(Side.SELL, 1.0, limit=100.5),
              rig.order(Side.BUY, 1.0, limit=99.5)]
    for order in orders:
        rig.broker.submit(order)
    for _ in range(3):
        rig.bar(100.0, 101.0, 99.0, 100.0)
        rig.broker.poll(rig.bar_ts + TF)
    assert rig.sink.illegal == []


def test_refusals_carry_stable_reason_codes(make_broker: Callable[[], Any]) -> None:
    rig = Rig(make_broker, cash=10.0)
    rig.broker.submit(rig.order(Side.BUY, 1_000.0))   # far beyond the cash
    rig.broker.submit(rig.order(Side.SELL, 1_000.0))  # nothing held
    rig.bar(100.0, 101.0, 99.0, 100.0)
    reasons = {reason for _, _, _, reason in rig.sink.moves if reason is not None}
    assert reasons <= REASONS
    # neither order can fill: each ends refused (or, in shadow, withdrawn), with its reason
    last = {seq: (status, reason) for seq, _, status, reason in rig.sink.moves}
    assert sorted(last) == [1, 2]
    assert all(status.terminal and reason is not None for status, reason in last.values())
    assert rig.sink.fills == []
    assert rig.sink.illegal == []


def test_fills_are_positive_finite_and_within_the_order(make_broker: Callable[[], Any]) -> None:
    rig = Rig(make_broker, units=5 * QTY_SCALE)
    orders = {o.order_seq: o for o in (rig.order(Side.BUY, 1.0), rig.order(Side.SELL, 2.0),
                                        rig.order(Side.BUY, 0.5, limit=99.5))}
    for order in orders.values():
        rig.broker.submit(order)
    for _ in range(2):
        rig.bar(100.0, 101.0, 99.0, 100.0)
    filled: dict[int, int] = {}
    for seq, units, price, fee, _, venue_ts in rig.sink.fills:
        assert units > 0 and math.isfinite(price) and price > 0 and fee >= 0.0
        assert venue_ts is None or venue_ts > 0
        filled[seq] = filled.get(seq, 0) + units
    assert all(filled[seq] <= orders[seq].qty_units for seq in filled)
