"""A short accelerated paper soak on simulated time (``make test``): 1,500 bars from a bar file
with holes, against a fake exchange failing now and then, with a risk limit that blocks some
orders. Every bar the venue has is decided once, every hole is a ``gap`` record, orders are
proposed and some blocked; the bar arrival to decision latency is printed (not asserted: the
seven-day soak on the real server, ``bench/live_soak.py``, reports it against the SLO).
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_harness import MIN, SAMPLE, fake_venue, live_run, without_minutes

from workbench.engine.live import LiveOptions
from workbench.model import ms_to_iso
from workbench.recovery.wal import WalReader
from workbench.venues.bar_book import BarBook

ROOT = Path(__file__).resolve().parents[2]
BARS = 1_500
WARMUP = 30
FIRST = BarBook.from_file(SAMPLE, "BTCUSDT").first_open_ms
START = FIRST + 200 * MIN + 7_000
# bar indices (minutes from the file's first bar) the venue does not have: single holes and
# runs beyond live.gap_tolerance_bars (1), all inside the soak's window
HOLES = (400, 401, 402, 650, 900, 1100, 1101, 1400, 1500, 1501, 1502, 1503, 1600)
# transient venue faults: server errors, throttling, a dropped connection, slow answers
FAULTS = ("klines:503@40x2,klines:429=1@300,time:500@500,klines:timeout=200ms@800,"
          "klines:slow=300ms@1000x3,any:502@1500,exchangeInfo:500@1x1")


def test_paper_soak_with_gaps_faults_and_risk_blocks_decides_every_venue_bar_once(
        tmp_path: Path) -> None:
    data = without_minutes(tmp_path / "bars.csv", HOLES)
    with fake_venue(START, data=data, faults=FAULTS) as (fx, clock):
        result = live_run(fx, clock, tmp_path, options=LiveOptions(max_bars=BARS),
                          risk={"max_order_notional": 420},
                          live={"snapshot_every_bars": 240})
    assert (result.status, result.bars) == ("completed", BARS)
    records = list(WalReader(result.journal_dir))

    decided = [r.payload["ts"] for r in records
               if r.kind == "bar" and r.payload["phase"] in ("live", "backfill")]
    assert len(decided) == len(set(decided)) == BARS
    venue_bars = BarBook.from_file(data, "BTCUSDT")
    window = [t for t in (FIRST + i * MIN for i in range(50_000))
              if decided[0] <= t <= decided[-1]]
    holes = {FIRST + h * MIN for h in HOLES}
    assert decided == [t for t in window if t not in holes]
    assert len(venue_bars) > len(decided)  # the venue had more: the run stopped at max_bars

    recorded = {g["first_ts"] + k * MIN for r in records if r.kind == "gap"
                for g in [r.payload] for k in range(g["count"])}
    assert recorded == {t for t in holes if decided[0] <= t <= decided[-1]}
    assert recorded  # the window holds holes

    kinds = Counter(r.kind for r in records)
    blocked = [r for r in records if r.kind == "risk_event" and r.payload.get("client_order_id")]
    alerts = Counter(r.payload["kind"] for r in records if r.kind == "alert")
    assert kinds["order"] > len(blocked) > 0
    assert alerts["bar_gap"] >= 1
    errors = max(r.payload["venue_errors"] for r in records if r.kind == "decision")
    assert errors >= 5  # the faults hit, and the run went on

    lat = result.latency_summary()
    print(f"\nsoak {BARS} bars {ms_to_iso(decided[0])}..{ms_to_iso(decided[-1])}: "
          f"{kinds['order']} orders proposed, {len(blocked)} blocked by risk, "
          f"{kinds['fill']} fills, {errors} venue errors retried, {len(recorded)} missing "
          f"bars in {kinds['gap']} gap records, alerts {dict(alerts)}, "
          f"{result.backfill_bars} back-filled; bar arrival to decision "
          f"({len(result.latency_us)} live bars): p50 {lat['p50_ms']} ms, p95 "
          f"{lat['p95_ms']} ms, p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms")


@pytest.mark.soak
def test_seven_day_soak_bench_on_the_fake_exchange_server_misses_no_bar(tmp_path: Path) -> None:
    """``bench/live_soak.py`` as ``make bench`` runs it: 10,080 bars in real time at x2400."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "live_soak.py"), "--out",
                           str(tmp_path / "live_soak.json")], capture_output=True, text=True,
                          timeout=1800, cwd=ROOT, stdin=subprocess.DEVNULL)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "soak checks (no missed bar, every gap recorded, orders and blocks): pass" \
        in proc.stdout
    assert "bar arrival to decision: p50 " in proc.stdout and "SLO (p95 <= 500 ms" in proc.stdout


def test_paper_run_snapshots_read_only_the_new_part_of_the_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: every snapshot (each position change, every snapshot_every_bars) read the
    whole log back twice (the fold since the last snapshot scanned from the first record; the
    run directory's refresh replayed every record), so a long run fell behind its bars."""
    from workbench.recovery import journal, wal

    whole_reads: list[int] = []
    scan = wal.scan

    def counted(path: Path, start_seq: int = 1, *, after: wal.WalScan | None = None
                ) -> Iterator[wal.Record | wal.WalScan]:
        if after is None or not after.end:
            whole_reads.append(start_seq)
        return scan(path, start_seq, after=after)

    def no_read_back(self: journal.WalJournal) -> None:
        raise AssertionError("the live loop read its journal back")

    monkeypatch.setattr(wal, "scan", counted)
    monkeypatch.setattr(journal.WalJournal, "contents", no_read_back)
    with fake_venue(START) as (fx, clock):
        result = live_run(fx, clock, tmp_path, options=LiveOptions(max_bars=300))
    reads = len(whole_reads)
    snapshots = sum(1 for r in WalReader(result.journal_dir) if r.kind == "snapshot_ref")
    assert result.status == "completed" and snapshots >= 10
    # opening the log, the start's look at the journal, the first fold, the warehouse
    # flusher's first read: a few, not one or two per snapshot
    assert reads <= 5 < snapshots
