"""The shared fill model: market prices against the taker, limit touches, fees."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from workbench.brokers.fills import CostModel, limit_fill_price
from workbench.model import Side

prices = st.floats(min_value=1e-6, max_value=1e7, allow_nan=False, allow_infinity=False)
bps = st.one_of(st.just(0.0), st.floats(min_value=0.01, max_value=500.0))


@st.composite
def bars(draw: st.DrawFn) -> tuple[float, float, float, float]:
    """A consistent (open, high, low, close): low <= min(open, close), high >= max(...)."""
    o, c = draw(prices), draw(prices)
    low = draw(st.floats(min_value=1e-7, max_value=min(o, c)))
    high = draw(st.floats(min_value=max(o, c), max_value=2e7))
    return o, high, low, c


# --- market orders --------------------------------------------------------------------------
def test_market_price_free_costs_is_reference() -> None:
    costs = CostModel()
    assert costs.market_price(Side.BUY, 42_000.0) == 42_000.0
    assert costs.market_price(Side.SELL, 42_000.0) == 42_000.0


def test_market_price_buy_half_spread_then_slippage_up() -> None:
    costs = CostModel(spread_bps=4.0, slippage_bps=5.0)
    assert costs.market_price(Side.BUY, 100.0) == 100.0 * (1 + 4.0 / 2 / 1e4) * (1 + 5.0 / 1e4)
    assert costs.market_price(Side.BUY, 100.0) == pytest.approx(100.0 * 1.0002 * 1.0005,
                                                                rel=1e-15)


def test_market_price_sell_half_spread_then_slippage_down() -> None:
    costs = CostModel(spread_bps=4.0, slippage_bps=5.0)
    assert costs.market_price(Side.SELL, 100.0) == 100.0 * (1 - 4.0 / 2 / 1e4) * (1 - 5.0 / 1e4)
    assert costs.market_price(Side.SELL, 100.0) == pytest.approx(100.0 * 0.9998 * 0.9995,
                                                                 rel=1e-15)


def test_market_price_spread_is_halved_per_side() -> None:
    costs = CostModel(spread_bps=10.0)
    buy, sell = costs.market_price(Side.BUY, 1000.0), costs.market_price(Side.SELL, 1000.0)
    assert buy == pytest.approx(1000.5, rel=1e-15)
    assert sell == pytest.approx(999.5, rel=1e-15)
    assert buy - sell == pytest.approx(1000.0 * 10.0 / 1e4, rel=1e-12)  # the full spread


@given(ref=prices, spread=bps, slip=bps)
def test_market_price_always_on_adverse_side_of_reference(ref: float, spread: float,
                                                          slip: float) -> None:
    costs = CostModel(spread_bps=spread, slippage_bps=slip)
    buy, sell = costs.market_price(Side.BUY, ref), costs.market_price(Side.SELL, ref)
    assert buy >= ref >= sell
    if spread > 0 or slip > 0:
        assert buy > sell


@given(ref=prices, spread=bps, slip=bps)
def test_market_price_matches_spec_formula_exactly(ref: float, spread: float, slip: float
                                                   ) -> None:
    costs = CostModel(spread_bps=spread, slippage_bps=slip)
    assert costs.market_price(Side.BUY, ref) == ref * (1 + spread / 2 / 1e4) * (1 + slip / 1e4)
    assert costs.market_price(Side.SELL, ref) == ref * (1 - spread / 2 / 1e4) * (1 - slip / 1e4)


def test_market_price_slippage_fn_replaces_fixed_slippage_and_sees_side_ref_qty() -> None:
    seen: list[tuple[Side, float, float]] = []

    def slip(side: Side, ref: float, qty: float) -> float:
        seen.append((side, ref, qty))
        return 20.0 if qty > 1 else 0.0

    costs = CostModel(slippage_bps=1000.0, slippage_fn=slip)
    assert costs.market_price(Side.BUY, 100.0, 0.5) == 100.0
    assert costs.market_price(Side.SELL, 100.0, 2.0) == 100.0 * (1 - 20.0 / 1e4)
    assert seen == [(Side.BUY, 100.0, 0.5), (Side.SELL, 100.0, 2.0)]


# --- fees -----------------------------------------------------------------------------------
def test_fee_is_bps_of_notional() -> None:
    assert CostModel(fee_bps=10.0).fee(20_000.0) == pytest.approx(20.0, rel=1e-15)
    assert CostModel(fee_bps=0.0).fee(20_000.0) == 0.0


@given(notional=st.floats(min_value=0, max_value=1e12), fee_bps=bps)
def test_fee_is_non_negative_bps_of_any_notional(notional: float, fee_bps: float) -> None:
    fee = CostModel(fee_bps=fee_bps).fee(notional)
    assert fee >= 0
    assert fee == notional * fee_bps / 1e4


def test_cost_model_free_has_no_costs_and_keeps_fill_at() -> None:
    free = CostModel.free("next_open")
    assert (free.fee_bps, free.spread_bps, free.slippage_bps, free.min_notional) == (0, 0, 0, 0)
    assert free.fill_at == "next_open"
    assert CostModel.free().fill_at == "close"


# --- limit orders ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("side", "limit", "bar", "expected"),
    [
        # buy: touched when low <= limit; fills at the limit
        (Side.BUY, 99.0, (100.0, 101.0, 98.0, 100.5), 99.0),
        (Side.BUY, 98.0, (100.0, 101.0, 98.0, 100.5), 98.0),  # low == limit is a touch
        (Side.BUY, 97.99, (100.0, 101.0, 98.0, 100.5), None),
        # buy: opens through (open <= limit) -> the open, better than the limit
        (Side.BUY, 100.0, (99.0, 101.0, 98.0, 100.5), 99.0),
        (Side.BUY, 100.0, (100.0, 101.0, 99.0, 100.5), 100.0),  # open == limit
        # sell: touched when high >= limit; fills at the limit
        (Side.SELL, 101.0, (100.0, 102.0, 99.0, 100.5), 101.0),
        (Side.SELL, 102.0, (100.0, 102.0, 99.0, 100.5), 102.0),  # high == limit is a touch
        (Side.SELL, 102.01, (100.0, 102.0, 99.0, 100.5), None),
        # sell: opens through (open >= limit) -> the open
        (Side.SELL, 100.0, (101.0, 102.0, 99.0, 100.5), 101.0),
    ],
)
def test_limit_fill_price_touch_and_open_through(side: Side, limit: float,
                                                 bar: tuple[float, float, float, float],
                                                 expected: float | None) -> None:
    o, h, low, _ = bar
    assert limit_fill_price(side, limit, o, h, low) == expected


@given(bar=bars(), limit=prices)
def test_limit_fill_price_buy_fills_iff_low_touches(bar: tuple[float, float, float, float],
                                                    limit: float) -> None:
    o, h, low, _ = bar
    price = limit_fill_price(Side.BUY, limit, o, h, low)
    assert (price is not None) == (low <= limit)


@given(bar=bars(), limit=prices)
def test_limit_fill_price_sell_fills_iff_high_touches(bar: tuple[float, float, float, float],
                                                      limit: float) -> None:
    o, h, low, _ = bar
    price = limit_fill_price(Side.SELL, limit, o, h, low)
    assert (price is not None) == (h >= limit)


@given(bar=bars(), limit=prices)
def test_limit_fill_price_buy_never_worse_than_limit_and_inside_bar(
        bar: tuple[float, float, float, float], limit: float) -> None:
    o, h, low, _ = bar
    price = limit_fill_price(Side.BUY, limit, o, h, low)
    assume(price is not None)
    assert price <= limit
    assert low <= price <= h
    # better than the limit only when the bar opened through it, and then at the open
    assert price == (o if o <= limit else limit)


@given(bar=bars(), limit=prices)
def test_limit_fill_price_sell_never_worse_than_limit_and_inside_bar(
        bar: tuple[float, float, float, float], limit: float) -> None:
    o, h, low, _ = bar
    price = limit_fill_price(Side.SELL, limit, o, h, low)
    assume(price is not None)
    assert price >= limit
    assert low <= price <= h
    assert price == (o if o >= limit else limit)
