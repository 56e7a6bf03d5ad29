"""The live commands as an operator runs them: separate processes against ``workbench
fake-exchange`` (started here, on 127.0.0.1, an accelerated clock), their exit codes, output,
run directories and journals.

``workbench paper`` and ``python -m workbench.live --mode paper`` run and complete; while one
runs, ``halt``, ``status``, ``resume`` (only with ``--confirm``), ``flatten`` and ``--dry-run``
act on it through its run directory; kill -9 leaves a run that ``status`` says has no process,
that ``halt`` journals for its restart and that ``replay`` finds equal; SIGTERM stops it (143,
status ``stopped``) and it resumes; bad input ends in one ``error:`` line.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_process import CliResult, run_subprocess

from workbench import rundir
from workbench.engine import operator
from workbench.model import ms_to_iso
from workbench.recovery.wal import WalReader
from workbench.venues.bar_book import BarBook

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data" / "btcusdt_1m_2024-01_synthetic.csv"
MIN = 60_000
START = BarBook.from_file(SAMPLE, "BTCUSDT").first_open_ms + 200 * MIN
SPEED = 600  # ten venue minutes a wall second: a bar every 0.1 s
EXIT_INTERNAL = 70


def _cmd() -> list[str]:
    script = Path(sys.executable).with_name("workbench")
    return [str(script)] if script.exists() else [sys.executable, "-m", "workbench"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def venue_url() -> Iterator[str]:
    proc = subprocess.Popen([*_cmd(), "fake-exchange", "--data", str(SAMPLE), "--symbol",
                             "BTCUSDT", "--port", "0", "--speed", str(SPEED), "--start",
                             ms_to_iso(START)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(), stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line + (proc.stderr.read() if proc.stderr else "")
    yield line.split()[-1]
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)


class Paths:
    def __init__(self, tmp: Path, url: str, *, symbol: str = "BTCUSDT") -> None:
        self.tmp = tmp
        self.config = tmp / "paper.yaml"
        self.config.write_text(
            "run: {name: cli-paper}\n"
            f"data: {{symbols: [{symbol}], timeframe: 1m}}\n"
            "strategy:\n"
            '  class: "workbench.strategies.sma_cross:SmaCross"\n'
            "  params: {fast: 3, slow: 8, qty: 0.01}\n"
            "portfolio: {initial_cash: 10000, quote: USDT}\n"
            "costs: {fee_bps: 10, slippage_bps: 5}\n"
            f"venue: {{base_url: '{url}'}}\n"
            "live: {warmup_bars: 10, snapshot_every_bars: 30, gap_tolerance_bars: 1}\n",
            encoding="utf-8")
        self.runs = tmp / "runs"
        self.warehouse = tmp / "wh" / "w.duckdb"

    def common(self) -> list[str]:
        return ["--warehouse", str(self.warehouse)]

    def live_args(self, *extra: str) -> list[str]:
        return ["--config", str(self.config), "--runs-dir", str(self.runs), *self.common(),
                *extra]

    def journal(self, run_id: str) -> Path:
        return self.warehouse.parent / "live" / run_id


def wb(paths: Paths, *args: str, env: dict[str, str] | None = None,
       timeout: float = 120) -> CliResult:
    return run_subprocess(*args, cwd=paths.tmp, env=env, timeout=timeout, console=True)


def control(paths: Paths, action: str, run_id: str, *extra: str) -> CliResult:
    return wb(paths, action, "--run", run_id, "--runs-dir", str(paths.runs), *paths.common(),
              *extra)


def status(paths: Paths, run_id: str) -> dict[str, object]:
    got = control(paths, "status", run_id, "--format", "json")
    assert got.code == 0, got.err
    return dict(json.loads(got.out))


def records(paths: Paths, run_id: str) -> list[tuple[str, dict[str, object]]]:
    return [(r.kind, r.payload) for r in WalReader(paths.journal(run_id))]


def start_paper(paths: Paths, run_id: str, max_bars: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([*_cmd(), "paper", *paths.live_args("--run-id", run_id,
                                                                "--max-bars", str(max_bars))],
                            cwd=paths.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env(), stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the announcement: started (or resumed) ... halt with ...
    assert f"run {run_id} " in line and "halt with" in line, line + _drain(proc)
    return proc


def _drain(proc: subprocess.Popen[str]) -> str:
    proc.kill()
    out, err = proc.communicate(timeout=30)
    return out + err


def wait_for(predicate, what: str, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def assert_one_error_line(got: CliResult) -> None:
    assert got.code not in (0, EXIT_INTERNAL), (got.code, got.err)
    assert "Traceback" not in got.err, got.err
    errors = [line for line in got.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, got.err


# --- runs to completion -------------------------------------------------------------------------
def _assert_completed(paths: Paths, got: CliResult, max_bars: int) -> str:
    assert got.code == 0, got.err
    ids = [line.split()[0].removeprefix("run_id=") for line in got.out.splitlines()
           if line.startswith("run_id=")]
    assert len(ids) == 1, got.out
    run_dir = paths.runs / ids[0]
    for name in ("status.json", "run_manifest.json", *rundir.FILES):
        assert (run_dir / name).is_file(), name
    found = json.loads((run_dir / "status.json").read_text())
    assert (found["status"], found["bars"]) == ("completed", max_bars)
    return ids[0]


def test_paper_cli_max_bars_completes_with_its_run_directory(tmp_path: Path,
                                                              venue_url: str) -> None:
    paths = Paths(tmp_path, venue_url)
    got = wb(paths, "paper", *paths.live_args("--max-bars", "5"))
    _assert_completed(paths, got, 5)


def python_m_live(paths: Paths, *args: str, timeout: float = 120) -> CliResult:
    """``python -m workbench.live ARGS`` for the run in ``paths`` (five bars)."""
    proc = subprocess.run([sys.executable, "-m", "workbench.live", *args,
                           *paths.live_args("--max-bars", "5")], cwd=paths.tmp,
                          capture_output=True, text=True, env=_env(), timeout=timeout,
                          stdin=subprocess.DEVNULL)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def test_python_m_workbench_live_mode_paper_completes_like_workbench_paper(
        tmp_path: Path, venue_url: str) -> None:
    paths = Paths(tmp_path, venue_url)
    _assert_completed(paths, python_m_live(paths, "--mode", "paper"), 5)


@pytest.mark.parametrize("mode", [["--mode", "backtest"], []])
def test_python_m_workbench_live_without_a_live_mode_is_a_usage_error(
        tmp_path: Path, venue_url: str, mode: list[str]) -> None:
    paths = Paths(tmp_path, venue_url)
    proc = python_m_live(paths, *mode, timeout=60)
    assert proc.code == 2
    assert proc.err.startswith("usage: python -m workbench.live --mode shadow|paper|live")
    assert "error: --mode must be shadow, paper or live" in proc.err
    assert "Traceback" not in proc.err and not paths.runs.exists()


def test_python_m_workbench_live_mode_live_without_confirm_live_is_refused(
        tmp_path: Path, venue_url: str) -> None:
    paths = Paths(tmp_path, venue_url)
    proc = python_m_live(paths, "--mode", "live", timeout=60)
    assert proc.code == 2, proc.err
    assert "needs --confirm-live" in proc.err and "rehearse with `workbench paper`" in proc.err
    assert "Traceback" not in proc.err and not paths.runs.exists()


# --- operator controls on a running run ---------------------------------------------------------
def _after(recs: list[tuple[str, dict[str, object]]], action: str
           ) -> list[tuple[str, dict[str, object]]]:
    at = max(i for i, (kind, p) in enumerate(recs) if kind == "control" and p["action"] == action)
    return recs[at + 1:]


def _statuses(recs: list[tuple[str, dict[str, object]]]) -> dict[object, list[object]]:
    found: dict[object, list[object]] = {}
    for kind, p in recs:
        if kind == "order_event":
            found.setdefault(p["client_order_id"], []).append(p["status"])
    return found


def test_operator_halt_status_resume_flatten_then_kill_9_and_restart_halted(
        tmp_path: Path, venue_url: str) -> None:
    paths = Paths(tmp_path, venue_url)
    run_id = "paper-ops"
    proc = start_paper(paths, run_id, 400)
    try:
        wait_for(lambda: status(paths, run_id).get("orders", 0) >= 2, "the run's first orders")
        assert status(paths, run_id)["running"] is True

        t0 = time.monotonic()
        got = control(paths, "halt", run_id, "--reason", "test halt")
        halt_cli_s = time.monotonic() - t0
        assert got.code == 0 and got.out.startswith("halt: done; halted: test halt"), got
        done = [json.loads(p.read_text()) for p in
                sorted((paths.runs / run_id / "control" / "done").glob("*-halt.json"))]
        assert done and done[-1]["ok"] is True
        print(f"halt: CLI round trip {halt_cli_s * 1000:.0f} ms (process start included)")
        found = status(paths, run_id)
        assert found["halted"] and str(found["halted"]).startswith("test halt")

        # halted: the strategy's new orders are journaled BLOCKED, nothing else
        orders_at_halt = int(found["orders"])  # type: ignore[call-overload]
        wait_for(lambda: int(status(paths, run_id)["orders"]) > orders_at_halt + 1,  # type: ignore[call-overload]
                 "orders proposed while halted")
        after = _after(records(paths, run_id), "halt")
        placed = [p["client_order_id"] for kind, p in after if kind == "order"]
        assert placed and all(s[-1] == "BLOCKED" for c, s in _statuses(after).items()
                              if c in placed)
        assert not [p for kind, p in after if kind == "fill" and p["client_order_id"] in placed]

        # dry run: journaled as such, nothing changes
        before = status(paths, run_id)
        got = control(paths, "flatten", run_id, "--dry-run")
        assert got.code == 0 and got.out.startswith("dry run: flatten would halt and"), got
        now = status(paths, run_id)
        assert (now["halted"], now["positions"]) == (before["halted"], before["positions"])
        kinds = [(k, p.get("action")) for k, p in _after(records(paths, run_id), "halt")
                 if k == "control"]
        assert kinds == [("control", "dry_run")]

        got = control(paths, "resume", run_id)
        assert got.code != 0 and "--confirm" in got.err and "Traceback" not in got.err
        assert status(paths, run_id)["halted"]
        got = control(paths, "resume", run_id, "--confirm")
        assert got.code == 0 and got.out.startswith("resume: done; halted: no"), got
        assert not status(paths, run_id)["halted"]

        # trade until a position is open, then flatten: flat and halted
        wait_for(lambda: bool(status(paths, run_id)["positions"]), "an open position")
        got = control(paths, "flatten", run_id)
        assert got.code == 0 and got.out.startswith("flatten: done; halted: flatten"), got
        wait_for(lambda: not status(paths, run_id)["positions"], "the flatten fill")
        found = status(paths, run_id)
        assert found["halted"] and not found["positions"]
        got = control(paths, "resume", run_id, "--confirm")
        assert got.code == 0, got

        # halt latency as the loop sees it: a request written to its answer (measured, shown)
        took = []
        for action in ("halt", "resume", "halt", "resume", "halt", "resume"):
            t0 = time.monotonic()
            answer = operator.request(paths.runs / run_id, paths.journal(run_id), action,
                                      confirm=True)
            if action == "halt":
                took.append((time.monotonic() - t0) * 1000)
            assert answer["ok"] is True, answer
        print("halt latency, request to the loop's answer: "
              + ", ".join(f"{ms:.0f} ms" for ms in took))

        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)

    got = control(paths, "status", run_id)
    assert got.code == 0 and "no process" in got.out, got.out
    got = control(paths, "halt", run_id, "--reason", "while down")
    assert got.code == 0 and "not running" in got.out, got
    queued = [p for k, p in records(paths, run_id) if k == "control" and p.get("queued")]
    assert [p["action"] for p in queued] == ["halt"]

    bars = int(status(paths, run_id)["bars"])  # type: ignore[call-overload]
    got = wb(paths, "paper", *paths.live_args("--run-id", run_id, "--max-bars",
                                              str(bars + 15)))
    assert got.code == 0, got.err
    assert f"run {run_id} resumed" in got.out
    found = status(paths, run_id)
    assert found["status"] == "completed" and str(found["halted"]).startswith("while down")
    after = _after(records(paths, run_id), "halt")
    placed = [p["client_order_id"] for kind, p in after if kind == "order"]
    assert all(s[-1] == "BLOCKED" for c, s in _statuses(after).items() if c in placed)
    assert not [p for kind, p in after if kind == "fill" and p["client_order_id"] in placed]

    got = wb(paths, "replay", "--run", run_id, *paths.common())
    assert got.code == 0 and got.out.splitlines()[-1] == "equal", got


def test_paper_cli_sigterm_exits_143_stopped_and_the_restart_resumes(
        tmp_path: Path, venue_url: str) -> None:
    paths = Paths(tmp_path, venue_url)
    run_id = "paper-term"
    proc = start_paper(paths, run_id, 400)
    wait_for(lambda: (paths.runs / run_id / "status.json").is_file()
             and status(paths, run_id).get("bars", 0) >= 3, "three bars")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "error: terminated by SIGTERM" in err and "Traceback" not in err
    found = status(paths, run_id)
    assert found["status"] == "stopped" and found["running"] is False
    bars = int(found["bars"])  # type: ignore[call-overload]
    got = wb(paths, "paper", *paths.live_args("--run-id", run_id, "--max-bars",
                                              str(bars + 3)))
    assert got.code == 0, got.err
    assert f"run {run_id} resumed" in got.out
    assert status(paths, run_id)["status"] == "completed"


# --- bad input ----------------------------------------------------------------------------------
def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _nothing_half_written(paths: Paths) -> None:
    for run_dir in paths.runs.glob("*"):
        assert not (run_dir / "status.json").exists()
        assert not [f for f in rundir.FILES if (run_dir / f).exists()]


def test_paper_cli_unreachable_base_url_fails_with_one_error_line(tmp_path: Path) -> None:
    paths = Paths(tmp_path, _closed_port_url())
    got = wb(paths, "paper", *paths.live_args("--max-bars", "5"))
    assert_one_error_line(got)
    _nothing_half_written(paths)


def test_paper_cli_symbol_the_venue_lacks_fails_with_one_error_line(tmp_path: Path,
                                                                     venue_url: str) -> None:
    paths = Paths(tmp_path, venue_url, symbol="ETHUSDT")
    got = wb(paths, "paper", *paths.live_args("--max-bars", "5"))
    assert_one_error_line(got)
    assert "ETHUSDT" in got.err
    _nothing_half_written(paths)


def test_paper_cli_secrets_file_readable_by_others_is_refused(tmp_path: Path,
                                                               venue_url: str) -> None:
    paths = Paths(tmp_path, venue_url)
    secrets = tmp_path / "secrets.env"
    secrets.write_text("VENUE__API_KEY=fake-api-key\nVENUE__API_SECRET=fake-api-secret\n")
    secrets.chmod(0o644)
    got = wb(paths, "paper", *paths.live_args("--max-bars", "5"),
             env={"WB_SECRETS_FILE": str(secrets)})
    assert_one_error_line(got)
    assert "chmod 600" in got.err and "fake-api-secret" not in got.err + got.out
    _nothing_half_written(paths)


def test_paper_cli_api_key_without_its_secret_fails_with_one_error_line(
        tmp_path: Path, venue_url: str) -> None:
    paths = Paths(tmp_path, venue_url)
    got = wb(paths, "paper", *paths.live_args("--max-bars", "5"),
             env={"WB_VENUE__API_KEY": "fake-api-key",
                  "WB_SECRETS_FILE": str(tmp_path / "none.env")})
    assert_one_error_line(got)
    assert "secret" in got.err
    _nothing_half_written(paths)
