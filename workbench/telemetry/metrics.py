"""Metrics: for now, a stopwatch that records how long each stage of a job took."""

from __future__ import annotations

import time


class Stopwatch:
    """``lap(name)`` records the seconds since the previous lap under ``name``."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> float:
        now = time.perf_counter()
        took = now - self._last
        self.laps[name] = round(self.laps.get(name, 0.0) + took, 4)
        self._last = now
        return took
