"""The fill model and its costs, shared by SimBroker and PaperBroker.

* Market orders fill at the reference price (the signal bar's close, or the next bar's open with
  ``fill_at: next_open``) moved against the taker: first half the spread, then slippage::

      buy:  ref * (1 + spread_bps / 2 / 1e4) * (1 + slippage_bps / 1e4)
      sell: ref * (1 - spread_bps / 2 / 1e4) * (1 - slippage_bps / 1e4)

* Limit orders fill at their limit, or at the open when the bar opens through it; they rest on
  the book as a maker, so neither spread nor slippage applies to them.
* Fees are ``fee_bps`` of each fill's notional, in the quote currency, on every fill.
* ``min_notional``: an order whose notional is below it is rejected (``MIN_NOTIONAL``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from workbench.model import QTY_SCALE, Side

SlippageFn = Callable[[Side, float, float], float]
"""(side, reference price, qty) -> slippage in bps."""


@dataclass(frozen=True)
class CostModel:
    fee_bps: float = 0.0
    spread_bps: float = 0.0
    slippage_bps: float = 0.0
    min_notional: float = 0.0
    fill_at: str = "close"
    slippage_fn: SlippageFn | None = None

    def market_price(self, side: Side, ref: float, qty: float = 0.0) -> float:
        """The price a market order of ``side`` pays or receives against reference ``ref``."""
        slip = self.slippage_fn(side, ref, qty) if self.slippage_fn else self.slippage_bps
        if side is Side.BUY:
            return ref * (1.0 + self.spread_bps / 2.0 / 1e4) * (1.0 + slip / 1e4)
        return ref * (1.0 - self.spread_bps / 2.0 / 1e4) * (1.0 - slip / 1e4)

    def fee(self, notional: float) -> float:
        return notional * self.fee_bps / 1e4

    def below_minimum(self, units: int, price: float) -> bool:
        """Whether ``units`` (of 1e-8) at ``price`` is an order below ``min_notional``."""
        return units / QTY_SCALE * price < self.min_notional

    @classmethod
    def free(cls, fill_at: str = "close") -> CostModel:
        return cls(fill_at=fill_at)


def limit_fill_price(side: Side, limit: float, open_: float, high: float, low: float
                     ) -> float | None:
    """Where a resting limit fills on a bar that touches it, or None when it does not."""
    if side is Side.BUY:
        if open_ <= limit:
            return open_
        return limit if low <= limit else None
    if open_ >= limit:
        return open_
    return limit if high >= limit else None
