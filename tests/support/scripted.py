"""Scripted: places the orders of a plan at given bars, for tests that need exact trades
(corporate actions: holding through a split, a resting limit across one)."""

from __future__ import annotations

from typing import Any

from workbench import OrderIntent, Side, Strategy


class Scripted(Strategy):
    """``plan``: ``[bar index (from 0), side, qty, limit price or None]`` per order."""

    plan: list[list[Any]] = []  # noqa: RUF012 (a parameter: validated per instance)

    def on_start(self, ctx: Any) -> None:
        self.seen = -1

    def on_bar(self, ctx: Any, bar: Any) -> list[OrderIntent] | None:
        self.seen += 1
        return [OrderIntent.limit(bar.symbol, Side(side), qty, limit) if limit is not None
                else OrderIntent(bar.symbol, Side(side), qty)
                for at, side, qty, limit in self.plan if at == self.seen] or None
