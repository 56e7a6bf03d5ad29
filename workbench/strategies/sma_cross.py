"""SMA cross: long when the fast simple moving average crosses above the slow one, flat below.

The contract, exactly: the SMA of n at a bar is ``math.fsum`` of the last n closes as stored
(float64) divided by n, defined once n bars of the symbol are seen. A cross up at bar t (both SMAs
defined at t-1 and t) is ``fast[t-1] <= slow[t-1] and fast[t] > slow[t]``: if flat, market buy
``qty``. A cross down is ``fast[t-1] >= slow[t-1] and fast[t] < slow[t]``: if long, market sell
the whole position. Each symbol keeps its own SMAs and position and trades on its own bars.
"""

from __future__ import annotations

from collections import deque
from math import fsum
from typing import Annotated, Any

from pydantic import Field

from workbench.errors import ConfigError
from workbench.model import Bar, OrderIntent, Side
from workbench.strategy import Context, Strategy


class _Sma:
    """One symbol's windows and the SMAs of its previous bar (None until both are defined)."""

    __slots__ = ("fast", "n_fast", "n_slow", "prev_fast", "prev_slow", "slow")

    def __init__(self, fast: int, slow: int) -> None:
        self.fast: deque[float] = deque(maxlen=fast)
        self.slow: deque[float] = deque(maxlen=slow)
        self.n_fast, self.n_slow = fast, slow
        self.prev_fast: float | None = None
        self.prev_slow = 0.0


class SmaCross(Strategy):
    """Buy ``qty`` on a fast-over-slow SMA cross up when flat; sell all on a cross down."""

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

    def on_start(self, ctx: Context) -> None:
        self._state: dict[str, _Sma] = {}

    def on_bar(self, ctx: Context, bar: Bar) -> list[OrderIntent] | None:
        st = self._state.get(bar.symbol)
        if st is None:
            st = self._state[bar.symbol] = _Sma(self.fast, self.slow)
        fq, sq = st.fast, st.slow
        fq.append(bar.close)
        sq.append(bar.close)
        if st.prev_fast is None and (len(fq) < st.n_fast or len(sq) < st.n_slow):
            return None  # warming up: an SMA is defined once n closes are seen
        f = fsum(fq) / st.n_fast
        s = fsum(sq) / st.n_slow
        pf, ps = st.prev_fast, st.prev_slow
        st.prev_fast, st.prev_slow = f, s
        if pf is None:
            return None
        if pf <= ps and f > s:
            if ctx.position(bar.symbol) == 0:
                return [OrderIntent(bar.symbol, Side.BUY, self.qty)]
        elif pf >= ps and f < s:
            held = ctx.position(bar.symbol)
            if held > 0:
                return [OrderIntent(bar.symbol, Side.SELL, held)]
        return None
