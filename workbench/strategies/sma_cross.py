"""SMA cross: long when the fast simple moving average crosses above the slow one, flat below.

The contract, exactly: the SMA of n at a bar is ``math.fsum`` of the last n closes as stored
(float64) divided by n, defined once n bars of the symbol are seen. A cross up at bar t (both SMAs
defined at t-1 and t) is ``fast[t-1] <= slow[t-1] and fast[t] > slow[t]``: if flat, market buy
``qty``. A cross down is ``fast[t-1] >= slow[t-1] and fast[t] < slow[t]``: if long, market sell
the whole position. Each symbol keeps its own SMAs and position and trades on its own bars.

The SMAs and the cross are declared indicators (``workbench.indicators``): computed vectorised
before a backtest's loop, bit-exact to the definition above, so the loop only reads the signal.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from workbench.errors import ConfigError
from workbench.indicators import Cross, Indicator, Sma
from workbench.model import Bar, OrderIntent, Side
from workbench.strategy import Context, Strategy


class SmaCross(Strategy):
    """Buy ``qty`` on a fast-over-slow SMA cross up when flat; sell all on a cross down."""

    wake_on = "cross"  # on_bar does nothing on a bar without a cross
    fast: Annotated[int, Field(ge=1)] = 10
    slow: Annotated[int, Field(ge=1)] = 30
    qty: Annotated[float, Field(gt=0)] = 0.01

    @classmethod
    def check_params(cls, params: dict[str, Any], where: str = "strategy.params") -> None:
        if params["fast"] >= params["slow"]:
            raise ConfigError(
                f"fast ({params['fast']}) must be shorter than slow ({params['slow']}): the "
                "rule buys when the short average crosses above the long one; with fast >= "
                "slow it would trade the inverse signal (or never, when equal)",
                where=f"{where}.fast/slow",
                fix=f"set {where}.fast below {where}.slow (e.g. fast=10, slow=30)")

    @property
    def warmup_bars(self) -> int:
        """The slow SMA needs ``slow`` closes; the first cross can come on the bar after."""
        return self.slow

    def indicators(self) -> dict[str, Indicator]:
        """One declared signal: +1 on a cross up, -1 on a cross down, 0 else (``Cross``);
        the SMAs are exact (``math.fsum`` of the window / n), computed vectorised."""
        return {"cross": Cross(Sma(self.fast), Sma(self.slow))}

    def on_bar(self, ctx: Context, bar: Bar) -> list[OrderIntent] | None:
        cross = ctx.ind.cross
        if cross > 0:
            if ctx.position(bar.symbol) == 0:
                return [OrderIntent(bar.symbol, Side.BUY, self.qty)]
        elif cross < 0:
            held = ctx.position(bar.symbol)
            if held > 0:
                return [OrderIntent(bar.symbol, Side.SELL, held)]
        return None
