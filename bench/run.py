"""``make bench``: the engine against a plain-Python reference loop, in the same run.

One year of 1-minute bars (525,600, generated deterministically), SmaCross(10, 30, 0.01) with
enough cash that no order is refused. Prints bars/s for the reference loop, the engine's bar
loop and the whole ``workbench backtest`` process, the ratios the targets are stated in, and the
backtest process's peak memory. Targets (issue 2): engine loop >= 0.5x the reference loop;
end-to-end process time <= 5x the reference loop's time; peak memory < 1.5 GB.

Timings are the best of ``--repeat`` runs: these machines are shared and noisy. Nothing here is
a test assertion; the numbers are printed and saved to bench/out/results.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.reference import sma_cross  # noqa: E402
from workbench.book import Book  # noqa: E402
from workbench.brokers.fills import CostModel  # noqa: E402
from workbench.brokers.sim import SimBroker  # noqa: E402
from workbench.engine.backtest import simulate  # noqa: E402
from workbench.engine.journal import MemoryJournal  # noqa: E402
from workbench.engine.step import Step  # noqa: E402
from workbench.feeds.history import LoopData, merge  # noqa: E402
from workbench.feeds.qc import BarSeries  # noqa: E402
from workbench.feeds.synthetic import bars, write_csv  # noqa: E402
from workbench.strategies.sma_cross import SmaCross  # noqa: E402

YEAR_BARS = 525_600
START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
FAST, SLOW, QTY, CASH, FEE_BPS, SLIP_BPS = 10, 30, 0.01, 1e9, 10.0, 5.0
OUT = ROOT / "bench" / "out"


def year_series(n: int) -> BarSeries:
    cols = np.array(list(bars(START_MS, n, seed=11)), dtype=np.float64).T
    return BarSeries("BTCUSDT", 60_000, cols[0].astype(np.int64), cols[1], cols[2], cols[3],
                     cols[4], cols[5])


def best(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def engine_loop(data: LoopData) -> tuple[int, float]:
    """The engine's loop: a fresh step, every bar through it, the equity marked per bar."""
    strategy = SmaCross(fast=FAST, slow=SLOW, qty=QTY)
    step = Step(strategy, SimBroker(CostModel(FEE_BPS, 0.0, SLIP_BPS)), Book(CASH),
                MemoryJournal(), run_id="bench", timeframe_ms=60_000)
    rows = simulate(step, data, start=data.ts[0])
    return len(step.journal.fills), rows.equity[-1]  # type: ignore[attr-defined]


def end_to_end(n: int, workdir: Path, repeat: int) -> tuple[float, int]:
    """Time `workbench backtest` as a whole process; return (best seconds, peak RSS bytes)."""
    csv_path = workdir / "year.csv"
    write_csv(csv_path, START_MS, n, seed=11)
    wh = workdir / "bench.duckdb"
    env = {**os.environ, "WB_WAREHOUSE": str(wh)}
    subprocess.run([sys.executable, "-m", "workbench", "ingest", str(csv_path), "--symbol",
                    "BTCUSDT"], check=True, env=env, stdout=subprocess.DEVNULL)
    config = workdir / "bench.yaml"
    config.write_text(
        "run: {name: bench}\n"
        "data: {symbols: [BTCUSDT], timeframe: 1m, gaps: fail}\n"
        "strategy: {class: 'workbench.strategies.sma_cross:SmaCross', "
        f"params: {{fast: {FAST}, slow: {SLOW}, qty: {QTY}}}}}\n"
        f"portfolio: {{initial_cash: {CASH}, quote: USDT}}\n"
        f"costs: {{fee_bps: {FEE_BPS}, slippage_bps: {SLIP_BPS}}}\n")
    times, peak = [], 0
    for i in range(repeat):
        errors = workdir / f"run{i}.stderr"
        with errors.open("wb") as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "workbench", "backtest", "--config",
                                     str(config), "--out", str(workdir / f"run{i}")], env=env,
                                    stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak memory
            times.append(time.perf_counter() - t0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"backtest failed:\n{errors.read_text()}")
        peak = max(peak, usage.ru_maxrss * 1024)
    return min(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=YEAR_BARS)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.bars
    print(f"generating {n:,} synthetic 1m bars ...", flush=True)
    series = year_series(n)
    closes = series.close.tolist()  # each side gets its input as plain lists, outside the timing
    data = merge([series])
    ref_s, ref = best(lambda: sma_cross(closes, FAST, SLOW, QTY, CASH, FEE_BPS, SLIP_BPS),
                      args.repeat)
    eng_s, eng = best(lambda: engine_loop(data), args.repeat)
    ref_fills, ref_equity = ref[0], ref[1]  # type: ignore[index]
    eng_fills, eng_equity = eng  # type: ignore[misc]
    same = bool(ref_fills == eng_fills and abs(ref_equity - eng_equity) <= 1e-6 * abs(ref_equity))
    with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp:
        e2e_s, peak = end_to_end(n, Path(tmp), args.repeat)
    results = {
        "bars": n,
        "reference_loop_bars_per_s": n / ref_s,
        "engine_loop_bars_per_s": n / eng_s,
        "engine_vs_reference": (n / eng_s) / (n / ref_s),
        "end_to_end_s": e2e_s,
        "end_to_end_bars_per_s": n / e2e_s,
        "end_to_end_vs_reference_time": e2e_s / ref_s,
        "peak_rss_mb": peak / 2**20,
        "same_fills_and_equity": same,
        "fills": eng_fills,
    }
    print(f"\n{'':28}{'bars/s':>12}{'seconds':>10}")
    print(f"{'reference loop':28}{n / ref_s:12,.0f}{ref_s:10.3f}")
    print(f"{'engine loop':28}{n / eng_s:12,.0f}{eng_s:10.3f}")
    print(f"{'workbench backtest (e2e)':28}{n / e2e_s:12,.0f}{e2e_s:10.3f}")
    print(f"\nengine loop / reference loop (bars/s): {results['engine_vs_reference']:.2f}"
          "   target >= 0.50")
    print(f"end-to-end time / reference loop time: {results['end_to_end_vs_reference_time']:.2f}"
          "   target <= 5.00")
    print(f"backtest process peak memory:          {results['peak_rss_mb']:.0f} MB"
          "   target < 1536 MB")
    print(f"engine and reference agree (fills {eng_fills}, final equity): {same}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
