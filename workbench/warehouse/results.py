"""A run's rows in the warehouse: its ``runs`` row, orders, events, fills, the bars it saw, its
QC findings, risk events and metrics, built as Arrow tables in memory and written in one short
transaction at the end (docs/architecture.md, "Who holds the warehouse")."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from workbench.book import Charge
from workbench.engine.journal import (
    Journal,
    JournalContents,
    OrderEvent,
    OrderState,
    as_columns,
    contents,
    order_states,
)
from workbench.feeds.history import LoopData
from workbench.feeds.qc import Finding, findings_table
from workbench.model import QTY_SCALE, Fill
from workbench.warehouse.io import insert_arrow

_TS = pa.timestamp("ms", tz="UTC")


def insert_run(con: Any, row: dict[str, Any]) -> None:
    """A run's ``runs`` row, as it ends (``completed`` or ``failed``), on an open connection."""
    cols = list(row)
    con.execute(
        f"insert into runs ({', '.join(cols)}) values ({', '.join('?' for _ in cols)})",
        [_param(row[c]) for c in cols])


def _param(value: Any) -> Any:
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, dict) else value


def strings(values: Sequence[Any]) -> pa.Array:
    """A string column (None as null) of values that repeat: enums, symbols, reasons. Each
    distinct value becomes text once; pyarrow converts a ``str`` subclass such as a StrEnum
    value by value, slowly (about 4 us each: a quarter second for a year's order events)."""
    codes: dict[Any, int] = {}
    index = np.fromiter((codes.setdefault(v, len(codes)) for v in values), np.int32,
                        len(values))
    # a str's own text, as pyarrow takes it: str() of a (str, Enum) member is "Tag.ENTRY"
    words = pa.array([None if v is None else str.__str__(v) if isinstance(v, str) else str(v)
                      for v in codes], pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(index, pa.int32()), words).cast(pa.string())


def orders_table(o: list[OrderState]) -> pa.Table:
    """Each order's latest state (``journal.order_states``)."""
    c = as_columns(o, OrderState._fields)
    return pa.table({
        "order_seq": pa.array(c["order_seq"], pa.int64()),
        "client_order_id": pa.array(c["client_order_id"], pa.string()),
        "symbol": strings(c["symbol"]),
        "side": strings(c["side"]),
        "type": strings(c["type"]),
        "qty": pa.array(c["qty"], pa.float64()),
        "limit_price": pa.array(c["limit_price"], pa.float64()),
        "status": strings(c["status"]),
        "reason": strings(c["reason"]),
        "ts": pa.array(c["ts"], _TS),
        "bar_ts": pa.array(c["bar_ts"], _TS),
        "updated_ts": pa.array(c["updated_ts"], _TS),
        "filled_qty": pa.array(np.asarray(c["filled_units"], dtype=np.int64) / QTY_SCALE,
                               pa.float64()),  # units_to_qty, the same division per row
        "expire_after_bars": pa.array(c["expire_after_bars"], pa.int64()),
        "reduce_only": pa.array(c["reduce_only"], pa.bool_()),
        "tag": strings(c["tag"]),
    })


def events_table(records: JournalContents) -> pa.Table:
    e = records.events
    c = as_columns(e, OrderEvent._fields)
    return pa.table({
        "event_seq": pa.array(range(1, len(e) + 1), pa.int64()),
        "order_seq": pa.array(c["order_seq"], pa.int64()),
        "client_order_id": pa.array(c["client_order_id"], pa.string()),
        "ts": pa.array(c["ts"], _TS),
        "status": strings(c["status"]),
        "reason": strings(c["reason"]),
    })


def fills_table(records: JournalContents) -> pa.Table:
    c = as_columns(records.fills, Fill._fields)
    return pa.table({
        "fill_seq": pa.array(c["fill_seq"], pa.int64()),
        "order_seq": pa.array(c["order_seq"], pa.int64()),
        "client_order_id": pa.array(c["client_order_id"], pa.string()),
        "symbol": strings(c["symbol"]),
        "side": strings(c["side"]),
        "qty": pa.array(c["qty"], pa.float64()),
        "price": pa.array(c["price"], pa.float64()),
        "fee": pa.array(c["fee"], pa.float64()),
        "ts": pa.array(c["ts"], _TS),
        "bar_ts": pa.array(c["bar_ts"], _TS),
    })


COST_KINDS = ("fee", "spread", "slippage", "impact")
"""The ``costs`` rows a fill makes, in this order (a zero amount makes none)."""


def costs_table(records: JournalContents) -> pa.Table:
    """The ``costs`` rows of the fills: fee, spread, slippage and impact, each non-zero."""
    c = as_columns(records.fills, Fill._fields)
    amounts = np.array([c["fee"], c["spread_cost"], c["slippage_cost"], c["impact_cost"]],
                       dtype=np.float64).reshape(len(COST_KINDS), -1).T  # a row per fill
    fill, kind = np.nonzero(amounts)
    kinds = np.asarray(COST_KINDS, dtype=object)
    return pa.table({
        "ts": pa.array(np.asarray(c["ts"], dtype=np.int64)[fill], _TS),
        "symbol": pa.array(np.asarray(c["symbol"], dtype=object)[fill], pa.string()),
        "kind": pa.array(kinds[kind], pa.string()),
        "amount": pa.array(amounts[fill, kind], pa.float64()),
        "fill_seq": pa.array(np.asarray(c["fill_seq"], dtype=np.int64)[fill], pa.int64()),
    })


def charges_table(charges: Sequence[Charge]) -> pa.Table:
    """The ``costs`` rows of a run's charges (``Book.charges``: borrow, funding), at the bar
    time each was paid on, with no fill."""
    return pa.table({
        "ts": pa.array([c.ts for c in charges], _TS),
        "symbol": pa.array([c.symbol for c in charges], pa.string()),
        "kind": pa.array([c.kind for c in charges], pa.string()),
        "amount": pa.array([c.amount for c in charges], pa.float64()),
        "fill_seq": pa.nulls(len(charges), pa.int64()),
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


def run_tables(data: LoopData, journal: Journal | JournalContents, findings: list[Finding],
               timeframe: str, policy: str, run_id: str, risk_events: pa.Table | None = None,
               metrics: pa.Table | None = None, *, orders: list[OrderState] | None = None,
               charges: Sequence[Charge] = ()) -> dict[str, pa.Table]:
    """Every row a completed run adds besides its ``runs`` row, by table name. The orders,
    events and fills come from any journal, read through the port (``journal.contents``);
    ``orders``, when the caller has folded them already, are ``order_states`` of it;
    ``charges`` (the books' borrow and funding) are ``costs`` rows after the fills'."""
    records = journal if isinstance(journal, JournalContents) else contents(journal)
    tables = {
        "run_bars": run_bars_table(data),
        "qc_events": findings_table(findings, stage="backtest", timeframe=timeframe,
                                    policy=policy, run_id=run_id),
        "orders": orders_table(order_states(records) if orders is None else orders),
        "order_events": events_table(records),
        "fills": fills_table(records),
        "costs": costs_table(records),
    }
    if charges:
        tables["costs"] = pa.concat_tables([tables["costs"], charges_table(charges)])
    if risk_events is not None:
        tables["risk_events"] = risk_events
    if metrics is not None:
        tables["metrics"] = metrics
    return tables


def risk_metrics(summary: dict[str, Any], ts: int) -> pa.Table:
    """The risk engine's counters and daily realized P&L as ``metrics`` rows."""
    rows: list[tuple[str, float, dict[str, str]]] = [
        ("risk.orders_checked", float(summary["checked"]), {}),
        ("risk.orders_blocked", float(summary["blocked"]), {})]
    rows += [("risk.blocks", float(n), {"rule": rule})
             for rule, n in summary["blocks_by_rule"].items()]
    rows += [("risk.daily_realized_pnl", pnl, {"day": day})
             for day, pnl in summary["daily_realized_pnl"].items()]
    return metrics_table(rows, ts)


HEADLINE = "headline."  # the prefix of the headline numbers' metrics rows


def headline_metrics(headline: dict[str, Any], ts: int) -> pa.Table:
    """The run's headline numbers (``rpt.performance``, as the run computed them) as
    ``metrics`` rows named ``headline.<column>``, so listing runs never recomputes them."""
    rows: list[tuple[str, float, dict[str, str]]] = [
        (HEADLINE + key, float(value), {}) for key, value in headline.items()
        if isinstance(value, int | float) and not isinstance(value, bool)]
    return metrics_table(rows, ts)


def metrics_table(rows: list[tuple[str, float, dict[str, str]]], ts: int) -> pa.Table:
    return pa.table({
        "ts": pa.array([ts] * len(rows), _TS),
        "name": pa.array([r[0] for r in rows], pa.string()),
        "value": pa.array([r[1] for r in rows], pa.float64()),
        "labels": pa.array([json.dumps(r[2], sort_keys=True) for r in rows], pa.string()),
    })


def insert_results(con: Any, run_row: dict[str, Any], tables: dict[str, pa.Table]) -> None:
    """The ``runs`` row and every table of a run, on an open connection."""
    insert_run(con, run_row)
    for name, table in tables.items():
        own = {} if "run_id" in table.column_names else {"run_id": run_row["run_id"]}
        insert_arrow(con, name, table, **own)


def write_run(warehouse: Path, run_row: dict[str, Any], tables: dict[str, pa.Table],
              view_list: list[Any], *, wait_s: float,
              on_commit: Callable[[], None] | None = None) -> tuple[float, float]:
    """Write one finished run in one short transaction: open read-write (waiting up to
    ``wait_s`` while another process holds the file), deploy the views, insert the ``runs``
    row and every table by Arrow, commit, close. ``on_commit`` is called right after the
    commit, with Ctrl-C and SIGTERM held back until it returns, so the caller knows the run
    is in the warehouse even when a signal lands while the file is closed. Returns the
    seconds the file was held and the seconds spent waiting for it."""
    from workbench.warehouse import views

    asked = time.perf_counter()
    with write_transaction(warehouse, wait_s, before=lambda con: views.deploy(con, view_list),
                      on_commit=on_commit, run_id=run_row["run_id"]) as (con, opened):
        insert_results(con, run_row, tables)
    return time.perf_counter() - opened, opened - asked


def record_failure(warehouse: Path, run_row: dict[str, Any], findings: list[Finding],
                   timeframe: str, policy: str, *, wait_s: float) -> None:
    """A failed run's ``runs`` row (status ``failed``, with its error) and its QC findings
    (they often say why), in one short transaction."""
    with write_transaction(warehouse, wait_s) as (con, _):
        insert_results(con, run_row, {"qc_events": findings_table(
            findings, stage="backtest", timeframe=timeframe, policy=policy,
            run_id=run_row["run_id"])})


@contextlib.contextmanager
def write_transaction(warehouse: Path, wait_s: float,
                 before: Callable[[Any], object] | None = None,
                 on_commit: Callable[[], None] | None = None, run_id: str | None = None
                 ) -> Iterator[tuple[Any, float]]:
    """Open read-write, run ``before`` (outside the transaction), then one transaction that
    commits when the block ends and rolls back when it raises; closed either way. Yields the
    connection and the moment the file became ours (``time.perf_counter()``). ``on_commit``
    runs right after the commit with Ctrl-C and SIGTERM held back, also when a signal taken
    inside DuckDB surfaces from a commit that went through (the run ``run_id`` is there)."""
    from workbench.errors import signals_held
    from workbench.warehouse.connect import open_rw, rollback_quietly

    connected: list[float] = []
    con = open_rw(warehouse, wait_s=wait_s, connected=connected)
    try:
        if before is not None:
            before(con)
        con.execute("begin transaction")
        try:
            yield con, connected[0]
            with signals_held():
                try:
                    con.execute("commit")
                except BaseException:
                    if (run_id is not None and _committed(con, run_id)
                            and on_commit is not None):
                        on_commit()
                    raise
                if on_commit is not None:
                    on_commit()
        except BaseException:
            rollback_quietly(con)  # the failure may have ended the transaction
            raise
    finally:
        con.close()


def _committed(con: Any, run_id: str) -> bool:
    """After a commit raised: whether the run's row is in the warehouse. A transaction still
    open is rolled back first (its rows were not committed)."""
    import duckdb

    try:
        con.execute("rollback")  # fails when the commit ended the transaction
        return False
    except duckdb.Error:
        pass
    try:
        return bool(con.execute("select count(*) from runs where run_id = ?",
                                [run_id]).fetchall()[0][0])
    except Exception:  # cannot tell: say not committed, as before
        return False
