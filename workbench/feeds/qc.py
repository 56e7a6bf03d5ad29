"""Quality control of bar series, on ingest and again when a backtest reads bars.

Errors refuse the data under every gap policy: duplicate, non-increasing or misaligned
timestamps, times before 1970 or from 2262 on, broken OHLC, NaN or infinite values, prices at
or below zero, negative volume. Gaps depend on the policy:
``fail`` refuses, ``forward`` inserts flat bars at the previous close with volume 0 (marked
``filled``), ``none`` keeps the data as is. Every finding is returned, to be logged and recorded
in ``qc_events``; corrupt data is worse than no data.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from workbench.calendars import SessionCalendar
from workbench.model import MAX_BPS, ms_to_iso

GapPolicy = Literal["fail", "forward", "none"]
GAP_POLICIES: tuple[GapPolicy, ...] = ("fail", "forward", "none")


@dataclass
class BarSeries:
    """Columns of one symbol's bars, ts in ms UTC (bar open time), ascending once checked."""

    symbol: str
    timeframe_ms: int
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    trades: np.ndarray | None = None
    filled: np.ndarray | None = None
    source: np.ndarray | None = None  # per-bar source name (object array); 'fill' when filled
    rows: np.ndarray | None = None  # 1-based row of each bar in its file, for error messages
    resampled_from: str | None = None  # the stored timeframe these bars were built from
    spread_bps: np.ndarray | None = None  # the file's spread_bps column (NaN: none given)

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def filled_mask(self) -> np.ndarray:
        return self.filled if self.filled is not None else np.zeros(len(self.ts), dtype=bool)

    def take(self, index: np.ndarray) -> BarSeries:
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return BarSeries(self.symbol, self.timeframe_ms, self.ts[index], self.open[index],
                         self.high[index], self.low[index], self.close[index],
                         self.volume[index], pick(self.trades), pick(self.filled),
                         pick(self.source), pick(self.rows), self.resampled_from,
                         pick(self.spread_bps))


@dataclass(frozen=True)
class Finding:
    """One QC finding. ``severity`` is ``error`` (refuses the data) or ``warning``."""

    rule: str
    severity: str
    symbol: str
    detail: str
    row: int | None = None
    ts: int | None = None
    file: str | None = None
    action: str = "refused"
    data: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        where = [self.file] if self.file else []
        if self.row is not None:
            where.append(f"row {self.row}")
        elif not where:
            where.append(self.symbol)
        return f"{', '.join(where)}: {self.detail}"


@dataclass
class QcReport:
    series: BarSeries
    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def gaps(self) -> list[Finding]:
        return [f for f in self.findings if f.rule == "gap"]

    @property
    def filled_bars(self) -> int:
        return int(self.series.filled_mask.sum())


MIN_TS = 0
"""Earliest bar time (ms UTC): 1970-01-01, the Unix epoch."""
MAX_TS = 9_214_646_400_000
"""End of the supported bar times (ms UTC, exclusive): 2262-01-01, inside the range of
nanosecond timestamps (int64 ns end on 2262-04-11) that pandas and numpy use downstream."""


def _when(ms: int) -> str:
    """A bar time as ISO-8601 where datetime can say it, else as epoch milliseconds."""
    try:
        return ms_to_iso(ms)
    except (ValueError, OverflowError, OSError):
        return f"{ms} (epoch ms)"


def _num(value: Any) -> str:
    """A value as the user wrote it: the shortest float repr, never numpy's."""
    return repr(float(value))


def check_rows(s: BarSeries, file: str | None = None) -> list[Finding]:
    """Row-level findings, all errors: values, OHLC sanity, ordering, alignment."""
    out: list[Finding] = []
    rows = s.rows if s.rows is not None else np.arange(1, len(s) + 1)

    def add(rule: str, mask: np.ndarray, text: Any, data: Any = None) -> None:
        for i in np.flatnonzero(mask):
            out.append(Finding(rule, "error", s.symbol, text(i), int(rows[i]), int(s.ts[i]),
                               file, "refused", data(i) if data else {}))

    cols = {"open": s.open, "high": s.high, "low": s.low, "close": s.close, "volume": s.volume}
    bad_value = np.zeros(len(s), dtype=bool)
    for name, col in cols.items():
        mask = ~np.isfinite(col)
        bad_value |= mask
        add("nan", mask, lambda i, n=name, c=col: f"{n} is {_num(c[i])}, not a finite number")
    if s.spread_bps is not None:  # optional: NaN is a bar without one
        spread = s.spread_bps
        add("bad_spread", np.isinf(spread) | (spread < 0) | (spread > MAX_BPS),
            lambda i: f"spread_bps is {_num(spread[i])}; a spread is a finite number from 0 "
                      f"to {MAX_BPS:g} (100 %, as costs.spread_bps), or empty")
    ok = ~bad_value
    add("negative_volume", ok & (s.volume < 0),
        lambda i: f"volume {_num(s.volume[i])} is negative")
    for name in ("open", "high", "low", "close"):
        col = cols[name]
        mask = ok & (col <= 0)
        bad_value |= mask
        add("non_positive_price", mask,
            lambda i, n=name, c=col: f"{n} is {_num(c[i])}; prices must be above zero")
    ok = ~bad_value
    top = np.maximum(s.open, s.close)
    bottom = np.minimum(s.open, s.close)
    high_bad = ok & (s.high < top)
    add("ohlc", high_bad,
        lambda i: f"high {_num(s.high[i])} is below max(open {_num(s.open[i])}, "
                  f"close {_num(s.close[i])})")
    add("ohlc", ok & ~high_bad & (s.low > bottom),
        lambda i: f"low {_num(s.low[i])} is above min(open {_num(s.open[i])}, "
                  f"close {_num(s.close[i])})")
    out_of_range = (s.ts < MIN_TS) | (s.ts >= MAX_TS)
    for i in np.flatnonzero(out_of_range):  # no ts on the finding: it fits no timestamp type
        out.append(Finding(
            "ts_range", "error", s.symbol,
            f"ts {_when(int(s.ts[i]))} is outside the supported range "
            f"[{ms_to_iso(MIN_TS)}, {ms_to_iso(MAX_TS)})", int(rows[i]), None, file, "refused",
            {"ts_ms": int(s.ts[i])}))
    if out_of_range.any():  # ordering and alignment are meaningless until the times are fixed
        return out
    tf = s.timeframe_ms
    add("misaligned", s.ts % tf != 0,
        lambda i: f"ts {ms_to_iso(int(s.ts[i]))} is not a whole multiple of the timeframe "
                  f"({tf // 60000}m) since the Unix epoch")
    if len(s) > 1:
        diff = np.diff(s.ts)
        dup = np.concatenate([[False], diff == 0])
        add("duplicate", dup,
            lambda i: f"ts {ms_to_iso(int(s.ts[i]))} repeats row {int(rows[i - 1])}")
        back = np.concatenate([[False], diff < 0])
        add("non_increasing", back,
            lambda i: f"ts {ms_to_iso(int(s.ts[i]))} is before the previous row's "
                      f"{ms_to_iso(int(s.ts[i - 1]))}")
    return out


def find_gaps(s: BarSeries) -> tuple[np.ndarray, np.ndarray]:
    """Positions i where bars are missing between row i and i+1, and how many are missing."""
    if len(s) < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    diff = np.diff(s.ts)
    idx = np.flatnonzero(diff > s.timeframe_ms)
    return idx, diff[idx] // s.timeframe_ms - 1


def apply_gap_policy(s: BarSeries, policy: GapPolicy, file: str | None = None,
                     calendar: SessionCalendar | None = None) -> QcReport:
    """Find the gaps of an ordered, aligned series and apply the policy to them. With a
    session ``calendar`` only the bars it expects can be missing (closed hours and holidays
    are not gaps), and a bar it does not expect is a warning ``off_session``, kept."""
    if policy not in GAP_POLICIES:
        raise ValueError(f"unknown gap policy {policy!r}; use one of {GAP_POLICIES}")
    if calendar is not None:
        return _apply_calendar(s, policy, file, calendar)
    idx, missing = find_gaps(s)
    tf = s.timeframe_ms
    findings = _gap_findings(s, policy, file, missing, s.ts[idx] + tf, s.ts[idx + 1] - tf)
    if policy != "forward" or not len(idx):
        return QcReport(s, findings)
    return QcReport(_forward_fill(s, idx, missing), findings)


def _gap_findings(s: BarSeries, policy: GapPolicy, file: str | None, missing: np.ndarray,
                  firsts: np.ndarray, lasts: np.ndarray) -> list[Finding]:
    severity = "error" if policy == "fail" else "warning"
    action = {"fail": "refused", "forward": "filled", "none": "kept"}[policy]
    findings = []
    for m, first, last in zip(missing.tolist(), firsts.tolist(), lasts.tolist(), strict=True):
        span = (f"at {ms_to_iso(first)}" if m == 1
                else f"from {ms_to_iso(first)} to {ms_to_iso(last)}")
        findings.append(Finding(
            "gap", severity, s.symbol, f"{m} missing bar{'s' if m > 1 else ''} {span}",
            None, first, file, action,
            {"from": ms_to_iso(first), "to": ms_to_iso(last), "missing_bars": m},
        ))
    return findings


def _apply_calendar(s: BarSeries, policy: GapPolicy, file: str | None,
                    calendar: SessionCalendar) -> QcReport:
    if not len(s):
        return QcReport(s, [])
    expected = calendar.bar_opens(int(s.ts[0]), int(s.ts[-1]), s.timeframe_ms)
    findings = []
    off = ~np.isin(s.ts, expected)
    if off.any():
        where = np.flatnonzero(off)
        first, last = int(s.ts[where[0]]), int(s.ts[where[-1]])
        findings.append(Finding(
            "off_session", "warning", s.symbol,
            f"{len(where)} bar{'s' if len(where) > 1 else ''} outside the sessions of "
            f"calendar {calendar.describe()} (first {ms_to_iso(first)}, last "
            f"{ms_to_iso(last)})", None if s.rows is None else int(s.rows[where[0]]), first,
            file, "kept", {"bars": len(where), "first": ms_to_iso(first),
                           "last": ms_to_iso(last), "calendar": calendar.describe()}))
    # the expected bars strictly between each pair of neighbours are missing
    after = np.searchsorted(expected, s.ts[:-1], side="right")
    before = np.searchsorted(expected, s.ts[1:], side="left")
    idx = np.flatnonzero(before > after)
    missing = (before - after)[idx]
    if not len(idx):
        return QcReport(s, findings)
    findings += _gap_findings(s, policy, file, missing, expected[after[idx]],
                              expected[before[idx] - 1])
    if policy != "forward":
        return QcReport(s, findings)
    absent = np.concatenate([expected[a:b] for a, b in
                             zip(after[idx].tolist(), before[idx].tolist(), strict=True)])
    return QcReport(_forward_fill_at(s, absent), findings)


def _forward_fill_at(s: BarSeries, absent: np.ndarray) -> BarSeries:
    """``s`` with flat bars at the previous close inserted at the open times ``absent``."""
    ts = np.union1d(s.ts, absent)
    src = np.searchsorted(s.ts, ts, side="right") - 1
    fill = s.ts[src] != ts
    close = s.close[src]

    def col(a: np.ndarray) -> np.ndarray:
        return np.where(fill, close, a[src])

    trades = None if s.trades is None else np.where(fill, 0, s.trades[src])
    source = None if s.source is None else np.where(fill, "fill", s.source[src])
    return BarSeries(s.symbol, s.timeframe_ms, ts, col(s.open), col(s.high), col(s.low), close,
                     np.where(fill, 0.0, s.volume[src]), trades,
                     (s.filled_mask[src] & ~fill) | fill, source,
                     None if s.rows is None else np.where(fill, 0, s.rows[src]),
                     s.resampled_from,
                     None if s.spread_bps is None else np.where(fill, np.nan, s.spread_bps[src]))


def _forward_fill(s: BarSeries, idx: np.ndarray, missing: np.ndarray) -> BarSeries:
    counts = np.ones(len(s), dtype=np.int64)
    counts[idx] += missing
    src = np.repeat(np.arange(len(s)), counts)
    starts = np.cumsum(counts) - counts
    step = np.arange(len(src)) - np.repeat(starts, counts)
    fill = step > 0
    ts = s.ts[src] + step * s.timeframe_ms
    close = s.close[src]

    def col(a: np.ndarray) -> np.ndarray:
        return np.where(fill, close, a[src])

    trades = None
    if s.trades is not None:
        trades = np.where(fill, 0, s.trades[src])
    was_filled = s.filled_mask[src] & ~fill
    source = None if s.source is None else np.where(fill, "fill", s.source[src])
    return BarSeries(s.symbol, s.timeframe_ms, ts, col(s.open), col(s.high), col(s.low), close,
                     np.where(fill, 0.0, s.volume[src]), trades, was_filled | fill, source,
                     None if s.rows is None else np.where(fill, 0, s.rows[src]),
                     s.resampled_from,
                     None if s.spread_bps is None else np.where(fill, np.nan, s.spread_bps[src]))


def findings_table(findings: list[Finding], *, stage: str, timeframe: str | None,
                   policy: str | None, ingest_id: str | None = None, run_id: str | None = None
                   ) -> pa.Table:
    """The findings as rows of ``qc_events``."""
    n = len(findings)
    now = time.time_ns() // 1000
    return pa.table({
        "ingest_id": pa.array([ingest_id] * n, pa.string()),
        "run_id": pa.array([run_id] * n, pa.string()),
        "event_seq": pa.array(range(1, n + 1), pa.int64()),
        "stage": pa.array([stage] * n, pa.string()),
        "file": pa.array([f.file for f in findings], pa.string()),
        "row_number": pa.array([f.row for f in findings], pa.int64()),
        "symbol": pa.array([f.symbol for f in findings], pa.string()),
        "timeframe": pa.array([timeframe] * n, pa.string()),
        "ts": pa.array([f.ts for f in findings], pa.timestamp("ms", tz="UTC")),
        "rule": pa.array([f.rule for f in findings], pa.string()),
        "severity": pa.array([f.severity for f in findings], pa.string()),
        "action": pa.array([f.action for f in findings], pa.string()),
        "policy": pa.array([policy] * n, pa.string()),
        "detail": pa.array([f.detail for f in findings], pa.string()),
        "data": pa.array([json.dumps(f.data, sort_keys=True) for f in findings], pa.string()),
        "recorded_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
    })


def log_findings(log: Any, findings: list[Finding], **context: Any) -> None:
    """Every finding as one structured log record (component ``qc``)."""
    for f in findings:
        log.log("error" if f.severity == "error" else "warning", "qc", f.describe(),
                rule=f.rule, **context, **f.data)


def summarize(findings: list[Finding], limit: int = 5) -> str:
    """The first ``limit`` findings, one per line, and a count of the rest."""
    lines = [f.describe() for f in findings[:limit]]
    if len(findings) > limit:
        lines.append(f"... and {len(findings) - limit} more")
    return "\n       ".join(lines)
