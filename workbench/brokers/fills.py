"""The fill model and its costs, shared by SimBroker and PaperBroker.

* Market orders fill at the reference price (the signal bar's close, or the next bar's open with
  ``fill_at: next_open``) moved against the taker: first half the spread, then slippage, then
  market impact::

      buy:  ref * (1 + spread_bps / 2 / 1e4) * (1 + slippage_bps / 1e4) * (1 + impact)
      sell: ref * (1 - spread_bps / 2 / 1e4) * (1 - slippage_bps / 1e4) * (1 - impact)

  ``impact`` (off unless configured) is the square-root law on the bar the order fills on,
  ``impact_k * sigma * sqrt(qty / volume)`` with ``sigma`` that bar's Parkinson volatility
  (``ln(high / low) / sqrt(4 ln 2)``), capped at ``impact_cap_bps`` (a bar without volume pays
  the cap), plus the bps of the highest ``impact_tiers`` step the order's notional reaches.
* Limit orders fill at their limit, or at the open when the bar opens through it; they rest on
  the book as a maker, so neither spread, slippage nor impact applies to them.
* Fees are ``fee_bps`` of each fill's notional plus ``fee_per_unit`` per unit bought or sold,
  in the quote currency; an order's first fill pays at least ``min_fee``.
* ``min_notional``: an order whose notional is below it is rejected (``MIN_NOTIONAL``).
* Each market fill's spread, slippage and impact, in the quote currency, are its costs
  (``Fill.spread_cost``, ...): already in its price, they are kept so that a report can say what
  each assumption cost (the ``costs`` table, ``rpt.cost_breakdown``).

What a latency (``execution.latency``, ``brokers/execution.py``) means under each ``fill_at``:
a decision is made at its signal bar's close, the instant the next bar opens. ``close`` prices
an order executed at that very instant at the signal bar's close; an order that needs any time
to reach the venue executes inside a later bar, so it is priced at the open of the bar it
lands in (the first price that bar knows; with contiguous 1-minute bars and a delay under a
minute, the next bar's open). ``next_open`` already prices at the next bar's open: a delay
under a bar changes no price, a longer one moves the fill to the open of the bar it lands in.
Limits rest as they always did, from the bar they reach the venue in. A part of an order
capped by participation pays the impact of its own size. See adr/0020.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from workbench.model import NO_COSTS, QTY_SCALE, Bar, Side

SlippageFn = Callable[[Side, float, float], float]
"""(side, reference price, qty) -> slippage in bps."""

_PARKINSON = 1.0 / math.sqrt(4.0 * math.log(2.0))
_NONE: Mapping[int, float] = {}


@dataclass(frozen=True)
class CostModel:
    fee_bps: float = 0.0
    spread_bps: float = 0.0
    slippage_bps: float = 0.0
    min_notional: float = 0.0
    fill_at: str = "close"
    slippage_fn: SlippageFn | None = None
    fee_per_unit: float = 0.0
    min_fee: float = 0.0
    impact_k: float = 0.0
    impact_cap_bps: float = 500.0
    impact_tiers: tuple[tuple[float, float], ...] = ()
    """(notional from which it applies, bps), ascending by notional."""
    bar_spreads: Mapping[str, Mapping[int, float]] | None = None
    """Per symbol, bar open time -> that bar's spread in bps (``costs.spread_column``): a
    market fill on a listed bar pays half of it in place of ``spread_bps``."""

    def market_price(self, side: Side, ref: float, qty: float = 0.0, bar: Bar | None = None
                     ) -> float:
        """The price a market order of ``side`` pays or receives against reference ``ref``
        (``bar``: the bar it fills on, for the impact)."""
        return self.market_fill(side, ref, qty, bar)[0]

    def market_fill(self, side: Side, ref: float, qty: float = 0.0, bar: Bar | None = None
                    ) -> tuple[float, tuple[float, float, float]]:
        """The price of a market fill and its (spread, slippage, impact) costs in the quote
        currency, for ``qty`` units."""
        slip = self.slippage_fn(side, ref, qty) if self.slippage_fn else self.slippage_bps
        sign = 1.0 if side is Side.BUY else -1.0
        spread_bps = self.spread_bps
        if self.bar_spreads is not None and bar is not None:
            spread_bps = self.bar_spreads.get(bar.symbol, _NONE).get(bar.ts, spread_bps)
        spread = ref * (1.0 + sign * spread_bps / 2.0 / 1e4)
        price = spread * (1.0 + sign * slip / 1e4)
        if not (self.impact_k or self.impact_tiers) or not qty:
            if not qty:
                return price, NO_COSTS
            return price, (sign * (spread - ref) * qty, sign * (price - spread) * qty, 0.0)
        impacted = price * (1.0 + sign * self.impact(ref, qty, bar))
        return impacted, (sign * (spread - ref) * qty, sign * (price - spread) * qty,
                          sign * (impacted - price) * qty)

    def impact(self, ref: float, qty: float, bar: Bar | None) -> float:
        """The market impact of ``qty`` units as a fraction of the price (see the module)."""
        cap = self.impact_cap_bps / 1e4
        frac = 0.0
        if self.impact_k:
            if bar is None or bar.volume <= 0.0:
                frac = cap
            else:
                sigma = math.log(bar.high / bar.low) * _PARKINSON if bar.low > 0 else 0.0
                frac = min(cap, self.impact_k * sigma * math.sqrt(qty / bar.volume))
        notional = qty * ref
        for start, bps in reversed(self.impact_tiers):
            if notional >= start:
                frac += bps / 1e4
                break
        return min(frac, 0.5)  # the config refuses more: a sell never fills at or below 0

    def fee(self, notional: float, qty: float = 0.0, first: bool = True) -> float:
        """The fee of a fill of ``qty`` units worth ``notional``; ``first``: the order's first
        fill, which pays at least ``min_fee``."""
        fee = notional * self.fee_bps / 1e4
        if self.fee_per_unit:
            fee += qty * self.fee_per_unit
        if first and self.min_fee and fee < self.min_fee:
            return self.min_fee
        return fee

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
