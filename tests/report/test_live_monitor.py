"""The live monitor's API (workbench/report/live.py) on hand-written warehouse rows: which run it
picks, the book folded from fills and marked at the last close, latency percentiles and the
downsampled lag series, the first divergence from the backtest twin, status.json found through
``runs.run_dir`` and preferred for the headline, and clear errors for runs it does not show."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import workbench.report as wr
from workbench.errors import WorkbenchError
from workbench.warehouse import views
from workbench.warehouse.connect import open_rw

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MIN = 60_000


def ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _run(con: Any, run_id: str, mode: str, started: int, run_dir: str | None = None) -> None:
    con.execute(
        "insert into runs (run_id, mode, status, started_at, initial_cash, quote, timeframe_ms, "
        "symbols, bar_count, end_ts, run_dir, config_json) "
        "values (?, ?, 'completed', ?, 1000.0, 'USDT', ?, ['X'], 5, ?, ?, ?)",
        [run_id, mode, ts(started), MIN, ts(T0 + 4 * MIN), run_dir,
         json.dumps({"venue": {"api_key": "***"}})])


def _order(con: Any, run_id: str, seq: int, bar: int, side: str, qty: float) -> None:
    con.execute(
        "insert into orders (run_id, order_seq, client_order_id, symbol, side, type, qty, "
        "status, ts, bar_ts, updated_ts, filled_qty, reduce_only) values "
        "(?, ?, ?, 'X', ?, 'MARKET', ?, 'FILLED', ?, ?, ?, ?, false)",
        [run_id, seq, f"{run_id}-{seq}", side, qty, ts(T0 + (bar + 1) * MIN),
         ts(T0 + bar * MIN), ts(T0 + (bar + 1) * MIN), qty])


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Live run ``p`` (paper): 5 bars of X closing at 100..104, two buys of 0.1 and a sell
    of 0.05 (fees 0.01 each), latencies 1..10 ms over ten decisions, lag 100..1000 ms, two
    alerts, run-level rollups; its twin ``p.backtest`` agrees on the first order, sells 0.1
    where ``p`` sold 0.05 (bar 3), and nothing more. An older shadow run ``s`` and a newer
    backtest ``b`` are there too."""
    tmp_path = tmp_path_factory.mktemp("live-monitor")
    db = tmp_path / "wh.duckdb"
    run_dir = tmp_path / "runs" / "p"
    run_dir.mkdir(parents=True)
    con = open_rw(db)
    try:
        views.deploy(con)
        _run(con, "s", "shadow", T0)
        _run(con, "p", "paper", T0 + MIN, str(run_dir))
        _run(con, "p.backtest", "backtest", T0 + MIN)
        _run(con, "b", "backtest", T0 + 2 * MIN)
        con.executemany("insert into run_bars (run_id, symbol, ts, close, filled) "
                        "values ('p', 'X', ?, ?, false)",
                        [[ts(T0 + i * MIN), 100.0 + i] for i in range(5)])
        for seq, bar, side, qty in ((1, 0, "BUY", 0.1), (2, 1, "BUY", 0.1),
                                    (3, 3, "SELL", 0.05)):
            _order(con, "p", seq, bar, side, qty)
            con.execute(
                "insert into fills (run_id, fill_seq, order_seq, client_order_id, symbol, side, "
                "qty, price, fee, ts, bar_ts) values ('p', ?, ?, ?, 'X', ?, ?, ?, 0.01, ?, ?)",
                [seq, seq, f"p-{seq}", side, qty, 100.0 + bar + 1, ts(T0 + (bar + 1) * MIN),
                 ts(T0 + bar * MIN)])
        _order(con, "p.backtest", 1, 0, "BUY", 0.1)
        _order(con, "p.backtest", 2, 1, "BUY", 0.1)
        _order(con, "p.backtest", 3, 3, "SELL", 0.1)
        rows = []
        for i in range(10):
            at = ts(T0 + i * MIN + 500)
            rows += [["p", at, "strategy_tick_latency", float(i + 1)],
                     ["p", at, "lag_ms", 100.0 * (i + 1)], ["p", at, "bars_lag", 0.0]]
        con.executemany("insert into metrics (run_id, ts, name, value, labels) "
                        "values (?, ?, ?, ?, '{\"symbol\": \"X\"}')", rows)
        end = ts(T0 + 10 * MIN)
        con.executemany("insert into metrics (run_id, ts, name, value, labels) "
                        "values ('p', ?, ?, ?, '{}')",
                        [[end, "orders_submitted", 3.0], [end, "orders_blocked_risk", 1.0],
                         [end, "pnl_intraday", -1.5]])
        con.executemany("insert into alerts (run_id, ts, kind, severity, message) "
                        "values ('p', ?, ?, 'warning', ?)",
                        [[ts(T0 + 2 * MIN), "bar_late", "late"],
                         [ts(T0 + 3 * MIN), "bar_gap", "gap"]])
    finally:
        con.close()
    return db


def test_load_live_no_run_id_picks_the_latest_live_run_not_a_backtest(warehouse):
    assert wr.load_live(warehouse=warehouse).run_id == "p"


def test_load_live_book_folded_from_fills_marked_at_last_close(warehouse):
    m = wr.load_live("p", warehouse=warehouse)

    (pos,) = m.book
    assert (pos["symbol"], pos["qty"], pos["mark"], pos["mark_ts"]) == ("X", 0.15, 104.0,
                                                                        T0 + 4 * MIN)
    cash = 1000.0 - 0.1 * 101 - 0.1 * 102 + 0.05 * 104 - 3 * 0.01
    assert m.cash == pytest.approx(cash, rel=1e-12)
    assert m.equity == pytest.approx(cash + 0.15 * 104, rel=1e-12)


def test_load_live_latency_percentiles_over_every_decision(warehouse):
    m = wr.load_live("p", warehouse=warehouse)

    assert m.latency["decisions"] == 10
    assert (m.latency["p50_ms"], m.latency["p95_ms"], m.latency["p99_ms"],
            m.latency["max_ms"]) == pytest.approx((5.5, 9.55, 9.91, 10.0), rel=1e-12)
    assert m.last_lag_ms == 1000.0
    assert m.rollups == {"orders_submitted": 3, "orders_blocked_risk": 1,
                         "pnl_intraday": -1.5}


def test_load_live_long_series_downsampled_worst_kept(warehouse):
    m = wr.load_live("p", warehouse=warehouse, max_points=4)

    assert m.decisions_per_point == 3
    assert m.lag["latency_ms"] == [3.0, 6.0, 9.0, 10.0]
    assert m.lag["lag_ms"] == [300.0, 600.0, 900.0, 1000.0]
    assert m.lag["ts"][-1] == T0 + 9 * MIN + 500
    assert "1 point per 3 decisions" in wr.live_lag_figure(m).layout.title.text


def test_load_live_first_divergence_is_the_first_disagreeing_order(warehouse):
    m = wr.load_live("p", warehouse=warehouse)

    assert (m.twin, m.compared, m.disagreements) == (True, 3, 1)
    assert m.divergence is not None
    assert (m.divergence["bar_ts"], m.divergence["live_qty"],
            m.divergence["backtest_qty"]) == (T0 + 3 * MIN, 0.05, 0.1)
    table = repr(wr.live_divergence_table(m))
    assert "qty | 0.05 | 0.1" in table and "1 of 3 orders differ" in table
    assert "no divergence" not in table


def test_live_divergence_table_no_twin_says_nothing_to_compare(warehouse):
    m = wr.load_live("s", warehouse=warehouse)

    assert "no backtest twin (s.backtest)" in repr(wr.live_divergence_table(m))


def test_load_live_status_json_found_through_run_dir_preferred_in_headline(warehouse):
    status = warehouse.parent / "runs" / "p" / "status.json"
    status.write_text(json.dumps({
        "run_id": "p", "status": "completed", "bars": 7, "lag_ms": 42,
        "last_bar_ts": "2024-01-01T00:06:00.000Z", "updated_at": "2024-01-01T00:07:00.000Z",
        "halted": "operator"}))
    try:
        m = wr.load_live("p", warehouse=warehouse)
    finally:
        status.unlink()
    table = repr(wr.live_headline_table(m))

    assert m.status_path == str(status)
    assert "bars decided | 7" in table and "lag behind the bar's close (ms) | 42" in table
    assert "status | completed (halted: operator)" in table
    assert "p50 5.50 ms, p95 9.55 ms, p99 9.91 ms (over 10 decisions)" in table
    assert "orders blocked by risk | 1" in table and "alerts | 2 (last: bar_gap" in table


def test_load_live_without_status_json_headline_from_warehouse(warehouse):
    m = wr.load_live("p", warehouse=warehouse)

    assert m.status is None
    assert "no status.json found" in repr(wr.live_headline_table(m))
    assert "lag behind the bar's close (ms) | 1,000.00" in repr(wr.live_headline_table(m))


@pytest.mark.parametrize(("run_id", "message"), [
    ("b", "run b is a backtest run"), ("nope", "no such run: nope")])
def test_load_live_backtest_or_unknown_run_refused_with_message(warehouse, run_id, message):
    with pytest.raises(WorkbenchError, match=message):
        wr.load_live(run_id, warehouse=warehouse)


def test_load_live_warehouse_without_live_run_says_how_to_start_one(tmp_path):
    db = tmp_path / "empty.duckdb"
    open_rw(db).close()

    with pytest.raises(WorkbenchError, match="no shadow, paper or live run"):
        wr.load_live(warehouse=db)


def test_live_tables_empty_run_say_so(warehouse):
    m = wr.load_live("s", warehouse=warehouse)

    assert "no order yet" in repr(wr.live_orders_table(m))
    assert "no alert" in repr(wr.live_alerts_table(m))
    assert "no open position" in repr(wr.live_book_table(m))
    assert wr.live_lag_figure(m).layout.title.text == "Lag and latency of s"
