"""``workbench sweep``: a grid of backtests on dask.distributed, written by one driver."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_process import CliResult

from workbench import sweep, sweeps
from workbench.engine.run import run_backtest
from workbench.errors import ConfigError
from workbench.sweeps import PointResult, parse_grid, points
from workbench.warehouse.connect import reading

FRAGILE = "sweep_strategies:FragileSma"
CONFIG = {"run": {"name": "sw"}, "data": {"symbols": ["BTCUSDT"], "timeframe": "1m"},
          "strategy": {"params": {"fast": 5, "slow": 20, "qty": 0.1}},
          "costs": {"fee_bps": 10, "slippage_bps": 5}}
GRID = {"strategy.params.fast": [3, 5], "strategy.params.slow": [15, 20]}


def _rows(warehouse: Path, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with reading(warehouse) as con:
        return con.execute(query, params or []).fetchall()


def _trades(warehouse: Path, run_id: str) -> list[tuple[Any, ...]]:
    return _rows(warehouse, "select symbol, entry_ts, exit_ts, qty, pnl from rpt.round_trips "
                            "where run_id = ? order by entry_ts", [run_id])


def test_points_cartesian_product_last_key_fastest_values_parsed_as_set():
    got = points(parse_grid(["strategy.params.fast=3,5", "costs.fee_bps=0,2.5"]))

    assert [p.params for p in got] == [
        {"strategy.params.fast": 3, "costs.fee_bps": 0},
        {"strategy.params.fast": 3, "costs.fee_bps": 2.5},
        {"strategy.params.fast": 5, "costs.fee_bps": 0},
        {"strategy.params.fast": 5, "costs.fee_bps": 2.5}]
    assert got[1].label == "fast=3,costs.fee_bps=2.5"


@pytest.mark.parametrize("item", ["fast", "strategy.params.fast=", "a=1,,2"])
def test_parse_grid_malformed_item_is_config_error(item: str):
    with pytest.raises(ConfigError, match="--grid expects KEY=V1,V2"):
        parse_grid([item])


def test_points_data_keys_refused_the_bars_are_read_once():
    with pytest.raises(ConfigError, match="reads its bars once"):
        points({"data.start": ["2024-01-01"]})


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
    from workbench.sweeps import _plan, points
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
