"""The Clock port: where the step takes "now" from (ms since the epoch, UTC).

A backtest's time is the bar's: ``BarClock`` says the current bar's close time, the moment what
is decided on that bar is known (before the first bar, the run's start). A live clock (the
venue's server time) lets an acknowledgement or a fill that arrives between bars carry its own
time; the step asks the clock whenever it stamps an order, an event or a fill.

The backtest never reads the wall clock, so nothing here does.
"""

from __future__ import annotations

from typing import Protocol

from workbench.model import Bar


class Clock(Protocol):
    def now(self) -> int:
        """The current time in ms UTC; never goes backwards within a run."""
        ...


class BarSource(Protocol):
    """What a ``BarClock`` follows: the step's current bar and the run's start time."""

    @property
    def bar(self) -> Bar | None: ...

    @property
    def start_ts(self) -> int: ...


class BarClock:
    """Backtest time: the close time of the bar being processed (``ts + timeframe``).

    The step it follows (``follow``) already remembers the current bar, so the clock costs the
    loop nothing: nothing is stored per bar, and ``Step.now`` computes the same value inline.
    """

    def __init__(self, timeframe_ms: int) -> None:
        self.timeframe_ms = timeframe_ms
        self._source: BarSource | None = None

    def follow(self, source: BarSource) -> None:
        self._source = source

    def now(self) -> int:
        source = self._source
        if source is None:
            return 0
        bar = source.bar
        return bar.ts + self.timeframe_ms if bar is not None else source.start_ts


class FixedClock:
    """A clock that says what it is told (tests; a recorded venue time in replays)."""

    def __init__(self, now_ms: int = 0) -> None:
        self.now_ms = now_ms

    def now(self) -> int:
        return self.now_ms
