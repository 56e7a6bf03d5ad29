"""Two synthetic symbols in one warehouse: BTCUSDT (seed 7) and ETHUSDT (seed 11), with a gap
cut out of ETHUSDT, as the multi-symbol tests need them."""

from __future__ import annotations

from pathlib import Path

from workbench.feeds.synthetic import write_csv
from workbench.warehouse.connect import open_rw
from workbench.warehouse.ingest import ingest

JAN_2024_MS = 1_704_067_200_000


def ingest_btc_eth(db: Path, folder: Path, *, btc_bars: int, eth_bars: int,
                   eth_start_ms: int = JAN_2024_MS, eth_price: float = 2_300.0,
                   eth_gap: range = range(0)) -> None:
    """Write both series as CSVs in ``folder`` and ingest them into ``db`` (ETHUSDT with gaps
    kept: its data rows ``eth_gap``, counted from 0, are left out)."""
    btc, eth = folder / "btcusdt.csv", folder / "ethusdt.csv"
    write_csv(btc, JAN_2024_MS, btc_bars, seed=7, price=42_000.0)
    write_csv(eth, eth_start_ms, eth_bars, seed=11, price=eth_price)
    lines = eth.read_text(encoding="utf-8").splitlines(keepends=True)
    eth.write_text("".join(line for row, line in enumerate(lines, start=-1)
                           if row not in eth_gap), encoding="utf-8")
    con = open_rw(db)
    try:
        ingest(con, [btc], "BTCUSDT")
        ingest(con, [eth], "ETHUSDT", gaps="none")
    finally:
        con.close()
