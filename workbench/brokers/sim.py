"""SimBroker: the backtest broker, applying the shared fill model to bars.

Two paths. With the default execution settings (INSTANT, no participation cap) the broker is
the fill model as it always was: a market order fills at once at the signal bar's close (or
rests to the next open), a limit rests and fills on a touch, every fill is of the whole order.
With a latency or a cap (``brokers/execution.py``) it keeps a time-ordered queue of pending
actions per symbol and lets orders fill in parts; see ``SimBroker`` and docs/architecture.md.
"""

from __future__ import annotations

from heapq import heappop, heappush

from workbench.book import Book
from workbench.brokers.base import CancelReason, OrderSink, RejectReason
from workbench.brokers.execution import Execution
from workbench.brokers.fills import CostModel, limit_fill_price
from workbench.model import (
    MAX_UNITS,
    NO_COSTS,
    QTY_SCALE,
    Bar,
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    Side,
    split_fraction,
)

_SUBMIT, _LIVE, _CANCEL = 0, 1, 2
"""Pending actions: the order reaches the venue; it can execute; its cancel reaches the venue."""


class SimBroker:
    """Fills market orders at the signal bar's close (or next open) and limits on a touch.

    Spot rules as a venue applies them: a buy whose cost (notional plus fee) exceeds free cash
    is rejected ``INSUFFICIENT_FUNDS``; a sell beyond the free position ``INSUFFICIENT_POSITION``
    (with ``short_margin``, shorts allowed: ``INSUFFICIENT_MARGIN`` when the account's short
    notional after it would exceed equity times the margin); a buy that would hold more than
    ``model.MAX_QTY`` ``POSITION_OVERFLOW``.
    A resting limit reserves its cash (buy) or quantity (sell), so free means not reserved;
    the reservations are the only thing it writes in the books (brokers/base.py).

    With a latency or a participation cap (``execution``), time inside a bar counts. A bar
    ``ts`` spans ``[ts, ts + timeframe)``; a decision is made at its signal bar's close. Each
    order goes through three pending actions, kept per symbol in time order: it reaches the
    venue ``submit_ms`` after the decision (checks, then SUBMITTED, or REJECTED), it can
    execute a drawn ``fill_ms`` later, and a user's cancel reaches the venue ``cancel_ms``
    after it was asked for (never before the order itself). An action lands on the bar whose
    span holds its time (after a gap in the data, on the first bar after it). On each bar:

    1. orders already working execute at the open: a market order at the bar's open, a limit
       the bar opens through at the open;
    2. the actions landing in the bar, in time order: an order that can execute does so at
       the bar's open (the first price the bar knows), a cancel withdraws what is still open;
    3. a limit touched inside the bar (at an unknown time, taken as after every action that
       lands in the bar) fills at its limit.

    A zero delay acts at once: an order that can execute at its decision fills at the signal
    bar's close under ``fill_at: close`` (today's rule), at the next open under ``next_open``.
    A cancel that arrives after the fill changes nothing: the order keeps FILLED (no event),
    and ``late_cancels`` records the status the order had when the cancel came too late.

    Participation cap: at most ``participation_pct`` % of a bar's volume fills per bar and
    symbol, shared in time order by the orders executing on it (a bar of zero volume fills
    nothing). Each part is a fill of its own (PARTIALLY_FILLED until the last); the rest keeps
    working, or with ``remainder: cancel`` is CANCELED (``REMAINDER``) right after the part.
    A rest that no longer passes the spot checks is CANCELED with the check's reason. A part
    pays the costs of its own size (market impact on the bar it fills on, ``fills.py``); an
    order's first fill pays the minimum fee. At a decision, a market order's bar is its
    symbol's last bar (``Book.bars``): the signal bar, for the bar's own symbol.
    """

    def __init__(self, costs: CostModel, execution: Execution | None = None,
                 short_margin: float | None = None) -> None:
        self.costs = costs
        self.execution = execution if execution is not None else Execution()
        self.short_margin = short_margin
        """None: spot (a sell beyond the position is refused); else shorts are allowed while
        the account's short notional stays within equity times this (adr/0026)."""
        self.resting: dict[str, list[Order]] = {}
        self._reserved: dict[int, tuple[float, int]] = {}
        self._sink: OrderSink | None = None
        self._book: Book | None = None
        # the timed path (a latency or a cap); untouched by the plain one
        self._timed = not self.execution.plain
        self._pending: dict[str, list[tuple[int, int, int, Order]]] = {}
        self._actions = 0
        self._held: set[int] = set()  # orders at the broker: in flight or working
        self._in_flight: dict[int, int] = {}  # order_seq -> when it reaches the venue
        self._live_at: dict[int, int] = {}  # order_seq -> from when it can execute
        self._cancelling: set[int] = set()
        self._budget: dict[str, tuple[int, int]] = {}  # symbol -> (bar ts, units left)
        self._parts: dict[int, int] = {}  # order_seq -> fills so far
        self.late_cancels: dict[int, OrderStatus] = {}
        """order_seq -> the status an order had when a cancel reached it too late."""

    def bind(self, sink: OrderSink, book: Book) -> None:
        self._sink = sink
        self._book = book

    # --- submit ------------------------------------------------------------------------------
    def cap_qty(self, intent: OrderIntent) -> float:
        """Every intent is taken whole."""
        return intent.qty

    def submit(self, order: Order) -> None:
        if self._timed:
            self._submit_timed(order)
            return
        sink, book = self._sink, self._book
        assert sink is not None and book is not None, "bind() the broker before submit()"
        ref = book.last.get(order.symbol)
        if ref is None:
            sink.order_status(order, OrderStatus.REJECTED, RejectReason.NO_PRICE)
            return
        if order.type is OrderType.MARKET:
            if self.costs.fill_at == "close":
                price, costs = self.costs.market_fill(order.side, ref, order.qty,
                                                      book.bars.get(order.symbol))
                reason = self._check(order, price, book.free_cash)
                if reason:
                    sink.order_status(order, OrderStatus.REJECTED, reason)
                    return
                sink.order_status(order, OrderStatus.SUBMITTED)
                self._fill(order, price, order.bar_ts, costs)
                return
            # next_open: funds are checked at the fill price; a sell holds its quantity now.
            if order.side is Side.SELL and order.qty_units > book.free_units(order.symbol):
                reason = self._beyond_position(order.symbol, order.qty_units, ref)
                if reason:
                    sink.order_status(order, OrderStatus.REJECTED, reason)
                    return
            self._rest(order, *self._holds(order))
            sink.order_status(order, OrderStatus.SUBMITTED)
            return
        limit = order.limit_price
        assert limit is not None
        reason = self._check(order, limit, book.free_cash)
        if reason:
            sink.order_status(order, OrderStatus.REJECTED, reason)
            return
        self._rest(order, *self._holds(order))
        sink.order_status(order, OrderStatus.SUBMITTED)

    def _check(self, order: Order, price: float, free_cash: float, at_submit: bool = True,
               units: int | None = None) -> str | None:
        """The spot checks of ``units`` of the order (default: all of it) at ``price``; the
        minimum notional (of the whole order) when ``at_submit``."""
        assert self._book is not None
        if at_submit and self.costs.below_minimum(order.qty_units, price):
            return RejectReason.MIN_NOTIONAL
        if units is None:
            units = order.qty_units
        if order.side is Side.BUY:
            notional = units / QTY_SCALE * price
            if notional + self.costs.fee(notional, units / QTY_SCALE) > free_cash:
                return RejectReason.INSUFFICIENT_FUNDS
            if units + self._book.position_units(order.symbol) > MAX_UNITS:
                return RejectReason.POSITION_OVERFLOW
        elif units > self._book.free_units(order.symbol):
            return self._beyond_position(order.symbol, units, price)
        return None

    def _beyond_position(self, symbol: str, units: int, price: float) -> str | None:
        """A sell of ``units`` beyond the free position: refused on spot; with shorts allowed,
        refused when the account's short notional after it (this symbol's at ``price``, the
        others' at their marks) would exceed equity times ``short_margin``."""
        if self.short_margin is None:
            return RejectReason.INSUFFICIENT_POSITION
        book = self._book
        assert book is not None
        if units - book.position_units(symbol) > MAX_UNITS:
            return RejectReason.POSITION_OVERFLOW
        short = (units - book.free_units(symbol)) / QTY_SCALE * price
        for other, held in book.units.items():
            if held < 0 and other != symbol:
                short -= held / QTY_SCALE * book.last[other]
        if short > book.equity() * self.short_margin:
            return RejectReason.INSUFFICIENT_MARGIN
        return None

    def _holds(self, order: Order) -> tuple[float, int]:
        """What an order working here reserves: a sell its quantity, a buy limit its cost at
        the limit with the fee; a market buy nothing (its funds are checked at the fill)."""
        if order.side is Side.SELL:
            return 0.0, order.qty_units
        if order.limit_price is None:
            return 0.0, 0
        notional = order.qty_units / QTY_SCALE * order.limit_price
        return notional + self.costs.fee(notional, order.qty), 0

    def _rest(self, order: Order, cash: float, units: int) -> None:
        assert self._book is not None
        self._book.reserve(order.symbol, cash, units)
        self._reserved[order.order_seq] = (cash, units)
        self.resting.setdefault(order.symbol, []).append(order)

    def _unrest(self, order: Order) -> None:
        assert self._book is not None
        cash, units = self._reserved.pop(order.order_seq)
        self._book.release(order.symbol, cash, units)
        resting = self.resting[order.symbol]
        resting.remove(order)
        if not resting:
            del self.resting[order.symbol]

    # --- cancel and bars ---------------------------------------------------------------------
    def cancel(self, order: Order, reason: str = CancelReason.USER) -> bool:
        """Cancel an open order; False if it is not open here. With a ``cancel_ms`` latency a
        user's cancel is sent: True, and it takes effect when it reaches the venue, if the
        order is still open then (else ``late_cancels`` records it); expiry acts at once."""
        if self._timed:
            return self._cancel_timed(order, reason)
        if order.order_seq not in self._reserved:
            return False
        self._unrest(order)
        assert self._sink is not None
        self._sink.order_status(order, OrderStatus.CANCELED, reason)
        return True

    def on_bar(self, bar: Bar) -> None:
        if self._timed:
            self._on_bar_timed(bar)
            return
        resting = self.resting.get(bar.symbol)
        if not resting:
            return
        sink, book, costs = self._sink, self._book, self.costs
        assert sink is not None and book is not None
        for order in list(resting):
            if order.order_seq not in self._reserved:  # cancelled by a fill's callback
                continue
            if order.bar_ts >= bar.ts:  # placed on this bar: may fill from the next one on
                continue
            fill_costs = NO_COSTS
            if order.type is OrderType.MARKET:
                price, fill_costs = costs.market_fill(order.side, bar.open, order.qty, bar)
            else:
                assert order.limit_price is not None
                touched = limit_fill_price(order.side, order.limit_price, bar.open, bar.high,
                                           bar.low)
                if touched is None:
                    order.bars_seen += 1
                    if order.expire_after_bars and order.bars_seen >= order.expire_after_bars:
                        self.cancel(order, CancelReason.EXPIRED)
                    continue
                price = touched
            self._unrest(order)
            # a resting limit passed the minimum at submit; a next-open market meets it now
            reason = self._check(order, price, book.free_cash,
                                 at_submit=order.type is OrderType.MARKET)
            if reason:
                sink.order_status(order, OrderStatus.REJECTED, reason)
                continue
            self._fill(order, price, bar.ts, fill_costs)

    def poll(self, now: int) -> None:
        """Nothing happens between bars in a simulation."""

    def split_orders(self, symbol: str, ratio: float) -> list[tuple[Order, float, float | None]]:
        """A split of ``symbol`` (``ratio`` new units per old one): every order held here
        (resting, on its way under a latency, or partly filled under a participation cap)
        gets its unfilled quantity times the ratio (floored to the unit; its filled units are
        scaled too, so the order still ends when the rest fills) and its limit over the ratio,
        as a venue adjusts open orders; a sell's reserved units follow, a buy's reserved cash
        stays (the same notional). The books floor each lot, so the position can come out a
        few units below the sells scaled whole: the sells are then cut, in order, to the
        units held (the book has already applied the split). An order not yet at the venue
        holds nothing: it is checked on arrival, in its new size. Returns each order with its
        quantity and limit before."""
        book = self._book
        assert book is not None
        scale = split_fraction(ratio)
        num, den = scale.numerator, scale.denominator
        changed, sells = [], []
        for order in self.resting.get(symbol, ()):
            before = (order.qty, order.limit_price)
            rest = (order.qty_units - order.filled_units) * num // den
            order.filled_units = order.filled_units * num // den
            order.qty_units = order.filled_units + rest
            order.qty = order.qty_units / QTY_SCALE
            if order.limit_price is not None:
                order.limit_price = order.limit_price / ratio
            reserved = self._reserved.get(order.order_seq)
            if reserved is not None and reserved[1]:
                book.release(symbol, 0.0, reserved[1])
                sells.append((order, reserved[0]))
            changed.append((order, *before))
        free = book.free_units(symbol)
        for order, cash in sells:
            rest = order.qty_units - order.filled_units
            if rest > free:
                rest = max(free, 0)
                order.qty_units = order.filled_units + rest
                order.qty = order.qty_units / QTY_SCALE
            free -= rest
            book.reserve(symbol, 0.0, rest)
            self._reserved[order.order_seq] = (cash, rest)
        return changed

    def _fill(self, order: Order, price: float, bar_ts: int,
              costs: tuple[float, float, float] = NO_COSTS, units: int | None = None,
              part: int = 1) -> None:
        """``units`` of the order (default: all of it), its ``part``-th fill, at ``price`` on
        the bar opened at ``bar_ts``, with its market ``costs``; the fee on the filled
        quantity (an order's first fill pays at least the minimum fee)."""
        assert self._sink is not None
        if units is None:
            units = order.qty_units
        qty = units / QTY_SCALE
        trade_id, venue_ts = self._venue_fields(order, bar_ts, part)
        self._sink.order_fill(order, units, price,
                              self.costs.fee(qty * price, qty, not order.filled_units),
                              trade_id, venue_ts, 0, costs)

    def _venue_fields(self, order: Order, bar_ts: int, part: int = 1
                      ) -> tuple[str | None, int | None]:
        """The venue trade id and execution time a fill carries: none in a backtest
        (``PaperBroker`` gives its own)."""
        return None, None

    # --- the timed path: latency and participation ------------------------------------------
    def _submit_timed(self, order: Order) -> None:
        sink = self._sink
        assert sink is not None and self._book is not None, "bind() the broker before submit()"
        now = sink.now
        self._hold(order)  # at the broker from now on: the loop keeps handing it bars
        delay = self.execution.latency.submit_ms
        if delay:
            self._in_flight[order.order_seq] = now + delay
            self._push(order.symbol, now + delay, _SUBMIT, order)
        else:
            self._land(order, now, self._book.bars.get(order.symbol), decision=True)

    def _land(self, order: Order, at: int, bar: Bar | None, decision: bool = False) -> None:
        """The order reaches the venue at ``at``: the checks a venue makes on arrival, then
        SUBMITTED (or REJECTED); it can execute a drawn fill delay later. ``decision``: it
        arrives at the instant it was decided (no submit latency); ``bar``: the bar it lands
        on (at a decision, the symbol's last bar)."""
        sink, book, costs = self._sink, self._book, self.costs
        assert sink is not None and book is not None
        self._in_flight.pop(order.order_seq, None)
        ref = book.last.get(order.symbol)
        at_close = decision and costs.fill_at == "close"
        reason: str | None = None
        if ref is None:
            reason = RejectReason.NO_PRICE
        elif order.type is OrderType.MARKET:
            if at_close:  # today's check, at the price it would fill at
                reason = self._check(order, costs.market_price(order.side, ref, order.qty, bar),
                                     book.free_cash)
            elif order.side is Side.SELL and order.qty_units > book.free_units(order.symbol):
                assert ref is not None
                reason = self._beyond_position(order.symbol, order.qty_units, ref)
        else:
            assert order.limit_price is not None
            reason = self._check(order, order.limit_price, book.free_cash)
        if reason:
            self._drop(order)
            sink.order_status(order, OrderStatus.REJECTED, reason)
            return
        cash, units = self._holds(order)
        book.reserve(order.symbol, cash, units)
        self._reserved[order.order_seq] = (cash, units)
        sink.order_status(order, OrderStatus.SUBMITTED)
        live = at + self.execution.latency.fill_delay(self.execution.seed, order.order_seq)
        if not decision or live > at:
            self._push(order.symbol, live, _LIVE, order)
            return
        self._live_at[order.order_seq] = live  # works from the next bar's open
        if at_close and order.type is OrderType.MARKET and bar is not None:
            assert ref is not None  # at its signal bar's close, on that bar's volume
            self._execute(order, ref, bar)

    def _cancel_timed(self, order: Order, reason: str) -> bool:
        seq = order.order_seq
        if seq not in self._held:
            return False
        delay = self.execution.latency.cancel_ms
        if reason != CancelReason.USER or (not delay and seq not in self._in_flight):
            self._end(order, OrderStatus.CANCELED, reason)
            return True
        if seq not in self._cancelling:
            assert self._sink is not None
            self._cancelling.add(seq)  # a cancel never overtakes its order
            due = max(self._sink.now + delay, self._in_flight.get(seq, 0))
            self._push(order.symbol, due, _CANCEL, order)
        return True

    def _on_bar_timed(self, bar: Bar) -> None:
        symbol = bar.symbol
        if not self.resting.get(symbol):
            return
        held, live_at = self._held, self._live_at
        tried: set[int] = set()
        # 1. at the open: orders already working
        for order in list(self.resting.get(symbol, ())):
            seq = order.order_seq
            if seq in held and live_at.get(seq, bar.ts + 1) <= bar.ts and order.bar_ts < bar.ts:
                self._at_open(order, bar, tried)
        # 2. the actions that land in this bar, in time order
        end = bar.ts + self.execution.timeframe_ms
        heap = self._pending.get(symbol)
        while heap and heap[0][0] < end:
            due, _, kind, order = heappop(heap)
            seq = order.order_seq
            if seq not in held:
                continue  # ended meanwhile
            if kind == _SUBMIT:
                self._land(order, due, bar)
            elif kind == _LIVE:
                live_at[seq] = due
                self._at_open(order, bar, tried)
            else:
                self._cancelling.discard(seq)
                self._end(order, OrderStatus.CANCELED, CancelReason.USER)
        # 3. inside the bar: limits it touches
        for order in list(self.resting.get(symbol, ())):
            seq = order.order_seq
            if (seq not in held or seq in tried or order.type is not OrderType.LIMIT
                    or live_at.get(seq, end) >= end or order.bar_ts >= bar.ts):
                continue
            assert order.limit_price is not None
            touched = limit_fill_price(order.side, order.limit_price, bar.open, bar.high,
                                       bar.low)
            if touched is not None:
                self._execute(order, touched, bar)
                continue
            order.bars_seen += 1
            if order.expire_after_bars and order.bars_seen >= order.expire_after_bars:
                self._end(order, OrderStatus.CANCELED, CancelReason.EXPIRED)

    def _at_open(self, order: Order, bar: Bar, tried: set[int]) -> None:
        """A working order at ``bar``'s open: a market executes there, a limit if the bar
        opens through it (else it waits for a touch inside the bar)."""
        if order.type is OrderType.LIMIT:
            assert order.limit_price is not None
            through = (bar.open <= order.limit_price if order.side is Side.BUY
                       else bar.open >= order.limit_price)
            if not through:
                return
        tried.add(order.order_seq)
        self._execute(order, bar.open, bar)

    def _execute(self, order: Order, at: float, bar: Bar) -> None:
        """One execution of the order on ``bar`` at ``at`` (a market order's reference, moved
        against it by the costs of the part it fills; a limit's fill price): as much as the
        bar's participation budget lets, after the spot checks; then the remainder policy."""
        sink, book = self._sink, self._book
        assert sink is not None and book is not None
        seq = order.order_seq
        remaining = order.qty_units - order.filled_units
        units = self._take(bar, remaining)
        if units:
            price, costs = at, NO_COSTS
            if order.type is OrderType.MARKET:
                price, costs = self.costs.market_fill(order.side, at, units / QTY_SCALE, bar)
            first = order.filled_units == 0
            self._release_part(order, units, remaining)
            reason = self._check(order, price, book.free_cash,
                                 at_submit=first and order.type is OrderType.MARKET, units=units)
            if reason:
                self._end(order, OrderStatus.REJECTED if first else OrderStatus.CANCELED, reason)
                return
            part = self._parts.get(seq, 0) + 1
            self._parts[seq] = part
            self._fill(order, price, bar.ts, costs, units, part)
            if order.filled_units >= order.qty_units:
                self._forget(order, OrderStatus.FILLED)
                return
            if seq not in self._held:
                return  # the strategy cancelled the rest from on_fill
        if self.execution.cancel_remainder:
            self._end(order, OrderStatus.CANCELED, CancelReason.REMAINDER)

    def _take(self, bar: Bar, want: int) -> int:
        """Up to ``want`` units of ``bar``'s participation budget (all of it: no cap)."""
        symbol = bar.symbol
        budget = self._budget.get(symbol)
        if budget is None or budget[0] != bar.ts:
            cap = self.execution.budget_units(bar.volume)
            if cap is None:
                return want
            budget = (bar.ts, cap)
        take = min(want, budget[1])
        self._budget[symbol] = (bar.ts, budget[1] - take)
        return take

    def _release_part(self, order: Order, units: int, remaining: int) -> None:
        """Release the reservation of ``units`` of the ``remaining`` units."""
        assert self._book is not None
        cash, held = self._reserved[order.order_seq]
        if units >= remaining:
            part_cash, part_units = cash, held
        else:
            part_cash, part_units = cash * units / remaining, (units if held else 0)
        self._reserved[order.order_seq] = (cash - part_cash, held - part_units)
        self._book.release(order.symbol, part_cash, part_units)

    def _end(self, order: Order, status: OrderStatus, reason: str) -> None:
        """The order stops working here: released, dropped, reported."""
        self._forget(order, status)
        assert self._sink is not None
        self._sink.order_status(order, status, reason)

    def _forget(self, order: Order, status: OrderStatus) -> None:
        """Stop holding the order, which ends ``status``."""
        seq = order.order_seq
        reserved = self._reserved.pop(seq, None)
        if reserved is not None:
            assert self._book is not None
            self._book.release(order.symbol, *reserved)
        self._drop(order)
        self._live_at.pop(seq, None)
        self._in_flight.pop(seq, None)
        self._parts.pop(seq, None)
        if seq in self._cancelling:  # a cancel on its way will find the order ended
            self._cancelling.discard(seq)
            self.late_cancels[seq] = status

    def _hold(self, order: Order) -> None:
        self._held.add(order.order_seq)
        self.resting.setdefault(order.symbol, []).append(order)

    def _drop(self, order: Order) -> None:
        if order.order_seq not in self._held:
            return
        self._held.discard(order.order_seq)
        resting = self.resting[order.symbol]
        resting.remove(order)
        if not resting:
            del self.resting[order.symbol]

    def _push(self, symbol: str, due: int, kind: int, order: Order) -> None:
        self._actions += 1
        heappush(self._pending.setdefault(symbol, []), (due, self._actions, kind, order))
