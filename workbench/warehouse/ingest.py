"""``workbench ingest``: files -> QC -> ``bars``, as one transaction or not at all.

Re-ingesting identical rows is a no-op. A row that conflicts with a stored bar of the same
(symbol, timeframe, ts) is refused unless ``replace``; a real bar always replaces a bar that was
only filled forward (``source = 'fill'``), and a filled bar never replaces a stored one.
Every QC finding lands in ``qc_events``, also when the ingest is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from workbench.calendars import calendar_for
from workbench.config import check_symbol, timeframe_ms
from workbench.errors import ConfigError, DataError
from workbench.feeds.files import read_bars
from workbench.feeds.qc import (
    BarSeries,
    Finding,
    GapPolicy,
    apply_gap_policy,
    check_rows,
    findings_table,
    log_findings,
    summarize,
)
from workbench.manifest import new_id
from workbench.model import ms_to_iso
from workbench.telemetry.log import JsonlLog
from workbench.warehouse.io import insert_arrow


@dataclass
class IngestResult:
    ingest_id: str
    symbol: str
    timeframe: str
    rows_read: int = 0
    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0
    filled: int = 0
    gaps: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    findings: list[Finding] = field(default_factory=list)

    def summary(self) -> str:
        span = (f" from {ms_to_iso(self.first_ts)} to {ms_to_iso(self.last_ts)}"
                if self.first_ts is not None and self.last_ts is not None else "")
        return (f"ingested {self.symbol} {self.timeframe}{span}: {self.rows_read} rows read, "
                f"{self.inserted} inserted, {self.replaced} replaced, {self.unchanged} unchanged, "
                f"{self.gaps} gaps, {self.filled} bars filled forward (ingest_id={self.ingest_id})")


def ingest(con: Any, paths: Sequence[str | Path], symbol: str, *, timeframe: str = "1m",
           fmt: str | None = None, gaps: GapPolicy = "fail", source: str | None = None,
           replace: bool = False, log: JsonlLog | None = None,
           calendar: str | None = None) -> IngestResult:
    """Load bar files for one symbol after QC; raise DataError (nothing loaded) when refused.
    ``calendar`` (as ``data.calendar``: ``24x7``, an exchange code, a sessions file) says which
    bars are expected: closed hours are not gaps.

    ``con`` is an open connection, or the warehouse's path: then the files are read and
    checked first, and the file is opened read-write only for the short write at the end.
    """
    try:
        tf = timeframe_ms(timeframe)
        check_symbol(symbol)
    except ValueError as exc:
        raise ConfigError(str(exc), where="--symbol/--timeframe",
                          fix="for example: --symbol BTCUSDT --timeframe 5m") from None
    if not paths:
        raise DataError("no files to ingest", fix="pass one or more bar files")
    sessions = calendar_for(calendar)  # a bad name fails before any file is read
    result = IngestResult(new_id("ing"), symbol, timeframe)
    log = log or JsonlLog()
    findings: list[Finding] = []
    parts: list[BarSeries] = []
    for raw_path in paths:
        path = Path(raw_path)
        series, problems = read_bars(path, symbol, tf, fmt)
        if series is not None:
            problems = check_rows(series, file=str(path))
            series.source = np.full(len(series), source or path.name, dtype=object)
            result.rows_read += len(series)
        findings += problems
        if series is not None and not problems:
            parts.append(series)

    def refuse(what: str, fix: str) -> DataError:
        with writing(con) as writer:
            _record(writer, result, findings, gaps, log)
        errors = [f for f in findings if f.severity == "error"]
        return DataError(f"{what}:\n       {summarize(errors)}",
                         fix=f"{fix} (nothing was loaded; every finding is in qc_events, "
                             f"ingest_id={result.ingest_id})")

    if any(f.severity == "error" for f in findings):
        raise refuse(f"refused to ingest {symbol}",
                     "fix or drop those rows and run `workbench ingest` again")
    names = [str(p) for p in paths]
    merged, file_of, overlaps = _merge(parts, names)
    findings += overlaps
    if overlaps:
        raise refuse("the files disagree where they overlap",
                     "keep one version of each bar and run `workbench ingest` again")
    report = apply_gap_policy(merged, gaps, calendar=sessions)
    findings += report.findings
    result.gaps = len(report.gaps)
    result.filled = report.filled_bars
    if report.errors:
        raise refuse(
            f"{symbol} has {len(report.gaps)} gap{'s' if len(report.gaps) != 1 else ''} "
            f"(policy --gaps fail)",
            "fill them with --gaps forward, keep them with --gaps none, or supply the missing bars",
        )
    series = report.series
    result.first_ts, result.last_ts = int(series.ts[0]), int(series.ts[-1])

    def origin(ts: int) -> tuple[str, int | None]:
        """The file and row a bar time came from (conflicts are never filled bars)."""
        i = int(np.searchsorted(merged.ts, ts))
        rows = merged.rows
        return names[int(file_of[i])], None if rows is None else int(rows[i])

    with writing(con) as writer:
        conflicts = _write(writer, result, series, findings, gaps, replace, origin)
    if conflicts:
        findings += conflicts
        raise refuse(f"{len(conflicts)} row(s) conflict with bars already in the warehouse",
                     "pass --replace to overwrite them")
    result.findings = findings
    log_findings(log, findings, ingest_id=result.ingest_id)
    log.info("ingest", result.summary(), ingest_id=result.ingest_id)
    return result


@contextlib.contextmanager
def writing(target: Any) -> Iterator[Any]:
    """A connection to write with: ``target`` itself, or a short read-write open of a path."""
    if not isinstance(target, str | Path):
        yield target
        return
    from workbench.warehouse.connect import open_rw

    con = open_rw(target, wait_s=60.0)
    try:
        yield con
    finally:
        con.close()


def _merge(parts: list[BarSeries], names: list[str]
           ) -> tuple[BarSeries, np.ndarray, list[Finding]]:
    """One ascending series from several files, the file of each bar, and conflicts found.

    Identical overlaps are dropped; differing ones are findings.
    """
    if len(parts) == 1:
        return parts[0], np.zeros(len(parts[0]), dtype=np.int64), []
    cat = lambda attr: np.concatenate([getattr(p, attr) for p in parts])  # noqa: E731
    files = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    first = parts[0]
    trades = None
    if all(p.trades is not None for p in parts):
        trades = cat("trades")
    spread = None
    if any(p.spread_bps is not None for p in parts):  # a file without it: bars without one
        spread = np.concatenate([p.spread_bps if p.spread_bps is not None
                                 else np.full(len(p), np.nan) for p in parts])
    whole = BarSeries(first.symbol, first.timeframe_ms, cat("ts"), cat("open"), cat("high"),
                      cat("low"), cat("close"), cat("volume"), trades, None, cat("source"),
                      cat("rows"), spread_bps=spread)
    order = np.argsort(whole.ts, kind="stable")
    whole, files = whole.take(order), files[order]
    same_ts = np.flatnonzero(np.diff(whole.ts) == 0)
    findings, drop = [], []
    for i in same_ts.tolist():
        j = i + 1
        equal = all(getattr(whole, c)[i] == getattr(whole, c)[j]
                    for c in ("open", "high", "low", "close", "volume")) and (
            whole.spread_bps is None
            or np.array_equal(whole.spread_bps[[i]], whole.spread_bps[[j]], equal_nan=True))
        if equal:
            drop.append(j)
            continue
        assert whole.rows is not None
        findings.append(Finding(
            "conflict", "error", whole.symbol,
            f"{ms_to_iso(int(whole.ts[i]))} differs between {names[files[i]]} row "
            f"{whole.rows[i]} and {names[files[j]]} row {whole.rows[j]}",
            int(whole.rows[j]), int(whole.ts[j]), names[files[j]]))
    if drop:
        keep = np.delete(np.arange(len(whole)), drop)
        whole, files = whole.take(keep), files[keep]
    return whole, files, findings


def _bars_table(series: BarSeries, timeframe: str, ingest_id: str) -> pa.Table:
    n = len(series)
    trades = None
    if series.trades is not None:
        trades = pa.array(series.trades, pa.float64(), mask=np.isnan(series.trades)).cast(
            pa.int64(), safe=False)
    return pa.table({
        "symbol": pa.array([series.symbol] * n, pa.string()),
        "timeframe": pa.array([timeframe] * n, pa.string()),
        "ts": pa.array(series.ts, pa.timestamp("ms", tz="UTC")),
        "open": series.open, "high": series.high, "low": series.low, "close": series.close,
        "volume": series.volume,
        "trades": trades if trades is not None else pa.nulls(n, pa.int64()),
        "source": pa.array(series.source, pa.string()),
        "ingest_id": pa.array([ingest_id] * n, pa.string()),
        "spread_bps": (pa.nulls(n, pa.float64()) if series.spread_bps is None else
                       pa.array(series.spread_bps, pa.float64(),
                                mask=np.isnan(series.spread_bps))),
    })


_COMPARE = """
create or replace temp table __wb_cmp as
select
    n.ts,
    b.ts is not null as present,
    b.ts is not null and (
        n.open <> b.open or n.high <> b.high or n.low <> b.low or n.close <> b.close
        or n.volume <> b.volume or n.trades is distinct from b.trades
        or n.spread_bps is distinct from b.spread_bps
    ) as differs,
    coalesce(b.source = 'fill', false) as old_fill,
    n.source = 'fill' as new_fill,
    b.close as old_close,
    n.close as new_close
from __wb_new as n
left join bars as b
    on b.symbol = n.symbol and b.timeframe = n.timeframe and b.ts = n.ts
"""


def _write(con: Any, result: IngestResult, series: BarSeries, findings: list[Finding],
           policy: str, replace: bool, origin: Callable[[int], tuple[str, int | None]]
           ) -> list[Finding]:
    """Insert the bars and the findings in one transaction; or, when rows conflict with
    stored bars and ``replace`` is off, roll back and return those conflicts."""
    table = _bars_table(series, result.timeframe, result.ingest_id)
    con.execute("begin transaction")
    try:
        con.register("__wb_arrow", table)
        con.execute("create or replace temp table __wb_new as select * from __wb_arrow")
        con.unregister("__wb_arrow")
        con.execute(_COMPARE)
        conflicts = con.execute(
            "select epoch_ms(ts), old_close, new_close from __wb_cmp where differs and not "
            "old_fill and not new_fill order by ts").fetchall()
        if conflicts and not replace:
            con.execute("rollback")
            found = []
            for ts, old, new in conflicts:
                file, row = origin(ts)
                found.append(Finding("conflict", "error", result.symbol,
                                     f"{ms_to_iso(ts)} is already stored with different values "
                                     f"(stored close {old!r}, new close {new!r})", row, ts, file))
            return found
        # replaced: a differing row under --replace, or any real row over a filled one
        replaced = "present and not new_fill and ((differs and ?) or old_fill)"
        counts = con.execute(
            "select count(*) filter (where not present), "
            f"count(*) filter (where {replaced}), "
            "count(*) from __wb_cmp", [replace]).fetchall()[0]
        result.inserted, result.replaced = int(counts[0]), int(counts[1])
        result.unchanged = int(counts[2]) - result.inserted - result.replaced
        con.execute(
            "delete from bars where symbol = ? and timeframe = ? and ts in ("
            f"select ts from __wb_cmp where {replaced})",
            [result.symbol, result.timeframe, replace])
        con.execute(
            "insert into bars by name select * from __wb_new as n where not exists ("
            "select 1 from bars as b where b.symbol = n.symbol and b.timeframe = n.timeframe "
            "and b.ts = n.ts)")
        _insert_findings(con, result, findings, policy)
        con.execute("drop table __wb_new")
        con.execute("drop table __wb_cmp")
        con.execute("commit")
    except Exception:
        from workbench.warehouse.connect import rollback_quietly

        rollback_quietly(con)
        raise
    return []


def _insert_findings(con: Any, result: IngestResult, findings: list[Finding],
                     policy: str) -> None:
    insert_arrow(con, "qc_events", findings_table(
        findings, stage="ingest", timeframe=result.timeframe, policy=policy,
        ingest_id=result.ingest_id))


def _record(con: Any, result: IngestResult, findings: list[Finding], policy: str,
            log: JsonlLog) -> None:
    """Record the findings of a refused ingest in their own transaction."""
    result.findings = findings
    log_findings(log, findings, ingest_id=result.ingest_id)
    con.execute("begin transaction")
    _insert_findings(con, result, findings, policy)
    con.execute("commit")
