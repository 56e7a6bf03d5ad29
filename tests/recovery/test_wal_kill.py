"""kill -9 a process appending to the write-ahead log: every seq it was told about survives."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys

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
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), str(pad)],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        head = child.stdout.readline().split()
        assert head[0] == "ready", head
        assert int(head[1]) >= max(reported, default=0)
        want = rng.randint(1, 80)
        for got, line in enumerate(child.stdout, 1):
            reported.add(int(line))
            if got >= want:
                break
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        reported.update(int(line) for line in child.stdout.read().split())  # printed in time
        child.stdout.close()
        assert child.returncode == -signal.SIGKILL

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
