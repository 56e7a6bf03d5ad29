"""Reads while another process holds the warehouse file (DESIGN 5.3).

Notebooks and reports read through ``reading``/``open_ro``: open read-only, query, close. DuckDB
lets one process hold a file read-write, and then no other process can open it; the read helper
retries with backoff while the file is busy, then names the process that holds it.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import report_warehouse as wh

from workbench.errors import WarehouseError
from workbench.report import load_run
from workbench.warehouse import connect
from workbench.warehouse.connect import open_ro, reading

pytestmark = pytest.mark.e2e

# Opens the file read-write, says so, holds it for argv[2] seconds, lets go, says so.
HOLDER = """\
import sys, time
import duckdb
con = duckdb.connect(sys.argv[1])
con.execute("select count(*) from runs").fetchall()
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
print("released", flush=True)
"""



@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return wh.build(tmp_path_factory.mktemp("read-while-busy"))


@pytest.fixture
def hold(built: Any) -> Iterator[Callable[[float], subprocess.Popen[str]]]:
    """Start a process that holds the warehouse read-write for ``seconds``; returns once it
    holds the file. Every holder is ended when the test ends."""
    started: list[subprocess.Popen[str]] = []

    def start(seconds: float) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(built.db), str(seconds)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == "holding\n", (line, proc.stderr.read() if proc.stderr else "")
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


class _SpyClock:
    """``time`` for connect.py: the real clock, with each backoff sleep recorded."""

    monotonic = staticmethod(time.monotonic)

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        time.sleep(seconds)


def test_reading_file_held_briefly_waits_and_succeeds_after_holder_lets_go(built, hold,
                                                                         monkeypatch):
    clock = _SpyClock()
    monkeypatch.setattr(connect, "time", clock)
    holder = hold(1.5)

    with reading(built.db, wait_s=10) as con:
        runs = con.execute("select count(*) from runs").fetchall()

    assert runs == [(3,)]
    assert clock.sleeps[:3] == [0.05, 0.1, 0.2]  # it retried, backing off
    assert all(b == min(2 * a, 1.0) for a, b in itertools.pairwise(clock.sleeps))
    out, _ = holder.communicate(timeout=30)
    assert holder.returncode == 0 and out == "released\n"  # it let go; nothing was killed


def test_a_wait_past_a_second_is_said_once_on_stderr_naming_the_holder(built, hold, capsys):
    holder = hold(2.5)  # a backtest's final write waits up to 120 s: silence looks like a hang

    with reading(built.db, wait_s=30):
        pass

    err = capsys.readouterr().err
    assert err.count("waiting for the warehouse") == 1, err
    assert f"process {holder.pid} " in err and "up to 30 s" in err


def test_a_short_wait_says_nothing(built, hold, capsys):
    hold(0.3)

    with reading(built.db, wait_s=30):
        pass

    assert capsys.readouterr().err == ""


def test_load_run_while_file_held_briefly_builds_report_data(built, hold):
    hold(1.5)

    r = load_run(built.multi, warehouse=built.db)

    assert r.run_id == built.multi and r.completed and r.curve["ts"]


def test_reading_file_held_longer_than_wait_raises_warehouse_error_naming_holder_pid(built,
                                                                                    hold):
    holder = hold(60)

    with pytest.raises(WarehouseError) as err, reading(built.db, wait_s=0.5):
        pass  # pragma: no cover - never opened

    message = err.value.render()
    assert f"held by process {holder.pid} " in message
    assert err.value.where == str(built.db)
    assert "wait for that job to finish" in (err.value.fix or "")
    assert holder.poll() is None  # the holder still holds it: the reader gave up


def test_open_ro_missing_file_raises_without_waiting_or_creating_it(tmp_path):
    missing = tmp_path / "none.duckdb"

    with pytest.raises(WarehouseError, match="no warehouse here yet"):
        open_ro(missing, wait_s=60)
    assert not missing.exists()


def test_reading_is_read_only(built):
    import duckdb

    with reading(built.db) as con, pytest.raises(duckdb.Error, match="read-only"):
        con.execute("delete from runs")
