"""Reconciliation: what the venue holds against what the journal says, for a live run.

``reconcile`` compares one look at the venue (its open orders and the account's balances,
``VenueView``) with the run's side (``OurView``: its open orders and client order ids, the books'
positions, the balances the venue reported when the run started, the base-asset commissions
the venue took). Each difference is a ``Difference``; ``halts`` says the run must stop trading:

* ``unknown_venue_order``: an order open at the venue that this run did not send. Reported,
  never adopted (someone else trades the account, or another run).
* ``open_at_venue_only``: an order of this run open at the venue that the journal has done.
* ``missing_at_venue``: an order open in the journal that the venue does not list as open (its
  end is asked for by the broker's next poll).
* ``position_mismatch`` (halts): per symbol, what the venue holds of the base asset minus what
  it held at the start differs from the books' position less the base-asset commissions by
  more than half a lot step.
* ``position_unsettled``: the same difference while an order of the symbol has an unknown
  outcome (it may have traded): not a halt; the check holds again once the broker has asked.
* ``foreign_trade``: a trade of the account since the run started, of an order this run did
  not send.
* ``untracked_trade``: a trade of one of this run's orders that the journal does not hold
  (the broker reports a working order's trades at its next poll; the position check says
  whether the books are off).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from workbench.model import QTY_SCALE


@dataclass(frozen=True)
class Difference:
    kind: str
    detail: str
    symbol: str | None = None
    client_order_id: str | None = None
    halts: bool = False

    def payload(self) -> dict[str, Any]:
        return {"kind": self.kind, "detail": self.detail, "symbol": self.symbol,
                "client_order_id": self.client_order_id, "halts": self.halts}


@dataclass(frozen=True)
class VenueView:
    """One look at the venue: open orders (``symbol``, ``clientOrderId``, ``status`` as
    Binance answers them) and each asset's total (free plus locked)."""

    open_orders: Sequence[Mapping[str, Any]]
    balances: Mapping[str, Decimal]
    trades: Sequence[tuple[str | None, int, str]] = ()
    """The account's trades since the run started: (client order id of its order, or None
    when not known, trade id, symbol)."""


@dataclass(frozen=True)
class OurView:
    """The run's side. ``open_ids``: client order ids of orders open in the journal (by the
    venue's name for them); ``sent_ids``: every client order id the run journaled;
    ``units``: the books' positions (units of ``QTY_SCALE``); ``baseline``: the balances at the
    run's start; ``base_assets``: symbol -> its base asset; ``steps``: symbol -> lot step;
    ``base_commission``: symbol -> base-asset commissions taken."""

    open_ids: Mapping[str, str]  # client order id -> symbol
    sent_ids: frozenset[str]
    units: Mapping[str, int]
    baseline: Mapping[str, Decimal]
    base_assets: Mapping[str, str]
    steps: Mapping[str, Decimal] = field(default_factory=dict)
    base_commission: Mapping[str, Decimal] = field(default_factory=dict)
    unknown_ids: Mapping[str, str] = field(default_factory=dict)  # outcome unknown: id -> symbol
    journaled_trades: frozenset[tuple[str, int]] = frozenset()  # (client order id, trade id)


def reconcile(venue: VenueView, ours: OurView) -> list[Difference]:
    """Every difference between the venue and the journal (see the module docstring)."""
    found: list[Difference] = []
    venue_open = {str(o.get("clientOrderId")): o for o in venue.open_orders}
    for coid, order in venue_open.items():
        symbol = str(order.get("symbol"))
        if coid not in ours.sent_ids:
            found.append(Difference(
                "unknown_venue_order", f"order {coid} ({order.get('side')} "
                f"{order.get('origQty')} {symbol}) is open at the venue and was not sent by "
                "this run: left alone", symbol, coid))
        elif coid not in ours.open_ids and coid not in ours.unknown_ids:
            found.append(Difference(
                "open_at_venue_only", f"order {coid} is open at the venue ({order.get('status')})"
                " but done in the journal", symbol, coid))
    for coid, symbol in ours.open_ids.items():
        if coid not in venue_open:
            found.append(Difference(
                "missing_at_venue", f"order {coid} is open in the journal but not at the venue "
                "(its end is asked for at the next poll)", symbol, coid))
    for trade_coid, trade_id, symbol in venue.trades:
        if trade_coid is None or trade_coid not in ours.sent_ids:
            found.append(Difference(
                "foreign_trade", f"trade {trade_id} of order {trade_coid or '?'} ({symbol}) "
                "since the run started was not made by this run", symbol, trade_coid))
        elif (trade_coid, trade_id) not in ours.journaled_trades:
            found.append(Difference(
                "untracked_trade", f"trade {trade_id} of order {trade_coid} is not in the "
                "journal (a working order's trades are reported at the next poll)", symbol,
                trade_coid))
    for symbol, base in ours.base_assets.items():
        held = venue.balances.get(base, Decimal(0)) - ours.baseline.get(base, Decimal(0))
        booked = (Decimal(ours.units.get(symbol, 0)) / QTY_SCALE
                  - ours.base_commission.get(symbol, Decimal(0)))
        tolerance = ours.steps.get(symbol, Decimal(0)) / 2
        if abs(held - booked) <= tolerance:
            continue
        if symbol in ours.unknown_ids.values():
            found.append(Difference(
                "position_unsettled", f"the venue holds {held:f} {base} more than at the start, "
                f"the books {booked:f}, while an order's outcome is unknown (it may have "
                "traded): checked again once it is known", symbol))
            continue
        found.append(Difference(
            "position_mismatch", f"the venue holds {held:f} {base} more than at the start, "
            f"the books {booked:f} (position less base-asset commissions): trading halts",
            symbol, halts=True))
    return found
