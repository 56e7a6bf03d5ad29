"""Historical bars from the warehouse, checked again with the run's gap policy, merged for the loop.

Several symbols are merged in (ts, symbol) order into numpy arrays; the loop makes plain Python
values from them a chunk at a time (never iterating DataFrame rows), with timestamps as int
milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from workbench.calendars import SessionCalendar
from workbench.config import timeframe_ms
from workbench.errors import DataError
from workbench.feeds.qc import BarSeries, GapPolicy, QcReport, apply_gap_policy, check_rows
from workbench.model import ms_to_iso

_BARS = """
select epoch_ms(ts) as ts, open, high, low, close, volume, source = 'fill' as filled
from bars
where symbol = ? and timeframe = ? and ts >= ? and ts < ?
order by ts
"""

# Coarser bars from finer stored ones, in epoch-aligned buckets of the run's timeframe: the
# first open, the highest high, the lowest low, the last close, the summed volume (summed in
# time order, so the float sum is the same every run). Only complete buckets are kept: a bucket
# missing any finer bar (the still-forming last one, one cut by --from/--to, one with a hole
# inside) is left out, and the gap QC then sees it as a gap under the run's gap policy. A
# bucket counts as filled (source 'fill') only when every bar in it was filled on ingest.
# Under a session calendar complete means every finer bar the calendar expects in the bucket
# (an hour the market opens at half past holds half an hour of minutes): the query keeps every
# bucket with its count (having count(*) >= 1), and ``SessionCalendar.complete_buckets`` says.
_RESAMPLED = """
select ts // ? * ? as ts, arg_min(open, ts) as open, max(high) as high, min(low) as low,
       arg_max(close, ts) as close, sum(volume order by ts) as volume,
       bool_and(filled) as filled, count(*) as n
from (select epoch_ms(ts) as ts, open, high, low, close, volume, source = 'fill' as filled
      from bars
      where symbol = ? and timeframe = ? and ts >= ? and ts < ?)
group by 1
having count(*) >= ?
order by 1
"""

_FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


def _dt(ms: int | None, default: datetime) -> datetime:
    return default if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def load_series(con: Any, symbol: str, timeframe: str, tf_ms: int, start: int | None,
                end: int | None, calendar: SessionCalendar | None = None) -> BarSeries:
    """One symbol's bars in [start, end); DataError naming what exists when empty.

    When the warehouse holds no ``timeframe`` bars of the symbol at all but finer bars whose
    size divides it (1m under 15m), the bars are resampled from the coarsest such timeframe
    in SQL (see ``_RESAMPLED``; under ``calendar`` a bucket is complete when it holds the
    finer bars the calendar expects in it) and the series records it in ``resampled_from``.
    """
    window = [_dt(start, _FAR_PAST), _dt(end, _FAR_FUTURE)]
    cols = con.sql(_BARS, params=[symbol, timeframe, *window]).fetchnumpy()
    source = finer_source(con, symbol, timeframe, tf_ms) if len(cols["ts"]) == 0 else None
    if source is not None:
        cols = con.sql(_RESAMPLED, params=[
            tf_ms, tf_ms, symbol, source[0], *window,
            tf_ms // source[1] if calendar is None else 1]).fetchnumpy()
        if calendar is not None:
            keep = calendar.complete_buckets(cols["ts"].astype(np.int64), cols["n"], tf_ms,
                                             source[1])
            cols = {name: col[keep] for name, col in cols.items()}
        if len(cols["ts"]) == 0:
            first, last = con.execute(
                "select epoch_ms(min(ts)), epoch_ms(max(ts)) from bars "
                "where symbol = ? and timeframe = ?", [symbol, source[0]]).fetchall()[0]
            raise DataError(
                f"no complete {symbol} {timeframe} bars in {_window(start, end)} to resample "
                f"from the stored {source[0]} bars (held from {ms_to_iso(first)} to "
                f"{ms_to_iso(last)})",
                fix=f"a {timeframe} bar needs all {tf_ms // source[1]} {source[0]} bars of its "
                    f"{timeframe} (epoch-aligned); widen --from/--to (or data.start/end), or "
                    f"ingest {timeframe} bars")
    if len(cols["ts"]) == 0:
        span = con.execute(
            "select epoch_ms(min(ts)), epoch_ms(max(ts)), count(*) from bars "
            "where symbol = ? and timeframe = ?", [symbol, timeframe]).fetchall()[0]
        if not span[2]:
            others = [r[0] for r in con.execute(
                "select distinct symbol || ' ' || timeframe from bars order by 1").fetchall()]
            raise DataError(
                f"no bars for {symbol} {timeframe} in the warehouse",
                fix=f"ingest them first: `workbench ingest FILE --symbol {symbol} --timeframe "
                    f"{timeframe}`" + (f" (the warehouse has: {', '.join(others)})"
                                       if others else ""),
            )
        raise DataError(
            f"no {symbol} {timeframe} bars in {_window(start, end)}",
            fix=f"the warehouse holds {symbol} {timeframe} from {ms_to_iso(span[0])} to "
                f"{ms_to_iso(span[1])}; choose --from/--to (or data.start/end) inside that span",
        )
    return BarSeries(symbol, tf_ms, cols["ts"].astype(np.int64), cols["open"], cols["high"],
                     cols["low"], cols["close"], cols["volume"], None,
                     cols["filled"],
                     resampled_from=None if source is None else source[0])


def _window(start: int | None, end: int | None) -> str:
    return (f"[{ms_to_iso(start) if start is not None else '-inf'}, "
            f"{ms_to_iso(end) if end is not None else '+inf'})")


def finer_source(con: Any, symbol: str, timeframe: str, tf_ms: int) -> tuple[str, int] | None:
    """The stored timeframe to resample ``timeframe`` bars from, and its size in ms: None when
    the symbol has bars of ``timeframe`` itself or no finer bars whose size divides it; else the
    coarsest such timeframe (fewest rows to read)."""
    stored = [r[0] for r in con.execute(
        "select distinct timeframe from bars where symbol = ?", [symbol]).fetchall()]
    if timeframe in stored:
        return None
    found = []
    for name in stored:
        try:
            ms = timeframe_ms(name)
        except ValueError:
            continue
        if ms < tf_ms and tf_ms % ms == 0:
            found.append((ms, name))
    if not found:
        return None
    ms, name = max(found)
    return name, ms


def check_series(series: BarSeries, policy: GapPolicy,
                 calendar: SessionCalendar | None = None) -> QcReport:
    """Row checks then the gap policy (under ``calendar``'s sessions), as on ingest. On
    resampled bars a gap finding says so: a coarse bar is missing when any finer bar of it
    is."""
    errors = check_rows(series)
    report = (apply_gap_policy(series, policy, calendar=calendar) if not errors
              else QcReport(series, []))
    report.findings[:0] = errors
    if series.resampled_from:
        note = (f" (resampled from stored {series.resampled_from} bars: a bar is left out "
                f"when any {series.resampled_from} bar of it is missing)")
        report.findings = [replace(f, detail=f.detail + note) if f.rule == "gap" else f
                           for f in report.findings]
    return report


@dataclass
class LoopData:
    """Bars in loop order as numpy arrays (8 bytes a value); the loop turns one chunk at a time
    into Python objects, so memory does not grow with Python objects per bar."""

    symbol_names: list[str]
    symbol_index: np.ndarray  # int32: index into symbol_names, per bar
    ts: np.ndarray  # int64 ms
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    filled: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def ts_array(self) -> np.ndarray:
        return self.ts

    @property
    def close_array(self) -> np.ndarray:
        return self.close

    @property
    def single(self) -> bool:
        return len(self.symbol_names) == 1

    def symbol_chunk(self, lo: int, hi: int) -> list[str]:
        """The symbols of bars lo..hi as a list of str."""
        names = np.asarray(self.symbol_names, dtype=object)
        return list(names[self.symbol_index[lo:hi]])

    @property
    def symbols(self) -> list[str] | None:
        """Every bar's symbol (None for a one-symbol run); for tests and small data."""
        return None if self.single else self.symbol_chunk(0, len(self))


def merge(series: list[BarSeries]) -> LoopData:
    """Bars of every symbol in (ts, symbol) order."""
    names = sorted(s.symbol for s in series)
    by_name = {s.symbol: s for s in series}
    ordered = [by_name[n] for n in names]
    if len(ordered) == 1:  # no copies
        s = ordered[0]
        return LoopData(names, np.zeros(len(s), dtype=np.int32), s.ts, s.open, s.high, s.low,
                        s.close, s.volume, s.filled_mask)
    cat = lambda attr: np.concatenate([getattr(s, attr) for s in ordered])  # noqa: E731
    ts = cat("ts")
    index = np.concatenate([np.full(len(s), i, dtype=np.int32) for i, s in enumerate(ordered)])
    order = np.lexsort((index, ts))
    filled = np.concatenate([s.filled_mask for s in ordered])[order]
    cols = {k: cat(k)[order] for k in ("open", "high", "low", "close", "volume")}
    return LoopData(names, index[order], ts[order], cols["open"], cols["high"], cols["low"],
                    cols["close"], cols["volume"], filled)


def loop_data(bars: list[tuple[str, int, float, float, float, float, float]],
              symbols: list[str]) -> LoopData:
    """Bars as tuples (symbol, ts, open, high, low, close, volume), in the order given (a live
    run's, as it saw them), as the loop's columns; ``symbols`` names symbols with no bar yet."""
    names = sorted(set(symbols) | {b[0] for b in bars})
    index = {name: i for i, name in enumerate(names)}
    cols: list[tuple[Any, ...]] = list(zip(*bars, strict=True)) if bars else [()] * 7
    f8 = [np.asarray(c, dtype=np.float64) for c in cols[2:7]]
    return LoopData(names, np.fromiter((index[s] for s in cols[0]), np.int32, len(bars)),
                    np.asarray(cols[1], dtype=np.int64), f8[0], f8[1], f8[2], f8[3], f8[4],
                    np.zeros(len(bars), dtype=bool))
