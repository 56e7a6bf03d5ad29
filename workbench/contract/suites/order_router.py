"""OrderRouter (the Broker port, driven through the step): acknowledgements, idempotent client
order ids, cancel transitions, a stable end after a fill, retries with backoff, stable refusal
codes, partial fills aggregated into one logical fill per report."""

from __future__ import annotations

import math
from typing import Any

from workbench.contract.adapters import SYMBOL, Idle, Rig
from workbench.contract.runner import Skip, check, expect
from workbench.engine.journal import MemoryJournal
from workbench.engine.step import Step
from workbench.model import Order, OrderIntent, OrderStatus, OrderType, Side

S = OrderStatus
QTY = 0.001


def statuses(rig: Rig, order: Order) -> list[str]:
    """The order's journaled statuses, in order."""
    return [e.status.value for e in rig.step.journal.contents().events
            if e.order_seq == order.order_seq]


def far_limit(rig: Rig) -> float:
    """A buy limit well below the market: it rests."""
    return round(rig.bars[-1].close * 0.97, 2)


def clean_up(rig: Rig, *orders: Order) -> None:
    """Cancel what still rests (a real venue keeps it otherwise)."""
    for order in orders:
        if order.is_open:
            rig.cancel(order)


@check("order_router.market_order_acknowledged")
def market_order_acknowledged(a: Any) -> str:
    """A market order is acknowledged (NEW -> SUBMITTED) and filled in full, once."""
    rig = a.rig()
    order = rig.order(Side.BUY, QTY)
    if order.status is S.SUBMITTED:  # a real venue may answer before it fills
        rig.step.poll()
    seen = statuses(rig, order)
    expect(seen == ["NEW", "SUBMITTED", "FILLED"],
           f"order {order.client_order_id}: statuses {seen}, expected NEW, SUBMITTED, FILLED")
    fills = [f for f in rig.step.journal.contents().fills if f.order_seq == order.order_seq]
    expect(sum(f.executed_units for f in fills) == order.qty_units,
           f"filled {sum(f.executed_units for f in fills)} units of {order.qty_units}")
    expect(all(f.price > 0 and math.isfinite(f.price) and f.fee >= 0 for f in fills),
           f"a fill with a bad price or fee: {fills}")
    count = rig.venue_orders()
    expect(count in (None, 1), f"the venue holds {count} orders for one submit")
    return f"{order.client_order_id} filled at {fills[-1].price!r}"


@check("order_router.limit_order_rests_acknowledged")
def limit_order_rests_acknowledged(a: Any) -> str:
    """A limit away from the market is acknowledged and rests, its funds reserved."""
    rig = a.rig()
    order = rig.order(Side.BUY, QTY, limit=far_limit(rig))
    try:
        expect(order.status is S.SUBMITTED, f"a resting limit is {order.status} "
                                            f"({order.reason}), expected SUBMITTED")
        expect(order in rig.broker.resting.get(SYMBOL, []), "the order is not in resting")
        book = rig.step.book
        expect(book.free_cash < book.cash, "no cash reserved for a resting buy")
    finally:
        clean_up(rig, order)
    return f"{order.client_order_id} rests at {order.limit_price!r}"


@check("order_router.duplicate_client_order_id_idempotent")
def duplicate_client_order_id_idempotent(a: Any) -> str:
    """The same client order id sent twice (a restart that lost the answer) ends as one order:
    the second send resolves to the first, nothing doubles."""
    if a.simulated:
        from workbench.recovery.records import order_record
        from workbench.recovery.replay import ReplayError, State, fold
        from workbench.recovery.wal import Record

        rig = a.rig()
        order = rig.order(Side.BUY, QTY, limit=far_limit(rig))
        payload = order_record(order)
        records = [Record(1, "control", {"action": "start", "initial_cash": 1.0}, 1, 0),
                   Record(2, "order", payload, 1, 0), Record(3, "order", payload, 1, 0)]
        try:
            fold(records, State())
        except ReplayError as exc:
            return ("no venue to resend to: a second order record with the same "
                    f"client_order_id is refused at replay ({exc.__class__.__name__})")
        raise AssertionError("a journal holding the same client_order_id twice replayed "
                             "without complaint")
    rig = a.rig()
    first = rig.order(Side.BUY, QTY, limit=far_limit(rig))
    expect(first.status is S.SUBMITTED, f"the first send is {first.status} ({first.reason})")
    broker = type(rig.broker)(rig.venue, rig.broker.filters, quote_asset="USDT",
                              base_assets={SYMBOL: "BTC"}, run_id=rig.broker.run_id,
                              monotonic=lambda: rig.mono[0])
    step = Step(Idle(), broker, type(rig.step.book)(rig.step.book.cash), MemoryJournal(),
                run_id=rig.step.run_id, timeframe_ms=rig.step.timeframe_ms)
    step.start(rig.bars[0].ts)
    step.on_bar(rig.bars[-1])
    again = step.submit(OrderIntent(SYMBOL, Side.BUY, QTY, OrderType.LIMIT, first.limit_price))
    try:
        expect(again.client_order_id == first.client_order_id,
               "the restarted step numbered the order differently")
        step.poll()
        expect(again.status is S.SUBMITTED,
               f"the resent id ended {again.status} ({again.reason}), expected the open order")
        count = rig.venue_orders()
        expect(count in (None, 1), f"the venue holds {count} orders for one client order id")
    finally:
        clean_up(rig, first)
        if again.is_open:
            step.cancel(again)
    return f"{first.client_order_id} sent twice, one order at the venue"


@check("order_router.cancel_transitions")
def cancel_transitions(a: Any) -> str:
    """Cancel of a resting order: True, CANCELED (USER), reservation released; a second
    cancel is False and reports nothing."""
    rig = a.rig()
    order = rig.order(Side.BUY, QTY, limit=far_limit(rig))
    expect(order.status is S.SUBMITTED, f"the limit is {order.status}, expected SUBMITTED")
    expect(rig.cancel(order) is True, "cancel of a resting order returned False")
    expect((order.status, order.reason) == (S.CANCELED, "USER"),
           f"after cancel: {order.status} ({order.reason}), expected CANCELED (USER)")
    expect(not rig.broker.resting.get(SYMBOL), "the cancelled order still rests")
    book = rig.step.book
    expect(book.free_cash == book.cash, f"{book.cash - book.free_cash!r} still reserved")
    before = statuses(rig, order)
    expect(before == ["NEW", "SUBMITTED", "CANCELED"], f"statuses {before}")
    expect(rig.cancel(order) is False, "a second cancel returned True")
    expect(statuses(rig, order) == before, "a second cancel reported a transition")
    return "NEW -> SUBMITTED -> CANCELED"


@check("order_router.cancel_after_fill_is_noop")
def cancel_after_fill_is_noop(a: Any) -> str:
    """Cancel of a filled order (also one filled at the venue before we heard) is False; the
    status stays FILLED and nothing more is reported."""
    rig = a.rig()
    market = rig.order(Side.BUY, QTY)
    if market.status is S.SUBMITTED:
        rig.step.poll()
    expect(market.status is S.FILLED, f"the market order is {market.status}")
    before = statuses(rig, market)
    expect(rig.cancel(market) is False, "cancel after a fill returned True")
    expect(market.status is S.FILLED and statuses(rig, market) == before,
           f"cancel after a fill moved it: {statuses(rig, market)}")
    if not a.steps_time:
        return "market order: cancel is a no-op"
    limit = rig.order(Side.BUY, QTY, limit=rig.bars[-1].close - 1.75)  # the next bar reaches it
    expect(limit.status is S.SUBMITTED, f"the limit is {limit.status}")
    if a.simulated:
        rig.advance(1)  # the simulated venue fills on the step's bar
    else:
        rig.clock.advance(60_000)  # the venue fills it; the broker has not polled
        rig.venue.sync_time()
    expect(rig.cancel(limit) is False, "cancel of an order filled meanwhile returned True")
    expect(limit.status is S.FILLED, f"after the cancel: {limit.status}, expected FILLED")
    settled = statuses(rig, limit)
    rig.step.poll()
    rig.advance(1)
    expect(statuses(rig, limit) == settled and limit.status is S.FILLED,
           f"a FILLED order moved again: {statuses(rig, limit)}")
    return "filled, then cancel: False, FILLED, stable"


@check("order_router.rate_limit_retryable_with_backoff")
def rate_limit_retryable_with_backoff(a: Any) -> str:
    """429: a read is retried after at least Retry-After; an order the venue refused for the
    rate limit is REJECTED VENUE_RATE_LIMITED with nothing taken, and the next one goes."""
    if a.simulated:
        raise Skip("paper sends no order requests: its fills are simulated, no rate limit")
    if not a.faults:
        raise Skip("needs a 429 injected (fake-binance)")
    rig = a.rig()
    rig.fx.inject("klines:429=2@1")
    bars, _ = rig.feed.closed_bars(None, rig.venue.now_ms())
    expect(bars, "the read failed after a 429")
    expect(rig.sleeps and rig.sleeps[-1] >= 2.0,
           f"waited {rig.sleeps} s before the retry; Retry-After said 2 s")
    rig.fx.inject("order:429=2@1")
    limited = rig.order(Side.BUY, QTY)
    expect((limited.status, limited.reason) == (S.REJECTED, "VENUE_RATE_LIMITED"),
           f"a rate-limited order is {limited.status} ({limited.reason})")
    expect(rig.venue_orders() == 0, "the venue took a rate-limited order")
    after = rig.order(Side.BUY, QTY)
    expect(after.status is S.FILLED, f"the next order is {after.status} ({after.reason})")
    return f"read retried after {rig.sleeps[-1]:.2f} s; order refused, then the next filled"


@check("order_router.transient_error_retried_with_backoff")
def transient_error_retried_with_backoff(a: Any) -> str:
    """5xx on a read: retried with growing backoff until it succeeds."""
    if a.simulated:
        raise Skip("paper sends no order requests: nothing transient to retry")
    if not a.faults:
        raise Skip("needs 5xx injected (fake-binance)")
    rig = a.rig()
    rig.fx.inject("getOrder:503x2")
    order = rig.order(Side.BUY, QTY, limit=far_limit(rig))
    try:
        rig.advance(1)  # the poll asks for the resting order: two 503s, then the answer
        expect(order.status is S.SUBMITTED, f"after two 503s the order is {order.status}")
        expect(len(rig.sleeps) >= 2 and rig.sleeps[-1] > rig.sleeps[-2] > 0,
               f"backoff waits {rig.sleeps}: expected two, growing")
        kinds = [e.kind for e in rig.venue.events]
        expect(kinds.count("server") >= 2, f"venue events {kinds}: two server errors expected")
    finally:
        clean_up(rig, order)
    return f"waits {[round(s, 3) for s in rig.sleeps[-2:]]} s"


@check("order_router.unknown_outcome_resolved_never_resent")
def unknown_outcome_resolved_never_resent(a: Any) -> str:
    """An accepted order whose answer is a 5xx is UNKNOWN, found by a query, never resent."""
    if a.simulated:
        raise Skip("paper sends no order requests: no outcome is ever unknown")
    if not a.faults:
        raise Skip("needs an unknown outcome injected (fake-binance)")
    rig = a.rig()
    rig.fx.inject("order:unknown=503@1")
    order = rig.order(Side.BUY, QTY)
    expect(order.status is S.UNKNOWN, f"after a 503 the order is {order.status}")
    rig.step.poll()
    expect(order.status is S.FILLED, f"after the query the order is {order.status}")
    expect(rig.venue_orders() == 1 and rig.broker.sent == 1,
           f"{rig.venue_orders()} orders at the venue, {rig.broker.sent} sends")
    return "UNKNOWN -> FILLED, sent once"


@check("order_router.partial_fills_aggregated")
def partial_fills_aggregated(a: Any) -> str:
    """Venue executions reported together become one logical fill at their VWAP; the
    order's fills add up to its quantity."""
    if a.simulated:
        raise Skip("paper fills whole orders (the sim fill model): no partial fills")
    if not a.faults:
        raise Skip("needs partial fills forced (fake-binance's participation)")
    rig = a.rig(participation=0.25)
    order = rig.order(Side.BUY, 0.003, limit=rig.bars[-1].close + 90)
    expect(order.status is S.PARTIALLY_FILLED, f"the crossing order is {order.status}")
    rig.advance(3)
    expect(order.status is S.FILLED, f"after three bars the order is {order.status}")
    fills = rig.step.journal.contents().fills
    venue = rig.broker.venue_fills
    expect(len(fills) == 2 and len(venue) == 3,
           f"{len(fills)} logical fills from {len(venue)} venue fills, expected 2 from 3")
    expect(sum(f.executed_units for f in fills) == order.qty_units, "fills do not add up")
    later = venue[1:]
    vwap = float(sum(v.price * v.qty for v in later) / sum(v.qty for v in later))
    expect(math.isclose(fills[1].price, vwap, rel_tol=1e-12),
           f"the aggregated fill's price {fills[1].price!r} is not the VWAP {vwap!r}")
    expect(fills[1].venue_trade_id == ",".join(str(v.trade_id) for v in later),
           f"venue trade ids {fills[1].venue_trade_id!r}")
    return f"3 venue fills -> {[f.qty for f in fills]}"


@check("order_router.rejects_carry_stable_reasons")
def rejects_carry_stable_reasons(a: Any) -> str:
    """An order beyond the account's cash is REJECTED INSUFFICIENT_FUNDS, nothing taken."""
    rig = a.rig()
    order = rig.order(Side.BUY, 1.0)
    expect((order.status, order.reason) == (S.REJECTED, "INSUFFICIENT_FUNDS"),
           f"an order beyond the cash is {order.status} ({order.reason})")
    expect(rig.venue_orders() in (None, 0), "the venue holds a refused order")
    return "INSUFFICIENT_FUNDS"


@check("order_router.cap_never_raises_the_quantity")
def cap_never_raises_the_quantity(a: Any) -> str:
    """``cap_qty`` takes an intent on at its own quantity or less, never more (the step sizes
    every order with it before the order is journaled)."""
    rig = a.rig()
    taken = [(qty, rig.broker.cap_qty(OrderIntent(SYMBOL, side, qty)))
             for qty in (QTY, 1.0, 1_000.0) for side in (Side.BUY, Side.SELL)]
    expect(all(0 < got <= qty for qty, got in taken),
           f"cap_qty took (asked, taken) {taken}: more than asked, or nothing")
    return ", ".join(f"{qty!r} -> {got!r}" for qty, got in taken[::2])
