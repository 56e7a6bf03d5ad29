"""A strategy for the sweep tests, importable by the workers of a local cluster."""

from __future__ import annotations

import os
import threading
from typing import Any

from workbench.strategies.sma_cross import SmaCross


class FragileSma(SmaCross):
    """SmaCross that raises on its first decision when ``explode`` is set (or on the first
    bar from ``explode_from_ms`` on, when that is not 0), and ends its process (a worker lost)
    when ``die`` is."""

    explode: bool = False
    explode_from_ms: int = 0
    die: bool = False
    message: str = "boom: explode was set"

    def on_bar(self, ctx: Any, bar: Any) -> Any:
        if self.explode or 0 < self.explode_from_ms <= bar.ts:
            raise RuntimeError(self.message)
        if self.die:
            os._exit(3)
        return super().on_bar(ctx, bar)



class HeldSma(SmaCross):
    """SmaCross that, when ``hold`` is set, waits on its first decision until ``RELEASE`` is
    set (at most ``HOLD_S``): for the sweep tests with workers as threads of the test's
    process, to look at a point while it runs."""

    hold: bool = False

    def on_bar(self, ctx: Any, bar: Any) -> Any:
        if self.hold:
            RELEASE.wait(HOLD_S)
        return super().on_bar(ctx, bar)


RELEASE = threading.Event()
HOLD_S = 20.0
