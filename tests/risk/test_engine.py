"""The risk engine (workbench/risk/engine.py): the numbers it computes for each order, the fixed
evaluation order, the kill switch, the daily-loss stop and its UTC day, the drawdown state, and
what a block leaves behind. Unit tests bind the engine to a hand-made Book; the day-boundary
and kill-switch scenarios also run through the real Step and SimBroker.

Prices and quantities are powers of two so that "at the limit" is exact in binary floating
point; "one step beyond" is one quantity quantum (1e-8) or the next double.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import step_harness as harness

from workbench.book import Book, RoundTrip
from workbench.brokers.fills import CostModel
from workbench.config import PositionLimit, RiskConfig
from workbench.engine.step import Step
from workbench.feeds.history import merge
from workbench.feeds.qc import BarSeries
from workbench.model import (
    QTY_SCALE,
    Bar,
    Fill,
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    Side,
    ms_to_iso,
)
from workbench.risk import RiskEngine
from workbench.risk.rules import Block, ReasonCode
from workbench.strategy import Context, Strategy
from workbench.telemetry.log import JsonlLog

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
TF = 60_000
DAY = 86_400_000
Q = QTY_SCALE
BUY, SELL = Side.BUY, Side.SELL
C = ReasonCode


# --- a hand-made account around an engine ---------------------------------------------------
class Account:
    """A Book with chosen cash, positions and last closes, resting orders, a bar clock, and a
    RiskEngine bound to them (bind takes the day's start and the peak equity from the Book)."""

    def __init__(self, cfg: RiskConfig | None = None, *, cash: float = 1024.0,
                 held: dict[str, float] | None = None, last: dict[str, float] | None = None,
                 costs: CostModel | None = None, resume_next_day: bool = True,
                 log: JsonlLog | None = None) -> None:
        self.book = Book(cash)
        self.book.units = {s: round(q * Q) for s, q in (held or {}).items()}
        self.book.last = dict(last or {})
        self.resting: list[Order] = []
        self.bar_ts = T0
        self.seq = 0
        self.risk = RiskEngine(cfg or RiskConfig(), costs or CostModel(),
                               resume_next_day=resume_next_day, log=log)
        self.risk.bind(self.book, lambda: list(self.resting), lambda: self.bar_ts + TF,
                       lambda: self.bar_ts)

    def order(self, symbol: str, side: Side, qty: float, *, limit: float | None = None,
              reduce_only: bool = False, tag: str | None = None) -> Order:
        self.seq += 1
        kind = OrderType.MARKET if limit is None else OrderType.LIMIT
        return Order(self.seq, f"t-{self.seq}", symbol, side, kind, qty, round(qty * Q), limit,
                     self.bar_ts + TF, self.bar_ts, reduce_only=reduce_only, tag=tag)

    def rest(self, symbol: str, side: Side, qty: float, limit: float,
             filled: float = 0.0) -> Order:
        """A resting limit order the step would list among its open orders."""
        o = self.order(symbol, side, qty, limit=limit)
        o.status = OrderStatus.SUBMITTED
        o.filled_units = round(filled * Q)
        self.resting.append(o)
        return o

    def check(self, order: Order) -> Block | None:
        return self.risk.check(order)

    def code(self, order: Order) -> str | None:
        block = self.check(order)
        return None if block is None else block.reason_code.value

    def bar(self, symbol: str = "W", ts: int | None = None) -> None:
        """What the step does before marking a bar: the engine observes the equity."""
        self.bar_ts = self.bar_ts if ts is None else ts
        self.risk.observe_bar(Bar(symbol, self.bar_ts, 1.0, 1.0, 1.0, 1.0, 1.0))

    def realize(self, *pnls: float, symbol: str = "W", ts: int | None = None) -> Fill:
        """A sell fill on the current bar closing round trips with these net P&Ls."""
        self.seq += 1
        bar_ts = self.bar_ts if ts is None else ts
        fill = Fill(self.seq, self.seq, f"t-{self.seq}", symbol, SELL, 1.0, Q, 64.0, 0.0,
                    bar_ts + TF, bar_ts)
        trips = [RoundTrip(symbol, "LONG", 1.0, bar_ts, 64.0 - p, bar_ts + TF, 64.0, 0.0, p,
                           0.0, 1, self.seq) for p in pnls]
        self.risk.on_fill(fill, trips)
        return fill


def up(value: float) -> float:
    return math.nextafter(value, math.inf)


# --- the expected fill price ----------------------------------------------------------------
def test_expected_price_market_buy_half_spread_then_slippage_up() -> None:
    costs = CostModel(spread_bps=20.0, slippage_bps=10.0)
    a = Account(costs=costs, last={"X": 64.0})
    price = a.risk.expected_price(a.order("X", BUY, 1.0))
    assert price == 64.0 * (1 + 20.0 / 2 / 1e4) * (1 + 10.0 / 1e4)
    assert price == costs.market_price(BUY, 64.0, 1.0)


def test_expected_price_market_sell_half_spread_then_slippage_down() -> None:
    costs = CostModel(spread_bps=20.0, slippage_bps=10.0)
    a = Account(costs=costs, last={"X": 64.0})
    assert a.risk.expected_price(a.order("X", SELL, 1.0)) == \
        64.0 * (1 - 20.0 / 2 / 1e4) * (1 - 10.0 / 1e4)


def test_expected_price_slippage_function_gets_side_reference_and_qty() -> None:
    seen: list[tuple[Side, float, float]] = []

    def slip(side: Side, ref: float, qty: float) -> float:
        seen.append((side, ref, qty))
        return 100.0

    a = Account(costs=CostModel(slippage_fn=slip), last={"X": 64.0})
    assert a.risk.expected_price(a.order("X", BUY, 3.0)) == 64.0 * 1.01
    assert seen == [(BUY, 64.0, 3.0)]


def test_expected_price_limit_order_is_its_limit_without_costs() -> None:
    a = Account(costs=CostModel(spread_bps=20.0, slippage_bps=10.0), last={"X": 64.0})
    assert a.risk.expected_price(a.order("X", BUY, 1.0, limit=48.0)) == 48.0


def test_check_market_order_without_last_close_left_to_broker() -> None:
    a = Account(RiskConfig(max_order_notional=1.0, max_gross_exposure_pct=1.0))
    order = a.order("X", BUY, 1.0)
    assert math.isnan(a.risk.expected_price(order))
    assert a.check(order) is None  # the broker rejects it NO_PRICE


# --- per-order notional ---------------------------------------------------------------------
def test_order_notional_at_limit_passes_one_quantum_more_blocked() -> None:
    a = Account(RiskConfig(max_order_notional=128.0), last={"X": 64.0})
    assert a.check(a.order("X", BUY, 2.0)) is None
    block = a.check(a.order("X", BUY, 2.00000001))
    assert block is not None and block.reason_code is C.ORDER_NOTIONAL
    assert block.detail == {"notional": 2.00000001 * 64.0, "price": 64.0, "limit": 128.0}


def test_order_notional_checked_at_slipped_price_not_last_close() -> None:
    costs = CostModel(slippage_bps=5.0)
    slipped = costs.market_price(BUY, 64.0, 2.0)
    blocked = Account(RiskConfig(max_order_notional=128.0), costs=costs, last={"X": 64.0})
    block = blocked.check(blocked.order("X", BUY, 2.0))
    assert block is not None and block.detail["price"] == slipped
    at_limit = Account(RiskConfig(max_order_notional=2.0 * slipped), costs=costs,
                       last={"X": 64.0})
    assert at_limit.check(at_limit.order("X", BUY, 2.0)) is None


def test_order_notional_limit_order_checked_at_limit_price() -> None:
    a = Account(RiskConfig(max_order_notional=64.0), last={"X": 1024.0})
    assert a.check(a.order("X", BUY, 2.0, limit=32.0)) is None
    assert a.code(a.order("X", BUY, 2.0, limit=up(32.0))) == "RISK_ORDER_NOTIONAL"


# --- position limit -------------------------------------------------------------------------
def test_position_limit_qty_counts_held_and_resting_buys() -> None:
    a = Account(RiskConfig(position_limits={"X": PositionLimit(max_qty=2.0)}),
                held={"X": 1.0}, last={"X": 64.0})
    a.rest("X", BUY, 0.5, 32.0)
    assert a.check(a.order("X", BUY, 0.5)) is None  # 1 + 0.5 + 0.5 = 2
    block = a.check(a.order("X", BUY, 0.50000001))
    assert block is not None and block.reason_code is C.POSITION_LIMIT
    assert block.detail == {"qty_after": 2.00000001, "max_qty": 2.0}


def test_position_limit_short_counts_its_absolute_size_and_a_cover_passes() -> None:
    a = Account(RiskConfig(position_limits={"X": PositionLimit(max_qty=2.0)}),
                held={"X": -1.5}, last={"X": 64.0})  # a short (portfolio.allow_short)
    assert a.check(a.order("X", SELL, 0.5)) is None  # -2
    block = a.check(a.order("X", SELL, 0.50000001))
    assert block is not None and block.reason_code is C.POSITION_LIMIT
    assert block.detail == {"qty_after": 2.00000001, "max_qty": 2.0}
    assert a.check(a.order("X", BUY, 1.5)) is None  # covers: reduces
    assert a.code(a.order("X", BUY, 4.0)) == "RISK_POSITION_LIMIT"  # crosses to a long 2.5


def test_position_limit_resting_sells_do_not_offset_a_buy() -> None:
    a = Account(RiskConfig(position_limits={"X": PositionLimit(max_qty=2.0)}),
                held={"X": 2.0}, last={"X": 64.0})
    a.rest("X", SELL, 1.0, 128.0)
    assert a.code(a.order("X", BUY, 0.5)) == "RISK_POSITION_LIMIT"  # worst case: 2.5


def test_position_limit_partly_filled_resting_buy_counts_only_its_rest() -> None:
    a = Account(RiskConfig(position_limits={"X": PositionLimit(max_qty=2.5)}),
                held={"X": 1.5}, last={"X": 64.0})
    a.rest("X", BUY, 1.0, 32.0, filled=0.5)
    assert a.check(a.order("X", BUY, 0.5)) is None  # 1.5 + 0.5 left + 0.5 = 2.5
    assert a.code(a.order("X", BUY, 0.50000001)) == "RISK_POSITION_LIMIT"


def test_position_limit_value_at_expected_price_boundary() -> None:
    cfg = RiskConfig(position_limits={"X": PositionLimit(max_value=128.0)})
    a = Account(cfg, held={"X": 1.0}, last={"X": 64.0})
    assert a.check(a.order("X", BUY, 1.0)) is None  # 2 x 64 = 128
    assert a.code(a.order("X", BUY, 1.00000001)) == "RISK_POSITION_LIMIT"
    slipped = Account(cfg, held={"X": 1.0}, last={"X": 64.0}, costs=CostModel(slippage_bps=1.0))
    block = slipped.check(slipped.order("X", BUY, 1.0))
    assert block is not None
    assert block.detail["price"] == CostModel(slippage_bps=1.0).market_price(BUY, 64.0)


def test_position_limit_other_symbols_unlimited() -> None:
    a = Account(RiskConfig(position_limits={"X": PositionLimit(max_qty=1.0)}), last={"Y": 64.0})
    assert a.check(a.order("Y", BUY, 8.0)) is None


# --- max open positions ---------------------------------------------------------------------
def test_max_positions_new_symbol_at_limit_passes_beyond_blocked() -> None:
    held = {"W": 1.0, "X": 1.0}
    last = {"W": 64.0, "X": 64.0, "Y": 64.0}
    at_limit = Account(RiskConfig(max_open_positions=3), held=held, last=last)
    assert at_limit.check(at_limit.order("Y", BUY, 1.0)) is None
    a = Account(RiskConfig(max_open_positions=2), held=held, last=last)
    block = a.check(a.order("Y", BUY, 1.0))
    assert block == Block("max_open_positions", C.MAX_POSITIONS,
                          {"open_positions_after": 3, "limit": 2})


def test_max_positions_adding_to_held_symbol_passes_at_limit() -> None:
    a = Account(RiskConfig(max_open_positions=2), held={"W": 1.0, "X": 1.0},
                last={"W": 64.0, "X": 64.0})
    assert a.check(a.order("X", BUY, 1.0)) is None


def test_max_positions_resting_buy_on_new_symbol_counts_as_open() -> None:
    a = Account(RiskConfig(max_open_positions=2), held={"W": 1.0},
                last={"W": 64.0, "X": 64.0, "Y": 64.0})
    a.rest("X", BUY, 1.0, 32.0)
    assert a.code(a.order("Y", BUY, 1.0)) == "RISK_MAX_POSITIONS"
    assert a.check(a.order("X", BUY, 1.0)) is None  # X already counts


def test_max_positions_adding_to_symbol_with_resting_buy_passes_over_limit() -> None:
    a = Account(RiskConfig(max_open_positions=1), held={"W": 1.0}, last={"W": 64.0, "X": 64.0})
    a.rest("X", BUY, 1.0, 32.0)  # placed before the limit was reached; X is not new
    assert a.check(a.order("X", BUY, 1.0)) is None


# --- exposure -------------------------------------------------------------------------------
def gross_account(limit: float, **kw: Any) -> Account:
    # cash 768 + W 4 x 64 = equity 1024; a buy of X 4 x 64 takes gross to 512 = 50 %
    return Account(RiskConfig(max_gross_exposure_pct=limit), cash=768.0, held={"W": 4.0},
                   last={"W": 64.0, "X": 64.0}, **kw)


def test_gross_exposure_at_limit_passes_one_quantum_more_blocked() -> None:
    a = gross_account(50.0)
    assert a.check(a.order("X", BUY, 4.0)) is None
    block = a.check(a.order("X", BUY, 4.00000001))
    assert block is not None and (block.rule, block.reason_code) == ("gross_exposure",
                                                                     C.EXPOSURE)
    assert block.detail["equity"] == 1024.0


def test_gross_exposure_counts_resting_buys_of_other_symbols() -> None:
    a = gross_account(50.0)
    a.book.last["Z"] = 64.0
    a.rest("Z", BUY, 0.25, 64.0)
    assert a.code(a.order("X", BUY, 4.0)) == "RISK_EXPOSURE"
    assert a.risk.exposure(a.order("X", BUY, 4.0)).gross_after == 512.0 + 16.0


def test_exposure_marks_order_symbol_at_expected_price_others_at_last_close() -> None:
    costs = CostModel(slippage_bps=5.0)
    a = Account(cash=512.0, held={"W": 2.0, "X": 4.0}, last={"W": 32.0, "X": 64.0}, costs=costs)
    price = costs.market_price(BUY, 64.0, 4.0)
    x = a.risk.exposure(a.order("X", BUY, 4.0))
    assert x.price == price
    assert x.gross_after == 2.0 * 32.0 + 8.0 * price
    assert x.net_after == x.gross_after
    assert x.equity == 512.0 + 64.0 + 256.0


def test_net_exposure_at_limit_passes_one_quantum_more_blocked() -> None:
    a = Account(RiskConfig(max_net_exposure_pct=50.0), cash=768.0, held={"W": 4.0},
                last={"W": 64.0, "X": 64.0})
    assert a.check(a.order("X", BUY, 4.0)) is None
    block = a.check(a.order("X", BUY, 4.00000001))
    assert block is not None and (block.rule, block.reason_code) == ("net_exposure", C.EXPOSURE)


def net_account_with_resting_buy() -> Account:
    # cash 512 + X 2 x 256 = equity 1024; a buy of X 2 rests at 128, placed when X was near it:
    # at X's last close of 256 the worst case (both filled) is 4 x 256 = 1024 = 100 % net
    a = Account(RiskConfig(max_net_exposure_pct=90.0), cash=512.0, held={"X": 2.0},
                last={"X": 256.0})
    a.rest("X", BUY, 2.0, 128.0)
    return a


def test_net_exposure_sell_counts_open_buys_it_does_not_offset() -> None:
    # regression (the property test's example): a sell's exposure dropped the open buys
    a = net_account_with_resting_buy()
    x = a.risk.exposure(a.order("X", SELL, 3.0))  # not reducing: only 2 held
    assert x.reduces is False and x.units_after == -1 * Q
    assert x.net_after == x.gross_after == 4.0 * 256.0  # the open buy fills, the sell does not
    block = a.check(a.order("X", SELL, 3.0))
    assert block is not None and (block.rule, block.reason_code) == ("net_exposure", C.EXPOSURE)
    assert a.check(a.order("X", SELL, 2.0)) is None  # reducing: exits pass


def test_net_exposure_sell_counts_its_short_end_when_larger() -> None:
    a = Account(RiskConfig(max_net_exposure_pct=50.0), cash=896.0, held={"X": 0.5},
                last={"X": 256.0})
    x = a.risk.exposure(a.order("X", SELL, 3.0))  # short 2.5 x 256 = 640 against 0.5 x 256
    assert x.net_after == -640.0 and x.gross_after == 640.0
    assert a.code(a.order("X", SELL, 3.0)) == "RISK_EXPOSURE"
    assert a.check(a.order("X", SELL, 2.25)) is None  # short 1.75 x 256 = 448, 43.75 %


# --- what counts as reducing ----------------------------------------------------------------
@pytest.mark.parametrize(("held", "resting_sell", "sell", "reduces"), [
    (2.0, 0.0, 2.0, True),           # the whole position
    (2.0, 0.0, 0.5, True),
    (2.0, 1.5, 0.5, True),           # with another resting sell, up to the position
    (2.0, 1.5, 0.50000001, False),   # one quantum beyond the unsold position
    (2.0, 0.0, 2.00000001, False),
    (0.0, 0.0, 1.0, False),          # nothing held
])
def test_exposure_sell_reduces_only_within_position_not_already_being_sold(
        held: float, resting_sell: float, sell: float, reduces: bool) -> None:
    a = Account(held={"X": held} if held else {}, last={"X": 64.0})
    if resting_sell:
        a.rest("X", SELL, resting_sell, 128.0)
    assert a.risk.exposure(a.order("X", SELL, sell)).reduces is reduces


def test_exposure_buy_never_reduces_long_position() -> None:
    a = Account(held={"X": 2.0}, last={"X": 64.0})
    assert a.risk.exposure(a.order("X", BUY, 1.0)).reduces is False


# --- evaluation order -----------------------------------------------------------------------
RULES = ("halted", "allowed_symbols", "daily_loss", "drawdown", "order_notional",
         "position_limit", "max_open_positions", "exposure")
CODES = {"halted": "RISK_HALTED", "allowed_symbols": "RISK_SYMBOL_NOT_ALLOWED",
         "daily_loss": "RISK_DAILY_LOSS", "drawdown": "RISK_DRAWDOWN",
         "order_notional": "RISK_ORDER_NOTIONAL", "position_limit": "RISK_POSITION_LIMIT",
         "max_open_positions": "RISK_MAX_POSITIONS", "exposure": "RISK_EXPOSURE"}


def breaking(broken: set[str]) -> tuple[Account, Order]:
    """Cash 512 + W 8 x 64 = equity 1024; a market buy of 4 X at 64 (notional 256) that breaks
    exactly the rules named in ``broken`` (every other rule configured and passing)."""
    b = broken.__contains__
    cfg = RiskConfig(
        allowed_symbols=["W"] if b("allowed_symbols") else ["W", "X"],
        daily_loss_limit=1.0,
        max_drawdown_pct=10.0,
        max_order_notional=128.0 if b("order_notional") else 256.0,
        position_limits={"X": PositionLimit(max_qty=2.0 if b("position_limit") else 4.0)},
        max_open_positions=1 if b("max_open_positions") else 2,
        max_gross_exposure_pct=10.0 if b("exposure") else 100.0,
    )
    a = Account(cfg, cash=512.0, held={"W": 8.0}, last={"W": 64.0, "X": 64.0})
    a.bar()
    if b("halted"):
        a.risk.halt("test")
    if b("daily_loss"):
        a.realize(-2.0)
    if b("drawdown"):
        a.book.last["W"] = 32.0  # equity 768: 25 % below the peak
    return a, a.order("X", BUY, 4.0)


def test_evaluation_order_nothing_broken_passes() -> None:
    a, order = breaking(set())
    assert a.check(order) is None


@pytest.mark.parametrize("rule", RULES)
def test_evaluation_order_each_rule_alone_blocks_with_its_code(rule: str) -> None:
    a, order = breaking({rule})
    block = a.check(order)
    assert block is not None and block.reason_code.value == CODES[rule]


@pytest.mark.parametrize(("first", "second"), list(itertools.pairwise(RULES)))
def test_evaluation_order_adjacent_pair_broken_earlier_rule_wins(first: str,
                                                                 second: str) -> None:
    a, order = breaking({first, second})
    assert a.code(order) == CODES[first]


def test_evaluation_order_all_broken_relaxing_each_in_turn_reveals_the_next() -> None:
    seen = []
    for i in range(len(RULES)):
        a, order = breaking(set(RULES[i:]))
        seen.append(a.code(order))
    assert seen == [CODES[r] for r in RULES]


def test_evaluation_order_halted_checked_before_reduce_only_consistency() -> None:
    a = Account(last={"X": 64.0})
    a.risk.halt()
    assert a.code(a.order("X", SELL, 1.0, reduce_only=True, tag="flatten")) == "RISK_HALTED"
    a.risk.resume()
    assert a.code(a.order("X", SELL, 1.0, reduce_only=True, tag="flatten")) == "RISK_REDUCE_ONLY"


# --- halted (kill switch) -------------------------------------------------------------------
def halted_account() -> Account:
    a = Account(held={"X": 2.0}, last={"X": 64.0, "Y": 64.0})
    a.risk.halt("operator")
    return a


def test_halt_blocks_buy_and_plain_sell_with_since() -> None:
    a = halted_account()
    for order in (a.order("Y", BUY, 1.0), a.order("X", SELL, 1.0)):
        block = a.check(order)
        assert block == Block("halted", C.HALTED, {"since": f"operator at {ms_to_iso(T0 + TF)}"})


def test_halt_flatten_tagged_reduce_only_sell_passes() -> None:
    a = halted_account()
    assert a.check(a.order("X", SELL, 2.0, reduce_only=True, tag="flatten")) is None


@pytest.mark.parametrize(("qty", "reduce_only", "tag", "code"), [
    (2.00000001, True, "flatten", "RISK_HALTED"),  # would not reduce: halted comes first
    (2.0, False, "flatten", "RISK_HALTED"),             # not flagged reduce-only
    (2.0, True, "exit", "RISK_HALTED"),                 # not the flatten command
])
def test_halt_sell_that_is_not_the_flatten_commands_reducing_order_blocked(
        qty: float, reduce_only: bool, tag: str, code: str) -> None:
    a = halted_account()
    assert a.code(a.order("X", SELL, qty, reduce_only=reduce_only, tag=tag)) == code


def test_halt_blocks_even_with_no_limits_configured_and_resume_lifts_it() -> None:
    a = halted_account()
    assert a.risk.summary()["halted"] == f"operator at {ms_to_iso(T0 + TF)}"
    a.risk.resume()
    assert a.check(a.order("Y", BUY, 1.0)) is None
    assert a.risk.summary()["halted"] is None


# --- reduce-only exits under every stop and limit -------------------------------------------
EXIT_LIMITS = {
    "daily_loss": RiskConfig(daily_loss_limit=1.0),
    "drawdown": RiskConfig(max_drawdown_pct=1.0),
    "daily_drawdown": RiskConfig(max_daily_drawdown_pct=1.0),
    "order_notional": RiskConfig(max_order_notional=1.0),
    "position_limit": RiskConfig(position_limits={
        s: PositionLimit(max_qty=1.0, max_value=1.0) for s in ("X", "Y")}),
    "max_open_positions": RiskConfig(max_open_positions=0),
    "gross_exposure": RiskConfig(max_gross_exposure_pct=1.0),
    "net_exposure": RiskConfig(max_net_exposure_pct=1.0),
}


def tripped(name: str) -> Account:
    """Holding X 8 x 64 (equity 1024) with ``name`` tripped for any order adding risk."""
    a = Account(EXIT_LIMITS[name], cash=512.0, held={"X": 8.0}, last={"X": 64.0, "Y": 64.0})
    a.bar()
    if name == "daily_loss":
        a.realize(-2.0)
    if "drawdown" in name:
        a.book.last["X"] = 32.0
    return a


@pytest.mark.parametrize("name", list(EXIT_LIMITS))
def test_reduce_only_exit_passes_while_adding_risk_blocked(name: str) -> None:
    a = tripped(name)
    adding = a.check(a.order("Y", BUY, 4.0))
    assert adding is not None and adding.rule == name
    assert a.check(a.order("X", SELL, 8.0)) is None
    assert a.check(a.order("X", SELL, 4.0, reduce_only=True, tag="stop")) is None


def test_reduce_only_exit_of_unlisted_symbol_blocked_by_whitelist() -> None:
    a = Account(RiskConfig(allowed_symbols=["Y"]), held={"X": 8.0}, last={"X": 64.0})
    assert a.code(a.order("X", SELL, 8.0, reduce_only=True)) == "RISK_SYMBOL_NOT_ALLOWED"


# --- the daily-loss stop --------------------------------------------------------------------
def test_daily_loss_realized_loss_equal_to_limit_no_stop() -> None:
    a = Account(RiskConfig(daily_loss_limit=100.0), last={"X": 64.0})
    a.realize(-60.0, -40.0)
    assert a.risk.realized_today == -100.0
    assert a.risk.daily_stop is False and a.risk.events == []
    assert a.check(a.order("X", BUY, 1.0)) is None


def test_daily_loss_beyond_limit_stop_recorded_without_order() -> None:
    a = Account(RiskConfig(daily_loss_limit=100.0), last={"X": 64.0})
    a.realize(-60.0)
    fill = a.realize(-40.0, -0.25)
    assert a.risk.daily_stop is True
    ((ts, coid, seq, symbol, rule, code, detail),) = a.risk.events
    assert (ts, coid, seq, symbol, rule, code) == (fill.ts, None, None, "W", "daily_loss",
                                                   "RISK_DAILY_LOSS")
    assert json.loads(detail) == {"event": "stop", "realized_today": -100.25, "limit": 100.0,
                                  "until": "next UTC day"}


def test_daily_loss_stop_blocks_adding_risk_with_realized_today() -> None:
    a = Account(RiskConfig(daily_loss_limit=100.0), last={"X": 64.0})
    a.realize(-128.0)
    block = a.check(a.order("X", BUY, 1.0))
    assert block == Block("daily_loss", C.DAILY_LOSS, {"realized_today": -128.0, "limit": 100.0})


def test_daily_loss_stop_stays_after_gains_the_same_day_and_recorded_once() -> None:
    a = Account(RiskConfig(daily_loss_limit=100.0), last={"X": 64.0})
    a.realize(-128.0)
    a.realize(+512.0)
    a.realize(-1024.0)
    assert a.code(a.order("X", BUY, 1.0)) == "RISK_DAILY_LOSS"
    assert len(a.risk.events) == 1


def test_daily_loss_gains_offset_losses_within_a_day() -> None:
    a = Account(RiskConfig(daily_loss_limit=100.0), last={"X": 64.0})
    a.realize(-150.0, +100.0)
    assert a.risk.daily_stop is False


def test_daily_loss_backtest_stop_lifts_on_next_utc_day() -> None:
    a = Account(RiskConfig(daily_loss_limit=100.0), last={"X": 64.0})
    a.bar_ts = T0 + DAY - TF  # 23:59, the day's last minute bar
    a.realize(-128.0)
    assert a.code(a.order("X", BUY, 1.0)) == "RISK_DAILY_LOSS"
    a.bar_ts = T0 + DAY
    assert a.check(a.order("X", BUY, 1.0)) is None
    assert a.risk.realized_today == 0.0


def test_daily_loss_realized_pnl_per_utc_day_in_summary() -> None:
    a = Account(RiskConfig(daily_loss_limit=1e6), last={"X": 64.0})
    a.realize(-1.5, 4.0)
    a.realize(2.0)
    a.bar_ts = T0 + DAY
    a.realize(-8.0)
    assert a.risk.summary()["daily_realized_pnl"] == {"2024-01-01": 4.5, "2024-01-02": -8.0}


def test_daily_loss_live_modes_stop_persists_into_next_day_until_resume() -> None:
    a = Account(RiskConfig(daily_loss_limit=100.0), last={"X": 64.0}, resume_next_day=False)
    a.realize(-128.0)
    assert "explicit resume" in json.loads(a.risk.events[0][6])["until"]
    a.risk.resume()  # the same day: the stop holds
    assert a.code(a.order("X", BUY, 1.0)) == "RISK_DAILY_LOSS"
    a.bar_ts = T0 + DAY
    assert a.code(a.order("X", BUY, 1.0)) == "RISK_DAILY_LOSS"
    a.bar_ts = T0 + 3 * DAY
    assert a.code(a.order("X", BUY, 1.0)) == "RISK_DAILY_LOSS"
    a.risk.resume()
    assert a.check(a.order("X", BUY, 1.0)) is None


def test_daily_loss_live_resume_on_next_day_before_any_order_lifts_stop() -> None:
    a = Account(RiskConfig(daily_loss_limit=100.0), last={"X": 64.0}, resume_next_day=False)
    a.realize(-128.0)
    a.bar_ts = T0 + DAY  # the clock is on the next UTC day; no order checked yet
    a.risk.resume()
    assert a.check(a.order("X", BUY, 1.0)) is None


def test_daily_loss_live_new_breach_under_older_stop_recorded_and_needs_own_resume() -> None:
    a = Account(RiskConfig(daily_loss_limit=100.0), last={"X": 64.0}, resume_next_day=False)
    a.realize(-128.0)                       # day D: the stop
    a.bar_ts = T0 + DAY
    assert a.code(a.order("X", BUY, 1.0)) == "RISK_DAILY_LOSS"
    a.realize(-256.0)                       # day D+1: exits realize a loss beyond the limit
    assert len(a.risk.events) == 2          # D's stop and D+1's stop
    a.risk.resume()                         # lifts D's stop, not the one hit today
    a.bar_ts = T0 + 2 * DAY
    assert a.code(a.order("X", BUY, 1.0)) == "RISK_DAILY_LOSS"  # D+1's stop needs a resume


# --- drawdown state -------------------------------------------------------------------------
def drawdown_account(cfg: RiskConfig) -> Account:
    # cash 512 + W 8 x 64 = 1024
    a = Account(cfg, cash=512.0, held={"W": 8.0}, last={"W": 64.0, "X": 64.0})
    a.bar()
    return a


def test_total_drawdown_at_limit_passes_beyond_blocked() -> None:
    a = drawdown_account(RiskConfig(max_drawdown_pct=12.5))
    a.book.last["W"] = 48.0  # equity 896: 12.5 % below 1024
    assert a.check(a.order("X", BUY, 1.0)) is None
    a.book.last["W"] = 48.0 - 1 / 128  # equity 895.9375
    block = a.check(a.order("X", BUY, 1.0))
    assert block is not None and (block.rule, block.reason_code) == ("drawdown", C.DRAWDOWN)
    assert block.detail["peak_equity"] == 1024.0


def test_total_drawdown_peak_follows_observed_highs() -> None:
    a = drawdown_account(RiskConfig(max_drawdown_pct=20.0))
    a.book.last["W"] = 192.0  # equity 2048
    a.bar()
    a.book.last["W"] = 128.0  # equity 1536: 25 % below the new peak, 50 % above the start
    assert a.code(a.order("X", BUY, 1.0)) == "RISK_DRAWDOWN"


def test_total_drawdown_current_equity_counts_as_peak_before_next_bar() -> None:
    a = drawdown_account(RiskConfig(max_drawdown_pct=1.0))
    a.book.last["W"] = 192.0  # a new high not yet observed
    assert a.risk.exposure(a.order("X", BUY, 1.0)).peak_equity == 2048.0
    assert a.check(a.order("X", BUY, 1.0)) is None


def test_daily_drawdown_measured_from_day_start_and_resets_next_day() -> None:
    a = drawdown_account(RiskConfig(max_daily_drawdown_pct=20.0))
    a.book.last["W"] = 32.0  # equity 768: 25 % below the day's start
    block = a.check(a.order("X", BUY, 1.0))
    assert block is not None and block.rule == "daily_drawdown"
    assert block.detail["day_start_equity"] == 1024.0
    a.bar(ts=T0 + DAY)  # the next day starts at the equity the previous day left
    assert a.risk.day_start_equity == 768.0
    assert a.check(a.order("X", BUY, 1.0)) is None


def test_needs_bars_only_when_a_drawdown_rule_is_set() -> None:
    costs = CostModel()
    assert not RiskEngine(RiskConfig(daily_loss_limit=1.0, max_order_notional=1.0),
                          costs).needs_bars
    assert RiskEngine(RiskConfig(max_drawdown_pct=1.0), costs).needs_bars
    assert RiskEngine(RiskConfig(max_daily_drawdown_pct=1.0), costs).needs_bars


# --- what a block leaves behind -------------------------------------------------------------
def test_record_counts_rule_keeps_last_block_event_row_and_warning_log(tmp_path: Path) -> None:
    path = tmp_path / "logs.jsonl"
    log = JsonlLog(path)
    a = Account(RiskConfig(max_order_notional=128.0), last={"X": 64.0}, log=log)
    for qty in (4.0, 8.0):
        order = a.order("X", BUY, qty)
        block = a.check(order)
        assert block is not None
        a.risk.record(order, block, T0 + TF)
    log.close()
    assert a.risk.counters == {"order_notional": 2}
    assert a.risk.last_block == {"ts": ms_to_iso(T0 + TF), "order_seq": 2,
                                 "rule": "order_notional", "reason_code": "RISK_ORDER_NOTIONAL",
                                 "notional": 512.0, "price": 64.0, "limit": 128.0}
    assert a.risk.events[-1] == (T0 + TF, "t-2", 2, "X", "order_notional", "RISK_ORDER_NOTIONAL",
                                 json.dumps({"notional": 512.0, "price": 64.0, "limit": 128.0}))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["level"], r["component"]) for r in records] == [("warning", "risk")] * 2
    assert records[-1]["context"]["reason_code"] == "RISK_ORDER_NOTIONAL"
    assert records[-1]["context"]["notional"] == 512.0


def test_summary_checked_blocked_by_rule_and_last_block() -> None:
    a = Account(RiskConfig(max_order_notional=128.0, allowed_symbols=["X"]),
                last={"X": 64.0, "Y": 64.0})
    for order in (a.order("X", BUY, 1.0), a.order("X", BUY, 4.0), a.order("Y", BUY, 1.0)):
        block = a.check(order)
        if block is not None:
            a.risk.record(order, block, T0 + TF)
    s = a.risk.summary()
    assert (s["checked"], s["blocked"]) == (3, 2)
    assert s["blocks_by_rule"] == {"allowed_symbols": 1, "order_notional": 1}
    assert s["last_block"]["reason_code"] == "RISK_SYMBOL_NOT_ALLOWED"


def test_events_table_block_and_stop_rows_typed_for_risk_events() -> None:
    a = Account(RiskConfig(max_order_notional=128.0, daily_loss_limit=1.0), last={"X": 64.0})
    order = a.order("X", BUY, 4.0)
    block = a.check(order)
    assert block is not None
    a.risk.record(order, block, T0 + TF)
    a.realize(-2.0)
    table = a.risk.events_table()
    assert table.column_names == ["ts", "client_order_id", "order_seq", "symbol", "rule",
                                  "reason_code", "detail"]
    assert str(table.schema.field("ts").type) == "timestamp[ms, tz=UTC]"
    rows = table.to_pylist()
    assert [(r["client_order_id"], r["order_seq"], r["reason_code"]) for r in rows] == [
        ("t-1", 1, "RISK_ORDER_NOTIONAL"), (None, None, "RISK_DAILY_LOSS")]
    assert json.loads(rows[1]["detail"])["event"] == "stop"


# --- through the real Step and SimBroker ----------------------------------------------------
SIX_HOURS = 6 * 3_600_000


class Script(Strategy):
    """Runs ``script[i](ctx, bar)`` on the i-th bar; remembers its orders and rejects."""

    def __init__(self, script: dict[int, Callable[[Context, Bar], list[Order]]]) -> None:
        super().__init__()
        self.script = script

    def on_start(self, ctx: Context) -> None:
        self.i = -1
        self.orders: dict[int, Order] = {}
        self.rejects: list[tuple[int, str | None]] = []

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        self.i += 1
        action = self.script.get(self.i)
        if action is not None:
            placed = action(ctx, bar)
            if placed:
                self.orders[self.i] = placed[0]

    def on_reject(self, ctx: Context, order: Order) -> None:
        self.rejects.append((order.order_seq, order.reason))


def submit(*intents: OrderIntent, then: Callable[[], None] | None = None,
           before: Callable[[], None] | None = None) -> Callable[[Context, Bar], list[Order]]:
    """Submit ``intents`` (the first one's order is remembered for the bar), with an operator
    action ``before`` or ``then``."""
    def act(ctx: Context, bar: Bar) -> list[Order]:
        if before is not None:
            before()
        placed = [ctx.submit(intent) for intent in intents]
        if then is not None:
            then()
        return placed
    return act


def run_bars(strategy: Strategy, closes: list[float], risk: RiskEngine, tf: int = SIX_HOURS,
             cash: float = 10_000.0, symbol: str = "X") -> Step:
    c = np.array(closes, dtype=float)
    ts = T0 + np.arange(len(c), dtype=np.int64) * tf
    data = merge([BarSeries(symbol, tf, ts, c, c, c, c, np.ones(len(c)))])
    return harness.run(strategy, data, cash=cash, risk=risk, timeframe_ms=tf)


BUY1 = OrderIntent("X", BUY, 1.0)
SELL1 = OrderIntent("X", SELL, 1.0)


def test_step_daily_loss_on_day_d_blocks_rest_of_d_first_order_of_next_day_fills() -> None:
    # 6-hour bars: D 00:00, 06:00, 12:00, 18:00 (closes at D+1 00:00 but opens on D), D+1 00:00
    risk = RiskEngine(RiskConfig(daily_loss_limit=100.0), CostModel())
    strat = Script({0: submit(BUY1), 1: submit(SELL1), 2: submit(BUY1), 3: submit(BUY1),
                    4: submit(BUY1)})
    step = run_bars(strat, [1000.0, 800.0, 800.0, 800.0, 800.0], risk)
    status = {i: (o.status, o.reason) for i, o in strat.orders.items()}
    assert status == {0: (OrderStatus.FILLED, None), 1: (OrderStatus.FILLED, None),
                      2: (OrderStatus.BLOCKED, "RISK_DAILY_LOSS"),
                      3: (OrderStatus.BLOCKED, "RISK_DAILY_LOSS"),
                      4: (OrderStatus.FILLED, None)}
    assert strat.rejects == [(3, "RISK_DAILY_LOSS"), (4, "RISK_DAILY_LOSS")]
    stop, *blocks = risk.events
    assert (stop[0], stop[1], json.loads(stop[6])["realized_today"]) == (
        T0 + 2 * SIX_HOURS, None, -200.0)
    assert [b[1] for b in blocks] == ["t-3", "t-4"]
    assert step.book.position("X") == 1.0
    assert risk.summary()["daily_realized_pnl"] == {"2024-01-01": -200.0}


def test_step_daily_loss_exactly_at_limit_next_order_same_day_fills() -> None:
    risk = RiskEngine(RiskConfig(daily_loss_limit=200.0), CostModel())
    strat = Script({0: submit(BUY1), 1: submit(SELL1), 2: submit(BUY1)})
    run_bars(strat, [1000.0, 800.0, 800.0], risk)
    assert strat.orders[2].status is OrderStatus.FILLED
    assert risk.events == []


def test_step_daily_loss_stop_exit_of_remaining_position_fills() -> None:
    risk = RiskEngine(RiskConfig(daily_loss_limit=100.0), CostModel())
    strat = Script({0: submit(OrderIntent("X", BUY, 2.0)), 1: submit(SELL1),
                    2: submit(BUY1, SELL1)})
    step = run_bars(strat, [1000.0, 800.0, 800.0], risk)
    blocked_buy, sell = harness.orders(step)[2:]
    assert (blocked_buy.status, blocked_buy.reason) == (OrderStatus.BLOCKED, "RISK_DAILY_LOSS")
    assert sell.status is OrderStatus.FILLED
    assert step.book.position("X") == 0.0


def test_step_live_engine_keeps_stop_across_day_until_resume() -> None:
    risk = RiskEngine(RiskConfig(daily_loss_limit=100.0), CostModel(), resume_next_day=False)
    strat = Script({0: submit(BUY1), 1: submit(SELL1), 4: submit(BUY1, then=risk.resume),
                    5: submit(BUY1)})
    run_bars(strat, [1000.0, 800.0, 800.0, 800.0, 800.0, 800.0], risk)
    assert (strat.orders[4].status, strat.orders[4].reason) == (OrderStatus.BLOCKED,
                                                                "RISK_DAILY_LOSS")
    assert strat.orders[5].status is OrderStatus.FILLED


def test_step_live_engine_resume_at_start_of_next_day_lets_next_order_fill() -> None:
    risk = RiskEngine(RiskConfig(daily_loss_limit=100.0), CostModel(), resume_next_day=False)
    strat = Script({0: submit(BUY1), 1: submit(SELL1), 4: submit(BUY1, before=risk.resume)})
    run_bars(strat, [1000.0, 800.0, 800.0, 800.0, 800.0], risk)
    assert strat.orders[4].status is OrderStatus.FILLED


def test_step_drawdown_blocks_buy_after_equity_falls_and_exit_fills() -> None:
    risk = RiskEngine(RiskConfig(max_drawdown_pct=10.0), CostModel(), resume_next_day=True)
    strat = Script({0: submit(OrderIntent("X", BUY, 64.0)), 2: submit(BUY1),
                    3: submit(OrderIntent("X", SELL, 64.0))})
    # cash 8192, 64 X bought at 128; at 96 the account is 8192 - 2048 = 6144: 25 % down
    step = run_bars(strat, [128.0, 128.0, 96.0, 96.0], risk, cash=8192.0)
    assert (strat.orders[2].status, strat.orders[2].reason) == (OrderStatus.BLOCKED,
                                                                "RISK_DRAWDOWN")
    assert strat.orders[3].status is OrderStatus.FILLED
    detail = json.loads(risk.events[0][6])
    assert (detail["peak_equity"], detail["equity"]) == (8192.0, 6144.0)
    assert step.book.position("X") == 0.0


def test_step_halt_blocks_new_orders_flatten_reduce_only_sell_fills() -> None:
    risk = RiskEngine(RiskConfig(), CostModel())
    flatten = OrderIntent("X", SELL, 2.0, reduce_only=True, tag="flatten")
    strat = Script({0: submit(OrderIntent("X", BUY, 2.0)),
                    1: submit(BUY1, SELL1, flatten, before=lambda: risk.halt("kill"))})
    step = run_bars(strat, [64.0, 64.0], risk)
    orders = harness.orders(step)
    assert [(o.status, o.reason) for o in orders[1:]] == [
        (OrderStatus.BLOCKED, "RISK_HALTED"), (OrderStatus.BLOCKED, "RISK_HALTED"),
        (OrderStatus.FILLED, None)]
    assert strat.rejects == [(2, "RISK_HALTED"), (3, "RISK_HALTED")]
    assert step.book.position("X") == 0.0
    assert risk.summary()["halted"] == f"kill at {ms_to_iso(T0 + 2 * SIX_HOURS)}"
