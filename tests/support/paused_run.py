"""Backtests caught in the middle of their loop, for tests of crashes and of a shared warehouse.

``start_paused`` runs ``workbench backtest`` in a subprocess with the Gate strategy
(``gate_strategy.py``), which stops at bar 500 until ``release``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from cli_process import CliResult, run_subprocess

SUPPORT = Path(__file__).resolve().parents[1] / "support"


def env_for(warehouse: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    env.update(WB_WAREHOUSE=str(warehouse), PYTHONPATH=str(SUPPORT))
    return env


def gate_config(tmp: Path, gate: Path, name: str) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(
        f"run: {{name: {name}}}\n"
        "data: {symbols: [BTCUSDT], timeframe: 1m, gaps: fail}\n"
        "strategy: {class: 'gate_strategy:Gate', params: {gate_dir: '" + str(gate) + "', "
        "pause_at: 500}}\n"
        "portfolio: {initial_cash: 100000}\n")
    return path


def start_paused(tmp: Path, warehouse: Path, name: str
                 ) -> tuple[subprocess.Popen[str], Path, Path]:
    """A backtest process stopped at bar 500 of its loop: (process, gate dir, --out dir)."""
    gate = tmp / f"gate-{name}"
    gate.mkdir()
    out = tmp / f"run-{name}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench", "backtest", "--config",
         str(gate_config(tmp, gate, name)), "--out", str(out)],
        cwd=tmp, env=env_for(warehouse), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (gate / "paused").exists():
        if proc.poll() is not None:
            raise AssertionError(f"the backtest ended early: {proc.communicate()}")
        assert time.monotonic() < deadline, "the backtest never reached its pause"
        time.sleep(0.05)
    return proc, gate, out


def release(proc: subprocess.Popen[str], gate: Path) -> tuple[int, str, str]:
    (gate / "release").write_text("go")
    out, err = proc.communicate(timeout=180)
    return proc.returncode, out, err


def cli(tmp: Path, warehouse: Path, *args: str) -> CliResult:
    """``python -m workbench ARGS`` in its own process, on ``warehouse``, the Gate importable."""
    return run_subprocess(*args, cwd=tmp, env={"WB_WAREHOUSE": str(warehouse),
                                               "PYTHONPATH": str(SUPPORT)})


def ingested(tmp: Path, csv: Path) -> Path:
    """A new warehouse in ``tmp`` holding the bars of ``csv`` as BTCUSDT, ingested by the CLI."""
    warehouse = tmp / "wh.duckdb"
    done = cli(tmp, warehouse, "ingest", str(csv), "--symbol", "BTCUSDT")
    assert done.code == 0, done.err
    return warehouse
