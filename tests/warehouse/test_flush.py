"""A live run's WAL in the warehouse (DESIGN 5.3): the tables one pass over the log builds,
their replacement in one short transaction, and the background flusher that never holds the
file between cycles and never raises into the live process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from workbench.engine.journal import OrderEvent, OrderRecord
from workbench.model import Fill, OrderStatus, OrderType, Side, ms_to_dt, qty_to_units
from workbench.recovery.records import (
    control_record,
    fill_record,
    order_event_record,
    order_record,
    start_record,
)
from workbench.recovery.wal import WAL_FILE, Wal
from workbench.telemetry.log import JsonlLog
from workbench.warehouse.connect import open_rw, reading
from workbench.warehouse.flush import (
    TABLES,
    Flusher,
    FlushError,
    replace_run,
    tables_from_wal,
)
from workbench.warehouse.stale import HOST

MIN = 60_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00Z: the run starts the evening before
RUN = "live-1"
SYM = "BTCUSDT"
CONFIG_VALUE = "config-value-never-logged"

# Opens the file read-write, says so, holds it until its stdin closes.
HOLDER = """\
import sys
import duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
sys.stdin.read()
con.close()
"""


def bar(ts: int, close: float, phase: str = "live") -> dict[str, Any]:
    return {"symbol": SYM, "ts": ts, "open": close, "high": close, "low": close,
            "close": close, "volume": 1.0, "phase": phase, "lag_ms": 120}


def decision(ts: int, decided_at: int, orders: list[str], *, bars_lag: int | None,
             blocked: int, venue_errors: int) -> dict[str, Any]:
    return {"symbol": SYM, "ts": ts, "decided_at": decided_at, "latency_us": 1500,
            "lag_ms": decided_at - ts - MIN, "bars_lag": bars_lag, "orders": orders,
            "blocked": blocked, "venue_errors": venue_errors}


def order(coid: str, seq: int, qty: float, ts: int) -> dict[str, Any]:
    record = OrderRecord(seq, coid, SYM, Side.BUY, OrderType.MARKET, qty, qty_to_units(qty),
                         None, ts, ts - MIN, None, False, "entry")
    return {**order_record(record), "wall_ts": ts + 160}


def event(coid: str, seq: int, status: OrderStatus, ts: int, reason: str | None = None
          ) -> dict[str, Any]:
    return {**order_event_record(OrderEvent(seq, coid, ts, status, reason)), "wall_ts": ts + 1}


def small_run() -> list[tuple[str, dict[str, Any]]]:
    """Warmup and live bars either side of midnight UTC, an order filled before midnight, a
    gap, an order blocked by risk after it (with a risk-state record), an alert, a halt."""
    buy_ts, late = T0 - MIN, T0 + 3 * MIN
    fill = Fill(1, 1, "o-1", SYM, Side.BUY, 1.0, qty_to_units(1.0), 101.0, 0.1, buy_ts,
                buy_ts - MIN, "t-9", buy_ts + 40)
    return [
        ("control", start_record(10_000.0, run_id=RUN, mode="paper", config_hash="h1",
                                 symbols=[SYM], timeframe="1m", ts=T0 - 3 * MIN + 5)),
        ("bar", bar(T0 - 3 * MIN, 100.0, "warmup")),
        ("bar", bar(T0 - 2 * MIN, 100.0)),
        ("decision", decision(T0 - 2 * MIN, buy_ts + 150, ["o-1"], bars_lag=0, blocked=0,
                              venue_errors=0)),
        ("order", order("o-1", 1, 1.0, buy_ts)),
        ("order_event", event("o-1", 1, OrderStatus.SUBMITTED, buy_ts)),
        ("fill", fill_record(fill, wall_ts=buy_ts + 200)),
        ("order_event", event("o-1", 1, OrderStatus.FILLED, buy_ts)),
        ("bar", bar(T0 - MIN, 102.0)),  # the last bar of Dec 31: equity 10_000.9
        ("gap", {"symbol": SYM, "first_ts": T0, "count": 2, "detected_at": late + 100}),
        ("bar", bar(T0 + 2 * MIN, 105.0, "backfill")),  # Jan 1: equity 10_003.9
        ("decision", decision(T0 + 2 * MIN, late + 200, ["o-2"], bars_lag=None, blocked=1,
                              venue_errors=1)),
        ("order", order("o-2", 2, 1000.0, late)),
        ("order_event", event("o-2", 2, OrderStatus.BLOCKED, late, "MAX_EXPOSURE")),
        ("risk_event", {"ts": late, "client_order_id": "o-2", "order_seq": 2, "symbol": SYM,
                        "rule": "max_exposure", "reason_code": "MAX_EXPOSURE",
                        "detail": json.dumps({"limit": 0.5})}),
        ("risk_event", {"reason": "state", "risk_state": {"blocks_today": 1}}),
        ("alert", {"ts": late + 100, "kind": "bar_gap", "severity": "warning",
                   "message": "2 bars missing", "data": {"count": 2}}),
        ("snapshot_ref", {"file": "snapshot.json", "wal_seq": 17, "sha256": "ab" * 32}),
        ("control", control_record("halt", ts=late + 300, reason="operator", source="cli")),
    ]


UNSYNCED = frozenset({"bar", "decision", "gap", "alert"})


def write(journal: Path, records: list[tuple[str, dict[str, Any]]]) -> int:
    """Append ``records`` to the journal's WAL (opened and closed here); the last seq."""
    with Wal.open(journal) as wal:
        for kind, payload in records:
            wal.append(kind, payload, sync=kind not in UNSYNCED)
        return wal.last_seq


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "live" / RUN
    write(path, small_run())
    return path


def run_row(status: str = "running") -> dict[str, Any]:
    return {"run_id": RUN, "mode": "paper", "name": "live test", "status": status,
            "config_json": {"strategy": {"note": CONFIG_VALUE}}}


def rows(warehouse: Path, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with reading(warehouse, wait_s=5) as con:
        return con.execute(query, params or []).fetchall()


def everything(warehouse: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {name: sorted(rows(warehouse, f"select * from {name}"), key=repr)
            for name in ("runs", *TABLES)}


def wait_for(condition: Callable[[], bool], what: str, limit_s: float = 20.0) -> None:
    """Poll until ``condition`` holds; the limit only stops a broken test from hanging."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def hold(warehouse: Path) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    """Start a process that holds the warehouse read-write until its stdin is closed; returns
    once it holds the file. Every holder is ended when the test ends."""
    started: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(warehouse)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == "holding\n", (line, proc.stderr.read() if proc.stderr else "")
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def release(proc: subprocess.Popen[str]) -> None:
    _out, err = proc.communicate(input="", timeout=30)
    assert proc.returncode == 0, err


def ts(ms: int) -> datetime:
    return ms_to_dt(ms)


# --- tables_from_wal -----------------------------------------------------------------------------
def test_tables_from_wal_small_run_builds_the_rows_of_every_table(journal: Path) -> None:
    live = tables_from_wal(journal, RUN)
    t = {name: table.to_pylist() for name, table in live.tables.items()}
    late = T0 + 3 * MIN
    assert set(t) == set(TABLES)
    assert [(r["ts"], r["close"], r["filled"]) for r in t["run_bars"]] == [
        (ts(T0 - 3 * MIN), 100.0, False), (ts(T0 - 2 * MIN), 100.0, False),
        (ts(T0 - MIN), 102.0, False), (ts(T0 + 2 * MIN), 105.0, False)]
    assert [(r["client_order_id"], r["status"], r["reason"], r["filled_qty"], r["wall_ts"])
            for r in t["orders"]] == [
        ("o-1", "FILLED", None, 1.0, ts(T0 - MIN + 160)),
        ("o-2", "BLOCKED", "MAX_EXPOSURE", 0.0, ts(late + 160))]
    assert [(r["event_seq"], r["client_order_id"], r["status"]) for r in t["order_events"]] == [
        (1, "o-1", "SUBMITTED"), (2, "o-1", "FILLED"), (3, "o-2", "BLOCKED")]
    assert [(r["fill_seq"], r["qty"], r["price"], r["fee"], r["venue_fill_id"], r["wall_ts"])
            for r in t["fills"]] == [(1, 1.0, 101.0, 0.1, "t-9", ts(T0 - MIN + 200))]
    assert t["risk_events"] == [{
        "ts": ts(late), "client_order_id": "o-2", "order_seq": 2, "symbol": SYM,
        "rule": "max_exposure", "reason_code": "MAX_EXPOSURE", "detail": '{"limit": 0.5}'}]
    [gap] = t["qc_events"]
    assert (gap["run_id"], gap["stage"], gap["rule"], gap["action"], gap["severity"],
            gap["symbol"], gap["timeframe"], gap["ts"]) == (
        RUN, "live", "gap", "kept", "warning", SYM, "1m", ts(T0))
    assert gap["detail"] == "2 bars the venue does not have, from 2024-01-01T00:00:00.000Z"
    assert gap["recorded_at"] == ts(late + 100)
    assert t["alerts"] == [{"ts": ts(late + 100), "kind": "bar_gap", "severity": "warning",
                            "message": "2 bars missing", "data": '{"count": 2}'}]


def test_tables_from_wal_small_run_gives_decision_metrics_and_run_rollups(journal: Path
                                                                          ) -> None:
    metrics = tables_from_wal(journal, RUN).tables["metrics"].to_pylist()
    per_decision = [(r["ts"], r["name"], r["value"], json.loads(r["labels"]))
                    for r in metrics if r["labels"] != "{}"]
    first, second = T0 - MIN + 150, T0 + 3 * MIN + 200
    assert per_decision == [
        (ts(first), "bars_lag", 0.0, {"symbol": SYM}),
        (ts(first), "lag_ms", 150.0, {"symbol": SYM}),
        (ts(first), "strategy_tick_latency", 1.5, {"symbol": SYM}),
        (ts(second), "lag_ms", 200.0, {"symbol": SYM}),  # bars_lag None: no row
        (ts(second), "strategy_tick_latency", 1.5, {"symbol": SYM})]
    rollups = {r["name"]: r["value"] for r in metrics if r["labels"] == "{}"}
    assert {r["ts"] for r in metrics if r["labels"] == "{}"} == {ts(second)}
    assert rollups == {
        "orders_submitted": 1.0, "orders_blocked_risk": 1.0,
        "order_proposed_rate": pytest.approx(2 / 3),  # 2 orders, 3 live/backfill bars
        "risk_block_rate": 0.5, "error_rate": 0.5,
        # Jan 1 so far: 10_000 - 101.1 + 105 (marked at 105) less 10_000 - 101.1 + 102
        "pnl_intraday": pytest.approx(3.0)}


def test_tables_from_wal_run_started_today_measures_pnl_from_initial_cash(tmp_path: Path
                                                                          ) -> None:
    records = [(k, p) for k, p in small_run() if not (k == "bar" and p["ts"] < T0)]
    write(tmp_path, records)
    metrics = tables_from_wal(tmp_path, RUN).tables["metrics"].to_pylist()
    [pnl] = [r["value"] for r in metrics if r["name"] == "pnl_intraday"]
    assert pnl == pytest.approx(10_000 - 101.1 + 105 - 10_000)


def test_tables_from_wal_small_run_gives_runs_fields_from_start_record_and_bars(
        journal: Path) -> None:
    live = tables_from_wal(journal, RUN)
    assert (live.last_seq, live.bar_count, live.start_ts, live.end_ts) == (
        len(small_run()), 3, T0 - 3 * MIN, T0 + 2 * MIN)
    assert live.run_fields() == {
        "run_id": RUN, "mode": "paper", "config_hash": "h1", "symbols": [SYM],
        "timeframe": "1m", "initial_cash": 10_000.0, "started_at": ts(T0 - 3 * MIN + 5),
        "bar_count": 3, "start_ts": ts(T0 - 3 * MIN), "end_ts": ts(T0 + 2 * MIN)}


def test_tables_from_wal_torn_last_record_is_left_out(journal: Path) -> None:
    last = write(journal, [("alert", {"ts": T0 + 9 * MIN, "kind": "error_rate",
                                      "severity": "error", "message": "venue errors",
                                      "data": {}})])
    wal = journal / WAL_FILE
    os.truncate(wal, wal.stat().st_size - 5)
    live = tables_from_wal(journal, RUN)
    assert live.last_seq == last - 1
    assert [r["kind"] for r in live.tables["alerts"].to_pylist()] == ["bar_gap"]


def test_tables_from_wal_record_breaking_contract_raises_naming_its_seq(tmp_path: Path
                                                                        ) -> None:
    seq = write(tmp_path, [*small_run()[:2], ("gap", {"symbol": SYM, "count": 1})])
    with pytest.raises(FlushError, match=f"WAL seq {seq}: a gap record"):
        tables_from_wal(tmp_path, RUN)


def test_tables_from_wal_missing_log_gives_empty_tables(tmp_path: Path) -> None:
    live = tables_from_wal(tmp_path / "nothing-yet", RUN)
    assert live.last_seq == 0
    assert all(table.num_rows == 0 for table in live.tables.values())


# --- replace_run ---------------------------------------------------------------------------------
def flush_once(warehouse: Path, journal: Path, status: str = "running") -> None:
    live = tables_from_wal(journal, RUN)
    replace_run(warehouse, {**live.run_fields(), **run_row(status)}, live.tables, wait_s=5)


def test_replace_run_twice_gives_the_same_rows(journal: Path, warehouse: Path) -> None:
    flush_once(warehouse, journal)
    first = everything(warehouse)
    flush_once(warehouse, journal)
    assert everything(warehouse) == first
    counts = {name: len(r) for name, r in first.items()}
    assert counts == {"runs": 1, "run_bars": 4, "orders": 2, "order_events": 3, "fills": 1,
                      "costs": 1,
                      "risk_events": 1, "qc_events": 1, "metrics": 11, "alerts": 1,
                      "venue_fills": 0, "reconciliations": 0}  # a paper run's journal


def test_replace_run_new_rows_replace_only_this_run(journal: Path, warehouse: Path,
                                                    tmp_path: Path) -> None:
    other = tmp_path / "other"
    write(other, [(k, {**p, "run_id": "other"} if k == "control" and p["action"] == "start"
                   else p) for k, p in small_run()])
    live = tables_from_wal(other, "other")
    replace_run(warehouse, {**live.run_fields(), **run_row("completed"), "run_id": "other"},
                live.tables,
                wait_s=5)
    flush_once(warehouse, journal)
    write(journal, [("bar", bar(T0 + 3 * MIN, 106.0))])
    flush_once(warehouse, journal, status="completed")
    assert rows(warehouse, "select run_id, status, bar_count from runs order by run_id") == [
        (RUN, "completed", 4), ("other", "completed", 3)]
    assert rows(warehouse, "select run_id, count(*) from run_bars group by run_id "
                           "order by run_id") == [(RUN, 5), ("other", 4)]


def test_replace_run_columns_the_tables_lack_are_null(journal: Path, warehouse: Path) -> None:
    flush_once(warehouse, journal)
    assert rows(warehouse, "select distinct ingest_id, file, row_number, policy "
                           "from qc_events") == [(None, None, None, None)]
    assert rows(warehouse, "select ended_at, error from runs") == [(None, None)]


# --- Flusher -------------------------------------------------------------------------------------
def flusher(warehouse: Path, journal: Path, row: dict[str, Any], **kw: Any) -> Flusher:
    kw = {"every_s": 3600.0, "wait_s": 0.05, "retry_s": 0.05, "max_retry_s": 0.2} | kw
    return Flusher(warehouse, journal, lambda: dict(row), **kw)


def test_flusher_start_flushes_at_once_and_then_only_new_records(journal: Path,
                                                                 warehouse: Path) -> None:
    f = flusher(warehouse, journal, run_row(), every_s=0.05)
    f.start()
    try:
        wait_for(lambda: f.flushes == 1, "the first flush")
        assert f.last_flushed_seq == len(small_run())
        seq = write(journal, [("bar", bar(T0 + 3 * MIN, 106.0))])
        wait_for(lambda: f.last_flushed_seq == seq, "the new bar's flush")
        assert f.flushes == 2  # cycles in between found nothing new and wrote nothing
    finally:
        f.stop(final=False)
        assert f._thread is not None and not f._thread.is_alive()  # the thread ended
    assert rows(warehouse, "select pid, status, bar_count from runs") == [
        (os.getpid(), "running", 4)]
    assert f.failures == 0 and f.last_error is None


def test_flusher_warehouse_held_by_another_process_fails_then_flushes_after_release(
        journal: Path, warehouse: Path, tmp_path: Path,
        hold: Callable[[], subprocess.Popen[str]]) -> None:
    open_rw(warehouse).close()
    holder = hold()
    log = JsonlLog(tmp_path / "live.jsonl")
    f = flusher(warehouse, journal, run_row(), log=log)
    f.start()
    try:
        wait_for(lambda: f.failures >= 2, "failures while the file is held")
        assert f.flushes == 0
        assert f.last_error is not None and "the warehouse is held by process" in f.last_error
        release(holder)
        wait_for(lambda: f.flushes == 1, "the flush after the release")
    finally:
        f.stop(final=False)
        assert f._thread is not None and not f._thread.is_alive()  # the thread ended
        log.close()
    assert f.last_error is None and f.last_flushed_seq == len(small_run())
    assert rows(warehouse, "select count(*) from orders where run_id = ?", [RUN]) == [(2,)]
    text = (tmp_path / "live.jsonl").read_text()
    warnings = [json.loads(line) for line in text.splitlines()]
    assert warnings and all(w["level"] == "warning" and w["component"] == "warehouse"
                            for w in warnings)
    assert CONFIG_VALUE not in text


def test_flusher_torn_last_record_is_not_flushed_and_is_no_failure(journal: Path,
                                                                   warehouse: Path) -> None:
    last = write(journal, [("bar", bar(T0 + 3 * MIN, 106.0))])
    wal = journal / WAL_FILE
    os.truncate(wal, wal.stat().st_size - 3)
    f = flusher(warehouse, journal, run_row())
    f.start()
    try:
        wait_for(lambda: f.flushes == 1, "the first flush")
    finally:
        f.stop(final=False)
        assert f._thread is not None and not f._thread.is_alive()  # the thread ended
    assert (f.last_flushed_seq, f.failures) == (last - 1, 0)
    assert rows(warehouse, "select count(*) from run_bars") == [(4,)]


def test_flusher_stop_final_flushes_the_tail_and_the_last_row(journal: Path,
                                                              warehouse: Path) -> None:
    row = run_row()
    f = Flusher(warehouse, journal, lambda: dict(row), every_s=3600.0, wait_s=0.05)
    f.start()
    wait_for(lambda: f.flushes == 1, "the first flush")
    seq = write(journal, [("bar", bar(T0 + 3 * MIN, 106.0)),
                          ("control", control_record("stop", ts=T0 + 4 * MIN, source="cli"))])
    row.update(status="completed", ended_at=ts(T0 + 4 * MIN))
    assert f.stop(final=True, timeout_s=20)
    assert f.last_flushed_seq == seq and f.flushes == 2
    assert rows(warehouse, "select status, ended_at, bar_count from runs") == [
        ("completed", ts(T0 + 4 * MIN), 4)]


def test_flusher_stop_final_while_held_retries_then_gives_up_without_raising(
        journal: Path, warehouse: Path, hold: Callable[[], subprocess.Popen[str]]) -> None:
    open_rw(warehouse).close()
    holder = hold()
    f = flusher(warehouse, journal, run_row())
    assert not f.stop(final=True, timeout_s=0.5)  # never started: the final flush alone
    assert f.failures >= 1 and f.flushes == 0
    release(holder)
    assert f.stop(final=True, timeout_s=20)
    assert f.last_flushed_seq == len(small_run())


def test_flusher_failing_run_row_fn_is_a_failure_not_an_exception(journal: Path,
                                                                  warehouse: Path) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("no row yet")

    f = Flusher(warehouse, journal, broken, every_s=3600.0, retry_s=0.05, max_retry_s=0.1)
    f.start()
    try:
        wait_for(lambda: f.failures >= 1, "a failure")
    finally:
        assert not f.stop(final=True, timeout_s=0.2)
    assert f.last_error == "RuntimeError: no row yet"
    assert not warehouse.exists()


def test_flusher_following_a_growing_wal_writes_what_one_fresh_read_writes(
        journal: Path, warehouse: Path, tmp_path: Path) -> None:
    f = flusher(warehouse, journal, run_row())
    f.start()
    try:
        wait_for(lambda: f.flushes == 1, "the first flush")
        sell = Fill(2, 3, "o-3", SYM, Side.SELL, 1.0, qty_to_units(1.0), 104.0, 0.1,
                    T0 + 4 * MIN, T0 + 3 * MIN, "t-10", None)
        seq = write(journal, [
            ("bar", bar(T0 + 3 * MIN, 106.0)),
            ("order", {**order("o-3", 3, 1.0, T0 + 4 * MIN), "side": "SELL"}),
            ("order_event", event("o-3", 3, OrderStatus.SUBMITTED, T0 + 4 * MIN)),
            ("fill", fill_record(sell, wall_ts=T0 + 4 * MIN + 30)),
            ("order_event", event("o-3", 3, OrderStatus.FILLED, T0 + 4 * MIN)),
            ("decision", decision(T0 + 3 * MIN, T0 + 4 * MIN + 90, ["o-3"], bars_lag=0,
                                  blocked=0, venue_errors=1))])
        f.request()
        wait_for(lambda: f.last_flushed_seq == seq, "the second flush")
    finally:
        f.stop(final=False)
        assert f._thread is not None and not f._thread.is_alive()  # the thread ended
    fresh = tmp_path / "fresh.duckdb"
    live = tables_from_wal(journal, RUN)
    replace_run(fresh, {**live.run_fields(), **run_row(), "pid": os.getpid(), "host": HOST},
                live.tables, wait_s=5)
    followed, once = everything(warehouse), everything(fresh)
    assert followed == once
    [pnl] = [r[3] for r in followed["metrics"] if r[2] == "pnl_intraday"]
    assert pnl == pytest.approx(10_000 - 101.1 + 104 - 0.1 - 10_000.9)  # flat after the sell


def test_replace_run_signal_noted_for_the_main_thread_is_not_raised_here(
        journal: Path, warehouse: Path) -> None:
    """A Ctrl-C the command line's handler noted is the main thread's to raise: a flush on
    the flusher's thread neither raises it nor holds it back."""
    from workbench import errors

    errors.note_signal("SIGINT")
    try:
        flush_once(warehouse, journal)
        assert errors.signal_received() == "SIGINT"
    finally:
        errors.clear_signals()
    assert rows(warehouse, "select count(*) from runs") == [(1,)]
