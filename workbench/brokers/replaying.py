"""ReplayingBroker: a broker that sends orders, restarted from its journal (adr/0015).

A restart hands the journaled bars to the step again (adr/0014) and checks each record the step
makes against the journal. A paper broker makes its answers again by itself; a venue cannot be
asked twice. So while the journaled part is re-executed, this broker answers the step with what
the journal says the venue answered: after a ``submit``, the order's journaled answers (accepted,
rejected, its fills, an unknown outcome); at a ``poll``, the answers journaled between that point
and the next bar; a ``cancel``, with the journaled cancel. The venue hears nothing. Once the
journal is exhausted, ``go_live`` hands the orders still open to the real broker, which asks the
venue what became of them (``BinanceBroker.adopt``); from then on every call goes to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from workbench.book import Book
from workbench.brokers.base import CancelReason, OrderSink, OutcomeUnknown
from workbench.engine.journal import OrderEvent
from workbench.model import Bar, Fill, Order, OrderIntent, OrderStatus

_ANSWERS = frozenset({OrderStatus.SUBMITTED, OrderStatus.CANCELED, OrderStatus.REJECTED})
"""Statuses a broker reports itself (the step writes NEW, BLOCKED, and FILLED or
PARTIALLY_FILLED after a fill; UNKNOWN when ``submit`` raises ``OutcomeUnknown``)."""


class Expected(Protocol):
    """The records the restart still expects, in order (``ResumingJournal.expected``)."""

    def __getitem__(self, i: int) -> Any: ...

    def __len__(self) -> int: ...


class LiveBroker(Protocol):
    @property
    def resting(self) -> Mapping[str, Sequence[Order]]: ...

    def bind(self, sink: OrderSink, book: Book) -> None: ...

    def cap_qty(self, intent: OrderIntent) -> float: ...

    def submit(self, order: Order) -> None: ...

    def cancel(self, order: Order, reason: str = CancelReason.USER) -> bool: ...

    def on_bar(self, bar: Bar) -> None: ...

    def poll(self, now: int) -> None: ...

    def adopt(self, orders: Sequence[Order], fills: Sequence[Fill]) -> None: ...

    def hold(self, order: Order) -> None: ...

    def release_filled(self, order: Order, units: int) -> None: ...

    def let_go(self, order: Order) -> None: ...


class ReplaySource:
    """Where the journaled answers are: the records the restart still expects, and which bar
    each comes before. ``segments[i]`` is the number of bar records journaled before the i-th
    expected record (counted from the first); ``bars_done()`` is how many bars the restart has
    handed to the step so far."""

    def __init__(self, expected: Expected, segments: Sequence[int],
                 bars_done: Callable[[], int]) -> None:
        self.expected = expected
        self.segments = list(segments)
        self.total = len(segments)
        self.bars_done = bars_done

    def peek(self) -> Any:
        return self.expected[0] if len(self.expected) else None

    def before_next_bar(self) -> bool:
        """Whether the next expected record was journaled before the next bar."""
        i = self.total - len(self.expected)
        return i < self.total and self.segments[i] <= self.bars_done()


class ReplayingBroker:
    """``inner`` (the venue's broker), answering from the journal while a restart re-executes
    (``replay_from``) and handing over to ``inner`` at ``go_live``."""

    def __init__(self, inner: LiveBroker) -> None:
        self.inner = inner
        self.source: ReplaySource | None = None
        self._sink: OrderSink | None = None
        self._orders: dict[int, Order] = {}

    @property
    def resting(self) -> Mapping[str, Sequence[Order]]:
        return self.inner.resting

    def bind(self, sink: OrderSink, book: Book) -> None:
        self._sink = sink
        self.inner.bind(sink, book)

    def replay_from(self, source: ReplaySource) -> None:
        self.source = source

    def go_live(self, open_orders: Sequence[Order], fills: Sequence[Fill]) -> None:
        """The journal is exhausted: the real broker takes over the orders still open."""
        self.source = None
        self.inner.adopt(open_orders, fills)

    # --- the port ----------------------------------------------------------------------------
    def cap_qty(self, intent: OrderIntent) -> float:
        """The live broker's cap, replaying or not: it reads only its rules and the books, so
        a restart sizes each journaled order as it was sized."""
        return self.inner.cap_qty(intent)

    def submit(self, order: Order) -> None:
        if self.source is None:
            self.inner.submit(order)
            return
        self._orders[order.order_seq] = order
        self._answer(order.order_seq, raise_unknown=True)

    def cancel(self, order: Order, reason: str = CancelReason.USER) -> bool:
        if self.source is None:
            return self.inner.cancel(order, reason)
        self._answer(order.order_seq, raise_unknown=True)
        # the live broker says True only when its DELETE went through, which ends CANCELED
        return order.status is OrderStatus.CANCELED

    def on_bar(self, bar: Bar) -> None:
        if self.source is None:
            self.inner.on_bar(bar)

    def poll(self, now: int) -> None:
        source = self.source
        if source is None:
            self.inner.poll(now)
            return
        while source.before_next_bar():
            record = source.peek()
            seq = getattr(record, "order_seq", None)
            if seq not in self._orders or not self._answer(seq, raise_unknown=False):
                return  # not a venue answer: the step makes it (and the check says if not)

    # --- answering from the journal ----------------------------------------------------------
    def _answer(self, seq: int, *, raise_unknown: bool) -> bool:
        """Hand the step the journaled answers about order ``seq`` that come next; whether
        there was one."""
        source, sink = self.source, self._sink
        assert source is not None and sink is not None
        order = self._orders[seq]
        inner = self.inner
        answered = False
        try:
            while True:
                record = source.peek()
                if record is None or getattr(record, "order_seq", None) != seq:
                    return answered
                if not source.before_next_bar():  # the venue said it after a later bar
                    return answered
                if isinstance(record, Fill):
                    inner.release_filled(order, record.executed_units)
                    sink.order_fill(order, record.executed_units, record.price, record.fee,
                                    record.venue_trade_id, record.venue_ts, record.fee_units,
                                    (record.spread_cost, record.slippage_cost,
                                     record.impact_cost))
                elif isinstance(record, OrderEvent) and record.status in _ANSWERS:
                    sink.order_status(order, OrderStatus(record.status), record.reason)
                elif isinstance(record, OrderEvent) and record.status == OrderStatus.UNKNOWN:
                    if raise_unknown:
                        raise OutcomeUnknown(record.reason or "")
                    sink.order_status(order, OrderStatus.UNKNOWN, record.reason)
                else:
                    return answered
                answered = True
        finally:
            # what the venue holds for the order, as the live broker would hold it
            if order.is_open and order.status is not OrderStatus.NEW:
                inner.hold(order)
            else:
                inner.let_go(order)
