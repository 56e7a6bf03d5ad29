"""Row tests of the risk reports: hand-written ``orders`` and ``risk_events`` rows -> exact rows
of rpt.risk_blocks and the order counts and block rate of rpt.performance.

A daily-loss stop (a risk_events row without an order) is not a block of an order; runs sharing
one warehouse never leak into each other's rows; shares are real (not integer) percentages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from workbench.warehouse.connect import open_memory

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MIN = 60_000


def ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def load(con: Any, run_id: str, orders: list[tuple[int, str, str | None]],
         events: list[tuple[int | None, int, str, str]], bars: int = 3) -> None:
    """A completed run with ``bars`` one-minute bars of X at 100, ``orders`` as (seq, status,
    reason) and risk ``events`` as (order seq or None for a stop, minute, rule, code)."""
    con.execute(
        "insert into runs (run_id, mode, status, started_at, initial_cash, timeframe_ms) "
        "values (?, 'backtest', 'completed', ?, 1000.0, ?)", [run_id, ts(T0), MIN])
    con.executemany(
        "insert into run_bars (run_id, symbol, ts, close, filled) values (?, 'X', ?, 100.0, "
        "false)", [[run_id, ts(T0 + i * MIN)] for i in range(bars)])
    if orders:
        con.executemany(
            "insert into orders (run_id, order_seq, client_order_id, symbol, side, type, qty, "
            "status, reason, ts, bar_ts, updated_ts, filled_qty, reduce_only) values "
            "(?, ?, ?, 'X', 'BUY', 'MARKET', 1.0, ?, ?, ?, ?, ?, 0.0, false)",
            [[run_id, seq, f"{run_id}-{seq}", status, reason, ts(T0 + MIN), ts(T0),
              ts(T0 + MIN)] for seq, status, reason in orders])
    if events:
        con.executemany(
            "insert into risk_events (run_id, ts, client_order_id, order_seq, symbol, rule, "
            "reason_code, detail) values (?, ?, ?, ?, 'X', ?, ?, ?)",
            [[run_id, ts(T0 + minute * MIN), None if seq is None else f"{run_id}-{seq}", seq,
              rule, code, json.dumps({"event": "stop"} if seq is None else {"limit": 1.0})]
             for seq, minute, rule, code in events])


@pytest.fixture(scope="module")
def con() -> Iterator[Any]:
    con = open_memory()
    # three orders, two blocked by the notional rule, one by the daily loss after its stop
    load(con, "a", [(1, "BLOCKED", "RISK_ORDER_NOTIONAL"), (2, "FILLED", None),
                    (3, "BLOCKED", "RISK_ORDER_NOTIONAL"), (4, "BLOCKED", "RISK_DAILY_LOSS")],
         [(1, 1, "order_notional", "RISK_ORDER_NOTIONAL"),
          (None, 2, "daily_loss", "RISK_DAILY_LOSS"),
          (3, 2, "order_notional", "RISK_ORDER_NOTIONAL"),
          (4, 3, "daily_loss", "RISK_DAILY_LOSS")])
    # same rule names and codes, other counts; two rules sharing one code stay apart
    load(con, "b", [(1, "BLOCKED", "RISK_DRAWDOWN"), (2, "BLOCKED", "RISK_DRAWDOWN"),
                    (3, "FILLED", None)],
         [(1, 1, "daily_drawdown", "RISK_DRAWDOWN"), (2, 2, "drawdown", "RISK_DRAWDOWN")])
    # a stop and orders, but no order blocked
    load(con, "stop-only", [(1, "FILLED", None), (2, "REJECTED", "INSUFFICIENT_FUNDS")],
         [(None, 1, "daily_loss", "RISK_DAILY_LOSS")])
    # no orders at all
    load(con, "idle", [], [])
    yield con
    con.close()


def risk_blocks(con: Any, run_id: str) -> list[tuple[Any, ...]]:
    return con.execute(
        "select rule, reason_code, blocks, epoch_ms(first_ts), epoch_ms(last_ts), "
        "share_of_orders_pct from rpt.risk_blocks where run_id = ? order by rule, reason_code",
        [run_id]).fetchall()


def test_risk_blocks_view_columns_fixed_names_and_order() -> None:
    c = open_memory()
    try:
        cols = [r[0] for r in c.execute("describe rpt.risk_blocks").fetchall()]
    finally:
        c.close()
    assert cols == ["run_id", "rule", "reason_code", "blocks", "first_ts", "last_ts",
                    "share_of_orders_pct"]


def test_risk_blocks_counts_per_rule_with_times_and_share_stop_event_excluded(con: Any) -> None:
    assert risk_blocks(con, "a") == [
        ("daily_loss", "RISK_DAILY_LOSS", 1, T0 + 3 * MIN, T0 + 3 * MIN, 25.0),
        ("order_notional", "RISK_ORDER_NOTIONAL", 2, T0 + MIN, T0 + 2 * MIN, 50.0),
    ]


def test_risk_blocks_rules_sharing_a_code_separate_rows_fractional_share(con: Any) -> None:
    third = 1 / 3 * 100
    rows = risk_blocks(con, "b")
    assert [r[:5] for r in rows] == [
        ("daily_drawdown", "RISK_DRAWDOWN", 1, T0 + MIN, T0 + MIN),
        ("drawdown", "RISK_DRAWDOWN", 1, T0 + 2 * MIN, T0 + 2 * MIN),
    ]
    assert [r[5] for r in rows] == [pytest.approx(third, rel=1e-12)] * 2


@pytest.mark.parametrize("run_id", ["stop-only", "idle", "nope"])
def test_risk_blocks_run_without_blocked_orders_no_rows(con: Any, run_id: str) -> None:
    assert risk_blocks(con, run_id) == []


def test_risk_blocks_two_runs_kept_apart(con: Any) -> None:
    rows = con.execute("select run_id, sum(blocks) from rpt.risk_blocks group by run_id "
                       "order by run_id").fetchall()
    assert rows == [("a", 3), ("b", 2)]


def performance(con: Any, run_id: str) -> tuple[Any, ...]:
    return con.execute("select orders, blocked_orders, block_rate_pct from rpt.performance "
                       "where run_id = ?", [run_id]).fetchone()


@pytest.mark.parametrize(("run_id", "expected"), [
    ("a", (4, 3, 75.0)),
    ("stop-only", (2, 0, 0.0)),   # a stop and a broker rejection are not blocks
    ("idle", (0, 0, None)),       # no orders: no rate
])
def test_performance_orders_blocked_and_block_rate(con: Any, run_id: str,
                                                   expected: tuple[Any, ...]) -> None:
    assert performance(con, run_id) == expected


def test_performance_block_rate_is_fractional_percent(con: Any) -> None:
    orders, blocked, rate = performance(con, "b")
    assert (orders, blocked) == (3, 2)
    assert rate == pytest.approx(2 / 3 * 100, rel=1e-12)
