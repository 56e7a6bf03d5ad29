"""The FIFO views on a run without splits (adr/0025's cost line): 200,000 fills of one symbol in
an in-memory warehouse, one DuckDB thread, best of three per query.

    python bench/fifo_views.py [--fills N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workbench.warehouse.connect import open_memory
from workbench.warehouse.io import insert_arrow

T0 = 1_704_067_200_000
QUERIES = ("select count(*), sum(pnl) from rpt.round_trips",
           "select count(*) from acct.positions",
           "select count(*) from acct.fifo_lots")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=200_000)
    n = parser.parse_args().fills
    con = open_memory(threads=1)
    con.execute("insert into runs (run_id, mode, status, started_at, initial_cash, "
                "timeframe_ms, symbols) values ('r', 'backtest', 'completed', now(), 1e9, "
                "60000, ['X'])")
    seq = np.arange(1, n + 1)
    minute = pa.timestamp("ms", tz="UTC")
    insert_arrow(con, "fills", pa.table({
        "fill_seq": seq, "order_seq": seq,
        "client_order_id": pa.array([f"r-{i}" for i in seq.tolist()]),
        "symbol": pa.array(["X"] * n),
        "side": pa.array(["BUY" if i % 2 else "SELL" for i in seq.tolist()]),
        "qty": pa.array(np.full(n, 0.3)), "price": pa.array(100.0 + (seq % 50)),
        "fee": pa.array(np.full(n, 0.01)),
        "ts": pa.array(T0 + seq * 60_000, minute),
        "bar_ts": pa.array(T0 + (seq - 1) * 60_000, minute)}), run_id="r")
    for query in QUERIES:
        best = float("inf")
        for _ in range(3):
            began = time.perf_counter()
            con.execute(query).fetchall()
            best = min(best, time.perf_counter() - began)
        print(f"{best:7.3f} s  {query}")
    con.close()


if __name__ == "__main__":
    main()
