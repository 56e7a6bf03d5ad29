"""Row tests of the accounting and report views: hand-written inputs -> exact expected rows.

Each scenario is a run written straight into ``runs``, ``run_bars`` and ``fills``; every view is
read back for that run and compared, column by column, with numbers worked out by hand (or, for
the report statistics, from their definitions in plain Python). All scenarios share one
in-memory warehouse, so every test also checks that runs do not leak into each other.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from workbench.warehouse.connect import open_memory

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
DAY = 86_400_000
HOUR = 3_600_000
HALF_HOUR = HOUR // 2
UNITS = 100_000_000  # 1 qty = 1e8 units
REL = 1e-12


def ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True)
class Scenario:
    run_id: str
    initial_cash: float
    timeframe_ms: int
    bars: list[tuple[str, int, float]]  # symbol, bar open time, close
    fills: list[tuple[int, str, str, float, float, float, int]]  # seq, sym, side, qty, px, fee, bar
    order_of: dict[int, int] | None = None  # fill seq -> order seq (default: the same number)

    def load(self, con: Any, run_id: str | None = None) -> None:
        run_id = run_id or self.run_id
        con.execute(
            "insert into runs (run_id, mode, status, started_at, initial_cash, timeframe_ms) "
            "values (?, 'backtest', 'completed', ?, ?, ?)",
            [run_id, ts(T0), self.initial_cash, self.timeframe_ms],
        )
        con.executemany(
            "insert into run_bars (run_id, symbol, ts, close, filled) values (?, ?, ?, ?, false)",
            [[run_id, symbol, ts(t), close] for symbol, t, close in self.bars],
        )
        if self.fills:
            con.executemany(
                "insert into fills (run_id, fill_seq, order_seq, client_order_id, symbol, side, "
                "qty, price, fee, ts, bar_ts) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [[run_id, seq, order, f"{run_id}-{order}", symbol, side, qty, price, fee,
                  ts(bar + self.timeframe_ms), ts(bar)]
                 for seq, symbol, side, qty, price, fee, bar in self.fills
                 for order in [(self.order_of or {}).get(seq, seq)]],
            )


def day(i: int) -> int:
    return T0 + i * DAY


def hour(i: int, half: bool = False) -> int:
    return T0 + i * HOUR + (HALF_HOUR if half else 0)


# buy 3, buy 2, sell 4, sell 1 (flat on day 3), then buy 0.5 that stays open.
FIFO = Scenario(
    "fifo", 10_000.0, DAY,
    bars=[("BTC", day(i), c) for i, c in enumerate([100.0, 105.0, 120.0, 90.0, 95.0])],
    fills=[
        (1, "BTC", "BUY", 3.0, 100.0, 0.3, day(0)),
        (2, "BTC", "BUY", 2.0, 110.0, 0.22, day(1)),
        (3, "BTC", "SELL", 4.0, 120.0, 0.48, day(2)),
        (4, "BTC", "SELL", 1.0, 90.0, 0.09, day(3)),
        (5, "BTC", "BUY", 0.5, 92.0, 0.046, day(4)),
    ],
)
FIFO_EQUITY = [9_999.7, 10_004.48, 10_079.0, 10_048.91, 10_050.364]
FIFO_IN_MARKET = [True, True, True, False, True]

# Two symbols, BBB half an hour off AAA's grid: AAA at 00:00..03:00, BBB at 00:30 and 02:30.
MISALIGNED = Scenario(
    "misaligned", 1_000.0, HOUR,
    bars=[
        ("AAA", hour(0), 10.0), ("AAA", hour(1), 11.0), ("AAA", hour(2), 12.0),
        ("AAA", hour(3), 13.0), ("BBB", hour(0, True), 50.0), ("BBB", hour(2, True), 40.0),
    ],
    fills=[
        (1, "AAA", "BUY", 1.0, 10.0, 0.01, hour(0)),
        (2, "BBB", "BUY", 2.0, 50.0, 0.1, hour(0, True)),
        (3, "AAA", "BUY", 1.0, 11.0, 0.011, hour(1)),
        (4, "AAA", "SELL", 1.5, 12.0, 0.018, hour(2)),
        (5, "BBB", "SELL", 2.0, 40.0, 0.08, hour(2, True)),
    ],
)

# BBB bought on AAA's bar time 01:00, where BBB has no bar (its last close is 50, at 00:30).
CROSS = Scenario(
    "cross", 100.0, HOUR,
    bars=[("AAA", hour(0), 10.0), ("AAA", hour(1), 11.0), ("AAA", hour(2), 12.0),
          ("BBB", hour(0, True), 50.0), ("BBB", hour(2, True), 40.0)],
    fills=[(1, "BBB", "BUY", 1.0, 50.0, 0.0, hour(1))],
)

NO_FILLS = Scenario(
    "no-fills", 5_000.0, DAY,
    bars=[("BTC", day(i), c) for i, c in enumerate([100.0, 101.0, 99.0])],
    fills=[],
)

# Same symbol, bar times and fill numbers as FIFO, different prices: a leak would show.
TWIN = Scenario(
    "twin", 10_000.0, DAY,
    bars=[("BTC", day(i), c) for i, c in enumerate([200.0, 210.0, 190.0, 180.0, 170.0])],
    fills=[
        (1, "BTC", "BUY", 1.0, 200.0, 0.0, day(0)),
        (2, "BTC", "SELL", 1.0, 210.0, 0.0, day(1)),
        (3, "BTC", "BUY", 7.0, 190.0, 1.0, day(2)),
    ],
)

# One buy order filled in two parts, one sell order in two parts (a participation cap): three
# FIFO round trips (+1, -0.5, +4), one trade of +4.5.
PARTS = Scenario(
    "parts", 1_000.0, DAY,
    bars=[("BTC", day(i), c) for i, c in enumerate([100.0, 102.0, 101.0, 110.0])],
    fills=[
        (1, "BTC", "BUY", 1.0, 100.0, 0.0, day(0)),
        (2, "BTC", "BUY", 1.0, 102.0, 0.0, day(1)),
        (3, "BTC", "SELL", 1.5, 101.0, 0.0, day(2)),
        (4, "BTC", "SELL", 0.5, 110.0, 0.0, day(3)),
    ],
    order_of={1: 1, 2: 1, 3: 2, 4: 2},
)

# Shorts (adr/0026): sell 2 (short), buy 3 (covers 2, opens a long 1), sell 2 (closes the
# long, opens a short 1), sell 1 (short 2 at the end, marked at 85).
SHORTS = Scenario(
    "shorts", 1_000.0, DAY,
    bars=[("BTC", day(i), c) for i, c in enumerate([100.0, 90.0, 95.0, 80.0, 85.0])],
    fills=[
        (1, "BTC", "SELL", 2.0, 100.0, 0.2, day(0)),
        (2, "BTC", "BUY", 3.0, 90.0, 0.27, day(1)),
        (3, "BTC", "SELL", 2.0, 95.0, 0.19, day(2)),
        (4, "BTC", "SELL", 1.0, 80.0, 0.08, day(3)),
    ],
)

SCENARIOS = [FIFO, MISALIGNED, CROSS, NO_FILLS, TWIN, PARTS, SHORTS]

VIEWS = {
    "acct.fifo_matches": "entry_fill_seq, exit_fill_seq",
    "acct.fifo_lots": "lot_fill_seq",
    "acct.positions": "symbol",
    "acct.equity_curve": "ts",
    "rpt.round_trips": "exit_fill_seq, entry_fill_seq",
    "rpt.drawdown": "ts",
    "rpt.performance": "run_id",
}


@pytest.fixture(scope="module")
def con() -> Iterator[Any]:
    """One warehouse holding every scenario, each under its own run_id."""
    con = open_memory()
    for scenario in SCENARIOS:
        scenario.load(con)
    yield con
    con.close()


def fetch(con: Any, view: str, run_id: str) -> list[dict[str, Any]]:
    """The view's rows for one run (without run_id), timestamps as epoch ms."""
    rel = con.sql(f"select * exclude (run_id) from {view} where run_id = ? "
                  f"order by {VIEWS[view]}", params=[run_id])
    out = []
    for row in rel.fetchall():
        out.append({c: round(v.timestamp() * 1000) if isinstance(v, datetime) else v
                    for c, v in zip(rel.columns, row, strict=True)})
    return out


def assert_rows(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert [list(r) for r in got] == [list(r) for r in expected], "columns differ"
    assert len(got) == len(expected), f"{len(got)} rows, expected {len(expected)}"
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        for column, want in e.items():
            have = g[column]
            if isinstance(want, float) and isinstance(have, float | int):
                assert math.isclose(have, want, rel_tol=REL, abs_tol=1e-9), (
                    f"row {i} {column}: {have!r} != {want!r}")
            else:
                assert have == want, f"row {i} {column}: {have!r} != {want!r}"
                assert type(have) is type(want), f"row {i} {column}: {type(have)} {type(want)}"


def performance(initial: float, equity: list[float], in_market: list[bool], first_ts: int,
                last_ts: int, tf_ms: int, pnls: list[float], fees: float, fills: int,
                orders: int = 0, blocked: int = 0) -> dict[str, Any]:
    """rpt.performance from its definitions, in plain Python."""
    final = equity[-1]
    rets = [e / p - 1 for p, e in zip([initial, *equity[:-1]], equity, strict=True)]
    sd = statistics.stdev(rets) if len(rets) > 1 else None
    peak, worst = initial, 0.0
    for e in equity:
        peak = max(peak, e)
        worst = min(worst, (e / peak - 1) * 100)
    years = (last_ts - first_ts + tf_ms) / (365 * DAY)
    return {
        "bars": len(equity),
        "first_ts": first_ts,
        "last_ts": last_ts,
        "initial_cash": initial,
        "final_equity": final,
        "total_return_pct": (final / initial - 1) * 100,
        "cagr_pct": ((final / initial) ** (1 / years) - 1) * 100,
        "max_drawdown_pct": worst,
        "sharpe": (statistics.mean(rets) / sd * math.sqrt(365 * DAY / tf_ms)
                   if sd else None),
        "trades": len(pnls),
        "win_rate_pct": (sum(p > 0 for p in pnls) / len(pnls) * 100) if pnls else None,
        "fees_quote": fees,
        "fills": fills,
        "exposure_pct": sum(in_market) / len(in_market) * 100,
        "orders": orders,
        "blocked_orders": blocked,
        "block_rate_pct": blocked / orders * 100 if orders else None,
    }


# --- acct.fifo_matches ------------------------------------------------------------------------
def test_fifo_matches_partial_fills_overlap_oldest_lot_first(con: Any) -> None:
    def match(entry: int, exit_: int, matched: float) -> dict[str, Any]:
        _, _, _, eq, ep, ef, eb = FIFO.fills[entry - 1]
        _, _, _, xq, xp, xf, xb = FIFO.fills[exit_ - 1]
        return {
            "symbol": "BTC", "entry_fill_seq": entry, "exit_fill_seq": exit_,
            "entry_ts": eb + DAY, "entry_price": ep, "entry_fee": ef, "entry_units": eq * UNITS,
            "exit_ts": xb + DAY, "exit_price": xp, "exit_fee": xf, "exit_units": xq * UNITS,
            "matched_units": matched * UNITS, "side": "LONG",
            # the matching line (adr/0025): without a split a line unit is a unit
            "matched_line_units": matched * UNITS, "entry_line_units": eq * UNITS,
            "exit_line_units": xq * UNITS, "line_scale": 1,
        }

    assert_rows(fetch(con, "acct.fifo_matches", "fifo"),
                [match(1, 3, 3), match(2, 3, 1), match(2, 4, 1)])


def test_fifo_matches_units_are_exact_integers(con: Any) -> None:
    rows = fetch(con, "acct.fifo_matches", "misaligned")
    assert [(r["entry_fill_seq"], r["exit_fill_seq"], r["matched_units"]) for r in rows] == [
        (1, 4, 100_000_000), (2, 5, 200_000_000), (3, 4, 50_000_000)]
    assert all(type(r["matched_units"]) is int for r in rows)


def test_fifo_matches_run_without_fills_is_empty(con: Any) -> None:
    assert fetch(con, "acct.fifo_matches", "no-fills") == []


# --- acct.fifo_lots ---------------------------------------------------------------------------
def test_fifo_lots_every_buy_is_a_lot_with_closed_and_open_units(con: Any) -> None:
    assert_rows(fetch(con, "acct.fifo_lots", "fifo"), [
        {"symbol": "BTC", "lot_fill_seq": 1, "entry_ts": day(1), "entry_price": 100.0,
         "entry_fee": 0.3, "lot_units": 300_000_000, "closed_units": 300_000_000,
         "open_units": 0, "qty": 3.0, "open_qty": 0.0, "side": "LONG",
         "fill_units": 300_000_000},
        {"symbol": "BTC", "lot_fill_seq": 2, "entry_ts": day(2), "entry_price": 110.0,
         "entry_fee": 0.22, "lot_units": 200_000_000, "closed_units": 200_000_000,
         "open_units": 0, "qty": 2.0, "open_qty": 0.0, "side": "LONG",
         "fill_units": 200_000_000},
        {"symbol": "BTC", "lot_fill_seq": 5, "entry_ts": day(5), "entry_price": 92.0,
         "entry_fee": 0.046, "lot_units": 50_000_000, "closed_units": 0,
         "open_units": 50_000_000, "qty": 0.5, "open_qty": 0.5, "side": "LONG",
         "fill_units": 50_000_000},
    ])


def test_fifo_lots_partly_closed_lot_keeps_its_remainder_open(con: Any) -> None:
    rows = fetch(con, "acct.fifo_lots", "misaligned")
    assert [(r["symbol"], r["lot_fill_seq"], r["closed_units"], r["open_units"], r["open_qty"])
            for r in rows] == [
        ("AAA", 1, 100_000_000, 0, 0.0),
        ("BBB", 2, 200_000_000, 0, 0.0),
        ("AAA", 3, 50_000_000, 50_000_000, 0.5),
    ]


def test_fifo_matches_shorts_pair_the_earlier_fill_as_entry_across_zero(con: Any) -> None:
    rows = fetch(con, "acct.fifo_matches", "shorts")
    assert [(r["side"], r["entry_fill_seq"], r["exit_fill_seq"], r["entry_price"],
             r["exit_price"], r["entry_units"], r["exit_units"], r["matched_units"])
            for r in rows] == [
        ("SHORT", 1, 2, 100.0, 90.0, 200_000_000, 300_000_000, 200_000_000),
        ("LONG", 2, 3, 90.0, 95.0, 300_000_000, 200_000_000, 100_000_000),
    ]


def test_fifo_lots_fill_crossing_zero_is_a_lot_of_its_rest_on_the_other_side(
        con: Any) -> None:
    rows = fetch(con, "acct.fifo_lots", "shorts")
    assert [(r["lot_fill_seq"], r["side"], r["fill_units"], r["lot_units"], r["closed_units"],
             r["open_units"]) for r in rows] == [
        (1, "SHORT", 200_000_000, 200_000_000, 200_000_000, 0),
        (2, "LONG", 300_000_000, 100_000_000, 100_000_000, 0),
        (3, "SHORT", 200_000_000, 100_000_000, 0, 100_000_000),
        (4, "SHORT", 100_000_000, 100_000_000, 0, 100_000_000),
    ]


# --- acct.positions ---------------------------------------------------------------------------
def test_positions_short_has_negative_qty_cost_and_value_and_gains_as_price_falls(
        con: Any) -> None:
    assert_rows(fetch(con, "acct.positions", "shorts"), [
        {"symbol": "BTC", "qty": -2.0, "avg_entry_price": 87.5, "cost_quote": -175.0,
         "last_close": 85.0, "last_ts": day(4), "market_value_quote": -170.0,
         "unrealized_pnl_quote": 5.0},
    ])


def test_equity_curve_short_sale_adds_its_proceeds_and_marks_negative_units(
        con: Any) -> None:
    cash = [1_199.8, 929.53, 1_119.34, 1_199.26, 1_199.26]
    value = [-200.0, 90.0, -95.0, -160.0, -170.0]
    assert_rows(fetch(con, "acct.equity_curve", "shorts"), [
        {"ts": day(i), "cash": c, "position_value": v, "equity": c + v, "in_market": True}
        for i, (c, v) in enumerate(zip(cash, value, strict=True))
    ])


def test_round_trips_short_gains_entry_less_exit_with_pro_rata_fees(con: Any) -> None:
    rows = fetch(con, "rpt.round_trips", "shorts")
    assert [(r["side"], r["qty"], r["entry_price"], r["exit_price"]) for r in rows] == [
        ("SHORT", 2.0, 100.0, 90.0), ("LONG", 1.0, 90.0, 95.0)]
    for row, (fees, pnl, ret) in zip(rows, [(0.38, 19.62, 9.81), (0.185, 4.815, 5.35)],
                                     strict=True):
        assert math.isclose(row["fees"], fees, rel_tol=REL)
        assert math.isclose(row["pnl"], pnl, rel_tol=REL)
        assert math.isclose(row["return_pct"], ret, rel_tol=REL)


def test_positions_open_lot_is_marked_at_the_runs_last_close(con: Any) -> None:
    assert_rows(fetch(con, "acct.positions", "fifo"), [
        {"symbol": "BTC", "qty": 0.5, "avg_entry_price": 92.0, "cost_quote": 46.0,
         "last_close": 95.0, "last_ts": day(4), "market_value_quote": 47.5,
         "unrealized_pnl_quote": 1.5},
    ])


def test_positions_partly_closed_lot_costs_its_remainder_and_flat_symbol_is_absent(
        con: Any) -> None:
    assert_rows(fetch(con, "acct.positions", "misaligned"), [
        {"symbol": "AAA", "qty": 0.5, "avg_entry_price": 11.0, "cost_quote": 5.5,
         "last_close": 13.0, "last_ts": hour(3), "market_value_quote": 6.5,
         "unrealized_pnl_quote": 1.0},
    ])


def test_positions_run_without_fills_is_empty(con: Any) -> None:
    assert fetch(con, "acct.positions", "no-fills") == []


# --- acct.equity_curve ------------------------------------------------------------------------
def test_equity_curve_fills_move_cash_on_their_bar_and_positions_mark_at_close(
        con: Any) -> None:
    cash = [9_699.7, 9_479.48, 9_959.0, 10_048.91, 10_002.864]
    value = [300.0, 525.0, 120.0, 0.0, 47.5]
    assert_rows(fetch(con, "acct.equity_curve", "fifo"), [
        {"ts": day(i), "cash": c, "position_value": v, "equity": e, "in_market": m}
        for i, (c, v, e, m) in enumerate(zip(cash, value, FIFO_EQUITY, FIFO_IN_MARKET,
                                             strict=True))
    ])


def test_equity_curve_misaligned_symbols_mark_at_last_close_at_or_before_bar_time(
        con: Any) -> None:
    # AAA closes 10, 11, 12, 13 on the hour; BBB closes 50 at 00:30 and 40 at 02:30.
    expected = [
        (hour(0), 989.99, 1 * 10.0),                       # BBB has no bar yet
        (hour(0, True), 889.89, 1 * 10.0 + 2 * 50.0),      # AAA still at its 00:00 close
        (hour(1), 878.879, 2 * 11.0 + 2 * 50.0),           # BBB still at its 00:30 close
        (hour(2), 896.861, 0.5 * 12.0 + 2 * 50.0),
        (hour(2, True), 976.781, 0.5 * 12.0),              # BBB sold, AAA at its 02:00 close
        (hour(3), 976.781, 0.5 * 13.0),
    ]
    assert_rows(fetch(con, "acct.equity_curve", "misaligned"), [
        {"ts": t, "cash": c, "position_value": v, "equity": c + v, "in_market": True}
        for t, c, v in expected
    ])


def test_equity_curve_fill_on_a_time_without_its_symbols_bar_counts_from_that_time(
        con: Any) -> None:
    assert_rows(fetch(con, "acct.equity_curve", "cross"), [
        {"ts": hour(0), "cash": 100.0, "position_value": 0.0, "equity": 100.0,
         "in_market": False},
        {"ts": hour(0, True), "cash": 100.0, "position_value": 0.0, "equity": 100.0,
         "in_market": False},
        {"ts": hour(1), "cash": 50.0, "position_value": 50.0, "equity": 100.0,
         "in_market": True},
        {"ts": hour(2), "cash": 50.0, "position_value": 50.0, "equity": 100.0,
         "in_market": True},
        {"ts": hour(2, True), "cash": 50.0, "position_value": 40.0, "equity": 90.0,
         "in_market": True},
    ])


def test_equity_curve_run_without_fills_is_flat_at_initial_cash(con: Any) -> None:
    assert_rows(fetch(con, "acct.equity_curve", "no-fills"), [
        {"ts": day(i), "cash": 5_000.0, "position_value": 0.0, "equity": 5_000.0,
         "in_market": False}
        for i in range(3)
    ])


# --- rpt.round_trips --------------------------------------------------------------------------
def test_round_trips_fees_are_pro_rata_to_the_matched_quantity(con: Any) -> None:
    def trip(entry: int, exit_: int, qty: float, entry_px: float, exit_px: float,
             fees: float) -> dict[str, Any]:
        pnl = (exit_px - entry_px) * qty - fees
        return {
            "symbol": "BTC", "side": "LONG", "qty": qty,
            "entry_ts": FIFO.fills[entry - 1][6] + DAY, "entry_price": entry_px,
            "exit_ts": FIFO.fills[exit_ - 1][6] + DAY, "exit_price": exit_px,
            "fees": fees, "pnl": pnl, "return_pct": pnl / (entry_px * qty) * 100,
            "entry_fill_seq": entry, "exit_fill_seq": exit_,
        }

    rows = fetch(con, "rpt.round_trips", "fifo")
    assert_rows(rows, [
        trip(1, 3, 3.0, 100.0, 120.0, 0.3 + 0.48 * 3 / 4),       # all of lot 1, 3/4 of sell 3
        trip(2, 3, 1.0, 110.0, 120.0, 0.22 / 2 + 0.48 / 4),       # half of lot 2, 1/4 of sell 3
        trip(2, 4, 1.0, 110.0, 90.0, 0.22 / 2 + 0.09),            # half of lot 2, all of sell 4
    ])
    assert [r["pnl"] for r in rows] == pytest.approx([59.34, 9.77, -20.2], rel=REL)


def test_round_trips_two_symbols_match_within_their_own_symbol(con: Any) -> None:
    rows = fetch(con, "rpt.round_trips", "misaligned")
    assert [(r["symbol"], r["entry_fill_seq"], r["exit_fill_seq"], r["qty"], r["entry_ts"],
             r["exit_ts"]) for r in rows] == [
        ("AAA", 1, 4, 1.0, hour(1), hour(3)),
        ("AAA", 3, 4, 0.5, hour(2), hour(3)),
        ("BBB", 2, 5, 2.0, hour(1, True), hour(3, True)),
    ]
    assert [(r["fees"], r["pnl"], r["return_pct"]) for r in rows] == [
        pytest.approx((0.022, 1.978, 19.78), rel=REL),
        pytest.approx((0.0115, 0.4885, 0.4885 / 5.5 * 100), rel=REL),
        pytest.approx((0.18, -20.18, -20.18), rel=REL),
    ]


def test_round_trips_run_without_fills_is_empty(con: Any) -> None:
    assert fetch(con, "rpt.round_trips", "no-fills") == []


# --- rpt.drawdown -----------------------------------------------------------------------------
def test_drawdown_peak_starts_at_initial_cash_and_runs_up(con: Any) -> None:
    peaks = [10_000.0, 10_004.48, 10_079.0, 10_079.0, 10_079.0]
    assert_rows(fetch(con, "rpt.drawdown", "fifo"), [
        {"ts": day(i), "equity": e, "peak_equity": p, "drawdown_pct": (e / p - 1) * 100}
        for i, (e, p) in enumerate(zip(FIFO_EQUITY, peaks, strict=True))
    ])


def test_drawdown_run_without_fills_is_zero_at_initial_cash(con: Any) -> None:
    assert_rows(fetch(con, "rpt.drawdown", "no-fills"), [
        {"ts": day(i), "equity": 5_000.0, "peak_equity": 5_000.0, "drawdown_pct": 0.0}
        for i in range(3)
    ])


# --- rpt.performance --------------------------------------------------------------------------
def test_performance_fifo_run_matches_its_definitions(con: Any) -> None:
    expected = performance(10_000.0, FIFO_EQUITY, FIFO_IN_MARKET, day(0), day(4), DAY,
                           [59.34, 9.77, -20.2], 0.3 + 0.22 + 0.48 + 0.09 + 0.046, 5)
    assert expected["exposure_pct"] == 80.0
    assert expected["win_rate_pct"] == pytest.approx(200 / 3)
    assert_rows(fetch(con, "rpt.performance", "fifo"), [expected])


def test_performance_hourly_run_annualises_with_its_timeframe(con: Any) -> None:
    equity = [999.99, 999.89, 1_000.879, 1_002.861, 982.781, 983.281]
    expected = performance(1_000.0, equity, [True] * 6, hour(0), hour(3), HOUR,
                           [1.978, 0.4885, -20.18], 0.01 + 0.1 + 0.011 + 0.018 + 0.08, 5)
    assert_rows(fetch(con, "rpt.performance", "misaligned"), [expected])


def test_performance_run_without_fills_has_no_trades_win_rate_or_sharpe(con: Any) -> None:
    assert_rows(fetch(con, "rpt.performance", "no-fills"), [{
        "bars": 3, "first_ts": day(0), "last_ts": day(2), "initial_cash": 5_000.0,
        "final_equity": 5_000.0, "total_return_pct": 0.0, "cagr_pct": 0.0,
        "max_drawdown_pct": 0.0, "sharpe": None, "trades": 0, "win_rate_pct": None,
        "fees_quote": 0.0, "fills": 0, "exposure_pct": 0.0,
        "orders": 0, "blocked_orders": 0, "block_rate_pct": None,
    }])


def test_performance_order_filled_in_parts_is_one_trade_of_its_summed_pnl(con: Any) -> None:
    trips = fetch(con, "rpt.round_trips", "parts")
    assert [(r["entry_fill_seq"], r["exit_fill_seq"], r["pnl"]) for r in trips] == [
        (1, 3, 1.0), (2, 3, -0.5), (2, 4, 4.0)]
    perf = fetch(con, "rpt.performance", "parts")[0]
    assert (perf["trades"], perf["win_rate_pct"], perf["fills"]) == (1, 100.0, 4)


# --- isolation --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def solo() -> Iterator[Any]:
    """A warehouse holding only the FIFO scenario."""
    con = open_memory()
    FIFO.load(con)
    yield con
    con.close()


@pytest.mark.parametrize("view", list(VIEWS))
def test_views_run_sharing_tables_with_other_runs_gives_the_same_rows_as_alone(
        con: Any, solo: Any, view: str) -> None:
    shared = fetch(con, view, "fifo")
    assert shared, f"{view} has no rows for the FIFO run"
    assert shared == fetch(solo, view, "fifo")


def test_views_twin_run_with_same_fill_numbers_keeps_its_own_books(con: Any) -> None:
    trips = fetch(con, "rpt.round_trips", "twin")
    assert [(r["entry_fill_seq"], r["exit_fill_seq"], r["qty"], r["pnl"]) for r in trips] == [
        (1, 2, 1.0, 10.0)]
    positions = fetch(con, "acct.positions", "twin")
    assert [(p["qty"], p["avg_entry_price"], p["last_close"]) for p in positions] == [
        (7.0, 190.0, 170.0)]
    perf = fetch(con, "rpt.performance", "twin")[0]
    assert (perf["trades"], perf["fills"], perf["fees_quote"]) == (1, 3, 1.0)
    assert perf["final_equity"] == pytest.approx(10_000.0 + 10.0 - 7 * 190.0 - 1.0 + 7 * 170.0)
