"""Live bars from the venue's REST klines: closed bars only, missed bars back-filled, gaps named.

``RestKlineFeed.closed_bars(after, now)`` returns every bar that opened after ``after`` and
has closed by ``now`` on the venue's clock (a bar still forming is never returned), paging
through ``/api/v3/klines`` 1000 at a time, with the minutes the venue does not have listed as
gaps (never invented). ``warmup(n, now)`` gives the last ``n`` closed bars before the first
decision. Every call goes through the ``VenueClient`` policy (retries, backoff, bans).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.errors import DataError
from workbench.model import Bar, ms_to_iso
from workbench.venue_client import VenueClient

PAGE = 1000  # the most klines one call returns


@dataclass(frozen=True)
class Gap:
    """Bars the venue does not have: ``count`` bars from ``first_ts`` (open times)."""

    symbol: str
    first_ts: int
    count: int

    def __str__(self) -> str:
        return f"{self.symbol}: {self.count} missing bar(s) from {ms_to_iso(self.first_ts)}"


_INTERVALS = {60_000: "1m", 180_000: "3m", 300_000: "5m", 900_000: "15m", 1_800_000: "30m",
              3_600_000: "1h", 7_200_000: "2h", 14_400_000: "4h", 21_600_000: "6h",
              28_800_000: "8h", 43_200_000: "12h", 86_400_000: "1d"}


class RestKlineFeed:
    def __init__(self, venue: VenueClient, symbol: str, timeframe_ms: int = 60_000) -> None:
        if timeframe_ms not in _INTERVALS:
            raise DataError(f"the venue has no kline interval of {timeframe_ms} ms",
                            where="data.timeframe",
                            fix=f"use one of {', '.join(_INTERVALS.values())}")
        self.venue, self.symbol, self.tf = venue, symbol, timeframe_ms
        self.interval = _INTERVALS[timeframe_ms]

    def closed_bars(self, after_ts: int | None, now_ms: int, *, limit: int | None = None
                    ) -> tuple[list[Bar], list[Gap]]:
        """Closed bars with open time > ``after_ts`` (all the venue serves when None), in
        order, and the gaps between them (and after ``after_ts``). At most ``limit`` bars."""
        bars: list[Bar] = []
        start = None if after_ts is None else after_ts + self.tf
        while True:
            page = self._klines(start, PAGE if limit is None else min(PAGE, limit - len(bars)))
            fresh = [b for b in page if b.ts + self.tf <= now_ms and
                     (not bars or b.ts > bars[-1].ts)]
            bars += fresh
            if len(page) < PAGE or not fresh or (limit is not None and len(bars) >= limit):
                break
            start = bars[-1].ts + self.tf
        return bars, self._gaps(after_ts, bars)

    def warmup(self, count: int, now_ms: int) -> list[Bar]:
        """The last ``count`` bars closed by ``now_ms`` (fewer when the venue has fewer)."""
        if count <= 0:
            return []
        last_closed = (now_ms // self.tf) * self.tf - self.tf  # open time of the last closed
        after = last_closed - count * self.tf
        bars, _ = self.closed_bars(after, now_ms)
        return bars[-count:]

    def gaps(self, bars: list[Bar], after_ts: int | None = None) -> list[Gap]:
        """The bars missing between ``bars`` (in order), and between ``after_ts`` and the
        first of them when given."""
        return self._gaps(after_ts, bars)

    def _klines(self, start: int | None, limit: int) -> list[Bar]:
        params: dict[str, Any] = {"symbol": self.symbol, "interval": self.interval,
                                  "limit": limit}
        if start is not None:
            params["startTime"] = start
        rows = self.venue.call("klines", self.venue.client.get_klines, **params)
        try:
            return [Bar(self.symbol, int(r[0]), float(r[1]), float(r[2]), float(r[3]),
                        float(r[4]), float(r[5])) for r in rows]
        except (TypeError, ValueError, IndexError) as exc:
            raise DataError(f"the venue answered klines that are not klines: {exc}",
                            where=self.venue.base_url,
                            fix="check venue.base_url points at a Binance-compatible venue"
                            ) from None

    def _gaps(self, after_ts: int | None, bars: list[Bar]) -> list[Gap]:
        gaps = []
        prev = after_ts
        for bar in bars:
            if prev is not None and bar.ts - prev > self.tf:
                gaps.append(Gap(self.symbol, prev + self.tf, (bar.ts - prev) // self.tf - 1))
            prev = bar.ts
        return gaps
