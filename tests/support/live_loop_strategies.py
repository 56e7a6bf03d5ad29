"""Strategies for the live-loop tests (``tests/live/test_live_loop*.py``): they trade on a bar
count, so a test knows when orders come whatever the prices (``venue_bars.write_bars`` rises
by one every minute, and an SMA cross never comes)."""

from __future__ import annotations

from typing import Any, ClassVar

from workbench import OrderIntent, Side, Strategy
from workbench.model import Bar, Order, OrderStatus, OrderType


class Ticker(Strategy):
    """Buys ``qty`` on bar 1 of every ``every`` (counting warm-up bars) when flat, sells all
    ``hold`` bars later."""

    every: int = 6
    hold: int = 3
    qty: float = 0.01

    def on_start(self, ctx: Any) -> None:
        self.seen = 0

    def on_bar(self, ctx: Any, bar: Bar) -> list[OrderIntent] | None:
        self.seen += 1
        phase = self.seen % self.every
        held = ctx.position(bar.symbol)
        if phase == 1 and held == 0:
            return [OrderIntent(bar.symbol, Side.BUY, self.qty)]
        if phase == (1 + self.hold) % self.every and held > 0:
            return [OrderIntent(bar.symbol, Side.SELL, held)]
        return None


class EagerSubmitter(Strategy):
    """Submits through ``ctx.submit`` on every bar, warm-up included (buy when flat, sell when
    long), and keeps what each submit returned; declares ``warm`` warm-up bars."""

    warm: int = 0
    qty: float = 0.01

    @property
    def warmup_bars(self) -> int:
        return self.warm

    def on_start(self, ctx: Any) -> None:
        self.returned: list[Order] = []

    def on_bar(self, ctx: Any, bar: Bar) -> list[OrderIntent] | None:
        held = ctx.position(bar.symbol)
        side = Side.SELL if held > 0 else Side.BUY
        self.returned.append(ctx.submit(OrderIntent(bar.symbol, side, held or self.qty)))
        return None

    @property
    def warmup_rejects(self) -> int:
        return sum(1 for o in self.returned
                   if o.status is OrderStatus.REJECTED and o.reason == "WARMUP")


class Drifting(Strategy):
    """Not deterministic: trades on a counter kept on the class (outside the instance and its
    seed), so the instance a restart builds decides differently than the one before it."""

    calls: ClassVar[int] = 0
    qty: float = 0.01

    def on_bar(self, ctx: Any, bar: Bar) -> list[OrderIntent] | None:
        Drifting.calls += 1
        if Drifting.calls % 7:
            return None
        held = ctx.position(bar.symbol)
        return [OrderIntent(bar.symbol, Side.SELL if held > 0 else Side.BUY, held or self.qty)]


class RestingBuyer(Strategy):
    """Buys ``qty`` once, on bar ``at`` (counting warm-up bars), with a LIMIT ``above`` the
    close (it crosses, and with the venue's ``participation`` it fills a part per bar); sells
    the whole position with a LIMIT ``below`` the close on bar ``sell_at`` when set; on bar
    ``cancel_at``, cancels what is open."""

    at: int = 7
    qty: float = 0.01
    above: float = 1.01
    sell_at: int = 0
    below: float = 0.99
    cancel_at: int = 0

    def on_start(self, ctx: Any) -> None:
        self.seen = 0

    def on_bar(self, ctx: Any, bar: Bar) -> list[OrderIntent] | None:
        self.seen += 1
        if self.seen == self.at:
            return [OrderIntent(bar.symbol, Side.BUY, self.qty, type=OrderType.LIMIT,
                                limit_price=round(bar.close * self.above, 2))]
        if self.cancel_at and self.seen == self.cancel_at:
            for order in ctx.open_orders(bar.symbol):
                ctx.cancel(order)
        held = ctx.position(bar.symbol)
        if self.sell_at and self.seen == self.sell_at and held > 0:
            return [OrderIntent(bar.symbol, Side.SELL, held, type=OrderType.LIMIT,
                                limit_price=round(bar.close * self.below, 2))]
        return None
