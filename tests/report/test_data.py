"""workbench.report.data: one read-only pass over the warehouse per run.

``load_run`` resolves the run (the latest completed one by default; "no such run" with the
closest ids otherwise; run ids reach SQL only as bound parameters), reads the headline row of
rpt.performance, and downsamples long series for display: at most ``max_points`` equity points
(the worst drawdown of each bucket kept) and ``max_candles`` OHLC candles per symbol, while the
views keep every bar. A failed run still loads: status failed, no series.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import report_warehouse as wh

from workbench.errors import WorkbenchError
from workbench.report import data
from workbench.report.data import latest_run_id, load_run, load_runs, resolve_run_id
from workbench.warehouse.connect import open_rw, reading

SAMPLE_MONTH = wh.ROOT / "sample_data" / "btcusdt_1m_2024-01_synthetic.csv"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return wh.build(tmp_path_factory.mktemp("report-data"))


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A warehouse with the sample month (44,640 bars) and one completed SMA run over it."""
    from workbench.engine.run import run_backtest
    from workbench.warehouse.ingest import ingest

    folder = tmp_path_factory.mktemp("report-month")
    db = folder / "month.duckdb"
    con = open_rw(db)
    try:
        ingest(con, [SAMPLE_MONTH], "BTCUSDT")
    finally:
        con.close()
    run_id = run_backtest(wh.SMA_DEMO, warehouse=db, out=folder / "run", env={}).run_id
    return db, run_id


def _count(db: Path, sql: str, params: list[Any]) -> int:
    return int(wh.query(db, sql, params)[0][0])


# --- resolving the run ---------------------------------------------------------------------------
def test_load_run_without_run_id_reads_latest_completed_run_not_newer_failed_one(built):
    r = load_run(warehouse=built.db)

    assert r.run_id == built.single
    assert r.completed


def test_load_run_of_a_dead_process_running_row_shows_abandoned(tmp_path):
    """Also: no view is deployed yet (a failed first backtest or a live run's row reaches a
    warehouse before any view does); the report loads without a headline, as `runs show`."""
    import subprocess
    import sys

    from workbench.warehouse.stale import HOST

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    db = tmp_path / "ghost.duckdb"
    con = open_rw(db)
    try:
        con.execute("insert into runs (run_id, mode, name, status, started_at, pid, host) "
                    "values ('ghost', 'paper', 'ghost', 'running', now(), ?, ?)",
                    [dead.pid, HOST])
    finally:
        con.close()

    r = load_run("ghost", warehouse=db)

    assert r.run["status"] == "abandoned" and not r.completed


def test_latest_run_id_names_latest_completed_run(built):
    assert latest_run_id(built.db) == built.single


def test_latest_run_id_on_warehouse_without_completed_run_raises_with_fix(tmp_path):
    db = tmp_path / "empty.duckdb"
    open_rw(db).close()

    with pytest.raises(WorkbenchError, match="no completed run") as err:
        latest_run_id(db)
    assert "workbench backtest" in (err.value.fix or "")


def test_resolve_run_id_unknown_id_raises_no_such_run_naming_closest_ids(built):
    near_miss = built.multi[:-1] + ("0" if built.multi[-1] != "0" else "1")

    with reading(built.db) as con, pytest.raises(WorkbenchError) as err:
        resolve_run_id(con, near_miss)
    assert err.value.what == f"no such run: {near_miss}"
    assert built.multi in (err.value.fix or "")


@pytest.mark.parametrize("run_id", ["x' or '1'='1", "%", "'; drop table runs; --"])
def test_load_run_id_with_sql_text_is_just_no_such_run(built, run_id):
    runs_before = _count(built.db, "select count(*) from runs", [])

    with pytest.raises(WorkbenchError) as err:
        load_run(run_id, warehouse=built.db)
    assert err.value.what == f"no such run: {run_id}"
    assert _count(built.db, "select count(*) from runs", []) == runs_before


def test_load_runs_without_ids_reads_latest_completed_runs_newest_first(built):
    reports = load_runs(warehouse=built.db)

    assert [r.run_id for r in reports] == [built.single, built.multi]


def test_load_runs_with_ids_keeps_their_order(built):
    reports = load_runs([built.multi, built.single, built.failed], warehouse=built.db)

    assert [r.run_id for r in reports] == [built.multi, built.single, built.failed]


# --- what a report reads -------------------------------------------------------------------------
def test_load_run_headline_is_the_runs_row_of_rpt_performance(built):
    r = load_run(built.multi, warehouse=built.db)
    with reading(built.db) as con:
        rel = con.sql("select * from rpt.performance where run_id = ?", params=[built.multi])
        expected = dict(zip(rel.columns, rel.fetchall()[0], strict=True))

    assert r.headline.keys() == expected.keys()
    floats = {k for k, v in expected.items() if isinstance(v, float)}
    assert {k: v for k, v in r.headline.items() if k not in floats} == {
        k: v for k, v in expected.items() if k not in floats}
    # approx: DuckDB's parallel avg/stddev may differ in the last bit from one query to the next
    assert [r.headline[k] for k in floats] == pytest.approx([expected[k] for k in floats],
                                                            rel=1e-12)
    assert r.headline["trades"] > 0


def test_load_run_decodes_config_json_and_versions(built):
    r = load_run(built.multi, warehouse=built.db)

    assert r.run["config_json"]["strategy"]["params"] == {"fast": 10, "slow": 40, "qty": 0.01}
    assert isinstance(r.run["view_versions"], dict) and "rpt.performance" in r.run["view_versions"]
    assert isinstance(r.run["versions"], dict) and "duckdb" in r.run["versions"]
    assert r.symbols == ["BTCUSDT", "ETHUSDT"]


def test_load_run_reports_qc_findings_of_the_run_and_risk_blocks(built):
    r = load_run(built.multi, warehouse=built.db)

    assert [(q["rule"], q["action"], q["findings"]) for q in r.qc] == [("gap", "filled", 1)]
    assert "10 missing bars" in r.qc_first[0]["detail"]
    assert [b["reason_code"] for b in r.risk] == ["RISK_SYMBOL_NOT_ALLOWED"]
    assert r.risk[0]["blocks"] == r.headline["blocked_orders"] > 0


def test_load_run_without_findings_or_blocks_has_empty_qc_and_risk(built):
    r = load_run(built.single, warehouse=built.db)

    assert r.qc == [] and r.qc_first == []
    assert r.risk == [] and r.risk_stops == []


def test_load_run_fills_and_trips_match_the_tables(built):
    r = load_run(built.multi, warehouse=built.db)

    fills = _count(built.db, "select count(*) from fills where run_id = ? and symbol = ?",
                   [built.multi, "BTCUSDT"])
    assert len(r.fills["BTCUSDT"]["ts"]) == fills > 0
    assert r.fills["ETHUSDT"]["ts"] == []  # every ETHUSDT order was blocked by risk
    assert r.trips_total == len(r.trips) == len(r.trade_returns) == r.headline["trades"]
    assert sum(f["fills"] for f in r.fees) == r.headline["fills"]
    assert sum(f["fees_quote"] for f in r.fees) == pytest.approx(r.headline["fees_quote"])


def test_load_run_daily_equity_has_one_point_per_day_ending_at_final_equity(built):
    r = load_run(built.multi, warehouse=built.db)

    assert r.daily["day"] == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert r.daily["equity"][-1] == pytest.approx(r.headline["final_equity"])


def test_load_run_failed_run_loads_with_status_failed_and_no_series(built):
    r = load_run(built.failed, warehouse=built.db)

    assert r.run_id == built.failed
    assert r.run["status"] == "failed" and not r.completed
    assert "no BTCUSDT 1m bars" in r.run["error"]
    assert r.headline == {}
    assert r.curve == {} and r.candles == {} and r.fills == {} and r.daily == {}
    assert r.trips == [] and r.trips_total == 0 and r.fees == []


def test_load_run_missing_warehouse_raises_without_creating_it(tmp_path):
    db = tmp_path / "nope.duckdb"

    with pytest.raises(WorkbenchError, match="no warehouse here yet"):
        load_run(warehouse=db)
    assert not db.exists()


# --- downsampling for display ---------------------------------------------------------------------
def test_load_run_short_run_under_limits_keeps_every_bar(built):
    r = load_run(built.single, warehouse=built.db, max_points=10_000, max_candles=10_000)

    bars = _count(built.db, "select count(*) from rpt.drawdown where run_id = ?", [built.single])
    assert bars == 2_880
    assert len(r.curve["ts"]) == bars and r.curve["bars_per_point"] == [1]
    assert len(r.candles["BTCUSDT"]["ts"]) == bars


def test_load_run_downsampled_curve_has_at_most_max_points_and_keeps_worst_drawdown(built):
    r = load_run(built.multi, warehouse=built.db, max_points=100)

    rows = wh.query(built.db, "select equity, drawdown_pct from rpt.drawdown where run_id = ? "
                              "order by ts", [built.multi])
    assert len(rows) == wh.BARS
    assert len(r.curve["ts"]) <= 100
    assert r.curve["bars_per_point"] == [-(-wh.BARS // 100)]
    assert min(r.curve["drawdown_pct"]) == min(dd for _, dd in rows)
    assert r.curve["equity"][-1] == rows[-1][0]
    assert r.curve["ts"] == sorted(r.curve["ts"])


def test_load_run_resampled_candles_have_at_most_max_candles_and_keep_ohlc(built):
    r = load_run(built.multi, warehouse=built.db, max_candles=48)  # 90-minute candles

    c = r.candles["BTCUSDT"]
    bars = wh.query(built.db, "select open, high, low, close from bars where symbol = 'BTCUSDT' "
                              "order by ts", [])
    assert len(c["ts"]) <= 48
    assert c["ts"][1] - c["ts"][0] == 90 * wh.MINUTE_MS
    assert c["open"][0] == bars[0][0] and c["close"][-1] == bars[-1][3]
    assert max(c["high"]) == max(b[1] for b in bars)
    assert min(c["low"]) == min(b[2] for b in bars)


def test_load_run_candles_not_aligned_to_bucket_still_at_most_max_candles(built):
    # 4,320 bars in 40 candles: 108-minute buckets; midnight is not a multiple of 108 minutes
    r = load_run(built.multi, warehouse=built.db, max_candles=40)

    assert len(r.candles["BTCUSDT"]["ts"]) <= 40


def test_load_run_month_run_downsampled_to_defaults_while_views_keep_all_bars(month):
    db, run_id = month

    r = load_run(run_id, warehouse=db)

    bars = _count(db, "select count(*) from rpt.drawdown where run_id = ?", [run_id])
    assert bars == 31 * 1_440
    assert 0 < len(r.curve["ts"]) <= data.MAX_POINTS
    assert 0 < len(r.candles["BTCUSDT"]["ts"]) <= data.MAX_CANDLES
    assert r.curve["bars_per_point"][0] > 1
    assert len(r.daily["day"]) == 31
    assert r.headline["bars"] == bars
