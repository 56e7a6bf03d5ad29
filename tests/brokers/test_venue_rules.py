"""The broker's copy of Binance's filters (``brokers/venue_rules.py``): read from an
exchangeInfo entry, applied with Decimal, and in agreement with the fake exchange's own
implementation of the same rules (``venues/matching.py``), which answers with Binance's codes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.brokers.venue_rules import (
    CLIENT_ORDER_ID,
    SymbolFilters,
    VenueFilter,
    client_order_id,
)
from workbench.venues.bar_book import BarBook, SymbolRules
from workbench.venues.matching import Matcher, VenueError

# as Binance publishes BTCUSDT (2024)
BTCUSDT = {"symbol": "BTCUSDT", "filters": [
    {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000",
     "tickSize": "0.01000000"},
    {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000",
     "stepSize": "0.00001000"},
    {"filterType": "ICEBERG_PARTS", "limit": 10},
    {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "83.5", "stepSize": "0"},
    {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10},
    {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5"},
    {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
     "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
    {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
    {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5}]}
RULES = SymbolFilters.from_exchange_info(BTCUSDT)


def test_filters_read_from_an_exchange_info_entry() -> None:
    assert (RULES.tick_size, RULES.step_size, RULES.min_qty) == (
        Decimal("0.01"), Decimal("0.00001"), Decimal("0.00001"))
    assert (RULES.min_notional, RULES.max_notional, RULES.max_num_orders) == (
        Decimal(5), Decimal(9_000_000), 200)


def test_filters_old_min_notional_filter_is_read_when_notional_is_absent() -> None:
    entry = {"symbol": "X", "filters": [{"filterType": "MIN_NOTIONAL", "minNotional": "10",
                                         "applyToMarket": False}]}
    rules = SymbolFilters.from_exchange_info(entry)
    assert rules.min_notional == 10 and rules.min_notional_market is False
    assert rules.check(0.001, None, 100.0) is None  # not applied to market orders
    assert rules.check(0.001, 100.0, 100.0).reason == VenueFilter.NOTIONAL  # type: ignore[union-attr]


@pytest.mark.parametrize(("qty", "price", "reason"), [
    (0.001, 42_000.0, None),
    (0.001, None, None),
    (0.0010005, 42_000.0, VenueFilter.LOT_SIZE),  # off the step
    (0.000001, 42_000.0, VenueFilter.LOT_SIZE),  # below the minimum
    (10_000.0, 42_000.0, VenueFilter.LOT_SIZE),  # above the maximum
    (0.001, 42_000.005, VenueFilter.PRICE_FILTER),  # off the tick
    (0.0001, 42_000.0, VenueFilter.NOTIONAL),  # 4.2 USDT
    (0.0001, None, VenueFilter.NOTIONAL),  # market orders too (applyMinToMarket)
    (0.1, 0.1, VenueFilter.NOTIONAL),
])
def test_filters_name_the_filter_an_order_breaks(qty: float, price: float | None,
                                                 reason: str | None) -> None:
    breach = RULES.check(qty, price, 42_000.0)
    assert (breach.reason if breach else None) == reason
    if breach:
        assert "must" in breach.detail


def test_filters_decimal_not_binary_float_0_1_times_3_is_on_the_grid() -> None:
    assert RULES.check(0.1 + 0.2, 42_000.0, 42_000.0) is not None  # 0.30000000000000004
    assert RULES.check(0.3, 42_000.0, 42_000.0) is None
    assert RULES.qty_text(0.3) == "0.3" and RULES.qty_text(1e-05) == "0.00001"
    assert RULES.price_text(42_000.0) == "42000"


def test_filters_open_order_count_is_checked_last() -> None:
    assert RULES.check(0.001, 42_000.0, 42_000.0, open_orders=199) is None
    breach = RULES.check(0.001, 42_000.0, 42_000.0, open_orders=200)
    assert breach is not None and breach.reason == VenueFilter.MAX_NUM_ORDERS


def test_filters_tiny_quantity_is_the_smallest_that_meets_the_minimum_notional() -> None:
    qty = RULES.min_qty_for(42_000.0)
    assert qty == Decimal("0.00012")  # 5.04 USDT; 0.00011 is 4.62
    assert RULES.check(qty, None, 42_000.0) is None
    assert RULES.check(qty - RULES.step_size, None, 42_000.0) is not None
    assert RULES.round_qty(0.0012345) == Decimal("0.00123")


# the fake's rules for a symbol priced ~42,000 with 2-decimal prices
FAKE_RULES = SymbolRules("BTCUSDT", "BTC", "USDT", tick_size="0.01000000",
                         min_price="0.01000000", step_size="0.00001000", min_qty="0.00001000",
                         max_qty="9000.00000000", min_notional="5.00000000")


def _fake_entry() -> dict[str, object]:
    return {"symbol": "BTCUSDT", "filters": [*FAKE_RULES.filters(),
                                             {"filterType": "MAX_NUM_ORDERS",
                                              "maxNumOrders": 200}]}


@settings(max_examples=300, deadline=None)
@given(units=st.integers(0, 2_000_000), extra=st.sampled_from([0, 0, 0, 3e-9, 5e-6]),
       cents=st.integers(1, 6_000_000), half_cent=st.booleans(), market=st.booleans())
def test_filters_agree_with_the_fake_exchange_on_what_it_refuses(
        units: int, extra: float, cents: int, half_cent: bool, market: bool) -> None:
    qty = units / 100_000 + extra
    price = cents / 100 + (0.005 if half_cent else 0.0)
    ours = SymbolFilters.from_exchange_info(_fake_entry()).check(
        qty, None if market else price, 42_000.0)
    bars = BarBook("BTCUSDT", [0], [42_000.0], [42_000.0], [42_000.0], [42_000.0], [1.0])
    venue = Matcher(bars, FAKE_RULES, {"USDT": "1e12", "BTC": "1e6"})
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET" if market else "LIMIT",
              "quantity": f"{Decimal(repr(qty)):f}"}
    if not market:
        params |= {"price": f"{Decimal(repr(price)):f}", "timeInForce": "GTC"}
    try:
        venue.place(params, now=60_000)
        theirs = None
    except VenueError as exc:
        assert exc.code in (-1013, -1100, -2010), exc.msg
        theirs = {-1013: exc.msg.removeprefix("Filter failure: "), -1100: "text",
                  -2010: "funds"}[exc.code]
    if theirs == "funds":
        assert ours is None
        return
    if theirs == "text":  # over 20 decimals: off any grid, so the broker never sends it
        assert ours is not None and ours.reason in (VenueFilter.LOT_SIZE,
                                                    VenueFilter.PRICE_FILTER)
        return
    assert (ours.reason.removeprefix("VENUE_FILTER_") if ours else None) == theirs


def test_client_order_id_is_ours_deterministic_and_within_binances_pattern() -> None:
    assert client_order_id("20261201T170159-57f130", 7) == "20261201T170159-57f130-7"
    odd = client_order_id("my run/with spaces", 3)
    assert odd == client_order_id("my run/with spaces", 3) and odd.endswith("-3")
    assert CLIENT_ORDER_ID.match(odd) and odd != client_order_id("my run/with spaces!", 3)
    long_id = client_order_id("x" * 40, 12)
    assert len(long_id) <= 36 and CLIENT_ORDER_ID.match(long_id)
