"""`pytest --nbval-lax notebooks/`: the notebooks run against a small warehouse built first.

nbval starts each notebook's kernel before any fixture runs, so the warehouse is built when the
session starts and reaches the kernels through the environment (WB_WAREHOUSE, WB_RUNS_DIR).
Papermill outputs are written elsewhere; only the committed notebooks are collected.

The warehouse holds a short paper run first (live_monitor.ipynb's: recorded on simulated time
against the fake exchange, tests/support/paper_recording.py), then the sample bars, a fidelity
comparison of the demo config (fidelity.ipynb; its twelve runs come before the others), a 2x2
sweep of the demo config on an in-process cluster (sweep.ipynb; four runs), a walk-forward
analysis of it over two weeks (walkforward.ipynb; three windows, nine runs), two
backtests, which are therefore the latest completed runs report.ipynb and compare.ipynb pick,
and last a parity comparison with backtesting.py (parity.ipynb; its own backtest of the demo
config is then the latest run, which compare.ipynb pairs with the pullback run).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_made: list[Path] = []


def build_warehouse(folder: Path) -> Path:
    """A 200-bar paper run with its backtest twin, a bar gap and its alert; then sample bars, a
    fidelity comparison, a 2x2 sweep and a walk-forward analysis of the demo config, and two
    completed backtests (one with limit orders and risk blocks), then a parity comparison."""
    from workbench.engine.run import run_backtest
    from workbench.warehouse.connect import open_rw
    from workbench.warehouse.ingest import ingest

    db = folder / "notebooks.duckdb"
    support = str(ROOT / "tests" / "support")
    if support not in sys.path:
        sys.path.insert(0, support)
    from paper_recording import record_paper_run

    record_paper_run(folder / "paper", db, runs_dir=folder / "runs")
    con = open_rw(db)
    try:
        ingest(con, [ROOT / "sample_data" / "btcusdt_1m_2024-01_synthetic.csv"], "BTCUSDT")
    finally:
        con.close()
    demo = ROOT / "configs" / "sma_demo.yaml"
    from workbench.fidelity import run_fidelity

    run_fidelity(demo, warehouse=db, env={}, runs_dir=folder / "runs",  # fidelity.ipynb's,
                 overrides=["data.end=2024-01-08"], progress=lambda line: None)  # on a week
    from workbench.sweeps import sweep

    sweep(demo, {"strategy.params.fast": [30, 60], "strategy.params.slow": [120, 240]},
          warehouse=db, env={}, processes=False, workers=1, progress=False,  # sweep.ipynb's
          announce=lambda line: None)
    from workbench.walkforward import walkforward

    walkforward(demo, {"strategy.params.fast": [30, 60]}, train="5d", test="3d",  # its
                overrides=["data.end=2024-01-15"], warehouse=db, env={}, processes=False,
                workers=1, progress=False, runs_dir=folder / "runs",  # three windows, for
                announce=lambda line: None)  # walkforward.ipynb
    run_backtest(demo, warehouse=db, out=folder / "runs" / "sma", env={})
    run_backtest(ROOT / "configs" / "pullback_demo.yaml", warehouse=db,
                 overrides=["risk.max_order_notional=2200"], out=folder / "runs" / "pullback",
                 env={})
    from workbench.parity.harness import run_parity

    run_parity("backtesting", demo, warehouse=db, out=folder / "runs" / "parity", env_prefix="WB_")
    return db


def pytest_sessionstart(session: pytest.Session) -> None:
    if not any(str(a).rstrip("/").endswith("notebooks") or str(a).endswith(".ipynb")
               for a in session.config.args):
        return
    folder = Path(tempfile.mkdtemp(prefix="wb-nbval-"))
    _made.append(folder)
    os.environ["WB_WAREHOUSE"] = str(build_warehouse(folder))
    os.environ["WB_RUNS_DIR"] = str(folder / "runs")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for folder in _made:
        shutil.rmtree(folder, ignore_errors=True)
