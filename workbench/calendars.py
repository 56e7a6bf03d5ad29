"""Trading calendars: when a market is open, so that QC (on ingest, and when a run reads its
bars, resampled ones included) expects bars only then.

``data.calendar`` names one:

* ``24x7`` (the default): every bar is expected (crypto). No calendar object: the fast path.
* an exchange code known to ``exchange_calendars`` (``XNYS``, ``XLON``, ``XTKS``, ...): its
  sessions, holidays, early closes and breaks as that maintained library knows them (the
  optional extra ``calendars``: ``pip install 'workbench[calendars]'``).
* a CSV file of sessions (a name with a suffix or a directory: ``sessions.csv``): a header
  ``open,close`` and one row per session, ISO times with an offset or ``Z``
  (``2024-07-03T13:30:00Z,2024-07-03T17:00:00Z``); a relative path is taken from the working
  directory. The run manifest records its sha256 (``calendar``): the config names the file,
  not its contents.

A bar (open time ``t``, aligned to its timeframe) is expected when the market is open during
any minute of ``[t, t + timeframe)``.
"""

from __future__ import annotations

import csv
import functools
import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from workbench.errors import ConfigError, DataError
from workbench.model import ms_to_iso

ALWAYS_OPEN = "24x7"
MINUTE_MS = 60_000
_DAY_MS = 86_400_000


@dataclass(frozen=True)
class SessionCalendar:
    """Sessions as sorted, non-overlapping ``[open, close)`` pairs in ms UTC, or a loader of
    them for a span (an exchange's calendar, read for the span asked)."""

    name: str
    opens: np.ndarray | None = None
    closes: np.ndarray | None = None

    def sessions(self, start_ms: int, end_ms: int) -> tuple[np.ndarray, np.ndarray]:
        """The sessions that overlap ``[start_ms, end_ms]``."""
        if self.opens is None or self.closes is None:
            return _exchange_sessions(self.name, start_ms, end_ms)
        keep = (self.closes > start_ms) & (self.opens <= end_ms)
        return self.opens[keep], self.closes[keep]

    def bar_opens(self, start_ms: int, end_ms: int, tf_ms: int) -> np.ndarray:
        """The open times of the bars expected in ``[start_ms, end_ms]``, ascending. Bars of a
        day or more: one per session, at the UTC day its last minute falls on (a session that
        opens the evening before, as Sydney's or CME's, is that day's bar)."""
        opens, closes = self.sessions(start_ms, end_ms + tf_ms - 1)  # a bar the last one opens
        if not len(opens):
            return np.zeros(0, dtype=np.int64)
        if tf_ms >= _DAY_MS:
            last = closes - 1
            ts = np.unique(last - last % _DAY_MS)
            ts = np.unique(ts - ts % tf_ms)
            return ts[(ts >= start_ms) & (ts <= end_ms)]
        first = opens - opens % tf_ms  # the bar a session's first minute falls in
        counts = (closes - 1 - first) // tf_ms + 1  # bars touched by [open, close)
        index = np.repeat(np.arange(len(opens)), counts)
        starts = np.cumsum(counts) - counts
        step = np.arange(len(index)) - np.repeat(starts, counts)
        ts = np.unique(first[index] + step * tf_ms)
        return ts[(ts >= start_ms) & (ts <= end_ms)]

    def describe(self) -> str:
        return self.name

    def fingerprint(self) -> dict[str, str]:
        """What a manifest records: the name, and a file's sessions' sha256 or the calendar
        library's version."""
        if self.opens is None or self.closes is None:
            import exchange_calendars as xcals

            return {"name": self.name, "exchange_calendars": str(xcals.__version__)}
        digest = hashlib.sha256(self.opens.tobytes() + self.closes.tobytes()).hexdigest()
        return {"name": self.name, "sessions_sha256": digest}

    def complete_buckets(self, ts: np.ndarray, counts: np.ndarray, tf_ms: int, finer_ms: int
                         ) -> np.ndarray:
        """Which resampled buckets (open times ``ts`` of ``tf_ms``, holding ``counts`` finer
        bars) hold every finer bar the calendar expects in them. Raises DataError for bars of
        a day or more when a session crosses 00:00 UTC (its buckets would split it)."""
        if not len(ts):
            return np.zeros(0, dtype=bool)
        lo, hi = int(ts[0]), int(ts[-1]) + tf_ms - 1
        if tf_ms >= _DAY_MS:
            opens, closes = self.sessions(lo, hi)
            if np.any(opens // _DAY_MS != (closes - 1) // _DAY_MS):
                raise DataError(
                    f"the sessions of calendar {self.describe()} cross 00:00 UTC: bars of a "
                    "day or more resampled from finer ones would split them",
                    fix="ingest bars of that timeframe (one per session), or resample to bars "
                        "shorter than a day")
        expected = self.bar_opens(lo, hi, finer_ms)
        buckets, wanted = np.unique(expected - expected % tf_ms, return_counts=True)
        need = np.zeros(len(ts), dtype=np.int64)
        at = np.searchsorted(buckets, ts)
        found = (at < len(buckets)) & (buckets[np.minimum(at, len(buckets) - 1)] == ts)
        need[found] = wanted[at[found]]
        return counts >= need


def calendar_for(spec: str | None) -> SessionCalendar | None:
    """The calendar ``data.calendar`` names; None for ``24x7``. Raises ConfigError naming what
    is wrong (an unknown code, a missing or malformed file, the extra not installed)."""
    if spec is None or spec == ALWAYS_OPEN:
        return None
    path = Path(spec)
    if not (path.suffix or len(path.parts) > 1 or path.is_file()):
        return _exchange(spec)
    return _file_calendar(Path(spec), spec)


@functools.lru_cache(maxsize=16)
def _exchange(code: str) -> SessionCalendar:
    _exchange_calendar(code)  # fail now on an unknown code, not at QC
    return SessionCalendar(code)


def _file_calendar(path: Path, spec: str) -> SessionCalendar:
    where = f"data.calendar {spec!r}"
    fix = ("give 24x7, an exchange code (XNYS, XLON, ...) or a CSV file with a header "
           "'open,close' and one session per row, ISO times with an offset or Z")
    if not path.is_file():
        raise ConfigError(f"the calendar file {path} does not exist", where=where, fix=fix)
    opens: list[int] = []
    closes: list[int] = []
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or {"open", "close"} - set(reader.fieldnames):
            raise ConfigError(f"{path} has no 'open' and 'close' columns "
                              f"(header: {reader.fieldnames})", where=where, fix=fix)
        for row_number, row in enumerate(reader, start=2):
            o, c = _instant(row["open"]), _instant(row["close"])
            if o is None or c is None:
                raise ConfigError(f"{path} row {row_number}: {row['open']!r}, {row['close']!r} "
                                  "are not both ISO times with an offset", where=where, fix=fix)
            if c <= o:
                raise ConfigError(f"{path} row {row_number}: a session must close after it "
                                  f"opens ({row['open']} to {row['close']})", where=where,
                                  fix=fix)
            if opens and o < closes[-1]:
                raise ConfigError(
                    f"{path} row {row_number}: the session opening {ms_to_iso(o)} starts "
                    f"before the previous one closes ({ms_to_iso(closes[-1])})", where=where,
                    fix="list sessions in time order, without overlaps")
            opens.append(o)
            closes.append(c)
    if not opens:
        raise ConfigError(f"{path} lists no session", where=where, fix=fix)
    return SessionCalendar(str(path), np.asarray(opens, dtype=np.int64),
                           np.asarray(closes, dtype=np.int64))


def _instant(text: str | None) -> int | None:
    """An ISO time with an offset (or Z) as ms UTC; None when it is not one."""
    try:
        when = datetime.fromisoformat((text or "").strip())
    except ValueError:
        return None
    return None if when.tzinfo is None else int(when.timestamp() * 1000)


def _exchange_calendar(code: str, start_ms: int | None = None, end_ms: int | None = None
                       ) -> object:
    try:
        import exchange_calendars as xcals
    except ImportError:
        raise ConfigError(
            f"data.calendar {code!r} needs the exchange_calendars library, not installed",
            fix="pip install 'workbench[calendars]' (or use 24x7, or a CSV file of sessions)",
        ) from None
    import pandas as pd

    if code not in xcals.get_calendar_names(include_aliases=True):
        raise ConfigError(f"data.calendar {code!r} is not an exchange calendar known to "
                          f"exchange_calendars {xcals.__version__}",
                          fix="use an ISO 10383 MIC such as XNYS, XNAS, XLON, XTKS (see "
                              "exchange_calendars.get_calendar_names()), 24x7, or a CSV file "
                              "named with its suffix (sessions.csv)")
    if start_ms is None or end_ms is None:
        return None
    day = lambda ms: pd.Timestamp(ms, unit="ms").normalize()  # noqa: E731
    try:
        return xcals.get_calendar(code, start=day(start_ms), end=day(end_ms))
    except ValueError as exc:  # a span outside what the calendar knows
        raise DataError(f"calendar {code} cannot cover {ms_to_iso(start_ms)[:10]} to "
                        f"{ms_to_iso(end_ms)[:10]}: {exc}",
                        fix="narrow the run's span (data.start/end, --from/--to) to the "
                            "calendar's, or use a CSV file of sessions") from None


def _exchange_sessions(code: str, start_ms: int, end_ms: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The trading intervals (sessions split at their breaks) of ``code`` around a span."""
    opens, closes = _exchange_schedule(code, start_ms // _DAY_MS - 1, end_ms // _DAY_MS + 1)
    keep = (closes > start_ms) & (opens <= end_ms)
    return opens[keep], closes[keep]


@functools.lru_cache(maxsize=16)
def _exchange_schedule(code: str, first_day: int, last_day: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``code``'s trading intervals from day ``first_day`` to ``last_day`` (days since the
    epoch), read once per process (building an exchange calendar takes about half a second)."""
    cal = _exchange_calendar(code, first_day * _DAY_MS, last_day * _DAY_MS)
    schedule = cal.schedule  # type: ignore[attr-defined]
    as_ms = lambda col: schedule[col].to_numpy("datetime64[ms]").astype(np.int64)  # noqa: E731
    opens, closes = as_ms("open"), as_ms("close")
    if "break_start" in schedule and schedule["break_start"].notna().any():
        has = schedule["break_start"].notna().to_numpy()
        b_start = np.where(has, as_ms("break_start"), closes)
        b_end = np.where(has, as_ms("break_end"), closes)
        opens = np.concatenate([opens, b_end[has]])
        closes = np.concatenate([b_start, closes[has]])
        order = np.argsort(opens, kind="stable")
        opens, closes = opens[order], closes[order]
    opens.setflags(write=False)
    closes.setflags(write=False)
    return opens, closes
