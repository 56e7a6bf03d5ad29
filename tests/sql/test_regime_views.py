"""rpt.bar_regimes and rpt.performance_by_regime: hand-written runs -> expected rows.

The base path: 60 closes at 100 (the warm-up of both labels), then 106, 100, 94, 100.2, 100.4.
The slow SMA (60 closes) moves by (close - close 60 bars back) / 60 each bar, so its slope is
+10 bps (up), 0 (flat), -9.99 (down), +0.33 (flat: within 0.5) and +0.67 bps (up). The rolling
volatility grows each bar (a non-zero return replaces a zero one), so of the five labelled
bars the first two are at or below the 1/3 cut (low), the third is between the cuts (normal)
and the last two above the 2/3 cut (high).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from workbench.warehouse.connect import open_memory

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MIN = 60_000
CLOSES = [100.0] * 60 + [106.0, 100.0, 94.0, 100.2, 100.4]
WARMUP = 60


def ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@pytest.fixture
def con() -> Iterator[Any]:
    con = open_memory()
    yield con
    con.close()


def load(con: Any, run_id: str, closes: dict[str, list[float]],
         fills: Sequence[tuple[int, int, str, str, float, float, int]] = ()) -> None:
    """A 1-minute run of ``closes`` per symbol with ``fills`` as (fill seq, order seq, symbol,
    side, qty, price, bar index); no fees."""
    con.execute(
        "insert into runs (run_id, mode, status, started_at, initial_cash, timeframe_ms, "
        "symbols) values (?, 'backtest', 'completed', ?, 1000.0, ?, ?)",
        [run_id, ts(T0), MIN, list(closes)])
    con.executemany(
        "insert into run_bars (run_id, symbol, ts, close, filled) values (?, ?, ?, ?, false)",
        [[run_id, symbol, ts(T0 + i * MIN), c] for symbol, cs in closes.items()
         for i, c in enumerate(cs)])
    if fills:
        con.executemany(
            "insert into fills (run_id, fill_seq, order_seq, client_order_id, symbol, side, "
            "qty, price, fee, ts, bar_ts) values (?, ?, ?, ?, ?, ?, ?, ?, 0.0, ?, ?)",
            [[run_id, seq, order, f"{run_id}-{order}", symbol, side, qty, px,
              ts(T0 + (bar + 1) * MIN), ts(T0 + bar * MIN)]
             for seq, order, symbol, side, qty, px, bar in fills])


def labels(con: Any, run_id: str, symbol: str = "X") -> list[tuple[str, str]]:
    return con.execute("select trend, volatility from rpt.bar_regimes where run_id = ? "
                       "and symbol = ? order by ts", [run_id, symbol]).fetchall()


def by_regime(con: Any, run_id: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    rel = con.sql("select * from rpt.performance_by_regime where run_id = ?", params=[run_id])
    rows = [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]
    assert {r.pop("run_id") for r in rows} <= {run_id}
    return {(r.pop("symbol"), r.pop("trend"), r.pop("volatility")): r for r in rows}


def test_bar_regimes_slope_and_vol_terciles_label_each_bar(con: Any) -> None:
    load(con, "a", {"X": CLOSES})

    assert labels(con, "a") == [("warmup", "warmup")] * WARMUP + [
        ("up", "low"), ("flat", "low"), ("down", "normal"), ("flat", "high"), ("up", "high")]
    sma, slope, vol = con.execute(
        "select sma, sma_slope_bps, realized_vol from rpt.bar_regimes where run_id = 'a' "
        "and ts = ?", [ts(T0 + 60 * MIN)]).fetchall()[0]
    assert sma == pytest.approx(100.1, rel=1e-12)
    assert slope == pytest.approx(10.0, rel=1e-9)  # 0.1 / 100 in bps
    assert vol == pytest.approx(statistics.stdev([0.0] * 59 + [math.log(1.06)]), rel=1e-9)
    slopes = [r[0] for r in con.execute(
        "select sma_slope_bps from rpt.bar_regimes where run_id = 'a' and ts > ? order by ts",
        [ts(T0 + 60 * MIN)]).fetchall()]
    assert slopes == pytest.approx([0.0, -0.1 / 100.1 * 1e4, 0.2 / 60 / 100.0 * 1e4,
                                    0.4 / 60 / (100.0 + 0.2 / 60) * 1e4], rel=1e-9)


def test_bar_regimes_constant_closes_are_flat_and_low_after_warmup(con: Any) -> None:
    load(con, "still", {"X": [50.0] * 70})

    assert labels(con, "still") == [("warmup", "warmup")] * WARMUP + [("flat", "low")] * 10



def test_bar_regimes_split_in_the_run_is_no_price_move(con: Any) -> None:
    # a 2:1 split on bar 60 halves the stored close; the run applied it (action_events), so
    # the closes are read in one unit: no -69 % return, no down trend, no volatility
    load(con, "s", {"X": [100.0] * 60 + [50.0] * 5})
    con.execute(
        "insert into action_events (run_id, action_seq, symbol, ts, kind, ex_date, ratio, "
        "amount, units_before, units_after, cash_quote) values ('s', 1, 'X', ?, 'SPLIT', "
        "?, 2.0, null, 0, 0, 0.0)", [ts(T0 + 60 * MIN), ts(T0 + 60 * MIN).date()])

    assert labels(con, "s") == [("warmup", "warmup")] * WARMUP + [("flat", "low")] * 5
    assert con.execute("select close, sma from rpt.bar_regimes where run_id = 's' "
                       "order by ts desc limit 1").fetchall() == [(50.0, 50.0)]

def test_bar_regimes_terciles_cut_per_symbol_and_runs_do_not_leak(con: Any) -> None:
    # Y never moves: cut over both symbols' bars, its zero volatilities would make every X
    # bar normal or high; cut within each symbol, X keeps its own terciles
    load(con, "a", {"X": CLOSES, "Y": [50.0] * 75})
    load(con, "b", {"X": [10 * c for c in CLOSES]})  # the same returns: the same labels

    assert labels(con, "a", "X")[WARMUP:] == [
        ("up", "low"), ("flat", "low"), ("down", "normal"), ("flat", "high"), ("up", "high")]
    assert labels(con, "a", "Y") == [("warmup", "warmup")] * WARMUP + [("flat", "low")] * 15
    assert labels(con, "b", "X") == labels(con, "a", "X")
    assert con.execute("select count(*) from rpt.bar_regimes where run_id = 'b'"
                       ).fetchall() == [(65,)]


def test_performance_by_regime_splits_bars_returns_and_trades(con: Any) -> None:
    # buy 1 at 106 on bar 60 (up, low); sell 1 at 94 on bar 62 (down, normal): P&L -12
    load(con, "a", {"X": CLOSES}, [(1, 1, "X", "BUY", 1.0, 106.0, 60),
                                   (2, 2, "X", "SELL", 1.0, 94.0, 62)])

    rows = by_regime(con, "a")

    # equity: 1000 to bar 60 (cash 894 + 106), 994 on bar 61, 988 from bar 62 on
    bars_pct = 100 / 65
    assert rows == {
        ("X", "warmup", "warmup"): dict(bars=60, bars_pct=pytest.approx(60 * bars_pct),
                                        log_return=0.0, return_pct=0.0, in_market_pct=0.0,
                                        trades=0, win_rate_pct=None, pnl=0.0),
        ("X", "up", "low"): dict(bars=1, bars_pct=pytest.approx(bars_pct), log_return=0.0,
                                 return_pct=0.0, in_market_pct=100.0, trades=1,
                                 win_rate_pct=0.0, pnl=pytest.approx(-12.0)),
        ("X", "flat", "low"): dict(bars=1, bars_pct=pytest.approx(bars_pct),
                                   log_return=pytest.approx(math.log(0.994)),
                                   return_pct=pytest.approx(-0.6), in_market_pct=100.0,
                                   trades=0, win_rate_pct=None, pnl=0.0),
        ("X", "down", "normal"): dict(bars=1, bars_pct=pytest.approx(bars_pct),
                                      log_return=pytest.approx(math.log(988 / 994)),
                                      return_pct=pytest.approx((988 / 994 - 1) * 100),
                                      in_market_pct=0.0, trades=0, win_rate_pct=None,
                                      pnl=0.0),
        ("X", "flat", "high"): dict(bars=1, bars_pct=pytest.approx(bars_pct), log_return=0.0,
                                    return_pct=0.0, in_market_pct=0.0, trades=0,
                                    win_rate_pct=None, pnl=0.0),
        ("X", "up", "high"): dict(bars=1, bars_pct=pytest.approx(bars_pct), log_return=0.0,
                                  return_pct=0.0, in_market_pct=0.0, trades=0,
                                  win_rate_pct=None, pnl=0.0),
    }
    total = con.execute("select total_return_pct from rpt.performance where run_id = 'a'"
                        ).fetchall()[0][0]
    log_sum = sum(r["log_return"] for r in rows.values())
    assert (math.exp(log_sum) - 1) * 100 == pytest.approx(total, rel=1e-12)  # -1.2 %


def test_performance_by_regime_entry_in_parts_counts_once_at_its_first_fill(con: Any) -> None:
    # entry order 1 fills 0.5 on bar 60 (up, low) and 0.5 on bar 61 (flat, low); one exit
    # order on bar 64 at 100.4: one trade, entered up/low, P&L (100.4-106)/2 + (100.4-100)/2
    load(con, "parts", {"X": CLOSES}, [(1, 1, "X", "BUY", 0.5, 106.0, 60),
                                       (2, 1, "X", "BUY", 0.5, 100.0, 61),
                                       (3, 2, "X", "SELL", 1.0, 100.4, 64)])

    rows = by_regime(con, "parts")

    assert {k: (r["trades"], r["pnl"]) for k, r in rows.items() if r["trades"]} == {
        ("X", "up", "low"): (1, pytest.approx(0.5 * (100.4 - 106.0) + 0.5 * 0.4))}
    assert [rows[k]["in_market_pct"] for k in (("X", "up", "low"), ("X", "flat", "low"),
                                               ("X", "up", "high"))] == [100.0, 100.0, 0.0]


def test_performance_by_regime_two_symbols_each_partition_the_account(con: Any) -> None:
    load(con, "two", {"X": CLOSES, "Y": [50.0] * 65}, [(1, 1, "Y", "BUY", 1.0, 50.0, 61)])

    rows = by_regime(con, "two")

    assert {k for k in rows if k[0] == "Y"} == {("Y", "warmup", "warmup"), ("Y", "flat", "low")}
    assert sum(r["bars"] for k, r in rows.items() if k[0] == "Y") == 65
    assert sum(r["bars"] for k, r in rows.items() if k[0] == "X") == 65
    # the account's curve is flat (Y never moves): no regime of either symbol made anything
    assert {r["log_return"] for r in rows.values()} == {0.0}
    assert rows[("Y", "flat", "low")]["in_market_pct"] == pytest.approx(4 / 5 * 100)
    assert rows[("X", "flat", "low")]["in_market_pct"] == 100.0  # bar 61
