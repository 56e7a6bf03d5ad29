"""A small warehouse for the report, notebook and CLI tests: three days of synthetic bars and
three runs. Test folders are not packages, so test modules load this file by its path::

    spec = importlib.util.spec_from_file_location("wb_report_warehouse", HELPER)

Runs, oldest first:

* ``multi``: BTCUSDT and ETHUSDT, SMA 10/40, gap policy ``forward`` (ETHUSDT has a 10-minute gap,
  so the run has one QC finding), and risk allows only BTCUSDT (so ETHUSDT orders are blocked).
* ``single``: BTCUSDT from 2024-01-02, SMA 20/80, gap policy ``fail``: the latest completed run.
* ``failed``: a window without bars; status ``failed``, no series. The newest run overall.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SMA_DEMO = ROOT / "configs" / "sma_demo.yaml"
JAN_2024_MS = 1_704_067_200_000
MINUTE_MS = 60_000
BARS = 4_320  # three days of 1-minute bars from 2024-01-01T00:00Z
ETH_GAP_ROWS = (1_000, 1_010)  # CSV data rows dropped from ETHUSDT: 10 missing minutes
MULTI_OVERRIDES = ("run.name=multi", "data.symbols=[BTCUSDT,ETHUSDT]", "data.gaps=forward",
                   "strategy.params.fast=10", "strategy.params.slow=40",
                   "strategy.params.qty=0.01", "risk.allowed_symbols=[BTCUSDT]")
SINGLE_OVERRIDES = ("run.name=single", "strategy.params.fast=20", "strategy.params.slow=80")


@dataclass(frozen=True)
class Warehouse:
    db: Path
    runs_dir: Path
    multi: str
    single: str
    failed: str

    @property
    def completed(self) -> list[str]:
        return [self.multi, self.single]


def build(folder: Path) -> Warehouse:
    """Ingest the bars and run the three backtests into ``folder/wb.duckdb``."""
    from two_symbols import ingest_btc_eth

    from workbench.engine.run import run_backtest
    from workbench.errors import DataError

    folder.mkdir(parents=True, exist_ok=True)
    db, runs_dir = folder / "wb.duckdb", folder / "runs"
    lo, hi = ETH_GAP_ROWS
    ingest_btc_eth(db, folder, btc_bars=BARS, eth_bars=BARS, eth_gap=range(lo, hi))
    multi = run_backtest(SMA_DEMO, overrides=MULTI_OVERRIDES, warehouse=db,
                         out=runs_dir / "multi", env={}).run_id
    single = run_backtest(SMA_DEMO, overrides=SINGLE_OVERRIDES, start="2024-01-02",
                          warehouse=db, out=runs_dir / "single", env={}).run_id
    try:
        run_backtest(SMA_DEMO, overrides=["run.name=failed"], start="2025-01-01", warehouse=db,
                     out=runs_dir / "failed", env={})
    except DataError:
        pass
    else:  # pragma: no cover - the window has no bars
        raise AssertionError("a backtest on a window without bars should fail")
    failed = [r for (r,) in query(db, "select run_id from runs where status = 'failed'")]
    assert len(failed) == 1, failed
    return Warehouse(db, runs_dir, multi, single, failed[0])


def query(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    from workbench.warehouse.connect import reading

    with reading(db) as con:
        return list(con.execute(sql, params or []).fetchall())


def run_cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m workbench ARGS`` as a user runs it, without WB_* from the caller's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)
