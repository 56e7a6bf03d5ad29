"""``workbench sweep`` as a user runs it: Ctrl-C at the terminal (SIGINT to the whole process
group, workers included) stops the sweep cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_runs import sample_warehouse

from workbench.warehouse.connect import reading

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_sweep_ctrl_c_keeps_finished_points_marks_the_rest_exit_130(tmp_path: Path) -> None:
    warehouse = sample_warehouse(tmp_path / "w.duckdb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench", "--warehouse", str(warehouse), "sweep",
         "--config", str(ROOT / "configs" / "sma_demo.yaml"),
         "--grid", "strategy.params.fast=10,15,20,25,30,35,40,45",
         "--grid", "strategy.params.slow=100,150,200,240"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, start_new_session=True)
    assert proc.stderr is not None
    first = proc.stderr.readline()  # the cluster is up and the points are recorded
    assert first.startswith("sweep sweep-"), first
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
    _, err = proc.communicate(timeout=120)

    assert proc.returncode == 130, err
    assert "error: interrupted" in err
    assert "KeyboardInterrupt" not in err  # the workers leave Ctrl-C to the driver
    with reading(warehouse) as con:
        got: list[Any] = con.execute(
            "select status, error_kind, error like 'cancelled:%', run_id is not null "
            "from experiments").fetchall()
        runs = con.execute("select count(*) from runs where status = 'completed'").fetchall()
    assert len(got) == 32
    completed = [r for r in got if r[0] == "completed"]
    assert all(r[3] for r in completed)
    assert [r for r in got if r[0] != "completed"] == [("failed", None, True, False)] * (
        32 - len(completed))
    assert runs == [(len(completed),)]
