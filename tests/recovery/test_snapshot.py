"""Atomic snapshots: a crash while writing one always leaves a loadable snapshot (or none)."""

from __future__ import annotations

import os

import orjson
import pytest
from journal_records import small_run

from workbench.recovery.replay import State, compare, fold, rebuild, recover
from workbench.recovery.snapshot import (
    PREVIOUS_FILE,
    SNAPSHOT_FILE,
    TEMP_FILE,
    load_snapshot,
    read_snapshot,
    save_snapshot,
    take_snapshot,
)
from workbench.recovery.wal import Wal, WalError, read


def _state(**kw: object) -> dict[str, object]:
    return {"positions": {"BTCUSDT": 7_000_000}, "cash": 7057.551985, **kw}


def test_save_and_load_round_trip_keeping_the_previous(tmp_path):
    first = save_snapshot(tmp_path, _state(n=1), 5)
    loaded = load_snapshot(tmp_path)
    assert loaded.snapshot == first
    assert loaded.source == tmp_path / SNAPSHOT_FILE and loaded.problems == []
    second = save_snapshot(tmp_path, _state(n=2), 9)
    assert load_snapshot(tmp_path).snapshot == second
    assert read_snapshot(tmp_path / PREVIOUS_FILE) == first
    assert not (tmp_path / TEMP_FILE).exists()
    doc = orjson.loads((tmp_path / SNAPSHOT_FILE).read_bytes())
    assert doc["wal_seq"] == 9 and doc["version"] == 1 and len(doc["sha256"]) == 64


def test_no_snapshot_means_replay_from_the_start(tmp_path):
    loaded = load_snapshot(tmp_path)
    assert loaded.snapshot is None and loaded.source is None and loaded.problems == []


@pytest.mark.parametrize("temp", [b"", b'{"format": "workbench.snap', b"\0" * 100])
def test_a_torn_temp_file_from_a_crash_mid_write_is_ignored_and_replaced(tmp_path, temp):
    first = save_snapshot(tmp_path, _state(n=1), 5)
    (tmp_path / TEMP_FILE).write_bytes(temp)  # the crash came before the rename
    assert load_snapshot(tmp_path).snapshot == first
    second = save_snapshot(tmp_path, _state(n=2), 6)
    assert load_snapshot(tmp_path).snapshot == second


def test_a_crash_between_the_renames_leaves_the_previous_snapshot_loadable(tmp_path,
                                                                           monkeypatch):
    first = save_snapshot(tmp_path, _state(n=1), 5)
    real = os.replace
    calls: list[object] = []

    def crash_on_second(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")  # stands for kill -9 between the renames
        real(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        save_snapshot(tmp_path, _state(n=2), 6)
    monkeypatch.undo()
    assert not (tmp_path / SNAPSHOT_FILE).exists()
    loaded = load_snapshot(tmp_path)
    assert loaded.snapshot == first and loaded.source == tmp_path / PREVIOUS_FILE
    assert save_snapshot(tmp_path, _state(n=3), 7) == load_snapshot(tmp_path).snapshot


def test_a_crash_while_writing_the_temp_file_leaves_the_current_snapshot(tmp_path,
                                                                         monkeypatch):
    first = save_snapshot(tmp_path, _state(n=1), 5)

    def die(fd):
        raise KeyboardInterrupt("killed before fsync")

    monkeypatch.setattr(os, "fsync", die)
    with pytest.raises(KeyboardInterrupt):
        save_snapshot(tmp_path, _state(n=2), 6)
    monkeypatch.undo()
    assert load_snapshot(tmp_path).snapshot == first


def _corrupt(path):
    path.write_bytes(path.read_bytes().replace(b'"n": ', b'"n": 1', 1))


def test_a_corrupt_snapshot_falls_back_to_the_previous_then_to_none(tmp_path):
    first = save_snapshot(tmp_path, _state(n=1), 5)
    save_snapshot(tmp_path, _state(n=2), 9)
    _corrupt(tmp_path / SNAPSHOT_FILE)
    loaded = load_snapshot(tmp_path)
    assert loaded.snapshot == first and loaded.source == tmp_path / PREVIOUS_FILE
    assert loaded.problems == [f"{tmp_path / SNAPSHOT_FILE}: skipped, checksum mismatch"]
    _corrupt(tmp_path / PREVIOUS_FILE)
    loaded = load_snapshot(tmp_path)
    assert loaded.snapshot is None and len(loaded.problems) == 2


@pytest.mark.parametrize("doc, problem", [
    (b"not json", "not JSON"),
    (b"[1]", "not a workbench snapshot"),
    (b'{"format": "workbench.snapshot", "version": 2}', "snapshot version 2; this workbench"),
    (b'{"format": "workbench.snapshot", "version": 1, "wal_seq": 1}', "no wal_seq or no state"),
])
def test_unreadable_snapshots_are_skipped_with_the_reason(tmp_path, doc, problem):
    (tmp_path / SNAPSHOT_FILE).write_bytes(doc)
    loaded = load_snapshot(tmp_path)
    assert loaded.snapshot is None
    assert problem in loaded.problems[0]


def test_a_secret_looking_key_in_the_state_is_refused(tmp_path):
    with pytest.raises(WalError, match="names a secret"):
        save_snapshot(tmp_path, _state(strategy={"api_secret": "s3cr3t-value"}), 1)
    assert not (tmp_path / SNAPSHOT_FILE).exists()
    with pytest.raises(WalError, match="JSON cannot carry"):
        save_snapshot(tmp_path, _state(cash=float("nan")), 1)


def test_take_snapshot_syncs_saves_and_journals_a_reference(tmp_path):
    with Wal.open(tmp_path) as wal:
        for kind, payload in small_run()[:8]:
            wal.append(kind, payload, sync=kind != "bar" and kind != "decision")
        state = fold(read(tmp_path))
        assert take_snapshot(wal, state.to_dict()) == 8
        for kind, payload in small_run()[8:]:
            wal.append(kind, payload)
    ref = read(tmp_path)[8]
    assert ref.kind == "snapshot_ref" and ref.payload["wal_seq"] == 8
    assert ref.payload["sha256"] == load_snapshot(tmp_path).snapshot.sha256  # type: ignore[union-attr]
    got = recover(tmp_path)
    assert got.snapshot.source == tmp_path / SNAPSHOT_FILE
    assert compare(got.state, fold(read(tmp_path))) is None
    # with the snapshot gone (or corrupt), the same state from the first record
    (tmp_path / SNAPSHOT_FILE).unlink()
    assert compare(rebuild(tmp_path), got.state) is None
    assert compare(rebuild(tmp_path), State()) is not None


def test_take_snapshot_refuses_a_state_behind_the_log(tmp_path):
    with Wal.open(tmp_path) as wal:
        wal.append("control", {"action": "start", "initial_cash": 1.0})
        state = fold(read(tmp_path))
        wal.append("control", {"action": "halt"})
        with pytest.raises(WalError, match="covers WAL seq 1 but the log is at seq 2"):
            take_snapshot(wal, state.to_dict())
    assert load_snapshot(tmp_path).snapshot is None
