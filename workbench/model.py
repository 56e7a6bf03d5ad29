"""Bars, order intents, orders and fills: plain data, no I/O.

Timestamps inside the loop are int64 milliseconds since the Unix epoch, UTC. A bar's ``ts`` is
its open time (as Binance labels klines); it is known at ``ts + timeframe``.

Quantities are held by the books as integer units of ``QTY_QUANTUM`` (1e-8, Binance's finest lot
step), so positions add up exactly; the API speaks floats (see adr/0001).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from fractions import Fraction
from typing import NamedTuple

QTY_SCALE = 100_000_000
QTY_QUANTUM = 1.0 / QTY_SCALE
_HALF_QUANTUM = QTY_QUANTUM / 2
MAX_UNITS = 2**63 - 1
"""The largest quantity in units: the warehouse stores units as BIGINT (signed 64-bit)."""
MAX_QTY = 90_000_000_000.0
"""The largest order quantity (9e10, just under ``MAX_UNITS / QTY_SCALE``): larger cannot be
held as integer units, and no venue trades anything near it."""

MAX_BPS = 10_000.0
"""The most a cost in basis points may be (100 %): a config's bps, a bar's stored spread."""


def qty_to_units(qty: float) -> int:
    """Quantity as integer units of 1e-8 (rounded to the nearest unit)."""
    return round(qty * QTY_SCALE)


def units_to_qty(units: int) -> float:
    return units / QTY_SCALE


def ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def ms_to_iso(ms: int) -> str:
    """ISO-8601 UTC with millisecond precision and a ``Z``: ``2024-01-01T00:01:00.000Z``."""
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class OrderStatus(StrEnum):
    """An order's state; ``TRANSITIONS`` lists the moves every broker keeps (brokers/base.py).

    ``UNKNOWN``: sent, outcome not known (a timeout, a 5xx, a dropped response). The order is
    still open; only a query of the venue resolves it, never a resubmit.
    """

    NEW = "NEW"
    SUBMITTED = "SUBMITTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    BLOCKED = "BLOCKED"
    UNKNOWN = "UNKNOWN"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.BLOCKED}
)

_S = OrderStatus
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    _S.NEW: frozenset({_S.SUBMITTED, _S.REJECTED, _S.BLOCKED, _S.UNKNOWN}),
    _S.SUBMITTED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.REJECTED,
                             _S.UNKNOWN}),
    _S.PARTIALLY_FILLED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.UNKNOWN}),
    # only a venue query resolves an unknown outcome: to whatever the venue says
    _S.UNKNOWN: frozenset({_S.SUBMITTED, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED,
                           _S.REJECTED}),
    _S.FILLED: frozenset(), _S.CANCELED: frozenset(), _S.REJECTED: frozenset(),
    _S.BLOCKED: frozenset(),
}
"""The order state machine, the same for every broker: each status and where it may go next."""


def can_move(old: OrderStatus, new: OrderStatus) -> bool:
    """Whether the state machine allows ``old -> new``."""
    return new in TRANSITIONS[old]


class Mode(StrEnum):
    BACKTEST = "backtest"
    SHADOW = "shadow"
    PAPER = "paper"
    LIVE = "live"


class Bar(NamedTuple):
    """One closed OHLCV bar of one symbol, immutable. ``ts`` is the open time in ms UTC."""

    symbol: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    @property
    def dt(self) -> datetime:
        return ms_to_dt(self.ts)

    def __repr__(self) -> str:
        return (
            f"Bar({self.symbol} {ms_to_iso(self.ts)} o={self.open!r} h={self.high!r} "
            f"l={self.low!r} c={self.close!r} v={self.volume!r})"
        )


@dataclass(slots=True)
class OrderIntent:
    """What a strategy wants: buy or sell ``qty`` of ``symbol``, at market or at a limit.

    A limit order lives until filled or cancelled, or for ``expire_after_bars`` bars of its
    symbol when set. ``reduce_only`` marks an order that may only shrink a position. Invalid
    intents raise ValueError where they are made.
    """

    symbol: str
    side: Side
    qty: float
    type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    expire_after_bars: int | None = None
    reduce_only: bool = False
    tag: str | None = None

    def __post_init__(self) -> None:
        qty = self.qty
        # the common case in a few comparisons; problem() explains anything else
        if (qty.__class__ is not float or not _HALF_QUANTUM < qty <= MAX_QTY
                or self.limit_price is not None or self.type is not OrderType.MARKET
                or self.expire_after_bars is not None
                or (self.side is not Side.BUY and self.side is not Side.SELL)
                or not self.symbol):
            if self.side.__class__ is not Side and self.side in ("BUY", "SELL"):
                self.side = Side(self.side)
            if self.type.__class__ is not OrderType and self.type in ("MARKET", "LIMIT"):
                self.type = OrderType(self.type)
            problem = self.problem()
            if problem:
                raise ValueError(f"invalid order intent {self!r}: {problem}")

    def problem(self) -> str | None:
        if not isinstance(self.symbol, str) or not self.symbol:
            return "symbol must be a non-empty string"
        if self.side is not Side.BUY and self.side is not Side.SELL:
            return f"side must be Side.BUY or Side.SELL (or 'BUY'/'SELL'), got {self.side!r}"
        if not (isinstance(self.qty, int | float) and not isinstance(self.qty, bool)
                and math.isfinite(self.qty) and self.qty > 0):
            return f"qty must be a positive finite number, got {self.qty!r}"
        if self.qty > MAX_QTY:
            return (f"qty {self.qty!r} is above the largest quantity {MAX_QTY:.0e} (integer "
                    "units of 1e-8 must fit in 64 bits)")
        if qty_to_units(self.qty) == 0:
            return f"qty {self.qty!r} is below the quantity quantum 1e-8"
        if self.type is OrderType.LIMIT:
            lp = self.limit_price
            if lp is None or not (math.isfinite(lp) and lp > 0):
                return f"a limit order needs a positive finite limit_price, got {lp!r}"
        elif self.type is not OrderType.MARKET:
            return f"type must be OrderType.MARKET or OrderType.LIMIT, got {self.type!r}"
        elif self.limit_price is not None:
            return "a market order takes no limit_price"
        if self.expire_after_bars is not None and not (
                isinstance(self.expire_after_bars, int) and self.expire_after_bars >= 1):
            return f"expire_after_bars must be an integer >= 1, got {self.expire_after_bars!r}"
        if not isinstance(self.reduce_only, bool):
            return f"reduce_only must be True or False, got {self.reduce_only!r}"
        if self.tag is not None and not isinstance(self.tag, str):
            return f"tag must be a string or None, got {self.tag!r}"
        return None

    @classmethod
    def market(cls, symbol: str, side: Side | str, qty: float, **kw: object) -> OrderIntent:
        return cls(symbol, Side(side), qty, OrderType.MARKET, **kw)  # type: ignore[arg-type]

    @classmethod
    def limit(
        cls, symbol: str, side: Side | str, qty: float, price: float, **kw: object
    ) -> OrderIntent:
        return cls(symbol, Side(side), qty, OrderType.LIMIT, price, **kw)  # type: ignore[arg-type]


@dataclass(slots=True, eq=False)
class Order:
    """An intent the engine has taken on, with its state. ``order_seq`` counts from 1 per run."""

    order_seq: int
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    qty: float
    qty_units: int
    limit_price: float | None
    ts: int
    bar_ts: int
    expire_after_bars: int | None = None
    reduce_only: bool = False
    tag: str | None = None
    status: OrderStatus = OrderStatus.NEW
    reason: str | None = None
    filled_units: int = 0
    bars_seen: int = 0
    updated_ts: int = 0

    @property
    def filled_qty(self) -> float:
        return units_to_qty(self.filled_units)

    @property
    def is_open(self) -> bool:
        return not self.status.terminal


NO_COSTS = (0.0, 0.0, 0.0)
"""A fill's (spread, slippage, impact) costs when it has none (a limit order's, a venue's)."""


class Fill(NamedTuple):
    """One execution. ``fee`` is in the quote currency, on the fill's notional.

    ``ts`` is when the engine learned of the fill (the step's clock: the bar's close time in a
    backtest); ``bar_ts`` is the open time of the bar it executed on. ``venue_trade_id`` and
    ``venue_ts`` are the venue's own trade id and execution time (ms UTC), None in backtests;
    they are kept in memory and the journal, not yet in the warehouse or the CSVs.

    ``qty_units`` is what the account received or gave. ``fee_units`` is the part of the
    execution the venue kept as its commission, in the asset bought (a Binance buy paid in the
    base asset when the account has no BNB): the order executed ``qty_units + fee_units`` and
    ``fee`` is that commission's value in the quote currency, so cash pays for the whole
    execution and the position holds what the venue holds (adr/0018).

    ``spread_cost``, ``slippage_cost`` and ``impact_cost`` are what the simulated half spread,
    slippage and market impact cost this fill in the quote currency (``brokers/fills.py``):
    already in ``price``, kept for the ``costs`` table; 0 for limit fills and venue fills.
    """

    fill_seq: int
    order_seq: int
    client_order_id: str
    symbol: str
    side: Side
    qty: float
    qty_units: int
    price: float
    fee: float
    ts: int
    bar_ts: int
    venue_trade_id: str | None = None
    venue_ts: int | None = None
    fee_units: int = 0
    spread_cost: float = 0.0
    slippage_cost: float = 0.0
    impact_cost: float = 0.0

    @property
    def notional(self) -> float:
        return self.qty * self.price

    @property
    def executed_units(self) -> int:
        """The units the order executed: received plus those kept as commission."""
        return self.qty_units + self.fee_units


class ActionKind(StrEnum):
    """A corporate action's kind (``corporate_actions.kind`` in lower case)."""

    SPLIT = "SPLIT"
    DIVIDEND = "DIVIDEND"


class CorporateAction(NamedTuple):
    """A split (``ratio`` new units per old unit) or a cash dividend (``amount`` in the quote
    currency per unit held) of ``symbol``, effective from ``ts``: 00:00 UTC of its ex-date
    (ISO ``ex_date``). Applied at the first bar time at or after ``ts`` (adr/0025)."""

    symbol: str
    ex_date: str
    kind: ActionKind
    ratio: float | None
    amount: float | None
    ts: int


def split_fraction(ratio: float) -> Fraction:
    """A split's ratio (new units per old one) as the fraction it was written as, for scaling
    integer units exactly: ``3:2`` is stored as the float 1.5 and ``1:3`` as 0.333..., whose
    decimal digits (3333333333333333/10**16) would floor a lot of 3 to 0.99999999; the nearest
    fraction with a denominator up to 10**9 is 1/3 again."""
    return Fraction(ratio).limit_denominator(1_000_000_000)


class ActionEvent(NamedTuple):
    """What applying a corporate action did to the books at bar time ``ts``: the symbol's
    position before and after (units of 1e-8; equal for a dividend) and the cash it paid (a
    dividend, or a split's cash in lieu of the fraction of a unit it left)."""

    action_seq: int
    symbol: str
    ts: int
    kind: ActionKind
    ex_date: str
    ratio: float | None
    amount: float | None
    units_before: int
    units_after: int
    cash_quote: float
