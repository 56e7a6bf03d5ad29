"""WalJournal (recovery/journal.py): the Journal port over the write-ahead log.

The port's contract runs against it in tests/contract; here: an exact round trip through the
file, the same records as MemoryJournal from a real Step, and kill -9 while a Step journals.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest
from kill9 import kill_9_after
from step_harness import T0, closes, records, run
from wal_churn import COSTS, Churn, prices

from workbench.engine.journal import MemoryJournal, OrderEvent, OrderRecord, split
from workbench.model import Fill, Order, OrderStatus, OrderType, Side
from workbench.recovery.journal import WalJournal
from workbench.recovery.replay import fold
from workbench.recovery.wal import WAL_FILE, WalError, read

SUPPORT = Path(__file__).resolve().parents[1] / "support"


def test_records_come_back_exactly_after_a_reopen(tmp_path: Path) -> None:
    awkward = [0.1 + 0.2, 5e-324, 1.7976931348623157e308, -0.0, 1 / 3]
    orders = [OrderRecord(i, f"r-{i}", "BTCUSDT", Side.SELL, OrderType.LIMIT, q, i * 7, q,
                          T0 + i, T0, None, True, None) for i, q in enumerate(awkward, 1)]
    orders.append(OrderRecord(9, "r-9", "X", Side.BUY, OrderType.MARKET, 1.0, 100_000_000, None,
                              T0, T0, 3, False, "tag"))
    fill = Fill(1, 9, "r-9", "X", Side.BUY, 0.1 + 0.2, 30_000_000, 1 / 3, 1e-17, T0 + 1, T0,
                "T-1", T0 - 1)
    with WalJournal(tmp_path) as j:
        for record in orders:
            j.order(record)
        j.event(Order(*orders[-1]), OrderStatus.UNKNOWN, "TIMEOUT", T0 + 5)
        j.fill(fill)
    again = WalJournal(tmp_path)
    got = list(again.replay())
    assert got == [*orders, OrderEvent(9, "r-9", T0 + 5, OrderStatus.UNKNOWN, "TIMEOUT"), fill]
    for mine, theirs in zip(got, [*orders, None, fill], strict=True):
        if theirs is not None:  # bit for bit, types included (== would let -0.0 pass as 0.0)
            assert [(type(a), repr(a)) for a in mine] == [(type(b), repr(b)) for b in theirs]
    assert isinstance(got[0].side, Side) and isinstance(got[-2].status, OrderStatus)
    again.close()


def test_one_writer_per_directory_and_nothing_after_close(tmp_path: Path) -> None:
    j = WalJournal(tmp_path)
    with pytest.raises(WalError, match="another process"):
        WalJournal(tmp_path)
    j.close()
    with pytest.raises(WalError, match="closed"):
        j.fill(Fill(1, 1, "r-1", "X", Side.BUY, 1.0, 100_000_000, 1.0, 0.0, T0, T0))


def test_other_wal_kinds_in_the_same_log_are_passed_over(tmp_path: Path) -> None:
    with WalJournal(tmp_path) as j:
        j.wal.append("bar", {"symbol": "X", "ts": T0, "close": 1.0}, sync=False)
        j.order(OrderRecord(1, "r-1", "X", Side.BUY, OrderType.MARKET, 1.0, 100_000_000, None,
                            T0, T0, None, False, None))
        j.flush()
    assert [type(r).__name__ for r in WalJournal(tmp_path).replay()] == ["OrderRecord"]


def test_a_step_journals_the_same_records_to_the_wal_as_to_memory(tmp_path: Path) -> None:
    data = closes(prices(300))
    memory = run(Churn(), data, costs=COSTS, cash=1e9, journal=MemoryJournal())
    wal = run(Churn(), data, costs=COSTS, cash=1e9, journal=WalJournal(tmp_path))
    want = records(memory)
    assert len(want.orders) > 300 and want.fills and any(
        e.status is OrderStatus.CANCELED for e in want.events)
    assert records(wal) == want
    assert list(wal.journal.replay()) == list(memory.journal.replay())
    wal.journal.close()
    reopened = WalJournal(tmp_path)
    assert list(reopened.replay()) == list(memory.journal.replay())
    assert reopened.contents() == want
    reopened.close()
    # the replay fold reads the same log: every order, and the positions the books hold
    state = fold(read(tmp_path))
    assert set(state.orders) == {o.client_order_id for o in want.orders}
    assert state.units == {s: u for s, u in memory.book.units.items() if u}
    assert len(state.fills) == len(want.fills)


def test_kill_9_while_a_step_journals_loses_no_submitted_order(tmp_path: Path) -> None:
    """A child runs a Step with a WalJournal; its broker prints each client_order_id as the
    step submits it (after ``Journal.order`` returned). Killed at random points, every id it
    reported is in the journal, and the journal reopens cleanly (torn tail dropped)."""
    rng = random.Random(8)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(SUPPORT), os.environ.get("PYTHONPATH", "")])}
    reported: set[str] = set()
    directory = tmp_path / "journal"
    for iteration in range(5):
        head, lines = kill_9_after(
            [sys.executable, str(SUPPORT / "wal_churn.py"), str(directory), f"k{iteration}",
             "100000"], rng.randint(1, 150), env=env)
        assert head == ["ready"]
        reported.update(lines)

        size = (directory / WAL_FILE).stat().st_size
        reopened = WalJournal(directory)  # drops a torn tail, if the kill made one
        if reopened.wal.torn is not None:
            assert reopened.wal.torn.offset + reopened.wal.torn.dropped_bytes == size
        got_records = list(reopened.replay())
        reopened.close()
        journalled = {r.client_order_id for r in split(got_records).orders}
        assert reported <= journalled, f"iteration {iteration}: lost {reported - journalled}"
        assert len(split(got_records).orders) == len(journalled)  # no order twice
        fold(read(directory))  # the fold takes the log as it stands (no event before its order)
