"""The in-loop books: FIFO round trips and realized P&L by hand, exact units, and the accounting
identity (realized + unrealized - unamortised entry fees = equity - initial cash) on random
fill sequences checked against an exact (Fraction) FIFO written here."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.book import Book, BookInvariantError, RoundTrip, ShortBook, match_round_trip
from workbench.model import QTY_SCALE, ActionKind, CorporateAction, Fill, Side

T0 = 1_704_067_200_000
MINUTE = 60_000


class Fills:
    """Makes numbered fills the way the step does (fill_seq from 1, ts one bar apart)."""

    def __init__(self) -> None:
        self.seq = 0

    def __call__(self, side: str, qty: float, price: float, fee: float = 0.0,
                 symbol: str = "BTC", units: int | None = None) -> Fill:
        self.seq += 1
        units = round(qty * QTY_SCALE) if units is None else units
        bar = T0 + self.seq * MINUTE
        return Fill(self.seq, self.seq, f"r-{self.seq}", symbol, Side(side), units / QTY_SCALE,
                    units, price, fee, bar + MINUTE, bar)


def test_book_buy_then_sell_realizes_price_move_net_of_both_fees() -> None:
    book, fill = Book(1_000.0), Fills()
    book.apply_fill(fill("BUY", 2.0, 100.0, 0.2))
    trips = book.apply_fill(fill("SELL", 2.0, 105.0, 0.21))
    assert book.realized_pnl == pytest.approx(2 * 5.0 - 0.2 - 0.21)
    assert book.cash == pytest.approx(1_000.0 - 200.2 + 209.79)
    assert book.units == {}
    assert trips == book.round_trips
    assert trips == [RoundTrip("BTC", "LONG", 2.0, T0 + 2 * MINUTE, 100.0, T0 + 3 * MINUTE,
                               105.0, pytest.approx(0.41), pytest.approx(9.59),
                               pytest.approx(9.59 / 200 * 100), 1, 2)]


def test_book_partial_fifo_buy3_buy2_sell4_sell1_matches_oldest_lot_first() -> None:
    book, fill = Book(10_000.0), Fills()
    book.apply_fill(fill("BUY", 3.0, 100.0, 0.3))
    book.apply_fill(fill("BUY", 2.0, 110.0, 0.22))
    first = book.apply_fill(fill("SELL", 4.0, 120.0, 0.48))
    second = book.apply_fill(fill("SELL", 1.0, 90.0, 0.09))
    # sell 3 closes all of lot 1 and half of lot 2; sell 4 closes the other half of lot 2
    assert [(t.entry_fill_seq, t.exit_fill_seq, t.qty) for t in first] == [(1, 3, 3.0),
                                                                          (2, 3, 1.0)]
    assert [(t.entry_fill_seq, t.exit_fill_seq, t.qty) for t in second] == [(2, 4, 1.0)]
    fees = [0.3 + 0.48 * 3 / 4, 0.22 / 2 + 0.48 / 4, 0.22 / 2 + 0.09]
    pnls = [3 * 20.0 - fees[0], 1 * 10.0 - fees[1], 1 * -20.0 - fees[2]]
    assert [t.fees for t in book.round_trips] == pytest.approx(fees)
    assert [t.pnl for t in book.round_trips] == pytest.approx(pnls)
    assert [t.return_pct for t in book.round_trips] == pytest.approx(
        [pnls[0] / 300 * 100, pnls[1] / 110 * 100, pnls[2] / 110 * 100])
    assert book.realized_pnl == pytest.approx(48.91)
    assert book.fees_paid == pytest.approx(0.3 + 0.22 + 0.48 + 0.09)
    assert book.units == {}
    assert book.equity() == pytest.approx(10_000.0 + 48.91)


def test_book_one_sell_across_three_lots_closes_them_in_order() -> None:
    book, fill = Book(10_000.0), Fills()
    for price in (10.0, 20.0, 30.0):
        book.apply_fill(fill("BUY", 1.0, price))
    trips = book.apply_fill(fill("SELL", 2.5, 25.0))
    assert [(t.entry_fill_seq, t.qty, t.entry_price) for t in trips] == [
        (1, 1.0, 10.0), (2, 1.0, 20.0), (3, 0.5, 30.0)]
    assert book.realized_pnl == pytest.approx(15.0 + 5.0 - 2.5)
    assert book.position("BTC") == 0.5


def test_book_symbols_keep_separate_fifo_queues() -> None:
    book, fill = Book(10_000.0), Fills()
    book.apply_fill(fill("BUY", 1.0, 100.0, symbol="AAA"))
    book.apply_fill(fill("BUY", 1.0, 10.0, symbol="BBB"))
    trips = book.apply_fill(fill("SELL", 1.0, 12.0, symbol="BBB"))
    assert [(t.symbol, t.entry_fill_seq, t.pnl) for t in trips] == [("BBB", 2, 2.0)]
    assert book.units == {"AAA": QTY_SCALE}


def test_book_decimal_quantities_add_up_exactly_in_units() -> None:
    book, fill = Book(1_000.0), Fills()
    for _ in range(10):
        book.apply_fill(fill("BUY", 0.1, 1.0))
    assert sum([0.1] * 10) != 1.0  # what adding float quantities would get wrong
    assert book.position_units("BTC") == QTY_SCALE
    book.apply_fill(fill("SELL", 1.0, 1.0))
    assert book.units == {}
    assert book.open_positions() == 0
    assert book.position_value() == 0.0


def test_book_sell_beyond_position_raises_and_leaves_book_unchanged() -> None:
    book, fill = Book(1_000.0), Fills()
    book.apply_fill(fill("BUY", 1.0, 10.0))
    cash, units = book.cash, dict(book.units)
    with pytest.raises(BookInvariantError, match="exceeds the position"):
        book.apply_fill(fill("SELL", 1.0, 10.0, units=QTY_SCALE + 1))
    assert (book.cash, book.units) == (cash, units)


def test_book_equity_marks_open_position_at_last_price() -> None:
    book, fill = Book(1_000.0), Fills()
    book.apply_fill(fill("BUY", 2.0, 100.0, 1.0))
    assert book.equity() == pytest.approx(1_000.0 - 1.0)
    book.mark("BTC", 90.0)
    assert book.position_value() == 180.0
    assert book.equity() == pytest.approx(1_000.0 - 201.0 + 180.0)


def test_book_release_of_reserved_cash_returns_free_cash_to_cash() -> None:
    book = Book(1_000.0)
    for cash in (0.1, 0.2, 0.3):
        book.reserve("BTC", cash=cash, units=7)
    for cash in (0.3, 0.1, 0.2):
        book.release("BTC", cash=cash, units=7)
    assert book.reserved_cash == 0.0
    assert book.free_cash == book.cash
    assert book.reserved_units == {}


def test_match_round_trip_matched_part_takes_fees_pro_rata() -> None:
    qty, fees, pnl, ret = match_round_trip(3 * QTY_SCALE, 100.0, 0.3, 4 * QTY_SCALE, 120.0, 0.48,
                                           3 * QTY_SCALE)
    assert qty == 3.0
    assert fees == pytest.approx(0.66)
    assert pnl == pytest.approx(59.34)
    assert ret == pytest.approx(19.78)


# --- random fill sequences against an exact FIFO ----------------------------------------------
PRICES = st.one_of(st.sampled_from([1.0, 10.0, 99.99, 100.0]),
                   st.floats(0.01, 10_000.0, allow_nan=False, allow_infinity=False))
FEE_BPS = st.sampled_from([0.0, 1.0, 7.5, 10.0])

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), st.sampled_from(["AAA", "BBB"]),
                  st.integers(1, 5 * QTY_SCALE), PRICES, FEE_BPS),
        st.tuples(st.just("sell"), st.sampled_from(["AAA", "BBB"]),
                  st.fractions(0, 1, max_denominator=16), PRICES, FEE_BPS),
        st.tuples(st.just("mark"), st.sampled_from(["AAA", "BBB"]), st.none(), PRICES,
                  st.none()),
    ),
    min_size=1, max_size=40,
)


class ExactFifo:
    """The books again, in Fractions, lot by lot."""

    def __init__(self, initial: float) -> None:
        self.cash = Fraction(initial)
        self.lots: dict[str, list[list[Fraction | int]]] = {}  # [remaining, units, price, fee]
        self.mark: dict[str, Fraction] = {}
        self.realized = Fraction(0)
        self.matched: list[tuple[int, int, int]] = []

    def buy(self, seq: int, symbol: str, units: int, price: float, fee: float) -> None:
        p, f = Fraction(price), Fraction(fee)
        self.cash -= Fraction(units, QTY_SCALE) * p + f
        self.lots.setdefault(symbol, []).append([units, units, p, f, seq])

    def sell(self, seq: int, symbol: str, units: int, price: float, fee: float) -> None:
        p, f = Fraction(price), Fraction(fee)
        self.cash += Fraction(units, QTY_SCALE) * p - f
        left = units
        lots = self.lots[symbol]
        while left:
            lot = lots[0]
            take = min(lot[0], left)
            self.realized += ((p - lot[2]) * Fraction(take, QTY_SCALE)
                              - lot[3] * Fraction(take, lot[1]) - f * Fraction(take, units))
            self.matched.append((lot[4], seq, take))
            lot[0] -= take
            left -= take
            if not lot[0]:
                lots.pop(0)

    def position(self, symbol: str) -> int:
        return sum(lot[0] for lot in self.lots.get(symbol, []))

    def unrealized_net_of_open_fees(self) -> Fraction:
        total = Fraction(0)
        for symbol, lots in self.lots.items():
            for remaining, units, price, fee, _ in lots:
                total += (Fraction(remaining, QTY_SCALE) * (self.mark[symbol] - price)
                          - fee * Fraction(remaining, units))
        return total

    def equity(self) -> Fraction:
        return self.cash + sum((Fraction(self.position(s), QTY_SCALE) * self.mark[s]
                                for s in self.lots), Fraction(0))


def replay(ops: list[tuple], initial: float) -> tuple[Book, ExactFifo, float]:
    book, exact, fill = Book(initial), ExactFifo(initial), Fills()
    gross = initial
    for kind, symbol, amount, price, fee_bps in ops:
        if kind == "mark":
            if symbol in book.last:
                book.mark(symbol, price)
                exact.mark[symbol] = Fraction(price)
            continue
        units = amount if kind == "buy" else int(exact.position(symbol) * amount)
        if not units:
            continue
        fee = units / QTY_SCALE * price * fee_bps / 1e4
        f = fill("BUY" if kind == "buy" else "SELL", 0.0, price, fee, symbol, units)
        book.apply_fill(f)
        exact.mark.setdefault(symbol, Fraction(price))
        (exact.buy if kind == "buy" else exact.sell)(f.fill_seq, symbol, units, price, fee)
        gross += units / QTY_SCALE * price + fee
    return book, exact, gross


@settings(max_examples=60, deadline=None)
@given(ops=OPS)
def test_book_random_fills_realized_pnl_agrees_with_exact_fifo(ops: list[tuple]) -> None:
    book, exact, gross = replay(ops, 1_000_000.0)
    assert [(t.entry_fill_seq, t.exit_fill_seq, round(t.qty * QTY_SCALE))
            for t in book.round_trips] == exact.matched
    assert book.realized_pnl == pytest.approx(float(exact.realized), rel=1e-9, abs=1e-9 * gross)
    assert book.units == {s: exact.position(s) for s in exact.lots if exact.position(s)}
    assert book.cash == pytest.approx(float(exact.cash), rel=1e-12, abs=1e-12 * gross)


@settings(max_examples=60, deadline=None)
@given(ops=OPS)
def test_book_random_fills_realized_plus_unrealized_equals_equity_change(
        ops: list[tuple]) -> None:
    initial = 1_000_000.0
    book, exact, gross = replay(ops, initial)
    realized = sum(t.pnl for t in book.round_trips)
    unrealized = 0.0
    for symbol, lots in book._lots.items():
        for lot in lots:
            unrealized += (lot.remaining / QTY_SCALE * (book.last[symbol] - lot.price)
                           - lot.fee * (lot.remaining / lot.units))
    # the identity holds exactly in Fractions, and to rounding in the book's floats
    exact_change = exact.equity() - Fraction(initial)
    assert exact.realized + exact.unrealized_net_of_open_fees() == exact_change
    assert realized + unrealized == pytest.approx(book.equity() - initial, abs=1e-9 * gross)
    assert book.equity() == pytest.approx(float(exact.equity()), rel=1e-12, abs=1e-12 * gross)


# --- invariants and the read-only view -------------------------------------------------------
def test_book_buy_beyond_cash_raises_invariant_and_leaves_book_unchanged() -> None:
    book, fill = Book(100.0), Fills()
    with pytest.raises(BookInvariantError, match=r"buy fill 1 .* below zero"):
        book.apply_fill(fill("BUY", 2.0, 100.0))
    assert (book.cash, book.units, book.fees_paid, book.history) == (100.0, {}, 0.0, [])


def test_book_check_untouched_books_agree_with_their_fills() -> None:
    book, fill = Book(1_000.0), Fills()
    fills = [fill("BUY", 2.0, 100.0, 0.2), fill("BUY", 0.3, 101.0, 0.03),
             fill("SELL", 1.1, 99.0, 0.1)]
    for f in fills:
        book.apply_fill(f)
    book.check(fills)  # no error


def test_book_check_cash_changed_outside_a_fill_raises_naming_cash() -> None:
    book, fill = Book(1_000.0), Fills()
    fills = [fill("BUY", 2.0, 100.0)]
    book.apply_fill(fills[0])
    book.cash = 1e9
    with pytest.raises(BookInvariantError, match=r"cash 1000000000.0 .* fills make it 800.0"):
        book.check(fills)


def test_book_check_position_changed_outside_a_fill_raises_naming_symbol() -> None:
    book, fill = Book(1_000.0), Fills()
    fills = [fill("BUY", 2.0, 100.0)]
    book.apply_fill(fills[0])
    book.units["BTC"] = 10 * QTY_SCALE
    with pytest.raises(BookInvariantError, match=r"hold 10.0 BTC but the fills make it 2.0"):
        book.check(fills)


def test_book_view_reads_live_values_and_refuses_every_write() -> None:
    book, fill = Book(1_000.0), Fills()
    view = book.view
    book.apply_fill(fill("BUY", 2.0, 100.0))
    assert (view.cash, view.position("BTC"), view.units["BTC"], view.last["BTC"]) == (
        800.0, 2.0, 2 * QTY_SCALE, 100.0)
    assert view.equity() == book.equity() and view.free_cash == book.free_cash
    with pytest.raises(AttributeError, match=r"read-only .*cash.*ctx\.submit"):
        view.cash = 1e9  # type: ignore[misc]
    with pytest.raises(TypeError):
        view.units["BTC"] = 10**12  # type: ignore[index]
    with pytest.raises(TypeError):
        view.last["BTC"] = 1.0  # type: ignore[index]
    with pytest.raises(AttributeError):
        del view.cash  # type: ignore[misc]
    assert (book.cash, book.units) == (800.0, {"BTC": 2 * QTY_SCALE})


# --- corporate actions (adr/0025) ---------------------------------------------------------------
def _split(ratio: float, at: int) -> CorporateAction:
    return CorporateAction("BTC", "2024-01-02", ActionKind.SPLIT, ratio, None, at)


def test_book_split_3_for_2_floors_each_lot_pays_cash_in_lieu_keeps_value() -> None:
    book, fill = Book(1_000.0), Fills()
    book.apply_fill(fill("BUY", 0, 90.0, units=3))
    book.apply_fill(fill("BUY", 0, 120.0, units=5))
    book.mark("BTC", 120.0)
    at = T0 + 10 * MINUTE
    event = book.apply_action(_split(1.5, at), at)
    # 3 -> 4.5 and 5 -> 7.5 units: 4 and 7 kept, one unit paid at 120 / 1.5 = 80 per qty
    assert (event.units_before, event.units_after) == (8, 11)
    assert event.cash_quote == 1 / QTY_SCALE * 80.0
    assert book.position_units("BTC") == 11
    assert book.last["BTC"] == 80.0
    trips = book.apply_fill(fill("SELL", 0, 80.0, units=11))
    assert [(t.qty, t.entry_price) for t in trips] == [(4 / QTY_SCALE, 60.0),
                                                        (7 / QTY_SCALE, 80.0)]
    assert book.position_units("BTC") == 0


def test_book_dividend_credits_amount_per_unit_and_check_folds_it() -> None:
    book, fill = Book(1_000.0), Fills()
    bought = fill("BUY", 2.0, 100.0)
    book.apply_fill(bought)
    at = T0 + 10 * MINUTE
    event = book.apply_action(
        CorporateAction("BTC", "2024-01-02", ActionKind.DIVIDEND, None, 0.5, at), at)
    assert (event.units_before, event.units_after, event.cash_quote) == (2 * QTY_SCALE,
                                                                          2 * QTY_SCALE, 1.0)
    assert book.cash == 801.0
    book.check([bought])  # the fills and the dividend make the books
    book.cash += 1.0
    with pytest.raises(BookInvariantError, match="cash was changed outside a fill"):
        book.check([bought])


def test_book_check_split_position_not_made_by_fills_is_refused() -> None:
    book, fill = Book(1_000.0), Fills()
    bought = fill("BUY", 1.0, 100.0)
    book.apply_fill(bought)
    at = T0 + 10 * MINUTE
    book.apply_action(_split(2.0, at), at)
    with pytest.raises(BookInvariantError, match=re.escape(
            "SPLIT 1 of BTC found a position of 1.0 but the fills make it 0.0")):
        book.check([])


# --- shorts (portfolio.allow_short, adr/0026) ---------------------------------------------------
def test_short_book_sell_then_buy_is_a_short_round_trip_gaining_the_fall() -> None:
    book, fill = ShortBook(1_000.0), Fills()
    assert book.apply_fill(fill("SELL", 2.0, 100.0, 0.2)) == []
    assert book.units == {"BTC": -2 * QTY_SCALE}
    assert book.cash == 1_000.0 + 200.0 - 0.2
    book.mark("BTC", 90.0)
    assert book.equity() == 1_000.0 + 200.0 - 0.2 - 180.0
    (trip,) = book.apply_fill(fill("BUY", 2.0, 90.0, 0.18))
    assert trip == RoundTrip("BTC", "SHORT", 2.0, T0 + 2 * MINUTE, 100.0, T0 + 3 * MINUTE,
                             90.0, pytest.approx(0.38), pytest.approx(19.62),
                             pytest.approx(19.62 / 200 * 100), 1, 2)
    assert book.units == {} and book.realized_pnl == pytest.approx(19.62)


def test_short_book_fill_crossing_zero_closes_then_opens_the_rest() -> None:
    book, fill = ShortBook(10_000.0), Fills()
    fills = [fill("BUY", 1.0, 100.0, 0.3)]
    book.apply_fill(fills[-1])
    fills.append(fill("SELL", 3.0, 110.0, 0.6))
    (long_trip,) = book.apply_fill(fills[-1])  # closes the long 1, opens a short 2
    assert (long_trip.side, long_trip.qty, long_trip.fees) == ("LONG", 1.0,
                                                               pytest.approx(0.3 + 0.2))
    assert book.position_units("BTC") == -2 * QTY_SCALE
    fills.append(fill("BUY", 3.0, 105.0, 0.9))
    (short_trip,) = book.apply_fill(fills[-1])  # covers the short 2, opens a long 1
    # the short lot keeps its fill's size (3) for the fee: 0.6 x 2/3 + 0.9 x 2/3
    assert (short_trip.side, short_trip.qty, short_trip.entry_fill_seq) == ("SHORT", 2.0, 2)
    assert short_trip.fees == pytest.approx(0.4 + 0.6)
    assert short_trip.pnl == pytest.approx(2 * 5.0 - 1.0)
    assert book.position_units("BTC") == QTY_SCALE
    fills.append(fill("SELL", 1.0, 100.0))
    (last,) = book.apply_fill(fills[-1])
    assert (last.side, last.entry_fill_seq, last.entry_price) == ("LONG", 3, 105.0)
    book.check(fills)


def test_short_book_check_allows_a_negative_position_that_the_fills_make() -> None:
    book, fill = ShortBook(1_000.0), Fills()
    sold = fill("SELL", 1.5, 100.0)
    book.apply_fill(sold)
    book.check([sold])
    book.units["BTC"] = -QTY_SCALE
    with pytest.raises(BookInvariantError, match=r"the fills make it -1\.5"):
        book.check([sold])


def test_short_book_split_scales_the_short_and_buys_back_the_fraction_at_the_mark() -> None:
    book, fill = ShortBook(1_000.0), Fills()
    book.apply_fill(fill("SELL", 0, 90.0, units=3))
    book.mark("BTC", 120.0)
    at = T0 + 10 * MINUTE
    event = book.apply_action(_split(1.5, at), at)
    # -3 -> -4.5 units: -4 kept; the half unit is bought back at 120 / 1.5 = 80 per qty
    assert (event.units_before, event.units_after) == (-3, -4)
    assert event.cash_quote == -(1 / 2 / QTY_SCALE * 80.0)
    trips = book.apply_fill(fill("BUY", 0, 50.0, units=4))
    assert [(t.side, t.qty, t.entry_price) for t in trips] == [("SHORT", 4 / QTY_SCALE, 60.0)]


def test_short_book_dividend_is_paid_by_a_short() -> None:
    book, fill = ShortBook(1_000.0), Fills()
    book.apply_fill(fill("SELL", 2.0, 100.0))
    at = T0 + 10 * MINUTE
    event = book.apply_action(CorporateAction("BTC", "2024-01-02", ActionKind.DIVIDEND, None,
                                              0.5, at), at)
    assert event.cash_quote == -1.0
    assert book.cash == 1_000.0 + 200.0 - 1.0


def test_spot_book_check_refuses_a_negative_position() -> None:
    book, fill = Book(1_000.0), Fills()
    sold = fill("SELL", 1.0, 100.0)
    book.cash, book.units["BTC"] = 1_100.0, -QTY_SCALE  # as if the sell had been applied
    with pytest.raises(BookInvariantError, match=r"BTC position to -1\.0, below zero"):
        book.check([sold])


def test_book_reverse_split_floors_a_lot_to_nothing_drops_it_and_sells_the_rest() -> None:
    book, fill = Book(1_000.0), Fills()
    book.apply_fill(fill("BUY", 0, 100.0, units=QTY_SCALE))
    book.apply_fill(fill("SELL", 0, 100.0, units=QTY_SCALE - 5))  # 5 units left in lot 1
    book.apply_fill(fill("BUY", 0, 100.0, units=QTY_SCALE))
    at = T0 + 10 * MINUTE
    event = book.apply_action(_split(0.1, at), at)
    assert (event.units_before, event.units_after) == (QTY_SCALE + 5, QTY_SCALE // 10)
    trips = book.apply_fill(fill("SELL", 0, 1000.0, units=QTY_SCALE // 10))
    assert [t.qty for t in trips] == [0.1]
    assert book.position_units("BTC") == 0


def test_book_reverse_split_of_a_few_units_leaves_no_position() -> None:
    book, fill = Book(1_000.0), Fills()
    bought = fill("BUY", 0, 100.0, units=5)
    book.apply_fill(bought)
    at = T0 + 10 * MINUTE
    event = book.apply_action(_split(0.1, at), at)
    assert event.units_after == 0
    assert book.open_positions() == 0
    book.check([bought])
