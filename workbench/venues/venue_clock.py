"""The fake exchange's clock: venue time in epoch milliseconds, possibly accelerated.

``AcceleratedClock`` runs ``speed`` times faster than the process's monotonic clock from a
chosen start (``speed=600``: ten venue minutes per wall second). ``ManualClock`` moves only
when told, so tests step the venue without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class VenueClock(Protocol):
    """What the fake exchange asks of a clock."""

    @property
    def speed(self) -> float:
        """Venue milliseconds per wall millisecond (1 for a real-time or manual clock)."""
        ...

    def now_ms(self) -> int:
        """Venue time, epoch milliseconds UTC."""
        ...


class AcceleratedClock:
    """Venue time = ``start_ms`` + (wall time since creation) x ``speed``."""

    def __init__(self, start_ms: int, speed: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be above 0, got {speed!r}")
        self._start_ms = int(start_ms)
        self._speed = float(speed)
        self._monotonic = monotonic
        self._t0 = monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now_ms(self) -> int:
        return self._start_ms + int((self._monotonic() - self._t0) * 1000.0 * self._speed)


class ManualClock:
    """A clock that moves only by ``set`` and ``advance`` (thread-safe)."""

    speed = 1.0

    def __init__(self, now_ms: int) -> None:
        self._now = int(now_ms)
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._now

    def set(self, now_ms: int) -> None:
        with self._lock:
            self._now = int(now_ms)

    def advance(self, ms: int) -> int:
        """Move forward by ``ms`` milliseconds; returns the new time."""
        with self._lock:
            self._now += int(ms)
            return self._now
