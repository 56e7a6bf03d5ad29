"""What every peer adapter shares: our step behind the peer's loop, and the broker port over
the peer's broker.

An adapter drives a ``PeerStep``: at each of the peer's bars it calls ``bar(i)`` (``i`` is the
bar's index in our loop order, so the strategy sees the very ``Bar`` our backtest hands it),
having first passed the peer's executions since the last bar to ``PeerBroker.executed``. Orders
the strategy sends reach the adapter's ``place`` and ``withdraw``; nothing else is peer-specific.

Time. An execution carries the loop index of the bar it executed on. One on an earlier bar (a
market order filled at its signal bar's close, which the peers report a bar later) is applied
before the next bar, when our step still stands on that bar, so the fill has the time and
``bar_ts`` our backtest gives it. One on the bar being handed over (a resting limit crossed, a
market order at the open) is applied in ``on_bar``, before the strategy sees the bar, as our
simulated broker does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.book import Book
from workbench.brokers.base import CancelReason, OrderSink, RejectReason
from workbench.brokers.fills import CostModel
from workbench.config import Config, timeframe_ms
from workbench.engine.clock import BarClock
from workbench.engine.journal import MemoryJournal
from workbench.engine.kernel import cost_model, risk_engine, wiring
from workbench.engine.step import Step
from workbench.feeds.history import LoopData
from workbench.model import Bar, Mode, Order, OrderIntent, OrderStatus, OrderType, Side
from workbench.strategy import Strategy


class Unsupported(Exception):
    """The peer cannot express this config's semantics; the message says what and why."""


def check_costs(cfg: Any) -> None:
    """Refuse cost settings no peer models, and short selling (Unsupported naming them)."""
    c = cfg.costs
    used = [name for name, on in (("costs.fee_per_unit", c.fee_per_unit),
                                  ("costs.min_fee", c.min_fee), ("costs.impact_k", c.impact_k),
                                  ("costs.impact_tiers", c.impact_tiers)) if on]
    if c.enabled and used:
        raise Unsupported(
            f"{', '.join(used)}: the peers' commission and slippage models have no per-unit "
            "fee, minimum fee or market impact; compare with them at their defaults "
            "(--set costs.impact_k=0 ...)")
    if c.enabled and c.funding_bps:
        raise Unsupported(
            "costs.funding_bps: the peers pay no funding; compare with them without it "
            "(--set costs.funding_bps=0)")
    if cfg.portfolio.allow_short:
        raise Unsupported(
            "portfolio.allow_short: the peers are compared as spot brokers (a sell beyond the "
            "position is refused on our side), so a short-selling run has nothing to compare "
            "with; run parity with --set portfolio.allow_short=false")


@dataclass(frozen=True)
class Execution:
    order: Order
    units: int
    price: float
    fee: float
    bar: int  # loop index of the bar it executed on


class PeerBroker:
    """The Broker port over a peer's broker: ``place``/``withdraw`` are the adapter's.

    ``minimum``: the cost model whose ``min_notional`` this side applies at submit, as our
    simulated broker does (an order below it is REJECTED ``MIN_NOTIONAL`` and never reaches the
    peer), for peers that have no such rule of their own. ``spot``: a sell above the position
    not already offered by resting sells is REJECTED ``INSUFFICIENT_POSITION`` here, as our
    simulated broker rejects it at submit, for peers that would open a short with it."""

    def __init__(self, place: Callable[[Order], None], withdraw: Callable[[Order], None],
                 minimum: CostModel | None = None, spot: bool = False) -> None:
        self.resting: dict[str, list[Order]] = {}
        self._place, self._withdraw = place, withdraw
        self._queue: list[Execution] = []
        self._sink: OrderSink | None = None
        self._book: Book | None = None
        self._minimum = minimum if minimum is not None and minimum.min_notional > 0 else None
        self._spot = spot
        self.index = -1  # loop index of the bar being handed to the step
        # the open of a symbol's next bar after the one being handed (None: none), set by
        # PeerStep: a next-open market order meets the minimum at that price, as ours does
        self.next_open: Callable[[str], float | None] = lambda symbol: None
        self._short: set[int] = set()  # next-open orders below the minimum: never sent

    def bind(self, sink: OrderSink, book: Book) -> None:
        self._sink, self._book = sink, book

    def cap_qty(self, intent: OrderIntent) -> float:
        """Every intent is taken whole, as by our simulated broker."""
        return intent.qty

    def submit(self, order: Order) -> None:
        assert self._sink is not None and self._book is not None
        costs = self._minimum
        short = False
        if costs is not None:
            if order.limit_price is None and costs.fill_at != "close":
                # ours applies the minimum at the fill, at the next bar's open (slipped), and
                # rejects the order there: it is never sent, and rejected on that bar
                at = self.next_open(order.symbol)
                short = at is not None and costs.below_minimum(
                    order.qty_units, costs.market_price(order.side, at, order.qty))
            else:
                price = (order.limit_price if order.limit_price is not None else
                         costs.market_price(order.side, self._book.last[order.symbol],
                                            order.qty, self._book.bars.get(order.symbol)))
                if costs.below_minimum(order.qty_units, price):
                    self._sink.order_status(order, OrderStatus.REJECTED,
                                            RejectReason.MIN_NOTIONAL)
                    return
        if self._spot and order.side is Side.SELL:
            offered = sum(o.qty_units - o.filled_units for o in self.resting.get(order.symbol, ())
                          if o.side is Side.SELL)
            if order.qty_units > self._book.units.get(order.symbol, 0) - offered:
                self._sink.order_status(order, OrderStatus.REJECTED,
                                        RejectReason.INSUFFICIENT_POSITION)
                return
        self._sink.order_status(order, OrderStatus.SUBMITTED)
        self.resting.setdefault(order.symbol, []).append(order)
        if short:
            self._short.add(order.order_seq)
            return
        self._place(order)

    def cancel(self, order: Order, reason: str = CancelReason.USER) -> bool:
        if not self._unrest(order):
            return False
        if order.order_seq in self._short:
            self._short.discard(order.order_seq)  # never sent
        else:
            self._withdraw(order)
        assert self._sink is not None
        self._sink.order_status(order, OrderStatus.CANCELED, reason)
        return True

    def reject(self, order: Order, reason: str) -> None:
        """The peer refused or dropped ``order`` (funds, size)."""
        if self._unrest(order):
            assert self._sink is not None
            self._sink.order_status(order, OrderStatus.REJECTED, reason)

    def executed(self, order: Order, units: int, price: float, fee: float, bar: int) -> None:
        """The peer executed ``units`` of ``order`` on the bar at loop index ``bar``."""
        self._queue.append(Execution(order, units, price, fee, bar))

    def settle(self, before: int) -> None:
        """Apply the executions on bars before loop index ``before``."""
        self._apply(lambda e: e.bar < before)

    def on_bar(self, bar: Bar) -> None:
        index = self.index
        touched = self._apply(lambda e: e.bar == index and e.order.symbol == bar.symbol)
        for order in list(self.resting.get(bar.symbol, ())):
            if order.order_seq in self._short and order.bar_ts < bar.ts:
                self._short.discard(order.order_seq)
                self._unrest(order)
                assert self._sink is not None
                self._sink.order_status(order, OrderStatus.REJECTED, RejectReason.MIN_NOTIONAL)
                continue
            if (order.type is OrderType.LIMIT and order.bar_ts < bar.ts
                    and order.order_seq not in touched):
                order.bars_seen += 1
                if order.expire_after_bars and order.bars_seen >= order.expire_after_bars:
                    self.cancel(order, CancelReason.EXPIRED)

    def poll(self, now: int) -> None:
        """Nothing happens between bars in a peer's backtest."""

    def _apply(self, due: Callable[[Execution], bool]) -> set[int]:
        sink = self._sink
        assert sink is not None
        now = [e for e in self._queue if due(e)]
        if not now:
            return set()
        self._queue = [e for e in self._queue if not due(e)]
        for e in now:
            order = e.order
            if order.filled_units + e.units >= order.qty_units:
                self._unrest(order)
            sink.order_fill(order, e.units, e.price, e.fee)
        return {e.order.order_seq for e in now}

    def _unrest(self, order: Order) -> bool:
        resting = self.resting.get(order.symbol)
        if not resting or order not in resting:
            return False
        resting.remove(order)
        if not resting:
            del self.resting[order.symbol]
        return True


class PeerStep:
    """Our step for ``strategy`` under ``cfg`` (books, risk rails, costs as a backtest wires
    them) with a ``PeerBroker`` instead of the simulated one; ``bar(i)`` hands it bar i.
    ``own_minimum``: the peer has no minimum notional, so ours is applied on this side;
    ``spot``: the peer would open a short with a sell above the position, so ours refuses it
    on this side (``PeerBroker``)."""

    def __init__(self, cfg: Config, strategy: Strategy, data: LoopData, run_id: str,
                 place: Callable[[Order], None], withdraw: Callable[[Order], None], *,
                 own_minimum: bool = False, spot: bool = False) -> None:
        tf_ms = timeframe_ms(cfg.data.timeframe)
        self.costs = cost_model(cfg)
        self.broker = PeerBroker(place, withdraw, self.costs if own_minimum else None, spot)
        self.step = Step(strategy, self.broker, Book(cfg.portfolio.initial_cash),
                         MemoryJournal(), run_id=run_id, timeframe_ms=tf_ms, seed=cfg.run.seed,
                         risk=risk_engine(cfg, self.costs, wiring(Mode.BACKTEST), None),
                         clock=BarClock(tf_ms), symbols=tuple(cfg.data.symbols))
        self.data = data
        self._symbols = data.symbol_names
        self._symbol_rows = [np.flatnonzero(data.symbol_index == k)
                             for k in range(len(data.symbol_names))]
        self.broker.next_open = self._next_open
        self._rows = self._indicator_rows()
        self.started = False

    def start(self) -> None:
        self.step.start(int(self.data.ts[0]) if len(self.data) else 0)
        self.started = True

    def bar(self, i: int) -> None:
        """Hand loop bar ``i`` to the step (executions on earlier bars applied first)."""
        d = self.data
        self.broker.settle(i)
        self.broker.index = i
        bar = Bar(self._symbols[int(d.symbol_index[i])], int(d.ts[i]), float(d.open[i]),
                  float(d.high[i]), float(d.low[i]), float(d.close[i]), float(d.volume[i]))
        self.step.on_bar(bar, self._row(i))

    def stop(self) -> None:
        self.broker.settle(len(self.data))
        self.step.stop()

    def _next_open(self, symbol: str) -> float | None:
        rows = self._symbol_rows[self._symbols.index(symbol)]
        at = int(np.searchsorted(rows, self.broker.index, side="right"))
        return float(self.data.open[rows[at]]) if at < len(rows) else None

    def _indicator_rows(self) -> list[np.ndarray] | None:
        from workbench.engine.backtest import declared_series

        declared = self.step.indicators
        return declared_series(declared, self.data) if declared else None

    def _row(self, i: int) -> Any:
        if self._rows is None:
            return None
        declared = self.step.indicators
        assert declared is not None
        return declared.row(*(float(column[i]) for column in self._rows))
