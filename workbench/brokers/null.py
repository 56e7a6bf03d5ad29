"""NullBroker: shadow mode, every proposed order recorded, nothing sent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

from workbench.book import Book
from workbench.brokers.base import CancelReason, OrderSink
from workbench.engine.journal import OrderRecord, order_record
from workbench.model import Bar, Order, OrderIntent, OrderStatus

ALLOWED = "ALLOWED"
"""The risk verdict of every order that reaches a broker: the step blocks before it."""


class Proposal(NamedTuple):
    """An order the strategy proposed and risk let through, as it was taken on (immutable)."""

    order: OrderRecord
    verdict: str


_NOTHING: Mapping[str, Sequence[Order]] = MappingProxyType({})


class NullBroker:
    """Shadow mode: takes every order, records it in ``proposed`` and sends nothing.

    The state machine (``model.TRANSITIONS``) has no end for an order that is never sent but
    CANCELED, and an order left NEW would stay open for ever (risk counts open orders). So each
    order goes ``NEW -> SUBMITTED -> CANCELED`` with reason ``SHADOW`` inside ``submit``: taken
    and at once withdrawn, never filled. Nothing rests (``resting`` stays empty, ``on_bar`` is
    never needed), ``cancel`` finds nothing open, ``poll`` has nothing to ask, and the books are
    neither read nor written.

    Risk verdicts: the step applies risk before any broker, so each order reaching ``submit``
    was allowed and is recorded with verdict ``ALLOWED``; an order risk blocked never reaches
    a broker and is in the journal as BLOCKED with its reason code (and in ``risk_events``).
    ``proposed`` (in submit order) is what shadow telemetry counts.
    """

    def __init__(self) -> None:
        self.proposed: list[Proposal] = []
        self._sink: OrderSink | None = None

    @property
    def resting(self) -> Mapping[str, Sequence[Order]]:
        return _NOTHING

    def bind(self, sink: OrderSink, book: Book) -> None:
        self._sink = sink

    def cap_qty(self, intent: OrderIntent) -> float:
        """Every intent is taken whole (and withdrawn unsent)."""
        return intent.qty

    def submit(self, order: Order) -> None:
        sink = self._sink
        assert sink is not None, "bind() the broker before submit()"
        self.proposed.append(Proposal(order_record(order), ALLOWED))
        sink.order_status(order, OrderStatus.SUBMITTED)
        sink.order_status(order, OrderStatus.CANCELED, CancelReason.SHADOW)

    def cancel(self, order: Order, reason: str = CancelReason.USER) -> bool:
        return False  # nothing is ever open here

    def on_bar(self, bar: Bar) -> None:
        """Nothing rests."""

    def poll(self, now: int) -> None:
        """Nothing was sent."""
