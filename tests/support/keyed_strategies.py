"""Strategies that take credentials as parameters, for the secret-redaction tests.

``tests/support`` is on pytest's path; a CLI subprocess gets it through ``PYTHONPATH``, and the
class path is ``keyed_strategies:KeyedSma``.
"""

from __future__ import annotations

from workbench.model import Bar, OrderIntent
from workbench.strategies.sma_cross import SmaCross
from workbench.strategy import Context


class KeyedSma(SmaCross):
    """SmaCross that also takes (and ignores) an API key and a password."""

    api_key: str = ""
    password: str = ""


class IntKeySma(SmaCross):
    """SmaCross whose ``api_key`` must be an integer (a badly typed secret is refused)."""

    api_key: int = 0


class LeakySma(KeyedSma):
    """Raises on the 30th bar with a message that quotes its API key (as careless code does)."""

    def on_bar(self, ctx: Context, bar: Bar) -> list[OrderIntent] | None:
        self.seen = getattr(self, "seen", 0) + 1
        if self.seen == 30:
            raise RuntimeError(f"venue refused key {self.api_key} / {self.password}")
        return super().on_bar(ctx, bar)
