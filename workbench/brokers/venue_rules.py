"""A Binance symbol's trading rules, applied with ``Decimal`` before any order leaves.

``SymbolFilters.from_exchange_info`` reads ``PRICE_FILTER``, ``LOT_SIZE``, ``NOTIONAL`` (or the
older ``MIN_NOTIONAL``) and ``MAX_NUM_ORDERS`` from a symbol's ``exchangeInfo`` entry;
``check`` says which one an order breaks, as the reason the broker rejects it with
(``VENUE_FILTER_LOT_SIZE``, ...), with what would pass; ``qty_text``/``price_text`` write the
numbers the venue will accept, exactly, never a float's repr. ``client_order_id`` makes our
deterministic ``newClientOrderId`` within Binance's pattern.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal
from typing import Any

CLIENT_ORDER_ID = re.compile(r"^[a-zA-Z0-9-_]{1,36}$")
ZERO = Decimal(0)


class VenueFilter:
    """The reject reasons of a filter an order breaks before it is sent."""

    PRICE_FILTER = "VENUE_FILTER_PRICE_FILTER"
    LOT_SIZE = "VENUE_FILTER_LOT_SIZE"
    NOTIONAL = "VENUE_FILTER_NOTIONAL"
    MAX_NUM_ORDERS = "VENUE_FILTER_MAX_NUM_ORDERS"


def exact(value: float | str | Decimal) -> Decimal:
    """A float as the decimal its shortest repr writes (0.1 -> Decimal("0.1"), not the binary
    expansion)."""
    return value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(
        value, float) else value)


def _text(value: Decimal) -> str:
    """Plain decimal text without exponent or trailing zeros (``1E-5`` -> ``0.00001``)."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class Breach:
    """An order a filter refuses: the reason code and what the filter wants."""

    reason: str
    detail: str


@dataclass(frozen=True)
class SymbolFilters:
    symbol: str
    tick_size: Decimal = ZERO
    min_price: Decimal = ZERO
    max_price: Decimal = ZERO  # 0: no maximum
    step_size: Decimal = ZERO
    min_qty: Decimal = ZERO
    max_qty: Decimal = ZERO
    min_notional: Decimal = ZERO
    max_notional: Decimal = ZERO  # 0: no maximum
    min_notional_market: bool = True
    max_notional_market: bool = False
    max_num_orders: int = 0  # 0: no limit

    @classmethod
    def from_exchange_info(cls, entry: dict[str, Any]) -> SymbolFilters:
        """From one element of ``exchangeInfo["symbols"]``."""
        found: dict[str, Any] = {"symbol": entry["symbol"]}
        for f in entry.get("filters", []):
            kind = f.get("filterType")
            if kind == "PRICE_FILTER":
                found.update(tick_size=Decimal(f["tickSize"]), min_price=Decimal(f["minPrice"]),
                             max_price=Decimal(f["maxPrice"]))
            elif kind == "LOT_SIZE":
                found.update(step_size=Decimal(f["stepSize"]), min_qty=Decimal(f["minQty"]),
                             max_qty=Decimal(f["maxQty"]))
            elif kind == "NOTIONAL":
                found.update(min_notional=Decimal(f["minNotional"]),
                             max_notional=Decimal(f.get("maxNotional", "0")),
                             min_notional_market=bool(f.get("applyMinToMarket", True)),
                             max_notional_market=bool(f.get("applyMaxToMarket", False)))
            elif kind == "MIN_NOTIONAL" and "min_notional" not in found:
                found.update(min_notional=Decimal(f["minNotional"]),
                             min_notional_market=bool(f.get("applyToMarket", True)))
            elif kind == "MAX_NUM_ORDERS":
                found["max_num_orders"] = int(f["maxNumOrders"])
        return cls(**found)

    def check(self, qty: float | Decimal, price: float | Decimal | None,
              reference: float | Decimal, open_orders: int = 0) -> Breach | None:
        """The first filter a new order breaks, in the venue's order, or None. ``price``: a
        limit order's price (None for market); ``reference``: the price a market order's
        notional is judged at; ``open_orders``: this symbol's orders open now."""
        q = exact(qty)
        if price is not None:
            p = exact(price)
            if p < self.min_price or (self.max_price and p > self.max_price) or not _on(
                    p, self.min_price, self.tick_size):
                return Breach(VenueFilter.PRICE_FILTER,
                              f"price {_text(p)} must be within [{_text(self.min_price)}, "
                              f"{_text(self.max_price) if self.max_price else 'inf'}] on a "
                              f"tick of {_text(self.tick_size)} (e.g. "
                              f"{_text(self.round_price(p))})")
        if q < self.min_qty or (self.max_qty and q > self.max_qty) or not _on(
                q, self.min_qty, self.step_size):
            return Breach(VenueFilter.LOT_SIZE,
                          f"quantity {_text(q)} must be within [{_text(self.min_qty)}, "
                          f"{_text(self.max_qty) if self.max_qty else 'inf'}] on a step of "
                          f"{_text(self.step_size)} (e.g. {_text(self.round_qty(q))})")
        market = price is None
        notional = q * exact(reference if price is None else price)
        low = self.min_notional if (not market or self.min_notional_market) else ZERO
        high = self.max_notional if (not market or self.max_notional_market) else ZERO
        if notional < low or (high and notional > high):
            return Breach(VenueFilter.NOTIONAL,
                          f"notional {_text(notional)} must be at least {_text(low)}"
                          + (f" and at most {_text(high)}" if high else ""))
        if self.max_num_orders and open_orders >= self.max_num_orders:
            return Breach(VenueFilter.MAX_NUM_ORDERS,
                          f"{open_orders} orders open; the venue allows {self.max_num_orders}")
        return None

    def round_qty(self, qty: float | Decimal) -> Decimal:
        """Down to the lot step (what a sell of everything held can send)."""
        return _down(exact(qty), self.min_qty, self.step_size)

    def round_price(self, price: float | Decimal) -> Decimal:
        return _down(exact(price), self.min_price, self.tick_size)

    def qty_text(self, qty: float | Decimal) -> str:
        """The quantity as the venue takes it; call ``check`` first (it must be on the grid)."""
        return _text(exact(qty))

    def price_text(self, price: float | Decimal) -> str:
        return _text(exact(price))

    def min_qty_for(self, price: float | Decimal) -> Decimal:
        """The smallest quantity on the lot grid whose notional at ``price`` meets the minimum:
        the size of a ``--tiny`` order."""
        p = exact(price)
        need = self.min_notional / p if p > 0 else self.min_qty
        step = self.step_size or Decimal(1)
        units = ((need - self.min_qty) / step).to_integral_value(rounding=ROUND_CEILING)
        return max(self.min_qty, self.min_qty + max(units, ZERO) * step)


def _on(value: Decimal, base: Decimal, step: Decimal) -> bool:
    return step == 0 or (value - base) % step == 0


def _down(value: Decimal, base: Decimal, step: Decimal) -> Decimal:
    if step == 0:
        return value
    return base + ((value - base) / step).to_integral_value(rounding=ROUND_DOWN) * step


def client_order_id(run_id: str, order_seq: int) -> str:
    """Our ``newClientOrderId`` for an order: ``<run_id>-<seq>`` when that fits Binance's
    ``^[a-zA-Z0-9-_]{1,36}$``, else ``wb<16 hex of sha256(run_id)>-<seq>``; the same run and
    order always give the same id, so a resubmit after a crash is recognised."""
    plain = f"{run_id}-{order_seq}"
    if CLIENT_ORDER_ID.match(plain):
        return plain
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:16]
    made = f"wb{digest}-{order_seq}"
    if not CLIENT_ORDER_ID.match(made):
        raise ValueError(f"order sequence {order_seq} makes a client order id over 36 "
                         "characters")
    return made
