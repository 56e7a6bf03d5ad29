"""EveryN: a market-order strategy small enough to read at a glance, for tests that need
trades on the synthetic bars (buy on every n-th bar when flat, sell all on the next n-th)."""

from __future__ import annotations

from typing import Any

from workbench import OrderIntent, Side, Strategy


class EveryN(Strategy):
    """Buy on every n-th bar when flat, sell on the next n-th."""

    n: int = 50
    qty: float = 0.01

    def on_start(self, ctx: Any) -> None:
        self.seen = 0

    def on_bar(self, ctx: Any, bar: Any) -> list[OrderIntent] | None:
        self.seen += 1
        if self.seen % self.n:
            return None
        held = ctx.position(bar.symbol)
        return [OrderIntent(bar.symbol, Side.SELL, held) if held > 0
                else OrderIntent(bar.symbol, Side.BUY, self.qty)]
