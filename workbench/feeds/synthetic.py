"""Deterministic synthetic 1-minute bars: a random walk with drifting regimes, stated as synthetic.

Uses only ``random.Random(seed).random()``, whose sequence Python keeps stable across versions,
so the same arguments give the same bars on every machine. For demos, tests and benchmarks; it
is not market data.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path

from workbench.model import ms_to_iso

MINUTE_MS = 60_000


def bars(start_ms: int, count: int, *, seed: int = 7, price: float = 42_000.0,
         tf_ms: int = MINUTE_MS) -> Iterator[tuple[int, float, float, float, float, float]]:
    """Yield ``count`` bars ``(ts, open, high, low, close, volume)``; prices on a 0.01 grid."""
    rng = random.Random(seed)
    gauss_spare: list[float] = []

    def gauss() -> float:  # Box-Muller from random() only
        if gauss_spare:
            return gauss_spare.pop()
        u1, u2 = rng.random() or 1e-12, rng.random()
        r = math.sqrt(-2.0 * math.log(u1))
        gauss_spare.append(r * math.sin(2 * math.pi * u2))
        return r * math.cos(2 * math.pi * u2)

    close = round(price, 2)
    drift, vol = 0.0, 0.0006
    for i in range(count):
        if i % 1440 == 0:  # a new regime each day: trend and volatility
            drift = (rng.random() - 0.5) * 0.00005
            vol = 0.0003 + rng.random() * 0.0007
        open_ = close
        close = round(max(1.0, open_ * math.exp(drift + vol * gauss())), 2)
        top, bottom = max(open_, close), min(open_, close)
        high = round(top + abs(gauss()) * vol * top * 0.5, 2)
        low = round(max(0.01, bottom - abs(gauss()) * vol * bottom * 0.5), 2)
        volume = round(0.5 + rng.random() * 20.0 * (1.0 + abs(gauss())), 4)
        yield start_ms + i * tf_ms, open_, high, low, close, volume


def write_csv(path: Path, start_ms: int, count: int, *, seed: int = 7, price: float = 42_000.0
              ) -> int:
    """Write bars as CSV (ts ISO-8601 UTC); return the number of rows."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("ts,open,high,low,close,volume\n")
        for ts, o, h, lo, c, v in bars(start_ms, count, seed=seed, price=price):
            fh.write(f"{ms_to_iso(ts)},{o:.2f},{h:.2f},{lo:.2f},{c:.2f},{v:.4f}\n")
    return count
