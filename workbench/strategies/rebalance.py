"""Periodic rebalance to target weights across several symbols (long only, spot).

At the first bar of each period (``every_minutes``, aligned to UTC midnight for a day), the
strategy fixes each symbol's budget: its weight times the account's equity then (positions
marked at their last closes). On that symbol's next bar within the period it trades toward
``floor(budget / close / lot) * lot`` at market, when the trade is worth at least
``min_trade_pct`` percent of the budget. Budgets are fixed before any order of the period, so
a fill early in the period never changes what a later symbol aims for.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import Field

from workbench.errors import ConfigError
from workbench.model import Bar, OrderIntent, Side
from workbench.strategy import Context, Strategy


class Rebalance(Strategy):
    """Hold ``weights`` of equity in each symbol, rebalanced every ``every_minutes``."""

    weights: dict[str, Annotated[float, Field(ge=0, le=1)]] = {}  # noqa: RUF012
    every_minutes: Annotated[int, Field(ge=1)] = 1440
    min_trade_pct: Annotated[float, Field(ge=0)] = 1.0
    lot: Annotated[float, Field(gt=0)] = 0.00001

    @classmethod
    def check_params(cls, params: dict[str, Any], where: str = "strategy.params") -> None:
        weights = params["weights"]
        if not weights:
            raise ConfigError("no target weights", where=f"{where}.weights",
                              fix=f"set {where}.weights, e.g. {{BTCUSDT: 0.5, ETHUSDT: 0.4}}")
        total = math.fsum(weights.values())
        if total > 1.0:
            raise ConfigError(
                f"the weights add up to {total:g}, more than the whole account (spot, no "
                "borrowing)", where=f"{where}.weights",
                fix="make them add up to at most 1 (keep some cash for fees, e.g. 0.95)")

    def on_start(self, ctx: Context) -> None:
        unknown = sorted(set(self.weights) - set(ctx.symbols)) if ctx.symbols else []
        if unknown:
            raise ConfigError(
                f"weights name {', '.join(unknown)}, which this run does not trade (its "
                f"symbols: {', '.join(ctx.symbols)}): that share would sit in cash",
                where="strategy.params.weights",
                fix="fix the symbol's name, or add it to data.symbols")
        self._period: int | None = None
        self._budget: dict[str, float] = {}

    def on_bar(self, ctx: Context, bar: Bar) -> list[OrderIntent] | None:
        period = bar.ts // (self.every_minutes * 60_000)
        if period != self._period:
            self._period = period
            equity = ctx.equity
            self._budget = {s: w * equity for s, w in self.weights.items()}
        budget = self._budget.pop(bar.symbol, None)
        if budget is None:
            return None
        target = math.floor(budget / bar.close / self.lot) * self.lot
        held = ctx.position(bar.symbol)
        delta = target - held
        if abs(delta) * bar.close < budget * self.min_trade_pct / 100 or abs(delta) < self.lot:
            return None
        side = Side.BUY if delta > 0 else Side.SELL
        return [OrderIntent(bar.symbol, side, abs(delta) if side is Side.BUY
                            else min(abs(delta), held), tag="rebalance")]
