"""The one step both loops share: bar -> strategy -> journal -> risk -> broker -> books.

Each order is journaled (status NEW, the write-ahead record) before risk sees it, so a blocked
order is on record too. Its quantity is the one the broker takes it on at
(``Broker.cap_qty``: the intent's, or less under ``--tiny``), decided before the record is
written; a sized-down order's NEW event says so (reason ``CAPPED <asked> -> <taken>``).

The backtest loop and the live loop differ only in their clock, feed, broker and journal
(chosen by ``engine/kernel.py``); both hand each closed bar to ``Step.on_bar``. Nothing here
knows the mode. Time comes from the injected ``Clock``: in a backtest a ``BarClock`` (the
current bar's close time, computed inline so the loop pays nothing for it), live the venue's
clock, so an acknowledgement or a fill between bars carries its own time.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from typing import Any

from workbench.book import Book
from workbench.brokers.base import CAPPED, Broker, CancelReason, OutcomeUnknown
from workbench.engine.clock import BarClock, Clock
from workbench.engine.journal import Journal, OrderRecord, contents
from workbench.errors import EngineFault, StrategyError, WorkbenchError
from workbench.indicators import IndicatorSet
from workbench.model import (
    MAX_QTY,
    NO_COSTS,
    QTY_QUANTUM,
    QTY_SCALE,
    ActionEvent,
    ActionKind,
    Bar,
    CorporateAction,
    Fill,
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    Side,
    ms_to_iso,
)
from workbench.risk.engine import RiskEngine
from workbench.strategy import Context, Strategy

_SUBMITTED = OrderStatus.SUBMITTED
_PARTIAL = OrderStatus.PARTIALLY_FILLED
_UNKNOWN = OrderStatus.UNKNOWN
_MIN_QTY = QTY_QUANTUM / 2
_BUY, _SELL, _MARKET = Side.BUY, Side.SELL, OrderType.MARKET
_new = tuple.__new__


class Step:
    """Wires a strategy to a broker through the books, the journal and (optionally) risk.

    ``risk`` is a ``workbench.risk.RiskEngine`` (or None: no pre-trade checks). A block turns
    the order BLOCKED before any broker sees it, and the strategy hears of it in on_reject.
    ``symbols``: the run's configured symbols (``ctx.symbols``).
    ``clock`` stamps orders, events and fills (default: a ``BarClock`` of ``timeframe_ms``).
    """

    def __init__(
        self,
        strategy: Strategy,
        broker: Broker,
        book: Book,
        journal: Journal,
        *,
        run_id: str,
        timeframe_ms: int,
        seed: int = 0,
        risk: RiskEngine | None = None,
        clock: Clock | None = None,
        symbols: tuple[str, ...] = (),
    ) -> None:
        self.strategy = strategy
        self.broker = broker
        self.book = book
        self.journal = journal
        self.risk = risk
        self.run_id = run_id
        self.timeframe_ms = timeframe_ms
        self.symbols = symbols
        self.ctx = Context(self, timeframe_ms, seed)
        self.order_seq = 0
        self.fill_seq = 0
        self._open: dict[int, Order] = {}
        self._on_bar = strategy.on_bar
        self._bar: Bar | None = None
        self.indicators = self._declared_indicators(strategy)
        self.wake = self._wake(strategy)
        # hooks a strategy does not override are not called at all (a call per fill adds up)
        kind = type(strategy)
        self._on_fill = strategy.on_fill if kind.on_fill is not Strategy.on_fill else None
        self._on_reject = strategy.on_reject if kind.on_reject is not Strategy.on_reject else None
        self._start_now = 0
        self._warming = False
        if clock is None:
            clock = BarClock(timeframe_ms)
        self.clock = clock
        # a BarClock of this timeframe says what ``now`` computes inline: the fast path
        self._bar_clock = type(clock) is BarClock and clock.timeframe_ms == timeframe_ms
        if isinstance(clock, BarClock):
            clock.follow(self)
        self._last = book.last
        self._bars = book.bars
        broker.bind(self, book)
        self._resting = broker.resting  # the port's live mapping: truthy while orders rest
        self._cap_qty = broker.cap_qty
        self._observe = None
        self._actions: list[CorporateAction] = []  # still to apply, latest first
        self._hooked = False  # before_each_bar
        if risk is not None:
            risk.bind(book, self.open_orders, lambda: self.now, lambda: self.bar_ts)
            if risk.needs_bars:  # drawdown rules follow the equity bar by bar
                self._observe = risk.observe_bar

    # --- the loop calls these ---------------------------------------------------------------
    @property
    def bar(self) -> Bar | None:
        """The bar being processed (the last one handed to ``on_bar``), None before the first."""
        return self._bar

    @property
    def start_ts(self) -> int:
        """The time the run started at (``start``): ``now`` before the first bar."""
        return self._start_now

    @property
    def bar_ts(self) -> int:
        """Open time of the bar being processed (orders and fills decided now carry it)."""
        bar = self._bar
        return bar.ts if bar is not None else self._start_now

    @property
    def now(self) -> int:
        """The clock's time (ms UTC); with a ``BarClock`` the current bar's close time, when
        what is decided now is known."""
        if self._bar_clock:
            bar = self._bar
            return bar.ts + self.timeframe_ms if bar is not None else self._start_now
        return self.clock.now()

    def start(self, now: int) -> None:
        """Start the strategy; ``now`` is the run's start (a BarClock's time before any bar)."""
        self._start_now = now
        self._call("on_start", self.strategy.on_start, self.ctx)

    def on_bar(self, bar: Bar, ind: tuple | None = None) -> None:
        """The hot path: mark, let resting orders work, ask the strategy, route its intents.

        ``ind`` is the declared indicators' row for this bar when the feed computed it ahead
        (a backtest); without it the step computes it from the bars it has seen."""
        if self._observe is not None:
            self._observe(bar)  # before the mark: the equity the previous bar left
        self._bar = bar
        self._last[bar.symbol] = bar.close
        self._bars[bar.symbol] = bar
        if self.indicators is not None:
            self.ctx.ind = ind if ind is not None else self.indicators.update(bar.symbol, bar)
        if self._resting:
            self.broker.on_bar(bar)
        try:
            intents = self._on_bar(self.ctx, bar)
        except (StrategyError, EngineFault, KeyboardInterrupt):
            raise
        except BaseException as exc:  # sys.exit() in a strategy fails the run, too
            raise self._strategy_error("on_bar", exc) from exc
        if intents is not None:
            self._submit_all(intents)

    def schedule_actions(self, actions: list[CorporateAction],
                         split_orders: Callable[[str, float], list[tuple[Order, float,
                                                                         float | None]]]
                         ) -> None:
        """Apply ``actions`` (splits, dividends) at the first bar time at or after each one's
        ``ts``, before anything else happens on that bar (adr/0025): a ``before_each_bar``
        hook, scheduled after the kernel's (borrow, funding), so it runs first;
        ``split_orders`` is the broker's adjustment of its resting orders
        (``SimBroker.split_orders``). A run without actions pays nothing."""
        if not actions:
            return
        self._actions = sorted(actions, key=lambda a: (a.ts, a.symbol, a.kind), reverse=True)
        self._split_orders = split_orders
        self.before_each_bar(self._apply_due_actions)

    def _apply_due_actions(self, bar: Bar) -> None:
        actions = self._actions
        while actions and actions[-1].ts <= bar.ts:
            self.apply_action(actions.pop(), bar.ts)

    def before_each_bar(self, hook: Callable[[Bar], None]) -> None:
        """Call ``hook(bar)`` on every bar before anything else the step does with it (a hook
        added later runs earlier): a short's borrow, funding (``engine/carry.py``), due
        corporate actions. The loop then hands every bar over (no ``wake_on`` skipping).
        Without a hook ``on_bar`` is the plain one: a run without them pays nothing."""
        inner = self.on_bar

        def on_bar(bar: Bar, ind: tuple | None = None) -> None:
            hook(bar)
            inner(bar, ind)

        self._hooked = True
        self.on_bar = on_bar  # type: ignore[method-assign]

    def apply_action(self, action: CorporateAction, ts: int) -> ActionEvent:
        """Apply one corporate action at bar time ``ts``: the books (``Book.apply_action``)
        and, for a split, the symbol's resting orders, each of which gets an event with its
        status and the reason ``SPLIT <ratio> qty <before> -> <after>[ limit <before> ->
        <after>]``."""
        event = self.book.apply_action(action, ts)
        if action.kind is ActionKind.SPLIT:
            assert action.ratio is not None
            for order, qty, limit in self._split_orders(action.symbol, action.ratio):
                reason = f"SPLIT {action.ratio!r} qty {qty!r} -> {order.qty!r}"
                if limit is not None:
                    reason += f" limit {limit!r} -> {order.limit_price!r}"
                order.reason = reason
                self.journal.event(order, order.status, reason, ts)
                if order.filled_units >= order.qty_units:  # its rest floored to nothing
                    self.broker.cancel(order, CancelReason.SPLIT)  # (a reverse split)
        return event

    def warm(self, bar: Bar) -> None:
        """A warm-up bar (live modes, before the first decision): the books mark it and the
        strategy sees it, but nothing it proposes is taken on: returned intents are dropped, and
        an order it submits comes back REJECTED (reason ``WARMUP``), neither journaled nor
        sent. A backtest of the same bars decides on them; strategies that warm up for
        ``warmup_bars`` (as the examples do) decide nothing there, so both agree.

        Orders already working keep working (none do before the first decision): a live run
        halted without a risk engine hands its bars here, and a flatten's closing order that
        rests until the next bar must still fill."""
        self._bar = bar
        self._last[bar.symbol] = bar.close
        self._bars[bar.symbol] = bar
        if self.indicators is not None:
            self.ctx.ind = self.indicators.update(bar.symbol, bar)
        if self._resting:
            self.broker.on_bar(bar)
        self._warming = True
        try:
            self._call("on_bar", self._on_bar, self.ctx, bar)
        finally:
            self._warming = False

    def poll(self) -> None:
        """Between bars (a live loop): let the broker report what the venue did meanwhile and
        resolve UNKNOWN orders; what it reports is stamped with the clock's time."""
        try:
            self.broker.poll(self.now)
        except (WorkbenchError, EngineFault, KeyboardInterrupt):
            raise  # a venue that stays down (VenueUnavailable) says so itself
        except Exception as exc:
            raise EngineFault(exc, "broker poll") from exc

    def stop(self) -> None:
        """Call on_stop, then hold the books to the journal's fills (``Book.check``)."""
        self._call("on_stop", self.strategy.on_stop, self.ctx)
        self.book.check(contents(self.journal).fills)

    # --- the strategy calls these through its Context ---------------------------------------
    def submit(self, intent: OrderIntent) -> Order:
        if not isinstance(intent, OrderIntent):
            raise self._strategy_error(
                "submit", TypeError(f"expected an OrderIntent, got {type(intent).__name__}")
            )
        if self._warming:
            now = self.now
            return Order(0, "", intent.symbol, intent.side, intent.type, intent.qty,
                         round(intent.qty * QTY_SCALE), intent.limit_price, now, self.bar_ts,
                         status=OrderStatus.REJECTED, reason="WARMUP", updated_ts=now)
        try:
            return self._submit(intent)
        except (StrategyError, EngineFault):
            raise  # a strategy hook called meanwhile raised, or an inner call already sorted it
        except Exception as exc:
            raise EngineFault(exc, f"submit of {intent!r}") from exc

    def _submit(self, intent: OrderIntent) -> Order:
        qty = intent.qty
        # the intent was checked when made; a strategy may have changed it since
        side = intent.side
        if (qty.__class__ is not float or not _MIN_QTY < qty <= MAX_QTY
                or (side is not _BUY and side is not _SELL) or intent.symbol.__class__ is not str
                or intent.type is not _MARKET or intent.limit_price is not None
                or intent.tag is not None or intent.reduce_only is not False):
            problem = intent.problem()
            if problem:
                raise self._strategy_error("submit", ValueError(
                    f"invalid order intent {intent!r}: {problem}"))
        self.order_seq += 1
        seq = self.order_seq
        now = self.now
        taken = self._cap_qty(intent)  # the size the broker takes it on at (``--tiny``)
        capped = f"{CAPPED} {qty!r} -> {taken!r}" if taken != qty else None
        units = round(taken * QTY_SCALE)  # the books' quantum (adr/0001)
        # the journal's immutable record (the order as taken on), then the live order from it
        record = _new(OrderRecord, (seq, f"{self.run_id}-{seq}", intent.symbol, intent.side,
                                    intent.type, units / QTY_SCALE, units, intent.limit_price,
                                    now, self.bar_ts, intent.expire_after_bars,
                                    intent.reduce_only, intent.tag))
        order = Order(*record, OrderStatus.NEW, capped, 0, 0, now)
        journal = self.journal
        journal.order(record)
        journal.event(order, OrderStatus.NEW, capped, now)
        self._open[seq] = order
        if self.risk is not None:
            block = self.risk.check(order)
            if block is not None:
                self.risk.record(order, block, now)
                self.order_status(order, OrderStatus.BLOCKED, block.reason_code)
                return order
        try:
            self.broker.submit(order)
        except OutcomeUnknown as unknown:  # sent, outcome not known: a state, not a fault
            self.order_status(order, _UNKNOWN, unknown.reason)
        return order

    def cancel(self, order: Order) -> bool:
        if order.order_seq not in self._open:
            return False
        try:
            return self.broker.cancel(order)
        except OutcomeUnknown as unknown:  # the cancel left; whether it took, the venue says
            self.order_status(order, _UNKNOWN, unknown.reason)
            return False
        except (StrategyError, EngineFault):
            raise
        except Exception as exc:
            raise EngineFault(exc, f"cancel of order {order.order_seq}") from exc

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return [o for o in self._open.values() if symbol is None or o.symbol == symbol]

    # --- the broker reports through these (OrderSink) ---------------------------------------
    def order_status(self, order: Order, status: OrderStatus, reason: str | None = None) -> None:
        now = self.now
        order.status = status
        order.reason = reason
        order.updated_ts = now
        self.journal.event(order, status, reason, now)
        if status is _SUBMITTED or status is _PARTIAL or status is _UNKNOWN:
            return  # still open
        self._open.pop(order.order_seq, None)
        if (status is OrderStatus.REJECTED or status is OrderStatus.BLOCKED) \
                and self._on_reject is not None:
            self._call("on_reject", self._on_reject, self.ctx, order)

    def order_fill(self, order: Order, units: int, price: float, fee: float,
                   trade_id: str | None = None, venue_ts: int | None = None,
                   fee_units: int = 0, costs: tuple[float, float, float] = NO_COSTS) -> None:
        """Apply an execution of ``units`` to the books (the only writer of cash, positions
        and lots), tell risk, journal it, move the order on, tell the strategy. ``fee_units``
        of them the venue kept as its commission (``Fill.fee_units``): the books receive the
        rest. ``costs``: its (spread, slippage, impact) costs, already in ``price``."""
        self.fill_seq += 1
        got = units - fee_units
        fill = _new(Fill, (self.fill_seq, order.order_seq, order.client_order_id, order.symbol,
                           order.side, got / QTY_SCALE, got, price, fee, self.now,
                           self.bar_ts, trade_id, venue_ts, fee_units, *costs))  # C speed
        trips = self.book.apply_fill(fill)
        if self.risk is not None:
            self.risk.on_fill(fill, trips)
        self.journal.fill(fill)
        order.filled_units += units
        done = order.filled_units >= order.qty_units
        self.order_status(order, OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED)
        if self._on_fill is not None:
            self._call("on_fill", self._on_fill, self.ctx, fill)

    # --- internals --------------------------------------------------------------------------
    def _submit_all(self, intents: Any) -> None:
        if intents.__class__ is not list:
            raise self._strategy_error(
                "on_bar", TypeError(f"on_bar returned {type(intents).__name__}; return a list "
                                    "of OrderIntent, or None"))
        for intent in intents:
            self.submit(intent)

    @property
    def needs_every_bar(self) -> bool:
        """A risk rule follows the equity bar by bar, or a hook runs before each bar
        (corporate actions, borrow, funding): no bar may be skipped."""
        return self._observe is not None or self._hooked

    def _wake(self, strategy: Strategy) -> str | None:
        wake = type(strategy).wake_on
        if wake is None:
            return None
        names = self.indicators.names if self.indicators is not None else []
        if wake not in names:
            raise StrategyError(
                f"{type(strategy).__name__}.wake_on names {wake!r}, which is not one of its "
                f"declared indicators ({', '.join(names) or 'none'})",
                fix="set wake_on to the name of an indicator returned by indicators(), or to "
                    "None")
        return str(wake)

    def _declared_indicators(self, strategy: Strategy) -> IndicatorSet | None:
        try:
            declared = strategy.indicators()
        except WorkbenchError:
            raise  # a ConfigError from a bad declaration (Sma(0)) says which and how to fix
        except BaseException as exc:
            raise self._strategy_error("indicators", exc) from exc
        if not declared:
            return None
        if not isinstance(declared, Mapping):
            raise StrategyError(
                f"strategy {type(strategy).__name__}.indicators() returned "
                f"{type(declared).__name__}, not a dict of name -> Indicator",
                fix="return a dict, e.g. {'fast': Sma(10)}")
        return IndicatorSet(declared, type(strategy).__name__)

    def _call(self, hook: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except (StrategyError, EngineFault, KeyboardInterrupt):
            raise
        except BaseException as exc:  # sys.exit() in a strategy fails the run, too
            raise self._strategy_error(hook, exc) from exc

    def _strategy_error(self, hook: str, exc: BaseException) -> StrategyError:
        name = type(self.strategy).__name__
        frames = traceback.extract_tb(exc.__traceback__)
        origin = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
        bar = self._bar
        at = f" at {bar.symbol} {ms_to_iso(bar.ts)}" if bar is not None else ""
        return StrategyError(
            f"strategy {name} raised {type(exc).__name__} in {hook}{at}: {exc}{origin}",
            fix="fix the strategy and run again; the run was marked failed and nothing else "
                "was written",
        )
