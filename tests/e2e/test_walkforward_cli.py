"""``workbench walkforward`` as a user runs it: Ctrl-C at the terminal (SIGINT to the whole
process group, workers included) between windows stops it cleanly, keeping finished windows."""

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


def test_walkforward_ctrl_c_keeps_finished_windows_exit_130(tmp_path: Path) -> None:
    warehouse = sample_warehouse(tmp_path / "w.duckdb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench", "--warehouse", str(warehouse), "walkforward",
         "--config", str(ROOT / "configs" / "sma_demo.yaml"),
         "--grid", "strategy.params.fast=30,60", "--train", "3d", "--test", "1d",
         "--workers", "1"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, start_new_session=True)
    assert proc.stderr is not None
    lines = [proc.stderr.readline() for _ in range(3)]  # the plan, the cluster, window 1
    assert lines[0].startswith("walk-forward wf-") and "28 rolling windows" in lines[0]
    assert lines[2].startswith("window 1/28: "), lines
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
    _, err = proc.communicate(timeout=120)

    assert proc.returncode == 130, err
    assert "error: interrupted" in err
    assert "KeyboardInterrupt" not in err and "Traceback" not in err
    with reading(warehouse) as con:
        got: list[Any] = con.execute("select window_seq, status from walkforward_windows "
                                     "order by window_seq").fetchall()
    assert 1 <= len(got) < 28
    assert got == [(i, "completed") for i in range(1, len(got) + 1)]
