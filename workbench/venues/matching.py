"""The fake exchange's order side: one symbol's orders matched on the replayed bars, an
account's balances, and Binance's rules and error texts.

What it models, as Binance Spot does it:

* ``MARKET`` orders fill at once at the current price (the close of the last bar closed on the
  venue clock); ``LIMIT`` orders that cross it fill at once at that price (taker), else rest
  and fill on a later bar that touches the limit (at the limit, or at the bar's open when it
  gapped through; maker). ``timeInForce`` GTC rests, IOC expires the rest, FOK fills whole or
  expires.
* ``participation``: when set, an order takes at most that fraction of a bar's volume per bar
  (partial fills: a market order fills what it can and ends ``EXPIRED``; a limit order rests
  ``PARTIALLY_FILLED``).
* Balances move with every fill (free and locked per asset). The commission is taken from the
  asset received (base on a buy, quote on a sell), or from ``fee_asset`` (e.g. BNB, at
  ``fee_asset_price`` quote per unit) when the account holds enough of it.
* Filters, checked with ``Decimal`` in Binance's order: ``PRICE_FILTER``, ``LOT_SIZE``,
  ``NOTIONAL`` (min and max), ``MAX_NUM_ORDERS``: ``-1013 Filter failure: NAME``; short
  balance ``-2010 Account has insufficient balance for requested action.``
* The duplicate rule: a ``newClientOrderId`` equal to that of an order still open is refused
  (``-2010 Duplicate order sent.``); once that order is done the id is accepted again (so a
  blind resubmit after a fill doubles the position). Unknown order ``-2013 Order does not
  exist.``; cancel of an unknown or finished order ``-2011 Unknown order sent.``.
* ``invisible_ms``: an accepted order is unknown to queries (``-2013``, absent from
  ``openOrders``/``allOrders``) for that long after it was accepted, by wall time.
* Retention, as a venue bounds its order history: a finished order (FILLED, CANCELED,
  EXPIRED) is forgotten ``retention_ms`` of venue time after it finished, or sooner when more
  than ``retained_orders`` finished orders are kept (the oldest first), and its trades with it.
  Asked for afterwards it is ``-2013 Order does not exist.`` (a cancel ``-2011``), as Binance
  answers for an order it no longer knows; its client order id may be used again. Open orders
  are never forgotten. ``orderId`` and trade ids keep counting up whatever was forgotten.

A separate party, like the rest of the fake: it imports nothing of the engine.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from workbench.venues.bar_book import MINUTE_MS, BarBook, SymbolRules

CLIENT_ID = re.compile(r"^[a-zA-Z0-9-_]{1,36}$")
DECIMAL = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
OPEN = frozenset({"NEW", "PARTIALLY_FILLED"})
ZERO = Decimal(0)
E8 = Decimal("0.00000001")
MAX_NUM_ORDERS = 200
RETENTION_MS = 3 * 86_400_000  # finished orders are kept 3 venue days ...
RETAINED_ORDERS = 10_000  # ... and at most this many of them
TRADES_DEFAULT_LIMIT, TRADES_MAX_LIMIT = 500, 1000


class VenueError(Exception):
    """An error answer: HTTP status plus Binance's ``{"code": ..., "msg": ...}``."""

    def __init__(self, status: int, code: int, msg: str, retry_after_s: int | None = None
                 ) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg, self.retry_after_s = status, code, msg, retry_after_s


def mandatory(name: str) -> VenueError:
    return VenueError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null,"
                                  " or malformed.")


def f8(value: Decimal) -> str:
    """A decimal as Binance writes it: 8 decimals."""
    return f"{value.quantize(E8, rounding=ROUND_DOWN):f}"


def _decimal(params: dict[str, str], name: str) -> Decimal | None:
    """A decimal parameter as Binance takes it: plain digits, no sign, no exponent."""
    text = params.get(name)
    if text is None or text == "":
        return None
    if not DECIMAL.fullmatch(text):  # Decimal() would also take 1e-05, +1, 1_0, -0
        raise VenueError(400, -1100, f"Illegal characters found in parameter '{name}'; legal "
                                     "range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
    return Decimal(text)


def _on_grid(value: Decimal, base: Decimal, step: Decimal) -> bool:
    return step == 0 or (value - base) % step == 0


@dataclass
class Trade:
    id: int
    order_id: int
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_buyer: bool
    is_maker: bool


@dataclass
class VenueOrder:
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal
    price: Decimal  # 0 for a market order
    time: int
    placed_after_bar: int  # bars up to this index were closed when it was accepted
    visible_at_wall_ms: int
    status: str = "NEW"
    executed: Decimal = ZERO
    quote: Decimal = ZERO
    update_time: int = 0
    locked: Decimal = ZERO  # what it still holds of the quote (buy) or base (sell) asset
    trades: list[Trade] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.executed


class Matcher:
    """One symbol's order book and one account (thread-safe)."""

    def __init__(self, bars: BarBook, rules: SymbolRules, balances: dict[str, str], *,
                 commission: str = "0.001", participation: float | None = None,
                 fee_asset: str | None = None, fee_asset_price: str = "0",
                 max_num_orders: int = MAX_NUM_ORDERS, retention_ms: int = RETENTION_MS,
                 retained_orders: int = RETAINED_ORDERS,
                 wall_ms: Callable[[], int] | None = None) -> None:
        import time

        if retention_ms < 0 or retained_orders < 1:
            raise ValueError(f"retention_ms {retention_ms} must be >= 0 and retained_orders "
                             f"{retained_orders} >= 1")

        self.bars = bars
        self.rules = rules
        self.symbol = rules.symbol
        self.base, self.quote_asset = rules.base_asset, rules.quote_asset
        self.commission = Decimal(commission)
        self.participation = None if participation is None else Decimal(str(participation))
        self.fee_asset = fee_asset
        self.fee_asset_price = Decimal(fee_asset_price)
        self.max_num_orders = max_num_orders
        self.wall_ms = wall_ms or (lambda: int(time.time() * 1000))
        self.free: dict[str, Decimal] = {a: Decimal(v) for a, v in balances.items()}
        self.locked: dict[str, Decimal] = dict.fromkeys(self.free, ZERO)
        for asset in (self.base, self.quote_asset):
            self.free.setdefault(asset, ZERO)
            self.locked.setdefault(asset, ZERO)
        self.retention_ms = retention_ms
        self.retained_orders = retained_orders
        self._by_id: dict[int, VenueOrder] = {}  # every order kept, by id (so in id order)
        self._by_client: dict[str, VenueOrder] = {}  # the latest kept order of a client id
        self._open: dict[int, VenueOrder] = {}  # NEW and PARTIALLY_FILLED, by id
        self._finished: deque[VenueOrder] = deque()  # kept finished orders, oldest first
        self._trades: dict[int, Trade] = {}  # the kept orders' trades, by id
        self._last_order_id = 0
        self._last_trade_id = 0
        self._matched_to = -1  # index of the last bar resting orders were matched against
        self._lock = threading.Lock()

    @property
    def orders(self) -> list[VenueOrder]:
        """The orders the venue keeps (open, and finished within retention), by ``orderId``."""
        with self._lock:
            return list(self._by_id.values())

    @property
    def trades(self) -> list[Trade]:
        """The kept orders' trades, by trade id."""
        with self._lock:
            return list(self._trades.values())

    # --- the clock -----------------------------------------------------------------------
    def _closed(self, now: int) -> int:
        """Index of the last bar closed at venue time ``now`` (-1: none yet)."""
        return bisect_right(self.bars.ts, now - MINUTE_MS) - 1

    def _advance(self, now: int) -> int:
        """Match the resting orders against every bar closed since the last look."""
        last = self._closed(now)
        while self._matched_to < last:
            self._matched_to += 1
            i = self._matched_to
            for order in [o for o in self._open.values() if o.type == "LIMIT"]:
                if i > order.placed_after_bar:
                    self._match_resting(order, i)
        finished = self._finished
        while finished and now - finished[0].update_time > self.retention_ms:
            self._forget(finished.popleft())
        return last

    # --- requests ------------------------------------------------------------------------
    def place(self, params: dict[str, str], now: int, *, invisible_ms: int = 0
              ) -> dict[str, Any]:
        """``POST /api/v3/order``: the order as answered (``newOrderRespType``)."""
        with self._lock:
            last = self._advance(now)
            order = self._new_order(params, now, last, invisible_ms)
            self._accept(order, last)
            return self._response(order, params.get("newOrderRespType"))

    def query(self, params: dict[str, str], now: int) -> dict[str, Any]:
        """``GET /api/v3/order`` by ``orderId`` or ``origClientOrderId``."""
        with self._lock:
            self._advance(now)
            order = self._find(params)
            if order is None or not self._visible(order):
                raise VenueError(400, -2013, "Order does not exist.")
            return self._order_view(order)

    def cancel(self, params: dict[str, str], now: int) -> dict[str, Any]:
        """``DELETE /api/v3/order``; a finished or unknown order is ``-2011``."""
        with self._lock:
            self._advance(now)
            order = self._find(params)
            if order is None or order.status not in OPEN:
                raise VenueError(400, -2011, "Unknown order sent.")
            self._release(order)
            order.status, order.update_time = "CANCELED", now
            self._done(order)
            out = self._result(order)
            out["origClientOrderId"] = order.client_order_id
            out["clientOrderId"] = params.get("newClientOrderId") or f"cancel-{order.order_id}"
            out["transactTime"] = now
            return out

    def open_orders(self, params: dict[str, str], now: int) -> list[dict[str, Any]]:
        with self._lock:
            self._check_symbol(params, required=False)
            self._advance(now)
            return [self._order_view(o) for o in self._open.values() if self._visible(o)]

    def all_orders(self, params: dict[str, str], now: int) -> list[dict[str, Any]]:
        with self._lock:
            self._check_symbol(params)
            self._advance(now)
            first = long_param(params, "orderId")
            start, end = long_param(params, "startTime"), long_param(params, "endTime")
            limit = _limit(params, TRADES_DEFAULT_LIMIT, TRADES_MAX_LIMIT)
            picked = [o for o in self._by_id.values() if self._visible(o)
                      and (first is None or o.order_id >= first)
                      and (start is None or o.time >= start) and (end is None or o.time <= end)]
            picked = picked[:limit] if first is not None or start is not None else picked[-limit:]
            return [self._order_view(o) for o in picked]

    def my_trades(self, params: dict[str, str], now: int) -> list[dict[str, Any]]:
        with self._lock:
            self._check_symbol(params)
            self._advance(now)
            order_id, from_id = long_param(params, "orderId"), long_param(params, "fromId")
            start, end = long_param(params, "startTime"), long_param(params, "endTime")
            limit = _limit(params, TRADES_DEFAULT_LIMIT, TRADES_MAX_LIMIT)
            picked = [t for t in self._trades.values()
                      if (order_id is None or t.order_id == order_id)
                      and (from_id is None or t.id >= from_id)
                      and (start is None or t.time >= start) and (end is None or t.time <= end)
                      and self._visible(self._by_id[t.order_id])]
            ascending = from_id is not None or start is not None or order_id is not None
            picked = picked[:limit] if ascending else picked[-limit:]
            return [self._trade_view(t) for t in picked]

    def ticker_price(self, params: dict[str, str], now: int) -> dict[str, str]:
        """``GET /api/v3/ticker/price``: the symbol's last close; the fee asset's price in
        the quote asset for ``<fee_asset><quote>``."""
        symbol = params.get("symbol")
        if not symbol:
            raise mandatory("symbol")
        with self._lock:
            if symbol == self.symbol:
                last = self._closed(now)
                if last < 0:
                    raise VenueError(400, -1121, "Invalid symbol.")
                return {"symbol": symbol, "price": f8(Decimal(repr(self.bars.close[last])))}
            if self.fee_asset and symbol == f"{self.fee_asset}{self.quote_asset}":
                return {"symbol": symbol, "price": f8(self.fee_asset_price)}
        raise VenueError(400, -1121, "Invalid symbol.")

    def balances(self, now: int) -> list[dict[str, str]]:
        with self._lock:
            self._advance(now)
            return [{"asset": a, "free": f8(self.free[a]), "locked": f8(self.locked[a])}
                    for a in self.free]

    # --- placing -------------------------------------------------------------------------
    def _check_symbol(self, params: dict[str, str], required: bool = True) -> None:
        symbol = params.get("symbol")
        if not symbol:
            if required:
                raise mandatory("symbol")
            return
        if symbol != self.symbol:
            raise VenueError(400, -1121, "Invalid symbol.")

    def _new_order(self, params: dict[str, str], now: int, last: int, invisible_ms: int
                   ) -> VenueOrder:
        self._check_symbol(params)
        side = params.get("side")
        if not side:
            raise mandatory("side")
        if side not in ("BUY", "SELL"):
            raise VenueError(400, -1117, "Invalid side.")
        kind = params.get("type")
        if not kind:
            raise mandatory("type")
        if kind not in ("MARKET", "LIMIT"):
            raise VenueError(400, -1116, "Invalid orderType.")
        coid = params.get("newClientOrderId")
        if coid is not None and not CLIENT_ID.match(coid):
            raise VenueError(400, -1100, "Illegal characters found in parameter "
                                         "'newClientOrderId'; legal range is "
                                         "'^[a-zA-Z0-9-_]{1,36}$'.")
        if params.get("newOrderRespType") not in (None, "", "ACK", "RESULT", "FULL"):
            raise VenueError(400, -1100, "Illegal characters found in parameter "
                                         "'newOrderRespType'.")  # before the order is taken on
        qty = _decimal(params, "quantity")
        if qty is None:
            raise mandatory("quantity")
        tif = params.get("timeInForce") or ""
        price = _decimal(params, "price")
        if kind == "LIMIT":
            if not tif:
                raise mandatory("timeInForce")
            if tif not in ("GTC", "IOC", "FOK"):
                raise VenueError(400, -1115, "Invalid timeInForce.")
            if price is None:
                raise mandatory("price")
        elif tif or price is not None:
            raise VenueError(400, -1106, "Parameter 'timeInForce' sent when not required."
                             if tif else "Parameter 'price' sent when not required.")
        if last < 0:
            raise VenueError(400, -1013, "Market is closed.")
        reference = Decimal(repr(self.bars.close[last]))
        self._check_filters(kind, qty, price, reference)
        same = self._by_client.get(coid) if coid is not None else None
        if same is not None and same.status in OPEN:  # the latest of an id is the only open one
            raise VenueError(400, -2010, "Duplicate order sent.")
        order_id = self._last_order_id + 1  # taken when the order is (``_accept``)
        return VenueOrder(order_id, coid or f"fake-{order_id}", side, kind,
                          tif if kind == "LIMIT" else "GTC", qty, price or ZERO, now, last,
                          self.wall_ms() + invisible_ms, update_time=now)

    def _check_filters(self, kind: str, qty: Decimal, price: Decimal | None,
                       reference: Decimal) -> None:
        r = self.rules
        failure = lambda name: VenueError(400, -1013, f"Filter failure: {name}")  # noqa: E731
        if price is not None:
            tick, lo, hi = Decimal(r.tick_size), Decimal(r.min_price), Decimal(r.max_price)
            if price < lo or price > hi or not _on_grid(price, lo, tick):
                raise failure("PRICE_FILTER")
        step, lo, hi = Decimal(r.step_size), Decimal(r.min_qty), Decimal(r.max_qty)
        if qty < lo or qty > hi or not _on_grid(qty, lo, step):
            raise failure("LOT_SIZE")
        notional = qty * (price if price is not None else reference)
        if notional < Decimal(r.min_notional) or (
                kind == "LIMIT" and notional > Decimal(r.max_notional)):
            raise failure("NOTIONAL")
        if len(self._open) >= self.max_num_orders:
            raise failure("MAX_NUM_ORDERS")

    def _accept(self, order: VenueOrder, last: int) -> None:
        """Check funds, take the order on, fill what fills at once, lock what rests."""
        reference = Decimal(repr(self.bars.close[last]))
        if order.side == "BUY":
            need_asset = self.quote_asset
            need = order.qty * (order.price if order.type == "LIMIT" else reference)
        else:
            need_asset, need = self.base, order.qty
        if self.free.get(need_asset, ZERO) < need:
            raise VenueError(400, -2010, "Account has insufficient balance for requested "
                                         "action.")
        self._last_order_id = order.order_id
        self._by_id[order.order_id] = order
        self._by_client[order.client_order_id] = order
        self._open[order.order_id] = order
        self.free[need_asset] -= need
        self.locked[need_asset] += need
        order.locked = need
        crosses = order.type == "MARKET" or (
            reference <= order.price if order.side == "BUY" else reference >= order.price)
        if order.type == "LIMIT" and order.time_in_force == "FOK" and (
                not crosses or self._cap(last, order) < order.qty):
            self._expire(order, order.time)
            return
        if crosses:
            self._execute(order, reference, self._cap(last, order), order.time, maker=False)
        if order.status in OPEN and (order.type == "MARKET" or order.time_in_force == "IOC"):
            self._expire(order, order.time)

    def _cap(self, i: int, order: VenueOrder) -> Decimal:
        """What ``order`` may take of bar ``i``: its remaining quantity, or the participation
        share of the bar's volume (down to the lot step)."""
        if self.participation is None:
            return order.remaining
        step = Decimal(self.rules.step_size)
        share = Decimal(repr(self.bars.volume[i])) * self.participation
        if step > 0:
            share = (share / step).to_integral_value(rounding=ROUND_DOWN) * step
        return min(order.remaining, share)

    def _match_resting(self, order: VenueOrder, i: int) -> None:
        b = self.bars
        limit = order.price
        bar_open = Decimal(repr(b.open[i]))
        if order.side == "BUY":
            if Decimal(repr(b.low[i])) > limit:
                return
            price = min(limit, bar_open)
        else:
            if Decimal(repr(b.high[i])) < limit:
                return
            price = max(limit, bar_open)
        when = b.ts[i] + MINUTE_MS - 1
        self._execute(order, price, self._cap(i, order), when, maker=True)

    def _execute(self, order: VenueOrder, price: Decimal, qty: Decimal, when: int,
                 maker: bool) -> None:
        if qty <= 0:
            return
        quote = price * qty
        rate = self.commission
        if order.side == "BUY":
            spend = quote
            cost_locked = order.price * qty if order.type == "LIMIT" else spend
            cost_locked = min(cost_locked, order.locked)
            self.locked[self.quote_asset] -= cost_locked
            order.locked -= cost_locked
            self.free[self.quote_asset] += cost_locked - spend  # a better price refunds
            received_asset, received = self.base, qty
        else:
            self.locked[self.base] -= qty
            order.locked -= qty
            received_asset, received = self.quote_asset, quote
        fee_asset, fee = received_asset, received * rate
        if self.fee_asset is not None and self.fee_asset_price > 0:
            in_fee_asset = quote * rate / self.fee_asset_price
            if self.free.get(self.fee_asset, ZERO) >= in_fee_asset:
                fee_asset, fee = self.fee_asset, in_fee_asset
        fee = fee.quantize(E8, rounding=ROUND_DOWN)
        self.free[received_asset] = self.free.get(received_asset, ZERO) + received
        self.free[fee_asset] -= fee
        self._last_trade_id += 1
        trade = Trade(self._last_trade_id, order.order_id, price, qty, fee, fee_asset, when,
                      order.side == "BUY", maker)
        self._trades[trade.id] = trade
        order.trades.append(trade)
        order.executed += qty
        order.quote += quote
        order.update_time = when
        order.status = "FILLED" if order.executed >= order.qty else "PARTIALLY_FILLED"
        if order.status == "FILLED":
            self._release(order)
            self._done(order)

    def _expire(self, order: VenueOrder, when: int) -> None:
        self._release(order)
        order.status, order.update_time = "EXPIRED", when
        self._done(order)

    def _done(self, order: VenueOrder) -> None:
        """``order`` finished: no longer open; kept until retention lets it go."""
        del self._open[order.order_id]
        self._finished.append(order)
        while len(self._finished) > self.retained_orders:
            self._forget(self._finished.popleft())

    def _forget(self, order: VenueOrder) -> None:
        """Drop a finished order and its trades: from now on the venue does not know it."""
        del self._by_id[order.order_id]
        if self._by_client.get(order.client_order_id) is order:
            del self._by_client[order.client_order_id]
        for trade in order.trades:
            del self._trades[trade.id]

    def _release(self, order: VenueOrder) -> None:
        """Give back what the order still locks."""
        asset = self.quote_asset if order.side == "BUY" else self.base
        self.locked[asset] -= order.locked
        self.free[asset] += order.locked
        order.locked = ZERO

    # --- finding and answering -------------------------------------------------------------
    def _find(self, params: dict[str, str]) -> VenueOrder | None:
        self._check_symbol(params)
        order_id = long_param(params, "orderId")
        coid = params.get("origClientOrderId")
        if order_id is None and not coid:
            raise VenueError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent,"
                                         " but both were empty/null!")
        if order_id is not None:
            order = self._by_id.get(order_id)
            if order is not None and coid and order.client_order_id != coid:
                return None
            return order
        return self._by_client.get(coid or "")

    def _visible(self, order: VenueOrder) -> bool:
        return self.wall_ms() >= order.visible_at_wall_ms

    def _result(self, o: VenueOrder) -> dict[str, Any]:
        return {"symbol": self.symbol, "orderId": o.order_id, "orderListId": -1,
                "clientOrderId": o.client_order_id, "price": f8(o.price),
                "origQty": f8(o.qty), "executedQty": f8(o.executed),
                "origQuoteOrderQty": f8(ZERO), "cummulativeQuoteQty": f8(o.quote),
                "status": o.status, "timeInForce": o.time_in_force, "type": o.type,
                "side": o.side, "selfTradePreventionMode": "EXPIRE_MAKER"}

    def _response(self, o: VenueOrder, kind: str | None) -> dict[str, Any]:
        kind = kind or "FULL"  # MARKET and LIMIT default to FULL
        if kind not in ("ACK", "RESULT", "FULL"):
            raise VenueError(400, -1100, "Illegal characters found in parameter "
                                         "'newOrderRespType'.")
        ack = {"symbol": self.symbol, "orderId": o.order_id, "orderListId": -1,
               "clientOrderId": o.client_order_id, "transactTime": o.time}
        if kind == "ACK":
            return ack
        out = ack | self._result(o) | {"workingTime": o.time}
        if kind == "FULL":
            out["fills"] = [{"price": f8(t.price), "qty": f8(t.qty),
                             "commission": f8(t.commission),
                             "commissionAsset": t.commission_asset, "tradeId": t.id}
                            for t in o.trades]
        return out

    def _order_view(self, o: VenueOrder) -> dict[str, Any]:
        return self._result(o) | {
            "stopPrice": f8(ZERO), "icebergQty": f8(ZERO), "time": o.time,
            "updateTime": o.update_time, "isWorking": True, "workingTime": o.time}

    def _trade_view(self, t: Trade) -> dict[str, Any]:
        return {"symbol": self.symbol, "id": t.id, "orderId": t.order_id, "orderListId": -1,
                "price": f8(t.price), "qty": f8(t.qty), "quoteQty": f8(t.price * t.qty),
                "commission": f8(t.commission), "commissionAsset": t.commission_asset,
                "time": t.time, "isBuyer": t.is_buyer, "isMaker": t.is_maker,
                "isBestMatch": True}


def long_param(params: dict[str, str], name: str) -> int | None:
    """An integer parameter as Binance takes it (at most 20 digits), or None when absent."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 20:
        raise VenueError(400, -1100, f"Illegal characters found in parameter '{name}'; legal "
                                     "range is '^[0-9]{1,20}$'.")
    return int(value)


def _limit(params: dict[str, str], default: int, most: int) -> int:
    limit = long_param(params, "limit")
    if limit is None:
        return default
    if limit < 1:
        raise VenueError(400, -1130, "Data sent for parameter 'limit' is not valid.")
    return min(limit, most)
