"""A spread from a bars column: ``costs.spread_column: spread_bps`` makes each market fill pay
half its bar's stored spread; a bar without one pays ``costs.spread_bps``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cli_runs import ingested
from scripted import Scripted

import workbench
from workbench.warehouse.connect import open_rw, reading
from workbench.warehouse.ingest import ingest

T0 = 1_704_067_200_000
MIN = 60_000


@pytest.fixture
def spread_bars(warehouse: Path, tmp_path: Path) -> Path:
    """Ten flat BTCUSDT bars at 100; bar 2 quotes a 40 bps spread, bar 5 none, the rest 20."""
    spreads = ["20"] * 10
    spreads[2], spreads[5] = "40", ""
    path = tmp_path / "spread.csv"
    path.write_text("ts,open,high,low,close,volume,spread_bps\n" + "".join(
        f"{T0 + i * MIN},100,100,100,100,10,{s}\n" for i, s in enumerate(spreads)))
    return ingested(warehouse, [path])


def spread_costs(warehouse: Path, tmp_path: Path, **costs: Any) -> list[tuple[Any, ...]]:
    config = {"costs": {"fee_bps": 0, "slippage_bps": 0, "spread_bps": 10, **costs},
              "strategy": {"params": {"plan": [[2, "BUY", 1.0, None], [5, "SELL", 1.0, None],
                                               [7, "BUY", 1.0, None]]}}}
    result = workbench.run_backtest(config, strategy=Scripted, warehouse=warehouse,
                                    out=tmp_path / "r", env={})
    with reading(warehouse) as con:
        return con.execute(
            "select f.side, f.price, c.amount from fills as f join costs as c on "
            "c.run_id = f.run_id and c.fill_seq = f.fill_seq and c.kind = 'spread' "
            "where f.run_id = ? order by f.fill_seq", [result.run_id]).fetchall()


def test_backtest_spread_column_pays_half_each_bars_spread_fixed_where_none(
        spread_bars: Path, tmp_path: Path) -> None:
    rows = spread_costs(spread_bars, tmp_path, spread_column="spread_bps")
    assert rows == [("BUY", pytest.approx(100.2), pytest.approx(0.2)),   # half of 40 bps
                    ("SELL", pytest.approx(99.95), pytest.approx(0.05)),  # none: half of 10
                    ("BUY", pytest.approx(100.1), pytest.approx(0.1))]    # half of 20


def test_backtest_without_spread_column_pays_fixed_spread_everywhere(
        spread_bars: Path, tmp_path: Path) -> None:
    rows = spread_costs(spread_bars, tmp_path)
    assert [r[0] for r in rows] == ["BUY", "SELL", "BUY"]
    assert [r[2] for r in rows] == [pytest.approx(0.05)] * 3


def test_ingest_spread_column_stored_empty_cells_null(spread_bars: Path) -> None:
    with reading(spread_bars) as con:
        stored = con.execute("select spread_bps from bars order by ts").fetchall()
    assert [s for (s,) in stored] == [20.0, 20.0, 40.0, 20.0, 20.0, None, 20.0, 20.0, 20.0,
                                      20.0]


def test_ingest_negative_spread_refused_naming_the_row(warehouse: Path, tmp_path: Path) -> None:
    from workbench.errors import DataError

    path = tmp_path / "bad.csv"
    path.write_text("ts,open,high,low,close,volume,spread_bps\n"
                    f"{T0},100,100,100,100,10,5\n{T0 + MIN},100,100,100,100,10,-3\n")
    con = open_rw(warehouse)
    try:
        with pytest.raises(DataError, match="spread_bps is -3"):
            ingest(con, [path], "BTCUSDT")
        findings = con.execute("select rule, row_number from qc_events").fetchall()
    finally:
        con.close()
    assert ("bad_spread", 2) in findings


def test_ingest_spread_above_100_percent_refused_naming_the_row(
        warehouse: Path, tmp_path: Path) -> None:
    # costs.spread_bps stops at 10000; a bar's half spread past it prices a sell at or below 0
    from workbench.errors import DataError

    path = tmp_path / "bad.csv"
    path.write_text("ts,open,high,low,close,volume,spread_bps\n"
                    f"{T0},100,100,100,100,10,5\n{T0 + MIN},100,100,100,100,10,30000\n")
    con = open_rw(warehouse)
    try:
        with pytest.raises(DataError, match="spread_bps is 30000"):
            ingest(con, [path], "BTCUSDT")
    finally:
        con.close()


def test_backtest_spread_column_on_bars_without_spreads_warns_it_paid_the_fixed_one(
        warehouse: Path, tmp_path: Path) -> None:
    # a file without the column (or a resampled run) has no stored spreads: say so
    path = tmp_path / "plain.csv"
    path.write_text("ts,open,high,low,close,volume\n" + "".join(
        f"{T0 + i * MIN},100,100,100,100,10\n" for i in range(10)))
    con = open_rw(warehouse)
    try:
        ingest(con, [path], "BTCUSDT")
    finally:
        con.close()
    config = {"costs": {"spread_bps": 10, "spread_column": "spread_bps"},
              "strategy": {"params": {"plan": [[2, "BUY", 1.0, None]]}}}
    result = workbench.run_backtest(config, strategy=Scripted, warehouse=warehouse,
                                    out=tmp_path / "r", env={})
    assert result.manifest["bar_spreads"] == {"BTCUSDT": 0}
    assert ("costs.spread_column is set but BTCUSDT has no stored spread in the run's bars: "
            "its fills paid costs.spread_bps (10.0)") in result.warnings
