"""NautilusTrader (``nautilus_trader``) as a peer: our strategy inside a nautilus strategy's
``on_bar``, in a low-level ``BacktestEngine``.

The setup: one simulated venue ``SIM`` (``OmsType.NETTING``, ``AccountType.CASH``, starting
balance ``portfolio.initial_cash`` in the quote currency), a ``CurrencyPair`` per symbol with
size precision 8 (our quantum, 1e-8: every quantity we use is exact) and price precision 16
(the most nautilus allows: our float prices, the bars' and the limits' alike, come back from
nautilus's fills bit for bit in every fill of the January runs; a tick is 1e-16),
``maker_fee = taker_fee = fee_bps / 1e4`` (the commission is charged in the quote currency on
the fill's notional, as ours), no latency model, the default
``FillModel`` (limits fill on a touch, no random slippage). Bars are ``1-MINUTE-LAST-EXTERNAL``
(or the config's timeframe) with ``ts_event = ts_init`` = the bar's *close* time: nautilus
processes a bar at its ``ts_init``, so a bar reaches the matching engine and the strategy only
once it has closed. Each bar, in this order: the matching engine replays it as trades
open, high, low, close (``bar_execution=True``, fixed high-before-low ordering) and resting
orders fill; the strategy's ``on_bar`` hands it to our step; then the venue processes the
commands the step sent, so a market order submitted in ``on_bar`` fills at that bar's close
(our ``fill_at: close``). The venue runs without its message queue (``use_message_queue=False``):
a command is processed when sent, so an order the step withdraws (an expired bid) releases its
locked cash before the order the strategy sends next on the same bar reaches nautilus's
pre-trade balance check, as our simulated broker releases a reservation before the strategy
sees the bar. With the queue, the new bid is denied ``NOTIONAL_EXCEEDS_FREE_BALANCE`` whenever
cash is below two bids' notional (PullbackLimit then diverged from its 151st trade on the
January sample). A fill's loop index is found from its ``ts_event`` (the close time of
the bar the venue was processing) and its instrument.

How our semantics map, and where they cannot:

* ``fill_at: next_open`` is refused (``Unsupported``): nautilus executes a market order when the
  venue processes it, against the book as it stands, which after ``on_bar`` is the bar's close;
  it has no mode that defers a market order to the next bar's open.
* price impact is refused: ``slippage_bps`` and ``spread_bps`` must be 0. Nautilus's
  ``FillModel.prob_slippage`` moves a fill by one price increment (here 1e-16), not by basis
  points, and a bar-driven L1 book has bid = ask = the last trade, so there is no spread to set.
  Run parity configs with ``slippage_bps: 0`` (and ``spread_bps: 0``).
* liquidity: ours fills every order whole at the bar's price, whatever the bar's volume.
  Nautilus builds its L1 book from the bar, giving each of the four prices a quarter of the
  bar's volume: a market order larger than that fills the rest one increment worse in a
  second fill, and a limit touched *exactly* at its price (a buy's limit equal to the low)
  fills only the quarter, the rest resting on. The closest configuration to ours is a book
  deep enough for any order, so the bars nautilus matches on carry ``DEPTH`` (4 x
  ``model.MAX_QTY``) as their volume instead of the real one: each of their prices holds the
  largest quantity we allow. Volume means nothing else to nautilus here (our strategy sees our
  own bars). With the real volume, SmaCross at qty 5 on the January sample (a quarter volume
  is often below 5) gave the same metrics to 1e-9 but 248 round trips against our 111, each
  entry and exit split in two fills.
* a limit order rests from its submission: nautilus matches it at once against the book (the
  close of the bar it was sent on) and, when marketable (a buy limit at or above that close, a
  sell at or below), fills it there as a taker; ours checks a limit from the next bar on, where
  it fills at the open. A take-profit sent from ``on_fill`` when the bar already closed beyond
  it would fill a bar earlier in nautilus. The run is refused: it completes, then raises
  ``Unsupported`` naming the first such order (PullbackLimit with ``take_profit_bps: 5,
  dip_bps: 5`` on the January sample does; with its defaults none is sent).
* executions a market order gets at its signal bar's close reach our step right after its
  ``on_bar`` (still on that bar), before nautilus processes the next bar, so an order the
  strategy sends from ``on_fill`` is matched from the next bar on, as in our backtest.
* a limit the bar *opens* through fills at the limit in nautilus (a maker fill, no price
  improvement: "marketable BUY would have filled at limit" in its matching engine) and at the
  open in ours. On continuous data (open = previous close) a resting limit is always touched on
  an earlier bar first, so this needs a gap; when it happens the run is refused
  (``Unsupported``) naming the order.
* funds: nautilus's pre-trade check (its RiskEngine) prices a market order from the last
  trade or quote in its cache, which bars do not set; the adapter adds each bar's close to the
  cache as the last trade, so a market buy is checked at the price it fills at (else it is not
  checked at all, and a cash account driven below zero raises ``AccountBalanceNegative``).
  Both sides then reject a buy beyond free cash (``REJECTED``, with nautilus's reason text).
  But ours counts the fee (notional plus fee against free cash, a resting bid reserving its fee
  too) and nautilus does not (notional only, locks of notional only): a buy that only the fee
  makes unaffordable is accepted there and rejected here. The adapter rejects it on our side
  without sending it, and the run is refused (``Unsupported``) naming the order.
* a sell beyond the free position: ours rejects it (``INSUFFICIENT_POSITION``); nautilus's
  pre-trade check denies a sell beyond the free base-currency balance (a resting sell locks its
  quantity) but skips the check when the account holds no balance of that currency at all.
  Neither strategy here sends such a sell, so this path is not compared.
* rounding: a commission is rounded to the quote currency's precision (USDT: 8 decimals),
  under 5e-9 per fill, so equity differs from ours by about 2e-9 percentage points after a
  thousand fills (PullbackLimit, January); prices are not rounded (precision 16, above);
* orders still resting at the end are left there (neither side closes positions at the end).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from workbench.config import Config, timeframe_ms
from workbench.engine.kernel import cost_model
from workbench.feeds.history import LoopData
from workbench.model import MAX_QTY, QTY_SCALE, Order, OrderType, Side
from workbench.parity.peer import PeerStep, Unsupported
from workbench.strategy import Strategy

NAME = "nautilus"
PACKAGE = "nautilus_trader"
SIZE_PRECISION = 8  # size decimals: our quantum
PRICE_PRECISION = 16  # price decimals: nautilus's most, so a price is our float to the last bit
_NS_PER_MS = 1_000_000
_UNITS = Decimal(QTY_SCALE)
DEPTH = 4 * MAX_QTY  # the volume of the bars nautilus matches on: any order fills whole


def check(cfg: Config, data: LoopData) -> None:
    costs = cost_model(cfg)
    if costs.fill_at != "close":
        raise Unsupported(
            "fill_at: next_open has no NautilusTrader equivalent: its venue fills a market "
            "order when it processes the order, against the book as it stands after on_bar "
            "(the signal bar's close), never at the next bar's open; use fill_at: close")
    if costs.slippage_bps or costs.spread_bps:
        raise Unsupported(
            f"costs.slippage_bps={costs.slippage_bps} / spread_bps={costs.spread_bps}: "
            "NautilusTrader's FillModel slips a fill by one price increment, not by basis "
            "points, and a bar-driven book has no spread; set both to 0 to compare with "
            "nautilus")
    _bar_spec(cfg.data.timeframe)


def _bar_spec(timeframe: str) -> str:
    ms = timeframe_ms(timeframe)
    for unit, size in (("DAY", 86_400_000), ("HOUR", 3_600_000), ("MINUTE", 60_000),
                       ("SECOND", 1_000)):
        if ms % size == 0:
            return f"{ms // size}-{unit}-LAST"
    raise Unsupported(f"timeframe {timeframe} is not a whole number of seconds")


def run(cfg: Config, strategy: Strategy, data: LoopData, run_id: str) -> PeerStep:
    from nautilus_trader.backtest.engine import BacktestEngine
    from nautilus_trader.config import BacktestEngineConfig, LoggingConfig, StrategyConfig
    from nautilus_trader.model.currencies import USDT
    from nautilus_trader.model.data import Bar, BarType, TradeTick
    from nautilus_trader.model.enums import (
        AccountType,
        AggressorSide,
        OmsType,
        OrderSide,
        TimeInForce,
    )
    from nautilus_trader.model.events import (
        OrderCanceled,
        OrderDenied,
        OrderFilled,
        OrderRejected,
    )
    from nautilus_trader.model.identifiers import TradeId, TraderId, Venue
    from nautilus_trader.model.objects import Money, Price, Quantity
    from nautilus_trader.trading.strategy import Strategy as NtStrategy

    check(cfg, data)
    venue = Venue("SIM")
    quote = _currency(cfg.portfolio.quote) if cfg.portfolio.quote != "USDT" else USDT
    costs = cost_model(cfg)  # costs.enabled: false is all zeros
    fee = Decimal(str(costs.fee_bps)) / Decimal(10_000)
    instruments = {name: _instrument(name, venue, quote, fee, costs.min_notional)
                   for name in data.symbol_names}
    bar_types = {name: BarType.from_str(f"{inst.id}-{_bar_spec(cfg.data.timeframe)}-EXTERNAL")
                 for name, inst in instruments.items()}
    tf_ns = timeframe_ms(cfg.data.timeframe) * _NS_PER_MS

    # (instrument id, bar close ns) -> our loop index
    names = data.symbol_names
    close_ns = [int(t) * _NS_PER_MS + tf_ns for t in data.ts]
    index: dict[tuple[str, int], int] = {}
    bars = []
    depth = Quantity(DEPTH, SIZE_PRECISION)
    for i in range(len(data)):
        name = names[int(data.symbol_index[i])]
        inst = instruments[name]
        index[(inst.id.value, close_ns[i])] = i
        bars.append(Bar(bar_types[name],
                        Price(float(data.open[i]), PRICE_PRECISION),
                        Price(float(data.high[i]), PRICE_PRECISION),
                        Price(float(data.low[i]), PRICE_PRECISION),
                        Price(float(data.close[i]), PRICE_PRECISION),
                        depth,
                        close_ns[i], close_ns[i]))

    ours: dict[str, Order] = {}  # client order id -> our order
    theirs: dict[int, Any] = {}  # our order_seq -> nautilus order
    host: list[Any] = []
    last_close: dict[str, Any] = {}  # symbol -> close of the last bar nautilus processed
    refused: list[str] = []  # why the comparison cannot stand (the first reason is raised)
    now = [-1, False]  # loop index in on_bar; whether an execution on it awaits our step

    def place(order: Order) -> None:
        nt = host[0]
        inst = instruments[order.symbol]
        side = OrderSide.BUY if order.side is Side.BUY else OrderSide.SELL
        qty = Quantity(Decimal(order.qty_units) / _UNITS, SIZE_PRECISION)
        if order.type is OrderType.MARKET:
            made = nt.order_factory.market(inst.id, side, qty, time_in_force=TimeInForce.GTC)
        else:
            assert order.limit_price is not None
            price = Price(order.limit_price, PRICE_PRECISION)
            close = last_close.get(order.symbol)
            if close is not None and (
                    price >= close if order.side is Side.BUY else price <= close):
                refused.append(
                    f"order {order.order_seq} ({order.side.value} LIMIT {order.symbol} "
                    f"{order.qty} @ {price}, sent on the bar closing at {close}) is "
                    "marketable when sent: NautilusTrader fills it at once at that bar's "
                    "close as a taker; workbench checks a limit from the next bar on, "
                    "where it fills at the open")
            made = nt.order_factory.limit(inst.id, side, qty, price,
                                          time_in_force=TimeInForce.GTC)
        if order.side is Side.BUY:
            ref = order.limit_price if order.limit_price is not None else \
                last_close[order.symbol].as_double()
            notional = order.qty_units / QTY_SCALE * ref
            free = nt.portfolio.account(venue).balance_free(quote).as_double()
            # ours reserves a resting bid's fee too, nautilus locks its notional only
            bids = sum(o.qty_units / QTY_SCALE * o.limit_price
                       for resting in port.resting.values() for o in resting
                       if o is not order and o.side is Side.BUY and o.limit_price is not None)
            free_ours = free - costs.fee(bids)
            if notional <= free and notional + costs.fee(notional) > free_ours:
                refused.append(
                    f"order {order.order_seq} ({order.side.value} {order.type.value} "
                    f"{order.symbol} {order.qty} for {notional:.8f} {quote.code} plus a fee of "
                    f"{costs.fee(notional):.8f}) against {free_ours:.8f} {quote.code} of free "
                    "cash: workbench rejects a buy whose notional plus fee exceeds free cash "
                    "(resting bids reserve their fee too); NautilusTrader's pre-trade check and "
                    "its locks leave fees out, and it would accept it")
                port.reject(order, "INSUFFICIENT_FUNDS")
                return
        ours[made.client_order_id.value] = order
        theirs[order.order_seq] = made
        nt.submit_order(made)

    def withdraw(order: Order) -> None:
        made = theirs.pop(order.order_seq, None)
        if made is not None and made.is_open:
            host[0].cancel_order(made)

    peer = PeerStep(cfg, strategy, data, run_id, place, withdraw)
    port = peer.broker

    class Adapter(NtStrategy):
        def on_start(self) -> None:
            host.append(self)
            for bar_type in bar_types.values():
                self.subscribe_bars(bar_type)
            peer.start()

        def on_bar(self, bar: Any) -> None:
            i = index[(bar.bar_type.instrument_id.value, bar.ts_init)]
            last_close[names[int(data.symbol_index[i])]] = bar.close
            # The pre-trade check prices a market order from the last trade (or quote) in the
            # cache, which bars do not set: without it a market buy is never checked for funds.
            self.cache.add_trade_tick(TradeTick(
                bar.bar_type.instrument_id, bar.close, bar.volume,
                AggressorSide.NO_AGGRESSOR, TradeId(str(i)), bar.ts_event, bar.ts_init))
            now[0], now[1] = i, False
            peer.bar(i)
            # Market orders sent on this bar filled at its close, synchronously. Our broker
            # fills them inside the strategy's bar too, so its on_fill (which may send a
            # take-profit) must run before nautilus processes the next bar: apply them now,
            # with the step still on this bar, as PeerStep.bar(i + 1) would.
            while now[1]:
                now[1] = False
                port.settle(i + 1)

        def on_order_filled(self, event: OrderFilled) -> None:
            order = ours.get(event.client_order_id.value)
            if order is None:
                return
            units = int(event.last_qty.as_decimal() * _UNITS)
            bar = index[(event.instrument_id.value, event.ts_event)]
            limit, open_ = order.limit_price, float(data.open[bar])
            if limit is not None and (open_ < limit if order.side is Side.BUY
                                      else open_ > limit):
                refused.append(
                    f"order {order.order_seq} ({order.side.value} LIMIT {order.symbol} "
                    f"{order.qty} @ {limit!r}) rested into a bar that opened through it at "
                    f"{open_!r}: NautilusTrader fills it at its limit, workbench at the open")
            port.executed(order, units, event.last_px.as_double(),
                          event.commission.as_double(), bar)
            if bar == now[0]:
                now[1] = True

        def on_order_rejected(self, event: OrderRejected) -> None:
            self._refused(event.client_order_id.value, str(event.reason))

        def on_order_denied(self, event: OrderDenied) -> None:
            self._refused(event.client_order_id.value, str(event.reason))

        def on_order_canceled(self, event: OrderCanceled) -> None:
            order = ours.get(event.client_order_id.value)
            if order is not None and order.order_seq in theirs:  # not withdrawn by us
                self._refused(event.client_order_id.value, "CANCELED_BY_VENUE")

        def _refused(self, client_order_id: str, reason: str) -> None:
            order = ours.get(client_order_id)
            if order is not None:
                theirs.pop(order.order_seq, None)
                port.reject(order, reason)

    engine = BacktestEngine(BacktestEngineConfig(
        trader_id=TraderId("WORKBENCH-001"),
        logging=LoggingConfig(log_level="ERROR", bypass_logging=True)))
    try:
        engine.add_venue(venue=venue, oms_type=OmsType.NETTING, account_type=AccountType.CASH,
                         starting_balances=[Money(cfg.portfolio.initial_cash, quote)],
                         base_currency=None, bar_execution=True, trade_execution=False,
                         bar_adaptive_high_low_ordering=False, use_message_queue=False)
        for inst in instruments.values():
            engine.add_instrument(inst)
        engine.add_data(bars)
        engine.add_strategy(Adapter(StrategyConfig(strategy_id="WORKBENCH-PEER")))
        engine.run()
        if not peer.started:  # no bars
            peer.start()
        peer.stop()
    finally:
        engine.dispose()
    if refused:
        raise Unsupported(refused[0])
    return peer


def _currency(code: str) -> Any:
    from nautilus_trader.model.enums import CurrencyType
    from nautilus_trader.model.objects import Currency

    try:
        return Currency.from_str(code)
    except Exception:
        return Currency(code, SIZE_PRECISION, 0, code, CurrencyType.CRYPTO)


def _instrument(name: str, venue: Any, quote: Any, fee: Decimal, min_notional: float) -> Any:
    from nautilus_trader.model.identifiers import InstrumentId, Symbol
    from nautilus_trader.model.instruments import CurrencyPair
    from nautilus_trader.model.objects import Money, Price, Quantity

    code = quote.code
    base = name[: -len(code)] if name.endswith(code) and len(name) > len(code) else name
    tick, unit = Decimal(1).scaleb(-PRICE_PRECISION), Decimal(1).scaleb(-SIZE_PRECISION)
    return CurrencyPair(
        instrument_id=InstrumentId(Symbol(name), venue),
        raw_symbol=Symbol(name),
        base_currency=_currency(base),
        quote_currency=quote,
        price_precision=PRICE_PRECISION,
        size_precision=SIZE_PRECISION,
        price_increment=Price(tick, PRICE_PRECISION),
        size_increment=Quantity(unit, SIZE_PRECISION),
        lot_size=None,
        max_quantity=None,
        min_quantity=Quantity(unit, SIZE_PRECISION),
        max_notional=None,
        min_notional=Money(min_notional, quote) if min_notional else None,
        max_price=None,
        min_price=None,
        margin_init=Decimal(0),
        margin_maint=Decimal(0),
        maker_fee=fee,
        taker_fee=fee,
        ts_event=0,
        ts_init=0,
    )


def version() -> str:
    import nautilus_trader

    return str(nautilus_trader.__version__)
