"""SmaLongShort: SmaCross's crosses, each reversing the position to +qty or -qty (adr/0026)."""

from __future__ import annotations

import step_harness as harness

from workbench.book import ShortBook
from workbench.brokers.base import RejectReason
from workbench.brokers.fills import CostModel
from workbench.brokers.sim import SimBroker
from workbench.model import QTY_SCALE, OrderStatus, Side
from workbench.strategies.sma_long_short import SmaLongShort

FREE = CostModel(fee_bps=0.0, slippage_bps=0.0)
# fast(2) crosses below slow(3) at bar 3, above at bar 6, below again at bar 9
CLOSES = [10.0, 10.0, 10.0, 9.0, 8.0, 9.0, 10.0, 11.0, 10.0, 9.0, 8.0]


def test_sma_long_short_each_cross_reverses_to_plus_or_minus_qty() -> None:
    step = harness.run(SmaLongShort(fast=2, slow=3, qty=1.0), harness.closes(CLOSES),
                       broker=SimBroker(FREE, short_margin=1.0), book=ShortBook(1_000.0))
    fills = harness.fills(step)
    assert [(f.side, f.qty, f.price, (f.bar_ts - harness.T0) // harness.TF) for f in fills] == [
        (Side.SELL, 1.0, 9.0, 3), (Side.BUY, 2.0, 10.0, 6), (Side.SELL, 2.0, 9.0, 9)]
    assert step.book.units == {"X": -QTY_SCALE}
    assert [(t.side, t.entry_price, t.exit_price, t.pnl) for t in step.book.round_trips] == [
        ("SHORT", 9.0, 10.0, -1.0), ("LONG", 10.0, 9.0, -1.0)]


def test_sma_long_short_on_spot_books_reversing_sells_are_rejected() -> None:
    step = harness.run(SmaLongShort(fast=2, slow=3, qty=1.0), harness.closes(CLOSES),
                       costs=FREE, cash=1_000.0)
    orders = harness.orders(step)
    assert [(o.side, o.status, o.reason) for o in orders] == [
        (Side.SELL, OrderStatus.REJECTED, RejectReason.INSUFFICIENT_POSITION),
        (Side.BUY, OrderStatus.FILLED, None),
        (Side.SELL, OrderStatus.REJECTED, RejectReason.INSUFFICIENT_POSITION)]
