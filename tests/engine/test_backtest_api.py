"""``workbench.run_backtest`` from a notebook: a config dict, a Strategy subclass (defined in the
notebook, i.e. in ``__main__``, or anywhere), the run's summary and ``.plot()``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from every_n import EveryN

import workbench
from workbench import Strategy
from workbench.config import load_config
from workbench.errors import ConfigError

DATA = {"data": {"symbols": ["BTCUSDT"], "timeframe": "1m"}}


def _as_notebook_class() -> type[Strategy]:
    """EveryN as a class defined in a notebook cell: module ``__main__``, not importable there."""
    return type("NotebookEveryN", (EveryN,), {"__module__": "__main__",
                                              "__qualname__": "NotebookEveryN"})


@pytest.fixture
def bars(load_bars: Callable[[int], Path]) -> Path:
    return load_bars(600)


def test_run_backtest_notebook_class_runs_and_config_records_identity(bars, tmp_path):
    cls = _as_notebook_class()
    assert not hasattr(sys.modules["__main__"], "NotebookEveryN")
    config = {**DATA, "strategy": {"params": {"n": 60}}}
    result = workbench.run_backtest(config, strategy=cls, warehouse=bars, out=tmp_path / "r",
                                    env={})
    manifest = result.manifest
    assert manifest["config"]["strategy"]["class"] == "__main__:NotebookEveryN"
    expected = load_config(None, env={}, base={
        **DATA, "strategy": {"class": "__main__:NotebookEveryN", "params": {"n": 60}}})
    assert manifest["config_hash"] == expected.hash()
    assert result.summary["orders"]["total"] == 10
    assert result.metrics["trades"] == 5


def test_run_backtest_class_object_as_strategy_class_in_dict_runs_it(bars, tmp_path):
    config = {**DATA, "strategy": {"class": EveryN, "params": {"n": 100}}}
    result = workbench.run_backtest(config, warehouse=bars, out=tmp_path / "r", env={})
    assert result.manifest["config"]["strategy"]["class"] == (
        f"{EveryN.__module__}:EveryN")
    assert result.summary["orders"]["total"] == 6
    assert config["strategy"]["class"] is EveryN  # the caller's dict is left alone


def test_run_backtest_class_defined_in_a_function_runs(bars, tmp_path):
    class Local(EveryN):
        n: int = 300

    result = workbench.run_backtest(DATA, strategy=Local, warehouse=bars, out=tmp_path / "r",
                                    env={})
    assert result.manifest["config"]["strategy"]["class"].endswith(
        ":test_run_backtest_class_defined_in_a_function_runs.<locals>.Local")
    assert result.summary["orders"]["total"] == 2


def test_run_backtest_strategy_string_and_strategy_path_import_user_module(bars, tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "wbnew_api_mod.py").write_text(
        "from workbench import Strategy\n\nclass Idle(Strategy):\n    pass\n", encoding="utf-8")
    result = workbench.run_backtest(DATA, strategy="wbnew_api_mod:Idle", strategy_path=mods,
                                    warehouse=bars, out=tmp_path / "r", env={})
    strategy = result.manifest["config"]["strategy"]
    assert strategy["class"] == "wbnew_api_mod:Idle"
    assert strategy["path"] == [str(mods)]
    assert result.summary["orders"]["total"] == 0
    assert result.warnings == ["no orders: Idle placed none in 600 bars; check its parameters "
                               "(strategy.params) and the date range"]


def test_run_backtest_not_a_strategy_class_config_error(bars, tmp_path):
    with pytest.raises(ConfigError, match="not a workbench Strategy subclass"):
        workbench.run_backtest(DATA, strategy=dict, warehouse=bars, out=tmp_path / "r",
                               env={})


def test_run_backtest_warmup_longer_than_bars_warns_on_result(bars, tmp_path):
    result = workbench.run_backtest(
        {**DATA, "strategy": {"params": {"fast": 10, "slow": 700}}},
        warehouse=bars, out=tmp_path / "r", env={})
    assert result.metrics["trades"] == 0
    [warning] = result.warnings
    assert "SmaCross needs more than 700 bars to warm up" in warning
    assert result.summary["warmup_bars"] == 700
    assert result.summary["bars_per_symbol"] == {"BTCUSDT": 600}


def test_run_backtest_result_plot_is_equity_drawdown_trades_figure(bars, tmp_path):
    result = workbench.run_backtest(DATA, strategy=EveryN, warehouse=bars, out=tmp_path / "r",
                                    env={})
    fig = result.plot()
    names = [t.name for t in fig.data]
    assert names[:3] == ["equity", "drawdown %", "BTCUSDT"]
    assert {"buy", "sell", "round trips"} <= set(names)
    assert [t.type for t in fig.data][:3] == ["scatter", "scatter", "candlestick"]
    assert fig.data[0].yaxis == "y" and fig.data[1].yaxis == "y2" and fig.data[2].yaxis == "y3"
    assert result.run_id in fig.layout.title.text
    same = workbench.plot(result.run_id, warehouse=bars)
    assert [t.name for t in same.data] == names


def test_plot_resampled_run_draws_candles_from_finer_stored_bars(bars, tmp_path):
    result = workbench.run_backtest(
        {"data": {"timeframe": "15m"}, "strategy": {"params": {"fast": 2, "slow": 5}}},
        warehouse=bars, out=tmp_path / "r", env={})
    assert result.manifest["resampled_from"] == {"BTCUSDT": "1m"}
    fig = workbench.plot(warehouse=bars)  # the latest completed run
    [candles] = [t for t in fig.data if t.type == "candlestick"]
    assert len(candles.x) == 40
    assert candles.x[1].isoformat() == "2024-01-01T00:15:00+00:00"


def test_run_result_repr_shows_headline_and_warnings(bars, tmp_path):
    result = workbench.run_backtest(
        {**DATA, "strategy": {"params": {"fast": 10, "slow": 700}}},
        warehouse=bars, out=tmp_path / "r", env={})
    lines = repr(result).splitlines()
    assert lines[0].startswith(f"RunResult {result.run_id} (")
    assert "trades 0, total return" in lines[0]
    assert lines[1].startswith("  warning: BTCUSDT: no orders: SmaCross needs more than 700")


def test_run_backtest_resampled_15m_runs_byte_identical_csvs(bars, tmp_path):
    config = {"data": {"timeframe": "15m"}, "strategy": {"params": {"fast": 2, "slow": 5}}}
    for name in ("a", "b"):
        workbench.run_backtest(config, warehouse=bars, out=tmp_path / name, env={})
    for name in ("trades.csv", "orders.csv", "fills.csv", "equity.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert len((tmp_path / "a" / "fills.csv").read_text().splitlines()) > 1


def test_report_of_resampled_run_names_the_stored_timeframe(bars, tmp_path):
    import workbench.report as wr

    result = workbench.run_backtest(
        {"data": {"timeframe": "15m"}, "strategy": {"params": {"fast": 2, "slow": 5}}},
        warehouse=bars, out=tmp_path / "r", env={})
    report = wr.load_run(result.run_id, warehouse=bars)
    assert report.resampled_from == {"BTCUSDT": "1m"}
    rows = dict((k, v) for k, v in wr.manifest_table(report).rows)
    assert rows["symbols / timeframe"] == (
        "BTCUSDT / 15m (BTCUSDT resampled from stored 1m bars)")


def test_run_backtest_strategy_argument_wins_over_class_in_config(bars, tmp_path):
    class Never(Strategy):
        pass

    config = {**DATA, "strategy": {"class": Never, "params": {}}}
    result = workbench.run_backtest(config, strategy=EveryN, warehouse=bars,
                                    out=tmp_path / "a", env={})
    assert result.manifest["config"]["strategy"]["class"].endswith(":EveryN")
    assert result.summary["orders"]["total"] == 12
    named = workbench.run_backtest(config, strategy=f"{EveryN.__module__}:EveryN",
                                   warehouse=bars, out=tmp_path / "b", env={})
    assert named.summary["orders"]["total"] == 12
