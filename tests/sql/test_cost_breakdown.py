"""rpt.cost_breakdown: hand-written runs, fills and costs rows -> exact expected rows."""

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


def load(con: Any, run_id: str, closes: list[float], fills: list[tuple[Any, ...]],
         costs: list[tuple[Any, ...]]) -> None:
    con.execute("insert into runs (run_id, mode, status, started_at, initial_cash, timeframe_ms)"
                " values (?, 'backtest', 'completed', ?, 1000.0, ?)", [run_id, ts(T0), MIN])
    con.executemany("insert into run_bars (run_id, symbol, ts, close, filled) "
                    "values (?, 'X', ?, ?, false)",
                    [[run_id, ts(T0 + i * MIN), c] for i, c in enumerate(closes)])
    if fills:
        con.executemany(
            "insert into fills (run_id, fill_seq, order_seq, client_order_id, symbol, side, qty, "
            "price, fee, ts, bar_ts) values (?, ?, ?, ?, 'X', ?, ?, ?, ?, ?, ?)",
            [[run_id, seq, seq, f"{run_id}-{seq}", side, qty, px, fee, ts(T0 + (bar + 1) * MIN),
              ts(T0 + bar * MIN)] for seq, side, qty, px, fee, bar in fills])
    if costs:
        con.executemany("insert into costs (run_id, ts, symbol, kind, amount, fill_seq) "
                        "values (?, ?, 'X', ?, ?, ?)",
                        [[run_id, ts(T0 + MIN), kind, amount, seq]
                         for kind, amount, seq in costs])


def breakdown(con: Any, run_id: str) -> dict[str, Any]:
    rel = con.sql("select * from rpt.cost_breakdown where run_id = ?", params=[run_id])
    rows = rel.fetchall()
    assert len(rows) == 1, rows
    return dict(zip(rel.columns, rows[0], strict=True))


def test_cost_breakdown_gross_is_net_plus_every_cost(con: Any) -> None:
    # buy 1 at 101 (ref 100: spread 0.5, slippage 0.3, impact 0.2), fee 1; sell 1 at 110, fee 2
    load(con, "a", [100.0, 105.0, 110.0],
         [(1, "BUY", 1.0, 101.0, 1.0, 0), (2, "SELL", 1.0, 110.0, 2.0, 2)],
         [("fee", 1.0, 1), ("spread", 0.5, 1), ("slippage", 0.3, 1), ("impact", 0.2, 1),
          ("fee", 2.0, 2)])
    row = breakdown(con, "a")
    net = (1000.0 - 101.0 - 1.0) + (110.0 - 2.0) - 1000.0  # 6.0
    assert row["net_pnl"] == pytest.approx(net)
    assert (row["fees"], row["spread"], row["slippage"], row["impact"], row["funding"]) == (
        3.0, 0.5, 0.3, 0.2, 0.0)
    assert row["total_costs"] == pytest.approx(4.0)
    assert row["gross_pnl"] == pytest.approx(net + 4.0)
    assert row["fills"] == 2 and row["cost_per_fill"] == pytest.approx(2.0)


def test_cost_breakdown_run_without_fills_or_costs_rows_is_all_zero(con: Any) -> None:
    load(con, "flat", [100.0, 100.0], [], [])
    row = breakdown(con, "flat")
    assert (row["net_pnl"], row["gross_pnl"], row["total_costs"], row["fills"]) == (
        0.0, 0.0, 0.0, 0)
    assert row["cost_per_fill"] is None


def test_cost_breakdown_funding_rows_count_and_runs_do_not_leak(con: Any) -> None:
    load(con, "b", [100.0, 100.0], [(1, "BUY", 1.0, 100.0, 0.0, 0)],
         [("funding", 0.25, None), ("borrow", 0.5, None)])
    load(con, "c", [100.0, 100.0], [(1, "BUY", 1.0, 100.0, 9.0, 0)], [("fee", 9.0, 1)])
    b, c = breakdown(con, "b"), breakdown(con, "c")
    assert (b["funding"], b["fees"], b["total_costs"]) == (0.75, 0.0, 0.75)
    assert (c["funding"], c["fees"], c["total_costs"]) == (0.0, 9.0, 9.0)
