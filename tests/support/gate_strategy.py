"""A strategy that trades a little and can pause in the middle of its run until released.

For tests that need a backtest caught mid-loop (crash hygiene, a shared warehouse): at bar
``pause_at`` it writes ``<gate_dir>/paused`` (its pid) and waits for ``<gate_dir>/release``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from workbench import OrderIntent, Side, Strategy


class Gate(Strategy):
    gate_dir: str | None = None
    pause_at: int = 100
    qty: float = 0.01

    def on_start(self, ctx: Any) -> None:
        self.seen = 0

    def on_bar(self, ctx: Any, bar: Any) -> list[OrderIntent] | None:
        self.seen += 1
        if self.gate_dir and self.seen == self.pause_at:
            gate = Path(self.gate_dir)
            (gate / "paused").write_text(str(os.getpid()))
            while not (gate / "release").exists():
                time.sleep(0.02)
        if self.seen % 20 == 5:
            return [OrderIntent(bar.symbol, Side.BUY, self.qty)]
        held = ctx.position(bar.symbol)
        if self.seen % 20 == 15 and held > 0:
            return [OrderIntent(bar.symbol, Side.SELL, held)]
        return None
