"""Regressions found in review: each test pins one fixed defect."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from workbench import manifest as mf
from workbench.config import load_config
from workbench.engine.run import run_backtest
from workbench.errors import EngineFault, StrategyError, WarehouseError, WorkbenchError
from workbench.model import Bar, OrderIntent, Side
from workbench.strategy import Strategy
from workbench.warehouse import results
from workbench.warehouse.connect import open_ro, open_rw

SMALL = {"strategy": {"params": {"fast": 5, "slow": 20, "qty": 0.01}}}
CONFIG_SMA = Path(__file__).resolve().parents[2] / "configs" / "sma_demo.yaml"


@pytest.fixture
def loaded(load_bars: Callable[[int], Path]) -> Path:
    return load_bars(1_500)


def rows(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = open_ro(db)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


FLATTEN_AT_STOP = """
from workbench import OrderIntent, Side, Strategy


class FlattenAtStop(Strategy):
    \"\"\"Buys on the 10th bar and sells everything in on_stop.\"\"\"

    def on_start(self, ctx):
        self.seen = 0

    def on_bar(self, ctx, bar):
        self.seen += 1
        return [OrderIntent(bar.symbol, Side.BUY, 0.05)] if self.seen == 10 else None

    def on_stop(self, ctx):
        held = ctx.position("BTCUSDT")
        if held > 0:
            ctx.submit(OrderIntent("BTCUSDT", Side.SELL, held))
"""


def test_run_orders_placed_in_on_stop_are_in_equity_csv_and_agree_with_views(
        loaded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "flatten_strategy.py").write_text(FLATTEN_AT_STOP)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = run_backtest({"strategy": {"class": "flatten_strategy:FlattenAtStop"}},
                          warehouse=loaded, out=tmp_path / "run", env={})
    with (tmp_path / "run" / "equity.csv").open() as fh:
        last = list(csv.DictReader(fh))[-1]
    assert float(last["position_value"]) == 0.0  # the on_stop sell is in the marks
    (eq,) = rows(loaded, "select equity from acct.equity_curve where run_id = ? "
                         "order by ts desc limit 1", [result.run_id])[0:1]
    assert abs(eq[0] - float(last["equity"])) <= 1e-9 * abs(eq[0])
    assert rows(loaded, "select count(*) from fills where run_id = ?", [result.run_id]) == [(2,)]


def test_run_failure_with_the_transaction_open_rolls_back_and_records_failed(
        loaded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("risk tables could not be built")

    monkeypatch.setattr(results, "risk_metrics", broken)
    with pytest.raises(RuntimeError):
        run_backtest(SMALL, warehouse=loaded, out=tmp_path / "run", env={})
    (status, error), = rows(loaded, "select status, error from runs")
    assert status == "failed" and "risk tables could not be built" in error
    for table in ("orders", "fills", "run_bars", "order_events", "metrics"):
        assert rows(loaded, f"select count(*) from {table}") == [(0,)], table


def test_run_error_after_commit_keeps_the_run_completed_with_its_rows_and_files(
        loaded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = mf.write

    def full_disk(path: Path, manifest: dict[str, Any]) -> None:
        if manifest.get("status") == "completed":
            raise OSError(28, "No space left on device")
        real(path, manifest)

    monkeypatch.setattr(mf, "write", full_disk)
    with pytest.raises(WarehouseError, match="completed") as raised:
        run_backtest(SMALL, warehouse=loaded, out=tmp_path / "run", env={})
    assert "No space left" in raised.value.what
    assert rows(loaded, "select status from runs") == [("completed",)]
    assert rows(loaded, "select count(*) > 0 from fills") == [(True,)]
    assert (tmp_path / "run" / "equity.csv").is_file()


def test_run_warehouse_busy_at_the_end_fails_the_run_without_result_files(
        loaded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.warehouse import connect

    def busy(path: Any, **kw: Any) -> Any:  # what open_rw says after its retries
        raise WarehouseError("the warehouse is held by process 4242 (python)", where=str(path))

    monkeypatch.setattr(connect, "open_rw", busy)
    with pytest.raises(WarehouseError, match="held by process 4242"):
        run_backtest(SMALL, warehouse=loaded, out=tmp_path / "run", env={})
    manifest = json.loads((tmp_path / "run" / "run_manifest.json").read_text())
    assert manifest["status"] == "failed" and "held by process 4242" in manifest["error"]
    assert not list((tmp_path / "run").glob("*.csv"))
    assert rows(loaded, "select count(*) from runs") == [(0,)]


def test_run_failing_view_deploy_still_records_a_failed_runs_row(
        loaded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.warehouse import views

    def broken(con: Any, found: Any = None) -> Any:
        raise WorkbenchError("views could not be deployed")

    monkeypatch.setattr(views, "deploy", broken)
    with pytest.raises(WorkbenchError):
        run_backtest(SMALL, warehouse=loaded, out=tmp_path / "run", env={})
    assert rows(loaded, "select status from runs") == [("failed",)]


def test_config_env_position_limit_keys_keep_symbol_case() -> None:
    cfg = load_config(None, env={"WB_RISK__POSITION_LIMITS__BTCUSDT__MAX_QTY": "0.01",
                                 "WB_STRATEGY__PARAMS__FAST": "7"})
    assert cfg.risk.position_limits is not None
    assert cfg.risk.position_limits["BTCUSDT"].max_qty == 0.01
    assert cfg.strategy.params == {"fast": 7}


def test_config_position_limit_for_an_untraded_symbol_fails_with_did_you_mean() -> None:
    from workbench.errors import ConfigError

    with pytest.raises(ConfigError, match="BTCUSD limits a symbol") as raised:
        load_config(None, ["risk.position_limits.BTCUSD.max_qty=1"], env={})
    assert "did you mean BTCUSDT" in (raised.value.fix or "")


@pytest.mark.parametrize("text", ["2024-01-10T00:00:00+05:00", "2024-01-09T19:00:00Z"])
def test_config_start_keeps_its_utc_offset_through_layers(text: str) -> None:
    cfg = load_config(None, [f'data.start="{text}"'], env={})
    assert cfg.data.start == datetime(2024, 1, 9, 19, tzinfo=UTC)
    again = load_config(None, ["run.name=x"], base=cfg.to_dict(), env={})
    assert again.data.start == cfg.data.start


def test_cli_runs_list_before_any_backtest_lists_without_metrics(cli: Any, loaded: Path) -> None:
    result = cli("runs", "list")
    assert result.code == 0, result.err
    assert "(0 rows)" in result.out


def test_cli_ingest_bad_timeframe_and_lowercase_symbol_are_usage_errors(
        cli: Any, synth_csv: Any) -> None:
    path = str(synth_csv(count=50))
    bad_tf = cli("ingest", path, "--symbol", "BTCUSDT", "--timeframe", "1x")
    assert bad_tf.code == 2 and "timeframe '1x'" in bad_tf.err
    lower = cli("ingest", path, "--symbol", "btcusdt")
    assert lower.code == 2 and "upper-case" in lower.err


def test_step_engine_defect_during_submit_is_an_engine_fault_not_a_strategy_error() -> None:
    from step_harness import make_step

    from workbench.brokers.fills import CostModel
    from workbench.brokers.sim import SimBroker

    class Buy(Strategy):
        def on_bar(self, ctx: Any, bar: Bar) -> list[OrderIntent]:
            return [OrderIntent(bar.symbol, Side.BUY, 1.0)]

    broker = SimBroker(CostModel())

    def defect(order: Any) -> None:
        raise KeyError("inside the broker")

    broker.submit = defect  # type: ignore[method-assign]
    step = make_step(Buy(), cash=100.0, broker=broker)
    step.start(0)
    with pytest.raises(EngineFault, match="KeyError in the engine") as raised:
        step.on_bar(Bar("X", 0, 1.0, 1.0, 1.0, 1.0, 1.0))
    assert not isinstance(raised.value, StrategyError)


@pytest.mark.parametrize("tag", [
    "<script src='https://cdn.example/x.js'></script>",
    '<script src="//cdn.example/x.js"></script>',
    '<LINK rel="stylesheet" HREF="http://cdn.example/x.css">',
])
def test_export_html_refuses_any_remote_script_or_stylesheet(tag: str) -> None:
    from workbench.report.notebooks import _REMOTE

    assert _REMOTE.search(f"<html><head>{tag}</head></html>")
    assert not _REMOTE.search('<script src="data:text/javascript,1"></script>')


def test_run_terminated_just_after_its_commit_stays_completed_with_its_directory(
        loaded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM landing after the final transaction committed (while the connection closes,
    say): the run is complete in the warehouse, so its directory is completed too (manifest
    and CSVs), no second (failed) row is attempted, and the signal still ends the process."""
    from workbench.errors import Terminated

    real = results.write_run

    def then_sigterm(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise Terminated("SIGTERM")

    monkeypatch.setattr(results, "write_run", then_sigterm)
    with pytest.raises(Terminated):
        run_backtest(SMALL, warehouse=loaded, out=tmp_path / "run", env={})
    assert rows(loaded, "select status from runs") == [("completed",)]
    manifest = json.loads((tmp_path / "run" / "run_manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["warehouse_written"] is True
    assert all((tmp_path / "run" / name).is_file()
               for name in ("trades.csv", "orders.csv", "fills.csv", "equity.csv"))
    log = (tmp_path / "run" / "logs.jsonl").read_text()
    assert "could not record the failure" not in log
    assert "completed (committed), then terminated by SIGTERM" in log
    assert not (tmp_path / "run.partial").exists()


def test_signals_held_delays_sigterm_until_the_commit_block_ends() -> None:
    """With DuckDB's threads running (a signal mask on the main thread would let one of them
    take the signal), SIGTERM inside the block is noted only, and raised when it ends."""
    import os
    import signal

    from workbench import errors
    from workbench.cli import _terminate_on_sigterm

    con = open_rw_memory()  # starts DuckDB's thread pool
    previous = _terminate_on_sigterm()
    try:
        with pytest.raises(errors.Terminated), errors.signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            con.execute("select sum(range) from range(3000000)").fetchall()
            for _ in range(1000):  # room for a handler to raise, were the signal not held
                pass
            assert errors.signal_received() == "SIGTERM"
            held_through = True
        assert held_through
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
        errors.clear_signals()
        con.close()


def open_rw_memory() -> Any:
    import duckdb

    return duckdb.connect(":memory:")


# --- signals that DuckDB or a finaliser swallowed -------------------------------------------------
@pytest.fixture
def signals() -> Any:
    from workbench import errors

    errors.clear_signals()
    yield errors
    errors.clear_signals()


def test_as_interruption_names_what_a_swallowed_signal_became(signals: Any) -> None:
    from workbench.errors import Terminated, as_interruption

    assert isinstance(as_interruption(RuntimeError("Query interrupted")), KeyboardInterrupt)
    plain = ValueError("bad value")
    assert as_interruption(plain) is plain
    signals.note_signal("SIGTERM")
    stop = as_interruption(RuntimeError("Query interrupted"))
    assert isinstance(stop, Terminated) and stop.signal_name == "SIGTERM"


def test_cli_sigterm_taken_inside_duckdb_fails_the_run_named_exit_143_not_internal(
        cli: Any, loaded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        signals: Any) -> None:
    """DuckDB runs the signal handler inside a query and reports "Query interrupted" (a
    RuntimeError): it was exit 70, the run failed as "RuntimeError: Query interrupted"."""
    from workbench.engine import run as run_module

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        signals.note_signal("SIGTERM")  # what the command line's handler does first
        raise RuntimeError("Query interrupted")

    monkeypatch.setattr(run_module, "headline_in_memory", interrupted)
    out = tmp_path / "run"
    result = cli("backtest", "--config", str(CONFIG_SMA), "--set", "strategy.params.fast=5",
                 "--set", "strategy.params.slow=20", "--out", str(out))
    assert result.code == 143, result.err
    assert "terminated by SIGTERM" in result.err and "internal error" not in result.err
    assert rows(loaded, "select status, error from runs") == [("failed", "terminated by SIGTERM")]
    manifest = json.loads((out / "run_manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["error"] == "terminated by SIGTERM"


def test_cli_sigterm_whose_exception_was_lost_still_ends_the_run_at_the_next_stage(
        cli: Any, loaded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        signals: Any) -> None:
    """The handler's exception raised inside a weakref callback is printed and dropped by
    Python ("Exception ignored in ..."): the run went on and exited 0."""
    from workbench.engine import backtest as loop

    real = loop.simulate

    def swallowed(*args: Any, **kwargs: Any) -> Any:
        signals.note_signal("SIGTERM")  # noted; its exception went nowhere
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "simulate", swallowed)  # the kernel wires it at build
    result = cli("backtest", "--config", str(CONFIG_SMA), "--set", "strategy.params.fast=5",
                 "--set", "strategy.params.slow=20", "--out", str(tmp_path / "run"))
    assert result.code == 143, result.err
    assert rows(loaded, "select status, error from runs") == [("failed", "terminated by SIGTERM")]


def test_run_commit_that_went_through_but_raised_keeps_the_run_completed(
        loaded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signals: Any) -> None:
    """A signal taken inside DuckDB surfaced from a commit that had gone through: the run was
    completed in the warehouse, then a second (failed) row was tried: duplicate key."""
    from workbench.warehouse import connect

    real_open = connect.open_rw

    class CommitThenInterrupted:
        def __init__(self, con: Any) -> None:
            self._con = con
            self._run_inserted = False

        def execute(self, sql: str, *args: Any) -> Any:
            result = self._con.execute(sql, *args)
            self._run_inserted |= sql.startswith("insert into runs")
            if sql == "commit" and self._run_inserted:  # the run's own transaction
                raise RuntimeError("Query interrupted")
            return result

        def __getattr__(self, name: str) -> Any:
            return getattr(self._con, name)

    def open_rw(*args: Any, **kwargs: Any) -> Any:
        return CommitThenInterrupted(real_open(*args, **kwargs))

    monkeypatch.setattr(connect, "open_rw", open_rw)
    with pytest.raises(KeyboardInterrupt):
        run_backtest(SMALL, warehouse=loaded, out=tmp_path / "run", env={})
    assert rows(loaded, "select status from runs") == [("completed",)]
    manifest = json.loads((tmp_path / "run" / "run_manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert (tmp_path / "run" / "fills.csv").is_file()
    assert "Duplicate key" not in (tmp_path / "run" / "logs.jsonl").read_text()


def test_run_on_a_warehouse_of_a_newer_version_fails_at_the_read_not_after_the_loop(
        loaded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The final write refused it (unknown migration) after the whole run was computed."""
    from workbench.engine import backtest as loop

    con = open_rw(loaded)
    try:
        con.execute("insert into schema_migrations values (999, 'from_the_future', 'x', now())")
    finally:
        con.close()

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the loop ran")

    monkeypatch.setattr(loop, "simulate", never)
    with pytest.raises(WarehouseError, match="migration 999, which this code does not know"):
        run_backtest(SMALL, warehouse=loaded, out=tmp_path / "run", env={})
    manifest = json.loads((tmp_path / "run" / "run_manifest.json").read_text())
    assert manifest["status"] == "failed" and "migration 999" in manifest["error"]
