"""The Clock port: a BarClock is the current bar's close time; another clock stamps the step."""

from __future__ import annotations

from typing import Any

from step_harness import T0, TF, make_step

from workbench.engine.clock import BarClock, FixedClock
from workbench.engine.journal import MemoryJournal
from workbench.model import Bar, OrderIntent, Side
from workbench.strategy import Strategy


class BuyOnce(Strategy):
    def on_bar(self, ctx: Any, bar: Bar) -> Any:
        self.seen = ctx.now
        return [OrderIntent(bar.symbol, Side.BUY, 1.0)] if bar.ts == T0 else None


def bar(ts: int, close: float = 10.0) -> Bar:
    return Bar("X", ts, close, close, close, close, 1.0)


def test_bar_clock_follows_the_step_start_then_each_bar_close_time() -> None:
    clock = BarClock(TF)
    assert clock.now() == 0  # following nothing yet
    step = make_step(BuyOnce(), cash=100.0, clock=clock)
    step.start(T0 - 5)
    assert clock.now() == step.now == T0 - 5
    step.on_bar(bar(T0))
    assert clock.now() == step.now == T0 + TF
    step.on_bar(bar(T0 + TF))
    assert clock.now() == step.now == T0 + 2 * TF


def test_step_default_clock_is_a_bar_clock_of_its_timeframe() -> None:
    step = make_step(BuyOnce(), cash=100.0)
    assert isinstance(step.clock, BarClock) and step.clock.timeframe_ms == TF


def test_step_with_another_clock_stamps_orders_events_fills_with_its_time_bar_ts_from_bar(
        ) -> None:
    clock = FixedClock(T0 + 12_345)
    journal = MemoryJournal()
    strategy = BuyOnce()
    step = make_step(strategy, cash=100.0, journal=journal, clock=clock)
    step.start(T0)
    step.on_bar(bar(T0))
    assert strategy.seen == T0 + 12_345
    (fill,) = journal.fills
    assert (fill.ts, fill.bar_ts) == (T0 + 12_345, T0)
    assert {ev[2] for ev in journal.events} == {T0 + 12_345}
