"""The deterministic backtest loop: stored bars handed to the shared step, bar by bar.

``simulate`` is the loop (the backtest's feed, chosen by ``engine/kernel.py``); the whole job
around it (config -> bars -> QC -> loop -> warehouse -> run directory) is ``engine/run.py``.
The backtest never reads the wall clock for decisions, so the same config and data give
byte-identical trades, orders, fills and equity files.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from workbench.book import Book
from workbench.engine.step import Step
from workbench.feeds.history import LoopData
from workbench.indicators import IndicatorSet
from workbench.model import QTY_SCALE, Bar

CHUNK = 1 << 15


@dataclass
class EquityRows:
    """The account after each distinct bar time, from the loop's own books.

    Cash and positions are the Book's own values after its last fill at or before each bar
    time (``Book.history``); each position is marked at its symbol's last close at or before
    that time, as ``Book.position_value`` does in the loop.
    """

    ts: np.ndarray
    cash: np.ndarray
    position_value: np.ndarray
    equity: np.ndarray
    in_market: np.ndarray  # any position held

    @classmethod
    def empty(cls) -> EquityRows:
        """No bar times."""
        return cls(np.empty(0, np.int64), np.empty(0), np.empty(0), np.empty(0),
                   np.empty(0, np.bool_))


_new_bar = tuple.__new__


def simulate(step: Step, data: LoopData, progress: Callable[[int], None] | None = None,
             *, start: int | None = None) -> EquityRows:
    """The whole backtest loop: start the strategy, ``feed`` it every bar, stop it, then mark
    the account per bar time (``equity_rows``), so orders placed in ``on_stop`` are marked too.

    ``start`` is ``ctx.now`` in ``on_start`` (default: the first bar's open time).
    """
    step.start(start if start is not None else int(data.ts[0]) if len(data) else 0)
    feed(step, data, progress)
    step.stop()
    return equity_rows(step.book, data)


def feed(step: Step, data: LoopData, progress: Callable[[int], None] | None = None) -> None:
    """Hand every bar to the step in (ts, symbol) order.

    The bars are handed over at C speed (``map``) from one chunk at a time of the columns,
    copied into ``array.array``s whose iteration makes each Python value as it is needed
    (cheaper than ``tolist``, and memory stays flat); the only Python work per bar is the
    step's. Equity is
    not recorded bar by bar: the Book records its state at each fill, and ``equity_rows``
    marks it afterwards, vectorised.
    """
    n = len(data)
    on_bar = step.on_bar
    consume = deque[None](maxlen=0).extend
    name = data.symbol_names[0] if data.single else None
    i8, f8 = np.int64, np.float64
    columns = (("q", i8, data.ts), ("d", f8, data.open), ("d", f8, data.high),
               ("d", f8, data.low), ("d", f8, data.close), ("d", f8, data.volume))
    indicators = declared_series(step.indicators, data) if step.indicators else None
    row = step.indicators.row if step.indicators else tuple
    if indicators is not None and step.wake is not None and not step.needs_every_bar:
        return _feed_events(step, data, indicators, progress)
    # The garbage collector is paused around the whole job by the backtest's wiring
    # (kernel.Wiring.pause_gc), not here: the loop itself knows no mode.
    for lo in range(0, n, CHUNK):
        hi = min(lo + CHUNK, n)
        symbols: Iterable[str] = (repeat(name, hi - lo) if name is not None
                                  else data.symbol_chunk(lo, hi))
        bars = map(_new_bar, repeat(Bar), zip(
            symbols, *[array(code, column[lo:hi].astype(kind, copy=False).tobytes())
                       for code, kind, column in columns], strict=False))
        if indicators is None:
            consume(map(on_bar, bars))
        else:
            consume(map(on_bar, bars, map(_new_bar, repeat(row), zip(
                *[array("d", column[lo:hi].tobytes()) for column in indicators], strict=False))))
        if progress is not None:
            progress(hi - lo)


def _feed_events(step: Step, data: LoopData, indicators: list[np.ndarray],
                 progress: Callable[[int], None] | None) -> None:
    """The bars a strategy's ``wake_on`` indicator says it acts on, every bar while orders
    rest at the broker (``Broker.resting``: resting, partly filled, or with a submit or cancel
    still pending at a simulated venue with a latency), and the last bar; the bars between
    are not handed over (the strategy declared it does nothing on them, and nothing else
    works on them). Each symbol's mark (and last bar, which a simulated fill's impact reads)
    is brought up to the bar handed over first, so the books read what every bar would have
    left."""
    assert step.indicators is not None and step.wake is not None
    n = len(data)
    wake = indicators[step.indicators.names.index(step.wake)]
    with np.errstate(invalid="ignore"):
        events = np.flatnonzero(np.nan_to_num(wake) != 0.0).tolist()
    if n and (not events or events[-1] != n - 1):
        events.append(n - 1)  # the last bar: on_stop sees the run's end, the marks are final
    resting = step.broker.resting
    row = step.indicators.row
    names = data.symbol_names
    mark = step.book.last
    last_bar = step.book.bars
    ts, o, h, lo, c, v, index = (data.ts, data.open, data.high, data.low, data.close,
                                 data.volume, data.symbol_index)
    # each symbol's last close at or before each event (NaN before its first bar): a jump to
    # an event brings every mark up to it; bars handed one after another mark themselves
    at_event: list[list[int]] = []  # per symbol: its last bar's row at each event, or -1
    if not data.single:
        ev = np.asarray(events, dtype=np.int64)
        for k in range(len(names)):
            mine = np.flatnonzero(index == k)
            last = np.searchsorted(mine, ev, side="right") - 1
            at_event.append(np.where(last >= 0, mine[np.maximum(last, 0)], -1).tolist())

    def hand(i: int, event: int | None = None) -> None:
        if event is not None:
            for k, rows in enumerate(at_event):
                r = rows[event]
                if r >= 0:  # the symbol has had a bar
                    name = names[k]
                    mark[name] = float(c[r])
                    last_bar[name] = Bar(name, int(ts[r]), float(o[r]), float(h[r]),
                                         float(lo[r]), float(c[r]), float(v[r]))
        step.on_bar(Bar(names[int(index[i])], int(ts[i]), float(o[i]), float(h[i]),
                        float(lo[i]), float(c[i]), float(v[i])),
                    row(*[float(column[i]) for column in indicators]))

    done = 0
    i = 0
    for j, event in enumerate(events):
        while i < event and resting:  # orders work on every bar until none rests
            hand(i)
            i += 1
        if event >= i:  # (else it was handed over while orders rested)
            hand(event, j)
            i = event + 1
        if progress is not None and i - done >= CHUNK:
            progress(i - done)
            done = i
    while i < n and resting:
        hand(i)
        i += 1
    if progress is not None and n > done:
        progress(n - done)


def declared_series(indicators: IndicatorSet, data: LoopData) -> list[np.ndarray]:
    """Each declared indicator over the whole run, in loop order: computed over each symbol's
    own bars (``IndicatorSet.series``), then laid out as the bars are."""
    fields = {"open": data.open, "high": data.high, "low": data.low, "close": data.close,
              "volume": data.volume}
    if data.single:
        return indicators.series(fields, data.symbol_names[0])
    out = [np.full(len(data), np.nan) for _ in range(len(indicators))]
    for k, name in enumerate(data.symbol_names):
        rows = np.flatnonzero(data.symbol_index == k)
        mine = {f: column[rows] for f, column in fields.items()}
        for column, values in zip(out, indicators.series(mine, name), strict=True):
            column[rows] = values
    return out


def equity_rows(book: Book, data: LoopData) -> EquityRows:
    """Cash, position value and equity after each distinct bar time (see EquityRows)."""
    ts = data.ts_array
    last_of_ts = np.flatnonzero(np.append(ts[1:] != ts[:-1], True)) if len(ts) else ts
    grid = ts[last_of_ts]
    history = book.history
    fill_ts = np.fromiter((h[0] for h in history), np.int64, len(history))
    # state after the last fill at or before each bar time; slot 0 is the state before any fill
    after = np.searchsorted(fill_ts, grid, side="right")
    cash_after = np.fromiter((h[1] for h in history), np.float64, len(history))
    cash = np.concatenate(([book.initial_cash], cash_after))[after]
    value = np.zeros(len(grid))
    held = np.zeros(len(grid), dtype=bool)
    closes = data.close_array
    fill_symbol = np.array([h[2] for h in history], dtype=object)
    fill_units = np.fromiter((h[3] for h in history), np.int64, len(history))
    for k, name in enumerate(data.symbol_names):
        mine = np.flatnonzero(fill_symbol == name)
        if not len(mine):
            continue
        units_after = np.concatenate(([0], fill_units[mine]))
        units = units_after[np.searchsorted(fill_ts[mine], grid, side="right")]
        rows = np.flatnonzero(data.symbol_index == k)
        seen = np.searchsorted(ts[rows], grid, side="right") - 1  # this symbol's last bar
        mark = closes[rows[np.maximum(seen, 0)]]
        value = value + np.where(units != 0, units / QTY_SCALE * mark, 0.0)
        held |= units != 0
    return EquityRows(grid, cash, value, cash + value, held)
