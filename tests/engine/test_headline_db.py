"""HeadlineDb: one private database computes several runs' headline rows in turn (a sweep
worker keeps one), each as a database of its own would."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import workbench.engine.run as run_module
from workbench.engine.run import HeadlineDb, run_backtest

CONFIG = {"data": {"symbols": ["BTCUSDT"], "timeframe": "1m"},
          "strategy": {"params": {"fast": 5, "slow": 20, "qty": 0.1}},
          "costs": {"fee_bps": 10, "slippage_bps": 5}}


def test_headline_db_reused_for_runs_in_turn_gives_each_its_own_row_and_ends_empty(
        load_bars: Callable[[int], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    warehouse = load_bars(600)
    seen: list[tuple[Any, ...]] = []
    real = run_module.headline_in_memory

    def spy(run_row: Any, tables: Any, equity: Any, view_list: Any,
            memory_limit: Any = None) -> Any:
        seen.append((dict(run_row), tables, equity, view_list))
        return real(run_row, tables, equity, view_list, memory_limit)

    monkeypatch.setattr(run_module, "headline_in_memory", spy)
    runs = [run_backtest(CONFIG, overrides=[f"strategy.params.fast={fast}"],
                         warehouse=warehouse, env={}, out=tmp_path / str(fast), progress=False)
            for fast in (3, 8)]
    assert runs[0].metrics != runs[1].metrics and runs[0].metrics["trades"] > 0

    db = HeadlineDb(seen[0][3])
    try:
        got = [db.headline(*seen[i][:3]) for i in (0, 1, 0)]
        left = [db.con.execute(f"select count(*) from {name}").fetchall()[0][0]
                for name in ("runs", "orders", "fills", "acct.equity_curve")]
    finally:
        db.close()

    assert got == [runs[0].metrics, runs[1].metrics, runs[0].metrics]
    assert left == [0, 0, 0, 0]


def test_headline_db_for_this_thread_is_kept_until_the_views_change():
    from workbench.warehouse import views

    view_list = views.check()
    first = HeadlineDb.for_this_thread(view_list)
    assert HeadlineDb.for_this_thread(views.check()) is first  # the same views: kept
    other = HeadlineDb.for_this_thread(view_list, memory_limit="1GB")
    assert other is not first
    with pytest.raises(Exception, match="closed"):  # the one it replaced was closed
        first.con.execute("select 1")
