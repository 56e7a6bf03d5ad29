"""The risk engine: runs the rules in their fixed order before any broker sees an order.

Order, fixed (``rules.ORDER``): halted -> reduce-only consistency -> allowed symbols -> daily
loss -> drawdown -> per-order notional -> position limit -> max open positions -> exposure. The
first failing rule stops evaluation. Checks use the order's expected fill price: the last close
moved by spread and slippage as the fill model would (market orders), or the limit price.

State it keeps: the kill switch (``halt``/``resume``), the UTC day's realized P&L and its
daily-loss stop, the day's start equity and the peak equity (for the drawdown rules, observed
once per bar only when one of them is configured), per-rule block counters and every block and
stop as a ``risk_events`` row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from workbench.book import Book, RoundTrip
from workbench.brokers.fills import CostModel
from workbench.config import RiskConfig
from workbench.model import QTY_SCALE, Bar, Fill, Order, OrderType, Side, ms_to_iso
from workbench.risk import rules
from workbench.risk.rules import Block, Exposure, ReasonCode
from workbench.telemetry.log import JsonlLog

DAY_MS = 86_400_000
FLATTEN_TAG = "flatten"


class RiskEngine:
    """Pre-trade checks with stable reason codes; the same engine in every mode."""

    def __init__(self, cfg: RiskConfig, costs: CostModel, *, resume_next_day: bool = True,
                 log: JsonlLog | None = None) -> None:
        """``resume_next_day``: a daily-loss stop lifts by itself on the next UTC day (the
        backtest's wiring); when False (live modes) it also needs an explicit ``resume``."""
        self.cfg = cfg
        self.costs = costs
        self.resume_next_day = resume_next_day
        self.log = log or JsonlLog()
        self.needs_bars = cfg.max_daily_drawdown_pct is not None or cfg.max_drawdown_pct is not None
        limits = cfg.model_dump(exclude={"modes"})
        self.has_rules = any(v is not None for v in limits.values())
        self.halted_since: str | None = None
        self.counters: dict[str, int] = {}
        self.checked = 0
        self.last_block: dict[str, Any] | None = None
        self.daily_pnl: dict[str, float] = {}
        self._days: dict[int, str] = {}  # UTC day number -> "YYYY-MM-DD"
        self.events: list[tuple[int, str | None, int | None, str | None, str, str, str]] = []
        self._book: Book | None = None
        self._open_orders: Callable[[], list[Order]] = list
        self._now: Callable[[], int] = lambda: 0
        self._bar_ts: Callable[[], int] = lambda: 0
        self._day: int | None = None
        self._stop_day: int | None = None
        self._rules: dict[str, Callable[[Order, Exposure], Block | None]] = {
            "halted": lambda o, x: rules.halted(o, x, self.halted_since, FLATTEN_TAG),
            "reduce_only": rules.reduce_only,
            "allowed_symbols": lambda o, x: rules.allowed_symbols(o, cfg),
            "daily_loss": lambda o, x: rules.daily_loss(x, cfg),
            "drawdown": lambda o, x: rules.drawdown(x, cfg),
            "order_notional": lambda o, x: rules.order_notional(x, cfg),
            "position_limit": lambda o, x: rules.position_limit(o, x, cfg),
            "max_open_positions": lambda o, x: rules.max_positions(x, cfg),
            "exposure": lambda o, x: rules.exposure(x, cfg),
        }
        assert tuple(self._rules) == rules.ORDER
        self.daily_stop = False
        self.day_start_equity = math.nan
        self.peak_equity = math.nan

    def bind(self, book: Book, open_orders: Callable[[], list[Order]],
             now: Callable[[], int], bar_ts: Callable[[], int]) -> None:
        """Attach to the step's books, its open orders, and its clock (the current bar's close
        time and open time; a bar belongs to the UTC day it opens in)."""
        self._book = book
        self._open_orders = open_orders
        self._now = now
        self._bar_ts = bar_ts
        self.day_start_equity = self.peak_equity = book.equity()

    @property
    def realized_today(self) -> float:
        """Realized P&L of round trips closed on the current UTC day (quote currency)."""
        if self._day is None:
            return 0.0
        return self.daily_pnl.get(self._day_text(self._day), 0.0)

    # --- operator controls ------------------------------------------------------------------
    def halt(self, reason: str = "operator") -> None:
        """Kill switch: block every new order but the flatten command's reduce-only ones."""
        self.halted_since = f"{reason} at {ms_to_iso(self._now())}"
        self.log.warning("risk", f"trading halted: {self.halted_since}")

    def resume(self) -> None:
        """Lift the kill switch and, in live modes, a daily-loss stop of an earlier day."""
        self.halted_since = None
        if self._book is not None:
            self._roll_day(self._bar_ts() // DAY_MS, None)  # resuming may be the day's first act
        if self.daily_stop and self._day is not None and self._stop_day != self._day:
            self.daily_stop = False
        self.log.info("risk", "trading resumed")

    # --- the step calls these ---------------------------------------------------------------
    def observe_bar(self, bar: Bar) -> None:
        """Before a bar is marked: the equity at the end of the previous bar."""
        assert self._book is not None
        equity = self._book.equity()
        if equity > self.peak_equity:
            self.peak_equity = equity
        self._roll_day(bar.ts // DAY_MS, equity)

    def _day_text(self, day: int) -> str:
        text = self._days.get(day)
        if text is None:
            text = self._days[day] = ms_to_iso(day * DAY_MS)[:10]
        return text

    def on_fill(self, fill: Fill, trips: list[RoundTrip]) -> None:
        if not trips:
            return
        self._roll_day(fill.bar_ts // DAY_MS, None)
        pnl = math.fsum(t.pnl for t in trips)
        day = self._day_text(fill.bar_ts // DAY_MS)
        self.daily_pnl[day] = self.daily_pnl.get(day, 0.0) + pnl
        limit = self.cfg.daily_loss_limit
        # a breach trips today's stop, also while an older day's stop still waits for resume
        if limit is not None and self._stop_day != self._day and -self.realized_today > limit:
            self.daily_stop = True
            self._stop_day = self._day
            detail = {"event": "stop", "realized_today": self.realized_today, "limit": limit,
                      "until": "next UTC day" if self.resume_next_day
                      else "next UTC day and an explicit resume"}
            self.events.append((fill.ts, None, None, fill.symbol, "daily_loss",
                                ReasonCode.DAILY_LOSS.value, json.dumps(detail)))
            self.log.warning("risk", f"daily loss stop: realized {self.realized_today!r} "
                             f"beyond the limit {limit!r}; orders that add risk are blocked",
                             **detail)

    def check(self, order: Order) -> Block | None:
        """The first rule that blocks ``order``, or None when every rule passes."""
        assert self._book is not None
        self.checked += 1
        if not self.has_rules and self.halted_since is None and not order.reduce_only:
            return None  # nothing configured could block it: skip the account snapshot
        self._roll_day(self._bar_ts() // DAY_MS, None)
        x = self.exposure(order)
        for name in rules.ORDER:
            block = self._rules[name](order, x)
            if block is not None:
                return block
        return None

    def record(self, order: Order, block: Block, now: int) -> None:
        """A block: a risk_events row, a counter, a log record."""
        self.counters[block.rule] = self.counters.get(block.rule, 0) + 1
        self.last_block = {"ts": ms_to_iso(now), "order_seq": order.order_seq,
                           "rule": block.rule, "reason_code": block.reason_code.value,
                           **block.detail}
        self.events.append((now, order.client_order_id, order.order_seq, order.symbol,
                            block.rule, block.reason_code.value,
                            json.dumps(block.detail, default=str)))
        self.log.warning("risk", f"blocked order {order.order_seq} ({order.side} {order.qty!r} "
                         f"{order.symbol}): {block.describe()}", order_seq=order.order_seq,
                         rule=block.rule, reason_code=block.reason_code.value, **block.detail)

    # --- the numbers the rules see ----------------------------------------------------------
    def expected_price(self, order: Order) -> float:
        if order.type is OrderType.LIMIT and order.limit_price is not None:
            return order.limit_price
        assert self._book is not None
        ref = self._book.last.get(order.symbol)
        if ref is None:
            return math.nan  # the broker will reject it: NO_PRICE
        return self.costs.market_price(order.side, ref, order.qty,
                                       self._book.bars.get(order.symbol))

    def exposure(self, order: Order) -> Exposure:
        book = self._book
        assert book is not None
        price = self.expected_price(order)
        held = dict(book.units)
        resting_buys: dict[str, int] = {}
        resting_sells: dict[str, int] = {}
        for other in self._open_orders():
            if other is order:
                continue
            left = other.qty_units - other.filled_units
            side = resting_buys if other.side is Side.BUY else resting_sells
            side[other.symbol] = side.get(other.symbol, 0) + left
        sym, units = order.symbol, order.qty_units
        position = held.get(sym, 0)
        if order.side is Side.BUY:
            reduces = position < 0 and units + resting_buys.get(sym, 0) <= -position
            after = position + resting_buys.get(sym, 0) + units
        else:
            reduces = position > 0 and units + resting_sells.get(sym, 0) <= position
            after = position - resting_sells.get(sym, 0) - units
        exposed = {s: u + resting_buys.get(s, 0) for s, u in held.items()}
        for s, u in resting_buys.items():
            exposed.setdefault(s, u)
        long_end = exposed.get(sym, 0)
        exposed[sym] = after
        gross, net = self._exposures(exposed, sym, price)
        if order.side is Side.SELL:
            # the worst case of a sell is either end: this sell and the other sells fill while
            # no buy does (``after``, a short), or the open buys fill while no sell does (sells
            # never offset them)
            gross_long, net_long = self._exposures({**exposed, sym: long_end}, sym, price)
            if gross_long > gross:
                gross = gross_long
            if abs(net_long) > abs(net):
                net = net_long
        open_now = sum(1 for u in held.values() if u)
        open_after = sum(1 for u in exposed.values() if u)
        equity = book.equity()
        return Exposure(
            price=price,
            notional=units / QTY_SCALE * price,
            reduces=reduces,
            units_after=after,
            open_symbols_now=open_now,
            open_symbols_after=open_after,
            opens_new_symbol=order.side is Side.BUY and not held.get(sym)
            and not resting_buys.get(sym),
            gross_after=gross,
            net_after=net,
            equity=equity,
            peak_equity=max(self.peak_equity, equity),
            day_start_equity=self.day_start_equity,
            realized_today=self.realized_today,
            daily_stop=self.daily_stop,
        )

    def _exposures(self, exposed: dict[str, int], sym: str, price: float) -> tuple[float, float]:
        """(gross, net) of ``exposed`` units: ``sym`` at ``price``, others at their last close."""
        assert self._book is not None
        last = self._book.last
        gross = net = 0.0
        for s, u in exposed.items():
            mark = price if s == sym else last.get(s, math.nan)
            value = u / QTY_SCALE * mark
            gross += abs(value)
            net += value
        return gross, net

    def _roll_day(self, day: int, equity: float | None) -> None:
        if day == self._day:
            return
        if self._day is not None and day < self._day:
            return  # a late fill of an earlier bar: the day has already moved on
        self._day = day
        if equity is not None:
            self.day_start_equity = equity
        elif self._book is not None:
            self.day_start_equity = self._book.equity()
        if self.daily_stop and self.resume_next_day:
            self.daily_stop = False

    # --- reporting --------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """For the manifest: checks, blocks per rule, the last block, realized P&L per day."""
        return {"checked": self.checked, "blocked": sum(self.counters.values()),
                "blocks_by_rule": dict(sorted(self.counters.items())),
                "last_block": self.last_block, "daily_realized_pnl": self.daily_pnl,
                "halted": self.halted_since}

    def events_table(self) -> pa.Table:
        e = self.events
        return pa.table({
            "ts": pa.array([x[0] for x in e], pa.timestamp("ms", tz="UTC")),
            "client_order_id": pa.array([x[1] for x in e], pa.string()),
            "order_seq": pa.array([x[2] for x in e], pa.int64()),
            "symbol": pa.array([x[3] for x in e], pa.string()),
            "rule": pa.array([x[4] for x in e], pa.string()),
            "reason_code": pa.array([x[5] for x in e], pa.string()),
            "detail": pa.array([x[6] for x in e], pa.string()),
        })
