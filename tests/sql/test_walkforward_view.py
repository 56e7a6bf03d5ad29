"""rpt.walkforward: hand-written windows and test-run headlines -> expected rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

T0 = datetime(2024, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def _window(con: Any, wf_id: str, seq: int, metric: str, in_sample: float | None,
            test_run_id: str | None, status: str = "completed") -> None:
    start = T0 + (seq - 1) * 2 * DAY
    con.execute(
        "insert into walkforward_windows (wf_id, window_seq, name, metric, anchored, "
        "train_start, train_end, test_start, test_end, sweep_id, point_seq, params, "
        "train_run_id, in_sample, test_run_id, status, ended_at) "
        "values (?, ?, 'wf', ?, false, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [wf_id, seq, metric, start, start + 5 * DAY, start + 5 * DAY, start + 7 * DAY,
         f"sweep-{seq}", 1 if in_sample is not None else None,
         '{"strategy.params.fast": 5}' if in_sample is not None else None,
         f"train-{seq}" if in_sample is not None else None, in_sample, test_run_id, status,
         T0])


def _headline(con: Any, run_id: str, **values: float) -> None:
    con.executemany("insert into metrics (run_id, ts, name, value) values (?, ?, ?, ?)",
                    [[run_id, T0, f"headline.{k}", v] for k, v in values.items()])


def test_walkforward_view_out_of_sample_gap_and_stitched_return(memory_con: Any) -> None:
    con = memory_con
    _window(con, "wf-a", 1, "sharpe", 2.5, "test-1")
    _window(con, "wf-a", 2, "sharpe", None, None, status="no_choice")
    _window(con, "wf-a", 3, "sharpe", -1.0, "test-3")
    _window(con, "wf-b", 1, "total_return_pct", 4.0, "test-b1")  # its own metric and chain
    _headline(con, "test-1", sharpe=1.5, total_return_pct=10.0, trades=3.0)
    _headline(con, "test-3", sharpe=0.5, total_return_pct=-20.0, trades=1.0)
    _headline(con, "test-b1", sharpe=9.0, total_return_pct=1.0, trades=2.0)
    _headline(con, "train-1", sharpe=2.5, total_return_pct=99.0, trades=7.0)  # not a test run

    rows = con.execute(
        "select wf_id, window_seq, status, in_sample, out_of_sample, gap, test_return_pct, "
        "test_trades, stitched_return_pct from rpt.walkforward "
        "order by wf_id, window_seq").fetchall()

    assert [r[:8] for r in rows] == [
        ("wf-a", 1, "completed", 2.5, 1.5, 1.0, 10.0, 3),
        ("wf-a", 2, "no_choice", None, None, None, None, None),
        ("wf-a", 3, "completed", -1.0, 0.5, -1.5, -20.0, 1),
        ("wf-b", 1, "completed", 4.0, 1.0, 3.0, 1.0, 2)]
    # 1.10, then cash held, then 1.10 * 0.80 = 0.88
    assert [r[8] for r in rows] == pytest.approx([10.0, 10.0, -12.0, 1.0], rel=1e-12)
