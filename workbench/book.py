"""The in-loop books: cash, positions, marks, reservations and FIFO round trips.

Risk, brokers and the engine read these; only the step writes them (through ``apply_fill`` and
the reservation calls). The SQL views in ``sql/views/acct`` compute the same books independently
from the warehouse; tests hold the two to each other.

Positions are integer units of 1e-8 (see ``model.QTY_SCALE``) so that they add up exactly; FIFO
matching works in those units too, which is what lets Python and SQL agree exactly on round trips.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from heapq import merge
from types import MappingProxyType
from typing import Any, NamedTuple

from workbench.errors import StrategyError
from workbench.model import (
    QTY_SCALE,
    ActionEvent,
    ActionKind,
    Bar,
    CorporateAction,
    Fill,
    Side,
    split_fraction,
)

CASH_TOLERANCE = 1e-9
"""Spot cash may dip below zero by this much relative to the initial cash (float residue)."""


class BookInvariantError(StrategyError):
    """The books broke a spot invariant (cash below zero, a position below zero, or books that
    no longer add up to their fills): something other than a fill changed them."""

    def __init__(self, what: str) -> None:
        super().__init__(
            what,
            fix="a strategy reads the books through ctx (ctx.cash, ctx.position(...), ctx.book, "
                "all read-only) and changes them only by orders (ctx.submit); the run was "
                "marked failed and nothing else was written",
        )


class RoundTrip(NamedTuple):
    """A FIFO-matched entry and exit of ``qty``: ``side`` LONG (entry a buy, exit a sell) or
    SHORT (entry a sell, exit a buy; ``ShortBook`` only).

    ``fees`` are the entry and exit fees pro rata to the matched quantity; ``pnl`` is net of them
    (a short gains what the price fell); ``return_pct`` is ``pnl`` over the entry notional, in
    percent.
    """

    symbol: str
    side: str
    qty: float
    entry_ts: int
    entry_price: float
    exit_ts: int
    exit_price: float
    fees: float
    pnl: float
    return_pct: float
    entry_fill_seq: int
    exit_fill_seq: int


class Charge(NamedTuple):
    """Cash a position paid at bar time ``ts`` outside a fill: ``kind`` borrow or funding,
    ``amount`` in the quote currency (> 0 a cost, < 0 received); a ``costs`` row."""

    ts: int
    symbol: str
    kind: str
    amount: float


class _Lot:
    __slots__ = ("fee", "fill_seq", "price", "remaining", "ts", "units")

    def __init__(self, fill: Fill, remaining: int | None = None) -> None:
        self.units = fill.qty_units  # the whole fill's: its fee is shared pro rata to it
        self.remaining = fill.qty_units if remaining is None else remaining
        self.price = fill.price
        self.fee = fill.fee
        self.ts = fill.ts
        self.fill_seq = fill.fill_seq


def match_round_trip(lot_units: int, lot_price: float, lot_fee: float, exit_units: int,
                     exit_price: float, exit_fee: float, matched: int, short: bool = False
                     ) -> tuple[float, float, float, float]:
    """Quantity, fees, pnl and return of ``matched`` units of a lot closed by an exit fill
    (``short``: a sold lot closed by a buy).

    The arithmetic is written once and mirrored operation by operation in
    ``sql/views/rpt/round_trips.sql``, so that both give the same doubles.
    """
    qty = matched / QTY_SCALE
    fees = lot_fee * (matched / lot_units) + exit_fee * (matched / exit_units)
    gain = lot_price - exit_price if short else exit_price - lot_price
    pnl = gain * qty - fees
    return_pct = pnl / (lot_price * qty) * 100.0
    return qty, fees, pnl, return_pct


class Book:
    """Cash and positions of one account, marked at the last close seen per symbol.

    Spot: positions never go below zero (``ShortBook`` holds shorts)."""

    allow_short = False

    def __init__(self, initial_cash: float) -> None:
        self.initial_cash = float(initial_cash)
        self.cash = float(initial_cash)
        self.units: dict[str, int] = {}
        self.last: dict[str, float] = {}
        self.bars: dict[str, Bar] = {}
        """The last bar seen per symbol (the step writes it with ``last``): what a simulated
        fill's market impact reads."""
        self.reserved_cash = 0.0
        self.reserved_units: dict[str, int] = {}
        self.realized_pnl = 0.0
        self.fees_paid = 0.0
        self.round_trips: list[RoundTrip] = []
        self.history: list[tuple[int, float, str, int]] = []
        """After each fill and corporate action: (its bar_ts, cash, symbol, that symbol's
        units)."""
        self.actions: list[ActionEvent] = []
        """The corporate actions applied (``apply_action``), in order."""
        self.charges: list[Charge] = []
        """Cash paid (or received, negative) outside fills: borrow and funding (``charge``),
        in order."""
        self._lots: dict[str, deque[_Lot]] = {}
        self._view: BookView | None = None

    @property
    def view(self) -> BookView:
        """A read-only view of these books (what a strategy gets as ``ctx.book``)."""
        if self._view is None:
            self._view = BookView(self)
        return self._view

    # --- reads ------------------------------------------------------------------------------
    def position(self, symbol: str) -> float:
        return self.units.get(symbol, 0) / QTY_SCALE

    def position_units(self, symbol: str) -> int:
        return self.units.get(symbol, 0)

    @property
    def cash_tolerance(self) -> float:
        """How far spot cash may dip below zero (float residue): ``CASH_TOLERANCE`` of the
        initial cash (of 1.0 at the least)."""
        return CASH_TOLERANCE * max(self.initial_cash, 1.0)

    @property
    def free_cash(self) -> float:
        return self.cash - self.reserved_cash

    def free_units(self, symbol: str) -> int:
        return self.units.get(symbol, 0) - self.reserved_units.get(symbol, 0)

    def position_value(self) -> float:
        value = 0.0
        last = self.last
        for symbol, units in self.units.items():
            value += units / QTY_SCALE * last[symbol]
        return value

    def equity(self) -> float:
        return self.cash + self.position_value()

    def open_positions(self) -> int:
        return len(self.units)

    # --- writes (the step calls these) ------------------------------------------------------
    def mark(self, symbol: str, price: float) -> None:
        self.last[symbol] = price

    def reserve(self, symbol: str, cash: float = 0.0, units: int = 0) -> None:
        self.reserved_cash += cash
        if units:
            self.reserved_units[symbol] = self.reserved_units.get(symbol, 0) + units

    def release(self, symbol: str, cash: float = 0.0, units: int = 0) -> None:
        self.reserved_cash -= cash
        if self.reserved_cash < 1e-9:  # float residue of releasing what was reserved
            self.reserved_cash = 0.0
        if units:
            left = self.reserved_units.get(symbol, 0) - units
            if left:
                self.reserved_units[symbol] = left
            else:
                self.reserved_units.pop(symbol, None)

    def apply_fill(self, fill: Fill) -> list[RoundTrip]:
        """Move cash and position for one fill; return the round trips a sell closed."""
        symbol = fill.symbol
        notional = fill.qty * fill.price
        if fill.side is Side.SELL and fill.qty_units > self.units.get(symbol, 0):
            raise BookInvariantError(
                f"sell fill {fill.fill_seq} of {fill.qty!r} {symbol} exceeds the position "
                f"{self.position(symbol)!r}; a spot position never goes below zero (the broker "
                "refuses a sell beyond the position), so the books were changed outside a fill")
        if symbol not in self.last:
            self.last[symbol] = fill.price
        if fill.side is Side.BUY:
            self.cash = self._cash_after_buy(fill, notional)
            self.fees_paid += fill.fee
            self._add_units(symbol, fill.qty_units)
            self.history.append((fill.bar_ts, self.cash, symbol, self.units.get(symbol, 0)))
            self._lots.setdefault(symbol, deque()).append(_Lot(fill))
            return []
        self.fees_paid += fill.fee
        self.cash += notional - fill.fee
        self._add_units(symbol, -fill.qty_units)
        self.history.append((fill.bar_ts, self.cash, symbol, self.units.get(symbol, 0)))
        return self._close_lots(fill)

    def apply_action(self, action: CorporateAction, ts: int) -> ActionEvent:
        """Apply a split or a dividend of ``action.symbol`` at bar time ``ts`` (adr/0025).

        A split scales every open lot: its units (floored to the unit: the fractions are
        paid in cash at the mark over the ratio, cash in lieu), its size and its price (over
        the ratio); the mark is divided by the ratio too, so the position's value is
        unchanged. A dividend credits ``amount`` per unit held. Returns the event, also
        kept in ``actions``."""
        symbol = action.symbol
        before = self.units.get(symbol, 0)
        after, cash = before, 0.0
        if action.kind is ActionKind.SPLIT and before:
            assert action.ratio is not None
            ratio = split_fraction(action.ratio)
            num, den = ratio.numerator, ratio.denominator
            after = left = 0  # a short's lots hold positive units too
            lots = self._lots.get(symbol, deque())
            for lot in lots:
                scaled = lot.remaining * num
                lot.remaining = scaled // den
                left += scaled - lot.remaining * den
                lot.units = lot.units * num // den
                lot.price = lot.price / action.ratio
                after += lot.remaining
            # a reverse split can floor a lot (or the whole position) to nothing: all cash
            self._lots[symbol] = deque(lot for lot in lots if lot.remaining)
            mark = self.last[symbol] = self.last[symbol] / action.ratio
            cash = left / den / QTY_SCALE * mark
            if before < 0:  # a short: the fraction floored away is bought back at the mark
                after, cash = -after, -cash
            self._add_units(symbol, after - before)
        elif action.kind is ActionKind.SPLIT and symbol in self.last:
            self.last[symbol] = self.last[symbol] / action.ratio  # type: ignore[operator]
        elif action.kind is ActionKind.DIVIDEND and before:
            assert action.amount is not None
            cash = before / QTY_SCALE * action.amount
        self.cash += cash
        event = ActionEvent(len(self.actions) + 1, symbol, ts, action.kind, action.ex_date,
                            action.ratio, action.amount, before, after, cash)
        self.actions.append(event)
        if before:
            self.history.append((ts, self.cash, symbol, after))
        return event

    def _cash_after_buy(self, fill: Fill, notional: float) -> float:
        """Cash after paying for a buy fill; BookInvariantError if it would go below zero."""
        cash = self.cash - (notional + fill.fee)
        if cash < -self.cash_tolerance:
            raise BookInvariantError(
                f"buy fill {fill.fill_seq} of {fill.qty!r} {fill.symbol} at {fill.price!r} "
                f"would take cash from {self.cash!r} to {cash!r}; spot cash never goes below "
                "zero (the broker refuses a buy beyond free cash), so the books were changed "
                "outside a fill")
        return cash

    def charge(self, ts: int, symbol: str, kind: str, amount: float) -> None:
        """Pay ``amount`` of cash (receive, if negative) for ``symbol``'s position at bar time
        ``ts``: a short's borrow, a funding payment (adr/0026). Kept in ``charges``."""
        self.cash -= amount
        self.charges.append(Charge(ts, symbol, kind, amount))
        self.history.append((ts, self.cash, symbol, self.units.get(symbol, 0)))

    def _add_units(self, symbol: str, delta: int) -> None:
        units = self.units.get(symbol, 0) + delta
        if units:
            self.units[symbol] = units
        else:
            self.units.pop(symbol, None)

    def _close_lots(self, fill: Fill, units: int | None = None, short: bool = False
                    ) -> list[RoundTrip]:
        """Close ``units`` (default: all of the fill's) of the symbol's oldest lots with
        ``fill``; ``short``: the lots are sold ones and the fill a buy."""
        lots = self._lots.get(symbol := fill.symbol)
        remaining = fill.qty_units if units is None else units
        side = "SHORT" if short else "LONG"
        closed: list[RoundTrip] = []
        while remaining and lots:
            lot = lots[0]
            matched = min(lot.remaining, remaining)
            qty, fees, pnl, ret = match_round_trip(
                lot.units, lot.price, lot.fee, fill.qty_units, fill.price, fill.fee, matched,
                short)
            trip = RoundTrip(symbol, side, qty, lot.ts, lot.price, fill.ts, fill.price, fees,
                             pnl, ret, lot.fill_seq, fill.fill_seq)
            closed.append(trip)
            self.realized_pnl += pnl
            lot.remaining -= matched
            remaining -= matched
            if not lot.remaining:
                lots.popleft()
        if remaining:
            raise BookInvariantError(
                f"{fill.side.value.lower()} fill {fill.fill_seq} of {symbol} exceeds the open "
                f"lots by {remaining} units (1e-8); the position was changed outside a fill"
            )
        self.round_trips.extend(closed)
        return closed

    # --- invariants -------------------------------------------------------------------------
    def check(self, fills: Sequence[Fill]) -> None:
        """Hold the books to their fills: cash and every position must be exactly what the
        fills make of the initial cash (the same arithmetic, in the same order), and neither
        may be below zero (a position may, in a ``ShortBook``). BookInvariantError names the
        first breach."""
        cash = self.initial_cash
        units: dict[str, int] = {}
        # a bar's actions apply before its charges, and both before its fills
        events: Iterator[ActionEvent | Charge] = merge(
            self.actions, self.charges, key=lambda e: (e.ts, type(e) is Charge))
        event = next(events, None)
        for fill in fills:
            while event is not None and event.ts <= fill.bar_ts:
                cash, event = self._fold(event, units, cash), next(events, None)
            notional = fill.qty * fill.price
            if fill.side is Side.BUY:
                cash -= notional + fill.fee
                units[fill.symbol] = units.get(fill.symbol, 0) + fill.qty_units
            else:
                cash += notional - fill.fee
                units[fill.symbol] = units.get(fill.symbol, 0) - fill.qty_units
        while event is not None:
            cash, event = self._fold(event, units, cash), next(events, None)
        held = {s: u for s, u in units.items() if u}
        tolerance = self.cash_tolerance
        if not abs(self.cash - cash) <= tolerance:
            raise BookInvariantError(
                f"the books hold cash {self.cash!r} but the initial cash {self.initial_cash!r} "
                f"and the {len(fills)} fills make it {cash!r}: cash was changed outside a fill")
        if held != self.units:
            symbol = next(s for s in sorted(set(held) | set(self.units))
                          if held.get(s, 0) != self.units.get(s, 0))
            raise BookInvariantError(
                f"the books hold {self.units.get(symbol, 0) / QTY_SCALE!r} {symbol} but the "
                f"fills make it {held.get(symbol, 0) / QTY_SCALE!r}: the position was changed "
                "outside a fill")
        if cash < -tolerance:
            raise BookInvariantError(f"the fills take cash to {cash!r}, below zero")
        negative = next((s for s, u in sorted(held.items()) if u < 0), None)
        if negative is not None and not self.allow_short:
            raise BookInvariantError(
                f"the fills take the {negative} position to {held[negative] / QTY_SCALE!r}, "
                "below zero")

    def _fold(self, event: ActionEvent | Charge, units: dict[str, int], cash: float) -> float:
        """Fold a corporate action or a charge into ``check``'s books: the position an action
        found must be the one the fills made; it leaves ``units_after`` and adds its cash; a
        charge takes its amount."""
        if type(event) is Charge:
            return cash - event.amount
        action = event
        assert isinstance(action, ActionEvent)
        held = units.get(action.symbol, 0)
        if held != action.units_before:
            raise BookInvariantError(
                f"{action.kind} {action.action_seq} of {action.symbol} found a position of "
                f"{action.units_before / QTY_SCALE!r} but the fills make it "
                f"{held / QTY_SCALE!r}: the position was changed outside a fill")
        units[action.symbol] = action.units_after
        return cash + action.cash_quote


class ShortBook(Book):
    """Books that may sell beyond the position (``portfolio.allow_short``, adr/0026): a sell
    past zero opens a short, negative units, its proceeds in cash; a buy covers the oldest
    short lot first. A fill that crosses zero closes the open lots, then opens a lot of the
    rest on the other side (a lot keeps its fill's size and fee, for pro-rata fees). Equity is
    still cash plus units times the mark. The kernel builds one only when shorts are allowed,
    so a spot run's fills go through ``Book.apply_fill`` unchanged."""

    allow_short = True

    def apply_fill(self, fill: Fill) -> list[RoundTrip]:
        """Move cash and position for one fill; return the round trips it closed (long ones
        by a sell, short ones by a buy)."""
        symbol, units = fill.symbol, fill.qty_units
        held = self.units.get(symbol, 0)
        notional = fill.qty * fill.price
        if symbol not in self.last:
            self.last[symbol] = fill.price
        if fill.side is Side.BUY:
            cash = self._cash_after_buy(fill, notional)
            closing = min(units, -held) if held < 0 else 0
            delta = units
        else:
            cash = self.cash + (notional - fill.fee)
            closing = min(units, held) if held > 0 else 0
            delta = -units
        self.cash = cash
        self.fees_paid += fill.fee
        self._add_units(symbol, delta)
        self.history.append((fill.bar_ts, self.cash, symbol, self.units.get(symbol, 0)))
        closed = self._close_lots(fill, closing, short=fill.side is Side.BUY) if closing else []
        if units > closing:
            self._lots.setdefault(symbol, deque()).append(_Lot(fill, units - closing))
        return closed


class BookView:
    """Read-only view of a Book: what a strategy sees as ``ctx.book``.

    Every read of the Book is here (live, not a copy); no write is. Assigning to any attribute
    raises AttributeError naming the way to change the books: an order.
    """

    __slots__ = ("_book", "last", "reserved_units", "units")

    def __init__(self, book: Book) -> None:
        set_ = object.__setattr__
        set_(self, "_book", book)
        set_(self, "units", MappingProxyType(book.units))
        set_(self, "last", MappingProxyType(book.last))
        set_(self, "reserved_units", MappingProxyType(book.reserved_units))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"ctx.book is read-only (tried to set `{name}`): a strategy changes the books only "
            "by orders (ctx.submit)")

    def __delattr__(self, name: str) -> None:
        self.__setattr__(name, None)

    _book: Book
    units: Mapping[str, int]
    last: Mapping[str, float]
    reserved_units: Mapping[str, int]

    @property
    def initial_cash(self) -> float:
        return self._book.initial_cash

    @property
    def cash(self) -> float:
        return self._book.cash

    @property
    def reserved_cash(self) -> float:
        return self._book.reserved_cash

    @property
    def free_cash(self) -> float:
        return self._book.free_cash

    @property
    def realized_pnl(self) -> float:
        return self._book.realized_pnl

    @property
    def fees_paid(self) -> float:
        return self._book.fees_paid

    @property
    def round_trips(self) -> tuple[RoundTrip, ...]:
        return tuple(self._book.round_trips)

    def position(self, symbol: str) -> float:
        return self._book.position(symbol)

    def position_units(self, symbol: str) -> int:
        return self._book.position_units(symbol)

    def free_units(self, symbol: str) -> int:
        return self._book.free_units(symbol)

    def position_value(self) -> float:
        return self._book.position_value()

    def equity(self) -> float:
        return self._book.equity()

    def open_positions(self) -> int:
        return self._book.open_positions()
