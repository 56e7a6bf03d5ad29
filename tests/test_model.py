"""The plain data of the loop: bars, intents, orders, fills, quantities and times."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench.model import (
    MAX_QTY,
    MAX_UNITS,
    QTY_QUANTUM,
    QTY_SCALE,
    Bar,
    Fill,
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    Side,
    ms_to_dt,
    ms_to_iso,
    qty_to_units,
    units_to_qty,
)

JAN_2024_MS = 1_704_067_200_000


# --- quantities -----------------------------------------------------------------------------
def test_qty_scale_quantum_is_one_hundred_millionth() -> None:
    assert QTY_SCALE == 100_000_000
    assert QTY_QUANTUM == 1e-8


@given(st.integers(min_value=0, max_value=10**15))
def test_qty_to_units_of_units_to_qty_roundtrips_exactly(units: int) -> None:
    assert qty_to_units(units_to_qty(units)) == units


@pytest.mark.parametrize(
    ("qty", "units"),
    [(1.0, 100_000_000), (0.1, 10_000_000), (0.00000001, 1), (0.123456789, 12_345_679),
     (0.000000004, 0)],
)
def test_qty_to_units_rounds_to_nearest_quantum(qty: float, units: int) -> None:
    assert qty_to_units(qty) == units


def test_qty_to_units_sums_of_tenths_add_up_exactly() -> None:
    # 0.1 + 0.2 != 0.3 in floats, but in units the books add up exactly
    assert 0.1 + 0.2 != 0.3
    assert qty_to_units(0.1) + qty_to_units(0.2) == qty_to_units(0.3)


# --- times ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ms", "iso"),
    [(0, "1970-01-01T00:00:00.000Z"),
     (JAN_2024_MS, "2024-01-01T00:00:00.000Z"),
     (JAN_2024_MS + 60_000 + 7, "2024-01-01T00:01:00.007Z"),
     (JAN_2024_MS + 86_399_999, "2024-01-01T23:59:59.999Z")],
)
def test_ms_to_iso_utc_millisecond_precision_with_z(ms: int, iso: str) -> None:
    assert ms_to_iso(ms) == iso


def test_ms_to_dt_is_timezone_aware_utc() -> None:
    assert ms_to_dt(JAN_2024_MS) == datetime(2024, 1, 1, tzinfo=UTC)
    assert ms_to_dt(JAN_2024_MS).tzinfo is UTC


# --- bars -----------------------------------------------------------------------------------
def _bar(**kw: object) -> Bar:
    values: dict = dict(symbol="BTCUSDT", ts=JAN_2024_MS, open=1.0, high=2.0, low=0.5,
                        close=1.5, volume=3.0)
    values.update(kw)
    return Bar(**values)


def test_bar_ts_is_open_time_and_dt_is_utc() -> None:
    bar = _bar()
    assert bar.ts == JAN_2024_MS
    assert bar.dt == datetime(2024, 1, 1, tzinfo=UTC)


def test_bar_equal_when_every_field_equal() -> None:
    assert _bar() == _bar()


@pytest.mark.parametrize(
    "change",
    [{"symbol": "ETHUSDT"}, {"ts": JAN_2024_MS + 60_000}, {"open": 1.1}, {"high": 2.1},
     {"low": 0.4}, {"close": 1.6}, {"volume": 3.1}],
)
def test_bar_differs_when_any_field_differs(change: dict) -> None:
    assert _bar() != _bar(**change)


def test_bar_repr_names_symbol_and_iso_open_time() -> None:
    text = repr(_bar())
    assert "BTCUSDT" in text
    assert "2024-01-01T00:00:00.000Z" in text
    assert "c=1.5" in text


# --- order intents --------------------------------------------------------------------------
def test_order_intent_market_constructor_coerces_str_side() -> None:
    intent = OrderIntent.market("BTCUSDT", "BUY", 0.5)
    assert intent.side is Side.BUY
    assert intent.type is OrderType.MARKET
    assert intent.limit_price is None


def test_order_intent_limit_constructor_sets_type_price_and_options() -> None:
    intent = OrderIntent.limit("BTCUSDT", "SELL", 0.5, 42_000.0, expire_after_bars=3, tag="tp")
    assert intent.side is Side.SELL
    assert intent.type is OrderType.LIMIT
    assert intent.limit_price == 42_000.0
    assert intent.expire_after_bars == 3
    assert intent.tag == "tp"


def test_order_intent_defaults_to_market_without_expiry() -> None:
    intent = OrderIntent("BTCUSDT", Side.BUY, 1.0)
    assert intent.type is OrderType.MARKET
    assert intent.expire_after_bars is None
    assert intent.reduce_only is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"symbol": ""}, "symbol"),
        ({"qty": 0.0}, "qty must be a positive"),
        ({"qty": -1.0}, "qty must be a positive"),
        ({"qty": math.nan}, "qty must be a positive"),
        ({"qty": math.inf}, "qty must be a positive"),
        ({"qty": 4e-9}, "quantum"),
        ({"type": OrderType.LIMIT}, "limit order needs"),
        ({"type": OrderType.LIMIT, "limit_price": 0.0}, "limit order needs"),
        ({"type": OrderType.LIMIT, "limit_price": -5.0}, "limit order needs"),
        ({"type": OrderType.LIMIT, "limit_price": math.inf}, "limit order needs"),
        ({"limit_price": 100.0}, "market order takes no limit_price"),
        ({"expire_after_bars": 0}, "expire_after_bars"),
    ],
)
def test_order_intent_invalid_raises_value_error_naming_problem(kwargs: dict, message: str
                                                                ) -> None:
    values: dict = {"symbol": "BTCUSDT", "side": Side.BUY, "qty": 1.0}
    values.update(kwargs)
    with pytest.raises(ValueError, match=message):
        OrderIntent(**values)


def test_order_intent_unknown_side_string_raises() -> None:
    with pytest.raises(ValueError):
        OrderIntent.market("BTCUSDT", "HOLD", 1.0)


def test_order_intent_one_quantum_is_accepted() -> None:
    assert OrderIntent("BTCUSDT", Side.BUY, QTY_QUANTUM).qty == QTY_QUANTUM


def test_order_intent_qty_bool_refused() -> None:
    with pytest.raises(ValueError, match="qty"):
        OrderIntent("BTCUSDT", Side.BUY, True)


@pytest.mark.parametrize("qty", [1e12, 9.3e10, 10**30, float("inf"), float("nan"), 1e308],
                         ids=["1e12", "9.3e10", "int-1e30", "inf", "nan", "1e308"])
def test_order_intent_qty_beyond_int64_units_or_not_finite_refused(qty: float) -> None:
    with pytest.raises(ValueError, match=r"qty .*(largest quantity|positive finite)"):
        OrderIntent("BTCUSDT", Side.BUY, qty)


def test_order_intent_largest_qty_accepted_and_fits_int64_units() -> None:
    intent = OrderIntent("BTCUSDT", Side.BUY, MAX_QTY)
    assert qty_to_units(intent.qty) <= MAX_UNITS


def test_order_intent_qty_rounding_to_zero_units_refused() -> None:
    assert qty_to_units(5e-9) == 0
    with pytest.raises(ValueError, match="quantum"):
        OrderIntent("BTCUSDT", Side.BUY, 5e-9)


@pytest.mark.parametrize(("text", "side"), [("BUY", Side.BUY), ("SELL", Side.SELL)])
def test_order_intent_str_side_coerced_to_enum_or_refused(text: str, side: Side) -> None:
    try:
        intent = OrderIntent("BTCUSDT", text, 1.0)  # type: ignore[arg-type]
    except ValueError:
        return
    assert intent.side is side


@pytest.mark.parametrize(("text", "limit"), [("MARKET", None), ("LIMIT", 100.0)])
def test_order_intent_str_type_coerced_to_enum_or_refused(text: str, limit: float | None
                                                          ) -> None:
    try:
        intent = OrderIntent("BTCUSDT", Side.BUY, 1.0, text, limit)  # type: ignore[arg-type]
    except ValueError:
        return
    assert intent.type is OrderType(text)


# --- orders and fills -----------------------------------------------------------------------
def _order(**kw: object) -> Order:
    values: dict = dict(order_seq=1, client_order_id="r-1", symbol="BTCUSDT", side=Side.BUY,
                        type=OrderType.MARKET, qty=0.5, qty_units=50_000_000, limit_price=None,
                        ts=JAN_2024_MS + 60_000, bar_ts=JAN_2024_MS)
    values.update(kw)
    return Order(**values)


def test_order_new_by_default_and_open() -> None:
    order = _order()
    assert order.status is OrderStatus.NEW
    assert order.is_open
    assert order.filled_qty == 0.0


def test_order_filled_qty_from_units() -> None:
    assert _order(filled_units=25_000_000).filled_qty == 0.25


@pytest.mark.parametrize("status", list(OrderStatus))
def test_order_status_terminal_exactly_filled_canceled_rejected_blocked(status: OrderStatus
                                                                         ) -> None:
    expected = status in {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED,
                          OrderStatus.BLOCKED}
    assert status.terminal is expected
    assert _order(status=status).is_open is not expected


def test_fill_notional_is_qty_times_price() -> None:
    fill = Fill(fill_seq=1, order_seq=1, client_order_id="r-1", symbol="BTCUSDT", side=Side.SELL,
                qty=0.5, qty_units=50_000_000, price=42_000.0, fee=21.0,
                ts=JAN_2024_MS + 60_000, bar_ts=JAN_2024_MS)
    assert fill.notional == 21_000.0


def test_side_and_type_values_are_venue_strings() -> None:
    assert [s.value for s in Side] == ["BUY", "SELL"]
    assert [t.value for t in OrderType] == ["MARKET", "LIMIT"]
