"""A backtest does not hold the warehouse while it computes (adr/0008).

A backtest is caught in the middle of its loop (the Gate strategy pauses there); meanwhile
`workbench sql`, `runs list`, a notebook-style read, a report and a second backtest all use the
same warehouse and finish; then the first backtest is released and commits too. No timing
asserts: the paused run holds whatever it holds for as long as the test likes, so any lock it
kept would make the other commands fail (they give up after their retries).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from paused_run import cli, gate_config, ingested, release, start_paused

from workbench.warehouse.connect import reading

pytestmark = pytest.mark.e2e

@pytest.fixture
def loaded(tmp_path: Path, synth_csv: Any) -> Path:
    return ingested(tmp_path, synth_csv(count=3000))


def statuses(warehouse: Path) -> dict[str, str]:
    with reading(warehouse) as con:
        return dict(con.execute("select name, status from runs").fetchall())


def test_backtest_mid_loop_readers_and_a_second_backtest_finish_and_both_commit(
        tmp_path: Path, loaded: Path) -> None:
    first, gate, first_out = start_paused(tmp_path, loaded, "first")
    try:
        sql = cli(tmp_path, loaded, "sql", "select count(*) as n from bars")
        assert sql.code == 0, sql.err
        assert "3000" in sql.out
        listed = cli(tmp_path, loaded, "runs", "list")
        assert listed.code == 0, listed.err
        with reading(loaded, wait_s=5) as con:  # what the notebooks do
            assert con.execute("select count(*) from bars").fetchall() == [(3000,)]
        second = cli(tmp_path, loaded, "backtest", "--config", str(gate_config(
            tmp_path, tmp_path, "second")), "--set", "strategy.params.gate_dir=",
            "--out", str(tmp_path / "run-second"))
        assert second.code == 0, second.err
        second_id = second.out.strip().splitlines()[-1].split()[0].split("=")[1]
        report = cli(tmp_path, loaded, "report", second_id, "--out",
                     str(tmp_path / "report.html"))
        assert report.code == 0, report.err
        assert statuses(loaded) == {"second": "completed"}  # the first wrote nothing yet
    finally:
        code, _out, err = release(first, gate)
    assert code == 0, err
    assert statuses(loaded) == {"first": "completed", "second": "completed"}
    manifest = json.loads((first_out / "run_manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["warehouse_hold_s"] < manifest["timings_s"]["loop"] + 60  # recorded
    assert set(manifest["timings_s"]) >= {"loop", "metrics", "write_warehouse"}
