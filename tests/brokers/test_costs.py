"""The cost model: fees per unit and per order, spread, slippage, square-root impact and its
tiers; each fill's costs kept in the ``costs`` table and split by ``rpt.cost_breakdown``."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
from every_n import EveryN

import workbench
from workbench import Side
from workbench.brokers.fills import CostModel
from workbench.config import load_config
from workbench.errors import ConfigError
from workbench.model import NO_COSTS, Bar
from workbench.warehouse.connect import reading

BAR = Bar("X", 0, 100.0, 101.0, 99.0, 100.0, 4.0)  # volume 4


def test_costs_market_fill_without_impact_prices_as_before_and_splits_its_cost() -> None:
    costs = CostModel(fee_bps=10, spread_bps=20, slippage_bps=5)
    for side, sign in ((Side.BUY, 1.0), (Side.SELL, -1.0)):
        price, (spread, slippage, impact) = costs.market_fill(side, 100.0, 2.0, BAR)
        assert price == 100.0 * (1.0 + sign * 20 / 2 / 1e4) * (1.0 + sign * 5 / 1e4)
        assert spread == pytest.approx(2.0 * 100.0 * 0.001)
        assert slippage == pytest.approx(2.0 * 100.0 * 1.001 * 0.0005 if sign > 0
                                         else 2.0 * 100.0 * 0.999 * 0.0005)
        assert impact == 0.0
        assert spread + slippage == pytest.approx(sign * (price - 100.0) * 2.0)
        assert costs.market_price(side, 100.0, 2.0, BAR) == price


def test_costs_square_root_impact_uses_the_bars_range_and_volume() -> None:
    costs = CostModel(impact_k=0.5)
    sigma = math.log(101.0 / 99.0) / math.sqrt(4 * math.log(2))
    assert costs.impact(100.0, 1.0, BAR) == pytest.approx(0.5 * sigma * math.sqrt(1.0 / 4.0))
    price, (_, _, impact) = costs.market_fill(Side.BUY, 100.0, 1.0, BAR)
    assert price == pytest.approx(100.0 * (1 + 0.5 * sigma * 0.5))
    assert impact == pytest.approx(price - 100.0)


def test_costs_impact_is_capped_and_a_bar_without_volume_pays_the_cap() -> None:
    costs = CostModel(impact_k=1000.0, impact_cap_bps=50)
    assert costs.impact(100.0, 1.0, BAR) == pytest.approx(0.005)
    empty = Bar("X", 0, 100.0, 100.0, 100.0, 100.0, 0.0)
    assert costs.impact(100.0, 1.0, empty) == pytest.approx(0.005)


def test_costs_impact_tiers_add_the_bps_of_the_highest_tier_reached() -> None:
    costs = CostModel(impact_tiers=((1_000.0, 2.0), (10_000.0, 10.0)))
    assert costs.impact(100.0, 5.0, BAR) == 0.0  # 500 of notional
    assert costs.impact(100.0, 10.0, BAR) == pytest.approx(2e-4)  # 1,000
    assert costs.impact(100.0, 500.0, BAR) == pytest.approx(10e-4)  # 50,000


def test_costs_fee_per_unit_adds_and_min_fee_applies_to_an_orders_first_fill_only() -> None:
    costs = CostModel(fee_bps=10, fee_per_unit=0.005, min_fee=1.0)
    assert costs.fee(1_000.0, 100.0) == pytest.approx(1.0 + 0.5)
    assert costs.fee(100.0, 10.0) == 1.0  # 0.1 + 0.05, raised to the minimum
    assert costs.fee(100.0, 10.0, first=False) == pytest.approx(0.15)
    assert CostModel(fee_bps=10).fee(1_000.0) == 1.0


def test_costs_limit_and_zero_quantity_fills_have_no_priced_costs() -> None:
    assert CostModel(spread_bps=10).market_fill(Side.BUY, 100.0, 0.0)[1] == NO_COSTS


def test_costs_config_tiers_must_ascend() -> None:
    with pytest.raises(ConfigError, match="impact_tiers must ascend"):
        load_config(None, env={}, overrides=[
            'costs.impact_tiers=[{from_notional: 10, bps: 1}, {from_notional: 5, bps: 2}]'])


@pytest.fixture
def bars(load_bars: Callable[[int], Path]) -> Path:
    return load_bars(600)


def test_costs_backtest_keeps_each_fills_costs_and_the_breakdown_adds_up(
        bars: Path, tmp_path: Path) -> None:
    config = {"data": {"symbols": ["BTCUSDT"], "timeframe": "1m"},
              "strategy": {"params": {"n": 40}},
              "costs": {"fee_bps": 10, "fee_per_unit": 0.5, "min_fee": 0.5, "spread_bps": 4,
                        "slippage_bps": 3, "impact_k": 0.1,
                        "impact_tiers": [{"from_notional": 100, "bps": 1}]}}
    result = workbench.run_backtest(config, strategy=EveryN, warehouse=bars,
                                    out=tmp_path / "r", env={}, progress=False)
    with reading(bars) as con:
        fills = con.sql("select fill_seq, qty, fee from fills where run_id = ? "
                        "order by fill_seq", params=[result.run_id]).fetchall()
        costs = con.sql("select fill_seq, kind, amount from costs where run_id = ? "
                        "order by fill_seq, kind", params=[result.run_id]).fetchall()
        [row] = con.sql("select * from rpt.cost_breakdown where run_id = ?",
                        params=[result.run_id]).fetchall()
        names = [d[0] for d in con.sql("select * from rpt.cost_breakdown limit 0").description]
    assert len(fills) == 15  # 600 bars, a market order every 40th
    by_kind: dict[str, float] = {}
    for seq, kind, amount in costs:
        assert amount > 0, (seq, kind)
        by_kind[kind] = by_kind.get(kind, 0.0) + amount
    assert {k for _, k, _ in costs} == {"fee", "spread", "slippage", "impact"}
    assert len(costs) == 4 * len(fills)  # every market fill paid all four
    for _, _, fee in fills:
        assert fee >= 0.5  # the minimum per order
    assert by_kind["fee"] == pytest.approx(sum(f for _, _, f in fills))
    breakdown = dict(zip(names, row, strict=True))
    assert breakdown["fees"] == pytest.approx(by_kind["fee"])
    for kind in ("spread", "slippage", "impact"):
        assert breakdown[kind] == pytest.approx(by_kind[kind])
    assert breakdown["gross_pnl"] == pytest.approx(breakdown["net_pnl"]
                                                   + breakdown["total_costs"])
    assert breakdown["net_pnl"] == pytest.approx(result.metrics["final_equity"] - 10_000.0)


def test_costs_default_costs_keep_fills_and_prices_unchanged(bars: Path,
                                                             tmp_path: Path) -> None:
    config = {"data": {"symbols": ["BTCUSDT"], "timeframe": "1m"},
              "strategy": {"params": {"n": 40}}}
    plain = workbench.run_backtest(config, strategy=EveryN, warehouse=bars,
                                   out=tmp_path / "a", env={}, progress=False)
    explicit = {**config, "costs": {"fee_per_unit": 0, "min_fee": 0, "impact_k": 0,
                                    "impact_tiers": []}}
    same = workbench.run_backtest(explicit, strategy=EveryN, warehouse=bars,
                                  out=tmp_path / "b", env={}, progress=False)
    for name in ("fills.csv", "trades.csv", "equity.csv"):
        assert (plain.run_dir / name).read_bytes() == (same.run_dir / name).read_bytes()


def test_costs_config_impact_of_half_the_price_or_more_is_refused() -> None:
    with pytest.raises(ConfigError, match="below 5000"):
        load_config(None, env={}, overrides=[
            "costs.impact_cap_bps=500", "costs.impact_tiers=[{from_notional: 0, bps: 4600}]"])
    assert CostModel(impact_k=1e9, impact_cap_bps=9_000).impact(100.0, 1.0, BAR) == 0.5
