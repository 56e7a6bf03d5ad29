"""``workbench rerun`` and ``workbench runs compare`` as a user runs them: separate processes,
their exit codes, stdout and stderr."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_process import CliResult, run_subprocess
from small_config import sma_config

pytestmark = pytest.mark.e2e


def wb(warehouse: Path, *args: str, cwd: Path) -> CliResult:
    return run_subprocess("--warehouse", str(warehouse), *args, cwd=cwd)


def test_rerun_in_a_process_exits_0_when_identical_then_1_on_a_tampered_file(
        tmp_path: Path, ingested: Path) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text(sma_config("e2e-rerun", seed=3), encoding="utf-8")
    done = wb(ingested, "backtest", "--config", str(config), "--tag", "exp=e2e", cwd=tmp_path)
    assert done.code == 0, done.err
    run_id, run_dir = done.out.splitlines()[-1].removeprefix("run_id=").split(" dir=")

    same = wb(ingested, "rerun", run_id, cwd=tmp_path)
    assert same.code == 0, same.err
    assert same.err == ""
    assert same.out.startswith("identical: rerun ")

    equity = tmp_path / run_dir / "equity.csv"
    equity.write_bytes(equity.read_bytes().replace(b"\n", b"\r\n", 1))  # the header's ending
    changed = wb(ingested, "rerun", run_id, cwd=tmp_path)
    assert changed.code == 1
    assert "Traceback" not in changed.err
    assert "equity.csv line 1:\n  original: ts,cash,position_value,equity\\r\n" in changed.out

    compared = wb(ingested, "runs", "compare", "--tag", "exp=e2e", cwd=tmp_path)
    assert compared.code == 0, compared.err
    assert "cohort exp=e2e" in compared.out
