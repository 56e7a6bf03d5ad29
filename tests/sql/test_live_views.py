"""Row tests of rpt.live_vs_backtest: hand-written ``runs`` and ``orders`` rows -> exact rows.

A live (shadow, paper or live) run ``L`` and its backtest twin ``L.backtest`` each propose
orders; the view pairs them by symbol, bar and rank within the bar. Scenarios, one per bar:

* bar 0: both propose the same order (agree);
* bar 1: only the live run proposes (NULL twin side, agree false);
* bar 2: only the twin proposes (NULL live side, agree false);
* bar 3: two orders on each side, paired by their rank in the bar (order_seq order);
* bar 4: the live run's operator flatten (tag 'flatten') is left out;
* bar 5: the same side on both, another qty; bar 6: another limit price (agree false).

Other runs in the same warehouse (a plain backtest, a ``.backtest`` run whose base is not a live
run, a second live run and its twin) never leak into run ``paper-1``'s rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from workbench.warehouse.connect import open_memory

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MIN = 60_000
LIVE = "paper-1"
TWIN = f"{LIVE}.backtest"

# (seq, bar, side, type, qty, limit_price, tag)
Order = tuple[int, int, str, str, float, float | None, str | None]

LIVE_ORDERS: list[Order] = [
    (1, 0, "BUY", "MARKET", 0.5, None, None),
    (2, 1, "SELL", "MARKET", 0.5, None, None),
    (3, 3, "BUY", "LIMIT", 0.1, 99.0, None),
    (4, 3, "SELL", "LIMIT", 0.2, 101.0, None),
    (5, 4, "SELL", "MARKET", 0.5, None, "flatten"),
    (6, 5, "BUY", "MARKET", 0.3, None, None),
    (7, 6, "BUY", "LIMIT", 0.3, 98.0, None),
]
TWIN_ORDERS: list[Order] = [
    (1, 0, "BUY", "MARKET", 0.5, None, None),
    (2, 2, "SELL", "MARKET", 0.5, None, None),
    (3, 3, "BUY", "LIMIT", 0.1, 99.0, None),
    (4, 3, "SELL", "LIMIT", 0.2, 101.5, None),
    (5, 5, "BUY", "MARKET", 0.4, None, None),
    (6, 6, "BUY", "LIMIT", 0.3, 98.5, None),
]
COLUMNS = ["run_id", "symbol", "bar_ts", "rank_in_bar", "live_order_seq", "live_side",
           "live_type", "live_qty", "live_limit_price", "live_status", "backtest_order_seq",
           "backtest_side", "backtest_type", "backtest_qty", "backtest_limit_price",
           "backtest_status", "agree"]


def ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def load(con: Any, run_id: str, mode: str, orders: list[Order], symbol: str = "X") -> None:
    con.execute(
        "insert into runs (run_id, mode, status, started_at, initial_cash, timeframe_ms) "
        "values (?, ?, 'completed', ?, 1000.0, ?)", [run_id, mode, ts(T0), MIN])
    if orders:
        con.executemany(
            "insert into orders (run_id, order_seq, client_order_id, symbol, side, type, qty, "
            "limit_price, status, ts, bar_ts, updated_ts, filled_qty, reduce_only, tag) values "
            "(?, ?, ?, ?, ?, ?, ?, ?, 'FILLED', ?, ?, ?, 0.0, false, ?)",
            [[run_id, seq, f"{run_id}-{seq}", symbol, side, kind, qty, limit,
              ts(T0 + (bar + 1) * MIN), ts(T0 + bar * MIN), ts(T0 + (bar + 1) * MIN), tag]
             for seq, bar, side, kind, qty, limit, tag in orders])


@pytest.fixture(scope="module")
def con() -> Iterator[Any]:
    con = open_memory()
    load(con, LIVE, "paper", LIVE_ORDERS)
    load(con, TWIN, "backtest", TWIN_ORDERS)
    # a plain backtest and a backtest named like a twin of a run that is not live
    load(con, "bt", "backtest", TWIN_ORDERS)
    load(con, "bt.backtest", "backtest", LIVE_ORDERS)
    # a second live run (shadow) on another symbol, whose twin agrees with it on one order
    load(con, "shadow-1", "shadow", [(1, 0, "BUY", "MARKET", 1.0, None, None)], symbol="Y")
    load(con, "shadow-1.backtest", "backtest", [(1, 0, "BUY", "MARKET", 1.0, None, None)],
         symbol="Y")
    yield con
    con.close()


def rows(con: Any, run_id: str = LIVE) -> list[dict[str, Any]]:
    rel = con.sql("select * exclude (bar_ts), epoch_ms(bar_ts) as bar_ms "
                  "from rpt.live_vs_backtest where run_id = ? "
                  "order by bar_ts, symbol, rank_in_bar", params=[run_id])
    return [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]


def at(con: Any, bar: int) -> list[dict[str, Any]]:
    return [r for r in rows(con) if r["bar_ms"] == T0 + bar * MIN]


def pair(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["rank_in_bar"], r["live_order_seq"], r["backtest_order_seq"], r["agree"])


def test_live_vs_backtest_view_columns_fixed_names_and_order() -> None:
    c = open_memory()
    try:
        cols = [r[0] for r in c.execute("describe rpt.live_vs_backtest").fetchall()]
    finally:
        c.close()
    assert cols == COLUMNS


def test_live_vs_backtest_same_order_both_sides_agree(con: Any) -> None:
    (r,) = at(con, 0)
    assert r == {
        "run_id": LIVE, "symbol": "X", "rank_in_bar": 1, "bar_ms": T0,
        "live_order_seq": 1, "live_side": "BUY", "live_type": "MARKET", "live_qty": 0.5,
        "live_limit_price": None, "live_status": "FILLED",
        "backtest_order_seq": 1, "backtest_side": "BUY", "backtest_type": "MARKET",
        "backtest_qty": 0.5, "backtest_limit_price": None, "backtest_status": "FILLED",
        "agree": True,
    }


def test_live_vs_backtest_only_live_ordered_null_twin_disagree(con: Any) -> None:
    (r,) = at(con, 1)
    assert (r["live_order_seq"], r["live_side"]) == (2, "SELL")
    assert [r[k] for k in COLUMNS if k.startswith("backtest_")] == [None] * 6
    assert r["agree"] is False


def test_live_vs_backtest_only_twin_ordered_null_live_disagree(con: Any) -> None:
    (r,) = at(con, 2)
    assert (r["run_id"], r["symbol"]) == (LIVE, "X")  # named after the live run
    assert (r["backtest_order_seq"], r["backtest_side"]) == (2, "SELL")
    assert [r[k] for k in COLUMNS if k.startswith("live_")] == [None] * 6
    assert r["agree"] is False


def test_live_vs_backtest_two_orders_in_a_bar_paired_by_rank(con: Any) -> None:
    first, second = at(con, 3)
    assert pair(first) == (1, 3, 3, True)
    assert pair(second) == (2, 4, 4, False)  # limit 101.0 against 101.5
    assert (second["live_side"], second["backtest_side"]) == ("SELL", "SELL")


def test_live_vs_backtest_flatten_orders_left_out(con: Any) -> None:
    assert at(con, 4) == []
    assert 5 not in [r["live_order_seq"] for r in rows(con)]


@pytest.mark.parametrize(("bar", "live", "twin"), [
    (5, ("MARKET", 0.3, None), ("MARKET", 0.4, None)),    # qty differs
    (6, ("LIMIT", 0.3, 98.0), ("LIMIT", 0.3, 98.5)),      # limit price differs
])
def test_live_vs_backtest_qty_or_limit_difference_disagree(
        con: Any, bar: int, live: tuple[Any, ...], twin: tuple[Any, ...]) -> None:
    (r,) = at(con, bar)
    assert (r["live_type"], r["live_qty"], r["live_limit_price"]) == live
    assert (r["backtest_type"], r["backtest_qty"], r["backtest_limit_price"]) == twin
    assert (r["live_side"], r["backtest_side"], r["agree"]) == ("BUY", "BUY", False)


def test_live_vs_backtest_whole_run_rows_in_order(con: Any) -> None:
    assert [((r["bar_ms"] - T0) // MIN, *pair(r)) for r in rows(con)] == [
        (0, 1, 1, 1, True), (1, 1, 2, None, False), (2, 1, None, 2, False),
        (3, 1, 3, 3, True), (3, 2, 4, 4, False), (5, 1, 6, 5, False), (6, 1, 7, 6, False),
    ]


def test_live_vs_backtest_only_live_runs_no_leak_between_runs(con: Any) -> None:
    found = con.execute("select run_id, symbol, count(*), count(*) filter (where agree) "
                        "from rpt.live_vs_backtest group by all order by all").fetchall()
    assert found == [(LIVE, "X", 7, 2), ("shadow-1", "Y", 1, 1)]


@pytest.mark.parametrize("run_id", ["bt", "bt.backtest", TWIN, "bt.", "nope"])
def test_live_vs_backtest_backtest_or_unknown_run_no_rows(con: Any, run_id: str) -> None:
    assert rows(con, run_id) == []
