"""``make bench``: a 100-point sweep over a month of 1-minute bars, serial against 2 workers.

Data: one month (44,640 bars) of synthetic BTCUSDT 1-minute bars (deterministic), ingested
into a fresh warehouse. Grid: SmaCross ``fast`` x ``slow``, 10 x 10 = 100 points, each an
ordinary run written by the sweep's driver (adr/0021).

* serial: ``workbench.sweep`` on one worker thread in this process (``processes=False``):
  the same tasks, driver and writes, one point after another;
* 2 workers: ``workbench.sweep`` on a ``LocalCluster`` of 2 worker processes, one thread each
  (the default of ``workbench sweep``), started before the clock (its start-up is printed
  apart); each worker's peak memory is its own high-water mark (``VmHWM``), read on the worker
  after the sweep, beside its mark when idle before it.

Target (issue 12): under 300 MB per worker (NautilusTrader users report ~17 GB per optimisation
worker). Timings are the best of ``--repeat`` runs on a fresh copy of the warehouse; these
machines are shared and noisy. Nothing here is a test assertion: the numbers are printed and
saved to bench/out/sweep.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Nothing heavy at the top: each spawned worker imports this module (as __mp_main__), and
# what it imports would count in the worker's memory.

START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MINUTE_MS = 60_000
MB = 2**20
MONTH_BARS = 31 * 1440
FASTS = [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
SLOWS = [60, 80, 100, 120, 140, 160, 180, 200, 220, 240]
WORKERS = 2
TARGET_MB = 300


def config() -> dict[str, Any]:
    from workbench.model import ms_to_iso

    return {
        "run": {"name": "bench-sweep"},
        "data": {"symbols": ["BTCUSDT"], "timeframe": "1m", "gaps": "fail",
                 "start": ms_to_iso(START_MS),
                 "end": ms_to_iso(START_MS + MONTH_BARS * MINUTE_MS)},
        "strategy": {"class": "workbench.strategies.sma_cross:SmaCross",
                     "params": {"fast": 10, "slow": 60, "qty": 0.01}},
        "portfolio": {"initial_cash": 1e6, "quote": "USDT"},
        "costs": {"fee_bps": 10, "slippage_bps": 5},
    }


GRID = {"strategy.params.fast": FASTS, "strategy.params.slow": SLOWS}


def peak_rss() -> dict[str, int]:
    """This process's high-water mark and current resident set, bytes (runs on a worker)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) * 1024
    return out


def serial(warehouse: Path) -> float:
    from workbench import sweep

    t0 = time.perf_counter()
    result = sweep(config(), GRID, warehouse=warehouse, workers=1, processes=False, env={},
                   progress=False, announce=lambda line: None)
    took = time.perf_counter() - t0
    _check(result)
    return took


def parallel(warehouse: Path) -> tuple[float, float, dict[str, dict[str, int]],
                                       dict[str, dict[str, int]]]:
    """(cluster start-up s, sweep s, idle and after-sweep memory of each worker)."""
    from distributed import Client, LocalCluster

    from workbench import sweep

    t0 = time.perf_counter()
    with LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                      host="127.0.0.1", protocol="tcp://", dashboard_address="127.0.0.1:0",
                      silence_logs=40) as cluster:
        up = time.perf_counter() - t0
        # one client at a time: the sweep's own must not share this process's loop with another
        with Client(cluster) as client:
            idle = client.run(peak_rss)
        t1 = time.perf_counter()
        result = sweep(config(), GRID, warehouse=warehouse, scheduler=cluster.scheduler_address,
                       env={}, progress=False, announce=lambda line: None)
        took = time.perf_counter() - t1
        with Client(cluster) as client:
            after = client.run(peak_rss)
    _check(result)
    return up, took, idle, after


def _check(result: Any) -> None:
    if result.completed != len(FASTS) * len(SLOWS):
        failed = [p for p in result.points if p.status != "completed"]
        raise SystemExit(f"{len(failed)} points failed, the first: {failed[0].error}")


def main() -> None:
    from bench.run import OUT, fresh_copy, series, workbench, write_parquet

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    points = len(FASTS) * len(SLOWS)
    with tempfile.TemporaryDirectory(prefix="wb-bench-sweep-") as tmp:
        work = Path(tmp)
        base = work / "bars.duckdb"
        print(f"generating {MONTH_BARS:,} bars of BTCUSDT ...", flush=True)
        write_parquet(series(MONTH_BARS), work / "btc.parquet")
        workbench("ingest", str(work / "btc.parquet"), "--symbol", "BTCUSDT",
                  env={**os.environ, "WB_WAREHOUSE": str(base)}, stderr=work / "ingest.err")
        serial_s = float("inf")
        par: tuple[Any, ...] | None = None
        for _ in range(args.repeat):
            db = work / "serial.duckdb"
            fresh_copy(base, db)
            serial_s = min(serial_s, serial(db))
            db.unlink()
            db = work / "parallel.duckdb"
            fresh_copy(base, db)
            run = parallel(db)
            db.unlink()
            if par is None or run[1] < par[1]:
                par = run
    assert par is not None
    up, par_s, idle, after = par
    load = os.getloadavg()
    print(f"\n{points} points x {MONTH_BARS:,} bars (SmaCross fast x slow), load average "
          f"{load[0]:.1f} / {load[2]:.1f} (1 / 15 min) on {os.cpu_count()} cores:")
    print(f"  serial (1 worker thread)   {serial_s:7.2f} s  {serial_s / points:6.3f} s/point")
    print(f"  {WORKERS} local workers          {par_s:7.2f} s  {par_s / points:6.3f} s/point"
          f"   (+ {up:.2f} s cluster start-up)")
    print(f"  speed-up serial / {WORKERS} workers: {serial_s / par_s:.2f}   "
          f"(ideal {WORKERS:.2f} on {os.cpu_count()} cores; the driver shares them)")
    for address in sorted(after):
        print(f"  worker {address}: peak {after[address]['VmHWM'] / MB:6.0f} MB "
              f"(idle {idle[address]['VmHWM'] / MB:.0f} MB, now {after[address]['VmRSS'] / MB:.0f}"
              f" MB)   target < {TARGET_MB} MB")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "sweep.json").write_text(json.dumps({
        "points": points, "bars": MONTH_BARS, "serial_s": serial_s, "workers": WORKERS,
        "parallel_s": par_s, "cluster_start_s": up, "speedup": serial_s / par_s,
        "worker_peak_mb": {a: m["VmHWM"] / MB for a, m in after.items()},
        "worker_idle_peak_mb": {a: m["VmHWM"] / MB for a, m in idle.items()},
        "load_average": load,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
