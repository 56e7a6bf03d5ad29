"""``workbench sweep``: a grid of backtests on dask.distributed, written by one driver."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_process import CliResult
from cli_runs import query as _rows

from workbench import sweep, sweeps
from workbench.engine.run import run_backtest
from workbench.errors import ConfigError
from workbench.grid import points
from workbench.sweeps import PointResult

FRAGILE = "sweep_strategies:FragileSma"
CONFIG = {"run": {"name": "sw"}, "data": {"symbols": ["BTCUSDT"], "timeframe": "1m"},
          "strategy": {"params": {"fast": 5, "slow": 20, "qty": 0.1}},
          "costs": {"fee_bps": 10, "slippage_bps": 5}}
GRID = {"strategy.params.fast": [3, 5], "strategy.params.slow": [15, 20]}



def _trades(warehouse: Path, run_id: str) -> list[tuple[Any, ...]]:
    return _rows(warehouse, "select symbol, entry_ts, exit_ts, qty, pnl from rpt.round_trips "
                            "where run_id = ? order by entry_ts", [run_id])


def _regimes(warehouse: Path, run_id: str) -> list[tuple[Any, ...]]:
    rows = _rows(warehouse, "select symbol, trend, volatility, bars, log_return, in_market_pct, "
                            "trades, pnl from rpt.performance_by_regime where run_id = ? "
                            "order by all", [run_id])
    assert sum(r[6] for r in rows) > 0
    return rows


def test_sweep_data_start_grid_reads_each_window_once_and_equals_serial_backtests(
        load_bars: Callable[[int], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import workbench.sweeps as sweeps

    warehouse = load_bars(600)
    reads: list[tuple[int | None, int | None]] = []
    real_read = sweeps.read_bars
    monkeypatch.setattr(sweeps, "read_bars", lambda cfg, path, start, end: (
        reads.append((start, end)) or real_read(cfg, path, start, end)))
    said: list[str] = []
    grid = {"data.start": ["2024-01-01T00:00:00Z", "2024-01-01T03:20:00Z"],
            "strategy.params.fast": [3, 5]}

    result = sweep(CONFIG, grid, warehouse=warehouse, processes=False, workers=1, env={},
                   progress=False, announce=said.append)

    t0 = 1_704_067_200_000
    assert reads == [(t0, None), (t0 + 200 * 60_000, None)]  # one read per window
    assert "4 points over 2 data windows" in said[0]
    assert [p.status for p in result.points] == ["completed"] * 4
    counts = []
    for point in result.points:
        label = ",".join(f"{k.removeprefix('strategy.params.')}={v}"
                         for k, v in point.params.items())
        serial = run_backtest(CONFIG, overrides=[f"{k}={v}" for k, v in point.params.items()]
                              + [f"run.name=sw/{label}"], warehouse=warehouse, env={},
                              out=tmp_path / str(point.point_seq), progress=False)
        assert point.metrics == serial.metrics
        assert point.run_id is not None
        assert _trades(warehouse, point.run_id) == _trades(warehouse, serial.run_id)
        mine, theirs = (_rows(warehouse, "select name, config_hash, data_hash, start_ts, "
                                         "bar_count from runs where run_id = ?", [r])[0]
                        for r in (point.run_id, serial.run_id))
        assert mine == theirs
        counts.append(mine[-1])
    assert counts == [600, 600, 400, 400]


def test_sweep_on_two_workers_rows_equal_serial_backtests(load_bars: Callable[[int], Path],
                                                          tmp_path: Path):
    warehouse = load_bars(600)

    result = sweep(CONFIG, GRID, warehouse=warehouse, workers=2, env={}, progress=False,
                   announce=lambda line: None)

    assert [p.status for p in result.points] == ["completed"] * 4
    for point in result.points:
        label = ",".join(f"{k.split('.')[-1]}={v}" for k, v in point.params.items())
        serial = run_backtest(CONFIG, overrides=[f"{k}={v}" for k, v in point.params.items()]
                              + [f"run.name=sw/{label}"], warehouse=warehouse, env={},
                              out=tmp_path / label, progress=False)
        assert point.metrics == serial.metrics
        assert point.run_id is not None
        assert _trades(warehouse, point.run_id) == _trades(warehouse, serial.run_id)
        assert len(_trades(warehouse, point.run_id)) > 0
        mine, theirs = (_rows(warehouse, "select name, mode, status, config_hash, data_hash, "
                                         "bar_count from runs where run_id = ?", [r])[0]
                        for r in (point.run_id, serial.run_id))
        assert mine == theirs  # same name, config and bars: an ordinary run
        assert _regimes(warehouse, point.run_id) == _regimes(warehouse, serial.run_id)
    got = _rows(warehouse, "select point_seq, run_id, status, total_return_pct, sharpe, "
                           "trades, max_drawdown_pct from rpt.sweep_results "
                           "where sweep_id = ? order by point_seq", [result.sweep_id])
    assert got == [(p.point_seq, p.run_id, "completed", p.metrics["total_return_pct"],
                    p.metrics["sharpe"], p.metrics["trades"], p.metrics["max_drawdown_pct"])
                   for p in result.points]
    for p in result.points:  # the numbers of rpt.performance, as the runs stored them
        perf = _rows(warehouse, "select total_return_pct, sharpe, trades from "
                                "rpt.performance where run_id = ?", [p.run_id])[0]
        assert perf == pytest.approx((p.metrics["total_return_pct"], p.metrics["sharpe"],
                                      p.metrics["trades"]), rel=1e-12)


def test_sweep_failing_point_is_strategy_error_and_others_complete(
        load_bars: Callable[[int], Path]):
    warehouse = load_bars(600)

    result = sweep(CONFIG, {"strategy.params.explode": [False, True]}, warehouse=warehouse,
                   strategy=FRAGILE, processes=False, workers=1, env={}, progress=False,
                   announce=lambda line: None)

    assert [(p.status, p.error_kind) for p in result.points] == [
        ("completed", None), ("failed", "strategy_error")]
    assert "boom: explode was set" in (result.points[1].error or "")
    rows = _rows(warehouse, "select point_seq, params, status, error_kind, run_id is null, "
                            "attempts, worker is not null, started_at <= ended_at "
                            "from experiments where sweep_id = ? order by point_seq",
                 [result.sweep_id])
    assert rows == [(1, '{"strategy.params.explode": false}', "completed", None, False, 1,
                     True, True),
                    (2, '{"strategy.params.explode": true}', "failed", "strategy_error", True,
                     1, True, True)]
    assert _rows(warehouse, "select count(*) from runs where name like 'sw/%'") == [(1,)]


def test_sweep_point_shows_running_in_experiments_while_it_runs(
        load_bars: Callable[[int], Path], monkeypatch: pytest.MonkeyPatch):
    import threading

    import sweep_strategies

    import workbench.sweeps as sweeps

    warehouse = load_bars(600)
    release = threading.Event()
    monkeypatch.setattr(sweep_strategies, "RELEASE", release)
    seen: list[tuple[Any, ...]] = []
    real_flush = sweeps._flush

    def flush(*args: Any, **kwargs: Any) -> None:  # the driver's writes, watched
        real_flush(*args, **kwargs)
        rows = _rows(warehouse, "select point_seq, status, attempts, worker, started_at "
                                "from experiments where status = 'running' and point_seq = 2")
        if rows and not release.is_set():
            seen.extend(rows)
            release.set()  # the held point may go on

    monkeypatch.setattr(sweeps, "_flush", flush)
    monkeypatch.setattr(sweeps, "BATCH_S", 0.2)  # what started is written within 0.2 s

    result = sweep(CONFIG, {"strategy.params.hold": [False, True]}, warehouse=warehouse,
                   strategy="sweep_strategies:HeldSma", processes=False, workers=2, env={},
                   progress=False, announce=lambda line: None)

    # the held point, written while it ran: running, on its worker, since it started
    assert [row[:3] for row in seen] == [(2, "running", 1)]
    assert seen[0][3] == result.points[1].worker and seen[0][3] is not None
    assert [p.status for p in result.points] == ["completed", "completed"]
    assert _rows(warehouse, "select status, started_at = ? from experiments where point_seq = 2",
                 [seen[0][4]]) == [("completed", True)]


def test_sweep_lost_worker_is_retried_then_worker_lost(load_bars: Callable[[int], Path]):
    import dask

    warehouse = load_bars(600)

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        result = sweep(CONFIG, {"strategy.params.die": [False, True]}, warehouse=warehouse,
                       strategy=FRAGILE, workers=2, retries=1, env={}, progress=False,
                       announce=lambda line: None)

    first, lost = result.points
    assert (first.status, first.error_kind) == ("completed", None)  # its result may have
    assert first.attempts in (1, 2)  # been on the dying worker: then it ran again
    assert (lost.status, lost.error_kind, lost.attempts) == ("failed", "worker_lost", 2)
    assert _rows(warehouse, "select status, error_kind, attempts, error like '%lost%' "
                            "from experiments where point_seq = 2") == [
        ("failed", "worker_lost", 2, True)]


def test_points_secret_grid_key_masked_in_params_real_value_in_overrides():
    got = points({"venue.api_key": ["sk-grid-aaaa1111", "sk-grid-bbbb2222"],
                  "strategy.params.fast": [3]})

    assert [p.params for p in got] == [{"venue.api_key": "***", "strategy.params.fast": 3}] * 2
    assert got[1].overrides == ("venue.api_key=sk-grid-bbbb2222", "strategy.params.fast=3")
    assert "sk-grid" not in got[0].label


def test_sweep_secret_in_a_workers_error_is_masked_in_experiments(
        load_bars: Callable[[int], Path]):
    warehouse = load_bars(600)
    key = "sk-live-0123456789abcdef"

    result = sweep(CONFIG, {"strategy.params.explode": [True]}, warehouse=warehouse,
                   strategy=FRAGILE, workers=1, env={}, progress=False,
                   overrides=[f"venue.api_key={key}", f"strategy.params.message=leak {key}"],
                   announce=lambda line: None)

    (point,) = result.points
    assert point.error_kind == "strategy_error"
    stored = _rows(warehouse, "select error from experiments")[0][0]
    assert key not in stored and key not in (point.error or "")
    assert "leak" in stored


def test_sweep_bad_grid_value_refused_before_any_work(load_bars: Callable[[int], Path]):
    warehouse = load_bars(600)

    with pytest.raises(ConfigError) as caught:
        sweep(CONFIG, {"strategy.params.fast": [5, 50]}, warehouse=warehouse, env={},
              announce=lambda line: None)

    assert "sweep point 2 (fast=50)" in caught.value.render()
    assert _rows(warehouse, "select count(*) from experiments") == [(0,)]


def test_sweep_data_window_without_bars_names_its_point_before_any_work(
        load_bars: Callable[[int], Path]):
    from workbench.errors import DataError

    warehouse = load_bars(600)

    with pytest.raises(DataError) as caught:
        sweep(CONFIG, {"data.start": ["2024-01-01T00:00:00Z", "2024-03-01T00:00:00Z"]},
              warehouse=warehouse, env={}, announce=lambda line: None)

    assert caught.value.where is not None
    assert caught.value.where.startswith("sweep point 2 (data.start=2024-03-01T00:00:00Z)")
    assert _rows(warehouse, "select count(*) from experiments") == [(0,)]


def test_sweep_unknown_grid_key_names_the_point(load_bars: Callable[[int], Path]):
    warehouse = load_bars(600)

    with pytest.raises(ConfigError, match=r"sweep point 1 .*unknown parameter `fsat`"):
        sweep(CONFIG, {"strategy.params.fsat": [5]}, warehouse=warehouse, env={},
              announce=lambda line: None)


def test_sweep_interrupted_keeps_finished_points_and_marks_the_rest(
        load_bars: Callable[[int], Path]):
    warehouse = load_bars(600)
    seen: list[PointResult] = []

    def stop(point: PointResult) -> None:
        seen.append(point)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep(CONFIG, GRID, warehouse=warehouse, processes=False, workers=1, env={},
              progress=False, announce=lambda line: None, on_point=stop)

    rows = _rows(warehouse, "select status, error_kind, error, run_id is not null "
                            "from experiments order by point_seq")
    done = [r for r in rows if r[0] == "completed"]
    assert len(done) >= 1 and all(r[3] for r in done)
    assert all(r[0] == "failed" and r[1] is None and r[2].startswith("cancelled")
               for r in rows if r[0] != "completed")
    assert _rows(warehouse, "select count(*) from runs") == [(len(done),)]


def test_sweep_interrupted_while_reaching_the_cluster_leaves_no_pending_point(
        load_bars: Callable[[int], Path], monkeypatch: pytest.MonkeyPatch):
    warehouse = load_bars(600)

    def stop(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sweeps, "_dashboard", stop)  # asks the scheduler: Ctrl-C lands here
    with pytest.raises(KeyboardInterrupt):
        sweep(CONFIG, GRID, warehouse=warehouse, processes=False, workers=1, env={},
              progress=False, announce=lambda line: None)

    statuses = _rows(warehouse, "select distinct status from experiments")
    assert ("pending",) not in statuses


def test_sweep_cli_prints_a_table_and_json(cli: Callable[..., CliResult],
                                           load_bars: Callable[[int], Path], tmp_path: Path):
    warehouse = load_bars(600)
    config = tmp_path / "sweep.yaml"
    config.write_text(json.dumps(CONFIG), encoding="utf-8")

    text = cli("sweep", "--config", str(config), "--grid", "strategy.params.fast=3,5",
               "--workers", "1", "--name", "grid", "--tag", "exp=grid")
    as_json = cli("sweep", "--config", str(config), "--grid", "strategy.params.fast=3,5",
                  "--grid", "strategy.params.slow=20", "--workers", "1", "--json")
    refused = cli("sweep", "--config", str(config), "--grid", "strategy.params.fast=5,40")

    assert text.code == 0, text.err
    assert "fast=3" in text.out and "completed" in text.out
    assert "sweep sweep-" in text.err  # the cluster line on stderr
    assert _rows(warehouse, "select name, tags from runs where name like 'grid/%' "
                            "order by name") == [("grid/fast=3", '{"exp": "grid"}'),
                                                 ("grid/fast=5", '{"exp": "grid"}')]
    doc = json.loads(as_json.out)
    assert doc["completed"] == 2 and doc["name"] == "sw"
    assert [p["params"] for p in doc["points"]] == [
        {"strategy.params.fast": 3, "strategy.params.slow": 20},
        {"strategy.params.fast": 5, "strategy.params.slow": 20}]
    assert refused.code == 2 and "sweep point 2 (fast=40)" in refused.err


def test_sweep_on_a_scheduler_address_uses_that_cluster(load_bars: Callable[[int], Path]):
    from distributed import LocalCluster

    warehouse = load_bars(600)
    said: list[str] = []
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, host="127.0.0.1",
                      protocol="tcp://", dashboard_address="127.0.0.1:0") as cluster:
        result = sweep(CONFIG, {"strategy.params.fast": [3, 5]}, warehouse=warehouse,
                       scheduler=cluster.scheduler_address, env={}, progress=False,
                       announce=said.append)
        assert cluster.scheduler.status.name == "running"  # not closed by the sweep

    assert [p.status for p in result.points] == ["completed", "completed"]
    assert said[0].startswith(f"sweep {result.sweep_id}: 2 points on 1 workers")


def test_sweep_unreachable_scheduler_is_config_error(load_bars: Callable[[int], Path],
                                                     monkeypatch: pytest.MonkeyPatch):
    warehouse = load_bars(600)
    monkeypatch.setattr("workbench.sweeps.CONNECT_TIMEOUT", "1s")

    with pytest.raises(ConfigError, match="cannot reach the dask scheduler"):
        sweep(CONFIG, {"strategy.params.fast": [3]}, warehouse=warehouse,
              scheduler="tcp://127.0.0.1:9", env={}, announce=lambda line: None)
    assert _rows(warehouse, "select count(*) from runs") == [(0,)]


def test_sweep_venue_key_never_reaches_the_workers(load_bars: Callable[[int], Path]):
    from workbench.grid import points
    from workbench.sweeps import _plan
    from workbench.warehouse import views

    planned = _plan(CONFIG, ["venue.api_key=sk-live-0123456789abcdef"],
                    points({"strategy.params.fast": [3]}), "sweep-x", "sw", views.check(),
                    {"env_prefix": "WB_", "env": {}, "strategy": None, "strategy_path": None})

    (item,) = planned
    assert item.cfg.venue.api_key is None
    assert "sk-live-0123456789abcdef" not in json.dumps(item.manifest, default=str)
    assert "sk-live-0123456789abcdef" not in json.dumps(item.run_row, default=str)


def test_sweep_report_heatmap_over_two_params_and_top_runs_first_then_failed(
        load_bars: Callable[[int], Path]):
    import workbench.report as wr

    warehouse = load_bars(600)
    result = sweep(CONFIG, {"strategy.params.fast": [3, 5], "strategy.params.explode":
                            [False, True]}, warehouse=warehouse, strategy=FRAGILE,
                   processes=False, workers=1, env={}, progress=False,
                   announce=lambda line: None)

    report = wr.load_sweep(warehouse=warehouse)  # the newest sweep
    fig = wr.sweep_heatmap(report, "sharpe")
    table = wr.top_runs_table(report, "sharpe")

    assert report.sweep_id == result.sweep_id
    assert report.keys == ["strategy.params.fast", "strategy.params.explode"]
    heat = fig.data[0]
    assert list(heat.x) == ["3", "5"] and list(heat.y) == ["False", "True"]
    sharpe = {p.params["strategy.params.fast"]: p.metrics["sharpe"] for p in result.points
              if p.status == "completed"}
    assert [list(row) for row in heat.z] == [[sharpe[3], sharpe[5]], [None, None]]
    assert [row[2] for row in table.rows] == ["completed", "completed", "failed", "failed"]
    assert table.rows[0][4] == max(sharpe.values())
    assert table.rows[-1][-1] == "strategy_error"


def test_sweep_plan_puts_the_tags_on_every_point_run(load_bars: Callable[[int], Path]):
    from workbench.sweeps import _plan, points
    from workbench.warehouse import views

    planned = _plan(CONFIG, [], points({"strategy.params.fast": [3, 4]}), "sweep-x", "sw",
                    views.check(), {"env_prefix": "WB_", "env": {}, "strategy": None,
                                    "strategy_path": None}, {"exp": "grid"})
    assert [p.run_row["tags"] for p in planned] == [{"exp": "grid"}, {"exp": "grid"}]
    assert [p.manifest["tags"] for p in planned] == [{"exp": "grid"}, {"exp": "grid"}]


def test_open_rw_points_of_a_dead_driver_are_abandoned_a_live_drivers_kept(
        load_bars: Callable[[int], Path]):
    import os
    import subprocess
    import sys

    from workbench.warehouse.connect import open_rw
    from workbench.warehouse.stale import HOST

    warehouse = load_bars(10)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(gone.stdout)
    con = open_rw(warehouse)
    try:
        for sweep_id, seq, status, pid in [("dead", 1, "completed", dead_pid),
                                           ("dead", 2, "running", dead_pid),
                                           ("dead", 3, "pending", dead_pid),
                                           ("alive", 1, "running", os.getpid())]:
            con.execute("insert into experiments (sweep_id, point_seq, name, params, "
                        "config_hash, status, attempts, pid, host) "
                        "values (?, ?, 'sw', '{}', 'h', ?, 0, ?, ?)",
                        [sweep_id, seq, status, pid, HOST])
    finally:
        con.close()

    open_rw(warehouse).close()  # any read-write open (the next ingest, backtest, sweep)

    rows = _rows(warehouse, "select sweep_id, point_seq, status, ended_at is not null, "
                            "error like '%driver process ended%' from experiments order by all")
    assert rows == [("alive", 1, "running", False, None),
                    ("dead", 1, "completed", False, None),
                    ("dead", 2, "abandoned", True, True),
                    ("dead", 3, "abandoned", True, True)]


@pytest.mark.e2e
def test_sweep_driver_killed_9_leaves_its_points_abandoned_not_pending(
        load_bars: Callable[[int], Path], tmp_path: Path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from workbench.warehouse.connect import open_rw

    warehouse = load_bars(600)
    script = tmp_path / "drive.py"
    script.write_text(
        "from workbench import sweep\n"
        f"sweep({CONFIG!r}, {{'strategy.params.hold': [True, True]}}, "
        f"warehouse={str(warehouse)!r}, strategy='sweep_strategies:HeldSma', "
        "processes=False, workers=1, env={}, progress=False, announce=print)\n")
    support = str(Path(__file__).parent / "support")
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": support}, text=True)
    try:
        assert driver.stdout is not None
        # the sweep's line comes after the points were written (a dashboard only with bokeh)
        assert driver.stdout.readline().startswith("sweep sweep-")
        deadline = time.monotonic() + 30
        while _rows(warehouse, "select count(*) from experiments where status = 'running'"
                    ) != [(1,)]:
            assert time.monotonic() < deadline, "the held point never showed running"
            time.sleep(0.1)
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
    finally:
        driver.kill()

    assert _rows(warehouse, "select point_seq, status from experiments order by point_seq") == [
        (1, "running"), (2, "pending")]  # as the driver left them, until a writer opens
    open_rw(warehouse).close()
    assert _rows(warehouse, "select point_seq, status, error_kind from experiments "
                            "order by point_seq") == [(1, "abandoned", None),
                                                      (2, "abandoned", None)]
