"""``python tests/support/live_driver.py ROOT RUN_ID MAX_BARS [--crash SPEC]``: one paper
``LiveRun`` on simulated time against an in-process ``FakeBinance`` (a ``ManualClock`` on
127.0.0.1), for the kill -9 tests of the live loop (tests/live/test_live_process.py).

The warehouse is ``ROOT/wh/w.duckdb`` (the journal ``ROOT/wh/live/RUN_ID``), the run
directory ``ROOT/runs/RUN_ID``. A run with a journal already resumes it.

The venue's clock: a new run starts it at ``START`` (the sample month + 200 bars); a resumed
one at ``--down`` bar times after the latest venue time journaled (a process down that
long), so the bars missed while down are back-filled. The bars are the same file's whatever
the clock: an interrupted run decides the same bars as an uninterrupted one.

``--crash SPEC`` SIGKILLs this process at a chosen point, with nothing in production code
(the child patches itself): ``[after:]TARGET:N``, the Nth call of TARGET, killed before it
runs (or just after it returned, with ``after:``):

* ``submit``: ``PaperBroker.submit`` (the order record and its NEW event are journaled and
  synced, the broker has not acted: between WAL append and broker submit);
* ``fill``: ``WalJournal.fill`` (the broker filled, the fill record is not written);
* ``wal.KIND``: ``Wal.append`` of a record of KIND (``bar``, ``decision``, ``snapshot_ref``,
  ``control``...); ``bar`` counts live and back-filled bars only (not warm-up);
* ``warmup``: ``Wal.append`` of a warm-up bar record;
* ``save_snapshot``: ``recovery.snapshot.save_snapshot`` (``after:``: the snapshot file is
  written, its ``snapshot_ref`` record is not);
* ``replace.NAME``: ``os.replace`` of a file named NAME (``snapshot.json`` inside
  ``save_snapshot``; ``trades.csv``... in the run directory's refresh).

It prints ``ready`` before the run and ``done STATUS BARS`` after it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from live_harness import MIN, SAMPLE, SimTime, paper_config

from workbench.brokers.paper import PaperBroker
from workbench.engine.live import LiveOptions, LiveRun, journal_dir
from workbench.model import Mode
from workbench.recovery import snapshot
from workbench.recovery.journal import WalJournal
from workbench.recovery.wal import Wal, WalReader
from workbench.venue_client import RetryPolicy, VenueClient
from workbench.venues.bar_book import BarBook
from workbench.venues.fake_binance import FakeBinance
from workbench.venues.venue_clock import ManualClock

START = BarBook.from_file(SAMPLE, "BTCUSDT").first_open_ms + 200 * MIN + 7_000


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def crash_on(owner: Any, name: str, n: int, *, after: bool,
             when: Callable[..., bool] = lambda *a, **k: True) -> None:
    """Patch ``owner.name`` to SIGKILL this process at its Nth call that ``when`` selects."""
    original = getattr(owner, name)
    seen = 0

    def patched(*args: Any, **kwargs: Any) -> Any:
        nonlocal seen
        if not when(*args, **kwargs):
            return original(*args, **kwargs)
        seen += 1
        if seen == n and not after:
            die()
        result = original(*args, **kwargs)
        if seen == n:
            die()
        return result

    setattr(owner, name, patched)


def arm(spec: str) -> None:
    after = spec.startswith("after:")
    target, _, count = spec.removeprefix("after:").rpartition(":")
    n = int(count)
    if target == "submit":
        crash_on(PaperBroker, "submit", n, after=after)
    elif target == "fill":
        crash_on(WalJournal, "fill", n, after=after)
    elif target == "warmup":
        crash_on(Wal, "append", n, after=after,
                 when=lambda _self, kind, payload, **_: kind == "bar"
                 and payload.get("phase") == "warmup")
    elif target.startswith("wal."):
        want = target.removeprefix("wal.")
        crash_on(Wal, "append", n, after=after,
                 when=lambda _self, kind, payload, **_: kind == want
                 and (kind != "bar" or payload.get("phase") != "warmup"))
    elif target == "save_snapshot":
        crash_on(snapshot, "save_snapshot", n, after=after)
    elif target.startswith("replace."):
        name = target.removeprefix("replace.")
        crash_on(os, "replace", n, after=after,
                 when=lambda src, dst, **_: Path(src).name == name)
    else:
        raise SystemExit(f"unknown crash target {target!r}")


def venue_start(journal: Path, down_bars: int) -> int:
    """START for a new run; for a resumed one, ``down_bars`` bar times after the latest venue
    time the journal shows (the start's, a bar's close, a decision's): a venue's clock does not
    go back while a process is down."""
    seen = None
    if (journal / "wal.log").is_file():
        for record in WalReader(journal):
            p = record.payload
            t = {"control": p.get("ts") if p.get("action") == "start" else None,
                 "bar": p["ts"] + MIN if record.kind == "bar" else None,
                 "decision": p.get("decided_at")}.get(record.kind)
            if t is not None:
                seen = t if seen is None else max(seen, t)
    if seen is None:
        return START
    return max(START, seen + down_bars * MIN)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("run_id")
    parser.add_argument("max_bars", type=int)
    parser.add_argument("--crash")
    parser.add_argument("--down", type=int, default=3, help="bar times down before a resume")
    args = parser.parse_args(argv)
    warehouse = args.root / "wh" / "w.duckdb"
    clock = ManualClock(venue_start(journal_dir(warehouse, args.run_id), args.down))
    if args.crash:
        arm(args.crash)
    with FakeBinance(BarBook.from_file(SAMPLE, "BTCUSDT"), clock=clock) as fx:
        sim = SimTime(clock)
        venue = VenueClient(fx.url, policy=RetryPolicy(base_s=0.01, cap_s=0.05),
                            sleep=sim.sleep, monotonic=sim.monotonic)
        run = LiveRun(paper_config(fx.url), Mode.PAPER, run_id=args.run_id,
                      warehouse=warehouse, run_dir=args.root / "runs" / args.run_id,
                      venue=venue, options=LiveOptions(max_bars=args.max_bars),
                      sleep=sim.sleep, monotonic=sim.monotonic)
        print("ready", flush=True)
        result = run.run()
    print("done", result.status, result.bars, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
