"""PullbackLimit: an expiring bid below the close, a take-profit limit, a market stop."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import step_harness as harness

from workbench.brokers.base import CancelReason
from workbench.brokers.fills import CostModel
from workbench.engine.journal import OrderState
from workbench.engine.step import Step
from workbench.errors import ConfigError
from workbench.model import OrderStatus, OrderType, Side
from workbench.strategies.pullback_limit import PullbackLimit

T0 = 1_704_067_200_000
TF = 60_000
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "btcusdt_1m_2024-01_synthetic.csv"
Row = tuple[float, float, float, float]
S = OrderStatus

# 1 % dip, 2 % take profit, 3 % stop, bids live 3 bars
PARAMS = {"qty": 1.0, "dip_bps": 100.0, "take_profit_bps": 200.0, "stop_bps": 300.0,
          "expire_bars": 3}


def quiet(c: float) -> Row:
    """A bar that stays within 0.5 % of ``c``: touches neither bid nor take profit."""
    return (c, c * 1.005, c * 0.995, c)


def run(rows: list[Row], costs: CostModel | None = None, cash: float = 10_000.0,
        **params: float) -> Step:
    return harness.run(PullbackLimit(**{**PARAMS, **params}), harness.rows(rows), costs=costs,
                       cash=cash)


def orders(step: Step) -> list[OrderState]:
    return harness.orders(step)


def bar_of(ts: int) -> int:
    return (ts - T0) // TF


def test_pullback_flat_places_expiring_entry_bid_below_close() -> None:
    step = run([quiet(100.0)])
    (bid,) = orders(step)
    assert (bid.side, bid.type, bid.tag) == (Side.BUY, OrderType.LIMIT, "entry")
    assert bid.qty == 1.0
    assert bid.limit_price == pytest.approx(99.0, rel=1e-15)
    assert bid.expire_after_bars == 3
    assert bid.status is S.SUBMITTED


def test_pullback_resting_bid_not_duplicated() -> None:
    step = run([quiet(100.0), quiet(100.0), quiet(100.0)])
    assert len(orders(step)) == 1


def test_pullback_expired_bid_replaced_on_same_bar_at_new_close() -> None:
    step = run([quiet(100.0), quiet(100.0), quiet(101.0), quiet(102.0)])
    first, second = orders(step)
    assert (first.status, first.reason) == (S.CANCELED, CancelReason.EXPIRED)
    assert first.updated_ts == T0 + 4 * TF
    assert bar_of(second.bar_ts) == 3
    assert second.limit_price == pytest.approx(102.0 * 0.99, rel=1e-15)
    assert second.status is S.SUBMITTED


def test_pullback_bid_fill_places_take_profit_for_whole_position() -> None:
    step = run([quiet(100.0), (100.0, 100.2, 98.5, 100.0)])
    bid, tp = orders(step)
    assert bid.status is S.FILLED
    assert (tp.side, tp.type, tp.tag, tp.status) == (Side.SELL, OrderType.LIMIT, "take_profit",
                                                      S.SUBMITTED)
    assert tp.qty == step.book.position("X") == 1.0
    assert tp.limit_price == pytest.approx(99.0 * 1.02, rel=1e-15)
    assert bar_of(tp.bar_ts) == 1


def test_pullback_bid_filled_at_open_when_bar_gaps_below_sets_entry_there() -> None:
    step = run([quiet(100.0), (97.0, 98.0, 96.5, 97.5)])
    _, tp = orders(step)
    j = harness.journalled(step)
    assert j.fills[0].price == 97.0
    assert tp.limit_price == pytest.approx(97.0 * 1.02, rel=1e-15)


def test_pullback_take_profit_fill_goes_flat_and_bids_again() -> None:
    rows = [quiet(100.0), (100.0, 100.2, 98.5, 100.0), (100.0, 101.5, 99.8, 101.2)]
    step = run(rows, costs=CostModel(fee_bps=10.0))
    bid, tp, bid2 = orders(step)
    assert (bid.status, tp.status) == (S.FILLED, S.FILLED)
    j = harness.journalled(step)
    assert [f.price for f in j.fills] == pytest.approx([99.0, 100.98], rel=1e-15)
    assert step.book.position_units("X") == 0
    (trip,) = step.book.round_trips
    assert trip.pnl == pytest.approx(1.98 - (99.0 + 100.98) * 10 / 1e4, rel=1e-9)
    assert (bid2.tag, bar_of(bid2.bar_ts), bid2.status) == ("entry", 2, S.SUBMITTED)
    assert bid2.limit_price == pytest.approx(101.2 * 0.99, rel=1e-15)


def test_pullback_close_below_stop_cancels_take_profit_and_sells_at_market() -> None:
    rows = [quiet(100.0), (100.0, 100.2, 98.5, 99.5), (99.0, 99.2, 94.5, 95.0), quiet(95.0)]
    step = run(rows, costs=CostModel(slippage_bps=10.0))
    bid, tp, stop, bid2 = orders(step)
    assert bid.status is S.FILLED
    assert (tp.status, tp.reason, tp.updated_ts) == (S.CANCELED, CancelReason.USER,
                                                     T0 + 3 * TF)
    assert (stop.side, stop.type, stop.tag, stop.status) == (Side.SELL, OrderType.MARKET, "stop",
                                                              S.FILLED)
    assert stop.qty == 1.0
    j = harness.journalled(step)
    assert j.fills[-1].price == pytest.approx(95.0 * (1 - 10 / 1e4), rel=1e-15)
    assert step.book.position_units("X") == 0
    assert step.book.reserved_units == {}
    assert (bid2.tag, bar_of(bid2.bar_ts)) == ("entry", 3)


def test_pullback_close_above_stop_holds_with_take_profit_resting() -> None:
    rows = [quiet(100.0), (100.0, 100.2, 98.5, 99.5), quiet(96.1), quiet(96.1)]
    step = run(rows)  # stop at 99 * 0.97 = 96.03; 96.1 is above it
    assert [o.tag for o in orders(step)] == ["entry", "take_profit"]
    assert step.book.position("X") == 1.0


def test_pullback_stop_with_next_open_sells_at_next_open_then_bids() -> None:
    rows = [quiet(100.0), (100.0, 100.2, 98.5, 99.5), (99.0, 99.2, 94.5, 95.0),
            (94.0, 94.5, 93.8, 94.2)]
    step = run(rows, costs=CostModel(fill_at="next_open"))
    tags = [o.tag for o in orders(step)]
    assert tags == ["entry", "take_profit", "stop", "entry"]
    j = harness.journalled(step)
    assert (j.fills[-1].price, bar_of(j.fills[-1].bar_ts)) == (94.0, 3)
    assert step.book.position_units("X") == 0


def test_pullback_on_sample_keeps_its_invariants() -> None:
    rows: list[Row] = []
    with SAMPLE.open(newline="") as fh:
        for _, rec in zip(range(4000), csv.DictReader(fh), strict=False):
            rows.append((float(rec["open"]), float(rec["high"]), float(rec["low"]),
                         float(rec["close"])))
    step = run(rows, costs=CostModel(fee_bps=2.0, slippage_bps=5.0, min_notional=5.0),
               qty=0.05, dip_bps=15.0, take_profit_bps=25.0, stop_bps=60.0, expire_bars=5)
    j = harness.journalled(step)
    by_seq = {o.order_seq: o for o in j.orders}
    assert {o.tag for o in j.orders} == {"entry", "take_profit", "stop"}
    assert all(o.status is not S.REJECTED for o in j.orders)
    position = 0
    for f in j.fills:
        o = by_seq[f.order_seq]
        position += f.qty_units if f.side is Side.BUY else -f.qty_units
        assert position in (0, 5_000_000)
        if o.tag == "entry":
            assert f.side is Side.BUY and f.price <= o.limit_price
        elif o.tag == "take_profit":
            assert f.side is Side.SELL and f.price >= o.limit_price
    tps = [o for o in j.orders if o.tag == "take_profit"]
    stops = [o for o in j.orders if o.tag == "stop"]
    assert stops and any(o.status is S.FILLED for o in tps)
    assert sum(o.status is S.CANCELED for o in tps) == len(stops)
    assert len(step.book.round_trips) == sum(f.side is Side.SELL for f in j.fills)


def test_pullback_unknown_param_did_you_mean() -> None:
    with pytest.raises(ConfigError) as info:
        PullbackLimit(expire_bar=3)
    assert info.value.fix is not None and "did you mean `expire_bars`" in info.value.fix


@pytest.mark.parametrize("params", [{"expire_bars": 0}, {"dip_bps": 0.0}, {"qty": -1.0},
                                    {"take_profit_bps": -5.0}, {"stop_bps": 0}])
def test_pullback_invalid_param_value_config_error(params: dict) -> None:
    with pytest.raises(ConfigError):
        PullbackLimit(**params)
