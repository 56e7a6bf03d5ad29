"""What a position pays to be held, bar by bar: a short's borrow, funding (adr/0026).

``costs.borrow_bps_per_year`` charges a short position, on each of its symbol's bars, the
yearly rate times its notional at the bar's close times the bar's share of a year (365 days):
``rate / 10_000 x |units| / 1e8 x close x timeframe_ms / YEAR_MS``. The position is the one
held into the bar (before the bar's own fills); a short opened at a bar's close pays from the
next bar on. Each charge is a ``Book.charge`` (cash, ``Book.charges``, one ``costs`` row of
kind ``borrow`` per bar and short symbol), so the books and ``acct.equity_curve`` agree bar by
bar. The kernel installs it (``Step.before_each_bar``) only for a backtest that allows shorts
at a non-zero rate: other runs pay nothing per bar.

``costs.funding_bps`` (perpetual-style data) is paid at each multiple of
``costs.funding_every`` since the epoch (8h: 00:00, 08:00 and 16:00 UTC), on the bar that
opens then: the position held into that bar pays ``rate / 10_000 x units / 1e8 x close``, so a
long pays and a short receives a positive rate (a negative rate the other way round); a
``costs`` row of kind ``funding`` per funding time and symbol held. A funding time without a
bar of the symbol (a gap) is not paid.
"""

from __future__ import annotations

from workbench.book import Book
from workbench.model import QTY_SCALE, Bar

YEAR_MS = 365 * 86_400_000


class Borrow:
    """Charge a short its borrow on each of its symbol's bars (a ``before_each_bar`` hook)."""

    def __init__(self, book: Book, bps_per_year: float, timeframe_ms: int) -> None:
        self.book = book
        self._units = book.units
        self.per_bar = bps_per_year / 10_000.0 * timeframe_ms / YEAR_MS
        """The share of a short's notional paid per bar."""

    def __call__(self, bar: Bar) -> None:
        held = self._units.get(bar.symbol, 0)
        if held < 0:
            self.book.charge(bar.ts, bar.symbol, "borrow",
                             -held / QTY_SCALE * bar.close * self.per_bar)


class Funding:
    """Charge every held position its funding at the funding times (a ``before_each_bar``
    hook)."""

    def __init__(self, book: Book, bps: float, every_ms: int) -> None:
        self.book = book
        self._units = book.units
        self.rate = bps / 10_000.0
        self.every_ms = every_ms

    def __call__(self, bar: Bar) -> None:
        if bar.ts % self.every_ms:
            return
        held = self._units.get(bar.symbol, 0)
        if held:
            self.book.charge(bar.ts, bar.symbol, "funding",
                             held / QTY_SCALE * bar.close * self.rate)
