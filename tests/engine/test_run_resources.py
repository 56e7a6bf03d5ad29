"""A job that runs out of memory says at which stage and what to do, never "internal error";
and the run's own DuckDB can be capped (``run.memory_limit``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from workbench.config import load_config
from workbench.engine import run as run_module
from workbench.engine.run import run_backtest
from workbench.errors import ConfigError, ResourceError
from workbench.warehouse.connect import open_ro

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "sma_demo.yaml"
SMALL = {"strategy": {"params": {"fast": 5, "slow": 20, "qty": 0.01}}}


@pytest.fixture
def loaded(load_bars: Callable[[int], Path]) -> Path:
    return load_bars(600)


@pytest.mark.parametrize("error", [
    duckdb.OutOfMemoryException("could not allocate block of size 256.0 KiB"), MemoryError()])
def test_run_out_of_memory_in_the_headline_names_the_stage_and_a_fix(
        loaded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        error: BaseException) -> None:
    def starved(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(run_module, "headline_in_memory", starved)
    with pytest.raises(ResourceError) as raised:
        run_backtest(SMALL, warehouse=loaded, out=tmp_path / "run", env={})
    text = raised.value.render()
    assert "out of memory while computing the headline numbers" in text
    assert "run.memory_limit" in text
    with open_ro(loaded) as con:
        assert con.execute("select status from runs").fetchall() == [("failed",)]


def test_cli_out_of_memory_exits_1_not_internal_error(
        cli: Any, loaded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def starved(*args: Any, **kwargs: Any) -> Any:
        raise duckdb.OutOfMemoryException("could not allocate")

    monkeypatch.setattr(run_module, "headline_in_memory", starved)
    result = cli("backtest", "--config", str(CONFIG), "--set", "strategy.params.fast=5", "--set",
                 "strategy.params.slow=20", "--out", str(tmp_path / "run"))
    assert result.code == 1, result.err
    assert "out of memory" in result.err and "internal error" not in result.err


def test_run_memory_limit_caps_the_runs_own_database(loaded: Path, tmp_path: Path) -> None:
    result = run_backtest({**SMALL, "run": {"memory_limit": "256MB"}}, warehouse=loaded,
                          out=tmp_path / "run", env={})
    assert result.metrics["bars"] == 600
    assert result.manifest["config"]["run"]["memory_limit"] == "256MB"


@pytest.mark.parametrize("value", ["lots", "2 parsecs", "-1GB"])
def test_config_memory_limit_not_a_size_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match=r"run\.memory_limit"):
        load_config(None, [f"run.memory_limit={value}"], env={})


def test_cli_real_out_of_memory_under_a_tiny_memory_limit_names_the_stage_exit_1(
        cli: Any, loaded: Path, tmp_path: Path) -> None:
    """DuckDB itself, not a mock: under 1MB its failed allocation at commit is a
    TransactionException, and the rollback after it found no transaction, which hid the error
    as an internal one (exit 70)."""
    result = cli("backtest", "--config", str(CONFIG), "--set", "strategy.params.fast=5",
                 "--set", "strategy.params.slow=20", "--set", "run.memory_limit=1MB",
                 "--out", str(tmp_path / "run"))
    assert result.code == 1, result.err
    assert "out of memory while computing the headline numbers" in result.err
    assert "run.memory_limit is 1MB: raise it" in result.err
    assert "internal error" not in result.err
    with open_ro(loaded) as con:
        assert con.execute("select status from runs").fetchall() == [("failed",)]


def test_failed_commit_in_a_migration_reports_its_own_error_not_the_rollback() -> None:
    from workbench.warehouse import migrations

    con = duckdb.connect(":memory:", config={"memory_limit": "1MB"})
    try:
        with pytest.raises(duckdb.Error) as raised:
            migrations.apply(con)
    finally:
        con.close()
    assert "no transaction is active" not in str(raised.value)


def test_run_leaves_no_objects_frozen_from_the_collector(loaded: Path, tmp_path: Path) -> None:
    import gc

    before = gc.get_freeze_count()
    run_backtest(SMALL, warehouse=loaded, out=tmp_path / "run", env={})
    assert gc.get_freeze_count() == before == 0
    assert gc.isenabled()
