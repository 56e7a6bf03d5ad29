"""SnapshotStore (``recovery/snapshot.py``) and PortfolioStore (the journal folded into a
``State``, ``recovery/replay.py``): what is saved is restored byte for byte, and the folded
portfolio is the step's own books."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson

from workbench.contract.adapters import CASH, Rig
from workbench.contract.runner import check, expect
from workbench.model import Side
from workbench.recovery.journal import WalJournal
from workbench.recovery.records import start_record
from workbench.recovery.replay import State, compare, fold, rebuild, recover
from workbench.recovery.snapshot import (
    PREVIOUS_FILE,
    SNAPSHOT_FILE,
    load_snapshot,
    save_snapshot,
    take_snapshot,
)
from workbench.recovery.wal import WalReader


def canonical(state: Any) -> bytes:
    """The bytes a state is compared by: orjson, keys sorted."""
    return bytes(orjson.dumps(state, option=orjson.OPT_SORT_KEYS))


def session(a: Any) -> tuple[Path, WalJournal, Rig]:
    """A journaled session on the adapter: a fill and a resting order."""
    directory = a.scratch("journal")
    journal = WalJournal(directory)
    journal.wal.append("control", start_record(CASH, run_id="contract", mode=a.name))
    rig = a.rig(journal=journal)
    rig.order(Side.BUY, 0.002)
    rig.order(Side.BUY, 0.001, limit=round(rig.bars[-1].close * 0.97, 2))
    rig.step.poll()
    return directory, journal, rig


def close(journal: WalJournal, rig: Rig) -> None:
    for order in rig.step.open_orders():
        rig.cancel(order)
    journal.close()


@check("snapshot_store.save_restore_byte_identical")
def snapshot_save_restore(a: Any) -> str:
    """A state saved as a snapshot loads back byte-identical; saved again, the file is too."""
    directory, journal, rig = session(a)
    try:
        state = rebuild(directory).to_dict()
        save_snapshot(directory, state, state["seq"])
        loaded = load_snapshot(directory)
        expect(loaded.snapshot is not None, f"the snapshot did not load: {loaded.problems}")
        assert loaded.snapshot is not None
        expect(canonical(loaded.snapshot.state) == canonical(state),
               "the loaded snapshot's state differs from the saved one")
        other = a.scratch("snapshot-again")
        save_snapshot(other, loaded.snapshot.state, loaded.snapshot.wal_seq)
        first, second = (directory / SNAPSHOT_FILE).read_bytes(), (other / SNAPSHOT_FILE
                                                                   ).read_bytes()
        expect(first == second, "saving the restored state wrote different bytes")
    finally:
        close(journal, rig)
    return f"{len(first)} bytes, identical"


@check("snapshot_store.corrupt_snapshot_falls_back_to_previous")
def snapshot_fallback(a: Any) -> str:
    """A damaged snapshot is passed over, named in the problems, for the previous good one."""
    directory = a.scratch("snapshots")
    older = {"seq": 1, "cash": 1.5}
    save_snapshot(directory, older, 1)
    save_snapshot(directory, {"seq": 2, "cash": 2.5}, 2)
    path = directory / SNAPSHOT_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    quiet = logging.getLogger("workbench.recovery.snapshot")
    was = quiet.disabled
    quiet.disabled = True  # the warning is the point here: the result carries it
    try:
        loaded = load_snapshot(directory)
    finally:
        quiet.disabled = was
    expect(loaded.snapshot is not None and loaded.source == directory / PREVIOUS_FILE,
           f"loaded {loaded.source}, expected {PREVIOUS_FILE}")
    assert loaded.snapshot is not None
    expect(canonical(loaded.snapshot.state) == canonical(older), "the previous state differs")
    expect(any(SNAPSHOT_FILE in p for p in loaded.problems),
           f"the damaged file is not named: {loaded.problems}")
    return loaded.problems[0]


@check("portfolio_store.save_restore_byte_identical")
def portfolio_save_restore(a: Any) -> str:
    """State -> dict -> State is byte-identical, and snapshot + WAL tail restores the same
    state as a replay from the first record."""
    directory, journal, rig = session(a)
    try:
        state = rebuild(directory)
        again = State.from_dict(state.to_dict())
        expect(canonical(again.to_dict()) == canonical(state.to_dict()),
               "State.from_dict(to_dict()) is not the same state")
        take_snapshot(journal.wal, state.to_dict())
        rig.order(Side.BUY, 0.001)  # a tail after the snapshot
        restored = recover(directory)
        expect(restored.snapshot.snapshot is not None, "recover() did not use the snapshot")
        full = fold(WalReader(directory, 1))
        diff = compare(restored.state, full)
        expect(diff is None, f"snapshot + tail differs from a full replay: {diff}")
        expect(canonical(restored.state.to_dict()) == canonical(full.to_dict()),
               "snapshot + tail and a full replay are not byte-identical")
    finally:
        close(journal, rig)
    return f"WAL seq {full.seq}, identical"


@check("portfolio_store.books_match_the_step")
def books_match_the_step(a: Any) -> str:
    """The portfolio folded from the journal is the step's books: cash, positions, open
    orders."""
    directory, journal, rig = session(a)
    try:
        state = rebuild(directory)
        book = rig.step.book
        expect(state.cash == book.cash, f"folded cash {state.cash!r} != books {book.cash!r}")
        held = {s: u for s, u in book.units.items() if u}
        expect(state.units == held, f"folded positions {state.units} != books {held}")
        open_ids = sorted(o.client_order_id for o in rig.step.open_orders())
        expect(sorted(state.open_orders()) == open_ids,
               f"folded open orders {sorted(state.open_orders())} != step {open_ids}")
    finally:
        close(journal, rig)
    return f"cash {state.cash!r}, positions {state.units}"
