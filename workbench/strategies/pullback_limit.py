"""Pullback with limits: bid below the market, take profit with a resting limit, stop at market.

When flat with no bid resting, place a buy limit ``dip_bps`` below the close that expires after
``expire_bars`` bars. Once filled, rest a sell limit ``take_profit_bps`` above the entry. If a
close falls ``stop_bps`` below the entry, cancel the take-profit and sell the position at market.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from workbench.model import Bar, Fill, Order, OrderIntent, Side
from workbench.strategy import Context, Strategy


class PullbackLimit(Strategy):
    """Buy dips with an expiring limit; exit at a take-profit limit or a market stop."""

    qty: Annotated[float, Field(gt=0)] = 0.01
    dip_bps: Annotated[float, Field(gt=0)] = 20.0
    take_profit_bps: Annotated[float, Field(gt=0)] = 30.0
    stop_bps: Annotated[float, Field(gt=0)] = 60.0
    expire_bars: Annotated[int, Field(ge=1)] = 5

    def on_start(self, ctx: Context) -> None:
        self._bid: dict[str, Order] = {}
        self._exit: dict[str, Order] = {}
        self._entry: dict[str, float] = {}

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        sym = bar.symbol
        held = ctx.position(sym)
        if held > 0:
            entry = self._entry[sym]
            if bar.close < entry * (1 - self.stop_bps / 1e4):
                take_profit = self._exit.pop(sym, None)
                if take_profit is not None:
                    ctx.cancel(take_profit)
                ctx.submit(OrderIntent(sym, Side.SELL, held, tag="stop"))
            return
        bid = self._bid.get(sym)
        if bid is None or not bid.is_open:
            price = bar.close * (1 - self.dip_bps / 1e4)
            self._bid[sym] = ctx.submit(
                OrderIntent.limit(sym, Side.BUY, self.qty, price,
                                  expire_after_bars=self.expire_bars, tag="entry")
            )

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        sym = fill.symbol
        if fill.side is Side.BUY:
            self._entry[sym] = fill.price
            target = fill.price * (1 + self.take_profit_bps / 1e4)
            self._exit[sym] = ctx.submit(
                OrderIntent.limit(sym, Side.SELL, ctx.position(sym), target, tag="take_profit")
            )
        elif ctx.position(sym) == 0:
            self._exit.pop(sym, None)
            self._entry.pop(sym, None)
