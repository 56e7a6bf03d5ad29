"""The shared step: bar -> strategy -> journal -> broker -> books, and the strategy's Context."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import step_harness as harness
from step_harness import T0, TF, Row, fills, orders

from workbench.brokers.base import CancelReason, RejectReason
from workbench.brokers.fills import CostModel
from workbench.brokers.sim import SimBroker
from workbench.engine.journal import order_record
from workbench.engine.step import Step
from workbench.errors import StrategyError
from workbench.model import Bar, Fill, Order, OrderIntent, OrderStatus, Side, ms_to_iso
from workbench.strategy import Context, Strategy

S = OrderStatus


def flat(*closes: float) -> list[Row]:
    return [(c, c, c, c) for c in closes]


def run(strategy: Strategy, ohlc: list[Row], symbol: str = "X", **kw: Any) -> Step:
    """Start, feed ``ohlc`` (open, high, low, close) of one symbol from T0, stop."""
    return harness.run(strategy, harness.rows(ohlc, symbol), **kw)


def events(step: Step, seq: int = 1) -> list[tuple[int, str, str | None]]:
    """(ts, status, reason) of one order's journal events."""
    return [(e.ts, e.status, e.reason) for e in harness.events(step, seq)]


class Scripted(Strategy):
    """Calls ``script[i](ctx, bar)`` on the i-th bar; records what it hears."""

    def __init__(self, script: dict[int, Callable[[Context, Bar], Any]] | None = None) -> None:
        super().__init__()
        self.script = script or {}

    def on_start(self, ctx: Context) -> None:
        self.i = -1
        self.seen: list[tuple[str, int, Any]] = [("start", ctx.now, None)]
        self.orders: list[Order] = []

    def on_bar(self, ctx: Context, bar: Bar) -> Any:
        self.i += 1
        self.seen.append(("bar", ctx.now, bar.ts))
        action = self.script.get(self.i)
        return action(ctx, bar) if action else None

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        self.seen.append(("fill", ctx.now, (fill, ctx.position(fill.symbol), ctx.cash)))

    def on_reject(self, ctx: Context, order: Order) -> None:
        self.seen.append(("reject", ctx.now, (order.order_seq, order.status, order.reason)))

    def on_stop(self, ctx: Context) -> None:
        self.seen.append(("stop", ctx.now, None))

    def heard(self, kind: str) -> list[Any]:
        return [x for k, _, x in self.seen if k == kind]


def submit(intent: OrderIntent) -> Callable[[Context, Bar], None]:
    def act(ctx: Context, bar: Bar) -> None:
        ctx.submit(intent)
    return act


BUY1 = OrderIntent("X", Side.BUY, 1.0)
SELL1 = OrderIntent("X", Side.SELL, 1.0)


# --- time -----------------------------------------------------------------------------------
def test_step_on_bar_ctx_now_is_bar_close_time() -> None:
    strat = Scripted()
    run(strat, flat(1.0, 2.0, 3.0))
    assert [(now, ts) for k, now, ts in strat.seen if k == "bar"] == [
        (T0 + TF, T0), (T0 + 2 * TF, T0 + TF), (T0 + 3 * TF, T0 + 2 * TF)]


def test_step_hooks_start_bars_stop_each_called_in_order() -> None:
    strat = Scripted()
    run(strat, flat(1.0, 2.0))
    assert [k for k, _, _ in strat.seen] == ["start", "bar", "bar", "stop"]
    assert strat.seen[0][1] == T0


def test_step_market_order_and_fill_carry_signal_bar_close_time() -> None:
    strat = Scripted({1: submit(BUY1)})
    step = run(strat, flat(10.0, 11.0, 12.0))
    (order,) = orders(step)
    (fill,) = fills(step)
    assert (order.ts, order.bar_ts) == (T0 + 2 * TF, T0 + TF)
    assert (fill.ts, fill.bar_ts, fill.price) == (T0 + 2 * TF, T0 + TF, 11.0)
    assert events(step) == [(T0 + 2 * TF, "NEW", None), (T0 + 2 * TF, "SUBMITTED", None),
                            (T0 + 2 * TF, "FILLED", None)]


# --- orders and the context -----------------------------------------------------------------
def test_step_ctx_submit_returns_order_handle_numbered_per_run() -> None:
    handles: list[Order] = []
    strat = Scripted({0: lambda ctx, bar: handles.extend(
        [ctx.submit(BUY1), ctx.submit(OrderIntent.limit("X", Side.BUY, 1.0, 5.0, tag="bid"))])})
    step = run(strat, flat(10.0))
    first, second = handles
    assert [o.order_seq for o in handles] == [1, 2]
    assert [o.client_order_id for o in handles] == ["t-1", "t-2"]
    assert first.status is S.FILLED
    assert second.status is S.SUBMITTED and second.is_open and second.tag == "bid"
    assert [o.order_seq for o in orders(step)] == [h.order_seq for h in handles]
    # the journal holds each handle as taken on, and folds to the handle's state
    assert harness.records(step).orders == [order_record(h) for h in handles]
    assert [(o.status, o.reason, o.filled_units, o.updated_ts) for o in orders(step)] == [
        (h.status, h.reason, h.filled_units, h.updated_ts) for h in handles]


def test_step_intents_returned_from_on_bar_submitted_in_list_order() -> None:
    strat = Scripted({0: lambda ctx, bar: [BUY1, OrderIntent("X", Side.BUY, 2.0)]})
    step = run(strat, flat(10.0))
    assert [(o.order_seq, o.qty) for o in orders(step)] == [(1, 1.0), (2, 2.0)]


@pytest.mark.parametrize("nothing", [None, []])
def test_step_on_bar_returning_none_or_empty_list_submits_nothing(nothing: Any) -> None:
    strat = Scripted({0: lambda ctx, bar: nothing})
    step = run(strat, flat(10.0))
    assert orders(step) == []


def test_step_on_fill_sees_books_already_updated() -> None:
    strat = Scripted({0: submit(BUY1)})
    run(strat, flat(10.0), costs=CostModel(fee_bps=100.0), cash=100.0)
    ((fill, position, cash),) = strat.heard("fill")
    assert position == 1.0
    assert cash == pytest.approx(100.0 - 10.0 - 0.1, rel=1e-15)
    assert fill.fee == pytest.approx(0.1, rel=1e-15)


def test_step_ctx_position_cash_equity_marked_at_last_close() -> None:
    seen: list[tuple[float, float, float]] = []

    def look(ctx: Context, bar: Bar) -> None:
        seen.append((ctx.position("X"), ctx.cash, ctx.equity))

    strat = Scripted({0: submit(OrderIntent("X", Side.BUY, 2.0)), 1: look})
    run(strat, flat(10.0, 13.0), cash=100.0)
    assert seen == [(2.0, 80.0, 80.0 + 2.0 * 13.0)]


def test_step_rejected_order_events_new_rejected_and_on_reject_told() -> None:
    strat = Scripted({0: submit(SELL1)})
    step = run(strat, flat(10.0))
    assert events(step) == [(T0 + TF, "NEW", None),
                            (T0 + TF, "REJECTED", RejectReason.INSUFFICIENT_POSITION)]
    assert strat.heard("reject") == [(1, S.REJECTED, RejectReason.INSUFFICIENT_POSITION)]
    assert step.open_orders() == []


def test_step_submit_before_first_bar_rejected_no_price() -> None:
    class EarlyBird(Scripted):
        def on_start(self, ctx: Context) -> None:
            super().on_start(ctx)
            self.orders.append(ctx.submit(BUY1))

    strat = EarlyBird()
    run(strat, flat(10.0))
    assert strat.orders[0].status is S.REJECTED
    assert strat.orders[0].reason == RejectReason.NO_PRICE


def test_step_limit_placed_on_bar_fills_from_next_bar_on_touch() -> None:
    bid = OrderIntent.limit("X", Side.BUY, 1.0, 9.0)
    # bar 0 itself dips to 8 after its close is known: no fill on the placement bar
    rows: list[Row] = [(10.0, 10.0, 8.0, 10.0), (10.0, 10.0, 9.5, 10.0), (10.0, 10.0, 8.5, 9.0)]
    strat = Scripted({0: submit(bid)})
    step = run(strat, rows, costs=CostModel(spread_bps=50.0, slippage_bps=50.0))
    (fill,) = fills(step)
    assert (fill.bar_ts, fill.ts, fill.price) == (T0 + 2 * TF, T0 + 3 * TF, 9.0)
    assert events(step)[-1] == (T0 + 3 * TF, "FILLED", None)


def test_step_ctx_cancel_open_limit_true_then_false() -> None:
    results: list[bool] = []
    strat = Scripted({
        0: lambda ctx, bar: strat.orders.append(
            ctx.submit(OrderIntent.limit("X", Side.BUY, 1.0, 5.0))),
        1: lambda ctx, bar: results.extend([ctx.cancel(strat.orders[0]),
                                            ctx.cancel(strat.orders[0])]),
    })
    step = run(strat, flat(10.0, 10.0, 4.0))
    assert results == [True, False]
    assert events(step)[-1] == (T0 + 2 * TF, "CANCELED", CancelReason.USER)
    assert fills(step) == []
    assert step.book.reserved_cash == 0.0


def test_step_ctx_cancel_filled_order_false() -> None:
    results: list[bool] = []
    strat = Scripted({0: lambda ctx, bar: results.append(ctx.cancel(ctx.submit(BUY1)))})
    run(strat, flat(10.0))
    assert results == [False]


def test_step_open_orders_lists_resting_orders_by_symbol() -> None:
    seen: list[list[int]] = []

    def place(ctx: Context, bar: Bar) -> None:
        ctx.submit(OrderIntent.limit("X", Side.BUY, 1.0, 5.0))
        ctx.submit(BUY1)

    def look(ctx: Context, bar: Bar) -> None:
        seen.extend([[o.order_seq for o in ctx.open_orders()],
                     [o.order_seq for o in ctx.open_orders("X")],
                     [o.order_seq for o in ctx.open_orders("Y")]])

    run(Scripted({0: place, 1: look}), flat(10.0, 10.0))
    assert seen == [[1], [1], []]


def test_step_expired_limit_ends_canceled_expired_at_expiry_bar_time() -> None:
    strat = Scripted({0: submit(OrderIntent.limit("X", Side.BUY, 1.0, 5.0,
                                                  expire_after_bars=2))})
    step = run(strat, flat(10.0, 10.0, 10.0, 4.0))
    assert events(step)[-1] == (T0 + 3 * TF, "CANCELED", CancelReason.EXPIRED)
    assert fills(step) == []


def test_step_round_trip_recorded_when_sell_closes_buy() -> None:
    strat = Scripted({0: submit(OrderIntent("X", Side.BUY, 2.0)),
                      2: submit(OrderIntent("X", Side.SELL, 2.0))})
    step = run(strat, flat(100.0, 105.0, 110.0), costs=CostModel(fee_bps=10.0))
    (trip,) = step.book.round_trips
    assert (trip.symbol, trip.side, trip.qty) == ("X", "LONG", 2.0)
    assert (trip.entry_ts, trip.entry_price) == (T0 + TF, 100.0)
    assert (trip.exit_ts, trip.exit_price) == (T0 + 3 * TF, 110.0)
    assert trip.fees == pytest.approx(0.2 + 0.22, rel=1e-12)
    assert trip.pnl == pytest.approx(20.0 - 0.42, rel=1e-12)
    assert trip.return_pct == pytest.approx((20.0 - 0.42) / 200.0 * 100, rel=1e-12)
    assert step.book.cash == pytest.approx(10_000.0 + 20.0 - 0.42, rel=1e-12)


def test_step_risk_block_never_reaches_broker_and_on_reject_told() -> None:
    from workbench.brokers.fills import CostModel
    from workbench.config import RiskConfig
    from workbench.risk import RiskEngine

    risk = RiskEngine(RiskConfig(max_order_notional=15.0), CostModel())
    strat = Scripted({0: lambda ctx, bar: [OrderIntent("X", Side.BUY, 2.0), BUY1]})
    step = run(strat, flat(10.0), risk=risk)
    code = "RISK_ORDER_NOTIONAL"
    assert events(step, 1) == [(T0 + TF, "NEW", None), (T0 + TF, "BLOCKED", code)]
    assert [(e[0], e[2], e[5]) for e in risk.events] == [(T0 + TF, 1, code)]
    assert strat.heard("reject") == [(1, S.BLOCKED, code)]
    assert [f.order_seq for f in fills(step)] == [2]


class HalfUnitCap(SimBroker):
    """A simulated broker that takes no order above 0.5 (as ``BinanceBroker`` under --tiny)."""

    def cap_qty(self, intent: OrderIntent) -> float:
        return min(intent.qty, 0.5)


def test_step_order_the_broker_caps_is_journaled_and_risk_checked_at_the_capped_qty() -> None:
    from workbench.config import RiskConfig
    from workbench.risk import RiskEngine

    risk = RiskEngine(RiskConfig(max_order_notional=15.0), CostModel())
    # 2.0 at 10 would be blocked (20 > 15); capped to 0.5 it passes
    strat = Scripted({0: lambda ctx, bar: [OrderIntent("X", Side.BUY, 2.0),
                                           OrderIntent("X", Side.BUY, 0.25)]})
    step = run(strat, flat(10.0), risk=risk, broker=HalfUnitCap(CostModel()))
    assert [(o.qty, o.qty_units) for o in harness.records(step).orders] == [
        (0.5, 50_000_000), (0.25, 25_000_000)]
    assert events(step, 1) == [(T0 + TF, "NEW", "CAPPED 2.0 -> 0.5"),
                               (T0 + TF, "SUBMITTED", None), (T0 + TF, "FILLED", None)]
    assert events(step, 2)[0] == (T0 + TF, "NEW", None)  # under the cap: as asked
    assert [f.qty for f in fills(step)] == [0.5, 0.25] and risk.events == []


# --- strategy errors ------------------------------------------------------------------------
class Boom(Strategy):
    """Raises ValueError('boom') in the hook named ``where``."""

    where: str = "on_bar"

    def _maybe(self, hook: str) -> None:
        if hook == self.where:
            raise ValueError("boom")

    def on_start(self, ctx: Context) -> None:
        self._maybe("on_start")

    def on_bar(self, ctx: Context, bar: Bar) -> list[OrderIntent] | None:
        self._maybe("on_bar")
        if bar.ts == T0 + TF:
            return [OrderIntent("X", Side.BUY, 1.0), OrderIntent("X", Side.SELL, 5.0)]
        return None

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        self._maybe("on_fill")

    def on_reject(self, ctx: Context, order: Order) -> None:
        self._maybe("on_reject")

    def on_stop(self, ctx: Context) -> None:
        self._maybe("on_stop")


@pytest.mark.parametrize(
    ("hook", "bar_ts"),
    [("on_bar", T0), ("on_fill", T0 + TF), ("on_reject", T0 + TF), ("on_stop", T0 + 2 * TF)],
)
def test_step_strategy_exception_wrapped_naming_strategy_hook_symbol_bar(hook: str,
                                                                         bar_ts: int) -> None:
    with pytest.raises(StrategyError) as info:
        run(Boom(where=hook), flat(10.0, 10.0, 10.0), symbol="X")
    text = str(info.value)
    assert "Boom" in text
    assert hook in text
    assert f"X {ms_to_iso(bar_ts)}" in text
    assert "ValueError" in text and "boom" in text
    assert isinstance(info.value.__cause__, ValueError)


def test_step_strategy_exception_in_on_start_wrapped_naming_hook() -> None:
    with pytest.raises(StrategyError, match=r"Boom raised ValueError in on_start: boom"):
        run(Boom(where="on_start"), flat(10.0))


def test_step_strategy_raising_strategy_error_passes_through_unchanged() -> None:
    mine = StrategyError("my own words")

    def fail(ctx: Context, bar: Bar) -> None:
        raise mine

    with pytest.raises(StrategyError) as info:
        run(Scripted({0: fail}), flat(10.0))
    assert info.value is mine


@pytest.mark.parametrize("returned", [BUY1, 5, True], ids=["intent", "int", "true"])
def test_step_on_bar_returning_non_list_raises_strategy_error(returned: Any) -> None:
    with pytest.raises(StrategyError, match=r"on_bar returned .*return a list"):
        run(Scripted({0: lambda ctx, bar: returned}), flat(10.0))


def test_step_on_bar_list_holding_non_intent_raises_strategy_error() -> None:
    with pytest.raises(StrategyError, match="expected an OrderIntent, got dict"):
        run(Scripted({0: lambda ctx, bar: [{"side": "BUY"}]}), flat(10.0))


def test_step_ctx_submit_non_intent_raises_strategy_error() -> None:
    def bad(ctx: Context, bar: Bar) -> None:
        ctx.submit(("X", "BUY", 1.0))  # type: ignore[arg-type]

    with pytest.raises(StrategyError, match="expected an OrderIntent, got tuple"):
        run(Scripted({0: bad}), flat(10.0))


def _gen(ctx: Context, bar: Bar) -> Iterator[OrderIntent]:
    yield BUY1


@pytest.mark.parametrize(
    "returned",
    [lambda ctx, bar: (BUY1,), _gen, lambda ctx, bar: 0, lambda ctx, bar: False],
    ids=["tuple", "generator", "zero", "false"],
)
def test_step_on_bar_returning_other_non_list_raises_strategy_error(
        returned: Callable[[Context, Bar], Any]) -> None:
    with pytest.raises(StrategyError):
        run(Scripted({0: returned}), flat(10.0))


def test_step_generator_on_bar_exception_wrapped_as_strategy_error() -> None:
    class Gen(Strategy):
        def on_bar(self, ctx: Context, bar: Bar) -> Iterator[OrderIntent]:  # type: ignore[override]
            yield BUY1
            raise KeyError("boom")

    with pytest.raises(StrategyError, match="Gen"):
        run(Gen(), flat(10.0))


# --- cancelling from on_fill (one-cancels-other) --------------------------------------------
class OneCancelsOther(Strategy):
    """Two resting bids; the first to fill cancels the other."""

    def on_start(self, ctx: Context) -> None:
        self.bids: list[Order] = []

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if not self.bids:
            self.bids = [ctx.submit(OrderIntent.limit("X", Side.BUY, 1.0, 9.5)),
                         ctx.submit(OrderIntent.limit("X", Side.BUY, 1.0, 9.0))]

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        for bid in self.bids:
            if bid.is_open:
                ctx.cancel(bid)


def test_step_cancel_from_on_fill_of_untouched_sibling_canceled_user() -> None:
    step = run(OneCancelsOther(), [(10.0, 10.0, 10.0, 10.0), (10.0, 10.0, 9.2, 9.6)])
    assert [f.order_seq for f in fills(step)] == [1]
    assert events(step, 2)[-1] == (T0 + 2 * TF, "CANCELED", CancelReason.USER)
    assert step.book.reserved_cash == 0.0


def test_step_cancel_from_on_fill_of_touched_sibling_canceled_not_filled() -> None:
    step = run(OneCancelsOther(), [(10.0, 10.0, 10.0, 10.0), (10.0, 10.0, 8.0, 9.0)])
    assert [f.order_seq for f in fills(step)] == [1]
    assert events(step, 2)[-1] == (T0 + 2 * TF, "CANCELED", CancelReason.USER)
    assert step.book.position_units("X") == 100_000_000


# --- hostile strategies -----------------------------------------------------------------------
def test_step_ctx_book_assignment_raises_strategy_error_books_unchanged() -> None:
    def grab(ctx: Context, bar: Bar) -> None:
        ctx.book.cash = 1e9  # type: ignore[misc]

    strategy = Scripted({0: grab})
    with pytest.raises(StrategyError, match=r"AttributeError in on_bar .*ctx.book is read-only"):
        run(strategy, flat(10.0, 10.0))


def test_step_ctx_book_positions_mapping_refuses_writes() -> None:
    def grab(ctx: Context, bar: Bar) -> None:
        ctx.book.units["X"] = 10**20  # type: ignore[index]

    with pytest.raises(StrategyError, match=r"TypeError in on_bar"):
        run(Scripted({0: grab}), flat(10.0, 10.0))


def test_step_books_changed_behind_ctx_fails_run_naming_cash() -> None:
    """A strategy that digs past ctx to the engine's Book: the broker spends the forged cash,
    then the books no longer add up to their fills and the run fails saying so."""
    def forge(ctx: Context, bar: Bar) -> None:
        ctx._step.book.cash = 1e9
        ctx.submit(OrderIntent("X", Side.BUY, 1_000_000.0))

    with pytest.raises(StrategyError, match=r"hold cash .* fills make it -9990000.0.*outside a "
                                            r"fill") as info:
        run(Scripted({0: forge}), flat(10.0, 10.0))
    assert "ctx.submit" in str(info.value)


def test_step_position_forged_behind_ctx_then_sold_fails_run() -> None:
    def forge(ctx: Context, bar: Bar) -> None:
        ctx._step.book.units["X"] = 5 * 100_000_000
        ctx.submit(OrderIntent("X", Side.SELL, 5.0))

    with pytest.raises(StrategyError, match=r"exceeds the bought lots|outside a fill"):
        run(Scripted({0: forge}), flat(10.0, 10.0))


@pytest.mark.parametrize("hook", ["on_start", "on_bar", "on_fill", "on_stop"])
@pytest.mark.parametrize("raised", [SystemExit(0), SystemExit(None), GeneratorExit()],
                         ids=["exit0", "exitNone", "generator-exit"])
def test_step_strategy_base_exception_in_hook_raises_strategy_error(
        hook: str, raised: BaseException) -> None:
    class Quits(Strategy):
        def on_start(self, ctx: Context) -> None:
            if hook == "on_start":
                raise raised

        def on_bar(self, ctx: Context, bar: Bar) -> Any:
            if hook == "on_bar":
                raise raised
            return [BUY1] if hook == "on_fill" else None

        def on_fill(self, ctx: Context, fill: Fill) -> None:
            raise raised

        def on_stop(self, ctx: Context) -> None:
            if hook == "on_stop":
                raise raised

    with pytest.raises(StrategyError, match=rf"Quits raised {type(raised).__name__} in {hook}"):
        run(Quits(), flat(10.0, 10.0))


def test_step_keyboard_interrupt_in_strategy_is_not_wrapped() -> None:
    def interrupt(ctx: Context, bar: Bar) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(Scripted({0: interrupt}), flat(10.0))


@pytest.mark.parametrize("qty", [1e12, float("inf"), float("nan"), -1.0, 10**25],
                         ids=["1e12", "inf", "nan", "negative", "int-1e25"])
def test_step_intent_qty_changed_after_creation_raises_strategy_error_naming_intent(
        qty: Any) -> None:
    def tamper(ctx: Context, bar: Bar) -> None:
        intent = OrderIntent("X", Side.BUY, 1.0)
        intent.qty = qty
        ctx.submit(intent)

    with pytest.raises(StrategyError, match=r"in submit .*invalid order intent OrderIntent\("
                                            r"symbol='X'.*qty"):
        run(Scripted({0: tamper}), flat(10.0))


def test_step_huge_but_valid_qty_rejected_insufficient_funds() -> None:
    step = run(Scripted({0: submit(OrderIntent("X", Side.BUY, 9e10))}), flat(10.0, 10.0))
    (order,) = orders(step)
    assert (order.status, order.reason) == (S.REJECTED, RejectReason.INSUFFICIENT_FUNDS)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("side", "HOLD", "side must be"),
    ("symbol", 42, "symbol must be a non-empty string"),
    ("tag", 3.5, "tag must be a string or None"),
    ("reduce_only", "yes", "reduce_only must be True or False"),
    ("limit_price", float("nan"), "a market order takes no limit_price"),
])
def test_step_intent_field_changed_after_creation_raises_strategy_error(
        field: str, value: Any, message: str) -> None:
    def tamper(ctx: Context, bar: Bar) -> None:
        intent = OrderIntent("X", Side.BUY, 1.0)
        setattr(intent, field, value)
        ctx.submit(intent)

    with pytest.raises(StrategyError, match=rf"in submit .*invalid order intent .*{message}"):
        run(Scripted({0: tamper}), flat(10.0))


def test_step_tagged_reduce_only_intent_still_accepted() -> None:
    intent = OrderIntent("X", Side.BUY, 1.0, tag="entry")
    step = run(Scripted({0: submit(intent)}), flat(10.0, 10.0))
    (order,) = orders(step)
    assert (order.status, order.tag) == (S.FILLED, "entry")


def test_step_journal_keeps_the_order_as_submitted_not_later_changes_to_the_handle() -> None:
    handles: list[Order] = []

    def place_and_tamper(ctx: Context, bar: Bar) -> None:
        order = ctx.submit(OrderIntent.limit("X", Side.BUY, 1.0, 5.0, tag="bid"))
        order.qty, order.tag = 7.0, "changed"  # a strategy scribbling on its handle
        handles.append(order)

    step = run(Scripted({0: place_and_tamper}), flat(10.0))
    (record,) = harness.records(step).orders
    assert (record.qty, record.tag, record.limit_price) == (1.0, "bid", 5.0)
    assert not hasattr(record, "status")
    (state,) = orders(step)
    assert (state.status, state.qty) == (S.SUBMITTED, 1.0)
