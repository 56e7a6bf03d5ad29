"""Execution settings of the simulated venue (sim and paper): latency and a participation cap.

``Latency``: how long an order takes to reach the venue (``submit_ms``), how long the venue
takes from accepting it to executing it (``fill_ms``, a range the jitter is drawn from), and
how long a cancel takes to reach it (``cancel_ms``). The profiles (``PROFILES``): INSTANT (all
zero: the fill model as it always was), FAST, NORMAL, SLOW.

The jitter is drawn from a counter-based generator keyed by the run's seed and the order's
sequence number (splitmix64), not from a stream: the draw of an order does not depend on how
many were drawn before it, so a run, its rerun and a restarted paper run draw the same delays.

``Execution``: the latency, the participation cap (at most ``participation_pct`` % of a bar's
volume fills per bar and symbol) and what happens to the rest of a capped order (``keep``
working, or ``cancel``). ``plain`` says the venue is today's instant, uncapped one: the
simulated broker then takes its original path and does no extra work. See
docs/architecture.md ("Latency and participation") and adr/0018.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from workbench.model import QTY_SCALE

_MASK = (1 << 64) - 1


@dataclass(frozen=True)
class Latency:
    """Delays in ms; the fill delay is drawn uniformly from ``fill_lo_ms..fill_hi_ms``."""

    submit_ms: int = 0
    fill_lo_ms: int = 0
    fill_hi_ms: int = 0
    cancel_ms: int = 0

    @property
    def instant(self) -> bool:
        return not (self.submit_ms or self.fill_hi_ms or self.cancel_ms)

    def fill_delay(self, seed: int, order_seq: int) -> int:
        """The fill delay of order ``order_seq`` in a run seeded ``seed`` (ms)."""
        span = self.fill_hi_ms - self.fill_lo_ms
        if span <= 0:
            return self.fill_lo_ms
        return self.fill_lo_ms + splitmix64((seed << 32) ^ order_seq) % (span + 1)


PROFILES: dict[str, Latency] = {
    "INSTANT": Latency(),
    "FAST": Latency(10, 50, 100, 20),
    "NORMAL": Latency(50, 100, 200, 50),
    "SLOW": Latency(100, 500, 1000, 100),
}
"""The named latency profiles (``execution.latency``)."""


def splitmix64(x: int) -> int:
    """One output of splitmix64 for counter ``x``: a well-mixed 64-bit integer."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


@dataclass(frozen=True)
class Execution:
    """How the simulated venue executes: latency, participation cap, remainder policy.

    ``seed`` keys the fill jitter; ``timeframe_ms`` is the bars' length (a bar ``ts`` spans
    ``[ts, ts + timeframe_ms)``).
    """

    latency: Latency = Latency()
    participation_pct: float | None = None
    cancel_remainder: bool = False
    seed: int = 0
    timeframe_ms: int = 60_000

    @property
    def plain(self) -> bool:
        """Instant and uncapped: the fill model exactly as it was before these settings."""
        return self.latency.instant and self.participation_pct is None

    def budget_units(self, volume: float) -> int | None:
        """The most a bar of ``volume`` lets fill, in whole units of 1e-8 (None: no cap); the
        float residue of the product (a millionth of a unit) is not taken for a shortfall."""
        pct = self.participation_pct
        if pct is None:
            return None
        return max(0, math.floor(volume * pct / 100.0 * QTY_SCALE + 1e-6))
