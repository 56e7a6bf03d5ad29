"""Killed and terminated runs: no ghost `running` rows, no half-written run directories, and a
log that tells what happened. The Gate strategy holds a backtest in the middle of its loop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from paused_run import cli, gate_config, ingested, start_paused

from workbench.warehouse.connect import open_rw, reading
from workbench.warehouse.stale import HOST

pytestmark = pytest.mark.e2e


@pytest.fixture
def loaded(tmp_path: Path, synth_csv: Any) -> Path:
    return ingested(tmp_path, synth_csv(count=2000))


def rows(warehouse: Path, query: str) -> list[tuple[Any, ...]]:
    with reading(warehouse) as con:
        return con.execute(query).fetchall()


def test_backtest_sigterm_mid_loop_ends_failed_with_the_signal_named_exit_143(
        tmp_path: Path, loaded: Path) -> None:
    proc, _gate, out = start_paused(tmp_path, loaded, "term")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "terminated by SIGTERM" in err
    assert rows(loaded, "select name, status, error like '%SIGTERM%' from runs") == [
        ("term", "failed", True)]
    manifest = json.loads((out / "run_manifest.json").read_text())
    assert manifest["status"] == "failed" and "SIGTERM" in manifest["error"]
    assert not list(out.glob("*.csv"))
    assert not out.with_name(out.name + ".partial").exists()
    log = (out / "logs.jsonl").read_text().splitlines()
    assert "started" in json.loads(log[0])["msg"] and "SIGTERM" in json.loads(log[-1])["msg"]


def test_backtest_kill9_mid_loop_leaves_no_rows_no_run_directory_and_its_log(
        tmp_path: Path, loaded: Path) -> None:
    proc, _gate, out = start_paused(tmp_path, loaded, "killed")
    proc.kill()
    proc.communicate(timeout=60)
    assert rows(loaded, "select count(*) from runs") == [(0,)]
    assert not out.exists()  # nothing under the final name looks like a run
    partial = out.with_name(out.name + ".partial")
    assert not list(partial.glob("*.csv")) and not (partial / "run_manifest.json").exists()
    first = json.loads((partial / "logs.jsonl").read_text().splitlines()[0])
    assert "started" in first["msg"]  # written as it happened
    listed = cli(tmp_path, loaded, "runs", "list")
    assert listed.code == 0 and "running" not in listed.out


def test_runs_running_row_of_a_dead_process_shows_abandoned_then_is_marked_so(
        tmp_path: Path, loaded: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    con = open_rw(loaded)
    try:
        con.execute(
            "insert into runs (run_id, mode, name, status, started_at, pid, host) values "
            "('ghost', 'paper', 'ghost', 'running', now(), ?, ?), "
            "('alive', 'paper', 'alive', 'running', now(), ?, ?)",
            [dead.pid, HOST, os.getpid(), HOST])
    finally:
        con.close()
    listed = cli(tmp_path, loaded, "runs", "list", "--format", "csv")
    assert listed.code == 0, listed.err
    status = {line.split(",")[0]: line.split(",")[3] for line in listed.out.splitlines()[1:]}
    assert status == {"ghost": "abandoned", "alive": "running"}
    # any read-write open (here a backtest's write) records it
    done = cli(tmp_path, loaded, "backtest", "--config", str(gate_config(
        tmp_path, tmp_path, "after")), "--set", "strategy.params.gate_dir=")
    assert done.code == 0, done.err
    assert dict(rows(loaded, "select run_id, status from runs where run_id in "
                             "('ghost', 'alive')")) == {"ghost": "abandoned", "alive": "running"}

