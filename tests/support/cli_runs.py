"""Helpers for tests that run the CLI and read what it wrote: the sample warehouse, a run's
``run_id=... dir=...`` line, a query of the warehouse."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from workbench.warehouse.connect import open_rw, reading
from workbench.warehouse.ingest import ingest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CSV = ROOT / "sample_data" / "btcusdt_1m_2024-01_synthetic.csv"
LAST_LINE = re.compile(r"^run_id=(\S+) dir=(.+)$")


def ingested(path: Path, files: list[Path], symbol: str = "BTCUSDT") -> Path:
    """``path``: a warehouse holding ``files``' bars of ``symbol`` (ingested)."""
    con = open_rw(path)
    try:
        ingest(con, files, symbol)
    finally:
        con.close()
    return path


def sample_warehouse(path: Path) -> Path:
    """``path``: a warehouse holding the synthetic sample month of BTCUSDT (ingested)."""
    return ingested(path, [SAMPLE_CSV])


def last_line(out: str) -> tuple[str, Path]:
    """The run id and directory of a backtest's last output line."""
    match = LAST_LINE.match(out.rstrip("\n").splitlines()[-1])
    assert match, out
    return match.group(1), Path(match.group(2))


def query(warehouse: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with reading(warehouse) as con:
        return list(con.sql(sql, params=params).fetchall())
