"""One way to build and drive a ``Step`` in tests: the wiring a backtest uses (SimBroker,
fresh Book, MemoryJournal, a BarClock) with the knobs tests turn, and readers of what the
journal recorded (through the port: records, each order's latest state, events, fills).

    step = run(strategy, rows([(o, h, l, c), ...]), cash=1_000.0)
    [o.status for o in orders(step)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from workbench.book import Book
from workbench.brokers.base import Broker
from workbench.brokers.fills import CostModel
from workbench.brokers.sim import SimBroker
from workbench.engine.backtest import EquityRows, simulate
from workbench.engine.clock import Clock
from workbench.engine.journal import (
    Journal,
    JournalContents,
    MemoryJournal,
    OrderEvent,
    OrderState,
    contents,
    order_states,
)
from workbench.engine.step import Step
from workbench.feeds.history import LoopData, merge
from workbench.feeds.qc import BarSeries
from workbench.model import Fill
from workbench.risk.engine import RiskEngine
from workbench.strategy import Strategy

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
TF = 60_000
Row = tuple[float, float, float, float]


def make_step(strategy: Strategy, costs: CostModel | None = None, cash: float = 10_000.0,
              risk: RiskEngine | None = None, *, broker: Broker | None = None,
              journal: Journal | None = None, clock: Clock | None = None, run_id: str = "t",
              timeframe_ms: int = TF, seed: int = 0, book: Book | None = None) -> Step:
    """A step as a backtest wires it: ``SimBroker(costs)`` (or ``broker``), ``Book(cash)``
    (or ``book``), a fresh ``MemoryJournal`` (or ``journal``), the BarClock of
    ``timeframe_ms`` (or ``clock``), and ``risk`` (None: no pre-trade checks)."""
    return Step(strategy, broker if broker is not None else SimBroker(costs or CostModel()),
                book if book is not None else Book(cash),
                journal if journal is not None else MemoryJournal(), run_id=run_id,
                timeframe_ms=timeframe_ms, seed=seed, risk=risk, clock=clock)


def rows(ohlc: Sequence[Row], symbol: str = "X", *, t0: int = T0, tf: int = TF,
         volume: float = 1.0) -> LoopData:
    """Bars of one symbol from ``(open, high, low, close)`` rows, one every ``tf`` from ``t0``."""
    a = np.array(ohlc, dtype=float).reshape(-1, 4)
    ts = t0 + np.arange(len(a), dtype=np.int64) * tf
    return merge([BarSeries(symbol, tf, ts, a[:, 0], a[:, 1], a[:, 2], a[:, 3],
                            np.full(len(a), volume))])


def closes(values: Sequence[float], symbol: str = "X", *, t0: int = T0, tf: int = TF
           ) -> LoopData:
    """Flat bars (open = high = low = close) of one symbol."""
    return rows([(c, c, c, c) for c in values], symbol, t0=t0, tf=tf)


def run(strategy: Strategy, data: LoopData, *, start: int | None = T0, **kw: Any) -> Step:
    """Build a step (``make_step(**kw)``), start it at ``start`` (None: the first bar's time),
    hand it every bar, stop it."""
    return run_with_equity(strategy, data, start=start, **kw)[0]


def run_with_equity(strategy: Strategy, data: LoopData, *, start: int | None = T0,
                    **kw: Any) -> tuple[Step, EquityRows]:
    step = make_step(strategy, **kw)
    equity = simulate(step, data, start=start)
    return step, equity


# --- what the journal recorded, read through the port -------------------------------------------
def journal(step: Step) -> MemoryJournal:
    j = step.journal
    assert isinstance(j, MemoryJournal)
    return j


def records(step: Step) -> JournalContents:
    return contents(step.journal)


def orders(step: Step) -> list[OrderState]:
    """Each order the step journalled, with its latest status (events and fills folded)."""
    return order_states(records(step))


def events(step: Step, seq: int | None = None) -> list[OrderEvent]:
    """The order events, all or those of order ``seq``."""
    return [e for e in records(step).events if seq is None or e.order_seq == seq]


def fills(step: Step) -> list[Fill]:
    return records(step).fills


class Journalled(NamedTuple):
    """What a step journalled: each order's latest state, the events, the fills."""

    orders: list[OrderState]
    events: list[OrderEvent]
    fills: list[Fill]


def journalled(step: Step) -> Journalled:
    got = records(step)
    return Journalled(order_states(got), got.events, got.fills)
