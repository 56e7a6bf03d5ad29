"""A live run's journal in the warehouse: its WAL folded into the tables a backtest writes, and
the background thread that writes them (DESIGN 5.3, "Who opens the DuckDB file").

A live process never holds the warehouse. :class:`Flusher` is a daemon thread beside the
decision loop: every few seconds it reads what was appended to the WAL since its last look
(read-only, no lock: a record being appended reads as a torn tail and waits for the next
cycle) and folds it into what it read before; when there is something new it builds the run's
Arrow tables from the fold (as :func:`tables_from_wal` does, through the same ``journal.split``
and ``order_states`` as a backtest, so the rows have the same shape) and replaces the run's
rows in one short transaction (:func:`replace_run`). While another process
holds the file it backs off (exponentially, with jitter) and tries again; it never raises into
the live process, which never waits on it. Between cycles the file is closed.

Each flush rewrites all of the run's rows, so a flush is idempotent and a crash between
flushes loses nothing: the WAL is the source of truth and the warehouse a copy of it.

The payloads read (extra keys are ignored; times are ms UTC):

* ``control``: the ``start`` record (``initial_cash``, ``run_id``, ``mode``, ``config_hash``,
  ``symbols``, ``timeframe``, ``ts``) gives the ``runs`` row's defaults; other actions are
  not the warehouse's.
* ``bar``: ``symbol``, ``ts`` (open time), ``close``, ``phase`` (``warmup``, ``live`` or
  ``backfill``): every one is a ``run_bars`` row; ``live`` and ``backfill`` count as bars.
* ``decision``: ``symbol``, ``decided_at``, ``latency_us``, ``lag_ms``, ``bars_lag`` (each
  may be None: no row), ``venue_errors`` (cumulative): ``metrics`` rows.
* ``order``, ``order_event``, ``fill``: the payloads of ``recovery/records.py`` plus
  ``wall_ts``; ``orders``, ``order_events``, ``fills``.
* ``risk_event``: ``ts``, ``client_order_id``, ``order_seq``, ``symbol``, ``rule``,
  ``reason_code``, ``detail`` (JSON text); one without ``rule`` carries the risk state only.
* ``gap``: ``symbol``, ``first_ts``, ``count``, ``detected_at`` (its ``recorded_at``; the
  first missing bar's time when absent): a ``qc_events`` row.
* ``alert``: ``ts``, ``kind``, ``severity``, ``message``, ``data``: an ``alerts`` row.
* ``venue_fill``: ``ts``, ``client_order_id``, ``order_seq``, ``symbol``, ``side``,
  ``trade_id``, ``price``, ``qty``, ``commission`` (decimal text), ``commission_asset``,
  ``fee_quote``, ``venue_ts``, ``wall_ts``: a ``venue_fills`` row.
* ``reconciliation``: ``ts``, ``wall_ts``, ``trigger``, ``ok``, ``differences`` (each with
  ``halts``): a ``reconciliations`` row.

``metrics``: per decision ``bars_lag``, ``lag_ms`` and ``strategy_tick_latency`` (ms) labelled
with the symbol, at ``decided_at``; at the last decision, the run's ``orders_submitted`` (orders
that reached a broker), ``orders_blocked_risk``, ``order_proposed_rate`` (orders per live or
backfill bar), ``risk_block_rate`` (blocked per order), ``error_rate`` (venue errors per
decision) and ``pnl_intraday`` (equity now, every fill folded and marked at the last closes,
less the equity at the last bar of the previous UTC day, or the initial cash on the first day).
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from workbench.engine.journal import Record, order_states, split
from workbench.errors import WorkbenchError
from workbench.feeds.qc import Finding, findings_table
from workbench.model import Fill, OrderStatus, Side, ms_to_dt, ms_to_iso, units_to_qty
from workbench.recovery.records import (
    fill_from_record,
    order_event_from_record,
    order_from_record,
)
from workbench.recovery.wal import WAL_FILE, WalReader, WalScan
from workbench.risk.engine import DAY_MS
from workbench.warehouse.connect import open_rw, rollback_quietly
from workbench.warehouse.results import (
    costs_table,
    events_table,
    fills_table,
    insert_results,
    orders_table,
)
from workbench.warehouse.stale import HOST

TABLES = ("run_bars", "orders", "order_events", "fills", "costs", "risk_events", "qc_events",
          "metrics", "alerts", "venue_fills", "reconciliations")
"""Every table a live run writes besides ``runs`` (each has a ``run_id`` column)."""
LIVE_PHASES = frozenset({"live", "backfill"})
"""Bar phases that count as the run's bars (``warmup`` bars are history the strategy saw)."""

_TS = pa.timestamp("ms", tz="UTC")
_DECIMAL = pa.decimal128(38, 18)
_NAME = re.compile(r"[a-z_][a-z0-9_]*")


class FlushError(WorkbenchError):
    """A WAL record the flusher cannot read into the warehouse's tables."""


@dataclass
class LiveTables:
    """What one read of a live run's WAL gives: the warehouse tables by name, and the numbers
    of its ``runs`` row. Times are ms UTC."""

    tables: dict[str, pa.Table]
    last_seq: int
    """The last WAL record read (a torn tail is not read)."""
    bar_count: int
    """Bars of phase ``live`` or ``backfill``."""
    start_ts: int | None
    """Open time of the first bar record (any phase), None before one."""
    end_ts: int | None
    start: dict[str, Any] = field(default_factory=dict)
    """The payload of the run's ``start`` control record ({} before it is read)."""

    def run_fields(self) -> dict[str, Any]:
        """The ``runs`` columns the WAL knows: from the start record (``mode``,
        ``config_hash``, ``symbols``, ``timeframe``, ``initial_cash``, ``started_at``) and the
        bars (``bar_count``, ``start_ts``, ``end_ts``)."""
        s = self.start
        known = {k: s[k] for k in ("run_id", "mode", "config_hash", "symbols", "timeframe",
                                   "initial_cash") if s.get(k) is not None}
        if isinstance(s.get("ts"), int):
            known["started_at"] = ms_to_dt(s["ts"])
        known.update(bar_count=self.bar_count,
                     start_ts=None if self.start_ts is None else ms_to_dt(self.start_ts),
                     end_ts=None if self.end_ts is None else ms_to_dt(self.end_ts))
        return known


def tables_from_wal(journal_dir: str | Path, run_id: str) -> LiveTables:
    """Read a live run's WAL once and build its warehouse tables: ``run_bars``, ``orders``,
    ``order_events``, ``fills``, ``risk_events``, ``qc_events`` (gaps), ``alerts`` and
    ``metrics`` (per decision and run-level), with the columns ``results.py`` gives a
    backtest's. Raises WalCorruption for a damaged log and FlushError for a record that lacks
    what its kind must carry."""
    follower = _Follower(Path(journal_dir), run_id)
    follower.advance()
    return follower.live()


class _Follower:
    """A fold kept between reads: :meth:`advance` folds only the records appended since the
    last call (``WalReader(after=...)``) and :meth:`live` builds the tables from everything
    folded, so a long run costs the flusher thread a read of what is new, not of the whole
    log. After an error it must be dropped (a record may be half folded)."""

    def __init__(self, journal_dir: Path, run_id: str) -> None:
        self.journal_dir = journal_dir
        self.run_id = run_id
        self.fold = _Fold(run_id)
        self.after: WalScan | None = None

    @property
    def last_seq(self) -> int:
        return 0 if self.after is None else self.after.last_seq

    def advance(self) -> int:
        """Fold the records appended since the last call; the last seq folded."""
        # a follower reads the record being appended as torn: not a warning, read it next time
        reader = WalReader(self.journal_dir, after=self.after, warn=False)
        for record in reader:
            handle = _HANDLERS.get(record.kind)
            if handle is None:
                continue
            try:
                handle(self.fold, record.payload)
            except (KeyError, TypeError, ValueError) as exc:
                raise FlushError(f"a {record.kind} record the warehouse cannot take "
                                 f"({type(exc).__name__}: {exc})",
                                 where=f"{self.journal_dir / WAL_FILE}, WAL seq {record.seq}",
                                 fix="the record breaks the payload contract in the "
                                     "docstring of warehouse/flush.py; fix its writer"
                                 ) from None
        if reader.result is not None:
            self.after = reader.result
        return self.last_seq

    def live(self) -> LiveTables:
        """The tables of everything folded so far."""
        fold = self.fold
        return LiveTables(fold.tables(), self.last_seq, fold.bar_count, fold.first_bar_ts,
                          fold.last_bar_ts, dict(fold.start))


class _Fold:
    """The state of one pass over a WAL: rows per table, counters, and the books for
    ``pnl_intraday`` (cash and units moved by fills in order, marked at the bars' closes)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.start: dict[str, Any] = {}
        self.port: list[Record] = []
        self.order_wall: dict[int, int | None] = {}
        self.fill_extra: list[tuple[str | None, int | None]] = []  # venue id, wall_ts
        self.bars: tuple[list[str], list[int], list[float]] = ([], [], [])
        self.bar_count = 0
        self.first_bar_ts: int | None = None
        self.last_bar_ts: int | None = None
        self.risk: list[tuple[Any, ...]] = []
        self.gaps: list[Finding] = []
        self.gaps_detected: list[int] = []
        self.alerts: list[tuple[Any, ...]] = []
        self.venue_fills: list[tuple[Any, ...]] = []
        self.reconciliations: list[tuple[Any, ...]] = []
        self.metrics: list[tuple[int, str, float, dict[str, Any]]] = []
        self.decisions = 0
        self.last_decided_at: int | None = None
        self.venue_errors = 0
        self.submitted: set[str] = set()
        self.blocked: set[str] = set()
        self.orders = 0
        # the books for pnl_intraday
        self.cash = 0.0
        self.units: dict[str, int] = {}
        self.close: dict[str, float] = {}
        self.close_ts: dict[str, int] = {}
        self.day: int | None = None
        self.day_start_equity: float | None = None
        self.equity_at_bar = 0.0

    # --- one handler per kind ---------------------------------------------------------------
    def control(self, p: dict[str, Any]) -> None:
        if p["action"] == "start" and not self.start:
            self.start = dict(p)
            self.cash = float(p["initial_cash"])

    def bar(self, p: dict[str, Any]) -> None:
        symbol, ts, close = p["symbol"], int(p["ts"]), float(p["close"])
        self.bars[0].append(symbol)
        self.bars[1].append(ts)
        self.bars[2].append(close)
        if p.get("phase", "live") in LIVE_PHASES:
            self.bar_count += 1
        if self.first_bar_ts is None:
            self.first_bar_ts = ts
        self.last_bar_ts = ts
        day = ts // DAY_MS
        if self.day is None:
            self.day = day
        elif day > self.day:  # the first bar of a new UTC day: the day starts from the last
            self.day, self.day_start_equity = day, self.equity_at_bar
        if ts >= self.close_ts.get(symbol, ts):  # a backfilled older bar does not mark
            self.close[symbol], self.close_ts[symbol] = close, ts
        self.equity_at_bar = self.equity()

    def decision(self, p: dict[str, Any]) -> None:
        at = int(p["decided_at"])
        labels = {"symbol": p.get("symbol")}
        for name, value in (("bars_lag", p.get("bars_lag")), ("lag_ms", p.get("lag_ms")),
                            ("strategy_tick_latency", None if p.get("latency_us") is None
                             else p["latency_us"] / 1000)):
            if value is not None:
                self.metrics.append((at, name, float(value), labels))
        self.decisions += 1
        self.last_decided_at = at
        self.venue_errors = int(p.get("venue_errors") or 0)

    def order(self, p: dict[str, Any]) -> None:
        record = order_from_record(p)
        self.port.append(record)
        self.order_wall[record.order_seq] = p.get("wall_ts")
        self.orders += 1

    def order_event(self, p: dict[str, Any]) -> None:
        event = order_event_from_record(p)
        self.port.append(event)
        if event.status is OrderStatus.SUBMITTED:
            self.submitted.add(event.client_order_id)
        elif event.status is OrderStatus.BLOCKED:
            self.blocked.add(event.client_order_id)

    def fill(self, p: dict[str, Any]) -> None:
        fill = fill_from_record(p)
        self.port.append(fill)
        self.fill_extra.append((fill.venue_trade_id, p.get("wall_ts")))
        self._apply(fill)

    def risk_event(self, p: dict[str, Any]) -> None:
        if "rule" not in p:  # a risk-state record (reason "state"), not a block
            return
        self.risk.append((p["ts"], p.get("client_order_id"), p.get("order_seq"),
                          p.get("symbol"), p["rule"], p["reason_code"], p.get("detail")))

    def gap(self, p: dict[str, Any]) -> None:
        count, first = int(p["count"]), int(p["first_ts"])
        detected = int(p.get("detected_at") or first)  # recorded_at may not be NULL
        self.gaps.append(Finding(
            rule="gap", severity="warning", symbol=p["symbol"], ts=first, action="kept",
            detail=f"{count} bar{'s' if count != 1 else ''} the venue does not have, from "
                   f"{ms_to_iso(first)}",
            data={"count": count, "first_ts": first, "detected_at": detected}))
        self.gaps_detected.append(detected)

    def alert(self, p: dict[str, Any]) -> None:
        data = p.get("data")
        self.alerts.append((p["ts"], p["kind"], p["severity"], p["message"],
                            None if data is None else json.dumps(data, sort_keys=True,
                                                                 default=str)))

    def venue_fill(self, p: dict[str, Any]) -> None:
        self.venue_fills.append((
            p["ts"], p["client_order_id"], p["order_seq"], p["symbol"], p["side"],
            int(p["trade_id"]), Decimal(p["price"]), Decimal(p["qty"]),
            Decimal(p["commission"]), p["commission_asset"], float(p["fee_quote"]),
            p.get("venue_ts"), p.get("wall_ts")))

    def reconciliation(self, p: dict[str, Any]) -> None:
        differences = p["differences"]
        self.reconciliations.append((
            p["ts"], p.get("wall_ts"), p["trigger"], bool(p["ok"]), len(differences),
            any(d.get("halts") for d in differences),
            json.dumps(differences, sort_keys=True, default=str)))

    # --- the books ----------------------------------------------------------------------------
    def _apply(self, fill: Fill) -> None:
        notional = fill.qty * fill.price  # as Book.apply_fill and the replay fold
        if fill.side is Side.BUY:
            self.cash -= notional + fill.fee
            delta = fill.qty_units
        else:
            self.cash += notional - fill.fee
            delta = -fill.qty_units
        self.units[fill.symbol] = self.units.get(fill.symbol, 0) + delta
        self.close.setdefault(fill.symbol, fill.price)

    def equity(self) -> float:
        return self.cash + sum(units_to_qty(u) * self.close[s]
                               for s, u in self.units.items() if u)

    # --- the tables ---------------------------------------------------------------------------
    def tables(self) -> dict[str, pa.Table]:
        records = split(self.port)
        states = order_states(records)
        orders = orders_table(states).append_column(
            "wall_ts", pa.array([self.order_wall.get(s.order_seq) for s in states], _TS))
        fills = (fills_table(records)
                 .append_column("venue_fill_id",
                                pa.array([x[0] for x in self.fill_extra], pa.string()))
                 .append_column("wall_ts", pa.array([x[1] for x in self.fill_extra], _TS)))
        qc = findings_table(self.gaps, stage="live", timeframe=self.start.get("timeframe"),
                            policy=None, run_id=self.run_id)
        qc = qc.set_column(  # when the gap was seen, so a second flush writes the same rows
            qc.schema.get_field_index("recorded_at"), "recorded_at",
            pa.array([d * 1000 for d in self.gaps_detected], pa.timestamp("us", tz="UTC")))
        symbols, ts, closes = self.bars
        return {
            "run_bars": pa.table({
                "symbol": pa.array(symbols, pa.string()),
                "ts": pa.array(ts, _TS),
                "close": pa.array(closes, pa.float64()),
                "filled": pa.array([False] * len(ts), pa.bool_()),
            }),
            "orders": orders,
            "order_events": events_table(records),
            "fills": fills,
            "costs": costs_table(records),
            "risk_events": _columns(self.risk, (
                ("ts", _TS), ("client_order_id", pa.string()), ("order_seq", pa.int64()),
                ("symbol", pa.string()), ("rule", pa.string()), ("reason_code", pa.string()),
                ("detail", pa.string()))),
            "qc_events": qc,
            "alerts": _columns(self.alerts, (
                ("ts", _TS), ("kind", pa.string()), ("severity", pa.string()),
                ("message", pa.string()), ("data", pa.string()))),
            "venue_fills": _columns(self.venue_fills, (
                ("ts", _TS), ("client_order_id", pa.string()), ("order_seq", pa.int64()),
                ("symbol", pa.string()), ("side", pa.string()), ("trade_id", pa.int64()),
                ("price", _DECIMAL), ("qty", _DECIMAL), ("commission", _DECIMAL),
                ("commission_asset", pa.string()), ("fee_quote", pa.float64()),
                ("venue_ts", _TS), ("wall_ts", _TS))),
            "reconciliations": _columns(self.reconciliations, (
                ("ts", _TS), ("wall_ts", _TS), ("trigger", pa.string()), ("ok", pa.bool_()),
                ("differences", pa.int32()), ("halted", pa.bool_()), ("detail", pa.string()))),
            "metrics": self.metrics_table(),
        }

    def metrics_table(self) -> pa.Table:
        rows = list(self.metrics)
        if self.last_decided_at is not None:
            orders, blocked = self.orders, len(self.blocked)
            start = self.day_start_equity
            if start is None:
                start = float(self.start.get("initial_cash", 0.0))
            rows += [(self.last_decided_at, name, float(value), {}) for name, value in (
                ("orders_submitted", len(self.submitted)),
                ("orders_blocked_risk", blocked),
                ("order_proposed_rate", orders / self.bar_count if self.bar_count else 0.0),
                ("risk_block_rate", blocked / orders if orders else 0.0),
                ("error_rate", self.venue_errors / self.decisions),
                ("pnl_intraday", self.equity() - start),
            )]
        return pa.table({
            "ts": pa.array([r[0] for r in rows], _TS),
            "name": pa.array([r[1] for r in rows], pa.string()),
            "value": pa.array([r[2] for r in rows], pa.float64()),
            "labels": pa.array([_labels(r[3]) for r in rows], pa.string()),
        })


@functools.lru_cache(maxsize=256)
def _labels_text(items: tuple[tuple[str, Any], ...]) -> str:
    return json.dumps(dict(items), sort_keys=True)


def _labels(labels: dict[str, Any]) -> str:
    """A metric's labels as JSON, each distinct set written once (a run has a few, and a row a
    decision): the flusher's thread holds the interpreter lock the decision loop needs."""
    return _labels_text(tuple(sorted(labels.items())))


_HANDLERS: dict[str, Callable[[_Fold, dict[str, Any]], None]] = {
    "control": _Fold.control, "bar": _Fold.bar, "decision": _Fold.decision,
    "order": _Fold.order, "order_event": _Fold.order_event, "fill": _Fold.fill,
    "risk_event": _Fold.risk_event, "gap": _Fold.gap, "alert": _Fold.alert,
    "venue_fill": _Fold.venue_fill, "reconciliation": _Fold.reconciliation,
}  # snapshot_ref and kinds added later are not the warehouse's


def _columns(rows: list[tuple[Any, ...]], schema: tuple[tuple[str, pa.DataType], ...]
             ) -> pa.Table:
    return pa.table({name: pa.array([r[i] for r in rows], kind)
                     for i, (name, kind) in enumerate(schema)})


def replace_run(warehouse: str | Path, run_row: dict[str, Any], tables: dict[str, pa.Table],
                *, wait_s: float, also: Sequence[tuple[dict[str, Any], dict[str, pa.Table]]] = (),
                views: list[Any] | None = None) -> tuple[float, float]:
    """Replace one run's rows in one short transaction: open read-write (waiting up to
    ``wait_s`` while another process holds the file), delete the run's ``runs`` row and its
    rows in every table of :data:`TABLES` and of ``tables``, insert ``run_row`` and
    ``tables`` by Arrow (columns a table lacks are NULL), commit, close. Idempotent. ``also``:
    more runs (a row and its tables each, e.g. the live run's backtest twin) replaced in the
    same transaction; ``views``: deployed first (``views.deploy``, its own transaction).
    Returns the seconds the file was held and the seconds spent waiting for it."""
    runs = [(run_row, tables), *also]
    for _row, more in runs:
        for name in more:
            if not _NAME.fullmatch(name):
                raise ValueError(f"bad table name {name!r}")
    asked = time.perf_counter()
    connected: list[float] = []
    # Not results._transaction: its signals_held makes the main thread's Ctrl-C handler defer
    # the interruption while any commit runs and then raises it on the committing thread,
    # which here is the flusher's. A flush needs no on_commit note either: it is idempotent.
    con = open_rw(warehouse, wait_s=wait_s, connected=connected)
    try:
        con.execute("set threads = 1")  # a small write: leave the other cores to the loop
        if views is not None:
            from workbench.warehouse import views as view_sql

            view_sql.deploy(con, views)
        con.execute("begin transaction")
        try:
            for row, more in runs:
                for name in ["runs", *dict.fromkeys([*TABLES, *more])]:
                    con.execute(f"delete from {name} where run_id = ?", [row["run_id"]])
                insert_results(con, row, more)
            con.execute("commit")
        except BaseException:
            rollback_quietly(con)
            raise
    finally:
        con.close()
    return time.perf_counter() - connected[0], connected[0] - asked


class Flusher:
    """Writes a live run's WAL into the warehouse from a daemon thread.

    ``run_row_fn`` (called on the flusher's thread) gives the ``runs`` row as the live process
    sees it now (``run_id``, ``status``, ``name``, ``config_json``, ``ended_at``, ...); the
    WAL's start record fills in what it leaves out (:meth:`LiveTables.run_fields`);
    ``bar_count``, ``start_ts`` and ``end_ts`` always come from the WAL (they describe the rows
    written with them); ``pid`` and ``host`` default to this process (a ``running`` row needs
    them, or the next read-write open marks it abandoned).

    A cycle runs every ``every_s`` seconds, or soon after :meth:`request`; it flushes when the
    WAL has records past :attr:`last_flushed_seq` (or on request), waiting at most ``wait_s``
    for the file. A failure (another process holds the file, a damaged log) is counted, kept
    in :attr:`last_error`, logged as a warning on ``log`` (a ``JsonlLog``; never with the row's
    values) and retried after an exponential backoff with jitter (``retry_s`` doubling up to
    ``max_retry_s``); nothing is raised into the caller. :meth:`stop` ends the thread and,
    with ``final``, flushes the tail. ``also_fn`` gives more runs to replace in the same
    transaction (the live run's backtest twin); ``views`` are deployed with the first flush.
    """

    def __init__(self, warehouse: str | Path, journal_dir: str | Path,
                 run_row_fn: Callable[[], dict[str, Any]], *, every_s: float = 5.0,
                 wait_s: float = 0.5, log: Any = None, retry_s: float = 1.0,
                 max_retry_s: float = 30.0,
                 also_fn: Callable[[], Sequence[tuple[dict[str, Any], dict[str, pa.Table]]]]
                 | None = None, views: list[Any] | None = None) -> None:
        self.warehouse = Path(warehouse)
        self.journal_dir = Path(journal_dir)
        self.run_row_fn = run_row_fn
        self.also_fn = also_fn
        self._views = views  # deployed with the first flush that goes in
        self.every_s = every_s
        self.wait_s = wait_s
        self.log = log
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self.last_flushed_seq = 0
        """The last WAL record in the warehouse."""
        self.last_error: str | None = None
        """Why the last attempt failed; None once one succeeds."""
        self.flushes = 0
        self.failures = 0
        self.last_hold_s: float | None = None
        """Seconds the last flush held the warehouse file."""
        self._streak = 0  # failures in a row
        self._follower: _Follower | None = None
        self._requested = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._one_at_a_time = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread; its first cycle runs at once."""
        if self._thread is not None:
            raise RuntimeError("this Flusher was started already")
        self._thread = threading.Thread(target=self._run, name="warehouse-flusher",
                                        daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Flush soon, whether or not the WAL has new records (e.g. the run's status moved)."""
        self._requested = True
        self._wake.set()

    def stop(self, final: bool = True, timeout_s: float = 30.0) -> bool:
        """End the thread; with ``final``, flush once more (retrying with backoff for up to
        ``timeout_s`` in all while another process holds the file). Returns whether the
        final flush went in (True without ``final``). Raises nothing of its own (a Ctrl-C
        meanwhile is still the caller's)."""
        deadline = time.monotonic() + timeout_s
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        if not final:
            return True
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            if self._flush(force=True, wait_s=min(self.wait_s, remaining), lock_s=remaining):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(self._backoff(), 1.0, remaining))

    def flush_now(self) -> bool:
        """One flush on the caller's thread, before :meth:`start` (a live run's first: the
        schema, the views and the runs row go in before bars arrive, so that work never
        competes with a decision for the interpreter lock). True when it went in."""
        return self._flush(force=True, wait_s=self.wait_s)

    # --- the thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        delay = 0.0
        while True:
            self._wake.wait(delay)
            if self._stopping.is_set():
                return
            self._wake.clear()
            forced, self._requested = self._requested, False
            ok = self._flush(force=forced, wait_s=self.wait_s)
            delay = self.every_s if ok else self._backoff()

    def _backoff(self) -> float:
        base = min(self.max_retry_s, self.retry_s * 2 ** max(0, self._streak - 1))
        return base * random.uniform(0.5, 1.0)

    def _flush(self, *, force: bool, wait_s: float, lock_s: float = -1) -> bool:
        """One attempt; True when the warehouse is up to date (or there was nothing to do).
        False, without counting a failure, when the thread's cycle still runs after
        ``lock_s`` seconds."""
        if not self._one_at_a_time.acquire(timeout=lock_s):
            return False
        try:
            run_id = "?"
            try:
                row = self.run_row_fn()
                run_id = str(row.get("run_id", run_id))
                if self._follower is None or self._follower.run_id != run_id:
                    self._follower = _Follower(self.journal_dir, run_id)
                try:
                    seq = self._follower.advance()
                except BaseException:
                    self._follower = None  # a record may be half folded: read afresh
                    raise
                if not force and seq <= self.last_flushed_seq:
                    return True
                live = self._follower.live()
                wal = live.run_fields()
                full = {**wal, "pid": os.getpid(), "host": HOST, **row}
                full.update({k: wal[k] for k in ("bar_count", "start_ts", "end_ts")})
                also = self.also_fn() if self.also_fn is not None else ()
                held, _waited = replace_run(self.warehouse, full, live.tables, wait_s=wait_s,
                                            also=also, views=self._views)
                self._views = None
            except Exception as exc:  # a flusher never raises into the live process
                self.failures += 1
                self._streak += 1
                self.last_error = _describe(exc)
                if self.log is not None:
                    self.log.warning(
                        "warehouse", f"could not flush run {run_id} to the warehouse: "
                        f"{self.last_error}; the journal keeps everything, retrying",
                        run_id=run_id, failures_in_a_row=self._streak,
                        last_flushed_seq=self.last_flushed_seq)
                return False
            self.last_flushed_seq = live.last_seq
            self.last_hold_s = held
            self.flushes += 1
            self._streak = 0
            self.last_error = None
            return True
        finally:
            self._one_at_a_time.release()


def _describe(exc: Exception) -> str:
    """The error for ``last_error`` and the log: our own errors say what and where (they are
    written to hold no values); others by type and first line, cut short."""
    if isinstance(exc, WorkbenchError):
        return str(exc).splitlines()[0]
    first = (str(exc).splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
