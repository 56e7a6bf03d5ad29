"""The same config and data give byte-identical trades, orders, fills and equity files, across
processes; the files hold no run id, client order id or wall-clock time."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RESULT_FILES = ("trades.csv", "orders.csv", "fills.csv", "equity.csv")

# Limit orders, expiries and cancels as well as market orders: more of the engine is exercised.
CONFIG = """\
run: {name: determinism, seed: 11}
data: {symbols: [BTCUSDT], timeframe: 1m, gaps: fail}
strategy:
  class: "workbench.strategies.pullback_limit:PullbackLimit"
  params: {qty: 0.05, dip_bps: 5, take_profit_bps: 10, stop_bps: 20, expire_bars: 5}
portfolio: {initial_cash: 10000, quote: USDT}
costs: {fee_bps: 2, slippage_bps: 5, spread_bps: 1, min_notional: 5, fill_at: close}
"""


def run_subprocess(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """600 bars ingested: (the directory, the warehouse)."""
    from workbench.feeds.synthetic import write_csv

    root = tmp_path_factory.mktemp("determinism")
    bars, warehouse = root / "bars.csv", root / "wh.duckdb"
    write_csv(bars, 1_704_067_200_000, 600, seed=7)
    ingest = run_subprocess("--warehouse", str(warehouse), "ingest", str(bars), "--symbol",
                            "BTCUSDT", cwd=root)
    assert ingest.returncode == 0, ingest.stderr
    return root, warehouse


def backtest_twice(root: Path, warehouse: Path, config: str, tag: str
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same backtest twice, each in its own process."""
    cfg = root / f"{tag}.yaml"
    cfg.write_text(config, encoding="utf-8")
    runs = []
    for name in ("first", "second"):
        out = root / f"{tag}-{name}"
        proc = run_subprocess("--warehouse", str(warehouse), "backtest", "--config", str(cfg),
                              "--out", str(out), cwd=root)
        assert proc.returncode == 0, proc.stderr
        match = re.fullmatch(r"run_id=(\S+) dir=(.+)", proc.stdout.splitlines()[-1])
        assert match, proc.stdout
        runs.append({"run_id": match.group(1), "dir": out,
                     "manifest": json.loads((out / "run_manifest.json").read_text())})
    return runs[0], runs[1]


@pytest.fixture(scope="module")
def two_runs(warehouse: tuple[Path, Path]) -> tuple[dict[str, Any], dict[str, Any]]:
    return backtest_twice(*warehouse, CONFIG, "plain")


def test_backtest_twice_gives_byte_identical_result_files(
        two_runs: tuple[dict[str, Any], dict[str, Any]]) -> None:
    first, second = two_runs
    for name in RESULT_FILES:
        assert sha256(first["dir"] / name) == sha256(second["dir"] / name), name
    orders = (first["dir"] / "orders.csv").read_text().splitlines()
    assert len(orders) > 2  # the comparison covered a run that traded
    assert len((first["dir"] / "equity.csv").read_text().splitlines()) == 601


def test_backtest_twice_gets_distinct_run_ids_that_appear_in_no_result_file(
        two_runs: tuple[dict[str, Any], dict[str, Any]]) -> None:
    first, second = two_runs
    assert first["run_id"] != second["run_id"]
    for run in (first, second):
        assert run["manifest"]["run_id"] == run["run_id"]
        for name in RESULT_FILES:
            text = (run["dir"] / name).read_text()
            for run_id in (first["run_id"], second["run_id"]):
                assert run_id not in text, (name, run_id)


def test_backtest_result_files_hold_no_wall_clock_time(
        two_runs: tuple[dict[str, Any], dict[str, Any]]) -> None:
    first, _ = two_runs
    today = first["manifest"]["started_at"][:10]
    assert not today.startswith("2024-01-01")  # the data's day; the check below needs another
    for name in RESULT_FILES:
        assert today not in (first["dir"] / name).read_text(), name


def test_backtest_twice_records_same_config_and_data_hash(
        two_runs: tuple[dict[str, Any], dict[str, Any]]) -> None:
    first, second = two_runs
    for key in ("config", "config_hash", "data_hash", "seed", "view_versions", "gap_policy"):
        assert first["manifest"][key] == second["manifest"][key], key
    assert first["manifest"]["started_at"] <= second["manifest"]["started_at"]


def test_backtest_with_latency_and_cap_twice_gives_byte_identical_result_files(
        warehouse: tuple[Path, Path]) -> None:
    config = CONFIG + "execution: {latency: SLOW, participation_pct: 0.5, remainder: keep}\n"
    first, second = backtest_twice(*warehouse, config, "slow")
    for name in RESULT_FILES:
        assert sha256(first["dir"] / name) == sha256(second["dir"] / name), name
    assert first["manifest"]["execution"]["latency"] == "SLOW"
    assert (first["dir"] / "fills.csv").read_text().count("\n") > 2
