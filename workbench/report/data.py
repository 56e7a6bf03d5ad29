"""Everything a report shows about one run, read in one read-only pass over the warehouse.

Long series are downsampled here, in SQL, for display (per bucket of bars: the last equity, at
the bucket's last bar time, and the worst drawdown; OHLC candles per bucket of time); exact
numbers stay in the tables and the views. Candles come from the stored ``bars`` (the engine kept
only closes, in ``run_bars``); fills and round trips are the run's own. Run ids reach SQL only
as bound parameters.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.feeds.history import finer_source
from workbench.report.project import warehouse_path
from workbench.secrets import redact
from workbench.warehouse.connect import reading

MAX_POINTS = 2_000
MAX_CANDLES = 1_500
MAX_MARKERS = 20_000
MAX_TRADE_ROWS = 500
TRENDS = ("up", "flat", "down", "warmup")  # the labels of rpt.bar_regimes, in display order
VOLS = ("low", "normal", "high", "warmup")


@dataclass
class RunReport:
    """What a report needs about one run. Times are ms since the epoch, UTC."""

    run_id: str
    run: dict[str, Any]
    headline: dict[str, Any]
    curve: dict[str, list[Any]] = field(default_factory=dict)
    candles: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    fills: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    trips: list[dict[str, Any]] = field(default_factory=list)
    trips_total: int = 0
    trade_returns: list[float] = field(default_factory=list)
    daily: dict[str, list[Any]] = field(default_factory=dict)
    fees: list[dict[str, Any]] = field(default_factory=list)
    costs: dict[str, Any] = field(default_factory=dict)  # its row of rpt.cost_breakdown
    regimes: list[dict[str, Any]] = field(default_factory=list)  # rpt.performance_by_regime
    qc: list[dict[str, Any]] = field(default_factory=list)
    qc_first: list[dict[str, Any]] = field(default_factory=list)
    risk: list[dict[str, Any]] = field(default_factory=list)
    risk_stops: list[dict[str, Any]] = field(default_factory=list)
    views_now: dict[str, Any] = field(default_factory=dict)
    resampled_from: dict[str, str] = field(default_factory=dict)  # symbol -> stored timeframe

    @property
    def symbols(self) -> list[str]:
        return list(self.run.get("symbols") or [])

    @property
    def completed(self) -> bool:
        return self.run.get("status") == "completed"

    @property
    def initial_cash(self) -> float:
        return float(self.run.get("initial_cash") or 1.0)

    def curve_return_pct(self) -> list[float]:
        """The (downsampled) equity curve as return on the initial cash, in percent."""
        cash = self.initial_cash
        return [(e / cash - 1) * 100 for e in self.curve.get("equity", [])]


def _rows(con: Any, query: str, params: list[Any]) -> list[dict[str, Any]]:
    rel = con.sql(query, params=params)
    return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]


def _columns(con: Any, query: str, params: list[Any]) -> dict[str, list[Any]]:
    rel = con.sql(query, params=params)
    rows = rel.fetchall()
    return {name: [r[i] for r in rows] for i, name in enumerate(rel.columns)}


def _deployed(con: Any, view: str) -> bool:
    """Whether the warehouse has the view ``rpt.<view>`` (a warehouse last deployed by an
    older version has only the views of that version)."""
    return bool(con.execute("select count(*) from duckdb_views() where schema_name = 'rpt' "
                            "and view_name = ?", [view]).fetchall()[0][0])


def resolve_run_id(con: Any, run_id: str | None) -> str:
    """``run_id`` if the warehouse has it, the latest completed run when None; otherwise an
    error naming the closest ids."""
    if run_id is None:
        rows = con.execute("select run_id from runs where status = 'completed' "
                           "order by started_at desc limit 1").fetchall()
        if not rows:
            raise WorkbenchError("the warehouse has no completed run yet",
                                 fix="run one: workbench backtest --config configs/sma_demo.yaml")
        return str(rows[0][0])
    if con.execute("select count(*) from runs where run_id = ?", [run_id]).fetchall()[0][0]:
        return run_id
    known = [r[0] for r in con.execute(
        "select run_id from runs order by started_at desc").fetchall()]
    close = difflib.get_close_matches(run_id, known, n=3, cutoff=0.3) or known[:3]
    raise WorkbenchError(f"no such run: {run_id}",
                         fix=(f"closest: {', '.join(close)}; " if close else "")
                         + "list runs with `workbench runs list`")


def latest_run_id(warehouse: str | Path | None = None) -> str:
    with reading(warehouse_path(warehouse)) as con:
        return resolve_run_id(con, None)


def load_run(run_id: str | None = None, *, warehouse: str | Path | None = None,
             max_points: int = MAX_POINTS, max_candles: int = MAX_CANDLES) -> RunReport:
    """Read one run's report data (the latest completed run when ``run_id`` is None).
    ``warehouse=None``: ``$WB_WAREHOUSE``, else the project's (``report/project.py``)."""
    with reading(warehouse_path(warehouse)) as con:
        return _load(con, resolve_run_id(con, run_id), max_points, max_candles)


def _load(con: Any, run_id: str, max_points: int, max_candles: int) -> RunReport:
    """One run's report data, read through ``con``."""
    from workbench.warehouse import views
    from workbench.warehouse.stale import effective_status

    run = _rows(con, "select * from runs where run_id = ?", [run_id])[0]
    run["status"] = effective_status(  # a running row of a dead process is abandoned
        run.get("status"), run.get("pid"), run.get("host"))
    for key in ("config_json", "versions", "view_versions"):
        if isinstance(run.get(key), str):
            run[key] = json.loads(run[key])
    run["config_json"] = redact(run.get("config_json"))  # rows of older versions too
    # a failed first run, or a live run's row, reaches a warehouse before any view does
    deployed = _deployed(con, "performance")
    perf = (_rows(con, "select * from rpt.performance where run_id = ?", [run_id])
            if deployed else [])
    report = RunReport(run_id, run, perf[0] if perf else {})
    try:
        report.views_now = views.versions(views.check())
    except WorkbenchError as exc:  # views being edited: say so in the report, go on
        report.views_now = {"error": exc.what}
    if report.completed:
        _series(con, report, max_points, max_candles)
    report.qc = _rows(con, "select rule, severity, action, count(*) as findings "
                           "from qc_events where run_id = ? group by all order by all",
                      [run_id])
    report.qc_first = _rows(con, "select rule, severity, action, epoch_ms(ts) as ts, "
                                 "detail from qc_events where run_id = ? "
                                 "order by event_seq limit 10", [run_id])
    report.risk = _rows(con, "select rule, reason_code, blocks, share_of_orders_pct, "
                             "epoch_ms(first_ts) as first_ts, epoch_ms(last_ts) as last_ts "
                             "from rpt.risk_blocks where run_id = ? order by blocks desc",
                        [run_id]) if deployed else []
    report.risk_stops = _rows(con, "select epoch_ms(ts) as ts, symbol, detail "
                                   "from risk_events where run_id = ? "
                                   "and client_order_id is null order by ts", [run_id])
    return report


def _series(con: Any, r: RunReport, max_points: int, max_candles: int) -> None:
    rid = [r.run_id]
    con.execute("create or replace temp table report_curve as "
                "select ts, equity, drawdown_pct from rpt.drawdown where run_id = ?", rid)
    n = con.execute("select count(*) from report_curve").fetchall()[0][0]
    per = max(1, math.ceil(n / max_points))
    r.curve = _columns(con, """
        select epoch_ms(max(ts)) as ts, arg_max(equity, ts) as equity,
               min(drawdown_pct) as drawdown_pct
        from (select *, (row_number() over (order by ts) - 1) // ? as bucket from report_curve)
        group by bucket order by 1""", [per])
    r.curve["bars_per_point"] = [per]
    r.daily = _columns(con, """
        select strftime(ts, '%Y-%m-%d') as day, arg_max(equity, ts) as equity
        from report_curve group by day order by day""", [])
    tf_ms = int(r.run.get("timeframe_ms") or 60_000)
    last = r.run["end_ts"] + timedelta(milliseconds=tf_ms)  # the end of the last bar
    for symbol in r.symbols:
        # a run on bars resampled from finer stored ones (feeds/history.py) draws from those
        source = finer_source(con, symbol, r.run["timeframe"], tf_ms)
        stored, stored_ms = source or (r.run["timeframe"], tf_ms)
        if source is not None:
            r.resampled_from[symbol] = stored
        bars = con.execute(
            "select count(*) from bars where symbol = ? and timeframe = ? "
            "and ts >= ? and ts < ?",
            [symbol, stored, r.run["start_ts"], last]).fetchall()[0][0]
        bucket_ms = stored_ms * max(1, math.ceil(bars / max_candles))
        if source is not None:  # whole run bars per candle
            bucket_ms = tf_ms * max(1, math.ceil(bucket_ms / tf_ms))
        r.candles[symbol] = _columns(con, """
            select epoch_ms(min(ts)) as ts, arg_min(open, ts) as open, max(high) as high,
                   min(low) as low, arg_max(close, ts) as close
            from bars
            where symbol = ? and timeframe = ? and ts >= ? and ts < ?
            group by (epoch_ms(ts) - ?) // ? order by 1""",
            [symbol, stored, r.run["start_ts"], last,
             int(r.run["start_ts"].timestamp() * 1000), bucket_ms])
        fills = _columns(con, "select epoch_ms(ts) as ts, price, side, qty from fills "
                              "where run_id = ? and symbol = ? order by fill_seq",
                         [r.run_id, symbol])
        step = max(1, math.ceil(len(fills["ts"]) / MAX_MARKERS))
        r.fills[symbol] = {k: v[::step] for k, v in fills.items()}
    r.trips_total = con.execute("select count(*) from rpt.round_trips where run_id = ?",
                                rid).fetchall()[0][0]
    r.trips = _rows(con, """
        select symbol, side, qty, epoch_ms(entry_ts) as entry_ts, entry_price,
               epoch_ms(exit_ts) as exit_ts, exit_price, fees, pnl, return_pct
        from rpt.round_trips where run_id = ?
        order by exit_fill_seq, entry_fill_seq limit ?""", [r.run_id, MAX_TRADE_ROWS])
    r.trade_returns = [row[0] for row in con.execute(
        "select return_pct from rpt.round_trips where run_id = ?", rid).fetchall()]
    r.fees = _rows(con, """
        select symbol, sum(fee) as fees_quote, count(*) as fills,
               sum(qty * price) as traded_notional_quote
        from fills where run_id = ? group by symbol order by symbol""", rid)
    breakdown = _rows(con, "select * from rpt.cost_breakdown where run_id = ?", rid)
    r.costs = breakdown[0] if breakdown else {}
    if _deployed(con, "performance_by_regime"):
        r.regimes = _rows(con, """
            select symbol, trend, volatility, bars, bars_pct, return_pct, in_market_pct,
                   trades, win_rate_pct, pnl
            from rpt.performance_by_regime where run_id = ?
            order by symbol, list_position(?, trend), list_position(?, volatility)""",
                          [r.run_id, list(TRENDS), list(VOLS)])


def load_runs(run_ids: list[str] | None = None, *, warehouse: str | Path | None = None,
              latest: int = 2) -> list[RunReport]:
    """Several runs' report data; the ``latest`` completed runs when ``run_ids`` is None."""
    with reading(warehouse_path(warehouse)) as con:  # one connection for every run
        if run_ids is None:
            run_ids = [r[0] for r in con.execute(
                "select run_id from runs where status = 'completed' "
                "order by started_at desc limit ?", [latest]).fetchall()]
        return [_load(con, resolve_run_id(con, run_id), MAX_POINTS, MAX_CANDLES)
                for run_id in run_ids]
