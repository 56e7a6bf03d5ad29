"""``python bench/wal.py``: latency of the write-ahead log (not a test; numbers are printed).

* ``append+fsync``: ``Wal.append`` of an order-sized record with ``sync=True`` (write + fsync),
  one call timed at a time: p50, p99, max. DESIGN section 10 expects ~0.1 ms (p99 ~0.2 ms).
* ``append, no fsync``: ``sync=False`` (bars): encode + write only.
* ``read``: records per second decoding the whole log back (what a restart's replay pays).

The log is written under ``--dir`` (default ``bench/out/wal``, on the same disk as the
warehouse; a tmpfs would make fsync free and the numbers meaningless). Shared machines are
noisy: run it twice.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workbench.engine.journal import OrderRecord  # noqa: E402
from workbench.model import Bar, OrderType, Side  # noqa: E402
from workbench.recovery.records import bar_record, order_record  # noqa: E402
from workbench.recovery.wal import Wal, read  # noqa: E402


def _order(i: int) -> dict[str, object]:
    """An order record as a live run journals it (``records.order_record``)."""
    return order_record(OrderRecord(i, f"bench-{i}", "BTCUSDT", Side.BUY, OrderType.MARKET, 0.01,
                                    1_000_000, None, 1_704_067_260_000 + i, 1_704_067_200_000,
                                    None, False, "entry"))


def _bar(i: int) -> dict[str, object]:
    return bar_record(Bar("BTCUSDT", 1_704_067_200_000 + 60_000 * i, 42_000.5, 42_100.0,
                          41_900.25, 42_050.1, 12.345678))


def _summary(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1e3 for s in samples)
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (f"{name:<18} n={len(ms):>6}  p50={p50:.3f} ms  p99={p99:.3f} ms  "
            f"max={ms[-1]:.3f} ms  mean={statistics.fmean(ms):.3f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--dir", type=Path, default=ROOT / "bench" / "out" / "wal")
    args = parser.parse_args(argv)
    directory: Path = args.dir
    shutil.rmtree(directory, ignore_errors=True)
    clock = time.perf_counter
    with Wal.open(directory) as wal:
        synced: list[float] = []
        for i in range(args.records):
            payload = _order(i)
            t0 = clock()
            wal.append("order", payload)
            synced.append(clock() - t0)
        unsynced: list[float] = []
        for i in range(args.records):
            payload = _bar(i)
            t0 = clock()
            wal.append("bar", payload, sync=False)
            unsynced.append(clock() - t0)
    t0 = clock()
    records = read(directory)
    took = clock() - t0
    size = (directory / "wal.log").stat().st_size
    print(f"write-ahead log bench: {directory} ({size / 2**20:.1f} MiB)")
    print(_summary("append+fsync", synced))
    print(_summary("append, no fsync", unsynced))
    print(f"{'read':<18} n={len(records):>6}  {len(records) / took:,.0f} records/s "
          f"({took * 1e3:.0f} ms)")
    shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
