"""The pure pre-trade rules (workbench/risk/rules.py): an order and an Exposure in, a Block out.

Every rule is checked at its limit (equal passes) and one floating-point step beyond it (blocks,
with its stable reason code and the numbers that tripped it); every rule that only stops new
risk lets a reducing order through; an unset key switches its rule off.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from workbench.config import PositionLimit, RiskConfig
from workbench.model import QTY_SCALE, Order, OrderType, Side
from workbench.risk import rules
from workbench.risk.rules import Block, Exposure, ReasonCode

INF = math.inf

# Buy 2 X at 64 on an account of 1024 with nothing else held: every number a power of two.
BASE = Exposure(
    price=64.0,
    notional=128.0,
    reduces=False,
    units_after=2 * QTY_SCALE,
    open_symbols_now=0,
    open_symbols_after=1,
    opens_new_symbol=True,
    gross_after=128.0,
    net_after=128.0,
    equity=1024.0,
    peak_equity=1024.0,
    day_start_equity=1024.0,
    realized_today=0.0,
    daily_stop=False,
)


def x(**changes: Any) -> Exposure:
    return dataclasses.replace(BASE, **changes)


def up(value: float) -> float:
    """The next double above ``value``: the smallest step beyond a limit."""
    return math.nextafter(value, INF)


def order(symbol: str = "X", side: Side = Side.BUY, qty: float = 2.0, *,
          reduce_only: bool = False, tag: str | None = None) -> Order:
    units = round(qty * QTY_SCALE)
    return Order(1, "t-1", symbol, side, OrderType.MARKET, qty, units, None, 0, 0,
                 reduce_only=reduce_only, tag=tag)


def cfg(**kw: Any) -> RiskConfig:
    return RiskConfig(**kw)


# --- the contract ---------------------------------------------------------------------------
def test_reason_codes_stable_strings_documented_contract() -> None:
    assert {c.name: c.value for c in ReasonCode} == {
        "HALTED": "RISK_HALTED",
        "REDUCE_ONLY": "RISK_REDUCE_ONLY",
        "SYMBOL_NOT_ALLOWED": "RISK_SYMBOL_NOT_ALLOWED",
        "DAILY_LOSS": "RISK_DAILY_LOSS",
        "DRAWDOWN": "RISK_DRAWDOWN",
        "ORDER_NOTIONAL": "RISK_ORDER_NOTIONAL",
        "POSITION_LIMIT": "RISK_POSITION_LIMIT",
        "MAX_POSITIONS": "RISK_MAX_POSITIONS",
        "EXPOSURE": "RISK_EXPOSURE",
    }


def test_rules_order_fixed_evaluation_order_from_spec() -> None:
    assert rules.ORDER == ("halted", "reduce_only", "allowed_symbols", "daily_loss", "drawdown",
                           "order_notional", "position_limit", "max_open_positions", "exposure")


def test_block_describe_names_code_rule_and_numbers() -> None:
    block = Block("order_notional", ReasonCode.ORDER_NOTIONAL, {"notional": 130.0, "limit": 128.0})
    assert block.describe() == "RISK_ORDER_NOTIONAL (order_notional: notional=130.0, limit=128.0)"


def test_default_risk_config_every_rule_off_passes_anything() -> None:
    wild = x(notional=1e18, units_after=10**20, open_symbols_after=10**6, gross_after=1e18,
             net_after=-1e18, equity=1.0, day_start_equity=1e9, peak_equity=1e9,
             realized_today=-1e12)
    c = cfg()
    assert rules.allowed_symbols(order(), c) is None
    assert rules.daily_loss(wild, c) is None
    assert rules.drawdown(wild, c) is None
    assert rules.order_notional(wild, c) is None
    assert rules.position_limit(order(), wild, c) is None
    assert rules.max_positions(wild, c) is None
    assert rules.exposure(wild, c) is None


# --- halted and reduce-only consistency -----------------------------------------------------
def test_halted_not_set_passes() -> None:
    assert rules.halted(order(), BASE, None, "flatten") is None


def test_halted_set_blocks_buy_with_since_detail() -> None:
    block = rules.halted(order(), BASE, "operator at T", "flatten")
    assert block == Block("halted", ReasonCode.HALTED, {"since": "operator at T"})


def test_halted_flatten_tagged_reduce_only_reducing_sell_passes() -> None:
    sell = order(side=Side.SELL, reduce_only=True, tag="flatten")
    assert rules.halted(sell, x(reduces=True), "operator", "flatten") is None


@pytest.mark.parametrize(("reduce_only", "tag", "reduces"), [
    (False, None, True),        # a plain reducing sell
    (True, None, True),         # reduce-only but not the flatten command
    (True, "exit", True),       # another tag
    (False, "flatten", True),   # the tag without the reduce-only flag
    (True, "flatten", False),   # flatten-tagged but it would not reduce
])
def test_halted_anything_but_flatten_reduce_only_reducing_blocked(
        reduce_only: bool, tag: str | None, reduces: bool) -> None:
    sell = order(side=Side.SELL, reduce_only=reduce_only, tag=tag)
    block = rules.halted(sell, x(reduces=reduces), "operator", "flatten")
    assert block is not None and block.reason_code is ReasonCode.HALTED


def test_reduce_only_flag_on_order_that_does_not_reduce_blocked_with_position_after() -> None:
    sell = order(side=Side.SELL, qty=3.0, reduce_only=True)
    block = rules.reduce_only(sell, x(reduces=False, units_after=-1 * QTY_SCALE))
    assert block == Block("reduce_only", ReasonCode.REDUCE_ONLY,
                          {"qty": 3.0, "position_after": -1.0})


@pytest.mark.parametrize(("reduce_only", "reduces"), [(True, True), (False, False),
                                                      (False, True)])
def test_reduce_only_flag_consistent_or_absent_passes(reduce_only: bool, reduces: bool) -> None:
    sell = order(side=Side.SELL, reduce_only=reduce_only)
    assert rules.reduce_only(sell, x(reduces=reduces)) is None


# --- allowed symbols ------------------------------------------------------------------------
def test_allowed_symbols_listed_symbol_passes() -> None:
    assert rules.allowed_symbols(order("X"), cfg(allowed_symbols=["W", "X"])) is None


def test_allowed_symbols_unlisted_symbol_blocked_with_symbol_and_list() -> None:
    block = rules.allowed_symbols(order("Y"), cfg(allowed_symbols=["W", "X"]))
    assert block == Block("allowed_symbols", ReasonCode.SYMBOL_NOT_ALLOWED,
                          {"symbol": "Y", "allowed": ["W", "X"]})


def test_allowed_symbols_applies_to_reduce_only_orders_too() -> None:
    sell = order("Y", Side.SELL, reduce_only=True, tag="flatten")
    block = rules.allowed_symbols(sell, cfg(allowed_symbols=["X"]))
    assert block is not None and block.reason_code is ReasonCode.SYMBOL_NOT_ALLOWED


def test_allowed_symbols_empty_list_blocks_every_symbol() -> None:
    assert rules.allowed_symbols(order("X"), cfg(allowed_symbols=[])) is not None


# --- daily loss -----------------------------------------------------------------------------
def test_daily_loss_realized_loss_equal_to_limit_passes() -> None:
    assert rules.daily_loss(x(realized_today=-100.0), cfg(daily_loss_limit=100.0)) is None


def test_daily_loss_realized_loss_one_step_beyond_limit_blocked() -> None:
    block = rules.daily_loss(x(realized_today=-up(100.0)), cfg(daily_loss_limit=100.0))
    assert block == Block("daily_loss", ReasonCode.DAILY_LOSS,
                          {"realized_today": -up(100.0), "limit": 100.0})


def test_daily_loss_realized_gain_passes() -> None:
    assert rules.daily_loss(x(realized_today=500.0), cfg(daily_loss_limit=100.0)) is None


def test_daily_loss_stop_set_blocks_even_after_losses_recovered() -> None:
    block = rules.daily_loss(x(realized_today=0.0, daily_stop=True), cfg(daily_loss_limit=100.0))
    assert block is not None and block.reason_code is ReasonCode.DAILY_LOSS


def test_daily_loss_reducing_order_passes_under_stop() -> None:
    exit_ = x(reduces=True, realized_today=-1e6, daily_stop=True)
    assert rules.daily_loss(exit_, cfg(daily_loss_limit=100.0)) is None


# --- drawdown -------------------------------------------------------------------------------
def test_daily_drawdown_equal_to_limit_passes() -> None:
    # (1024 - 768) / 1024 = 25 % exactly
    assert rules.drawdown(x(equity=768.0), cfg(max_daily_drawdown_pct=25.0)) is None


def test_daily_drawdown_beyond_limit_blocked_with_day_start_and_equity() -> None:
    equity = math.nextafter(768.0, 0.0)
    block = rules.drawdown(x(equity=equity), cfg(max_daily_drawdown_pct=25.0))
    assert block is not None
    assert (block.rule, block.reason_code) == ("daily_drawdown", ReasonCode.DRAWDOWN)
    assert block.detail["drawdown_pct"] > 25.0
    assert block.detail["day_start_equity"] == 1024.0
    assert block.detail["equity"] == equity
    assert block.detail["limit_pct"] == 25.0


def test_total_drawdown_from_peak_equal_to_limit_passes() -> None:
    ex = x(peak_equity=2048.0, day_start_equity=1024.0, equity=1536.0)  # 25 % below the peak
    assert rules.drawdown(ex, cfg(max_drawdown_pct=25.0)) is None


def test_total_drawdown_from_peak_beyond_limit_blocked() -> None:
    ex = x(peak_equity=2048.0, day_start_equity=1024.0, equity=math.nextafter(1536.0, 0.0))
    block = rules.drawdown(ex, cfg(max_drawdown_pct=25.0))
    assert block is not None
    assert (block.rule, block.reason_code) == ("drawdown", ReasonCode.DRAWDOWN)
    assert block.detail["peak_equity"] == 2048.0


def test_total_drawdown_measured_from_peak_not_day_start() -> None:
    # flat on the day, but 50 % below the peak
    ex = x(peak_equity=2048.0, day_start_equity=1024.0, equity=1024.0)
    assert rules.drawdown(ex, cfg(max_daily_drawdown_pct=25.0)) is None
    assert rules.drawdown(ex, cfg(max_drawdown_pct=25.0)) is not None


def test_drawdown_reducing_order_passes() -> None:
    ex = x(reduces=True, equity=10.0)
    assert rules.drawdown(ex, cfg(max_daily_drawdown_pct=1.0, max_drawdown_pct=1.0)) is None


# --- per-order notional ---------------------------------------------------------------------
def test_order_notional_equal_to_limit_passes() -> None:
    assert rules.order_notional(x(notional=128.0), cfg(max_order_notional=128.0)) is None


def test_order_notional_one_step_beyond_limit_blocked_with_price() -> None:
    block = rules.order_notional(x(notional=up(128.0)), cfg(max_order_notional=128.0))
    assert block == Block("order_notional", ReasonCode.ORDER_NOTIONAL,
                          {"notional": up(128.0), "price": 64.0, "limit": 128.0})


def test_order_notional_reducing_order_passes() -> None:
    assert rules.order_notional(x(notional=1e9, reduces=True),
                                cfg(max_order_notional=1.0)) is None


# --- position limit -------------------------------------------------------------------------
def limits(**kw: float) -> RiskConfig:
    return cfg(position_limits={"X": PositionLimit(**kw)})


def test_position_limit_qty_equal_to_max_qty_passes() -> None:
    assert rules.position_limit(order(), x(units_after=2 * QTY_SCALE), limits(max_qty=2.0)) is None


def test_position_limit_qty_one_unit_beyond_max_qty_blocked() -> None:
    block = rules.position_limit(order(), x(units_after=2 * QTY_SCALE + 1), limits(max_qty=2.0))
    assert block == Block("position_limit", ReasonCode.POSITION_LIMIT,
                          {"qty_after": (2 * QTY_SCALE + 1) / QTY_SCALE, "max_qty": 2.0})


def test_position_limit_value_equal_to_max_value_passes() -> None:
    assert rules.position_limit(order(), x(units_after=2 * QTY_SCALE),
                                limits(max_value=128.0)) is None


def test_position_limit_value_beyond_max_value_blocked_with_price() -> None:
    block = rules.position_limit(order(), x(units_after=2 * QTY_SCALE, price=up(64.0)),
                                 limits(max_value=128.0))
    assert block is not None
    assert block.reason_code is ReasonCode.POSITION_LIMIT
    assert block.detail == {"value_after": 2.0 * up(64.0), "price": up(64.0), "max_value": 128.0}


def test_position_limit_short_side_counts_absolute_quantity() -> None:
    sell = order(side=Side.SELL, qty=3.0)
    block = rules.position_limit(sell, x(units_after=-3 * QTY_SCALE), limits(max_qty=2.0))
    assert block is not None and block.detail["qty_after"] == 3.0


def test_position_limit_other_symbol_unlimited_passes() -> None:
    assert rules.position_limit(order("Y"), x(units_after=10**12), limits(max_qty=1.0)) is None


def test_position_limit_reducing_order_passes() -> None:
    sell = order(side=Side.SELL)
    ex = x(units_after=5 * QTY_SCALE, reduces=True)
    assert rules.position_limit(sell, ex, limits(max_qty=1.0, max_value=1.0)) is None


# --- max open positions ---------------------------------------------------------------------
def test_max_positions_count_after_equal_to_limit_passes() -> None:
    ex = x(open_symbols_now=2, open_symbols_after=3)
    assert rules.max_positions(ex, cfg(max_open_positions=3)) is None


def test_max_positions_count_after_one_beyond_limit_blocked() -> None:
    ex = x(open_symbols_now=3, open_symbols_after=4)
    block = rules.max_positions(ex, cfg(max_open_positions=3))
    assert block == Block("max_open_positions", ReasonCode.MAX_POSITIONS,
                          {"open_positions_after": 4, "limit": 3})


def test_max_positions_zero_limit_blocks_any_new_symbol() -> None:
    assert rules.max_positions(x(open_symbols_after=1), cfg(max_open_positions=0)) is not None


def test_max_positions_adding_to_held_symbol_passes_over_limit() -> None:
    ex = x(opens_new_symbol=False, open_symbols_now=5, open_symbols_after=5)
    assert rules.max_positions(ex, cfg(max_open_positions=1)) is None


def test_max_positions_reducing_order_passes() -> None:
    ex = x(reduces=True, open_symbols_after=9)
    assert rules.max_positions(ex, cfg(max_open_positions=1)) is None


# --- exposure -------------------------------------------------------------------------------
def test_gross_exposure_equal_to_limit_passes() -> None:
    # 512 of 1024 = 50 % exactly
    assert rules.exposure(x(gross_after=512.0, net_after=0.0),
                          cfg(max_gross_exposure_pct=50.0)) is None


def test_gross_exposure_one_step_beyond_limit_blocked() -> None:
    block = rules.exposure(x(gross_after=up(512.0), net_after=0.0),
                           cfg(max_gross_exposure_pct=50.0))
    assert block is not None
    assert (block.rule, block.reason_code) == ("gross_exposure", ReasonCode.EXPOSURE)
    assert block.detail["gross_exposure_pct"] > 50.0
    assert (block.detail["limit_pct"], block.detail["equity"]) == (50.0, 1024.0)


def test_net_exposure_equal_to_limit_passes() -> None:
    assert rules.exposure(x(gross_after=4096.0, net_after=512.0),
                          cfg(max_net_exposure_pct=50.0)) is None


@pytest.mark.parametrize("net", [up(512.0), -up(512.0)])
def test_net_exposure_beyond_limit_either_sign_blocked(net: float) -> None:
    block = rules.exposure(x(gross_after=1024.0, net_after=net), cfg(max_net_exposure_pct=50.0))
    assert block is not None
    assert (block.rule, block.reason_code) == ("net_exposure", ReasonCode.EXPOSURE)
    assert block.detail["net_exposure_pct"] > 50.0


@pytest.mark.parametrize("equity", [0.0, -5.0])
def test_exposure_without_positive_equity_blocked(equity: float) -> None:
    block = rules.exposure(x(equity=equity), cfg(max_gross_exposure_pct=1000.0))
    assert block is not None and block.detail["gross_exposure_pct"] == INF


def test_exposure_reducing_order_passes() -> None:
    ex = x(reduces=True, gross_after=1e9, net_after=1e9)
    assert rules.exposure(ex, cfg(max_gross_exposure_pct=1.0, max_net_exposure_pct=1.0)) is None
