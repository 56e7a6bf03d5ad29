"""The headline a run reports (computed by ``rpt.performance`` in the run's private database
over the equity curve the loop holds) agrees with ``rpt.performance`` in the warehouse, which
re-derives the equity curve in SQL from the run's bars and fills."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from workbench.engine.run import run_backtest
from workbench.warehouse.connect import open_ro, open_rw
from workbench.warehouse.ingest import ingest

SMA = {"strategy": {"params": {"fast": 5, "slow": 20, "qty": 0.01}}}


@pytest.fixture
def loaded(warehouse: Path, synth_csv: Any) -> Path:
    con = open_rw(warehouse)
    ingest(con, [synth_csv(count=2_000, name="btc.csv")], "BTCUSDT")
    ingest(con, [synth_csv(count=2_000, seed=9, price=3_000.0, name="eth.csv")], "ETHUSDT")
    con.close()
    return warehouse


@pytest.mark.parametrize("symbols", [["BTCUSDT"], ["BTCUSDT", "ETHUSDT"]], ids=["one", "two"])
def test_headline_agrees_with_the_warehouse_performance_view(
        loaded: Path, tmp_path: Path, symbols: list[str]) -> None:
    config = {**SMA, "data": {"symbols": symbols}}
    result = run_backtest(config, warehouse=loaded, out=tmp_path / "run", env={})
    with open_ro(loaded) as con:
        rel = con.sql("select * from rpt.performance where run_id = ?", params=[result.run_id])
        row = dict(zip(rel.columns, rel.fetchall()[0], strict=True))
    assert result.metrics["trades"] > 10
    for key, value in result.metrics.items():
        stored = row[key]
        if isinstance(value, float):
            assert math.isclose(value, stored, rel_tol=1e-9, abs_tol=1e-12), key
        elif key not in ("first_ts", "last_ts"):
            assert value == stored, key
