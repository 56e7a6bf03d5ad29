"""BinanceBroker: live trading, real orders to Binance Spot through python-binance.

The same port as every broker (``brokers/base.py``); what is particular to a real venue:

* Filters first. ``LOT_SIZE``, ``PRICE_FILTER``, ``NOTIONAL`` and ``MAX_NUM_ORDERS`` from
  ``exchangeInfo`` are applied with ``Decimal`` before any request (``venue_rules.py``): an order
  that breaks one is REJECTED with the filter named (``VENUE_FILTER_LOT_SIZE``, ...) and never
  sent.
* ``tiny`` (``--tiny``): every order is sized down, before the step creates and journals it
  (``cap_qty``), to the smallest quantity on the lot grid that meets the venue's minimum
  notional at its price (a limit's, else the last close), or to ``tiny_notional``'s worth when
  that is more. A strategy that sizes all-in still trades, tiny; an order already below the
  cap is sent as asked (below the venue's minimum it is refused ``VENUE_FILTER_NOTIONAL``).
  Reduce-only orders (a flatten's) are not capped: they give back what tiny orders bought.
  ``submit`` refuses ``TINY_CAP`` an order above the cap that did not come through
  ``cap_qty`` (one handed to the broker directly), so nothing larger ever leaves.
* One attempt per order, never a blind resubmit. ``newClientOrderId`` is always ours and
  deterministic (``venue_rules.client_order_id``). A POST whose outcome is unknown (a timeout, a
  dropped connection, a 5xx, ``-1007``) raises ``OutcomeUnknown``: the order is UNKNOWN and
  ``poll`` asks the venue for it by ``origClientOrderId``. The venue may not show an order it
  accepted for a while (``-2013`` after create, freqtrade #4403): "does not exist" counts only
  once ``invisible_s`` have passed since the request, with backoff between the queries; then,
  and only then, the order is sent again, under the same client order id (not when the run
  has halted meanwhile: it is REJECTED ``NOT_RESENT_HALTED``).
* ``-1021`` (our timestamp outside the venue's window: nothing was taken): the venue clock is
  read again and the order sent once more. Before any order the offset to the venue's clock
  must be fresh (read within a minute, else read again) and known within ``recvWindow`` (the
  round trip of that read): otherwise the order is REJECTED ``CLOCK_SKEW``, never sent.
* Spot rules before sending, as the sim broker's: a buy beyond free cash or a sell beyond the
  free position (what open orders, and orders whose outcome is unknown, hold is not free) is
  REJECTED ``INSUFFICIENT_FUNDS`` / ``INSUFFICIENT_POSITION`` without a request.
* A refusal is a REJECTED order with a stable reason: ``INSUFFICIENT_FUNDS`` /
  ``INSUFFICIENT_POSITION`` (``-2010``), ``VENUE_FILTER_<NAME>`` (``-1013``),
  ``VENUE_RATE_LIMITED`` (429, ``-1003``, ``-1015``: the venue took nothing), ``VENUE_BANNED``
  (418: nothing is sent until the ban lifts), ``VENUE_<code>`` otherwise. ``-2010 Duplicate
  order sent.`` means our id is open at the venue already: the order is UNKNOWN and resolved by
  a query, like any other unknown outcome.
* Fills. The venue's executions of one order reported at once (a FULL answer's ``fills[]``, or
  the trades a poll finds) become one logical fill upstream: their total quantity at their
  volume-weighted price, the commission converted to the quote asset (a base-asset commission at
  the fill price, another asset, e.g. BNB, at that asset's price from ``ticker/price``). Each
  venue execution (trade id, price, qty, commission and its asset) is kept in ``venue_fills``.
  A commission the venue keeps in the base asset (a buy when the account holds no BNB) is a fee
  in kind: the logical fill's ``fee_units``, so the books hold what the venue holds and a sell
  of the whole position is not refused (adr/0018). A journal written before fees in kind
  were booked so (its venue fills carry no ``fee_units``) is resumed as it was booked:
  ``base_commission`` counts those commissions per symbol, for reconciliation.
* Resting orders reserve their funds in the books as the sim broker's do; ``poll`` reports
  their fills and their end, ``cancel`` sends a DELETE (``-2011``: already done at the venue, so
  the order is asked for instead).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from workbench.book import Book
from workbench.brokers.base import CancelReason, OrderSink, OutcomeUnknown, UnknownReason
from workbench.brokers.reconcile import Difference, OurView, VenueView, reconcile
from workbench.brokers.venue_rules import SymbolFilters, client_order_id, exact
from workbench.model import (
    QTY_SCALE,
    Bar,
    Fill,
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    Side,
)
from workbench.venue_client import VenueClient

RATE_LIMITED = "VENUE_RATE_LIMITED"
BANNED = "VENUE_BANNED"
CLOCK_SKEW = "CLOCK_SKEW"
TINY_CAP = "TINY_CAP"
ANSWERED = "ANSWERED"  # the cause an order-failure count goes back to 0 with
NOT_RESENT_HALTED = "NOT_RESENT_HALTED"
INVISIBLE_S = 10.0  # how long an accepted order may stay unknown to queries
_OPEN = ("NEW", "PARTIALLY_FILLED", "PENDING_NEW")


@dataclass(frozen=True)
class VenueFill:
    """One execution as the venue reported it (before aggregation)."""

    client_order_id: str
    trade_id: int
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    fee_quote: float  # the commission in the quote asset


@dataclass
class _Pending:
    """An order whose outcome is unknown: when it was sent, when to ask next."""

    order: Order
    sent_at: float  # monotonic seconds
    next_query: float
    queries: int = 0


class BinanceBroker:
    """Orders to Binance Spot (or the testnet, or ``workbench fake-exchange``)."""

    def __init__(self, venue: VenueClient, filters: Mapping[str, SymbolFilters], *,
                 quote_asset: str, base_assets: Mapping[str, str], run_id: str,
                 tiny_notional: float | None = None, tiny: bool = False,
                 invisible_s: float = INVISIBLE_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.venue = venue
        self.filters = dict(filters)
        self.quote_asset = quote_asset
        self.base_assets = dict(base_assets)
        self.run_id = run_id
        self.tiny = tiny
        self.tiny_notional = tiny_notional
        self.invisible_s = invisible_s
        self._monotonic = monotonic
        self.resting: dict[str, list[Order]] = {}
        self.venue_fills: list[VenueFill] = []
        self.base_commission: dict[str, Decimal] = {}
        self.sent = 0  # order requests that left (a resubmit included)
        self._pending: dict[int, _Pending] = {}
        self._reserved: dict[int, tuple[float, int]] = {}
        self._executed: dict[int, Decimal] = {}  # venue quantity already reported, per order
        self._seen_trades: set[tuple[str, int]] = set()
        self._sink: OrderSink | None = None
        self._book: Book | None = None
        self._asked_at: int | None = None  # the step time resting orders were last asked at
        self.failures = 0
        """Order requests in a row the venue failed (an unknown outcome: a timeout, a dropped
        answer, a 5xx, -1007; a 429 throttle; a 418 ban): the live runtime halts past
        ``live.order_failures_halt``; an answer to an order request resets it. An order held
        back without a request (``VENUE_RATE_LIMITED`` or ``VENUE_BANNED`` while the minute's
        weight is spent or a ban lasts) is not a failure: the venue was not asked."""
        self.on_failures: Callable[[int, str], None] | None = None
        """Told each change of ``failures`` (the new count, and the reason of the failure or
        ``ANSWERED``): the live runtime journals it (an ``order_failures`` record), so a
        restart counts on from there."""
        self.halted: Callable[[], bool] | None = None
        """Whether the run has stopped trading (a halt, a flatten): an order the venue does
        not have is then not sent again but REJECTED ``NOT_RESENT_HALTED``."""
        self.on_venue_fill: Callable[[dict[str, Any]], None] | None = None
        """Told each venue execution (the live runtime journals it) before its logical fill."""

    # --- the port ----------------------------------------------------------------------------
    def bind(self, sink: OrderSink, book: Book) -> None:
        self._sink = sink
        self._book = book

    def venue_id(self, order: Order) -> str:
        """The ``newClientOrderId`` the venue knows ``order`` by."""
        return client_order_id(self.run_id, order.order_seq)

    def cap_qty(self, intent: OrderIntent) -> float:
        """A sell off the lot grid rounded down to it (a fee in kind leaves a position a
        commission short of the grid: selling all of it sells what the grid allows, the rest
        is dust); then, under ``tiny``, sized down to the tiny cap (``_tiny_cap``) when above
        it. A reduce-only order is not tiny-capped; one whose rules or price are not known
        (``submit`` refuses it) is taken as asked."""
        qty = intent.qty
        rules = self.filters.get(intent.symbol)
        if intent.side is Side.SELL and rules is not None:
            down = rules.round_qty(qty)
            if 0 < down < exact(qty):
                qty = float(down)
        if not self.tiny or intent.reduce_only:
            return qty
        cap = self._tiny_cap(intent.symbol, intent.limit_price)
        if cap is None or exact(qty) <= cap:
            return qty
        return float(cap)

    def submit(self, order: Order) -> None:
        sink, book = self._sink, self._book
        assert sink is not None and book is not None, "bind() the broker before submit()"
        rules = self.filters.get(order.symbol)
        if rules is None:
            sink.order_status(order, OrderStatus.REJECTED, "VENUE_UNKNOWN_SYMBOL")
            return
        reference = book.last.get(order.symbol)
        if reference is None:
            sink.order_status(order, OrderStatus.REJECTED, "NO_PRICE")
            return
        price = _limit(order)
        qty = exact(order.qty)
        if self.tiny and not order.reduce_only:  # sized by cap_qty; this one was not
            cap = self._tiny_cap(order.symbol, order.limit_price)
            if cap is not None and qty > cap:
                sink.order_status(order, OrderStatus.REJECTED, TINY_CAP)
                return
        breach = rules.check(qty, price, reference, len(self.resting.get(order.symbol, ())))
        if breach is not None:
            sink.order_status(order, OrderStatus.REJECTED, breach.reason)
            return
        if order.side is Side.BUY:
            cost = float(qty * (price if price is not None else exact(reference)))
            if cost > book.free_cash:  # what open and unknown orders hold is not free
                sink.order_status(order, OrderStatus.REJECTED, "INSUFFICIENT_FUNDS")
                return
        elif order.qty_units > book.free_units(order.symbol):
            sink.order_status(order, OrderStatus.REJECTED, "INSUFFICIENT_POSITION")
            return
        if self.venue.banned_until > self._monotonic():
            sink.order_status(order, OrderStatus.REJECTED, BANNED)
            return
        if self.venue.held_back_s() > 0:  # the minute's request weight is spent: no request
            sink.order_status(order, OrderStatus.REJECTED, RATE_LIMITED)
            return
        if not self.venue.clock_trusted():  # the venue's clock is not known within recvWindow
            sink.order_status(order, OrderStatus.REJECTED, CLOCK_SKEW)
            return
        self._send(order, rules, qty, price)

    def _tiny_cap(self, symbol: str, limit_price: float | None) -> Decimal | None:
        """The largest ``--tiny`` order of ``symbol`` at ``limit_price`` (None: at market, the
        last close): the smallest quantity on the lot grid meeting the venue's minimum
        notional, or ``tiny_notional``'s worth rounded down to the grid when that is more.
        None when the symbol's rules or its price are not known."""
        rules = self.filters.get(symbol)
        assert self._book is not None, "bind() the broker before sizing orders"
        at = limit_price if limit_price is not None else self._book.last.get(symbol)
        if rules is None or at is None or at <= 0:
            return None
        price = exact(at)
        cap = rules.min_qty_for(price)
        if self.tiny_notional is not None:
            cap = max(cap, rules.round_qty(exact(self.tiny_notional) / price))
        return cap

    def cancel(self, order: Order, reason: str = CancelReason.USER) -> bool:
        from binance.exceptions import BinanceAPIException

        if order.order_seq not in self._reserved or order.order_seq in self._pending:
            return False  # not open here, or not known yet (asked for by ``poll``)
        if self.venue.held_back_s() > 0:  # a ban, or the minute's weight spent: not now
            return False
        try:
            answer = self.venue.client.cancel_order(symbol=order.symbol,
                                                    origClientOrderId=self.venue_id(order))
        except BinanceAPIException as exc:
            if int(exc.status_code) == 418:
                self.venue.start_ban(exc)
            if int(exc.status_code) in (418, 429) or exc.code in (-1003, -1015):
                return False  # throttled or banned: nothing was done, the order stays open
            if exc.code == -2011:  # done at the venue meanwhile: learn how
                self._refresh(order)
                return False
            if int(exc.status_code) >= 500 or exc.code == -1007:
                raise OutcomeUnknown(UnknownReason.VENUE_ERROR, exc.message) from None
            raise
        except Exception as exc:
            if _network(exc):
                raise OutcomeUnknown(UnknownReason.NO_RESPONSE, str(exc)) from None
            raise
        self._apply(order, answer, None, cancel_reason=reason)
        return True

    def on_bar(self, bar: Bar) -> None:
        """The venue matches resting orders itself; ``poll`` reports what it did."""

    def poll(self, now: int) -> None:
        """Resolve unknown outcomes whose next query is due; report resting orders' fills,
        asking once per step time ``now`` (the venue matches them on its bars: asking more
        often between two bars would only spend request weight)."""
        if self.venue.held_back_s() > 0:
            return  # a 418 ban or the minute's weight spent: no request leaves until it ends
        for seq, pending in list(self._pending.items()):
            if self._monotonic() >= pending.next_query:
                self._resolve(seq, pending)
        if now == self._asked_at:
            return
        self._asked_at = now
        for orders in list(self.resting.values()):
            for order in list(orders):
                self._refresh(order)

    # --- sending -----------------------------------------------------------------------------
    def _send(self, order: Order, rules: SymbolFilters, qty: Decimal, price: Decimal | None,
              *, resynced: bool = False) -> None:
        from binance.exceptions import BinanceAPIException, BinanceRequestException

        assert self._sink is not None
        params: dict[str, Any] = {
            "symbol": order.symbol, "side": order.side.value, "type": order.type.value,
            "quantity": rules.qty_text(qty), "newClientOrderId": self.venue_id(order),
            "newOrderRespType": "FULL"}
        if price is not None:
            params |= {"price": rules.price_text(price), "timeInForce": "GTC"}
        self.sent += 1
        sent_at = self._monotonic()
        try:
            answer = self.venue.client.create_order(**params)
        except BinanceAPIException as exc:
            if exc.code == -1021 and not resynced:  # refused for our clock: nothing was taken
                self.venue.sync_time()
                self._send(order, rules, qty, price, resynced=True)
                return
            self._refused(order, exc, sent_at)
            return
        except BinanceRequestException as exc:  # an answer that is not JSON: it may be taken
            self._unknown(order, sent_at, UnknownReason.VENUE_ERROR)
            raise OutcomeUnknown(UnknownReason.VENUE_ERROR, exc.message[:200]) from None
        except Exception as exc:
            if not _network(exc):
                raise
            reason = (UnknownReason.TIMEOUT if "timed out" in str(exc).lower()
                      else UnknownReason.NO_RESPONSE)
            self._unknown(order, sent_at, reason)
            raise OutcomeUnknown(reason, str(exc)[:200]) from None
        self._count_failure(None)  # the venue answered
        self._sink_status(order, OrderStatus.SUBMITTED)
        self._apply(order, answer, answer.get("fills") or [])

    def _refused(self, order: Order, exc: Any, sent_at: float) -> None:
        status, code, msg = int(exc.status_code), exc.code, exc.message
        if status >= 500 or code == -1007 or (code == -2010 and "Duplicate" in msg):
            self._unknown(order, sent_at, UnknownReason.VENUE_ERROR)
            raise OutcomeUnknown(UnknownReason.VENUE_ERROR, f"HTTP {status} {code}: {msg}")
        if status == 418:
            self.venue.start_ban(exc)  # nothing leaves until it lifts
            reason = BANNED
            self._count_failure(reason)
        elif status == 429 or code in (-1003, -1015):
            reason = RATE_LIMITED
            self._count_failure(reason)
        elif code == -2010:
            reason = ("INSUFFICIENT_FUNDS" if order.side is Side.BUY
                      else "INSUFFICIENT_POSITION")
        elif code == -1013:
            name = msg.removeprefix("Filter failure: ").strip()
            reason = f"VENUE_FILTER_{name}" if name != msg else "VENUE_FILTER"
        else:
            reason = f"VENUE_{abs(code)}" if isinstance(code, int) else "VENUE_ERROR"
        self._unrest(order)  # a resend after an unknown outcome held its funds
        self._sink_status(order, OrderStatus.REJECTED, reason)

    def _unknown(self, order: Order, sent_at: float, reason: str) -> None:
        self._count_failure(reason)
        self._reserve(order)
        self._pending[order.order_seq] = _Pending(order, sent_at, self._monotonic())

    def _count_failure(self, cause: str | None) -> None:
        """The venue failed an order request (``cause``: the order's reason), or answered one
        (None: the count starts again); a change is told to ``on_failures``."""
        failures = 0 if cause is None else self.failures + 1
        if failures == self.failures:
            return
        self.failures = failures
        if self.on_failures is not None:
            self.on_failures(failures, cause or ANSWERED)

    # --- learning what the venue did ---------------------------------------------------------
    def _resolve(self, seq: int, pending: _Pending) -> None:
        """Ask the venue for an order whose outcome is unknown. Found: it is brought to what
        the venue says. "Does not exist" before ``invisible_s``: asked again later. After it:
        sent again, under the same client order id."""
        from binance.exceptions import BinanceAPIException

        order = pending.order
        pending.queries += 1
        backoff = min(8.0, 0.25 * 2 ** pending.queries)
        try:
            answer = self.venue.client.get_order(symbol=order.symbol,
                                                 origClientOrderId=self.venue_id(order))
        except BinanceAPIException as exc:
            if exc.code != -2013:  # a transient failure, or a ban: ask again later
                if int(exc.status_code) == 418:
                    self.venue.start_ban(exc)
                pending.next_query = self._monotonic() + backoff
                return
            waited = self._monotonic() - pending.sent_at
            if waited < self.invisible_s:  # it may be there and not yet shown
                pending.next_query = self._monotonic() + min(self.invisible_s - waited,
                                                             backoff)
                return
            del self._pending[seq]  # it does not exist, after the window: send it again ...
            if self.halted is not None and self.halted():  # ... unless trading has stopped
                self._unrest(order)
                self._sink_status(order, OrderStatus.REJECTED, NOT_RESENT_HALTED)
                return
            price = _limit(order)
            with contextlib.suppress(OutcomeUnknown):  # unknown again: pending again
                self._send(order, self.filters[order.symbol], exact(order.qty), price)
            return
        except Exception as exc:
            if not _network(exc):
                raise
            pending.next_query = self._monotonic() + backoff
            return
        del self._pending[seq]
        self._apply(order, answer, None)

    def _refresh(self, order: Order) -> None:
        answer = self.venue.call("order status", self.venue.client.get_order,
                                 symbol=order.symbol, origClientOrderId=self.venue_id(order))
        self._apply(order, answer, None)

    def _apply(self, order: Order, answer: Mapping[str, Any],
               fills: Sequence[Mapping[str, Any]] | None,
               cancel_reason: str = CancelReason.USER) -> None:
        """Bring ``order`` to what the venue says: new executions as one logical fill, then
        its status. ``fills``: the executions the answer carries (a FULL answer), else they
        are fetched (``myTrades``) when the executed quantity grew."""
        status = answer.get("status", "NEW")
        executed = Decimal(answer.get("executedQty", "0"))
        before = self._executed.get(order.order_seq, Decimal(0))
        if order.status is OrderStatus.UNKNOWN and status in _OPEN and executed == before:
            # still working at the venue, nothing new filled (a cancel whose answer was lost)
            self._sink_status(order, OrderStatus.PARTIALLY_FILLED if order.filled_units
                              else OrderStatus.SUBMITTED)
        if executed > before:
            if fills is None:
                fills = self._trades(order, int(answer["orderId"]))
            self._report_fill(order, fills, executed - before)
            self._executed[order.order_seq] = executed
        if status in _OPEN:
            if order.is_open:
                self._rest(order)
            return
        self._unrest(order)
        if order.is_open:  # not FILLED by the fills above
            if status == "FILLED":
                return  # reported by the fills
            if status == "REJECTED":
                self._sink_status(order, OrderStatus.REJECTED, "VENUE_REJECTED")
            else:  # CANCELED, EXPIRED, EXPIRED_IN_MATCH
                reason = (CancelReason.EXPIRED if status.startswith("EXPIRED")
                          else cancel_reason)
                if order.status is OrderStatus.UNKNOWN:
                    self._sink_status(order, OrderStatus.SUBMITTED)
                self._sink_status(order, OrderStatus.CANCELED, reason)

    def _trades(self, order: Order, order_id: int) -> list[Mapping[str, Any]]:
        rows = self.venue.call("trades", self.venue.client.get_my_trades, symbol=order.symbol,
                               orderId=order_id)
        return [{"price": r["price"], "qty": r["qty"], "commission": r["commission"],
                 "commissionAsset": r["commissionAsset"], "tradeId": r["id"],
                 "time": r["time"]} for r in rows]

    def _report_fill(self, order: Order, fills: Sequence[Mapping[str, Any]],
                     expected: Decimal) -> None:
        """The new executions among ``fills`` as one logical fill."""
        assert self._sink is not None
        vid = self.venue_id(order)
        new = [f for f in fills if (vid, int(f["tradeId"])) not in self._seen_trades]
        qty = sum((Decimal(f["qty"]) for f in new), Decimal(0))
        if qty <= 0:
            return
        quote = sum((Decimal(f["price"]) * Decimal(f["qty"]) for f in new), Decimal(0))
        price = quote / qty
        fee_quote = 0.0
        fee_units = 0
        base = self.base_assets.get(order.symbol)
        for f in new:
            self._seen_trades.add((vid, int(f["tradeId"])))
            commission = Decimal(f["commission"])
            in_kind = f["commissionAsset"] == base and commission > 0
            if in_kind and order.side is Side.BUY:  # kept out of the asset bought: in kind
                fee_units += int(commission * QTY_SCALE)
            elif in_kind:  # a sell's base-asset commission (not Binance's rule): counted
                in_kind = False
                self.base_commission[order.symbol] = self.base_commission.get(
                    order.symbol, Decimal(0)) + commission
            fee = self._fee_in_quote(commission, f["commissionAsset"], Decimal(f["price"]),
                                     base)
            fee_quote += fee
            venue_fill = VenueFill(order.client_order_id, int(f["tradeId"]), Decimal(f["price"]),
                                   Decimal(f["qty"]), Decimal(f["commission"]),
                                   f["commissionAsset"], fee)
            self.venue_fills.append(venue_fill)
            if self.on_venue_fill is not None:
                self.on_venue_fill({
                    "client_order_id": order.client_order_id, "order_seq": order.order_seq,
                    "symbol": order.symbol, "side": order.side.value,
                    "trade_id": venue_fill.trade_id, "price": f"{venue_fill.price:f}",
                    "qty": f"{venue_fill.qty:f}", "commission": f"{venue_fill.commission:f}",
                    "commission_asset": venue_fill.commission_asset, "fee_quote": fee,
                    "venue_ts": int(f["time"]) if "time" in f else None,
                    **({"fee_units": int(commission * QTY_SCALE)} if in_kind else {})})
        if order.status is OrderStatus.UNKNOWN:
            self._sink_status(order, OrderStatus.SUBMITTED)
        units = round(qty * QTY_SCALE)
        if order.order_seq in self._reserved:
            self._release_part(order, units)
        trade_ids = ",".join(str(f["tradeId"]) for f in new)
        times = [int(f["time"]) for f in new if "time" in f]
        self._sink.order_fill(order, int(units), float(price), fee_quote, trade_ids,
                              max(times) if times else None, fee_units)

    def _fee_in_quote(self, commission: Decimal, asset: str, price: Decimal, base: str | None
                      ) -> float:
        if commission == 0 or asset == self.quote_asset:
            return float(commission)
        if asset == base:
            return float(commission * price)
        ticker = self.venue.call("fee asset price", self.venue.client.get_symbol_ticker,
                                 symbol=f"{asset}{self.quote_asset}")
        return float(commission * Decimal(ticker["price"]))

    # --- a restart (brokers/replaying.py) ----------------------------------------------------
    def hold(self, order: Order) -> None:
        """Reserve what ``order`` still holds at the venue, once (a replayed answer)."""
        if order.status is OrderStatus.UNKNOWN:
            self._reserve(order)
        else:
            self._rest(order)

    def release_filled(self, order: Order, units: int) -> None:
        """``units`` of ``order`` filled (a replayed fill): their share of the reservation."""
        if order.order_seq in self._reserved:
            self._release_part(order, units)

    def let_go(self, order: Order) -> None:
        """``order`` is done (a replayed answer): release what it held."""
        self._unrest(order)

    def adopt(self, orders: Sequence[Order], fills: Sequence[Fill]) -> None:
        """After a restart re-executed the journal: take over the orders still open. What the
        venue did meanwhile is asked for (``poll``): a resting order's fills and end; an order
        whose outcome is unknown, or whose request may have left just before the crash (NEW),
        by its client order id, with the invisibility window counted from now."""
        assert self._sink is not None
        by_seq = {o.order_seq: o for o in orders}
        for fill in fills:
            if fill.order_seq in by_seq or fill.venue_trade_id:
                vid = client_order_id(self.run_id, fill.order_seq)
                for tid in (fill.venue_trade_id or "").split(","):
                    if tid.strip().isdigit():
                        self._seen_trades.add((vid, int(tid)))
        now = self._monotonic()
        for order in orders:
            self._executed[order.order_seq] = Decimal(order.filled_units) / QTY_SCALE
            if order.status is OrderStatus.NEW:  # journaled, then the process died
                self._sink_status(order, OrderStatus.UNKNOWN, "RESTART")
            if order.status is OrderStatus.UNKNOWN:
                self._reserve(order)
                self._pending[order.order_seq] = _Pending(order, now, now)
            else:
                self._rest(order)
        self._asked_at = None  # ask for the resting orders at the next poll

    def restore_commissions(self, venue_fills: Iterable[Mapping[str, Any]]) -> None:
        """After a restart: the base-asset commissions of journaled venue executions booked
        before fees in kind were (no ``fee_units``): the books hold them, the venue does not."""
        for f in venue_fills:
            symbol = str(f.get("symbol"))
            if (f.get("commission_asset") == self.base_assets.get(symbol)
                    and "fee_units" not in f):
                self.base_commission[symbol] = self.base_commission.get(
                    symbol, Decimal(0)) + Decimal(str(f["commission"]))

    # --- reconciliation ----------------------------------------------------------------------
    def balances(self) -> dict[str, Decimal]:
        """Each asset's total at the venue (free plus locked)."""
        account = self.venue.call("account", self.venue.client.get_account)
        return {b["asset"]: Decimal(b["free"]) + Decimal(b["locked"])
                for b in account.get("balances", [])}

    def reconcile(self, open_orders: Sequence[Order], order_seqs: Sequence[int],
                  units: Mapping[str, int], baseline: Mapping[str, Decimal],
                  since_ms: int | None = None) -> list[Difference]:
        """The venue's open orders, balances and trades since ``since_ms`` (the run's start,
        venue time) against the journal's (``reconcile.py``): ``open_orders`` and
        ``order_seqs`` (every order the run journaled) from the step, ``units`` the books'
        positions, ``baseline`` the balances at the run's start."""
        venue_open: list[Mapping[str, Any]] = []
        trades: list[tuple[str | None, int, str]] = []
        for symbol in self.filters:
            venue_open += self.venue.call("open orders", self.venue.client.get_open_orders,
                                          symbol=symbol)
            if since_ms is None:
                continue
            ids = {int(o["orderId"]): str(o.get("clientOrderId")) for o in self.venue.call(
                "all orders", self.venue.client.get_all_orders, symbol=symbol,
                startTime=since_ms, limit=1000)}
            trades += [(ids.get(int(t["orderId"])), int(t["id"]), symbol) for t in
                       self.venue.call("trades", self.venue.client.get_my_trades,
                                       symbol=symbol, startTime=since_ms, limit=1000)]
        view = VenueView(venue_open, self.balances(), trades)
        unknown = {self.venue_id(o): o.symbol for o in open_orders
                   if o.order_seq in self._pending or o.status is OrderStatus.UNKNOWN}
        ours = OurView(
            open_ids={self.venue_id(o): o.symbol for o in open_orders
                      if self.venue_id(o) not in unknown},
            unknown_ids=unknown,
            sent_ids=frozenset(client_order_id(self.run_id, s) for s in order_seqs),
            units=units, baseline=baseline,
            base_assets={s: a for s, a in self.base_assets.items() if s in self.filters},
            steps={s: f.step_size for s, f in self.filters.items()},
            base_commission=self.base_commission,
            journaled_trades=frozenset(self._seen_trades))
        return reconcile(view, ours)

    # --- reservations ----------------------------------------------------------------------
    def _reserve(self, order: Order) -> None:
        """Hold in the books what ``order`` may still take at the venue (once): a resting
        order's, and an unknown one's (it may be working there)."""
        assert self._book is not None
        if order.order_seq in self._reserved:
            return
        left = order.qty_units - order.filled_units
        if order.side is Side.BUY:
            limit = order.limit_price or self._book.last.get(order.symbol, 0.0)
            cash, units = left / QTY_SCALE * limit, 0
        else:
            cash, units = 0.0, left
        self._book.reserve(order.symbol, cash, units)
        self._reserved[order.order_seq] = (cash, units)

    def _rest(self, order: Order) -> None:
        self._reserve(order)
        resting = self.resting.setdefault(order.symbol, [])
        if order not in resting:
            resting.append(order)

    def _release_part(self, order: Order, units: int) -> None:
        """Release the share of the reservation that ``units`` filled."""
        assert self._book is not None
        cash, held = self._reserved[order.order_seq]
        left = order.qty_units - order.filled_units
        share = min(1.0, units / left) if left > 0 else 1.0
        give_cash, give_units = cash * share, min(held, units)
        self._book.release(order.symbol, give_cash, give_units)
        self._reserved[order.order_seq] = (cash - give_cash, held - give_units)

    def _unrest(self, order: Order) -> None:
        if order.order_seq not in self._reserved:
            return
        assert self._book is not None
        cash, units = self._reserved.pop(order.order_seq)
        self._book.release(order.symbol, cash, units)
        resting = self.resting.get(order.symbol, [])
        if order in resting:
            resting.remove(order)
        if not resting:
            self.resting.pop(order.symbol, None)

    def _sink_status(self, order: Order, status: OrderStatus, reason: str | None = None
                     ) -> None:
        assert self._sink is not None
        self._sink.order_status(order, status, reason)


def _limit(order: Order) -> Decimal | None:
    """A limit order's price, exactly; None for a market order."""
    if order.type is OrderType.LIMIT and order.limit_price is not None:
        return exact(order.limit_price)
    return None


def _network(exc: BaseException) -> bool:
    import requests

    return isinstance(exc, requests.RequestException)
