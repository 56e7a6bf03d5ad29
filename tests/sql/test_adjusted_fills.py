"""acct.adjusted_fills: fills and split rows -> each fill in the units after later splits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from workbench.warehouse.connect import open_memory

T0 = 1_704_067_200_000
MIN = 60_000


def ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@pytest.fixture
def con() -> Any:
    con = open_memory()
    yield con
    con.close()


def load(con: Any, fills: list[tuple[Any, ...]], splits: list[tuple[Any, ...]]) -> None:
    """Fills (seq, side, qty, price, bar) and splits (bar, ratio[, units_before, units_after,
    cash]): what the books recorded applying them (0 when left out)."""
    con.executemany(
        "insert into fills (run_id, fill_seq, order_seq, client_order_id, symbol, side, qty, "
        "price, fee, ts, bar_ts) values ('r', ?, ?, ?, 'X', ?, ?, ?, 0.5, ?, ?)",
        [[seq, seq, f"r-{seq}", side, qty, px, ts(T0 + (bar + 1) * MIN), ts(T0 + bar * MIN)]
         for seq, side, qty, px, bar in fills])
    for i, (bar, ratio, *books) in enumerate(splits):
        before, after, cash = (*books, 0.0) if len(books) == 2 else (books or (0, 0, 0.0))
        con.execute(
            "insert into action_events (run_id, action_seq, symbol, ts, kind, ex_date, ratio, "
            "units_before, units_after, cash_quote) values ('r', ?, 'X', ?, 'SPLIT', "
            "'2024-01-01', ?, ?, ?, ?)", [i + 1, ts(T0 + bar * MIN), ratio, before, after, cash])
    con.execute("insert into action_events (run_id, action_seq, symbol, ts, kind, ex_date, "
                "amount, units_before, units_after, cash_quote) values ('r', 99, 'X', ?, "
                "'DIVIDEND', '2024-01-01', 1.0, 0, 0, 0.0)", [ts(T0 + MIN)])


def adjusted(con: Any) -> list[tuple[Any, ...]]:
    return con.execute("select fill_seq, side, units, price, fee, factor from "
                       "acct.adjusted_fills order by fill_seq").fetchall()


def test_adjusted_fills_scale_by_every_later_split_not_the_same_bars(con: Any) -> None:
    # splits 2:1 at bar 3 and 3:1 at bar 6; a fill on a split's bar comes after it
    load(con, [(1, "BUY", 1.0, 120.0, 0), (2, "SELL", 0.5, 126.0, 2), (3, "BUY", 0.25, 60.0, 3),
               (4, "SELL", 1.0, 21.0, 7)], [(3, 2.0), (6, 3.0)])
    assert adjusted(con) == [
        (1, "BUY", 600_000_000, 20.0, 0.5, 6.0),
        (2, "SELL", 300_000_000, 21.0, 0.5, 6.0),
        (3, "BUY", 75_000_000, 20.0, 0.5, 3.0),
        (4, "SELL", 100_000_000, 21.0, 0.5, 1.0)]


def test_adjusted_fills_without_splits_are_the_fills(con: Any) -> None:
    load(con, [(1, "BUY", 0.1, 42_000.5, 0), (2, "SELL", 0.1, 42_100.25, 4)], [])
    assert adjusted(con) == [(1, "BUY", 10_000_000, 42_000.5, 0.5, 1.0),
                             (2, "SELL", 10_000_000, 42_100.25, 0.5, 1.0)]


def test_adjusted_fills_fractional_ratio_floors_units(con: Any) -> None:
    load(con, [(1, "BUY", 0.00000003, 100.0, 0), (2, "BUY", 0.00000001, 100.0, 0)], [(1, 1.5)])
    assert [(seq, units) for seq, _, units, *_ in adjusted(con)] == [(1, 4), (2, 1)]


# --- cash in lieu: the views hold what the books kept of each lot (adr/0025) -----------------
def lines(con: Any) -> list[tuple[Any, ...]]:
    return con.execute("select fill_seq, units, line_units, line_scale from "
                       "acct.adjusted_fills order by fill_seq").fetchall()


def position(con: Any) -> list[tuple[Any, ...]]:
    """The open lots (acct.positions sums them, marked at the run's bars)."""
    return con.execute("select lot_fill_seq, side, open_units from acct.fifo_lots "
                       "where open_units > 0 order by lot_fill_seq").fetchall()


def matches(con: Any) -> list[tuple[Any, ...]]:
    return con.execute("select side, entry_fill_seq, exit_fill_seq, matched_units, "
                       "matched_line_units from acct.fifo_matches "
                       "order by exit_fill_seq, entry_fill_seq").fetchall()


def test_adjusted_fills_reverse_then_forward_split_of_unit_lots_leaves_the_books_flat(
        con: Any) -> None:
    # three lots of one unit; 1:3 floors each to nothing (all paid in lieu), 3:1 then has
    # nothing to scale. The float product 1/3 * 3 is 1.0: scaled by it the lots came back.
    load(con, [(1, "BUY", 1e-8, 90.0, 0), (2, "BUY", 1e-8, 90.0, 0), (3, "BUY", 1e-8, 90.0, 0)],
         [(1, 1 / 3, 3, 0, 2.7e-6), (2, 3.0, 0, 0)])
    assert lines(con) == [(1, 0, 0, 3), (2, 0, 0, 3), (3, 0, 0, 3)]
    assert position(con) == []
    assert con.execute("select count(*) from acct.fifo_lots").fetchall() == [(0,)]


def test_adjusted_fills_lot_partly_sold_before_a_fractional_split_keeps_the_books_remainder(
        con: Any) -> None:
    # buy 2, sell 1, 3:2: the lot's 1 left is 1.5, floored to 1 (0.5 in lieu); sell it after
    load(con, [(1, "BUY", 2e-8, 90.0, 0), (2, "SELL", 1e-8, 95.0, 0),
               (3, "SELL", 1e-8, 64.0, 2)], [(1, 1.5, 1, 1, 3.0e-7)])
    # the line counts halves: a unit before the split is 3 of them, one after it 2
    assert lines(con) == [(1, 3, 6 - 1, 2), (2, 1, 3, 2), (3, 1, 2, 2)]
    assert matches(con) == [("LONG", 1, 2, 2, 3), ("LONG", 1, 3, 1, 2)]
    assert position(con) == []
    trips = con.execute("select entry_fill_seq, exit_fill_seq, qty, entry_price, fees "
                        "from rpt.round_trips order by exit_fill_seq").fetchall()
    # before the split: 1.5 units at 60 (the fees shared as the books did, 1 of 2 and 1 of 1)
    assert trips == [(1, 2, 1.5e-8, 60.0, 0.25 + 0.5), (1, 3, 1e-8, 60.0, 0.5 * (1 / 3) + 0.5)]


def test_adjusted_fills_two_splits_scale_by_their_fractions_not_their_float_product(
        con: Any) -> None:
    # 1:3 then 10:1 of 9 units: the books hold 3, then 30. The float product of the ratios,
    # 10.0 * 0.3333333333333333, is 3.333333333333333: scaled by it, 9 units were 29
    load(con, [(1, "BUY", 9e-8, 90.0, 0)], [(1, 1 / 3, 9, 3), (2, 10.0, 3, 30)])
    assert lines(con) == [(1, 30, 90, 3)]  # a line unit is a third of a unit
    assert position(con) == [(1, "LONG", 30)]
    assert adjusted(con)[0][3] == 90.0 / (1 / 3) / 10.0  # split by split, as the books


def test_adjusted_fills_short_lot_partly_covered_before_a_fractional_split_is_floored(
        con: Any) -> None:
    # short 2, cover 1, 3:2: the short's 1 left is 1.5, floored to 1 (0.5 bought back)
    load(con, [(1, "SELL", 2e-8, 90.0, 0), (2, "BUY", 1e-8, 85.0, 0),
               (3, "BUY", 1e-8, 50.0, 2)], [(1, 1.5, -1, -1, -2.8e-7)])
    assert lines(con) == [(1, 3, 5, 2), (2, 1, 3, 2), (3, 1, 2, 2)]
    assert matches(con) == [("SHORT", 1, 2, 2, 3), ("SHORT", 1, 3, 1, 2)]
    assert position(con) == []


def test_adjusted_fills_weights_beyond_2_pow_53_stay_exact(con: Any) -> None:
    # three 999983:999979 splits of two unit lots (each stays 1, the fraction paid in lieu):
    # the line's scale is 999979**3, above 2**53; as a product of doubles it was rounded and
    # the lots' lengths on the line no longer matched a unit after the splits
    ratio = 999983 / 999979
    load(con, [(1, "BUY", 1e-8, 90.0, 0), (2, "BUY", 1e-8, 90.0, 0),
               (3, "SELL", 1e-8, 90.0, 4)], [(1, ratio, 2, 2), (2, ratio, 2, 2),
                                              (3, ratio, 2, 2)])
    unit = 999979**3
    assert lines(con) == [(1, 1, unit, unit), (2, 1, unit, unit), (3, 1, unit, unit)]
    assert matches(con) == [("LONG", 1, 3, 1, unit)]
    assert position(con) == [(2, "LONG", 1)]
