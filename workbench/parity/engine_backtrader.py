"""Backtrader (``backtrader``) as a peer: our strategy inside a ``bt.Strategy``'s ``next``.

How our semantics map (read against backtrader 1.9.78.123's ``brokers/bbroker.py``):

* one backtrader data feed per symbol (``PandasData`` from our bars, in ``symbol_names``
  order); at each ``next`` (and ``prenext``, while a symbol has no bar yet) the step is handed
  the bars of every symbol that has a NEW bar at that time, in our loop order. A symbol with no
  bar at that time (a gap) keeps showing its last bar in backtrader; it is not handed again.
  With no indicators declared, backtrader's first ``next`` is on the first bar, so the step
  sees every bar; the adapter checks it handed each bar exactly once;
* ``fill_at: close`` is cheat-on-close (``set_coc(True)``): backtrader executes a market order
  in its next broker cycle at the signal bar's close, dated on that bar; ``next_open`` is its
  default: the order's symbol's next bar's open;
* half the spread and the slippage are one percentage, ``set_slippage_perc(p, slip_open=True,
  slip_limit=False, slip_match=True, slip_out=True)`` with ``p = (1 + spread/2)(1 + slippage)
  - 1``: a buy fills at ``ref * (1 + p)``, ours exactly. ``slip_out`` matters: without it
  backtrader caps the slipped price at the high (buy) or low (sell) of the bar it executes on,
  for cheat-on-close the bar AFTER the signal bar;
* the fee is ``setcommission(commission=fee_bps / 1e4)`` (stock-like percentage): backtrader
  charges ``|size| * price * rate`` on the executed (slipped) price on every fill, as ours;
* limit orders fill at their limit, or at the open when the bar opens through it, tried from
  the bar after they were placed, as ours; ``expire_after_bars`` is counted by our
  ``PeerBroker``, which withdraws the order (a backtrader cancel) before the next bar;
* sizes are fractional (``qty`` as a float; executions back to integer units), cash is
  ``portfolio.initial_cash``; backtrader's observers, writers and plotting are not used.

Differences found, and how they are handled:

* spread AND slippage both set: one percentage cannot be right for both sides; a sell then
  fills in backtrader at ``ref * (1 - p)``, ours at ``ref * (1 - spread/2)(1 - slippage)``, off
  by ``spread * slippage`` relative. Such a sell is reported at ours (``ref`` recovered from
  backtrader's price, fee on our price); with either one zero both sides are backtrader's own;
* a limit order that fills at the open: backtrader slips it too (``slip_open`` applies to
  market and limit orders alike, and ``slip_out`` lets the price pass the limit). With a price
  impact configured that fill is refused as ``Unsupported`` when it happens;
* gaps: ``BackBroker`` tries a resting order against its data's current bar on every broker
  cycle, also when that data has no bar at that time: a limit placed on a symbol's last bar
  before a gap would be tried again against the very bar it was placed on (and fill there).
  The adapter's broker (``BackBroker`` with ``_try_exec`` guarded) skips orders whose data has
  no bar at the cycle's time; a cheat-on-close market order still executes then, on its
  signal bar, as backtrader does;
* orders placed on the last bar: backtrader never executes them (no next broker cycle). Ours
  fills a market order at that close with ``fill_at: close``, so after the loop the adapter
  runs one last broker cycle for the cheat-on-close market orders only (their price and date
  are the signal bar's whatever comes next); limits placed on the last bar are left alone.
  With ``next_open`` neither side fills them;
* with ``fill_at: close`` backtrader executes a cycle later: our step learns of the fill before
  the next time's first bar, where ours knows at once. The strategy's ``on_fill`` runs then, and
  with several symbols the other symbols' bars of the signal time do not see the fill yet;
* spot: a sell beyond backtrader's position (less its resting sells) would open a short there;
  the adapter refuses it ``INSUFFICIENT_POSITION`` before backtrader sees it, as a venue would;
* funds: backtrader checks cash at the next broker cycle at the unslipped price and again at
  the fill price, and reserves nothing for resting limits (ours does): refusals may differ when
  cash is tight; they are reported as ``INSUFFICIENT_FUNDS``;
* backtrader executes every symbol's bar of a time before its strategy sees any: a strategy that
  cancels, on an earlier symbol's bar, an order backtrader has just filled on a later symbol's
  bar of the same time is refused as ``Unsupported`` when it happens;
* a cancel of an order placed on the same bar (still in BackBroker's ``submitted`` queue, which
  its ``cancel`` does not look in) takes it out of that queue, as ours cancels it at once;
* ``costs.min_notional``: backtrader has no minimum; ours is applied on our side, as our
  simulated broker applies it (at submit; a next-open market order at the next bar's open,
  rejected there): an order below it never reaches backtrader.
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np

from workbench.brokers.base import RejectReason
from workbench.config import Config
from workbench.feeds.history import LoopData
from workbench.model import QTY_SCALE, Order, OrderType, Side
from workbench.parity.peer import PeerStep, Unsupported
from workbench.strategy import Strategy

NAME = "backtrader"
PACKAGE = "backtrader"


def check(cfg: Config, data: LoopData) -> None:
    """Backtrader can run every config we can (what it cannot match is refused as it
    happens; see the module docstring)."""


def run(cfg: Config, strategy: Strategy, data: LoopData, run_id: str) -> PeerStep:
    """Our ``strategy`` in our step, driven by backtrader's loop over ``data``."""
    import backtrader as bt

    check(cfg, data)
    session = _Session(bt, cfg, strategy, data, run_id)
    cerebro = bt.Cerebro(stdstats=False, quicknotify=False)
    broker = _broker_class(bt)()
    cerebro.broker = broker
    broker.setcash(cfg.portfolio.initial_cash)
    broker.setcommission(commission=session.peer.costs.fee_bps / 1e4, stocklike=True,
                         percabs=True)
    broker.set_coc(session.coc)
    if session.perc:
        broker.set_slippage_perc(session.perc, slip_open=True, slip_limit=False,
                                 slip_match=True, slip_out=True)
    for k, name in enumerate(data.symbol_names):
        cerebro.adddata(bt.feeds.PandasData(dataname=_frame(data, session.rows[k]),
                                            openinterest=None), name=name)
    broker.feeds = list(cerebro.datas)
    cerebro.addstrategy(_strategy_class(bt), session=session)
    session.peer.start()
    cerebro.run(runonce=True, preload=True, maxcpus=1)
    session.finish()
    return session.peer


def version() -> str:
    import backtrader

    return str(backtrader.__version__)


class _Session:
    """The state between backtrader's callbacks and our step: which backtrader order is which
    of ours, and where each symbol's bars sit in our loop order."""

    def __init__(self, bt: Any, cfg: Config, strategy: Strategy, data: LoopData,
                 run_id: str) -> None:
        self.bt = bt
        self.peer = PeerStep(cfg, strategy, data, run_id, self.place, self.withdraw,
                             own_minimum=True)
        costs = self.peer.costs
        self.coc = costs.fill_at == "close"
        self.perc = costs.market_price(Side.BUY, 1.0) - 1.0  # half the spread and slippage
        self.fix_sells = costs.spread_bps > 0 and costs.slippage_bps > 0
        self.rows = [np.flatnonzero(data.symbol_index == k)
                     for k in range(len(data.symbol_names))]
        self.seen = [0] * len(self.rows)  # bars handed, per symbol
        self.handed = 0
        self.host: Any = None  # the backtrader strategy, once made
        self.ours: dict[int, tuple[Order, int]] = {}  # their ref -> (ours, creation loop index)
        self.theirs: dict[int, Any] = {}  # our order_seq -> their order
        self.refused: Unsupported | None = None  # raised once the strategy's callback is done

    # --- backtrader's loop -> our step ---------------------------------------------------------
    def on_time(self) -> None:
        """Hand the step each symbol's new bar at this time, in our loop order."""
        new = []
        for k, feed in enumerate(self.host.datas):
            n = len(feed)
            if n == self.seen[k]:
                continue  # no bar of this symbol at this time
            if n != self.seen[k] + 1:
                raise RuntimeError(f"backtrader skipped a bar of {feed._name}")
            self.seen[k] = n
            new.append(int(self.rows[k][n - 1]))
        new.sort()
        ts = self.peer.data.ts
        if new and ts[new[0]] != ts[new[-1]]:
            raise RuntimeError("backtrader delivered bars of different times together")
        for i in new:
            self.peer.bar(i)
            if self.refused is not None:
                raise self.refused
        self.handed += len(new)

    def notify(self, order: Any) -> None:
        """A backtrader order notification: executions to our fills, refusals to rejects."""
        entry = self.ours.get(order.ref)
        if entry is None:
            return
        bt = self.bt.Order
        status = order.status
        if status in (bt.Partial, bt.Completed):
            for bit in order.executed.iterpending():
                self._executed(entry, order, bit)
        if status in (bt.Completed, bt.Canceled, bt.Expired, bt.Margin, bt.Rejected):
            self._forget(entry[0], order.ref)
        if status in (bt.Margin, bt.Rejected):
            self.peer.broker.reject(entry[0], RejectReason.INSUFFICIENT_FUNDS)

    def finish(self) -> None:
        if self.handed != len(self.peer.data):
            raise RuntimeError(f"backtrader handed {self.handed} of {len(self.peer.data)} bars")
        self.peer.stop()
        if self.refused is not None:
            raise self.refused

    # --- our step's orders -> backtrader ------------------------------------------------------
    def place(self, order: Order) -> None:
        host = self.host
        feed = host.getdatabyname(order.symbol)
        if order.side is Side.SELL and order.qty_units > self._free_units(feed):
            self.peer.broker.reject(order, RejectReason.INSUFFICIENT_POSITION)
            return
        kwargs: dict[str, Any] = {"data": feed, "size": order.qty_units / QTY_SCALE,
                                  "exectype": self.bt.Order.Market}
        if order.type is OrderType.LIMIT:
            kwargs.update(exectype=self.bt.Order.Limit, price=order.limit_price)
        theirs = host.buy(**kwargs) if order.side is Side.BUY else host.sell(**kwargs)
        self.ours[theirs.ref] = (order, self.peer.broker.index)
        self.theirs[order.order_seq] = theirs

    def withdraw(self, order: Order) -> None:
        theirs = self.theirs.get(order.order_seq)
        if theirs is None or not theirs.alive():  # executed, not yet applied on our side;
            # raised after the strategy's callback (not as the strategy's error)
            self.refused = Unsupported(
                f"order #{order.order_seq} ({order.symbol}) was cancelled by the strategy after "
                "backtrader had executed it: backtrader executes every symbol's bar of a time "
                "before its strategy sees any of them")
            return
        broker = self.host.broker
        if theirs in broker.submitted:
            # placed on this very bar: BackBroker.cancel looks in its pending orders only, so
            # the order would stay alive and execute later, unreported (forgotten here)
            broker.submitted.remove(theirs)
            theirs.cancel()
        else:
            self.host.cancel(theirs)
        self._forget(order, theirs.ref)

    # --- helpers ------------------------------------------------------------------------------
    def _free_units(self, feed: Any) -> int:
        held = round(self.host.broker.getposition(feed).size * QTY_SCALE)
        resting = sum(round(abs(t.executed.remsize) * QTY_SCALE)
                      for t in self.theirs.values() if t.data is feed and t.issell())
        return held - resting

    def _forget(self, order: Order, ref: int) -> None:
        self.ours.pop(ref, None)
        self.theirs.pop(order.order_seq, None)

    def _executed(self, entry: tuple[Order, int], order: Any, bit: Any) -> None:
        ours, created = entry
        units = round(abs(bit.size) * QTY_SCALE)
        price, fee = float(bit.price), float(bit.closedcomm + bit.openedcomm)
        if ours.type is OrderType.LIMIT and self.perc and price != ours.limit_price:
            raise Unsupported(
                f"limit order #{ours.order_seq} ({ours.symbol}) filled at the open, and "
                f"backtrader slips that fill ({price} for an open of {order.data.open[0]}), "
                "where ours fills at the open: set costs.slippage_bps and spread_bps to 0 for "
                "limit-order strategies")
        if ours.type is OrderType.MARKET and ours.side is Side.SELL and self.fix_sells:
            costs = self.peer.costs  # ours from backtrader's reference price
            price = costs.market_price(Side.SELL, price / (1.0 - self.perc))
            fee = costs.fee(units / QTY_SCALE * price)
        self.peer.broker.executed(ours, units, price, fee, self._bar(ours, created, order))

    def _bar(self, ours: Order, created: int, order: Any) -> int:
        """The loop index of the bar ``order`` executed on."""
        if ours.type is OrderType.MARKET and self.coc:
            return created  # cheat-on-close: on the signal bar, whichever cycle executed it
        k = self.peer.data.symbol_names.index(ours.symbol)
        return int(self.rows[k][len(order.data) - 1])  # the bar of its data at this cycle


def _frame(data: LoopData, rows: np.ndarray) -> Any:
    import pandas as pd

    return pd.DataFrame(
        {"open": data.open[rows], "high": data.high[rows], "low": data.low[rows],
         "close": data.close[rows], "volume": data.volume[rows]},
        index=pd.DatetimeIndex(np.asarray(data.ts[rows], dtype="datetime64[ms]")))


def _broker_class(bt: Any) -> Any:
    class Broker(bt.brokers.BackBroker):
        """``BackBroker`` that tries an order only on a bar of its data at the cycle's time
        (never the last bar again across a gap; a cheat-on-close market order executes on its
        signal bar whatever the cycle), and can run one last cycle for the
        cheat-on-close market orders placed on the last bar."""

        feeds: list[Any] = []  # noqa: RUF012
        submitted: Any  # BackBroker's queue of orders not yet checked for cash
        closing = False
        now = 0.0

        def next(self) -> None:
            self.now = max((d.datetime[0] for d in self.feeds if len(d)), default=0.0)
            super().next()

        def _try_exec(self, order: Any) -> None:
            if self.closing:
                if order.exectype == bt.Order.Market:
                    super()._try_exec(order)
                return
            if order.data.datetime[0] < self.now and not (
                    self.p.coc and order.exectype == bt.Order.Market):
                return  # its data has no bar at this time (a cheat-on-close order executes
                # on the bar it was placed on)
            super()._try_exec(order)

        def last_cycle(self) -> list[Any]:
            """One more broker cycle for the orders backtrader executes without a next bar
            (cheat-on-close market orders); the notifications it made."""
            waiting: Any = self.submitted  # a limit placed on the last bar is not checked
            market = bt.Order.Market
            self.submitted = collections.deque(o for o in waiting if o.exectype == market)
            self.closing = True
            try:
                super().next()
            finally:
                self.closing = False
                self.submitted.extend(o for o in waiting if o.exectype != market)
            out = []
            while (note := self.get_notification()) is not None:
                out.append(note)
            return out

    return Broker


def _strategy_class(bt: Any) -> Any:
    class Host(bt.Strategy):
        params = (("session", None),)

        def __init__(self) -> None:
            self.session: _Session = self.p.session
            self.session.host = self

        def next(self) -> None:
            self.session.on_time()

        def prenext(self) -> None:  # a symbol has no bar yet: the others' bars still count
            self.session.on_time()

        def notify_order(self, order: Any) -> None:
            self.session.notify(order)

        def stop(self) -> None:
            if self.session.coc:
                for note in self.broker.last_cycle():
                    self.session.notify(note)

    return Host
