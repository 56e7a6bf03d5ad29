"""kill -9 a process appending to the write-ahead log: every seq it was told about survives."""

from __future__ import annotations

import random
import sys

from kill9 import kill_9_after

from workbench.recovery.wal import WAL_FILE, Wal, WalReader, read

CHILD = """
import sys
from workbench.recovery.wal import Wal

wal = Wal.open(sys.argv[1])
pad = "x" * int(sys.argv[2])
print("ready", wal.last_seq, flush=True)
while True:
    seq = wal.last_seq + 1
    assert wal.append("order", {"client_order_id": f"c{seq}", "pad": pad}) == seq
    print(seq, flush=True)
"""


def test_kill_9_at_random_points_loses_no_returned_record_and_leaves_no_garbage(tmp_path):
    rng = random.Random(8)
    reported: set[int] = set()
    for iteration in range(6):
        pad = rng.choice([0, 10, 3_000, 100_000])  # big frames make a kill mid-write likely
        head, lines = kill_9_after([sys.executable, "-c", CHILD, str(tmp_path), str(pad)],
                                   rng.randint(1, 80))
        assert int(head[1]) >= max(reported, default=0)
        reported.update(int(line) for line in lines)

        size = (tmp_path / WAL_FILE).stat().st_size
        with Wal.open(tmp_path) as wal:  # drops a torn tail, if the kill made one
            if wal.torn is not None:
                assert wal.torn.offset + wal.torn.dropped_bytes == size
            last = wal.last_seq
        records = read(tmp_path)
        seqs = [r.seq for r in records]
        assert seqs == list(range(1, last + 1)), f"iteration {iteration}"
        assert reported <= set(seqs), f"iteration {iteration}: lost {reported - set(seqs)}"
        # the record being written at the kill may be missing, never garbage
        assert last <= max(reported) + 1
        assert all(r.payload["client_order_id"] == f"c{r.seq}" for r in records)
        reader = WalReader(tmp_path)
        assert len(list(reader)) == last
        assert reader.result is not None and reader.result.torn is None
        assert reader.result.end == (tmp_path / WAL_FILE).stat().st_size  # ends cleanly


CYCLE_CHILD = """
import sys
from workbench.recovery.replay import apply_record, rebuild
from workbench.recovery.snapshot import take_snapshot
from workbench.recovery.wal import Record, Wal, read

wal = Wal.open(sys.argv[1])
state = rebuild(sys.argv[1])  # resume: the same state the parent will rebuild
assert state.seq == wal.last_seq, (state.seq, wal.last_seq)
print("ready", wal.last_seq, flush=True)


def journal(kind, payload, sync=True):
    seq = wal.append(kind, payload, sync=sync)
    apply_record(state, Record(seq, kind, payload, 1, 0))
    return seq


if wal.last_seq == 0:
    journal("control", {"action": "start", "initial_cash": 1e6})
n = len(state.orders)
while True:
    n += 1
    coid = f"c{n}"
    journal("bar", {"symbol": "X", "ts": n, "close": 100.0 + n % 7}, sync=False)
    journal("order", {"client_order_id": coid, "symbol": "X", "side": "BUY", "qty": 0.5,
                      "qty_units": 50_000_000, "ts": n})
    seq = journal("fill", {"fill_seq": n, "client_order_id": coid, "symbol": "X",
                           "side": "BUY", "qty": 0.5, "qty_units": 50_000_000,
                           "price": 100.0 + n % 7, "fee": 0.05, "ts": n, "bar_ts": n})
    journal("order_event", {"client_order_id": coid, "status": "FILLED", "ts": n})
    if n % 3 == 0:
        take_snapshot(wal, state.to_dict())
        apply_record(state, read(sys.argv[1], wal.last_seq)[0])  # the snapshot_ref
    print(seq, n, flush=True)
"""


def test_kill_9_while_journaling_and_snapshotting_restarts_to_the_uninterrupted_state(tmp_path):
    from workbench.recovery.replay import compare, fold, recover

    rng = random.Random(12)
    fills: set[int] = set()
    for iteration in range(5):
        _, lines = kill_9_after([sys.executable, "-c", CYCLE_CHILD, str(tmp_path)],
                                rng.randint(1, 40))
        fills.update(int(line.split()[1]) for line in lines)

        got = recover(tmp_path)
        scratch = fold(read(tmp_path))
        assert compare(got.state, scratch) is None, f"iteration {iteration}"
        assert got.snapshot.problems == []  # the kill never leaves a bad snapshot.json
        journaled = {f["fill_seq"] for f in got.state.fills}
        assert fills <= journaled, f"iteration {iteration}: lost fills {fills - journaled}"
        orders = [r.payload["client_order_id"] for r in read(tmp_path) if r.kind == "order"]
        assert len(orders) == len(set(orders))  # no order journaled twice across restarts
        cash = 1e6
        for f in got.state.fills:
            cash -= 0.5 * f["price"] + 0.05
        assert got.state.cash == cash
