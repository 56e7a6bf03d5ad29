"""kill -9 a paper run at chosen and at random points, restart it with the same run id: the
final run directory equals an uninterrupted run's byte for byte, no ``client_order_id`` is
journaled twice, every bar is decided once, and ``workbench replay`` agrees.

Each run is a child process (``tests/support/live_driver.py``: a ``FakeBinance`` on a
``ManualClock`` and a ``LiveRun`` on simulated time); the crash points are patched into the
child, not into production code. A restarted child starts the venue's clock a few bar times
after the last venue time its journal shows, so the bars missed while down are back-filled.
"""

from __future__ import annotations

import filecmp
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from workbench import rundir
from workbench.engine.operator import replay_check
from workbench.recovery.wal import WalReader

pytestmark = pytest.mark.e2e

DRIVER = Path(__file__).resolve().parents[1] / "support" / "live_driver.py"
RUN_ID = "paper-crash"
MAX_BARS = 150

# between WAL append and broker submit; around a fill; around bar and decision records; a
# warm-up cut short; in and around a snapshot; before the start record; mid run-dir refresh
CRASHES = ["submit:1", "fill:2", "after:wal.bar:40", "after:replace.snapshot.json:2",
           "after:save_snapshot:3"]
SLOW_CRASHES = ["submit:4", "after:submit:2", "wal.control:1", "after:fill:3", "wal.bar:60",
                "after:wal.decision:75", "save_snapshot:2", "after:wal.snapshot_ref:4",
                "replace.trades.csv:3", "after:replace.fills.csv:3", "warmup:20",
                "after:warmup:30", "after:wal.order_event:7"]


def _driver(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(DRIVER), str(root), RUN_ID, str(MAX_BARS),
                           *extra], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def _finish(root: Path) -> None:
    done = _driver(root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-3:] == ["done", "completed", str(MAX_BARS)], done.stdout


def _journal(root: Path) -> Path:
    return root / "wh" / "live" / RUN_ID


def _decided_bars(root: Path) -> list[int]:
    if not (_journal(root) / "wal.log").is_file():
        return []
    return [r.payload["ts"] for r in WalReader(_journal(root))
            if r.kind == "bar" and r.payload.get("phase") in ("live", "backfill")]


def _state_line(root: Path) -> str:
    report = replay_check(_journal(root), root / "wh" / "w.duckdb", RUN_ID)
    assert report.difference is None, report.lines
    return report.lines[2]  # cash, positions, orders, fills, halted


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("whole")
    _finish(root)
    return root


def _assert_equals_whole(root: Path, whole: Path) -> None:
    for name in rundir.FILES:
        assert filecmp.cmp(whole / "runs" / RUN_ID / name, root / "runs" / RUN_ID / name,
                           shallow=False), name
    coids = [r.payload["client_order_id"] for r in WalReader(_journal(root))
             if r.kind == "order"]
    assert coids and len(coids) == len(set(coids))
    bars = _decided_bars(root)
    assert len(bars) == len(set(bars)) == MAX_BARS
    assert bars == _decided_bars(whole)
    assert _state_line(root) == _state_line(whole)


def _crash_then_resume(root: Path, spec: str) -> None:
    crashed = _driver(root, "--crash", spec)
    assert crashed.returncode == -signal.SIGKILL, (spec, crashed.stdout, crashed.stderr)
    _finish(root)


def _run_all(tmp_path: Path, whole: Path, specs: list[str]) -> None:
    roots = {spec: tmp_path / spec.replace(":", "_") for spec in specs}
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(lambda spec: _crash_then_resume(roots[spec], spec), specs))
    for spec, root in roots.items():
        try:
            _assert_equals_whole(root, whole)
        except AssertionError as exc:
            raise AssertionError(f"after a kill at {spec}: {exc}") from exc


def test_paper_run_killed_at_chosen_points_resumes_to_the_uninterrupted_run(
        tmp_path: Path, whole: Path) -> None:
    _run_all(tmp_path, whole, CRASHES)


@pytest.mark.soak
def test_paper_run_killed_at_more_points_resumes_to_the_uninterrupted_run(
        tmp_path: Path, whole: Path) -> None:
    _run_all(tmp_path, whole, SLOW_CRASHES)


def test_paper_run_killed_mid_warmup_journals_every_warmup_bar_once(tmp_path: Path,
                                                                     whole: Path) -> None:
    """Regression: a kill during the warm-up left it short, and the restart decided bars the
    uninterrupted run only warmed on (other orders, another last bar)."""
    _crash_then_resume(tmp_path, "warmup:5")
    warm = [r.payload["ts"] for r in WalReader(_journal(tmp_path))
            if r.kind == "bar" and r.payload.get("phase") == "warmup"]
    assert warm == [r.payload["ts"] for r in WalReader(_journal(whole))
                    if r.kind == "bar" and r.payload.get("phase") == "warmup"]
    _assert_equals_whole(tmp_path, whole)


def _kill_by_time(root: Path, rng: random.Random, kills: int) -> list[str]:
    """SIGKILL the run ``kills`` times after a random delay from its ``ready`` line; a run
    that ended before its kill is resumed no differently."""
    seen = []
    for _ in range(kills):
        child = subprocess.Popen([sys.executable, str(DRIVER), str(root), RUN_ID,
                                  str(MAX_BARS)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        assert child.stdout is not None
        assert child.stdout.readline().split() == ["ready"]
        time.sleep(rng.uniform(0.05, 0.45))
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=60)
        seen.append(f"rc={child.returncode} bars={len(_decided_bars(root))}")
    return seen


@pytest.mark.parametrize("seed", [1])
def test_paper_run_killed_at_random_times_resumes_to_the_uninterrupted_run(
        tmp_path: Path, whole: Path, seed: int) -> None:
    print(_kill_by_time(tmp_path, random.Random(seed), 3))
    _finish(tmp_path)
    _assert_equals_whole(tmp_path, whole)


@pytest.mark.soak
@pytest.mark.parametrize("seed", [2, 3, 4])
def test_paper_run_killed_at_random_times_often_resumes_to_the_uninterrupted_run(
        tmp_path: Path, whole: Path, seed: int) -> None:
    print(_kill_by_time(tmp_path, random.Random(seed), 6))
    _finish(tmp_path)
    _assert_equals_whole(tmp_path, whole)
