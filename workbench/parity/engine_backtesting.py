"""backtesting.py (``backtesting``) as a peer: our strategy inside its ``Strategy.next``.

How our semantics map (docs/parity.md has the table):

* one symbol only: backtesting.py trades one instrument per run;
* ``fill_at: close`` is ``trade_on_close=True`` (a market order fills at its signal bar's
  close); ``next_open`` is its default, the next bar's open;
* sizes are whole units in backtesting.py (a size below 1 means a share of equity), so a
  unit is our quantum (1e-8) and prices are per unit (divided by 1e8), multiplied back on the
  way out;
* costs: one commission rate on every fill, on the unadjusted price, at entry and at exit.
  It is set to the fee plus the market orders' price impact (half the spread and the slippage),
  which moves the same cash as our fill price and fee (up to the product of spread and
  slippage on sells); the fill is reported to our books at the price we would have filled at
  and the fee on the unadjusted price. A limit order pays no price impact here, but would
  there: with a price impact configured, a limit order is refused as unsupported;
* backtesting.py has no minimum order size: ``costs.min_notional`` is applied on our side, as
  our simulated broker applies it (at submit; a next-open market order at the next bar's open,
  rejected there): an order below it never reaches backtesting.py;
* backtesting.py never hands its first bar to ``next``: the adapter hands it to our step in
  ``init``; orders placed on the last bar are not executed by backtesting.py (no next bar).
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from typing import Any

from workbench.config import Config
from workbench.feeds.history import LoopData
from workbench.model import QTY_SCALE, Order, OrderType, Side
from workbench.parity.peer import PeerStep, Unsupported
from workbench.strategy import Strategy

NAME = "backtesting"
PACKAGE = "backtesting"


def check(cfg: Config, data: LoopData) -> None:
    if len(data.symbol_names) != 1:
        raise Unsupported(f"backtesting.py trades one instrument per run; this config has "
                          f"{len(data.symbol_names)} symbols ({', '.join(data.symbol_names)})")


def run(cfg: Config, strategy: Strategy, data: LoopData, run_id: str) -> PeerStep:
    import numpy as np
    import pandas as pd
    from backtesting import Backtest
    from backtesting import Strategy as BtStrategy

    check(cfg, data)
    orders: dict[int, tuple[Order, Any]] = {}  # our order_seq -> (ours, theirs)
    host: list[Any] = []  # the backtesting.Strategy instance, once made

    def place(order: Order) -> None:
        if order.type is OrderType.LIMIT and impact:
            raise Unsupported(
                "backtesting.py charges one commission rate on every fill; with "
                f"costs.slippage_bps={cfg.costs.slippage_bps} / spread_bps="
                f"{cfg.costs.spread_bps} its limit fills would pay the market orders' price "
                "impact, which ours do not: set both to 0 for limit-order strategies, or "
                "compare with backtrader")
        bt = host[0]
        kwargs: dict[str, Any] = {"size": order.qty_units, "tag": order.order_seq}
        if order.limit_price is not None:
            kwargs["limit"] = order.limit_price / QTY_SCALE
        theirs = bt.buy(**kwargs) if order.side is Side.BUY else bt.sell(**kwargs)
        orders[order.order_seq] = (order, theirs)

    def withdraw(order: Order) -> None:
        _, theirs = orders.pop(order.order_seq)
        if theirs in host[0]._broker.orders:
            theirs.cancel()

    # a sell above the position would open a short in backtesting.py (hedging=False): it is
    # refused on our side, as our simulated broker refuses it
    peer = PeerStep(cfg, strategy, data, run_id, place, withdraw, own_minimum=True, spot=True)
    costs = peer.costs
    impact = costs.market_price(Side.BUY, 1.0) - 1.0  # half the spread and the slippage
    fee_rate = costs.fee_bps / 1e4
    broker_port = peer.broker

    def commission(size: float, price: float) -> float:
        return abs(size) * price * (fee_rate + impact)

    class Adapter(BtStrategy):
        def init(self) -> None:
            host.append(self)
            self.closed_seen = 0
            peer.start()
            peer.bar(0)  # backtesting.py starts next() at its second bar

        def next(self) -> None:
            i = len(self.data) - 1
            self.collect(i)
            peer.bar(i)

        def collect(self, i: int) -> None:
            """Our orders the peer no longer holds: filled (a new trade, or a closed one),
            else dropped (not enough cash)."""
            broker = self._broker
            gone = [(ours, theirs) for ours, theirs in orders.values()
                    if theirs not in broker.orders]
            if not gone:
                return
            closed = broker.closed_trades[self.closed_seen:]
            self.closed_seen = len(broker.closed_trades)
            entries = {t.tag: t for t in (*broker.trades, *closed)}  # a trade keeps its tag
            sells = iter(closed)
            for ours, _ in gone:
                del orders[ours.order_seq]
                if ours.side is Side.BUY:
                    trade = entries.get(ours.order_seq)
                    if trade is None:
                        broker_port.reject(ours, "INSUFFICIENT_FUNDS")
                        continue
                    self.report(ours, trade.size, trade.entry_price, trade.entry_bar)
                else:
                    units, price, bar = 0, 0.0, i
                    want = ours.qty_units - ours.filled_units
                    while units < want:
                        trade = next(sells, None)
                        if trade is None:
                            break
                        units += abs(trade.size)
                        price, bar = trade.exit_price, trade.exit_bar
                    if not units:
                        broker_port.reject(ours, "INSUFFICIENT_POSITION")
                        continue
                    self.report(ours, units, price, bar)

        def report(self, ours: Order, units: int, price: float, bar: int) -> None:
            ref = price * QTY_SCALE
            if ours.type is OrderType.MARKET:
                price = costs.market_price(ours.side, ref, ours.qty)
            else:
                price = ref
            fee = units / QTY_SCALE * ref * fee_rate
            broker_port.executed(ours, int(abs(units)), price, fee, int(bar))

    frame = pd.DataFrame(
        {"Open": data.open / QTY_SCALE, "High": data.high / QTY_SCALE,
         "Low": data.low / QTY_SCALE, "Close": data.close / QTY_SCALE,
         "Volume": data.volume},
        index=pd.DatetimeIndex(np.asarray(data.ts, dtype="datetime64[ms]")))
    test = Backtest(frame, Adapter, cash=cfg.portfolio.initial_cash, commission=commission,
                    trade_on_close=costs.fill_at == "close", hedging=False,
                    exclusive_orders=False, finalize_trades=False)
    with warnings.catch_warnings(), _progress_on_terminal_only():
        # positions open at the end stay open in both engines (ours marks them, as here)
        warnings.filterwarnings("ignore", message="Some trades remain open")
        test.run()
    if host:
        host[0].collect(len(data))
    peer.stop()
    return peer


@contextlib.contextmanager
def _progress_on_terminal_only() -> Iterator[None]:
    """backtesting.py's progress bar (tqdm) on a terminal only: in a log it is noise."""
    import backtesting.backtesting as engine

    shown = engine._tqdm
    if not sys.stderr.isatty():
        engine._tqdm = lambda seq, **_: seq
    try:
        yield
    finally:
        engine._tqdm = shown


def version() -> str:
    import backtesting

    return str(backtesting.__version__)
