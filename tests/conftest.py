"""Shared fixtures. Tests use only files inside the repository (sample_data/, tests/)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_process import CliResult

from workbench.feeds.synthetic import write_csv
from workbench.warehouse.connect import open_memory, open_rw

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"
REAL_JSON = SAMPLE / "UNITTEST_BTC-1m.json"
SYNTH_CSV = SAMPLE / "btcusdt_1m_2024-01_synthetic.csv"
JAN_2024_MS = 1_704_067_200_000


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No WB_* variable from the caller's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("WB_"):
            monkeypatch.delenv(name)


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    """Path of a fresh (not yet created) warehouse file."""
    return tmp_path / "wh" / "test.duckdb"


@pytest.fixture
def memory_con() -> Iterator[Any]:
    """An in-memory warehouse with migrations and views deployed."""
    con = open_memory()
    yield con
    con.close()


@pytest.fixture
def synth_csv(tmp_path: Path) -> Callable[..., Path]:
    """Write ``count`` synthetic 1m bars from ``start_ms`` to a CSV and return its path."""

    def make(count: int = 600, start_ms: int = JAN_2024_MS, seed: int = 7,
             name: str = "bars.csv", price: float = 42_000.0) -> Path:
        path = tmp_path / name
        write_csv(path, start_ms, count, seed=seed, price=price)
        return path

    return make


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], warehouse: Path) -> Callable[..., CliResult]:
    """Run ``workbench ARGS`` in-process against the test's warehouse."""
    from workbench.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        argv = list(args)
        if "--warehouse" not in argv:
            argv = ["--warehouse", str(warehouse), *argv]
        code = main(argv)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def ingested(cli: Callable[..., CliResult], synth_csv: Callable[..., Path], warehouse: Path
             ) -> Path:
    """The test warehouse with 600 BTCUSDT 1m bars from 2024-01-01T00:00Z (ingested by
    ``workbench ingest``, in-process)."""
    result = cli("ingest", str(synth_csv(count=600)), "--symbol", "BTCUSDT")
    assert result.code == 0, result.err
    return warehouse


@pytest.fixture
def load_bars(warehouse: Path, synth_csv: Callable[..., Path]) -> Callable[[int], Path]:
    """``load_bars(count)``: the test warehouse with ``count`` BTCUSDT 1m bars from
    2024-01-01T00:00Z, ingested by ``warehouse.ingest``."""
    from cli_runs import ingested

    def load(count: int) -> Path:
        return ingested(warehouse, [synth_csv(count=count)])

    return load


@pytest.fixture
def rw_con(warehouse: Path) -> Iterator[Any]:
    """A read-write connection to the test's (file) warehouse, views deployed."""
    from workbench.warehouse import views

    con = open_rw(warehouse)
    views.deploy(con)
    yield con
    con.close()
