"""The engine's in-loop books (book.py) and the SQL views are independent computations of the
same books: on random bars and random order streams, driven through the real engine and written
through the real results writer, equity per bar agrees within 1e-9 relative and round trips
agree exactly."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import step_harness as harness
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.book import ShortBook
from workbench.brokers.base import RejectReason
from workbench.brokers.execution import PROFILES, Execution, Latency
from workbench.brokers.fills import CostModel
from workbench.brokers.sim import SimBroker
from workbench.engine.backtest import simulate
from workbench.engine.carry import Borrow, Funding
from workbench.engine.step import Step
from workbench.feeds.history import LoopData, merge
from workbench.feeds.qc import BarSeries
from workbench.model import QTY_SCALE, Bar, Order, OrderIntent, OrderStatus, Side, ms_to_iso
from workbench.strategy import Context, Strategy
from workbench.warehouse import results
from workbench.warehouse.connect import open_memory

T0 = 1_704_067_200_000
TF = 60_000
NAMES = ("AAA", "BBB", "CCC")
RUN_IDS = itertools.count(1)

# --- random runs ------------------------------------------------------------------------------
BASE = st.sampled_from([5.0, 100.0, 2_000.0])  # a symbol's price level
MOVE = st.one_of(
    st.sampled_from([1.0, 1.0, 1.01, 0.99]),  # repeated prices
    st.floats(0.8, 1.25, allow_nan=False, allow_infinity=False),
)
SYMBOL = st.integers(0, 2)  # index into the run's symbols, modulo their number
UNITS = st.integers(1, 3 * QTY_SCALE)  # up to 3, with up to 8 decimals
FRACTION = st.sampled_from([0.1, 0.25, 0.5, 1 / 3, 0.999, 1.0])
OFFSET = st.sampled_from([-0.02, -0.001, 0.0, 0.001, 0.02])
EXPIRY = st.one_of(st.none(), st.integers(1, 5))

INTENT = st.one_of(
    st.tuples(st.just("buy"), SYMBOL, UNITS),
    st.tuples(st.just("sell"), SYMBOL, FRACTION),
    st.tuples(st.just("sell_all"), SYMBOL),
    st.tuples(st.just("oversell"), SYMBOL, st.integers(1, QTY_SCALE)),
    st.tuples(st.just("buy_limit"), SYMBOL, UNITS, OFFSET, EXPIRY),
    st.tuples(st.just("sell_limit"), SYMBOL, FRACTION, OFFSET, EXPIRY),
    st.tuples(st.just("cancel"), SYMBOL),
)
SHORT_INTENT = st.one_of(INTENT, st.tuples(st.just("short"), SYMBOL, UNITS))
"""With shorts allowed: sells beyond the position ("oversell" crosses zero), and plain ones."""

COSTS = st.builds(
    CostModel,
    fee_bps=st.sampled_from([0.0, 7.5, 10.0]),
    spread_bps=st.sampled_from([0.0, 2.0]),
    slippage_bps=st.sampled_from([0.0, 1.5]),
    min_notional=st.sampled_from([0.0, 5.0]),
    fill_at=st.sampled_from(["close", "next_open"]),
)


@st.composite
def bar_data(draw: st.DrawFn) -> LoopData:
    """1-3 symbols on a grid of 20-200 bar times; each symbol may miss some of them, so the
    symbols' bar times do not line up."""
    names = NAMES[: draw(st.integers(1, 3))]
    grid = draw(st.integers(20, 200))
    series = []
    for name in names:
        missing = draw(st.sets(st.integers(0, grid - 1), max_size=grid // 3))
        slots = np.array([i for i in range(grid) if i not in missing] or [grid - 1])
        n = len(slots)
        close = draw(BASE) * np.cumprod(draw(st.lists(MOVE, min_size=n, max_size=n)))
        open_ = np.concatenate([[close[0]], close[:-1]])
        wick = np.array(draw(st.lists(st.sampled_from([0.0, 0.001, 0.01, 0.03]), min_size=n,
                                      max_size=n)))
        series.append(BarSeries(
            name, TF, (T0 + slots * TF).astype(np.int64), open_,
            np.maximum(open_, close) * (1 + wick), np.minimum(open_, close) * (1 - wick), close,
            np.ones(n), source=np.array(["test"] * n, dtype=object),
        ))
    return merge(series)


# latencies and participation caps (every bar's volume is 1): partial fills, moved fills
EXECUTIONS = st.builds(
    Execution,
    latency=st.sampled_from([*PROFILES.values(), Latency(TF + 1, 0, 500, 30_000)]),
    participation_pct=st.one_of(st.none(), st.sampled_from([10.0, 50.0, 100.0])),
    cancel_remainder=st.booleans(),
    seed=st.integers(0, 3),
)

INSTANT = st.just(Execution())  # the default venue

Run = tuple[LoopData, dict[int, list[tuple]], CostModel, float, Execution]


@st.composite
def backtests(draw: st.DrawFn, executions: st.SearchStrategy[Execution] = INSTANT,
              intents: st.SearchStrategy[tuple] = INTENT) -> Run:
    data = draw(bar_data())
    names = data.symbol_names
    stream = draw(st.lists(st.tuples(st.integers(0, len(data) - 1), intents), min_size=20,
                           max_size=100))
    script: dict[int, list[tuple]] = {}
    for i, (kind, symbol, *args) in stream:
        script.setdefault(i, []).append((kind, names[symbol % len(names)], *args))
    return (data, script, draw(COSTS), draw(st.sampled_from([10_000.0, 1_000_000.0])),
            draw(executions))


class Scripted(Strategy):
    """Replays a scripted list of intents per bar (by position in the loop) through ctx.submit."""

    def __init__(self, script: dict[int, list[tuple]]) -> None:
        super().__init__()
        self.script = script
        self.bar_index = -1
        self.oversells: list[tuple[Order, bool]] = []  # (order, symbol had a price)

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        self.bar_index += 1
        book = ctx.book
        for kind, *args in self.script.get(self.bar_index, []):
            symbol = args[0]
            if kind == "cancel":
                for order in ctx.open_orders(symbol)[:1]:
                    ctx.cancel(order)
                continue
            ref = book.last.get(symbol, 100.0)
            free = book.free_units(symbol)
            if kind in ("buy", "short"):
                side = Side.BUY if kind == "buy" else Side.SELL
                ctx.submit(OrderIntent.market(symbol, side, args[1] / QTY_SCALE))
            elif kind in ("sell", "sell_all"):
                units = int(free * args[1]) if kind == "sell" else free
                if units > 0:
                    ctx.submit(OrderIntent.market(symbol, Side.SELL, units / QTY_SCALE))
            elif kind == "oversell":
                qty = (max(book.position_units(symbol), 0) + args[1]) / QTY_SCALE
                order = ctx.submit(OrderIntent.market(symbol, Side.SELL, qty))
                self.oversells.append((order, symbol in book.last))
            elif kind == "buy_limit":
                ctx.submit(OrderIntent.limit(symbol, Side.BUY, args[1] / QTY_SCALE,
                                             ref * (1 + args[2]), expire_after_bars=args[3]))
            elif kind == "sell_limit":
                units = int(free * args[1])
                if units > 0:
                    ctx.submit(OrderIntent.limit(symbol, Side.SELL, units / QTY_SCALE,
                                                 ref * (1 + args[2]), expire_after_bars=args[3]))


@pytest.fixture(scope="module")
def con() -> Iterator[Any]:
    con = open_memory()
    yield con
    con.close()


def backtest(con: Any, data: LoopData, script: dict[int, list[tuple]], costs: CostModel,
             initial_cash: float, execution: Execution, short_margin: float | None = None,
             borrow_bps: float = 0.0, funding_bps: float = 0.0
             ) -> tuple[str, Step, Any, Scripted]:
    """One run through the real engine, written to the warehouse as engine/run.py writes it
    (``short_margin``: shorts allowed, as the kernel wires ``portfolio.allow_short``, with
    ``borrow_bps`` a year; ``funding_bps`` every 5 minutes)."""
    run_id = f"prop-{next(RUN_IDS)}"
    strategy = Scripted(script)
    step = harness.make_step(
        strategy, broker=SimBroker(costs, execution, short_margin), cash=initial_cash,
        run_id=run_id, book=ShortBook(initial_cash) if short_margin is not None else None)
    if borrow_bps:
        step.before_each_bar(Borrow(step.book, borrow_bps, TF))
    if funding_bps:
        step.before_each_bar(Funding(step.book, funding_bps, 5 * TF))
    equity = simulate(step, data, start=int(data.ts[0]))
    results.insert_results(con, {
        "run_id": run_id, "mode": "backtest", "name": "property", "status": "completed",
        "config_json": {"strategy": "Scripted"}, "started_at": "2024-01-01T00:00:00Z",
        "ended_at": "2024-01-02T00:00:00Z", "gap_policy": "none",
        "symbols": list(data.symbol_names), "timeframe": "1m", "timeframe_ms": TF,
        "initial_cash": initial_cash, "quote": "USDT", "seed": 0,
        "start_ts": ms_to_iso(int(data.ts[0])), "end_ts": ms_to_iso(int(data.ts[-1])),
        "bar_count": len(data),
    }, results.run_tables(data, step.journal, [], "1m", "none", run_id,
                          charges=step.book.charges))
    return run_id, step, equity, strategy


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(run=backtests())
def test_books_and_views_random_order_streams_agree_on_equity_and_round_trips(
        con: Any, run: Run) -> None:
    agree(con, run)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(run=backtests(EXECUTIONS))
def test_books_and_views_with_latency_and_partial_fills_agree_on_equity_and_round_trips(
        con: Any, run: Run) -> None:
    agree(con, run)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(run=backtests(intents=SHORT_INTENT), margin=st.sampled_from([0.5, 1.0, 3.0]),
       borrow=st.sampled_from([0.0, 500.0, 100_000.0]),
       funding=st.sampled_from([0.0, 25.0, -25.0]))
def test_books_and_views_random_streams_with_shorts_borrow_and_funding_agree_bar_by_bar(
        con: Any, run: Run, margin: float, borrow: float, funding: float) -> None:
    step = agree(con, run, margin, borrow, funding)
    kinds = {c.kind for c in step.book.charges}
    assert kinds <= {kind for kind, rate in (("borrow", borrow), ("funding", funding)) if rate}
    assert all(c.amount > 0 for c in step.book.charges if c.kind == "borrow")


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(run=backtests(EXECUTIONS, intents=SHORT_INTENT))
def test_books_and_views_with_shorts_latency_and_partial_fills_agree(con: Any,
                                                                     run: Run) -> None:
    agree(con, run, 1.0)


def agree(con: Any, run: Run, short_margin: float | None = None, borrow_bps: float = 0.0,
          funding_bps: float = 0.0) -> Step:
    """Run the backtest, write it, and hold the views to the in-loop books."""
    data, script, costs, initial_cash, execution = run
    run_id, step, equity, strategy = backtest(con, data, script, costs, initial_cash,
                                              execution, short_margin, borrow_bps, funding_bps)
    book = step.book

    # equity per bar time: the loop's rows vs acct.equity_curve
    curve = con.execute("select epoch_ms(ts), equity from acct.equity_curve where run_id = ? "
                        "order by ts", [run_id]).fetchall()
    assert [t for t, _ in curve] == [int(t) for t in equity.ts]
    for (t, sql_equity), loop_equity in zip(curve, equity.equity, strict=True):
        assert math.isclose(sql_equity, loop_equity, rel_tol=1e-9), ms_to_iso(t)

    # round trips: exactly the same doubles and timestamps
    trips = con.execute(
        "select symbol, side, qty, epoch_ms(entry_ts), entry_price, epoch_ms(exit_ts), "
        "exit_price, fees, pnl, return_pct, entry_fill_seq, exit_fill_seq "
        "from rpt.round_trips where run_id = ? order by exit_fill_seq, entry_fill_seq",
        [run_id]).fetchall()
    expected = sorted(((t.symbol, t.side, t.qty, t.entry_ts, t.entry_price, t.exit_ts,
                        t.exit_price, t.fees, t.pnl, t.return_pct, t.entry_fill_seq,
                        t.exit_fill_seq) for t in book.round_trips),
                      key=lambda t: (t[-1], t[-2]))
    assert trips == expected

    # open positions and the headline counts
    positions = dict(con.execute("select symbol, qty from acct.positions where run_id = ?",
                                 [run_id]).fetchall())
    assert positions == {s: u / QTY_SCALE for s, u in book.units.items()}
    trades, fills, fees = con.execute(
        "select trades, fills, fees_quote from rpt.performance where run_id = ?",
        [run_id]).fetchone()
    order_of = {f.fill_seq: f.order_seq for f in harness.fills(step)}
    pairs = {(order_of[t.entry_fill_seq], order_of[t.exit_fill_seq]) for t in book.round_trips}
    assert (trades, fills) == (len(pairs), len(harness.fills(step)))
    if execution.plain:  # one fill an order: a trade is a round trip, as it always was
        assert len(pairs) == len(book.round_trips)
    assert math.isclose(fees, book.fees_paid, rel_tol=1e-9, abs_tol=1e-12)

    if short_margin is not None:
        return step
    # a sell beyond the position never reaches the books (with a latency it is checked on
    # arrival, against the position buys in flight may have grown meanwhile)
    for order, had_price in strategy.oversells if execution.latency.instant else ():
        assert order.status is OrderStatus.REJECTED
        assert order.filled_units == 0
        if not had_price:
            assert order.reason == RejectReason.NO_PRICE
        elif costs.min_notional == 0:
            assert order.reason == RejectReason.INSUFFICIENT_POSITION
    return step


# --- across splits (adr/0025) -------------------------------------------------------------------
# ratios that scale lots to fractions of a unit (cash in lieu), and by float products that are
# not exact (10.0 * 0.3333333333333333 is 3.333333333333333, below 10/3), and 2.0 (every scaled
# lot whole): written as the floats a corporate_actions row holds
SPLITS = st.lists(st.tuples(st.integers(1, 199), SYMBOL,
                                st.sampled_from([1.5, 1 / 3, 3.0, 0.1, 10.0, 2 / 3, 2.0])),
                      max_size=4)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(run=backtests(), splits=SPLITS)
def test_books_and_views_across_fractional_splits_agree_on_positions_and_round_trips(
        con: Any, run: Run, splits: list[tuple[int, int, float]]) -> None:
    agree_across_splits(con, run, splits)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(run=backtests(intents=SHORT_INTENT), splits=SPLITS)
def test_books_and_views_across_fractional_splits_with_shorts_agree(
        con: Any, run: Run, splits: list[tuple[int, int, float]]) -> None:
    agree_across_splits(con, run, splits, shorts=True)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(run=backtests(EXECUTIONS), splits=SPLITS)
def test_books_and_views_across_splits_with_latency_and_partial_fills_agree(
        con: Any, run: Run, splits: list[tuple[int, int, float]]) -> None:
    # orders on their way, partly filled or resting at a split are scaled by the broker
    agree_across_splits(con, run, splits)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(run=backtests(EXECUTIONS, intents=SHORT_INTENT), splits=SPLITS)
def test_books_and_views_across_splits_with_shorts_latency_and_partial_fills_agree(
        con: Any, run: Run, splits: list[tuple[int, int, float]]) -> None:
    agree_across_splits(con, run, splits, shorts=True)


def agree_across_splits(con: Any, run: Run, splits: list[tuple[int, int, float]],
                        shorts: bool = False) -> None:
    """A run with splits (and, ``shorts``, short books), held to the views."""
    from workbench.engine.actions import events_table
    from workbench.model import ActionKind, CorporateAction

    data, script, costs, initial_cash, execution = run
    names, grid = data.symbol_names, sorted({int(t) for t in data.ts})
    actions = [CorporateAction(names[s % len(names)], "2024-01-01", ActionKind.SPLIT, ratio,
                               None, grid[i % len(grid)]) for i, s, ratio in splits]
    run_id = f"prop-{next(RUN_IDS)}"
    broker = SimBroker(costs, execution, short_margin=1.0 if shorts else None)
    step = harness.make_step(Scripted(script), broker=broker, cash=initial_cash,
                             run_id=run_id, book=ShortBook(initial_cash) if shorts else None)
    step.schedule_actions(actions, broker.split_orders)
    equity = simulate(step, data, start=int(data.ts[0]))  # stop() checks the books' fold
    tables = results.run_tables(data, step.journal, [], "1m", "none", run_id)
    tables["action_events"] = events_table(step.book.actions)
    results.insert_results(con, {
        "run_id": run_id, "mode": "backtest", "status": "completed", "started_at":
        "2024-01-01T00:00:00Z", "symbols": list(names), "timeframe_ms": TF,
        "initial_cash": initial_cash}, tables)
    book = step.book

    curve = con.execute("select epoch_ms(ts), equity from acct.equity_curve where run_id = ? "
                        "order by ts", [run_id]).fetchall()
    assert [t for t, _ in curve] == [int(t) for t in equity.ts]
    for (t, sql_equity), loop_equity in zip(curve, equity.equity, strict=True):
        assert math.isclose(sql_equity, loop_equity, rel_tol=1e-9), ms_to_iso(t)
    positions = dict(con.execute("select symbol, qty from acct.positions where run_id = ?",
                                 [run_id]).fetchall())
    assert positions == {s: u / QTY_SCALE for s, u in book.units.items()}

    # the same matches; a trip closed after its symbol's last split is the same doubles, one
    # closed before it is in the units after it, with the same P&L
    trips = {(t[-2], t[-1]): t for t in con.execute(
        "select symbol, qty, entry_price, exit_price, fees, pnl, return_pct, entry_fill_seq, "
        "exit_fill_seq from rpt.round_trips where run_id = ?", [run_id]).fetchall()}
    assert set(trips) == {(t.entry_fill_seq, t.exit_fill_seq) for t in book.round_trips}
    last_split = {a.symbol: a.ts for a in book.actions}
    for t in book.round_trips:
        row = trips[(t.entry_fill_seq, t.exit_fill_seq)]
        exit_bar = t.exit_ts - TF  # a fill's ts is its bar's close under the BarClock
        if exit_bar >= last_split.get(t.symbol, exit_bar):
            assert row == (t.symbol, t.qty, t.entry_price, t.exit_price, t.fees, t.pnl,
                           t.return_pct, t.entry_fill_seq, t.exit_fill_seq)
        else:
            assert math.isclose(row[5], t.pnl, rel_tol=1e-9, abs_tol=1e-9)
