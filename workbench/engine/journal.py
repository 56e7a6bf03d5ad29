"""The Journal port: where the step records orders, their events and fills, ahead of the broker.

Write side (the step): ``order`` (the order as taken on, before any broker sees it: the
write-ahead record), ``event`` (each status change) and ``fill``. Every record is immutable: an
``OrderRecord`` is a snapshot of the order's fields when it was journalled, never the live
``Order`` whose status moves on; an order's later state is in its ``OrderEvent``s and fills.
``flush`` makes what was written durable, ``close`` ends the journal.

Read side (the warehouse writer, replay, checks): ``replay()`` yields every record in the
order it was written; ``contents()`` gives them by kind (``split`` does it from any replay),
and ``order_states`` folds events and fills into each order's latest state (what the
``orders`` table and CSV hold).

Implementations: ``MemoryJournal`` (a backtest: one in-memory list, written to the warehouse in
bulk at the end, no fsync in the loop). Live modes journal to the fsync'd write-ahead log
(``recovery/wal.py``, payloads from ``recovery/records.py``): ``recovery.journal.WalJournal``
appends each record as a WAL record (``order``, ``order_event``, ``fill``), synced before the call
returns (so the order is on disk before the step hands it to the broker), and replays by reading
the log back into the same records.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from operator import attrgetter
from typing import Any, NamedTuple, Protocol

from workbench.model import Fill, Order, OrderStatus, OrderType, Side, units_to_qty


class OrderRecord(NamedTuple):
    """An order as it was taken on (status NEW): its intent and identity, never its state."""

    order_seq: int
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    qty: float
    qty_units: int
    limit_price: float | None
    ts: int
    bar_ts: int
    expire_after_bars: int | None
    reduce_only: bool
    tag: str | None


class OrderEvent(NamedTuple):
    """A status change of an order (NEW included), at ``ts`` (ms UTC)."""

    order_seq: int
    client_order_id: str
    ts: int
    status: OrderStatus
    reason: str | None


Record = OrderRecord | OrderEvent | Fill


class Journal(Protocol):
    # --- write side: the step ---------------------------------------------------------------
    def order(self, record: OrderRecord) -> None:
        """Record a new order (intent plus client_order_id) before any broker sees it; the
        step builds the record with the order, so it is the order as taken on."""

    def event(self, order: Order, status: OrderStatus, reason: str | None, ts: int) -> None:
        """Record a status change of ``order``."""

    def fill(self, fill: Fill) -> None:
        """Record an execution."""

    def flush(self) -> None:
        """Make every record written so far durable (a WAL fsyncs; memory has nothing to do)."""

    def close(self) -> None:
        """Flush and end the journal; nothing may be written after."""

    # --- read side ----------------------------------------------------------------------------
    def replay(self) -> Iterator[Record]:
        """Every record written so far, in the order it was written."""
        ...

    def contents(self) -> JournalContents:
        """Every record written so far by kind (``split(self.replay())`` will do)."""
        ...


class JournalContents(NamedTuple):
    """A journal's records by kind, each in journal order."""

    orders: list[OrderRecord]
    events: list[OrderEvent]
    fills: list[Fill]


class OrderState(NamedTuple):
    """An order's latest state: its record, folded with its events and fills.

    Its fields are ``OrderRecord``'s, in the same order, then the state's (``order_states``
    builds it as ``OrderState(*record, ...)``); ``Order`` starts with the same fields
    (``order_record`` reads them by name). Flat, not a record inside a state, so the
    ``orders`` writers read an ``Order`` or an ``OrderState`` alike.
    """

    order_seq: int
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    qty: float
    qty_units: int
    limit_price: float | None
    ts: int
    bar_ts: int
    expire_after_bars: int | None
    reduce_only: bool
    tag: str | None
    status: OrderStatus
    reason: str | None
    filled_units: int
    updated_ts: int

    @property
    def filled_qty(self) -> float:
        return units_to_qty(self.filled_units)

    @property
    def is_open(self) -> bool:
        return not self.status.terminal


def as_columns(rows: Sequence[tuple[Any, ...]], fields: Sequence[str]) -> dict[str, Any]:
    """Named tuples as columns by field name: one transpose at C speed."""
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(fields)
    return dict(zip(fields, cols, strict=True))


def contents(journal: Journal) -> JournalContents:
    """The records of any journal, by kind."""
    return journal.contents()


def split(source: Iterable[Record]) -> JournalContents:
    """Records (a journal's ``replay()``) split by kind, each kind in journal order."""
    orders: list[OrderRecord] = []
    events: list[OrderEvent] = []
    fills: list[Fill] = []
    by_kind = {OrderRecord: orders.append, OrderEvent: events.append, Fill: fills.append}
    for record in source:
        by_kind[record.__class__](record)  # type: ignore[operator]
    return JournalContents(orders, events, fills)


def order_states(records: JournalContents) -> list[OrderState]:
    """Each journalled order with its latest status and reason (its last event), the time of
    that event, and the units filled (the sum of its fills), in order of ``order_seq``."""
    last: dict[int, OrderEvent] = {}
    for event in records.events:
        last[event.order_seq] = event
    filled: dict[int, int] = {}
    for fill in records.fills:
        filled[fill.order_seq] = filled.get(fill.order_seq, 0) + fill.executed_units
    states = []
    for order in records.orders:
        seq = order.order_seq
        latest = last.get(seq)
        status, reason, ts = ((latest.status, latest.reason, latest.ts) if latest is not None
                              else (OrderStatus.NEW, None, order.ts))
        states.append(OrderState(*order, status, reason, filled.get(seq, 0), ts))
    return states


_new = tuple.__new__
_ORDER, _EVENT, _FILL = 0, 1, 2


def order_record(order: Order) -> OrderRecord:
    """The record of ``order`` as it is now (its intent and identity fields)."""
    return _new(OrderRecord, _taken(order))


_taken = attrgetter(*OrderRecord._fields)


class MemoryJournal:
    """Keeps the records in memory, a list per kind plus one byte per record for the order
    they came in (for ``replay``); the backtest writes them out in bulk at the end. Reading
    them by kind costs a copy of each list, whatever the length of the run."""

    def __init__(self) -> None:
        self._orders: list[OrderRecord] = []
        self._events: list[OrderEvent] = []
        self._fills: list[Fill] = []
        self._kinds = bytearray()
        self.closed = False

    def order(self, record: OrderRecord) -> None:
        self._orders.append(record)
        self._kinds.append(_ORDER)

    def event(self, order: Order, status: OrderStatus, reason: str | None, ts: int) -> None:
        self._events.append(_new(OrderEvent, (order.order_seq, order.client_order_id, ts,
                                              status, reason)))
        self._kinds.append(_EVENT)

    def fill(self, fill: Fill) -> None:
        self._fills.append(fill)
        self._kinds.append(_FILL)

    def flush(self) -> None:
        """In memory: nothing to make durable."""

    def close(self) -> None:
        self.closed = True

    def replay(self) -> Iterator[Record]:
        sources: tuple[Iterator[Record], ...] = (
            iter(self._orders), iter(self._events), iter(self._fills))
        for kind in self._kinds:
            yield next(sources[kind])

    def contents(self) -> JournalContents:
        return JournalContents(list(self._orders), list(self._events), list(self._fills))

    # conveniences, by kind (copies)
    @property
    def orders(self) -> list[OrderRecord]:
        return list(self._orders)

    @property
    def events(self) -> list[OrderEvent]:
        return list(self._events)

    @property
    def fills(self) -> list[Fill]:
        return list(self._fills)
