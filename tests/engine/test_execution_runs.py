"""Whole backtests under ``execution`` settings: the default (absent or INSTANT) writes the very
files it always did, a latency and a cap give the same files run after run, and the manifest
records the settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_runs import ingested

import workbench
from workbench import rundir

# limits, expiries, cancels and market stops (tests/e2e/test_determinism.py's config)
CONFIG: dict[str, Any] = {
    "run": {"name": "execution", "seed": 11},
    "data": {"symbols": ["BTCUSDT"], "timeframe": "1m"},
    "strategy": {"class": "workbench.strategies.pullback_limit:PullbackLimit",
                 "params": {"qty": 0.05, "dip_bps": 5, "take_profit_bps": 10, "stop_bps": 20,
                            "expire_bars": 5}},
    "portfolio": {"initial_cash": 10_000, "quote": "USDT"},
    "costs": {"fee_bps": 2, "slippage_bps": 5, "spread_bps": 1, "min_notional": 5},
}
# the synthetic bars trade 0.5-60 units a minute: 0.1 % of that is below the order's 0.05
CAPPED = {"latency": "FAST", "participation_pct": 0.1}


@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from workbench.feeds.synthetic import write_csv

    root = tmp_path_factory.mktemp("execution")
    csv, warehouse = root / "bars.csv", root / "wh.duckdb"
    write_csv(csv, 1_704_067_200_000, 600, seed=7)
    return ingested(warehouse, [csv])


@pytest.fixture(scope="module")
def backtest(bars: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> Callable[..., tuple[dict[str, bytes], dict[str, Any]]]:
    """Run CONFIG with ``execution`` (None: no such section); the result files' bytes and the
    manifest."""
    root = tmp_path_factory.mktemp("runs")
    count = iter(range(1000))

    def run(execution: dict[str, Any] | None, **sections: Any
            ) -> tuple[dict[str, bytes], dict[str, Any]]:
        config = {**CONFIG, **sections}
        if execution is not None:
            config["execution"] = execution
        result = workbench.run_backtest(config, warehouse=bars, out=root / str(next(count)),
                                        env={})
        files = {name: (result.run_dir / name).read_bytes() for name in rundir.FILES}
        return files, result.manifest

    return run


def test_backtest_execution_absent_or_instant_same_files_and_config_hash(
        backtest: Callable[..., tuple[dict[str, bytes], dict[str, Any]]]) -> None:
    absent, plain = backtest(None)
    for explicit in ({"latency": "INSTANT"},
                     {"latency": {"submit_ms": 0, "fill_ms": [0, 0], "cancel_ms": 0},
                      "participation_pct": None, "remainder": "keep"}):
        files, manifest = backtest(explicit)
        assert files == absent
        assert manifest["config_hash"] == plain["config_hash"]
        assert "execution" not in manifest["config"]  # the default leaves the hash as it was
        assert manifest["execution"] == {"latency": "INSTANT", "participation_pct": None,
                                         "remainder": "keep"}
    assert absent["orders.csv"].count(b"\n") > 10  # the run traded


def test_backtest_latency_and_cap_same_seed_same_files_twice(
        backtest: Callable[..., tuple[dict[str, bytes], dict[str, Any]]]) -> None:
    first, manifest = backtest(CAPPED)
    second, _ = backtest(CAPPED)
    instant, _ = backtest(None)
    assert first == second
    assert first["fills.csv"] != instant["fills.csv"]
    filled = [line.split(b",")[0] for line in first["fills.csv"].splitlines()[1:]]
    assert len(set(filled)) < len(filled)  # some order filled in parts
    assert manifest["config"]["execution"] == manifest["execution"] == {
        "latency": "FAST", "participation_pct": 0.1, "remainder": "keep"}


def test_backtest_latency_other_seed_other_jitter_same_bar_prices(
        backtest: Callable[..., tuple[dict[str, bytes], dict[str, Any]]]) -> None:
    # FAST's jitter (50-100 ms) never crosses a bar: the seed changes no price
    a, _ = backtest({"latency": "FAST"})
    b, _ = backtest({"latency": "FAST"}, run={"name": "execution", "seed": 12})
    assert a == b


def test_report_manifest_table_shows_the_execution_settings(
        backtest: Callable[..., tuple[dict[str, bytes], dict[str, Any]]], bars: Path) -> None:
    import workbench.report as wr

    for execution, shown in (
            (CAPPED, "latency FAST, at most 0.1% of a bar's volume, the rest: keep"),
            ({"latency": {"submit_ms": 1, "fill_ms": [2, 3], "cancel_ms": 4}},
             "latency submit 1 ms, fill [2, 3] ms, cancel 4 ms, no participation cap")):
        _, manifest = backtest(execution)
        report = wr.load_run(manifest["run_id"], warehouse=bars)
        assert dict(wr.manifest_table(report).rows)["execution"] == shown
