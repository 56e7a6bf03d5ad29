"""``make bench``: the engine against a plain-Python reference loop, in the same run, and the
whole ``workbench backtest`` process at several sizes, first run on a fresh warehouse and warm.

Data: synthetic 1-minute bars (deterministic), SmaCross(10, 30, 0.01) with enough cash that no
order is refused (about 10k round trips a year). Cases, each a separate backtest process:

* ``1y``: one symbol, one year (525,600 bars), ``2y`` and ``5y`` (2.6 M bars);
* ``10x1y``: ten symbols of one year (5.3 M bars).

"first" is the first backtest on a fresh warehouse holding only the ingested bars (no runs, no
views yet: the case that once took 15 GB); "warm" is the next one on the same file. Each line
has the time, bars/s, peak memory of the process and the warehouse hold time from the run's
manifest. Targets (issues 2 and 7): engine loop >= 0.5x the reference loop; one year end to end
within 5x of the reference loop's time and under 1 GB; 5 years under 1.5 GB; 10 symbols x 1 year
under 2.5 GB; time linear in bars; the warehouse held under 1 s for one year.

Timings are the best of ``--repeat`` runs: these machines are shared and noisy. Nothing here is
a test assertion; the numbers are printed and saved to bench/out/results.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.reference import sma_cross  # noqa: E402
from workbench.config import Config  # noqa: E402
from workbench.engine import kernel  # noqa: E402
from workbench.feeds.history import LoopData, merge  # noqa: E402
from workbench.feeds.qc import BarSeries  # noqa: E402
from workbench.feeds.synthetic import bars  # noqa: E402
from workbench.model import Mode, ms_to_iso  # noqa: E402
from workbench.strategies.sma_cross import SmaCross  # noqa: E402

YEAR_BARS = 525_600
START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MINUTE_MS = 60_000
FAST, SLOW, QTY, CASH, FEE_BPS, SLIP_BPS = 10, 30, 0.01, 1e9, 10.0, 5.0
OUT = ROOT / "bench" / "out"
MB = 2**20
LOOP_CONFIG = Config.model_validate({
    "data": {"timeframe": "1m"}, "portfolio": {"initial_cash": CASH},
    "costs": {"fee_bps": FEE_BPS, "slippage_bps": SLIP_BPS, "spread_bps": 0.0,
              "min_notional": 0.0, "fill_at": "close"},
    "risk": {"modes": {"backtest": False}}})


def series(n: int, seed: int = 11, symbol: str = "BTCUSDT") -> BarSeries:
    cols = np.array(list(bars(START_MS, n, seed=seed)), dtype=np.float64).T
    return BarSeries(symbol, MINUTE_MS, cols[0].astype(np.int64), cols[1], cols[2], cols[3],
                     cols[4], cols[5])


def write_parquet(s: BarSeries, path: Path) -> None:
    pq.write_table(pa.table({
        "ts": pa.array(s.ts, pa.int64()), "open": s.open, "high": s.high, "low": s.low,
        "close": s.close, "volume": s.volume}), path)


def best(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def engine_loop(data: LoopData) -> tuple[int, float]:
    """The engine's loop as a backtest wires it (``kernel.build``: a fresh step, SimBroker,
    MemoryJournal, the garbage collector paused), every bar through it, the equity marked per
    bar. No risk engine, like the reference loop."""
    k = kernel.build(LOOP_CONFIG, Mode.BACKTEST, strategy=SmaCross(fast=FAST, slow=SLOW, qty=QTY),
                     run_id="bench")
    rows = k.run(data)
    return len(k.journal.contents().fills), rows.equity[-1]


def workbench(*args: str, env: dict[str, str], stderr: Path) -> tuple[float, int, str]:
    """Run ``workbench ARGS`` as a process: (seconds, peak RSS bytes, stdout)."""
    return measure([sys.executable, "-m", "workbench", *args], env=env, stderr=stderr)


def measure(argv: list[str], *, env: dict[str, str], stderr: Path) -> tuple[float, int, str]:
    """Run ``argv`` as a process: (seconds, peak RSS bytes, stdout).

    The peak is the process's own high-water mark (``VmHWM``), read until it exits: the
    ``ru_maxrss`` of ``wait4`` also counts this (large) parent's memory, which a forked child
    holds until it runs its program."""
    with stderr.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=err)
        peak = [0]
        watcher = threading.Thread(target=_watch_peak, args=(proc, peak), daemon=True)
        watcher.start()
        out = proc.stdout.read().decode() if proc.stdout else ""  # type: ignore[union-attr]
        proc.wait()
        took = time.perf_counter() - t0
        watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{stderr.read_text()}")
    return took, peak[0], out


def _watch_peak(proc: subprocess.Popen[bytes], peak: list[int]) -> None:
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak[0] = max(peak[0], int(line.split()[1]) * 1024)
        except (OSError, ValueError):  # gone meanwhile
            return
        time.sleep(0.01)


def fresh_copy(src: Path, dst: Path) -> None:
    """A fresh warehouse: a copy of the bars-only file, on disk before the run starts (else the
    run's first commit would wait for the whole copy to be written back: a bench artifact, not a
    cost a user pays, whose ingest committed long before)."""
    shutil.copy(src, dst)
    fd = os.open(dst, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backtest(case: str, symbols: list[str], years: int, warehouse: Path, work: Path,
             run: str) -> dict[str, float]:
    config = work / f"{case}.yaml"
    end_ms = START_MS + years * YEAR_BARS * MINUTE_MS
    config.write_text(
        f"run: {{name: bench-{case}}}\n"
        f"data: {{symbols: [{', '.join(symbols)}], timeframe: 1m, gaps: fail, "
        f"start: '{ms_to_iso(START_MS)}', end: '{ms_to_iso(end_ms)}'}}\n"
        "strategy: {class: 'workbench.strategies.sma_cross:SmaCross', "
        f"params: {{fast: {FAST}, slow: {SLOW}, qty: {QTY}}}}}\n"
        f"portfolio: {{initial_cash: {CASH}, quote: USDT}}\n"
        f"costs: {{fee_bps: {FEE_BPS}, slippage_bps: {SLIP_BPS}}}\n")
    out_dir = work / f"{case}-{run}"
    env = {**os.environ, "WB_WAREHOUSE": str(warehouse)}
    took, peak, _ = workbench("backtest", "--config", str(config), "--out", str(out_dir),
                              env=env, stderr=work / f"{case}-{run}.stderr")
    manifest = json.loads((out_dir / "run_manifest.json").read_text())
    shutil.rmtree(out_dir)
    return {"s": took, "peak_mb": peak / MB, "bars": manifest["bars"],
            "hold_s": manifest["warehouse_hold_s"], "trades": manifest["metrics"]["trades"],
            "stages_s": manifest["timings_s"]}


CASES = {"1y": (["BTCUSDT"], 1), "2y": (["BTCUSDT"], 2), "5y": (["BTCUSDT"], 5),
         "10x1y": ([f"SYM{i}USDT" for i in range(10)], 1)}


def scaling(work: Path, repeat: int, cases: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Ingest the bars once, then per case: copy the bars-only warehouse (fresh), run twice."""
    base = work / "bars.duckdb"
    env = {**os.environ, "WB_WAREHOUSE": str(base)}
    years = max((CASES[c][1] for c in cases if len(CASES[c][0]) == 1), default=0)
    files: list[tuple[Path, str]] = []
    if years:
        print(f"generating {years * YEAR_BARS:,} bars of BTCUSDT ...", flush=True)
        write_parquet(series(years * YEAR_BARS), work / "btc.parquet")
        files.append((work / "btc.parquet", "BTCUSDT"))
    if "10x1y" in cases:
        print(f"generating 10 x {YEAR_BARS:,} bars ...", flush=True)
        for i, symbol in enumerate(CASES["10x1y"][0]):
            path = work / f"{symbol}.parquet"
            write_parquet(series(YEAR_BARS, seed=100 + i, symbol=symbol), path)
            files.append((path, symbol))
    for path, symbol in files:
        workbench("ingest", str(path), "--symbol", symbol, env=env, stderr=work / "ingest.err")
        path.unlink()
    results: dict[str, dict[str, dict[str, float]]] = {}
    for case in cases:
        symbols, n_years = CASES[case]
        runs: dict[str, dict[str, float]] = {}
        for attempt in range(repeat):
            fresh = work / f"{case}.duckdb"
            fresh_copy(base, fresh)
            first = backtest(case, symbols, n_years, fresh, work, f"first{attempt}")
            warm = backtest(case, symbols, n_years, fresh, work, f"warm{attempt}")
            fresh.unlink()
            for key, value in (("first", first), ("warm", warm)):
                if key not in runs or value["s"] < runs[key]["s"]:
                    runs[key] = {**value, "peak_mb": max(value["peak_mb"], runs.get(
                        key, {}).get("peak_mb", 0.0))}
        results[case] = runs
        for key in ("first", "warm"):
            r = runs[key]
            print(f"  {case:6} {key:5} {r['bars']:>10,} bars {r['s']:7.2f} s "
                  f"{r['bars'] / r['s']:>10,.0f} bars/s {r['peak_mb']:7.0f} MB peak "
                  f"hold {r['hold_s']:.2f} s", flush=True)
            print("         stages: " + ", ".join(
                f"{k} {v:.2f}" for k, v in r["stages_s"].items() if v >= 0.01), flush=True)
    return results


def loops(n: int, repeat: int) -> tuple[float, float, int, bool]:
    """Best seconds of the reference loop and of the engine loop over ``n`` bars, the fills,
    and whether both agree."""
    print(f"generating {n:,} synthetic 1m bars for the loops ...", flush=True)
    year = series(n)
    closes = year.close.tolist()  # each side gets its input as plain lists, outside the timing
    data = merge([year])
    ref_s, ref = best(lambda: sma_cross(closes, FAST, SLOW, QTY, CASH, FEE_BPS, SLIP_BPS),
                      repeat)
    eng_s, eng = best(lambda: engine_loop(data), repeat)
    ref_fills, ref_equity = ref[0], ref[1]  # type: ignore[index]
    eng_fills, eng_equity = eng  # type: ignore[misc]
    same = bool(ref_fills == eng_fills and abs(ref_equity - eng_equity) <= 1e-6 * abs(ref_equity))
    return ref_s, eng_s, eng_fills, same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated, from {', '.join(CASES)}")
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    n = YEAR_BARS
    ref_s, eng_s, eng_fills, same = loops(n, args.repeat)
    print(f"\n{'':28}{'bars/s':>12}{'seconds':>10}")
    print(f"{'reference loop':28}{n / ref_s:12,.0f}{ref_s:10.3f}")
    print(f"{'engine loop':28}{n / eng_s:12,.0f}{eng_s:10.3f}")
    print(f"engine loop / reference loop (bars/s): {(n / eng_s) / (n / ref_s):.2f}"
          "   target >= 0.50")
    print(f"engine and reference agree (fills {eng_fills}, final equity): {same}\n")
    print("workbench backtest, whole process (first: fresh warehouse; warm: the next run):")
    with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp:
        cases_out = scaling(Path(tmp), args.repeat, cases)
    results: dict[str, object] = {
        "bars": n,
        "reference_loop_bars_per_s": n / ref_s,
        "engine_loop_bars_per_s": n / eng_s,
        "engine_vs_reference": (n / eng_s) / (n / ref_s),
        "same_fills_and_equity": same,
        "fills": eng_fills,
        "cases": cases_out,
    }
    print()
    targets = {"1y": 1024, "5y": 1536, "10x1y": 2560}
    if "1y" in cases_out:
        first = cases_out["1y"]["first"]
        ratio = first["s"] / ref_s
        results["end_to_end_vs_reference_time"] = ratio
        print(f"1y first run / reference loop time: {ratio:.2f}   target <= 5.00")
        print(f"1y warehouse hold:                   {first['hold_s']:.2f} s   target < 1 s")
    for case, limit in targets.items():
        if case in cases_out:
            peak = max(r["peak_mb"] for r in cases_out[case].values())
            print(f"{case:6} peak memory (first and warm):  {peak:6.0f} MB   target < {limit} MB")
    per_m = {c: r["first"]["s"] / r["first"]["bars"] * 1e6 for c, r in cases_out.items()}
    print("seconds per million bars (first run): "
          + ", ".join(f"{c} {v:.2f}" for c, v in per_m.items()) + "   (linear: about equal)")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
