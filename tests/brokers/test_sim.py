"""SimBroker: spot rules, reservations, limit touches, expiry, next-open fills.

The broker is driven directly here, through a recording sink that plays the step's part
(journal the transition, apply the fill to the books), so each rule is seen in isolation.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench.book import Book, ShortBook
from workbench.brokers.base import CancelReason, RejectReason
from workbench.brokers.fills import CostModel
from workbench.brokers.sim import SimBroker
from workbench.model import (
    MAX_QTY,
    MAX_UNITS,
    NO_COSTS,
    QTY_SCALE,
    Bar,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    Side,
    qty_to_units,
)

T0 = 1_704_067_200_000
TF = 60_000
S = OrderStatus


class Venue:
    """A SimBroker bound to a book and a sink that records what the broker reports."""

    def __init__(self, costs: CostModel | None = None, cash: float = 10_000.0,
                 short_margin: float | None = None) -> None:
        self.book = Book(cash) if short_margin is None else ShortBook(cash)
        self.broker = SimBroker(costs or CostModel(), short_margin=short_margin)
        self.broker.bind(self, self.book)
        self.events: list[tuple[int, OrderStatus, str | None]] = []
        self.fills: list[Fill] = []
        self.bar_ts: dict[str, int] = {}
        self.now_bar_ts = T0 - TF
        self.seq = 0

    # OrderSink
    def order_status(self, order: Order, status: OrderStatus, reason: str | None = None) -> None:
        order.status, order.reason = status, reason
        self.events.append((order.order_seq, status, reason))

    def order_fill(self, order: Order, units: int, price: float, fee: float,
                   trade_id: str | None = None, venue_ts: int | None = None,
                   fee_units: int = 0, costs: tuple[float, float, float] = NO_COSTS) -> None:
        fill = Fill(len(self.fills) + 1, order.order_seq, order.client_order_id, order.symbol,
                    order.side, units / QTY_SCALE, units, price, fee, self.now_bar_ts + TF,
                    self.now_bar_ts, trade_id, venue_ts, fee_units, *costs)
        self.book.apply_fill(fill)
        self.fills.append(fill)
        order.filled_units += units
        self.order_status(order, S.FILLED)

    # driving
    def bar(self, o: float, h: float, low: float, c: float, symbol: str = "X") -> Bar:
        """The next bar of ``symbol``: mark its close, then let resting orders work (as Step)."""
        ts = self.bar_ts.get(symbol, T0 - TF) + TF
        self.bar_ts[symbol] = ts
        self.now_bar_ts = ts
        bar = Bar(symbol, ts, o, h, low, c, 1.0)
        self.book.last[symbol] = c
        self.broker.on_bar(bar)
        return bar

    def flat(self, price: float, symbol: str = "X") -> Bar:
        return self.bar(price, price, price, price, symbol)

    def order(self, side: Side, qty: float, limit: float | None = None, symbol: str = "X",
              expire: int | None = None) -> Order:
        self.seq += 1
        order = Order(self.seq, f"t-{self.seq}", symbol, side,
                      OrderType.MARKET if limit is None else OrderType.LIMIT, qty,
                      qty_to_units(qty), limit, self.now_bar_ts + TF, self.now_bar_ts,
                      expire_after_bars=expire)
        self.broker.submit(order)
        return order

    def status_of(self, order: Order) -> list[tuple[OrderStatus, str | None]]:
        return [(s, r) for seq, s, r in self.events if seq == order.order_seq]


# --- submit-time rules ----------------------------------------------------------------------
def test_submit_before_any_price_rejected_no_price() -> None:
    v = Venue()
    order = v.order(Side.BUY, 1.0)
    assert v.status_of(order) == [(S.REJECTED, RejectReason.NO_PRICE)]
    assert v.fills == []


def test_market_buy_at_close_submitted_then_filled_at_adjusted_close_with_fee() -> None:
    costs = CostModel(fee_bps=10.0, spread_bps=4.0, slippage_bps=5.0)
    v = Venue(costs)
    v.bar(99.0, 101.0, 98.0, 100.0)
    order = v.order(Side.BUY, 2.0)
    assert v.status_of(order) == [(S.SUBMITTED, None), (S.FILLED, None)]
    (fill,) = v.fills
    expected = 100.0 * (1 + 4.0 / 2 / 1e4) * (1 + 5.0 / 1e4)
    assert fill.price == expected
    assert fill.fee == pytest.approx(2.0 * expected * 10.0 / 1e4, rel=1e-15)
    assert v.book.position_units("X") == 2 * QTY_SCALE
    assert v.book.cash == pytest.approx(10_000.0 - 2.0 * expected - fill.fee, rel=1e-15)


def test_market_sell_at_close_filled_below_close() -> None:
    v = Venue(CostModel(spread_bps=4.0, slippage_bps=5.0), cash=1_000.0)
    v.bar(100.0, 100.0, 100.0, 100.0)
    v.order(Side.BUY, 1.0)
    v.bar(100.0, 110.0, 100.0, 110.0)
    v.order(Side.SELL, 1.0)
    assert v.fills[1].price == 110.0 * (1 - 4.0 / 2 / 1e4) * (1 - 5.0 / 1e4)
    assert v.book.position_units("X") == 0


def test_market_sell_flat_rejected_insufficient_position() -> None:
    v = Venue()
    v.flat(100.0)
    order = v.order(Side.SELL, 1.0)
    assert v.status_of(order) == [(S.REJECTED, RejectReason.INSUFFICIENT_POSITION)]


def test_market_sell_beyond_position_rejected_insufficient_position() -> None:
    v = Venue()
    v.flat(100.0)
    v.order(Side.BUY, 1.0)
    order = v.order(Side.SELL, 1.00000001)
    assert v.status_of(order) == [(S.REJECTED, RejectReason.INSUFFICIENT_POSITION)]
    assert v.book.position_units("X") == QTY_SCALE


def test_market_buy_cost_over_cash_rejected_insufficient_funds() -> None:
    v = Venue(cash=99.99)
    v.flat(100.0)
    order = v.order(Side.BUY, 1.0)
    assert v.status_of(order) == [(S.REJECTED, RejectReason.INSUFFICIENT_FUNDS)]
    assert v.book.cash == 99.99


def test_market_buy_fee_pushing_cost_over_cash_rejected_insufficient_funds() -> None:
    v = Venue(CostModel(fee_bps=100.0), cash=100.5)  # notional 100 fits, fee 1 does not
    v.flat(100.0)
    order = v.order(Side.BUY, 1.0)
    assert v.status_of(order) == [(S.REJECTED, RejectReason.INSUFFICIENT_FUNDS)]


def test_market_buy_cost_equal_to_cash_fills() -> None:
    v = Venue(CostModel(fee_bps=100.0), cash=101.0)
    v.flat(100.0)
    order = v.order(Side.BUY, 1.0)
    assert order.status is S.FILLED
    assert v.book.cash == 0.0


@pytest.mark.parametrize(("qty", "status"), [(0.0999, S.REJECTED), (0.1, S.FILLED)])
def test_market_order_below_min_notional_rejected_min_notional(qty: float, status: OrderStatus
                                                               ) -> None:
    v = Venue(CostModel(min_notional=10.0))
    v.flat(100.0)
    order = v.order(Side.BUY, qty)
    assert order.status is status
    if status is S.REJECTED:
        assert order.reason == RejectReason.MIN_NOTIONAL


def test_limit_order_min_notional_judged_at_limit_price() -> None:
    v = Venue(CostModel(min_notional=10.0))
    v.flat(100.0)
    below = v.order(Side.BUY, 0.1, limit=99.0)  # 9.9 at the limit, 10 at the close
    at = v.order(Side.BUY, 0.1, limit=100.0)
    assert v.status_of(below) == [(S.REJECTED, RejectReason.MIN_NOTIONAL)]
    assert v.status_of(at) == [(S.SUBMITTED, None)]


def test_min_notional_applies_to_sells_too() -> None:
    v = Venue(CostModel(min_notional=50.0))
    v.flat(100.0)
    v.order(Side.BUY, 1.0)
    order = v.order(Side.SELL, 0.4)
    assert v.status_of(order) == [(S.REJECTED, RejectReason.MIN_NOTIONAL)]


# --- reservations ---------------------------------------------------------------------------
def test_limit_buy_rests_and_reserves_notional_plus_fee() -> None:
    v = Venue(CostModel(fee_bps=10.0))
    v.flat(100.0)
    order = v.order(Side.BUY, 2.0, limit=95.0)
    assert v.status_of(order) == [(S.SUBMITTED, None)]
    assert v.fills == []
    assert v.book.cash == 10_000.0
    assert v.book.reserved_cash == pytest.approx(190.0 + 0.19, rel=1e-12)
    assert v.broker.resting == {"X": [order]}


def test_limit_buy_reservation_makes_market_buy_over_free_cash_rejected() -> None:
    v = Venue(cash=1_000.0)
    v.flat(100.0)
    v.order(Side.BUY, 6.0, limit=95.0)  # reserves 570 of 1000
    order = v.order(Side.BUY, 5.0)  # 500 > 430 free, though < 1000 cash
    assert v.status_of(order) == [(S.REJECTED, RejectReason.INSUFFICIENT_FUNDS)]


def test_limit_buy_over_free_cash_rejected_insufficient_funds() -> None:
    v = Venue(CostModel(fee_bps=10.0), cash=95.0)
    v.flat(100.0)
    order = v.order(Side.BUY, 1.0, limit=95.0)  # 95 + 0.095 fee > 95
    assert v.status_of(order) == [(S.REJECTED, RejectReason.INSUFFICIENT_FUNDS)]


def test_limit_sell_reserves_qty_so_market_sell_rejected() -> None:
    v = Venue()
    v.flat(100.0)
    v.order(Side.BUY, 1.0)
    v.order(Side.SELL, 0.6, limit=110.0)
    assert v.book.free_units("X") == 40_000_000
    ok = v.order(Side.SELL, 0.4)
    too_much = v.order(Side.SELL, 0.1)
    assert ok.status is S.FILLED
    assert v.status_of(too_much) == [(S.REJECTED, RejectReason.INSUFFICIENT_POSITION)]


# --- shorts (portfolio.allow_short, adr/0026) -------------------------------------------------
FREE = CostModel(fee_bps=0.0, slippage_bps=0.0)


def test_short_margin_sell_beyond_position_opens_short_with_its_proceeds_in_cash() -> None:
    v = Venue(FREE, cash=1_000.0, short_margin=1.0)
    v.flat(100.0)
    v.order(Side.BUY, 1.0)
    order = v.order(Side.SELL, 3.0)
    assert v.status_of(order) == [(S.SUBMITTED, None), (S.FILLED, None)]
    assert v.book.position_units("X") == -2 * QTY_SCALE
    assert v.book.cash == 1_000.0 - 100.0 + 300.0
    assert v.book.equity() == 1_000.0


def test_short_margin_short_past_equity_times_margin_rejected_insufficient_margin() -> None:
    v = Venue(FREE, cash=1_000.0, short_margin=0.5)
    v.flat(100.0)
    too_much = v.order(Side.SELL, 5.00000001)  # 500.000001 short against 1,000 x 0.5
    ok = v.order(Side.SELL, 5.0)
    more = v.order(Side.SELL, 0.01)
    assert v.status_of(too_much) == [(S.REJECTED, RejectReason.INSUFFICIENT_MARGIN)]
    assert ok.status is S.FILLED
    assert v.status_of(more) == [(S.REJECTED, RejectReason.INSUFFICIENT_MARGIN)]
    assert v.book.position_units("X") == -5 * QTY_SCALE


def test_short_margin_counts_the_other_symbols_shorts_at_their_marks() -> None:
    v = Venue(FREE, cash=1_000.0, short_margin=1.0)
    v.flat(100.0, "Y")
    v.flat(100.0)
    v.order(Side.SELL, 6.0, symbol="Y")
    v.flat(50.0, "Y")  # Y's short of 6 is now worth 300; equity 1,300
    ok = v.order(Side.SELL, 10.0)  # 1,000 + 300 <= 1,300
    more = v.order(Side.SELL, 0.01)
    assert ok.status is S.FILLED
    assert v.status_of(more) == [(S.REJECTED, RejectReason.INSUFFICIENT_MARGIN)]


def test_short_margin_limit_sell_beyond_position_rests_and_covers_by_buy() -> None:
    v = Venue(FREE, cash=1_000.0, short_margin=1.0)
    v.flat(100.0)
    order = v.order(Side.SELL, 2.0, limit=105.0)
    assert order.status is S.SUBMITTED and v.book.free_units("X") == -2 * QTY_SCALE
    v.bar(100.0, 106.0, 99.0, 104.0)
    assert order.status is S.FILLED and v.book.position_units("X") == -2 * QTY_SCALE
    v.flat(90.0)
    v.order(Side.BUY, 2.0)
    assert v.book.units == {}
    (trip,) = v.book.round_trips
    assert (trip.side, trip.entry_price, trip.exit_price, trip.pnl) == ("SHORT", 105.0, 90.0,
                                                                        30.0)


def test_limit_sell_beyond_position_rejected_insufficient_position() -> None:
    v = Venue()
    v.flat(100.0)
    v.order(Side.BUY, 1.0)
    order = v.order(Side.SELL, 1.5, limit=110.0)
    assert v.status_of(order) == [(S.REJECTED, RejectReason.INSUFFICIENT_POSITION)]


# --- limit fills ----------------------------------------------------------------------------
def test_limit_buy_not_filled_on_its_own_placement_bar() -> None:
    v = Venue()
    v.flat(100.0)
    v.order(Side.BUY, 1.0, limit=100.0)
    v.broker.on_bar(Bar("X", v.now_bar_ts, 100.0, 100.0, 90.0, 95.0, 1.0))  # same bar again
    assert v.fills == []


def test_limit_buy_fills_next_bar_on_touch_at_limit_without_spread_or_slippage() -> None:
    costs = CostModel(fee_bps=10.0, spread_bps=20.0, slippage_bps=30.0)
    v = Venue(costs)
    v.flat(100.0)
    order = v.order(Side.BUY, 2.0, limit=97.5)
    v.bar(99.0, 100.0, 97.5, 98.0)  # low == limit: a touch
    assert v.status_of(order)[-1] == (S.FILLED, None)
    (fill,) = v.fills
    assert fill.price == 97.5
    assert fill.fee == pytest.approx(2.0 * 97.5 * 10.0 / 1e4, rel=1e-15)
    assert fill.bar_ts == T0 + TF
    assert v.book.reserved_cash == 0.0
    assert v.book.cash == pytest.approx(10_000.0 - 195.0 - fill.fee, rel=1e-15)
    assert v.broker.resting == {}


def test_limit_buy_untouched_bar_keeps_resting() -> None:
    v = Venue()
    v.flat(100.0)
    order = v.order(Side.BUY, 1.0, limit=97.5)
    for _ in range(50):
        v.bar(99.0, 100.0, 97.51, 98.0)
    assert order.status is S.SUBMITTED
    assert v.fills == []


def test_limit_buy_bar_opening_through_limit_fills_at_open() -> None:
    v = Venue(CostModel(spread_bps=20.0, slippage_bps=30.0))
    v.flat(100.0)
    v.order(Side.BUY, 1.0, limit=97.5)
    v.bar(96.0, 99.0, 95.0, 98.0)
    assert v.fills[0].price == 96.0


def test_limit_sell_fills_on_touch_at_limit() -> None:
    v = Venue(CostModel(spread_bps=20.0, slippage_bps=30.0))
    v.flat(100.0)
    v.order(Side.BUY, 1.0)
    order = v.order(Side.SELL, 1.0, limit=102.0)
    v.bar(100.0, 101.99, 99.0, 101.0)
    assert order.status is S.SUBMITTED
    v.bar(101.0, 102.0, 100.0, 101.0)
    assert order.status is S.FILLED
    assert v.fills[-1].price == 102.0
    assert v.book.position_units("X") == 0
    assert v.book.reserved_units == {}


def test_limit_sell_bar_opening_through_limit_fills_at_open() -> None:
    v = Venue()
    v.flat(100.0)
    v.order(Side.BUY, 1.0)
    v.order(Side.SELL, 1.0, limit=102.0)
    v.bar(104.0, 105.0, 103.0, 104.5)
    assert v.fills[-1].price == 104.0


def test_limit_order_ignores_other_symbols_bars() -> None:
    v = Venue()
    v.flat(100.0, "X")
    order = v.order(Side.BUY, 1.0, limit=99.0, symbol="X", expire=1)
    v.bar(50.0, 50.0, 1.0, 50.0, symbol="Y")
    v.bar(50.0, 50.0, 1.0, 50.0, symbol="Y")
    assert order.status is S.SUBMITTED


@given(
    limit=st.floats(min_value=90.0, max_value=110.0),
    path=st.lists(st.tuples(st.floats(min_value=90.0, max_value=110.0),
                            st.floats(min_value=90.0, max_value=110.0),
                            st.floats(min_value=0.0, max_value=5.0),
                            st.floats(min_value=0.0, max_value=5.0)),
                  min_size=1, max_size=20),
)
def test_limit_buy_fills_on_first_touching_bar_never_above_limit(
        limit: float, path: list[tuple[float, float, float, float]]) -> None:
    v = Venue(CostModel(spread_bps=10.0, slippage_bps=10.0), cash=1e6)
    v.flat(100.0)
    order = v.order(Side.BUY, 1.0, limit=limit)
    first_touch = None
    for i, (o, c, up, down) in enumerate(path):
        low = min(o, c) - down
        v.bar(o, max(o, c) + up, low, c)
        if first_touch is None and low <= limit:
            first_touch = (i, o)
    if first_touch is None:
        assert order.status is S.SUBMITTED
        assert v.fills == []
        return
    i, o = first_touch
    (fill,) = v.fills
    assert fill.bar_ts == T0 + (i + 1) * TF
    assert fill.price <= limit
    assert fill.price == min(o, limit)


# --- cancel and expiry ----------------------------------------------------------------------
def test_cancel_resting_limit_canceled_user_releases_reservation() -> None:
    v = Venue(CostModel(fee_bps=10.0))
    v.flat(100.0)
    order = v.order(Side.BUY, 1.0, limit=95.0)
    assert v.broker.cancel(order) is True
    assert v.status_of(order)[-1] == (S.CANCELED, CancelReason.USER)
    assert v.book.reserved_cash == 0.0
    assert v.broker.resting == {}
    v.bar(90.0, 90.0, 90.0, 90.0)
    assert v.fills == []


def test_cancel_twice_second_returns_false() -> None:
    v = Venue()
    v.flat(100.0)
    order = v.order(Side.BUY, 1.0, limit=95.0)
    assert v.broker.cancel(order) is True
    assert v.broker.cancel(order) is False
    assert [s for s, _ in v.status_of(order)].count(S.CANCELED) == 1


def test_cancel_filled_market_order_returns_false() -> None:
    v = Venue()
    v.flat(100.0)
    order = v.order(Side.BUY, 1.0)
    assert v.broker.cancel(order) is False
    assert order.status is S.FILLED


def test_cancel_limit_sell_releases_reserved_units() -> None:
    v = Venue()
    v.flat(100.0)
    v.order(Side.BUY, 1.0)
    sell = v.order(Side.SELL, 1.0, limit=110.0)
    v.broker.cancel(sell)
    assert v.book.free_units("X") == QTY_SCALE
    assert v.order(Side.SELL, 1.0).status is S.FILLED


@pytest.mark.parametrize("n", [1, 3])
def test_limit_expire_after_n_untouched_bars_canceled_expired(n: int) -> None:
    v = Venue()
    v.flat(100.0)
    order = v.order(Side.BUY, 1.0, limit=90.0, expire=n)
    for _ in range(n - 1):
        v.flat(100.0)
    assert order.status is S.SUBMITTED
    v.flat(100.0)
    assert v.status_of(order)[-1] == (S.CANCELED, CancelReason.EXPIRED)
    assert v.book.reserved_cash == 0.0
    assert v.broker.resting == {}


def test_limit_with_expiry_touched_on_last_bar_fills() -> None:
    v = Venue()
    v.flat(100.0)
    order = v.order(Side.BUY, 1.0, limit=90.0, expire=2)
    v.flat(100.0)
    v.bar(100.0, 100.0, 90.0, 95.0)
    assert order.status is S.FILLED
    assert v.fills[0].price == 90.0


# --- next_open ------------------------------------------------------------------------------
def test_next_open_market_buy_fills_at_next_open_adjusted() -> None:
    costs = CostModel(fee_bps=10.0, spread_bps=4.0, slippage_bps=5.0, fill_at="next_open")
    v = Venue(costs)
    v.flat(100.0)
    order = v.order(Side.BUY, 1.0)
    assert v.status_of(order) == [(S.SUBMITTED, None)]
    assert v.fills == []
    v.bar(103.0, 104.0, 102.0, 103.5)
    (fill,) = v.fills
    assert fill.price == 103.0 * (1 + 4.0 / 2 / 1e4) * (1 + 5.0 / 1e4)
    assert fill.fee == pytest.approx(fill.price * 10.0 / 1e4, rel=1e-15)
    assert fill.bar_ts == T0 + TF
    assert order.status is S.FILLED


def test_next_open_market_sell_fills_at_next_open_below_it() -> None:
    v = Venue(CostModel(spread_bps=4.0, fill_at="next_open"))
    v.flat(100.0)
    v.order(Side.BUY, 1.0)
    v.flat(100.0)
    v.order(Side.SELL, 1.0)
    v.bar(101.0, 101.0, 101.0, 101.0)
    assert v.fills[-1].price == 101.0 * (1 - 4.0 / 2 / 1e4)
    assert v.book.position_units("X") == 0


def test_next_open_market_sell_reserves_position_at_submit() -> None:
    v = Venue(CostModel(fill_at="next_open"))
    v.flat(100.0)
    v.order(Side.BUY, 1.0)
    v.flat(100.0)
    v.order(Side.SELL, 1.0)
    second = v.order(Side.SELL, 1.0)
    assert v.status_of(second) == [(S.REJECTED, RejectReason.INSUFFICIENT_POSITION)]


def test_next_open_market_buy_below_min_notional_rejected_at_fill() -> None:
    v = Venue(CostModel(min_notional=100.0, fill_at="next_open"))
    v.flat(100.0)
    order = v.order(Side.BUY, 1.0)
    v.flat(99.0)  # opens at 99: notional 99 < 100
    assert v.status_of(order) == [(S.SUBMITTED, None), (S.REJECTED, RejectReason.MIN_NOTIONAL)]
    assert v.fills == []


def test_next_open_market_buy_without_funds_at_open_rejected_insufficient_funds() -> None:
    v = Venue(CostModel(fill_at="next_open"), cash=100.0)
    v.flat(100.0)
    order = v.order(Side.BUY, 1.0)
    v.flat(101.0)
    assert v.status_of(order)[-1] == (S.REJECTED, RejectReason.INSUFFICIENT_FUNDS)
    assert v.book.cash == 100.0


def test_next_open_market_order_cancelled_before_next_bar_never_fills() -> None:
    v = Venue(CostModel(fill_at="next_open"))
    v.flat(100.0)
    order = v.order(Side.BUY, 1.0)
    assert v.broker.cancel(order) is True
    v.flat(100.0)
    assert v.fills == []
    assert order.status is S.CANCELED


# --- fees on what was filled ----------------------------------------------------------------
def test_fill_fee_is_fee_bps_of_fill_notional_for_off_grid_qty() -> None:
    v = Venue(CostModel(fee_bps=10.0), cash=1e6)
    v.flat(40_000.0)
    v.order(Side.BUY, 0.123456789)
    (fill,) = v.fills
    assert fill.qty_units == 12_345_679
    assert fill.fee == fill.notional * 10.0 / 1e4


# --- absurd sizes ------------------------------------------------------------------------------
def test_buy_taking_position_past_max_qty_rejected_position_overflow() -> None:
    v = Venue(cash=1e300)
    v.flat(1.0)
    first = v.order(Side.BUY, MAX_QTY)
    second = v.order(Side.BUY, MAX_QTY)
    assert v.status_of(first)[-1] == (S.FILLED, None)
    assert v.status_of(second) == [(S.REJECTED, RejectReason.POSITION_OVERFLOW)]
    assert v.book.position_units("X") == qty_to_units(MAX_QTY) <= MAX_UNITS


def test_resting_limit_buy_past_max_qty_rejected_position_overflow_at_fill() -> None:
    v = Venue(cash=1e300)
    v.flat(1.0)
    resting = v.order(Side.BUY, MAX_QTY, limit=0.5)
    v.order(Side.BUY, MAX_QTY)  # fills at once
    v.bar(0.5, 0.5, 0.5, 0.5)
    assert v.status_of(resting) == [(S.SUBMITTED, None),
                                    (S.REJECTED, RejectReason.POSITION_OVERFLOW)]
    assert v.book.position_units("X") == qty_to_units(MAX_QTY)
    assert v.book.reserved_cash == 0.0
