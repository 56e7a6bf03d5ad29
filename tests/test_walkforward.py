"""``workbench walkforward``: train-window sweeps choose, test-window backtests judge."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_process import CliResult
from cli_runs import query as _rows

from workbench import walkforward
from workbench.engine.run import run_backtest
from workbench.errors import ConfigError
from workbench.report.walkforward import (
    load_walkforward,
    walkforward_figure,
    walkforward_table,
)
from workbench.sweeps import PointResult
from workbench.walkforward import (
    WalkForwardResult,
    Window,
    WindowResult,
    check_metric,
    choose,
    fitted_windows,
    parse_duration,
    windows,
)

MIN = 60_000
HOUR = 60 * MIN
T0 = 1_704_067_200_000  # 2024-01-01T00:00Z, where load_bars starts
CONFIG = {"run": {"name": "wf"}, "data": {"symbols": ["BTCUSDT"], "timeframe": "1m"},
          "strategy": {"params": {"fast": 5, "slow": 20, "qty": 0.1}},
          "costs": {"fee_bps": 10, "slippage_bps": 5}}
GRID = {"strategy.params.fast": [3, 5], "strategy.params.slow": [15, 20]}



def _point(seq: int, value: float | None, status: str = "completed") -> PointResult:
    return PointResult(seq, {"strategy.params.fast": seq}, status,
                       metrics={} if value is None else {"sharpe": value})


# --- durations and windows ----------------------------------------------------------------------
@pytest.mark.parametrize(("text", "ms"), [("30d", 30 * 24 * HOUR), ("12h", 12 * HOUR),
                                          ("90m", 90 * MIN), (" 7d ", 7 * 24 * HOUR)])
def test_parse_duration_days_hours_minutes_as_ms(text: str, ms: int):
    assert parse_duration(text, "--train") == ms


def test_parse_duration_longer_than_a_year_is_a_train_window_not_an_error():
    assert parse_duration("730d", "--train") == 730 * 24 * HOUR


def test_parse_duration_zero_says_it_must_be_positive():
    with pytest.raises(ConfigError, match="longer than zero"):
        parse_duration("0d", "--test")


@pytest.mark.parametrize("text", ["30", "7 days", "0d", "1w", "", "-3h"])
def test_parse_duration_malformed_is_config_error_naming_the_flag(text: str):
    with pytest.raises(ConfigError) as caught:
        parse_duration(text, "--test")
    assert caught.value.where == "--test" and "90m, 12h, 30d" in caught.value.render()


def test_windows_rolling_slide_by_test_and_drop_a_short_last_test():
    got = windows(0, 100, 30, 20, anchored=False)

    assert got == [Window(1, 0, 30, 30, 50), Window(2, 20, 50, 50, 70),
                   Window(3, 40, 70, 70, 90)]  # a fourth would test 90..110, past the end


def test_windows_anchored_start_at_the_first_bar_and_grow():
    got = windows(0, 100, 30, 20, anchored=True)

    assert got == [Window(1, 0, 30, 30, 50), Window(2, 0, 50, 50, 70),
                   Window(3, 0, 70, 70, 90)]


def test_windows_test_ending_exactly_at_the_end_is_kept_one_short_is_not():
    assert len(windows(10, 60, 30, 10, anchored=False)) == 2  # tests 40..50, 50..60
    assert len(windows(10, 59, 30, 10, anchored=False)) == 1
    assert windows(10, 49, 30, 10, anchored=False) == []


def test_fitted_windows_longer_than_the_bars_say_how_many_and_what_to_change():
    bars = [T0 + i * MIN for i in range(600)]

    with pytest.raises(ConfigError) as caught:
        fitted_windows(bars, MIN, 30 * 24 * HOUR, 7 * 24 * HOUR, anchored=False)

    text = caught.value.render()
    assert "600 bars from 2024-01-01T00:00:00.000Z to 2024-01-01T10:00:00.000Z" in text
    assert "--train + --test = 37 days" in text and "shorten --train or --test" in text


def test_fitted_windows_shorter_than_one_bar_refused():
    bars = [T0 + i * HOUR for i in range(100)]

    with pytest.raises(ConfigError, match=r"--test \(30 minutes\) is shorter than one bar"):
        fitted_windows(bars, HOUR, 10 * HOUR, 30 * MIN, anchored=False)


def test_fitted_windows_a_test_span_without_bars_is_refused_naming_the_window():
    bars = [T0 + i * MIN for i in range(120)] + [T0 + i * MIN for i in range(240, 360)]

    with pytest.raises(ConfigError, match=r"window 1's test span 2024-01-01T02:00:00.000Z to "
                                          r"2024-01-01T03:00:00.000Z holds no bar"):
        fitted_windows(bars, MIN, 2 * HOUR, HOUR, anchored=False)


# --- the metric and the choice ------------------------------------------------------------------
def test_check_metric_unknown_name_lists_the_valid_ones():
    with pytest.raises(ConfigError) as caught:
        check_metric("sharp")

    text = caught.value.render()
    assert "'sharp' is not a column of rpt.performance" in text
    for name in ("sharpe", "total_return_pct", "max_drawdown_pct", "cagr_pct", "trades"):
        assert name in text
    assert "run_id" not in text and "first_ts" not in text
    check_metric("max_drawdown_pct")  # a valid one passes


def test_choose_highest_metric_ties_to_first_in_grid_order_nulls_and_failures_never_win():
    got = choose([_point(4, 2.0), _point(1, None), _point(2, 2.0), _point(3, float("nan")),
                  _point(5, 9.0, status="failed"), _point(6, -1.0)], "sharpe")

    assert got is not None and got.point_seq == 2
    assert choose([_point(1, None), _point(2, 3.0, status="failed")], "sharpe") is None


def test_walkforward_result_table_a_line_per_window_and_returns_compounded():
    spans = ("2024-01-01T00:00:00.000Z", "2024-01-05T00:00:00.000Z",
             "2024-01-05T00:00:00.000Z", "2024-01-07T00:00:00.000Z")
    result = WalkForwardResult("wf-x", "demo", "sharpe", False, [
        WindowResult(1, *spans, status="completed", params={"strategy.params.fast": 5},
                     in_sample=2.0, out_of_sample=0.5, test_return_pct=10.0,
                     test_run_id="run-1"),
        WindowResult(2, *spans, status="no_choice", error="no point of sweep s\nsecond"),
        WindowResult(3, *spans, status="completed", params={"strategy.params.fast": 3},
                     in_sample=1.0, out_of_sample=1.5, test_return_pct=-50.0,
                     test_run_id="run-3")])

    lines = result.table().splitlines()

    assert lines[1].split() == ["1", "2024-01-01T00:00..2024-01-05T00:00",
                                "2024-01-05T00:00..2024-01-07T00:00", "fast=5", "2", "0.5",
                                "1.5", "10", "run-1"]
    assert lines[2].split()[3:] == ["-", "-", "-", "-", "-", "no_choice:", "no", "point", "of",
                                    "sweep", "s"]
    assert result.windows[2].gap == -0.5
    assert result.oos_return_pct == pytest.approx(-45.0, rel=1e-12)  # 1.10 * 0.50
    assert "out-of-sample return -45.0000 % compounded" in lines[-1]


def test_walkforward_no_workers_refused_before_reading_anything(warehouse: Path):
    with pytest.raises(ConfigError, match="workers must be at least 1, got 0"):
        walkforward(CONFIG, GRID, train="4h", test="2h", workers=0, warehouse=warehouse,
                    env={}, announce=lambda s: None)
    assert not warehouse.exists()


# --- end to end ---------------------------------------------------------------------------------
def test_walkforward_chooses_the_best_train_point_and_its_test_run_is_a_plain_backtest(
        load_bars: Callable[[int], Path], tmp_path: Path):
    warehouse = load_bars(600)  # 10 hours: windows of 4h train + 2h test, three of them
    said: list[str] = []

    result = walkforward(CONFIG, GRID, train="4h", test="2h", metric="sharpe",
                         warehouse=warehouse, processes=False, workers=1, env={},
                         progress=False, runs_dir=tmp_path / "runs", announce=said.append)

    assert [(w.train_start, w.test_start, w.test_end) for w in result.windows] == [
        ("2024-01-01T00:00:00.000Z", "2024-01-01T04:00:00.000Z", "2024-01-01T06:00:00.000Z"),
        ("2024-01-01T02:00:00.000Z", "2024-01-01T06:00:00.000Z", "2024-01-01T08:00:00.000Z"),
        ("2024-01-01T04:00:00.000Z", "2024-01-01T08:00:00.000Z", "2024-01-01T10:00:00.000Z")]
    assert [w.status for w in result.windows] == ["completed"] * 3
    assert said[0] == (f"walk-forward {result.wf_id}: 3 rolling windows, train 4h, test 2h, "
                       "4 points each, chosen by the highest sharpe")
    assert [line.split(":")[0] for line in said if line.startswith("window")] == [
        "window 1/3", "window 2/3", "window 3/3"]
    first = result.windows[0]
    plain = {}  # every grid point backtested by hand on the first train window
    for fast in (3, 5):
        for slow in (15, 20):
            run = run_backtest(CONFIG, overrides=[f"strategy.params.fast={fast}",
                                                  f"strategy.params.slow={slow}"],
                               start=first.train_start, end=first.train_end, env={},
                               warehouse=warehouse, out=tmp_path / f"train-{fast}-{slow}",
                               progress=False)
            plain[(fast, slow)] = run.metrics["sharpe"]
    best = max(plain.values())
    winner = next(k for k, v in plain.items() if v == best)  # grid order breaks ties
    assert first.params == {"strategy.params.fast": winner[0],
                            "strategy.params.slow": winner[1]}
    assert first.in_sample == best
    for w in result.windows:  # each test run: the chosen params' plain backtest, byte for byte
        assert w.params is not None and w.test_run_id is not None
        mine = tmp_path / "runs" / w.test_run_id
        theirs = run_backtest(CONFIG, overrides=[f"{k}={v}" for k, v in w.params.items()],
                              start=w.test_start, end=w.test_end, env={}, warehouse=warehouse,
                              out=tmp_path / f"plain-{w.window_seq}", progress=False)
        assert (mine / "trades.csv").read_bytes() == (theirs.run_dir / "trades.csv").read_bytes()
        assert (mine / "equity.csv").read_bytes() == (theirs.run_dir / "equity.csv").read_bytes()
        assert w.out_of_sample == theirs.metrics["sharpe"]
    got = _rows(warehouse, "select window_seq, status, params, in_sample, out_of_sample, gap, "
                           "test_run_id from rpt.walkforward where wf_id = ? "
                           "order by window_seq", [result.wf_id])
    assert got == [(w.window_seq, "completed", json.dumps(w.params), w.in_sample,
                    w.out_of_sample, w.gap, w.test_run_id) for w in result.windows]
    assert _rows(warehouse, "select count(*) from experiments e join walkforward_windows w "
                            "using (sweep_id) where w.wf_id = ?", [result.wf_id]) == [(12,)]
    report = load_walkforward(warehouse=warehouse)  # the newest analysis
    assert report.wf_id == result.wf_id
    assert report.curve["equity"][-1] == pytest.approx(
        10_000 * (1 + result.oos_return_pct / 100), rel=1e-9)
    assert report.curve["ts"][0] == T0 + 4 * HOUR  # the first test window's first bar
    fig, table = walkforward_figure(report), walkforward_table(report)
    assert len(fig.layout.shapes) == 3  # each test window shaded
    assert [row[4] for row in table.rows] == [
        ",".join(f"{k.split('.')[-1]}={v}" for k, v in (w.params or {}).items())
        for w in result.windows]


def test_walkforward_no_point_with_the_metric_records_no_choice_and_no_test_run(
        load_bars: Callable[[int], Path], tmp_path: Path):
    warehouse = load_bars(600)

    result = walkforward(CONFIG, {"strategy.params.explode": [True]}, train="6h", test="4h",
                         anchored=True, strategy="sweep_strategies:FragileSma",
                         warehouse=warehouse, processes=False, workers=1, env={},
                         progress=False, runs_dir=tmp_path / "runs", announce=lambda s: None)

    (window,) = result.windows
    assert (window.status, window.params, window.test_run_id) == ("no_choice", None, None)
    assert "1 failed, 0 completed" in (window.error or "")
    assert result.oos_return_pct == 0.0
    assert _rows(warehouse, "select status, point_seq, stitched_return_pct, "
                            "error like 'no point of sweep %' from rpt.walkforward") == [
        ("no_choice", None, 0.0, True)]


def test_walkforward_test_run_that_raises_fails_its_window_as_strategy_error(
        load_bars: Callable[[int], Path], tmp_path: Path):
    warehouse = load_bars(600)

    result = walkforward(CONFIG, {"strategy.params.fast": [3, 5]}, train="6h", test="4h",
                         overrides=[f"strategy.params.explode_from_ms={T0 + 7 * HOUR}"],
                         strategy="sweep_strategies:FragileSma", warehouse=warehouse,
                         processes=False, workers=1, env={}, progress=False,
                         runs_dir=tmp_path / "runs", announce=lambda s: None)

    (window,) = result.windows  # trained on hours 0-6 unharmed, tested on 6-10: raises at 7
    assert (window.status, window.error_kind, window.test_run_id) == (
        "failed", "strategy_error", None)
    assert window.params is not None and window.in_sample is not None
    assert "boom: explode was set" in (window.error or "")
    assert _rows(warehouse, "select status, error_kind, out_of_sample, stitched_return_pct "
                            "from rpt.walkforward") == [("failed", "strategy_error", None, 0.0)]


def test_walkforward_secret_grid_key_masked_in_windows_table_and_announcements(
        load_bars: Callable[[int], Path], tmp_path: Path):
    warehouse = load_bars(600)
    said: list[str] = []

    result = walkforward(CONFIG, {"venue.api_key": ["sk-grid-aaaa1111", "sk-grid-bbbb2222"]},
                         train="6h", test="4h", warehouse=warehouse, processes=False,
                         workers=1, env={}, progress=False, runs_dir=tmp_path / "runs",
                         announce=said.append)

    (window,) = result.windows
    assert window.status == "completed" and window.params == {"venue.api_key": "***"}
    shown = "\n".join([*said, result.table(), json.dumps(result.to_dict(), default=str)])
    stored = _rows(warehouse, "select params::varchar from walkforward_windows "
                              "union all select params::varchar from experiments")
    assert "sk-grid" not in shown and "sk-grid" not in repr(stored)


def test_walkforward_config_file_edited_mid_analysis_does_not_reach_later_windows(
        load_bars: Callable[[int], Path], tmp_path: Path):
    warehouse = load_bars(600)
    path = tmp_path / "wf.yaml"
    path.write_text(json.dumps(CONFIG), encoding="utf-8")  # JSON is YAML

    def edit(window: WindowResult) -> None:
        path.write_text(json.dumps({**CONFIG, "costs": {"fee_bps": 99}}), encoding="utf-8")

    result = walkforward(path, {"strategy.params.fast": [3, 5]}, train="4h", test="2h",
                         warehouse=warehouse, processes=False, workers=1, env={},
                         progress=False, runs_dir=tmp_path / "runs", announce=lambda s: None,
                         on_window=edit)

    assert len(result.windows) == 3
    fees = _rows(warehouse, "select distinct r.config_json->>'$.costs.fee_bps' from runs r "
                            "where r.name like 'wf/w%'")
    assert fees == [("10.0",)]


def test_check_qc_fix_names_data_gaps_for_commands_without_a_gaps_flag():
    from workbench.config import load_config
    from workbench.engine.run import check_qc
    from workbench.errors import DataError
    from workbench.feeds.qc import Finding

    cfg = load_config(None, (), base=CONFIG, env={})
    with pytest.raises(DataError) as caught:  # walkforward and sweep have --set, no --gaps
        check_qc(cfg, [Finding("gap", "error", "BTCUSDT", "2 missing bars")])
    assert "--set data.gaps=forward" in caught.value.render()


def test_walkforward_interrupted_keeps_the_windows_already_written(
        load_bars: Callable[[int], Path], tmp_path: Path):
    warehouse = load_bars(600)
    seen: list[WindowResult] = []

    def stop(window: WindowResult) -> None:
        seen.append(window)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        walkforward(CONFIG, {"strategy.params.fast": [3, 5]}, train="4h", test="2h",
                    warehouse=warehouse, processes=False, workers=1, env={}, progress=False,
                    runs_dir=tmp_path / "runs", announce=lambda s: None, on_window=stop)

    assert [w.window_seq for w in seen] == [1]
    assert _rows(warehouse, "select window_seq, status, test_run_id from walkforward_windows"
                 ) == [(1, "completed", seen[0].test_run_id)]


def test_walkforward_cli_anchored_table_json_and_refusals(cli: Callable[..., CliResult],
                                                          load_bars: Callable[[int], Path],
                                                          tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch):
    warehouse = load_bars(600)
    monkeypatch.setenv("WB_RUNS_DIR", str(tmp_path / "runs"))
    config = tmp_path / "wf.yaml"
    config.write_text(json.dumps(CONFIG), encoding="utf-8")
    args = ["walkforward", "--config", str(config), "--grid", "strategy.params.fast=3,5"]

    text = cli(*args, "--train", "5h", "--test", "150m", "--anchored", "--workers", "1",
               "--metric", "total_return_pct", "--json")
    bad_metric = cli(*args, "--train", "5h", "--test", "2h", "--metric", "sharp")
    too_long = cli(*args, "--train", "30d", "--test", "7d")
    bad_duration = cli(*args, "--train", "30 days", "--test", "7d")

    assert text.code == 0, text.err
    doc = json.loads(text.out)
    assert doc["anchored"] is True and doc["metric"] == "total_return_pct"
    assert [(w["train_start"], w["test_end"]) for w in doc["windows"]] == [
        ("2024-01-01T00:00:00.000Z", "2024-01-01T07:30:00.000Z"),
        ("2024-01-01T00:00:00.000Z", "2024-01-01T10:00:00.000Z")]
    assert "window 2/2: train 2024-01-01T00:00..2024-01-01T07:30" in text.err
    assert _rows(warehouse, "select count(*), bool_and(anchored), min(metric) "
                            "from walkforward_windows") == [(2, True, "total_return_pct")]
    assert bad_metric.code == 2 and "--metric: 'sharp' is not a column" in bad_metric.err
    assert "total_return_pct, cagr_pct" in bad_metric.err
    assert too_long.code == 2 and "600 bars" in too_long.err
    assert bad_duration.code == 2 and "--train '30 days' is not a duration" in bad_duration.err


@pytest.mark.parametrize("first", ["workbench.walkforward", "import workbench.walkforward",
                                   "from workbench.walkforward import WalkForwardResult"])
def test_walkforward_package_attribute_after_the_submodule_loads_is_the_function(
        first: str) -> None:
    # `workbench.walkforward` is the function, however its module came to be loaded: the
    # import system sets the package's attribute to the submodule when it loads it
    import subprocess
    import sys

    code = (f"import workbench\n{first}\nfrom workbench import walkforward\n"
            "import workbench.walkforward\n"
            "print(callable(walkforward), callable(workbench.walkforward), "
            "'walkforward' in dir(workbench), 'sweep' in dir(workbench))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["True", "True", "True", "True"]
