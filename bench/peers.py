"""``make bench``, the peer table: each golden strategy on one year of 1-minute bars, in our
engine and in every peer, in one run (issue 10).

Ours is the whole ``workbench backtest`` process, first run on a fresh warehouse holding only
the bars (imports, read, loop, headline, files, warehouse write). Each peer is its run alone
(``parity.harness.run_peer``'s timing: the peer's loop driving our strategy, not the reading or
the folding), in its own process for its peak memory. Ours is the best of ``--repeat`` first
runs (each on a fresh copy), each peer the best of ``--peer-repeat`` (default 1: a year takes
Backtrader over a minute). Trades must be identical (the parity
harness's comparison). Targets on this machine, SmaCross: at least 40x Backtrader and
NautilusTrader, at least 4x backtesting.py, end to end.

    python bench/peers.py [--strategies sma,pullback,rebalance] [--engines ...] [--bars N]

Child mode (one peer, one process): ``python bench/peers.py --peer ENGINE --config F
--warehouse W --out DIR``; prints a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    MB,
    MINUTE_MS,
    OUT,
    START_MS,
    YEAR_BARS,
    fresh_copy,
    measure,
    series,
    workbench,
    write_parquet,
)
from workbench.model import ms_to_iso  # noqa: E402

ENGINES = ("backtesting", "backtrader", "nautilus")
TARGETS = {("sma", "backtrader"): 40.0, ("sma", "nautilus"): 40.0, ("sma", "backtesting"): 4.0}
STRATEGIES = {
    # name: (symbols, strategy class, params, costs)
    "sma": (["BTCUSDT"], "workbench.strategies.sma_cross:SmaCross",
            "{fast: 10, slow: 30, qty: 0.01}", "{fee_bps: 10, slippage_bps: 0}"),
    "pullback": (["BTCUSDT"], "workbench.strategies.pullback_limit:PullbackLimit",
                 "{qty: 0.05, dip_bps: 15, take_profit_bps: 25, stop_bps: 60, expire_bars: 5}",
                 "{fee_bps: 2, slippage_bps: 0}"),
    "rebalance": (["BTCUSDT", "ETHUSDT"], "workbench.strategies.rebalance:Rebalance",
                  "{weights: {BTCUSDT: 0.5, ETHUSDT: 0.4}, every_minutes: 1440}",
                  "{fee_bps: 10, slippage_bps: 0}"),
}


def config_text(name: str, bars: int) -> str:
    symbols, cls, params, costs = STRATEGIES[name]
    end = START_MS + bars * MINUTE_MS
    return (f"run: {{name: bench-{name}}}\n"
            f"data: {{symbols: [{', '.join(symbols)}], timeframe: 1m, gaps: fail, "
            f"start: '{ms_to_iso(START_MS)}', end: '{ms_to_iso(end)}'}}\n"
            f"strategy: {{class: '{cls}', params: {params}}}\n"
            "portfolio: {initial_cash: 1000000, quote: USDT}\n"
            f"costs: {costs}\n")


def child(engine: str, config: Path, warehouse: Path, out: Path) -> None:
    """One peer's run of ``config`` (this process is measured by the parent)."""
    from workbench.config import load_config, parse_when
    from workbench.engine.run import read_bars
    from workbench.feeds.history import merge
    from workbench.parity.harness import run_peer

    cfg = load_config(config, ())
    start, end = parse_when(cfg.data.start, "data.start"), parse_when(cfg.data.end, "data.end")
    data = merge([r.series for r in read_bars(cfg, warehouse, start, end)])
    run = run_peer(engine, cfg, data, f"bench-{engine}", out)
    print(json.dumps({"seconds": run.seconds, "bars": len(data), "version": run.version,
                      "trades": run.metrics.get("trades")}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--bars", type=int, default=YEAR_BARS, help="bars per symbol")
    parser.add_argument("--repeat", type=int, default=3,
                        help="our runs per strategy, each the first on a fresh copy (best kept)")
    parser.add_argument("--peer-repeat", type=int, default=1,
                        help="each peer's runs per strategy (best kept)")
    parser.add_argument("--peer", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warehouse", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        child(args.peer, args.config, args.warehouse, args.out)
        return
    from workbench.parity.harness import first_difference, read_rows

    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="wb-peers-"))
    base = work / "bars.duckdb"
    env = {**os.environ, "WB_WAREHOUSE": str(base), "PYTHONWARNINGS": "ignore"}
    print(f"generating {args.bars:,} synthetic 1m bars of BTCUSDT and ETHUSDT ...", flush=True)
    for symbol, seed in (("BTCUSDT", 11), ("ETHUSDT", 12)):
        path = work / f"{symbol}.parquet"
        write_parquet(series(args.bars, seed=seed, symbol=symbol), path)
        workbench("ingest", str(path), "--symbol", symbol, env=env, stderr=work / "ingest.err")
    rows = []
    print(f"\n{'strategy':10}{'engine':13}{'bars':>10}{'seconds':>9}{'bars/s':>11}"
          f"{'peak MB':>9}{'ours/peer':>11}  trades", flush=True)
    for name in args.strategies.split(","):
        config = work / f"{name}.yaml"
        config.write_text(config_text(name, args.bars))
        fresh = work / f"{name}.duckdb"
        ours_dir = work / f"{name}-workbench"
        took, peak = float("inf"), 0
        for _ in range(max(1, args.repeat)):  # each the first run on a fresh copy of the bars
            fresh_copy(base, fresh)
            shutil.rmtree(ours_dir, ignore_errors=True)
            s, p, _ = workbench("backtest", "--config", str(config), "--out", str(ours_dir),
                                env={**env, "WB_WAREHOUSE": str(fresh)},
                                stderr=work / f"{name}.err")
            took, peak = min(took, s), max(peak, p)
        bars = json.loads((ours_dir / "run_manifest.json").read_text())["bars"]
        ours = {"strategy": name, "engine": "workbench", "bars": bars, "s": took,
                "peak_mb": peak / MB}
        rows.append(ours)
        print(f"{name:10}{'workbench':13}{bars:>10,}{took:>9.2f}{bars / took:>11,.0f}"
              f"{peak / MB:>9.0f}{'':>11}", flush=True)
        for engine in args.engines.split(","):
            out = work / f"{name}-{engine}"
            t0 = time.perf_counter()
            try:
                got, peak = None, 0
                for _ in range(max(1, args.peer_repeat)):
                    shutil.rmtree(out, ignore_errors=True)
                    _, p, text = measure(
                        [sys.executable, str(Path(__file__)), "--peer", engine, "--config",
                         str(config), "--warehouse", str(fresh), "--out", str(out)],
                        env=env, stderr=work / f"{name}-{engine}.err")
                    run = json.loads(text.strip().splitlines()[-1])
                    peak = max(peak, p)
                    if got is None or run["seconds"] < got["seconds"]:
                        got = run
                assert got is not None
            except SystemExit as exc:
                lines = str(exc).strip().splitlines()
                why = next((line.split("cannot run this config as workbench does: ")[-1]
                            for line in reversed(lines)
                            if "cannot run this config as workbench does: " in line), lines[-1])
                print(f"{name:10}{engine:13}  not run: {why.strip()}", flush=True)
                rows.append({"strategy": name, "engine": engine, "error": str(exc)[-500:]})
                continue
            wall = time.perf_counter() - t0
            diff = first_difference(read_rows(ours_dir / "trades.csv"),
                                    read_rows(out / "trades.csv"), engine)
            ratio = (got["bars"] / took) / (got["bars"] / got["seconds"])
            target = TARGETS.get((name, engine))
            verdict = "" if target is None else (
                f"  target >= {target:.0f}x: {'met' if ratio >= target else 'NOT met'}")
            rows.append({"strategy": name, "engine": engine, "bars": got["bars"],
                         "s": got["seconds"], "wall_s": wall, "peak_mb": peak / MB,
                         "ours_over_peer": ratio, "trades_identical": diff is None,
                         "first_difference": diff, "version": got["version"]})
            print(f"{name:10}{engine:13}{got['bars']:>10,}{got['seconds']:>9.2f}"
                  f"{got['bars'] / got['seconds']:>11,.0f}{peak / MB:>9.0f}{ratio:>10.1f}x  "
                  f"{'identical' if diff is None else 'DIFFER'}{verdict}", flush=True)
            if diff:
                print("    " + diff.replace("\n", "\n    "), flush=True)
        fresh.unlink()
    (OUT / "peers.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\nsaved to {OUT / 'peers.json'}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
