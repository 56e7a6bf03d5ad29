"""The fake exchange's market data: one symbol's 1-minute bars, served as Binance klines.

Bars come from a file (CSV, Parquet or Binance kline JSON, read by ``workbench.feeds.files``).
A minute missing from the file is a venue gap: it is served as missing, never invented. A bar
is served only once its close time has passed on the venue clock.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import DataError

MINUTE_MS = 60_000
KLINES_DEFAULT_LIMIT = 500
KLINES_MAX_LIMIT = 1000
MIN_NOTIONAL = {"BTC": "0.00010000", "ETH": "0.00100000", "BNB": "0.01000000"}
QUOTES = ("USDT", "FDUSD", "USDC", "BUSD", "TUSD", "DAI", "EUR", "TRY", "BTC", "ETH", "BNB")


def _f8(value: float) -> str:
    """A decimal as Binance writes it: a string with 8 decimals."""
    return f"{value:.8f}"


@dataclass(frozen=True)
class SymbolRules:
    """The exchangeInfo entry of the one symbol: assets and filters (decimal strings)."""

    symbol: str
    base_asset: str
    quote_asset: str
    tick_size: str = "0.01000000"
    min_price: str = "0.01000000"
    max_price: str = "1000000.00000000"
    step_size: str = "0.00001000"
    min_qty: str = "0.00001000"
    max_qty: str = "9000.00000000"
    min_notional: str = "5.00000000"
    max_notional: str = "9000000.00000000"

    def filters(self) -> list[dict[str, Any]]:
        return [
            {"filterType": "PRICE_FILTER", "minPrice": self.min_price,
             "maxPrice": self.max_price, "tickSize": self.tick_size},
            {"filterType": "LOT_SIZE", "minQty": self.min_qty, "maxQty": self.max_qty,
             "stepSize": self.step_size},
            {"filterType": "MIN_NOTIONAL", "minNotional": self.min_notional,
             "applyToMarket": True, "avgPriceMins": 5},
            {"filterType": "NOTIONAL", "minNotional": self.min_notional,
             "applyMinToMarket": True, "maxNotional": self.max_notional,
             "applyMaxToMarket": False, "avgPriceMins": 5},
        ]


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTCUSDT`` -> (``BTC``, ``USDT``) by the known quote assets; else the last 3 letters."""
    for quote in QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol[:-3] or symbol, symbol[-3:]


class BarBook:
    """Columns of bars ascending by open time (ms UTC), 1-minute, no duplicates."""

    def __init__(self, symbol: str, ts: Iterable[int], open_: Iterable[float],
                 high: Iterable[float], low: Iterable[float], close: Iterable[float],
                 volume: Iterable[float], trades: Iterable[int] | None = None) -> None:
        self.symbol = symbol
        self.ts = [int(t) for t in ts]
        self.open = [float(x) for x in open_]
        self.high = [float(x) for x in high]
        self.low = [float(x) for x in low]
        self.close = [float(x) for x in close]
        self.volume = [float(x) for x in volume]
        self.trades = [int(x) for x in trades] if trades is not None else [0] * len(self.ts)
        n = len(self.ts)
        if n == 0:
            raise DataError("the bar file holds no bars", where=symbol)
        if any(len(c) != n for c in (self.open, self.high, self.low, self.close, self.volume,
                                     self.trades)):
            raise DataError("bar columns differ in length", where=symbol)
        for i, t in enumerate(self.ts):
            if t % MINUTE_MS:
                raise DataError(f"bar {i + 1} opens at {t}, not on a minute", where=symbol)
            if i and t <= self.ts[i - 1]:
                raise DataError(f"bar {i + 1} ({t}) is not after the bar before it",
                                where=symbol, fix="sort the file and drop duplicate minutes")

    @classmethod
    def from_file(cls, path: Path, symbol: str) -> BarBook:
        from workbench.feeds.files import read_bars
        from workbench.feeds.qc import check_rows, summarize

        series, findings = read_bars(Path(path), symbol, MINUTE_MS)
        if series is not None:
            findings = [f for f in check_rows(series, str(path)) if f.severity == "error"]
        if series is None or findings:
            raise DataError(f"cannot serve the bars of {path}:\n       {summarize(findings)}",
                            fix="fix the file, or check it with `workbench ingest`")
        trades = None
        if series.trades is not None:
            trades = np.nan_to_num(series.trades, nan=0.0).astype(np.int64).tolist()
        return cls(symbol, series.ts.tolist(), series.open.tolist(), series.high.tolist(),
                   series.low.tolist(), series.close.tolist(), series.volume.tolist(), trades)

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def first_open_ms(self) -> int:
        return self.ts[0]

    def price_decimals(self, sample: int = 5000) -> int:
        """The fewest decimals (0..8) that write every sampled price exactly."""
        prices = [p for col in (self.open, self.high, self.low, self.close)
                  for p in col[:sample]]
        for d in range(9):
            if all(abs(round(p, d) - p) <= 1e-9 * max(1.0, abs(p)) for p in prices):
                return d
        return 8

    def rules(self, **overrides: str) -> SymbolRules:
        """Filters that fit the data: the tick is the prices' own grid (at most 8 decimals);
        a lot step worth about one unit of quote (BTC at 42000: 0.00001; never above 1); the
        minimum notional Binance uses for the quote asset (5 USDT, 0.0001 BTC, ...)."""
        base, quote = split_symbol(self.symbol)
        tick = _f8(10.0 ** -self.price_decimals())
        price = self.close[-1]
        step_decimals = min(8, max(0, round(math.log10(price))))
        step = 10.0 ** -step_decimals
        fields: dict[str, str] = {
            "tick_size": tick, "min_price": tick, "step_size": _f8(step), "min_qty": _f8(step),
            "max_qty": _f8(9e8 * step), "min_notional": MIN_NOTIONAL.get(quote, "5.00000000")}
        fields.update(overrides)
        return SymbolRules(self.symbol, base, quote, **fields)

    def kline(self, i: int) -> list[Any]:
        """Row ``i`` in Binance's layout. The file has no quote volume or taker split: the
        quote volume is estimated as volume x typical price, the taker side as half of each."""
        t, v = self.ts[i], self.volume[i]
        quote = v * (self.high[i] + self.low[i] + self.close[i]) / 3.0
        return [t, _f8(self.open[i]), _f8(self.high[i]), _f8(self.low[i]), _f8(self.close[i]),
                _f8(v), t + MINUTE_MS - 1, _f8(quote), self.trades[i], _f8(v / 2.0),
                _f8(quote / 2.0), "0"]

    def klines(self, now_ms: int, start_ms: int | None, end_ms: int | None, limit: int,
               drops: Sequence[tuple[int, int]] = ()) -> list[list[Any]]:
        """Closed bars (close time before ``now_ms``) whose open time is within
        [start, end]: the first ``limit`` from ``start``, else the last ``limit``."""
        hi = bisect_right(self.ts, now_ms - MINUTE_MS)  # open + 60000 <= now: closed
        if end_ms is not None:
            hi = min(hi, bisect_right(self.ts, end_ms))
        lo = bisect_left(self.ts, start_ms) if start_ms is not None else 0
        dropped = lambda t: any(a <= t <= b for a, b in drops)  # noqa: E731
        picked: list[int] = []
        order = range(lo, hi) if start_ms is not None else range(hi - 1, lo - 1, -1)
        for i in order:
            if len(picked) >= limit:
                break
            if not drops or not dropped(self.ts[i]):
                picked.append(i)
        picked.sort()
        return [self.kline(i) for i in picked]
