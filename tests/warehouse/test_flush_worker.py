"""The flusher process: the same rows as the thread, its twin, and it never outlives its
parent."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

from workbench.recovery.records import start_record
from workbench.recovery.wal import Wal
from workbench.warehouse.flush_worker import FlusherProcess

T0 = 1_704_067_200_000
MIN = 60_000


def _journal(folder: Path) -> Path:
    with Wal.open(folder) as wal:
        wal.append("control", start_record(1000.0, run_id="r1", mode="paper",
                                           config_hash="h", symbols=["BTCUSDT"],
                                           timeframe="1m", ts=T0, start_ts=T0))
        for i in range(5):
            wal.append("bar", {"symbol": "BTCUSDT", "ts": T0 + i * MIN, "open": 1.0,
                               "high": 1.0, "low": 1.0, "close": 1.0 + i, "volume": 1.0,
                               "phase": "live", "lag_ms": 0}, sync=False)
    return folder


def _row() -> dict[str, object]:
    return {"run_id": "r1", "mode": "paper", "status": "running", "name": "t",
            "started_at": "2024-01-01T00:00:00Z",
            "config_json": {"strategy": {"class": "workbench.strategies.sma_cross:SmaCross",
                                         "params": {"fast": 2, "slow": 3, "qty": 0.01}},
                            "data": {"symbols": ["BTCUSDT"]}}}


def test_flusher_process_flushes_the_run_and_its_twin_then_stops(tmp_path: Path) -> None:
    journal = _journal(tmp_path / "live" / "r1")
    warehouse = tmp_path / "w.duckdb"
    flusher = FlusherProcess(warehouse, journal, _row, every_s=60.0)
    assert flusher.flush_now()
    assert flusher.stop(final=True, timeout_s=20.0)
    con = duckdb.connect(str(warehouse), read_only=True)
    runs = con.execute("select run_id, mode, bar_count from runs order by run_id").fetchall()
    bars = con.execute("select count(*) from run_bars where run_id = 'r1'").fetchall()
    con.close()
    assert runs == [("r1", "paper", 5), ("r1.backtest", "backtest", 5)]
    assert bars == [(5,)]


def test_flusher_process_leaves_when_its_parent_is_gone(tmp_path: Path) -> None:
    journal = _journal(tmp_path / "live" / "r1")
    flusher = FlusherProcess(tmp_path / "w.duckdb", journal, _row, every_s=60.0)
    flusher.start()
    proc = flusher._proc
    assert proc is not None and proc.stdin is not None
    proc.stdin.close()  # what the parent's death (kill -9 included) does to the pipe
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.returncode == 0
