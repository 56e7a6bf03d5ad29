"""Pure pre-trade rules: a view of the account and an order in, a block (or None) out.

Every rule sees the same ``Exposure`` snapshot, computed once per order at the order's expected
fill price. A limit is breached when a value exceeds it; equal passes. Rules that only stop new
risk let reduce-only orders (those that only shrink an existing position) through.

Reason codes are a stable enum, documented in docs/risk.md: renaming one is a breaking change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from workbench.config import RiskConfig
from workbench.model import QTY_SCALE, Order


class ReasonCode(StrEnum):
    HALTED = "RISK_HALTED"
    REDUCE_ONLY = "RISK_REDUCE_ONLY"
    SYMBOL_NOT_ALLOWED = "RISK_SYMBOL_NOT_ALLOWED"
    DAILY_LOSS = "RISK_DAILY_LOSS"
    DRAWDOWN = "RISK_DRAWDOWN"
    ORDER_NOTIONAL = "RISK_ORDER_NOTIONAL"
    POSITION_LIMIT = "RISK_POSITION_LIMIT"
    MAX_POSITIONS = "RISK_MAX_POSITIONS"
    EXPOSURE = "RISK_EXPOSURE"


@dataclass(frozen=True)
class Block:
    """Why an order was blocked: the rule, its stable code and the numbers that tripped it."""

    rule: str
    reason_code: ReasonCode
    detail: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        numbers = ", ".join(f"{k}={v!r}" for k, v in self.detail.items())
        return f"{self.reason_code} ({self.rule}: {numbers})"


@dataclass(frozen=True)
class Exposure:
    """The account around one order, at the order's expected fill price.

    ``units_after`` is the symbol's position if this order and the symbol's other open orders
    filled; ``open_symbols_after`` the symbols that would then hold a position; gross and net
    exposure likewise, in the quote currency, marking other positions at their last close. For a
    sell, gross and net are the worse of its two ends: the open buys filling while no sell does
    (sells never offset them), and ``units_after`` (the sells filling while no buy does).
    """

    price: float
    notional: float
    reduces: bool
    units_after: int
    open_symbols_now: int
    open_symbols_after: int
    opens_new_symbol: bool
    gross_after: float
    net_after: float
    equity: float
    peak_equity: float
    day_start_equity: float
    realized_today: float
    daily_stop: bool


def _pct(value: float, equity: float) -> float:
    return value / equity * 100.0 if equity > 0 else float("inf")


def halted(order: Order, x: Exposure, halt: str | None, flatten_tag: str) -> Block | None:
    if halt is None:
        return None
    if order.reduce_only and order.tag == flatten_tag and x.reduces:
        return None
    return Block("halted", ReasonCode.HALTED, {"since": halt})


def reduce_only(order: Order, x: Exposure) -> Block | None:
    if order.reduce_only and not x.reduces:
        return Block("reduce_only", ReasonCode.REDUCE_ONLY,
                     {"qty": order.qty, "position_after": x.units_after / QTY_SCALE})
    return None


def allowed_symbols(order: Order, cfg: RiskConfig) -> Block | None:
    if cfg.allowed_symbols is not None and order.symbol not in cfg.allowed_symbols:
        return Block("allowed_symbols", ReasonCode.SYMBOL_NOT_ALLOWED,
                     {"symbol": order.symbol, "allowed": list(cfg.allowed_symbols)})
    return None


def daily_loss(x: Exposure, cfg: RiskConfig) -> Block | None:
    if cfg.daily_loss_limit is None or x.reduces:
        return None
    if x.daily_stop or -x.realized_today > cfg.daily_loss_limit:
        return Block("daily_loss", ReasonCode.DAILY_LOSS,
                     {"realized_today": x.realized_today, "limit": cfg.daily_loss_limit})
    return None


def drawdown(x: Exposure, cfg: RiskConfig) -> Block | None:
    if x.reduces:
        return None
    if cfg.max_daily_drawdown_pct is not None and x.day_start_equity > 0:
        dd = (x.day_start_equity - x.equity) / x.day_start_equity * 100.0
        if dd > cfg.max_daily_drawdown_pct:
            return Block("daily_drawdown", ReasonCode.DRAWDOWN,
                         {"drawdown_pct": dd, "limit_pct": cfg.max_daily_drawdown_pct,
                          "day_start_equity": x.day_start_equity, "equity": x.equity})
    if cfg.max_drawdown_pct is not None and x.peak_equity > 0:
        dd = (x.peak_equity - x.equity) / x.peak_equity * 100.0
        if dd > cfg.max_drawdown_pct:
            return Block("drawdown", ReasonCode.DRAWDOWN,
                         {"drawdown_pct": dd, "limit_pct": cfg.max_drawdown_pct,
                          "peak_equity": x.peak_equity, "equity": x.equity})
    return None


def order_notional(x: Exposure, cfg: RiskConfig) -> Block | None:
    if cfg.max_order_notional is None or x.reduces:
        return None
    if x.notional > cfg.max_order_notional:
        return Block("order_notional", ReasonCode.ORDER_NOTIONAL,
                     {"notional": x.notional, "price": x.price,
                      "limit": cfg.max_order_notional})
    return None


def position_limit(order: Order, x: Exposure, cfg: RiskConfig) -> Block | None:
    if not cfg.position_limits or x.reduces:
        return None
    limit = cfg.position_limits.get(order.symbol)
    if limit is None:
        return None
    qty_after = abs(x.units_after) / QTY_SCALE
    value_after = qty_after * x.price
    if limit.max_qty is not None and qty_after > limit.max_qty:
        return Block("position_limit", ReasonCode.POSITION_LIMIT,
                     {"qty_after": qty_after, "max_qty": limit.max_qty})
    if limit.max_value is not None and value_after > limit.max_value:
        return Block("position_limit", ReasonCode.POSITION_LIMIT,
                     {"value_after": value_after, "price": x.price,
                      "max_value": limit.max_value})
    return None


def max_positions(x: Exposure, cfg: RiskConfig) -> Block | None:
    if cfg.max_open_positions is None or x.reduces or not x.opens_new_symbol:
        return None
    if x.open_symbols_after > cfg.max_open_positions:
        return Block("max_open_positions", ReasonCode.MAX_POSITIONS,
                     {"open_positions_after": x.open_symbols_after,
                      "limit": cfg.max_open_positions})
    return None


def exposure(x: Exposure, cfg: RiskConfig) -> Block | None:
    if x.reduces:
        return None
    if cfg.max_gross_exposure_pct is not None:
        gross = _pct(x.gross_after, x.equity)
        if gross > cfg.max_gross_exposure_pct:
            return Block("gross_exposure", ReasonCode.EXPOSURE,
                         {"gross_exposure_pct": gross, "limit_pct": cfg.max_gross_exposure_pct,
                          "equity": x.equity})
    if cfg.max_net_exposure_pct is not None:
        net = _pct(abs(x.net_after), x.equity)
        if net > cfg.max_net_exposure_pct:
            return Block("net_exposure", ReasonCode.EXPOSURE,
                         {"net_exposure_pct": net, "limit_pct": cfg.max_net_exposure_pct,
                          "equity": x.equity})
    return None


ORDER = ("halted", "reduce_only", "allowed_symbols", "daily_loss", "drawdown", "order_notional",
         "position_limit", "max_open_positions", "exposure")
"""The fixed evaluation order; the first block wins. ``RiskEngine.check`` walks this tuple."""
