"""The live monitor: what ``notebooks/live_monitor.ipynb`` shows about a shadow, paper or live
run, read in one read-only pass over the warehouse (closed at once), plus the run's
``status.json`` when its run directory is on this machine.

    import workbench.report as wr
    m = wr.load_live(run_id)          # None: the latest shadow/paper/live run
    wr.live_headline_table(m); wr.live_lag_figure(m); wr.live_book_table(m)
    wr.live_orders_table(m); wr.live_alerts_table(m); wr.live_divergence_table(m)

The warehouse holds what the run's flusher last wrote (it lags the run by a flush);
``status.json`` is rewritten every bar, so the headline prefers it for the run's status, bars,
last bar and lag. Latency percentiles (p50/p95/p99 of ``strategy_tick_latency``, bar arrival to
decision, in ms) are computed over every decision in ``metrics``; the lag and latency series are
downsampled in SQL for display (the worst value of each bucket kept). The book is folded from
the run's fills and its initial cash, in the engine's integer units, and marked at the last
close in ``run_bars``. The first divergence is the first row of ``rpt.live_vs_backtest`` with
``agree = false`` in (bar_ts, symbol, rank_in_bar) order. The run's config is never shown (it may
name a venue key); run ids reach SQL only as bound parameters.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.model import QTY_SCALE
from workbench.report.project import project_path, runs_dir_path, warehouse_path
from workbench.report.tables import Table
from workbench.warehouse.connect import reading

LIVE_MODES = ("shadow", "paper", "live")
MAX_POINTS = 1_000
MAX_ORDERS = 50
MAX_ALERTS = 200
COUNTS = ("orders_submitted", "orders_blocked_risk")
ROLLUPS = ("orders_submitted", "orders_blocked_risk", "order_proposed_rate", "risk_block_rate",
           "error_rate", "pnl_intraday")


@dataclass
class LiveMonitor:
    """What the monitor shows about one live run. Times are ms since the epoch, UTC."""

    run_id: str
    run: dict[str, Any]
    status: dict[str, Any] | None = None          # runs/<run_id>/status.json, if found
    status_path: str | None = None
    latency: dict[str, Any] = field(default_factory=dict)  # decisions, p50/p95/p99/max_ms
    lag: dict[str, list[Any]] = field(default_factory=dict)  # ts, lag_ms, bars_lag, latency_ms
    decisions_per_point: int = 1
    rollups: dict[str, Any] = field(default_factory=dict)  # the run's latest rollup metrics
    last_lag_ms: float | None = None
    book: list[dict[str, Any]] = field(default_factory=list)  # symbol, qty, mark, mark_ts, value
    cash: float = 0.0
    orders: list[dict[str, Any]] = field(default_factory=list)  # the latest, newest first
    orders_total: int = 0
    fills: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    alerts_total: int = 0
    twin: bool = False                           # the run's backtest twin is in the warehouse
    compared: int = 0                            # rows of rpt.live_vs_backtest for the run
    disagreements: int = 0
    divergence: dict[str, Any] | None = None     # the first row with agree = false

    @property
    def initial_cash(self) -> float:
        return float(self.run.get("initial_cash") or 0.0)

    @property
    def equity(self) -> float:
        return self.cash + sum(p["value"] or 0.0 for p in self.book)

    @property
    def mode(self) -> str | None:
        return self.run.get("mode")


def _rows(con: Any, query: str, params: list[Any]) -> list[dict[str, Any]]:
    rel = con.sql(query, params=params)
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def resolve_live_run_id(con: Any, run_id: str | None) -> str:
    """``run_id`` if the warehouse has it as a live run; the latest shadow, paper or live run
    when None; otherwise an error saying what there is."""
    modes = list(LIVE_MODES)
    if run_id is None:
        rows = con.execute("select run_id from runs where list_contains(?, mode) "
                           "order by started_at desc, run_id desc limit 1", [modes]).fetchall()
        if not rows:
            raise WorkbenchError("the warehouse has no shadow, paper or live run yet",
                                 fix="start one: workbench paper --config "
                                     "configs/paper_demo.yaml (docs/operations.md)")
        return str(rows[0][0])
    found = con.execute("select mode from runs where run_id = ?", [run_id]).fetchall()
    if not found:
        known = [r[0] for r in con.execute(
            "select run_id from runs where list_contains(?, mode) order by started_at desc "
            "limit 3", [modes]).fetchall()]
        raise WorkbenchError(f"no such run: {run_id}",
                             fix=(f"live runs: {', '.join(known)}; " if known else "")
                             + "list runs with `workbench runs list`")
    if found[0][0] not in LIVE_MODES:
        raise WorkbenchError(f"run {run_id} is a {found[0][0]} run, not a shadow, paper or "
                             "live run", fix="open it in notebooks/report.ipynb instead")
    return run_id


def load_live(run_id: str | None = None, *, warehouse: str | Path | None = None,
              runs_dir: str | Path | None = None, max_orders: int = MAX_ORDERS,
              max_points: int = MAX_POINTS) -> LiveMonitor:
    """Read what the monitor shows about ``run_id`` (None: the latest shadow, paper or live
    run). ``warehouse=None``: ``$WB_WAREHOUSE``, else the project's; ``status.json`` is looked
    for in ``runs_dir/<run_id>`` (when given), then the run's ``runs.run_dir``, then
    ``$WB_RUNS_DIR`` or the project's ``runs/``."""
    with reading(warehouse_path(warehouse)) as con:
        m = _load(con, resolve_live_run_id(con, run_id), max_orders, max_points)
    _read_status(m, runs_dir)
    return m


def _load(con: Any, run_id: str, max_orders: int, max_points: int) -> LiveMonitor:
    from workbench.secrets import redact
    from workbench.warehouse.stale import effective_status

    run = _rows(con, "select * from runs where run_id = ?", [run_id])[0]
    run["status"] = effective_status(run.get("status"), run.get("pid"), run.get("host"))
    for key in ("config_json", "versions", "view_versions"):
        if isinstance(run.get(key), str):
            run[key] = json.loads(run[key])
    run["config_json"] = redact(run.get("config_json"))
    m = LiveMonitor(run_id, run)
    rid = [run_id]
    _latency(con, m, max_points)
    for name, value in con.execute(
            "select name, arg_max(value, ts) from metrics where run_id = ? "
            "and list_contains(?, name) group by name", [run_id, list(ROLLUPS)]).fetchall():
        m.rollups[name] = int(value) if name in COUNTS and value is not None else value
    m.book = _rows(con, f"""
        with pos as (
            select symbol,
                   sum(case when side = 'BUY' then round(qty * {QTY_SCALE})
                            else -round(qty * {QTY_SCALE}) end)::bigint as units
            from fills where run_id = ? group by symbol),
        mark as (
            select symbol, arg_max(close, ts) as mark, epoch_ms(max(ts)) as mark_ts
            from run_bars where run_id = ? group by symbol)
        select pos.symbol, pos.units / {QTY_SCALE} as qty, mark.mark, mark.mark_ts,
               pos.units / {QTY_SCALE} * mark.mark as value
        from pos left join mark using (symbol)
        where pos.units <> 0 order by pos.symbol""", [run_id, run_id])
    flows = con.execute(
        "select coalesce(sum(case when side = 'BUY' then -(qty * price) - fee "
        "else qty * price - fee end), 0) from fills where run_id = ?", rid).fetchall()[0][0]
    m.cash = m.initial_cash + float(flows)
    m.orders_total = con.execute("select count(*) from orders where run_id = ?",
                                 rid).fetchall()[0][0]
    m.orders = _rows(con, """
        select order_seq, client_order_id, symbol, side, type, qty, limit_price, status, reason,
               filled_qty, tag, epoch_ms(bar_ts) as bar_ts, epoch_ms(ts) as ts,
               epoch_ms(wall_ts) as wall_ts
        from orders where run_id = ? order by order_seq desc limit ?""", [run_id, max_orders])
    m.fills = _rows(con, """
        select fill_seq, order_seq, symbol, side, qty, price, fee, epoch_ms(bar_ts) as bar_ts,
               epoch_ms(ts) as ts, epoch_ms(wall_ts) as wall_ts, venue_fill_id
        from fills where run_id = ? order by fill_seq desc limit ?""", [run_id, max_orders])
    m.alerts_total = con.execute("select count(*) from alerts where run_id = ?",
                                 rid).fetchall()[0][0]
    m.alerts = _rows(con, "select epoch_ms(ts) as ts, kind, severity, message, data "
                          "from alerts where run_id = ? order by ts desc, kind limit ?",
                     [run_id, MAX_ALERTS])
    m.twin = bool(con.execute("select count(*) from runs where run_id = ?",
                              [f"{run_id}.backtest"]).fetchall()[0][0])
    deployed = bool(con.execute(
        "select count(*) from duckdb_views() where schema_name = 'rpt' "
        "and view_name = 'live_vs_backtest'").fetchall()[0][0])
    if deployed:
        m.compared, m.disagreements = con.execute(
            "select count(*), count(*) filter (where not agree) from rpt.live_vs_backtest "
            "where run_id = ?", rid).fetchall()[0]
        first = _rows(con, """
            select symbol, epoch_ms(bar_ts) as bar_ts, rank_in_bar, live_order_seq, live_side,
                   live_type, live_qty, live_limit_price, live_status, backtest_order_seq,
                   backtest_side, backtest_type, backtest_qty, backtest_limit_price,
                   backtest_status
            from rpt.live_vs_backtest where run_id = ? and not agree
            order by bar_ts, symbol, rank_in_bar limit 1""", rid)
        m.divergence = first[0] if first else None
    return m


def _latency(con: Any, m: LiveMonitor, max_points: int) -> None:
    """Percentiles over every decision, the last lag, and the downsampled series."""
    rid = [m.run_id]
    n, p50, p95, p99, top = con.execute(
        "select count(*), quantile_cont(value, 0.5), quantile_cont(value, 0.95), "
        "quantile_cont(value, 0.99), max(value) from metrics "
        "where run_id = ? and name = 'strategy_tick_latency'", rid).fetchall()[0]
    m.latency = {"decisions": n, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": top}
    last = con.execute("select arg_max(value, ts) from metrics where run_id = ? "
                       "and name = 'lag_ms'", rid).fetchall()[0][0]
    m.last_lag_ms = None if last is None else float(last)
    points = con.execute("select count(distinct ts) from metrics where run_id = ? and name "
                         "in ('lag_ms', 'bars_lag', 'strategy_tick_latency')",
                         rid).fetchall()[0][0]
    per = max(1, math.ceil(points / max(1, max_points)))
    m.decisions_per_point = per
    rel = con.sql("""
        with per_decision as (
            select ts,
                   max(value) filter (where name = 'lag_ms') as lag_ms,
                   max(value) filter (where name = 'bars_lag') as bars_lag,
                   max(value) filter (where name = 'strategy_tick_latency') as latency_ms
            from metrics
            where run_id = ? and name in ('lag_ms', 'bars_lag', 'strategy_tick_latency')
            group by ts)
        select epoch_ms(max(ts)) as ts, max(lag_ms) as lag_ms, max(bars_lag) as bars_lag,
               max(latency_ms) as latency_ms
        from (select *, (row_number() over (order by ts) - 1) // ? as bucket
              from per_decision)
        group by bucket order by 1""", params=[m.run_id, per])
    rows = rel.fetchall()
    m.lag = {name: [r[i] for r in rows] for i, name in enumerate(rel.columns)}


def _read_status(m: LiveMonitor, runs_dir: str | Path | None) -> None:
    candidates: list[Path] = []
    if runs_dir is not None:
        candidates.append(runs_dir_path(runs_dir) / m.run_id)
    if m.run.get("run_dir"):
        candidates.append(project_path(str(m.run["run_dir"])))  # relative: the project's
    candidates.append(runs_dir_path(None) / m.run_id)
    from workbench.engine.live import STATUS_FILE
    from workbench.warehouse.stale import effective_status

    for folder in candidates:
        path = folder / STATUS_FILE
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(found, dict) and found.get("run_id") in (None, m.run_id):
            # a running status of a process that is gone is abandoned, as a runs row's
            found["status"] = effective_status(found.get("status"), found.get("pid"),
                                               found.get("host"))
            m.status, m.status_path = found, str(path)
            return


# --- rendering -----------------------------------------------------------------------------
def _status_or_row(m: LiveMonitor, status_key: str, row_value: Any) -> Any:
    if m.status is not None and m.status.get(status_key) is not None:
        return m.status[status_key]
    return row_value


def latency_text(m: LiveMonitor) -> str:
    """``p50 1.23 ms, p95 4.56 ms, p99 7.89 ms`` (n/a before the first decision)."""
    from workbench.report.tables import round_for_display

    parts = []
    for key in ("p50", "p95", "p99"):
        value = m.latency.get(f"{key}_ms")
        parts.append(f"{key} " + ("n/a" if value is None
                                  else f"{round_for_display(float(value))} ms"))
    return ", ".join(parts)


def live_headline_table(m: LiveMonitor) -> Table:
    """Mode, status, bars, last bar, lag, latency percentiles, orders submitted and blocked,
    P&L today and alerts."""
    run, quote = m.run, m.run.get("quote") or "quote"
    status = _status_or_row(m, "status", run.get("status"))
    halted = (m.status or {}).get("halted")
    lag = _status_or_row(m, "lag_ms", m.last_lag_ms)
    last_alert = m.alerts[0] if m.alerts else None
    rows: list[list[Any]] = [
        ["mode", run.get("mode")],
        ["status", f"{status} (halted: {halted})" if halted else status],
        ["bars decided", _status_or_row(m, "bars", run.get("bar_count"))],
        ["last bar", _status_or_row(m, "last_bar_ts", run.get("end_ts"))],
        ["lag behind the bar's close (ms)", lag],
        ["bar arrival to decision", f"{latency_text(m)} "
                                    f"(over {m.latency.get('decisions', 0)} decisions)"],
        ["orders submitted", m.rollups.get("orders_submitted")],
        ["orders blocked by risk", m.rollups.get("orders_blocked_risk")],
        [f"P&L today ({quote})", m.rollups.get("pnl_intraday",
                                               (m.status or {}).get("pnl_today"))],
        [f"equity ({quote})", m.equity],
        ["alerts", f"{m.alerts_total}" + (f" (last: {last_alert['kind']}, "
                                          f"{_iso(last_alert['ts'])})" if last_alert else "")],
    ]
    if m.status is not None and m.status.get("last_error"):
        rows.append(["last error", m.status["last_error"]])
    source = (f"status.json ({m.status.get('updated_at')}) and the warehouse"
              if m.status is not None else "the warehouse (no status.json found)")
    return Table(f"Live run {m.run_id}", ["metric", "value"], rows,
                 note=f"from {source}; latency percentiles over every decision in metrics")


def _iso(ms: Any) -> str:
    from workbench.model import ms_to_iso

    return "" if ms is None else ms_to_iso(int(ms))


def live_lag_figure(m: LiveMonitor) -> Any:
    """The lag behind each bar's close (top) and bar arrival to decision latency (bottom)."""
    from plotly.subplots import make_subplots

    from workbench.report.figures import HEIGHT, _empty, _go, _t

    if not m.lag.get("ts"):
        return _empty(f"Lag and latency of {m.run_id}")
    go = _go()
    x = _t(m.lag["ts"])
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.5, 0.5],
                        vertical_spacing=0.06)
    fig.add_trace(go.Scatter(x=x, y=m.lag["lag_ms"], name="lag ms", mode="lines"), 1, 1)
    fig.add_trace(go.Scatter(x=x, y=m.lag["latency_ms"], name="latency ms", mode="lines",
                             line={"color": "#8e44ad"}), 2, 1)
    for key, dash in (("p50_ms", "dot"), ("p95_ms", "dash"), ("p99_ms", "dashdot")):
        value = m.latency.get(key)
        if value is not None:
            fig.add_hline(y=value, line={"dash": dash, "width": 1, "color": "#7f8c8d"},
                          annotation_text=key[:3], row=2, col=1)
    fig.update_yaxes(title_text="lag ms", row=1, col=1)
    fig.update_yaxes(title_text="latency ms", row=2, col=1)
    per = m.decisions_per_point
    note = f" (1 point per {per} decisions; the worst kept)" if per > 1 else ""
    fig.update_layout(title=f"Lag and latency: {latency_text(m)}{note}", height=HEIGHT + 80,
                      showlegend=False, margin={"t": 50})
    return fig


def live_book_table(m: LiveMonitor) -> Table:
    quote = m.run.get("quote") or "quote"
    rows: list[list[Any]] = [[p["symbol"], p["qty"], p["mark"], p["mark_ts"], p["value"]]
                             for p in m.book]
    rows.append([f"cash ({quote})", None, None, None, m.cash])
    rows.append([f"equity ({quote})", None, None, None, m.equity])
    return Table("Book", ["symbol", "qty", "mark", "marked at", "value"], rows,
                 note=f"folded from the run's fills and its initial cash "
                      f"({m.initial_cash:,.2f} {quote}); marked at the last close in run_bars"
                      + ("" if m.book else "; no open position"),
                 time_columns=frozenset({"marked at"}))


def live_orders_table(m: LiveMonitor) -> Table:
    cols = ["order_seq", "bar_ts", "symbol", "side", "type", "qty", "limit_price", "status",
            "reason", "filled_qty", "tag", "wall_ts"]
    rows = [[o[c] for c in cols] for o in m.orders]
    note = (f"the latest {len(rows)} of {m.orders_total} orders, newest first"
            if m.orders_total > len(rows) else f"{m.orders_total} orders, newest first")
    return Table("Orders", cols, rows, note if m.orders_total else "no order yet",
                 frozenset({"bar_ts", "wall_ts"}), page_rows=25)


def live_fills_table(m: LiveMonitor) -> Table:
    cols = ["fill_seq", "order_seq", "bar_ts", "symbol", "side", "qty", "price", "fee",
            "venue_fill_id", "wall_ts"]
    rows = [[f[c] for c in cols] for f in m.fills]
    return Table("Fills", cols, rows, "newest first" if rows else "no fill yet",
                 frozenset({"bar_ts", "wall_ts"}), page_rows=25)


def live_alerts_table(m: LiveMonitor) -> Table:
    rows = [[a["ts"], a["kind"], a["severity"], a["message"]] for a in m.alerts]
    note = "newest first" if rows else "no alert"
    if m.alerts_total > len(rows):
        note = f"the latest {len(rows)} of {m.alerts_total} alerts, newest first"
    return Table("Alerts", ["ts", "kind", "severity", "message"], rows, note,
                 frozenset({"ts"}), page_rows=25)


def live_divergence_table(m: LiveMonitor) -> Table:
    """The first order where the run and its backtest twin differ, side by side."""
    title = "First divergence from the backtest twin"
    if not m.twin:
        return Table(title, ["", ""], [],
                     note=f"no backtest twin ({m.run_id}.backtest) in the warehouse: "
                          "nothing to compare")
    if m.divergence is None:
        return Table(title, ["", ""], [],
                     note=f"no divergence: {m.compared} orders compared with "
                          f"{m.run_id}.backtest, all agree (rpt.live_vs_backtest)")
    d = m.divergence
    fields = ["order_seq", "side", "type", "qty", "limit_price", "status"]
    rows: list[list[Any]] = [["bar", _iso(d["bar_ts"]), _iso(d["bar_ts"])],
                             ["symbol", d["symbol"], d["symbol"]],
                             ["rank in bar", d["rank_in_bar"], d["rank_in_bar"]]]
    rows += [[f, d[f"live_{f}"], d[f"backtest_{f}"]] for f in fields]
    return Table(title, ["", m.mode or "live", "backtest"], rows,
                 note=f"{m.disagreements} of {m.compared} orders differ; all of them are in "
                      f"rpt.live_vs_backtest where run_id = '{m.run_id}' and not agree")
