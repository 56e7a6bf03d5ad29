"""``WalJournal``: the Journal port (engine/journal.py) over the write-ahead log (wal.py).

Each port record is one WAL record, its payload built by ``recovery/records.py`` (the one mapping
between records and payloads, the one the replay fold reads): ``order`` -> an ``order`` record,
``event`` -> an ``order_event`` record, ``fill`` -> a ``fill`` record.

Durability: every one of the three is appended synced, so each call returns only once its
record, and every record before it, is on disk (fdatasync). ``order`` is the write-ahead record:
the step calls it before risk or the broker sees the order, so an order that left the process is
in the journal, whatever kills the process after. Fills and terminal events move cash,
positions and open orders, and so are synced too. None of the port's kinds is batched with
``sync=False``: adr/0012 allows that for ``bar`` and ``decision`` records only (re-derivable
from the feed and the strategy), and ``Wal.append`` refuses it for ``order``, ``order_event``
and ``fill`` (``CRITICAL_KINDS``). A runtime appends those re-derivable kinds itself, unsynced,
through :attr:`WalJournal.wal` (the same log: one writer per directory), and ``replay`` passes
over them. ``flush`` syncs whatever such unsynced records are pending.

``wall_ms`` (optional): a wall clock; each record then carries ``wall_ts``, the wall time it was
journaled at, beside the model time the step stamps (a paper fill's ``ts`` is its signal bar's
close; ``wall_ts`` says when the process took it). Readers ignore it.

Read side: ``replay`` reads the log back (records of other kinds skipped) into the same
``OrderRecord``, ``OrderEvent`` and ``Fill`` tuples, exactly: JSON (orjson) carries floats bit
for bit, enums by value and None as null. Reopening a directory (a restart) drops a torn last
record (a kill mid-write) and appends after the last good one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from workbench.engine.journal import JournalContents, OrderEvent, OrderRecord, Record, split
from workbench.model import Fill, Order, OrderStatus
from workbench.recovery.records import (
    fill_from_record,
    fill_record,
    order_event_from_record,
    order_event_record,
    order_from_record,
    order_record,
)
from workbench.recovery.wal import Wal, WalReader

_READERS: dict[str, Callable[[dict[str, Any]], Record]] = {
    "order": order_from_record,
    "order_event": order_event_from_record,
    "fill": fill_from_record,
}
_new = tuple.__new__


class WalJournal:
    """The journal of a live run in ``directory`` (its ``wal.log``), opened for writing (one
    writer per directory: ``Wal.open`` takes an exclusive lock)."""

    def __init__(self, directory: str | Path, *, wall_ms: Callable[[], int] | None = None,
                 wait_s: float = 0.0) -> None:
        self.directory = Path(directory)
        self.wal = Wal.open(self.directory, wait_s=wait_s)
        """The log itself, for the runtime's other records (bars, decisions, controls)."""
        self.closed = False
        self._wall_ms = wall_ms

    def _extra(self) -> dict[str, Any]:
        return {} if self._wall_ms is None else {"wall_ts": self._wall_ms()}

    # --- write side ------------------------------------------------------------------------
    def order(self, record: OrderRecord) -> None:
        """Append and fsync the order record before returning: the write-ahead record."""
        self.wal.append("order", order_record(record, **self._extra()))

    def event(self, order: Order, status: OrderStatus, reason: str | None, ts: int) -> None:
        event = _new(OrderEvent, (order.order_seq, order.client_order_id, ts, status, reason))
        self.wal.append("order_event", order_event_record(event, **self._extra()))

    def fill(self, fill: Fill) -> None:
        self.wal.append("fill", fill_record(fill, **self._extra()))

    def flush(self) -> None:
        """fsync any record appended unsynced through :attr:`wal` (the port's own are synced)."""
        self.wal.sync()

    def close(self) -> None:
        """Flush and close the log (releasing its lock); it stays readable."""
        self.wal.close()
        self.closed = True

    # --- read side -------------------------------------------------------------------------
    def replay(self) -> Iterator[Record]:
        """The port's records in the order written, read back from the log on disk."""
        for record in WalReader(self.directory):
            reader = _READERS.get(record.kind)
            if reader is not None:
                yield reader(record.payload)

    def contents(self) -> JournalContents:
        return split(self.replay())

    def __enter__(self) -> WalJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
