"""SimBroker with a latency and a participation cap: the time-ordered pending actions, fills
moved across bar boundaries, cancels racing fills, partial fills and the remainder policy.

Each test drives the real step (as a backtest wires it) over a few hand-made bars; a bar is
``(open, high, low, close, volume)`` and the run starts at T0."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
import step_harness as harness
from step_harness import T0, TF

from workbench.brokers.base import CancelReason, RejectReason
from workbench.brokers.execution import PROFILES, Execution, Latency
from workbench.brokers.fills import CostModel
from workbench.brokers.paper import PaperBroker
from workbench.brokers.sim import SimBroker
from workbench.engine.step import Step
from workbench.feeds.history import LoopData, merge
from workbench.feeds.qc import BarSeries
from workbench.model import Bar, Order, OrderIntent, OrderStatus, Side
from workbench.strategy import Context, Strategy

S = OrderStatus
Bar5 = tuple[float, float, float, float, float]
Act = Callable[[Context, Bar, "Script"], None]


def bars(rows: Sequence[Bar5], symbol: str = "X") -> LoopData:
    a = np.array(rows, dtype=float).reshape(-1, 5)
    ts = T0 + np.arange(len(a), dtype=np.int64) * TF
    return merge([BarSeries(symbol, TF, ts, a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4])])


def flat(price: float, volume: float = 1e6) -> Bar5:
    return (price, price, price, price, volume)


class Script(Strategy):
    """Runs ``script[i](ctx, bar, self)`` on the i-th bar; keeps the orders it made."""

    def __init__(self, script: dict[int, Act]) -> None:
        super().__init__()
        self.script = script
        self.i = -1
        self.orders: list[Order] = []
        self.cancels: list[bool] = []

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        self.i += 1
        act = self.script.get(self.i)
        if act is not None:
            act(ctx, bar, self)


def submit(intent: OrderIntent) -> Act:
    def act(ctx: Context, bar: Bar, me: Script) -> None:
        me.orders.append(ctx.submit(intent))
    return act


def cancel_first(ctx: Context, bar: Bar, me: Script) -> None:
    me.cancels.append(ctx.cancel(me.orders[0]))


def run(rows: Sequence[Bar5], script: dict[int, Act], execution: Execution,
        costs: CostModel | None = None, cash: float = 1e6, paper: bool = False
        ) -> tuple[Step, Script]:
    costs = costs or CostModel()
    broker = (PaperBroker(costs, TF, execution) if paper else SimBroker(costs, execution))
    strategy = Script(script)
    step = harness.run(strategy, bars(rows), broker=broker, cash=cash)
    return step, strategy


def fills(step: Step) -> list[tuple[float, float, int]]:
    """(qty, price, bar index) of each fill."""
    return [(f.qty, f.price, (f.bar_ts - T0) // TF) for f in harness.fills(step)]


def statuses(step: Step, seq: int = 1) -> list[tuple[str, str | None]]:
    return [(e.status.value, e.reason) for e in harness.events(step, seq)]


BUY = OrderIntent("X", Side.BUY, 1.0)
ROWS = [(100.0, 100.0, 100.0, 100.0, 1e6), (101.0, 103.0, 99.0, 102.0, 1e6),
        (104.0, 105.0, 103.0, 104.5, 1e6), flat(106.0), flat(107.0)]


# --- settings -----------------------------------------------------------------------------------
def test_execution_default_is_plain_and_any_latency_or_cap_is_not() -> None:
    assert Execution().plain and PROFILES["INSTANT"].instant
    assert not Execution(PROFILES["FAST"]).plain
    assert not Execution(participation_pct=10.0).plain


def test_execution_budget_units_whole_units_without_float_shortfall() -> None:
    capped = Execution(participation_pct=0.7)
    assert capped.budget_units(0.7) == 490_000  # 0.0049 (0.7 * 0.7 / 100 * 1e8 is 489999.99...)
    assert capped.budget_units(0.0) == 0 and Execution().budget_units(5.0) is None


def test_latency_fill_delay_same_seed_same_draw_within_the_range() -> None:
    slow = PROFILES["SLOW"]
    draws = [slow.fill_delay(7, seq) for seq in range(1, 500)]
    assert draws == [slow.fill_delay(7, seq) for seq in range(1, 500)]
    assert all(500 <= d <= 1000 for d in draws) and len(set(draws)) > 100
    assert draws != [slow.fill_delay(8, seq) for seq in range(1, 500)]
    assert Latency(0, 30, 30, 0).fill_delay(1, 1) == 30  # no range, no jitter


# --- latency --------------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", ["FAST", "NORMAL", "SLOW"])
def test_sim_latency_market_at_close_crosses_into_next_bar_fills_at_its_open(
        profile: str) -> None:
    instant, _ = run(ROWS, {0: submit(BUY)}, Execution())
    late, _ = run(ROWS, {0: submit(BUY)}, Execution(PROFILES[profile]))
    assert fills(instant) == [(1.0, 100.0, 0)]  # the signal bar's close
    assert fills(late) == [(1.0, 101.0, 1)]  # reached the market inside bar 1: its open
    assert statuses(late) == [("NEW", None), ("SUBMITTED", None), ("FILLED", None)]
    # the venue heard of it on bar 1: every event after NEW carries bar 1's close time
    assert [e.ts for e in harness.events(late, 1)] == [T0 + TF, T0 + 2 * TF, T0 + 2 * TF]


def test_sim_latency_market_next_open_within_a_bar_same_fill_as_instant() -> None:
    costs = CostModel(fill_at="next_open")
    instant, _ = run(ROWS, {0: submit(BUY)}, Execution(), costs)
    late, _ = run(ROWS, {0: submit(BUY)}, Execution(PROFILES["SLOW"]), costs)
    assert fills(instant) == fills(late) == [(1.0, 101.0, 1)]


def test_sim_latency_longer_than_a_bar_lands_on_the_bar_after() -> None:
    slow_link = Latency(submit_ms=TF + 500, fill_lo_ms=0, fill_hi_ms=0, cancel_ms=0)
    step, _ = run(ROWS, {0: submit(BUY)}, Execution(slow_link))
    assert fills(step) == [(1.0, 104.0, 2)]  # decided at bar 0's close, arrived in bar 2


def test_sim_latency_fill_delay_crossing_the_boundary_moves_the_fill_a_bar_on() -> None:
    # reaches the venue 59.9 s into bar 1; the fill delay (>= 100 ms) carries it into bar 2
    edge = Latency(submit_ms=TF - 100, fill_lo_ms=100, fill_hi_ms=200, cancel_ms=0)
    step, _ = run(ROWS, {0: submit(BUY)}, Execution(edge))
    assert fills(step) == [(1.0, 104.0, 2)]
    assert [e.ts for e in harness.events(step, 1)][1] == T0 + 2 * TF  # SUBMITTED on bar 1


def test_sim_latency_resting_limit_still_works_from_the_next_bar() -> None:
    limit = OrderIntent.limit("X", Side.BUY, 1.0, 99.5)
    for execution in (Execution(), Execution(PROFILES["SLOW"])):
        step, _ = run(ROWS, {0: submit(limit)}, execution)
        assert fills(step) == [(1.0, 99.5, 1)]  # bar 1 dips to 99 inside the bar


def test_sim_latency_order_in_flight_at_the_end_stays_new() -> None:
    step, me = run(ROWS, {4: submit(BUY)}, Execution(PROFILES["FAST"]))
    assert fills(step) == [] and statuses(step) == [("NEW", None)]
    assert step.broker.resting["X"] == me.orders  # still on its way


def test_sim_latency_reject_on_arrival_reports_the_reason() -> None:
    sell = OrderIntent("X", Side.SELL, 1.0)
    step, _ = run(ROWS, {0: submit(sell)}, Execution(PROFILES["NORMAL"]))
    assert statuses(step) == [("NEW", None), ("REJECTED", RejectReason.INSUFFICIENT_POSITION)]
    assert not step.broker.resting and step.book.reserved_units == {}


# --- cancels against fills --------------------------------------------------------------------
def test_sim_latency_cancel_after_fill_is_noop_order_keeps_filled() -> None:
    # a limit rests from bar 1; on bar 2 the strategy cancels it, but bar 3 opens through the
    # limit at its first instant, before the cancel (20 ms later) reaches the venue
    rows = [flat(100.0), flat(100.0), flat(100.0), flat(98.0), flat(98.0)]
    limit = OrderIntent.limit("X", Side.BUY, 1.0, 99.0)
    step, me = run(rows, {0: submit(limit), 2: cancel_first}, Execution(PROFILES["FAST"]))
    assert me.cancels == [True]  # the cancel was sent
    assert fills(step) == [(1.0, 98.0, 3)]
    assert statuses(step) == [("NEW", None), ("SUBMITTED", None), ("FILLED", None)]
    assert me.orders[0].status is S.FILLED
    assert isinstance(step.broker, SimBroker)
    assert step.broker.late_cancels == {1: S.FILLED}
    assert step.cancel(me.orders[0]) is False  # and asking again says it is not open


def test_sim_instant_cancel_same_race_cancel_wins() -> None:
    rows = [flat(100.0), flat(100.0), flat(100.0), flat(98.0), flat(98.0)]
    limit = OrderIntent.limit("X", Side.BUY, 1.0, 99.0)
    step, _ = run(rows, {0: submit(limit), 2: cancel_first}, Execution())
    assert fills(step) == [] and statuses(step)[-1] == ("CANCELED", CancelReason.USER)


def test_sim_latency_cancel_before_a_touch_inside_the_bar_cancels() -> None:
    # bar 3 opens above the limit and dips to it later: the cancel (20 ms) arrives first
    rows = [flat(100.0), flat(100.0), flat(100.0), (100.0, 100.0, 98.0, 100.0, 1e6),
            flat(100.0)]
    limit = OrderIntent.limit("X", Side.BUY, 1.0, 99.0)
    step, _ = run(rows, {0: submit(limit), 2: cancel_first}, Execution(PROFILES["FAST"]))
    assert fills(step) == [] and statuses(step)[-1] == ("CANCELED", CancelReason.USER)
    assert step.book.reserved_cash == 0.0 and not step.broker.resting


def test_sim_latency_cancel_of_market_in_flight_cancels_before_its_fill() -> None:
    # SLOW: the order reaches the venue at +100 ms, executes at +600..1100 ms; the cancel,
    # asked for at once, arrives at +100 ms (never before its order)
    step, me = run(ROWS, {0: lambda c, b, m: (submit(BUY)(c, b, m), cancel_first(c, b, m))},
                   Execution(PROFILES["SLOW"]))
    assert me.cancels == [True] and fills(step) == []
    assert statuses(step) == [("NEW", None), ("SUBMITTED", None),
                              ("CANCELED", CancelReason.USER)]


def test_sim_latency_cancel_slower_than_the_fill_is_noop() -> None:
    slow_cancel = Latency(submit_ms=10, fill_lo_ms=50, fill_hi_ms=100, cancel_ms=5_000)
    step, me = run(ROWS, {0: lambda c, b, m: (submit(BUY)(c, b, m), cancel_first(c, b, m))},
                   Execution(slow_cancel))
    assert me.cancels == [True] and fills(step) == [(1.0, 101.0, 1)]
    assert statuses(step)[-1] == ("FILLED", None)
    assert isinstance(step.broker, SimBroker) and step.broker.late_cancels == {1: S.FILLED}


# --- participation ----------------------------------------------------------------------------
CAPPED = [flat(100.0, 10.0), flat(101.0, 10.0), flat(102.0, 0.0), flat(103.0, 10.0),
          flat(104.0, 10.0)]


def test_sim_participation_cap_partial_fills_sum_to_the_order() -> None:
    order = OrderIntent("X", Side.BUY, 2.5)
    step, me = run(CAPPED, {0: submit(order)}, Execution(participation_pct=10.0))
    # 10 % of 10 = 1 per bar: bar 0's close, bar 1's open, nothing on the zero-volume bar 2,
    # the last half on bar 3
    assert fills(step) == [(1.0, 100.0, 0), (1.0, 101.0, 1), (0.5, 103.0, 3)]
    assert statuses(step) == [("NEW", None), ("SUBMITTED", None), ("PARTIALLY_FILLED", None),
                              ("PARTIALLY_FILLED", None), ("FILLED", None)]
    [state] = harness.orders(step)  # one logical order, its parts kept as fills
    assert state.status is S.FILLED and state.filled_units == me.orders[0].qty_units
    assert step.book.position("X") == 2.5 and not step.broker.resting


def test_sim_participation_zero_volume_signal_bar_fills_nothing_there() -> None:
    rows = [flat(100.0, 0.0), flat(101.0, 0.0), flat(102.0, 100.0)]
    step, _ = run(rows, {0: submit(BUY)}, Execution(participation_pct=50.0))
    assert fills(step) == [(1.0, 102.0, 2)]


def test_sim_participation_remainder_cancel_cancels_the_rest() -> None:
    order = OrderIntent("X", Side.BUY, 2.5)
    step, _ = run(CAPPED, {0: submit(order)},
                  Execution(participation_pct=10.0, cancel_remainder=True))
    assert fills(step) == [(1.0, 100.0, 0)]
    assert statuses(step)[-2:] == [("PARTIALLY_FILLED", None),
                                   ("CANCELED", CancelReason.REMAINDER)]
    assert step.book.position("X") == 1.0 and not step.broker.resting


def test_sim_participation_orders_on_one_bar_share_its_budget() -> None:
    two = {0: lambda c, b, m: (submit(BUY)(c, b, m), submit(BUY)(c, b, m))}
    step, _ = run(CAPPED, two, Execution(participation_pct=15.0))
    # 1.5 per bar, taken in time order: the first order fills 1, then the second 0.5
    assert [(f.order_seq, f.qty, (f.bar_ts - T0) // TF) for f in harness.fills(step)] == [
        (1, 1.0, 0), (2, 0.5, 0), (2, 0.5, 1)]


def test_sim_participation_capped_limit_releases_its_reservation_part_by_part() -> None:
    rows = [flat(100.0, 10.0)] + [(99.0, 99.0, 98.0, 99.0, 10.0)] * 3 + [flat(99.0, 10.0)]
    limit = OrderIntent.limit("X", Side.BUY, 2.0, 99.5)
    seen: list[float] = []

    def watch(ctx: Context, bar: Bar, me: Script) -> None:
        seen.append(ctx.book.reserved_cash)

    step, _ = run(rows, {0: submit(limit), 1: watch, 2: watch, 3: watch},
                  Execution(participation_pct=10.0))
    assert fills(step) == [(1.0, 99.0, 1), (1.0, 99.0, 2)]  # opened through: at the open
    assert seen[0] == pytest.approx(99.5) and seen[1:] == [0.0, 0.0]
    assert step.book.reserved_cash == 0.0


def test_sim_participation_remainder_failing_funds_is_cancelled_with_the_reason() -> None:
    rows = [flat(100.0, 10.0), flat(100.0, 10.0), flat(200.0, 10.0)]
    order = OrderIntent("X", Side.BUY, 2.0)
    step, _ = run(rows, {0: submit(order)}, Execution(participation_pct=10.0), cash=250.0)
    assert fills(step) == [(1.0, 100.0, 0), (1.0, 100.0, 1)]
    rows[1] = flat(200.0, 10.0)
    step, _ = run(rows, {0: submit(order)}, Execution(participation_pct=10.0), cash=250.0)
    assert fills(step) == [(1.0, 100.0, 0)]
    assert statuses(step)[-1] == ("CANCELED", RejectReason.INSUFFICIENT_FUNDS)


def test_sim_participation_100_pct_of_ample_volume_same_as_uncapped() -> None:
    rng = np.random.default_rng(5)
    closes = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.003, 300))), 2)
    rows = [(c, c * 1.002, c * 0.998, c, 1e9) for c in closes]
    from workbench.strategies.pullback_limit import PullbackLimit

    got = []
    for execution in (Execution(), Execution(participation_pct=100.0)):
        strategy = PullbackLimit(qty=0.5, dip_bps=5, take_profit_bps=10, stop_bps=20,
                                 expire_bars=5)
        step = harness.run(strategy, bars(rows), broker=SimBroker(CostModel(fee_bps=2),
                                                                  execution), cash=1e6)
        got.append(harness.journalled(step))
    assert len(got[0].fills) > 10
    assert got[0] == got[1]


# --- paper --------------------------------------------------------------------------------------
@pytest.mark.parametrize("execution", [Execution(PROFILES["NORMAL"], 10.0),
                                       Execution(PROFILES["FAST"], 10.0, True)])
def test_paper_same_fills_as_sim_with_numbered_trade_ids(execution: Execution) -> None:
    order = OrderIntent("X", Side.BUY, 2.5)
    sim, _ = run(CAPPED, {0: submit(order)}, execution)
    paper, _ = run(CAPPED, {0: submit(order)}, execution, paper=True)
    strip = [f._replace(venue_trade_id=None, venue_ts=None) for f in harness.fills(paper)]
    assert strip == harness.fills(sim) and harness.orders(sim) == harness.orders(paper)
    assert [f.venue_trade_id for f in harness.fills(paper)] == [
        f"P-t-1-{n}" for n in range(1, len(strip) + 1)]


def test_sim_latency_keeps_an_event_fed_loop_fed_until_done() -> None:
    from workbench.indicators import Computed

    class Once(Script):
        wake_on = "first"

        def indicators(self) -> dict[str, Any]:
            # only bar 0 closes at 100
            return {"first": Computed(lambda b: (b["close"] == 100.0).astype(float), lookback=0)}

    rows = CAPPED + [flat(105.0, 10.0)] * 20
    order = OrderIntent("X", Side.BUY, 2.5)
    out, seen = [], []
    for cls in (Script, Once):
        strategy = cls({0: submit(order)})
        step = harness.run(strategy, bars(rows), broker=SimBroker(
            CostModel(), Execution(PROFILES["SLOW"], 10.0)), cash=1e6)
        out.append(harness.journalled(step))
        seen.append(strategy.i + 1)
    assert out[0] == out[1] and sum(f.qty for f in out[0].fills) == 2.5
    # bar 0; bars 1-4 while the order works (1 on bar 1, none on the empty bar 2, 1 on bar
    # 3, the last 0.5 on bar 4); the last bar
    assert seen == [len(rows), 6]


# --- costs of the parts -----------------------------------------------------------------------
def test_sim_participation_parts_pay_impact_of_their_own_size_and_first_pays_min_fee() -> None:
    rows = [(100.0, 101.0, 99.0, 100.0, 10.0), (100.0, 101.0, 99.0, 100.0, 10.0),
            flat(100.0, 10.0)]
    costs = CostModel(impact_k=1.0, min_fee=0.5, fee_bps=1.0)
    order = OrderIntent("X", Side.BUY, 2.0)
    step, _ = run(rows, {0: submit(order)}, Execution(participation_pct=10.0), costs)
    whole = costs.market_fill(Side.BUY, 100.0, 1.0, Bar("X", T0, *rows[0]))[0]
    got = harness.fills(step)
    assert [(f.qty, f.price) for f in got] == [(1.0, whole), (1.0, whole)]  # 1 of 10 each
    assert whole > costs.market_fill(Side.BUY, 100.0, 0.5, Bar("X", T0, *rows[0]))[0]
    assert [f.fee for f in got] == [0.5, pytest.approx(whole * 1e-4)]


def test_sim_participation_order_on_another_symbol_capped_by_its_own_last_bar() -> None:
    a = BarSeries("A", TF, np.array([T0, T0 + TF], dtype=np.int64), np.array([10.0, 11.0]),
                  np.array([10.0, 11.0]), np.array([10.0, 11.0]), np.array([10.0, 11.0]),
                  np.array([100.0, 100.0]))
    b = BarSeries("B", TF, np.array([T0, T0 + TF], dtype=np.int64), np.array([50.0, 51.0]),
                  np.array([50.0, 51.0]), np.array([50.0, 51.0]), np.array([50.0, 51.0]),
                  np.array([1_000.0, 1_000.0]))
    # decided on B's first bar (A's came first at that time): 1 % of A's 100 fills at once
    strategy = Script({1: submit(OrderIntent("A", Side.BUY, 1.5))})
    step = harness.run(strategy, merge([a, b]), broker=SimBroker(
        CostModel(), Execution(participation_pct=1.0)), cash=1e6)
    assert [(f.symbol, f.qty, f.price, (f.bar_ts - T0) // TF) for f in harness.fills(step)] == [
        ("A", 1.0, 10.0, 0), ("A", 0.5, 11.0, 1)]
