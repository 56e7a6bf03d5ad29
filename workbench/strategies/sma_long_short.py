"""SMA long/short: long ``qty`` on a fast-over-slow SMA cross up, short ``qty`` on a cross down.

The SMAs and the cross are SmaCross's (the same contract, the same declared indicator). On a
cross up the strategy buys what takes the symbol's position to ``+qty`` (covering a short and
going long in one order); on a cross down it sells what takes it to ``-qty``. A short needs
``portfolio.allow_short: true`` (backtests only, adr/0026); without it every reversing sell
(beyond the position) is rejected ``INSUFFICIENT_POSITION``: the first long is never closed.
"""

from __future__ import annotations

from workbench.model import QTY_SCALE, Bar, OrderIntent, Side
from workbench.strategies.sma_cross import SmaCross
from workbench.strategy import Context


class SmaLongShort(SmaCross):
    """Go long ``qty`` on a fast-over-slow SMA cross up and short ``qty`` on a cross down."""

    def on_bar(self, ctx: Context, bar: Bar) -> list[OrderIntent] | None:
        cross = ctx.ind.cross
        if cross == 0:
            return None
        target = round(self.qty * QTY_SCALE) * (1 if cross > 0 else -1)
        delta = target - ctx.book.position_units(bar.symbol)
        if delta > 0:
            return [OrderIntent(bar.symbol, Side.BUY, delta / QTY_SCALE)]
        if delta < 0:
            return [OrderIntent(bar.symbol, Side.SELL, -delta / QTY_SCALE)]
        return None
