"""A run's rows in the warehouse: its ``runs`` row, then orders, events, fills and the bars it
saw, written through Arrow in one transaction with the final status."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from workbench.engine.journal import MemoryJournal
from workbench.feeds.history import LoopData
from workbench.feeds.qc import Finding, findings_table
from workbench.warehouse.io import insert_arrow

_TS = pa.timestamp("ms", tz="UTC")


def insert_run(con: Any, row: dict[str, Any]) -> None:
    """The ``runs`` row of a run that starts now (status ``running``), committed at once."""
    cols = list(row)
    con.execute(
        f"insert into runs ({', '.join(cols)}) values ({', '.join('?' for _ in cols)})",
        [_param(row[c]) for c in cols])


def _param(value: Any) -> Any:
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, dict) else value


def update_run(con: Any, run_id: str, values: dict[str, Any]) -> None:
    sets = ", ".join(f"{k} = ?" for k in values)
    con.execute(f"update runs set {sets} where run_id = ?",
                [_param(v) for v in values.values()] + [run_id])


def orders_table(journal: MemoryJournal) -> pa.Table:
    o = journal.orders
    return pa.table({
        "order_seq": pa.array([x.order_seq for x in o], pa.int64()),
        "client_order_id": pa.array([x.client_order_id for x in o], pa.string()),
        "symbol": pa.array([x.symbol for x in o], pa.string()),
        "side": pa.array([x.side.value for x in o], pa.string()),
        "type": pa.array([x.type.value for x in o], pa.string()),
        "qty": pa.array([x.qty for x in o], pa.float64()),
        "limit_price": pa.array([x.limit_price for x in o], pa.float64()),
        "status": pa.array([x.status.value for x in o], pa.string()),
        "reason": pa.array([x.reason for x in o], pa.string()),
        "ts": pa.array([x.ts for x in o], _TS),
        "bar_ts": pa.array([x.bar_ts for x in o], _TS),
        "updated_ts": pa.array([x.updated_ts for x in o], _TS),
        "filled_qty": pa.array([x.filled_qty for x in o], pa.float64()),
        "expire_after_bars": pa.array([x.expire_after_bars for x in o], pa.int64()),
        "reduce_only": pa.array([x.reduce_only for x in o], pa.bool_()),
        "tag": pa.array([x.tag for x in o], pa.string()),
    })


def events_table(journal: MemoryJournal) -> pa.Table:
    e = journal.events
    return pa.table({
        "event_seq": pa.array(range(1, len(e) + 1), pa.int64()),
        "order_seq": pa.array([x[0] for x in e], pa.int64()),
        "client_order_id": pa.array([x[1] for x in e], pa.string()),
        "ts": pa.array([x[2] for x in e], _TS),
        "status": pa.array([str(x[3]) for x in e], pa.string()),
        "reason": pa.array([x[4] for x in e], pa.string()),
    })


def fills_table(journal: MemoryJournal) -> pa.Table:
    f = journal.fills
    return pa.table({
        "fill_seq": pa.array([x.fill_seq for x in f], pa.int64()),
        "order_seq": pa.array([x.order_seq for x in f], pa.int64()),
        "client_order_id": pa.array([x.client_order_id for x in f], pa.string()),
        "symbol": pa.array([x.symbol for x in f], pa.string()),
        "side": pa.array([x.side.value for x in f], pa.string()),
        "qty": pa.array([x.qty for x in f], pa.float64()),
        "price": pa.array([x.price for x in f], pa.float64()),
        "fee": pa.array([x.fee for x in f], pa.float64()),
        "ts": pa.array([x.ts for x in f], _TS),
        "bar_ts": pa.array([x.bar_ts for x in f], _TS),
    })


def run_bars_table(data: LoopData) -> pa.Table:
    names = np.asarray(data.symbol_names, dtype=object)
    symbols = pa.DictionaryArray.from_arrays(pa.array(data.symbol_index, pa.int32()),
                                             pa.array(names, pa.string()))
    return pa.table({
        "symbol": symbols.cast(pa.string()),
        "ts": pa.array(data.ts_array, _TS),
        "close": pa.array(data.close_array, pa.float64()),
        "filled": pa.array(data.filled, pa.bool_()),
    })


def start_results(con: Any, run_id: str, data: LoopData, findings: list[Finding],
                  timeframe: str, policy: str) -> None:
    """Open the run's transaction with what is known before the loop: the bars it sees and
    its QC findings. ``finish_results`` must follow on this connection (or a rollback)."""
    con.execute("begin transaction")
    try:
        insert_arrow(con, "run_bars", run_bars_table(data), run_id=run_id)
        insert_arrow(con, "qc_events", findings_table(
            findings, stage="backtest", timeframe=timeframe, policy=policy, run_id=run_id))
    except BaseException:
        con.execute("rollback")
        raise


def finish_results(con: Any, run_id: str, journal: MemoryJournal, run_values: dict[str, Any],
                   risk_events: pa.Table | None = None,
                   before_commit: Callable[[], dict[str, Any]] | None = None,
                   metrics: pa.Table | None = None) -> None:
    """Add the loop's orders, events and fills and commit the run's transaction.

    ``before_commit`` runs inside the transaction once the rows are in (the views already see
    them); the values it returns go into the ``runs`` row too, and if it raises, nothing stays.
    """
    try:
        insert_arrow(con, "orders", orders_table(journal), run_id=run_id)
        insert_arrow(con, "order_events", events_table(journal), run_id=run_id)
        insert_arrow(con, "fills", fills_table(journal), run_id=run_id)
        if risk_events is not None:
            insert_arrow(con, "risk_events", risk_events, run_id=run_id)
        if metrics is not None:
            insert_arrow(con, "metrics", metrics, run_id=run_id)
        if before_commit is not None:
            run_values = {**run_values, **before_commit()}
        update_run(con, run_id, run_values)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def risk_metrics(summary: dict[str, Any], ts: int) -> pa.Table:
    """The risk engine's counters and daily realized P&L as ``metrics`` rows."""
    rows: list[tuple[str, float, dict[str, str]]] = [
        ("risk.orders_checked", float(summary["checked"]), {}),
        ("risk.orders_blocked", float(summary["blocked"]), {})]
    rows += [("risk.blocks", float(n), {"rule": rule})
             for rule, n in summary["blocks_by_rule"].items()]
    rows += [("risk.daily_realized_pnl", pnl, {"day": day})
             for day, pnl in summary["daily_realized_pnl"].items()]
    return pa.table({
        "ts": pa.array([ts] * len(rows), _TS),
        "name": pa.array([r[0] for r in rows], pa.string()),
        "value": pa.array([r[1] for r in rows], pa.float64()),
        "labels": pa.array([json.dumps(r[2], sort_keys=True) for r in rows], pa.string()),
    })


def record_failure(con: Any, run_id: str, error: str, ended_at: str,
                   findings: list[Finding], timeframe: str, policy: str) -> None:
    """Mark a run failed; keep only its QC findings (they often say why)."""
    con.execute("begin transaction")
    try:
        insert_arrow(con, "qc_events", findings_table(
            findings, stage="backtest", timeframe=timeframe, policy=policy, run_id=run_id))
        update_run(con, run_id, {"status": "failed", "error": error, "ended_at": ended_at})
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
