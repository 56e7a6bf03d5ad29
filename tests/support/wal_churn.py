"""A strategy that orders on every bar, and the child process of the WalJournal kill -9 test.

``python wal_churn.py <journal_dir> <run_id> <bars>`` (with ``tests/support`` on ``PYTHONPATH``)
runs a Step with a ``WalJournal`` over ``bars`` bars; its broker prints each order's
client_order_id as the step submits it (the step journals the order first) and flushes stdout.
"""

from __future__ import annotations

import math
import sys

from step_harness import closes, make_step

from workbench.brokers.fills import CostModel
from workbench.brokers.sim import SimBroker
from workbench.engine.backtest import simulate
from workbench.model import Bar, Order, OrderIntent, Side
from workbench.strategy import Context, Strategy


class Churn(Strategy):
    """Buys 0.5 on even bars, sells what it holds on odd ones, and every third bar rests a bid
    far below the market for two bars (it expires): fills, partial books, cancels."""

    def on_start(self, ctx: Context) -> None:
        self.i = 0

    def on_bar(self, ctx: Context, bar: Bar) -> list[OrderIntent]:
        self.i += 1
        out = []
        held = ctx.position(bar.symbol)
        if held > 0 and self.i % 2:
            out.append(OrderIntent.market(bar.symbol, Side.SELL, held))
        else:
            out.append(OrderIntent.market(bar.symbol, Side.BUY, 0.5))
        if self.i % 3 == 0:
            out.append(OrderIntent.limit(bar.symbol, Side.BUY, 0.25, bar.close * 0.5,
                                         expire_after_bars=2, tag="deep"))
        return out


def prices(n: int) -> list[float]:
    """``n`` closes around 100 with awkward floats (not short decimals)."""
    return [100.0 + 10.0 * math.sin(i / 7.0) + i / 3.0 for i in range(n)]


COSTS = CostModel(fee_bps=10.0, slippage_bps=3.0)


class ReportingBroker(SimBroker):
    """SimBroker that prints each client_order_id it is handed (after the step journalled it)."""

    def submit(self, order: Order) -> None:
        sys.stdout.write(order.client_order_id + "\n")
        sys.stdout.flush()
        super().submit(order)


def main(directory: str, run_id: str, bars: int) -> None:
    from workbench.recovery.journal import WalJournal

    journal = WalJournal(directory)
    print("ready", flush=True)
    step = make_step(Churn(), cash=1e9, broker=ReportingBroker(COSTS), journal=journal,
                     run_id=run_id)
    simulate(step, closes(prices(bars)))
    journal.close()
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
