"""SimBroker: the backtest broker, applying the shared fill model to bars."""

from __future__ import annotations

from workbench.book import Book
from workbench.brokers.base import CancelReason, OrderSink, RejectReason
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
)


class SimBroker:
    """Fills market orders at the signal bar's close (or next open) and limits on a touch.

    Spot rules as a venue applies them: a buy whose cost (notional plus fee) exceeds free cash
    is rejected ``INSUFFICIENT_FUNDS``; a sell beyond the free position ``INSUFFICIENT_POSITION``;
    a buy that would hold more than ``model.MAX_QTY`` ``POSITION_OVERFLOW``.
    A resting limit reserves its cash (buy) or quantity (sell), so free means not reserved;
    the reservations are the only thing it writes in the books (brokers/base.py).
    """

    def __init__(self, costs: CostModel) -> None:
        self.costs = costs
        self.resting: dict[str, list[Order]] = {}
        self._reserved: dict[int, tuple[float, int]] = {}
        self._sink: OrderSink | None = None
        self._book: Book | None = None

    def bind(self, sink: OrderSink, book: Book) -> None:
        self._sink = sink
        self._book = book

    # --- submit ------------------------------------------------------------------------------
    def cap_qty(self, intent: OrderIntent) -> float:
        """Every intent is taken whole."""
        return intent.qty

    def submit(self, order: Order) -> None:
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
                sink.order_status(order, OrderStatus.REJECTED, RejectReason.INSUFFICIENT_POSITION)
                return
            self._rest(order, 0.0, order.qty_units if order.side is Side.SELL else 0)
            sink.order_status(order, OrderStatus.SUBMITTED)
            return
        limit = order.limit_price
        assert limit is not None
        reason = self._check(order, limit, book.free_cash)
        if reason:
            sink.order_status(order, OrderStatus.REJECTED, reason)
            return
        if order.side is Side.BUY:
            notional = order.qty_units / QTY_SCALE * limit
            self._rest(order, notional + self.costs.fee(notional, order.qty), 0)
        else:
            self._rest(order, 0.0, order.qty_units)
        sink.order_status(order, OrderStatus.SUBMITTED)

    def _check(self, order: Order, price: float, free_cash: float, at_submit: bool = True
               ) -> str | None:
        assert self._book is not None
        if at_submit and self.costs.below_minimum(order.qty_units, price):
            return RejectReason.MIN_NOTIONAL
        if order.side is Side.BUY:
            notional = order.qty_units / QTY_SCALE * price
            if notional + self.costs.fee(notional, order.qty) > free_cash:
                return RejectReason.INSUFFICIENT_FUNDS
            if order.qty_units + self._book.position_units(order.symbol) > MAX_UNITS:
                return RejectReason.POSITION_OVERFLOW
        elif order.qty_units > self._book.free_units(order.symbol):
            return RejectReason.INSUFFICIENT_POSITION
        return None

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
        if order.order_seq not in self._reserved:
            return False
        self._unrest(order)
        assert self._sink is not None
        self._sink.order_status(order, OrderStatus.CANCELED, reason)
        return True

    def on_bar(self, bar: Bar) -> None:
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

    def _fill(self, order: Order, price: float, bar_ts: int,
              costs: tuple[float, float, float] = NO_COSTS) -> None:
        """The whole order at ``price`` on the bar opened at ``bar_ts``; the fee on the filled
        quantity."""
        assert self._sink is not None
        units = order.qty_units
        qty = units / QTY_SCALE
        trade_id, venue_ts = self._venue_fields(order, bar_ts)
        self._sink.order_fill(order, units, price,
                              self.costs.fee(qty * price, qty, not order.filled_units),
                              trade_id, venue_ts, 0, costs)

    def _venue_fields(self, order: Order, bar_ts: int) -> tuple[str | None, int | None]:
        """The venue trade id and execution time a fill carries: none in a backtest
        (``PaperBroker`` gives its own)."""
        return None, None
