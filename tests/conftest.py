"""Shared fixtures. Tests use only files inside the repository (sample_data/, tests/)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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


@dataclass
class CliResult:
    code: int
    out: str
    err: str


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


def run_subprocess(*args: str, cwd: Path, env: dict[str, str] | None = None,
                   timeout: float = 300) -> CliResult:
    """Run ``python -m workbench ARGS`` as a separate process, as a user would."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "workbench", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def rw_con(warehouse: Path) -> Iterator[Any]:
    """A read-write connection to the test's (file) warehouse, views deployed."""
    from workbench.warehouse import views

    con = open_rw(warehouse)
    views.deploy(con)
    yield con
    con.close()
