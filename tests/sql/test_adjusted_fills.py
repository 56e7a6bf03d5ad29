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


def load(con: Any, fills: list[tuple[Any, ...]], splits: list[tuple[int, float]]) -> None:
    con.executemany(
        "insert into fills (run_id, fill_seq, order_seq, client_order_id, symbol, side, qty, "
        "price, fee, ts, bar_ts) values ('r', ?, ?, ?, 'X', ?, ?, ?, 0.5, ?, ?)",
        [[seq, seq, f"r-{seq}", side, qty, px, ts(T0 + (bar + 1) * MIN), ts(T0 + bar * MIN)]
         for seq, side, qty, px, bar in fills])
    for i, (bar, ratio) in enumerate(splits):
        con.execute(
            "insert into action_events (run_id, action_seq, symbol, ts, kind, ex_date, ratio, "
            "units_before, units_after, cash_quote) values ('r', ?, 'X', ?, 'SPLIT', "
            "'2024-01-01', ?, 0, 0, 0.0)", [i + 1, ts(T0 + bar * MIN), ratio])
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
