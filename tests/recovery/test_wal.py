"""The write-ahead log: round trips, sequence numbers, torn tails, corrupt middles, refusals."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from pydantic import SecretStr

from workbench.errors import WorkbenchError
from workbench.model import OrderStatus, Side
from workbench.recovery.wal import (
    FILE_HEADER_SIZE,
    HEADER_SIZE,
    KINDS,
    SCHEMA_VERSION,
    WAL_FILE,
    Wal,
    WalCorruption,
    WalError,
    WalReader,
    encode,
    read,
)

PAYLOADS = {
    "bar": {"symbol": "BTCUSDT", "ts": 1_704_067_200_000, "open": 42_000.5, "high": 42_100.0,
            "low": 41_900.25, "close": 42_050.1, "volume": 12.345678},
    "decision": {"bar_ts": 1_704_067_200_000, "symbol": "BTCUSDT",
                 "intents": [{"side": "BUY", "qty": 0.01}], "strategy_state": {"n": 3}},
    "order": {"client_order_id": "run1-1", "order_seq": 1, "symbol": "BTCUSDT",
              "side": Side.BUY, "type": "MARKET", "qty": 0.01, "qty_units": 1_000_000,
              "limit_price": None, "ts": 1_704_067_260_000, "bar_ts": 1_704_067_200_000,
              "reduce_only": False, "tag": "entry", "unicode": "über €"},
    "order_event": {"client_order_id": "run1-1", "status": OrderStatus.SUBMITTED,
                    "reason": None, "ts": 1_704_067_260_001},
    "fill": {"fill_seq": 1, "client_order_id": "run1-1", "order_seq": 1, "symbol": "BTCUSDT",
             "side": "BUY", "qty": 0.01, "qty_units": 1_000_000, "price": 42_050.1,
             "fee": 0.4205010000000001, "ts": 1_704_067_260_002, "bar_ts": 1_704_067_200_000,
             "venue_trade_id": 987654321},
    "risk_event": {"ts": 1, "reason": "MAX_POSITION", "client_order_id": "run1-2",
                   "risk_state": {"day_pnl": -1.5e-17}},
    "control": {"action": "halt", "reason": "operator", "ts": 2},
    "snapshot_ref": {"file": "snapshot.json", "wal_seq": 7, "sha256": "ab" * 32},
    "gap": {"symbol": "BTCUSDT", "first_ts": 1_704_067_260_000, "count": 2,
            "detected_at": 1_704_067_440_100},
    "alert": {"ts": 3, "kind": "bar_gap", "severity": "warning", "message": "2 bars missing",
              "data": {"count": 2}},
    "venue_fill": {"client_order_id": "run1-1", "order_seq": 1, "symbol": "BTCUSDT",
                   "side": "BUY", "trade_id": 17, "price": "42050.10", "qty": "0.01",
                   "commission": "0.00001", "commission_asset": "BTC", "fee_quote": 0.420501,
                   "venue_ts": 1_704_067_260_000, "ts": 4, "wall_ts": 5},
    "reconciliation": {"ts": 6, "wall_ts": 7, "trigger": "periodic", "ok": False,
                       "differences": [{"kind": "unknown_venue_order", "detail": "x",
                                        "symbol": "BTCUSDT", "client_order_id": "web_1",
                                        "halts": False}]},
    "order_failures": {"ts": 8, "wall_ts": 9, "failures": 2, "cause": "VENUE_RATE_LIMITED"},
}


def _payload(i: int) -> dict[str, object]:
    return {"client_order_id": f"c{i}", "i": i, "pad": "x" * (i % 7)}


def _write(directory: Path, count: int) -> list[int]:
    with Wal.open(directory) as wal:
        return [wal.append("order", _payload(i)) for i in range(count)]


LAST_OF_3 = len(encode(3, "order", _payload(2)))
"""The size of the last frame ``_write(..., 3)`` writes: the torn tests cover each of its bytes."""
MIDDLE_OF_5 = len(encode(3, "order", _payload(2)))


def _frames(directory: Path) -> list[tuple[int, int]]:
    """(start, end) byte offsets of each frame."""
    data = (directory / WAL_FILE).read_bytes()
    assert data[:FILE_HEADER_SIZE] == b"WBWAL\n\x01\x00"
    out, off = [], FILE_HEADER_SIZE
    while off < len(data):
        (length,) = struct.unpack_from("<I", data, off)
        out.append((off, off + HEADER_SIZE + length))
        off += HEADER_SIZE + length
    return out


def test_every_kind_round_trips_with_sorted_keys(tmp_path):
    assert set(PAYLOADS) == set(KINDS)
    with Wal.open(tmp_path / "run") as wal:
        seqs = [wal.append(kind, payload) for kind, payload in PAYLOADS.items()]
    assert seqs == list(range(1, len(KINDS) + 1))
    records = read(tmp_path / "run")
    assert [(r.seq, r.kind, r.version) for r in records] == [
        (i, kind, SCHEMA_VERSION) for i, kind in enumerate(PAYLOADS, 1)]
    for record in records:
        expected = {k: (str(v) if isinstance(v, Side | OrderStatus) else v)
                    for k, v in PAYLOADS[record.kind].items()}
        assert record.payload == expected
        assert list(record.payload) == sorted(record.payload)  # deterministic key order
    # floats come back bit for bit
    fill = next(r for r in records if r.kind == "fill")
    assert fill.payload["fee"] == 0.4205010000000001
    # the same payload in another key order encodes to the same bytes
    assert encode(1, "bar", {"b": 1, "a": 2}) == encode(1, "bar", {"a": 2, "b": 1})


def test_sequence_numbers_continue_across_reopen_and_read_from_a_seq(tmp_path):
    assert _write(tmp_path, 3) == [1, 2, 3]
    with Wal.open(tmp_path) as wal:
        assert wal.last_seq == 3
        assert wal.torn is None
        assert wal.append("bar", {"symbol": "X", "ts": 1}, sync=False) == 4
        assert wal.append("control", {"action": "halt"}) == 5
    assert [r.seq for r in read(tmp_path)] == [1, 2, 3, 4, 5]
    assert [r.seq for r in read(tmp_path, start_seq=4)] == [4, 5]
    assert read(tmp_path / "nowhere") == []


def test_the_journal_directory_is_created_and_an_empty_log_reads_empty(tmp_path):
    directory = tmp_path / "warehouse" / "live" / "run-1"
    with Wal.open(directory) as wal:
        assert wal.last_seq == 0
    assert (directory / WAL_FILE).read_bytes() == b"WBWAL\n\x01\x00"
    assert read(directory) == []


@pytest.mark.parametrize("cut", range(FILE_HEADER_SIZE))
def test_a_file_header_cut_short_by_a_crash_is_rewritten(tmp_path, cut):
    (tmp_path / WAL_FILE).write_bytes(b"WBWAL\n\x01\x00"[:cut])
    reader = WalReader(tmp_path)
    assert list(reader) == []
    assert reader.result is not None and (reader.result.torn is not None) == (cut > 0)
    with Wal.open(tmp_path) as wal:
        assert wal.append("control", {"action": "start", "initial_cash": 1.0}) == 1
    assert [r.seq for r in read(tmp_path)] == [1]


def test_a_file_that_is_not_a_wal_or_of_another_format_version_is_refused(tmp_path):
    path = tmp_path / WAL_FILE
    path.write_bytes(b"hello, world\n")
    with pytest.raises(WalCorruption, match="not a workbench write-ahead log"):
        Wal.open(tmp_path)
    path.write_bytes(b"WBWAL\n\x02\x00")
    with pytest.raises(WalCorruption, match="format version 2; this workbench reads version 1"):
        read(tmp_path)
    assert path.read_bytes() == b"WBWAL\n\x02\x00"  # left as found


def test_a_follower_reads_only_what_was_appended_since_its_last_read(tmp_path):
    wal = Wal.open(tmp_path)
    wal.append("control", {"action": "start", "initial_cash": 1.0})
    first = WalReader(tmp_path)
    assert [r.seq for r in first] == [1]
    assert first.result is not None
    nothing = WalReader(tmp_path, after=first.result)
    assert list(nothing) == [] and nothing.result == first.result
    wal.append("bar", {"symbol": "X", "ts": 1}, sync=False)
    wal.append("order", {"client_order_id": "a"})
    # a record being written shows as a torn tail to a follower, and is read the next time
    with (tmp_path / WAL_FILE).open("ab") as f:
        f.write(encode(4, "fill", {"client_order_id": "a"})[:-3])
    second = WalReader(tmp_path, after=first.result, warn=False)
    assert [r.seq for r in second] == [2, 3]
    assert second.result is not None and second.result.torn is not None
    wal.close()


@pytest.mark.parametrize("cut", range(1, LAST_OF_3))
def test_a_torn_last_record_at_every_byte_offset_is_dropped_and_appends_continue(tmp_path, cut):
    _write(tmp_path, 3)
    start, end = _frames(tmp_path)[-1]
    assert end - start == LAST_OF_3
    keep = start + cut  # the first `cut` bytes of the last frame made it to disk
    path = tmp_path / WAL_FILE
    path.write_bytes(path.read_bytes()[:keep])
    reader = WalReader(tmp_path)
    assert [r.seq for r in reader] == [1, 2]
    assert reader.result is not None and reader.result.torn is not None
    assert reader.result.torn.offset == start
    assert reader.result.torn.last_good_seq == 2
    with Wal.open(tmp_path) as wal:
        assert wal.torn is not None and wal.torn.dropped_bytes == keep - start
        assert path.stat().st_size == start  # truncated to the last good record
        assert wal.append("order", {"client_order_id": "again"}) == 3
    records = read(tmp_path)
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[-1].payload == {"client_order_id": "again"}


@pytest.mark.parametrize("at", range(LAST_OF_3))
def test_a_damaged_last_record_is_dropped_as_torn(tmp_path, at):
    _write(tmp_path, 3)
    start, end = _frames(tmp_path)[-1]
    assert end - start == LAST_OF_3
    path = tmp_path / WAL_FILE
    data = bytearray(path.read_bytes())
    data[start + at] ^= 0x40
    path.write_bytes(bytes(data))
    assert [r.seq for r in read(tmp_path)] == [1, 2]
    with Wal.open(tmp_path) as wal:
        assert wal.torn is not None
        assert wal.append("control", {"action": "resume"}) == 3
    assert [r.kind for r in read(tmp_path)] == ["order", "order", "control"]


def test_zeros_after_the_last_record_are_a_torn_tail(tmp_path):
    _write(tmp_path, 2)
    path = tmp_path / WAL_FILE
    size = path.stat().st_size
    with path.open("ab") as f:
        f.write(b"\0" * 4096)  # a file extended by a crash before its data landed
    with Wal.open(tmp_path) as wal:
        assert wal.torn is not None and wal.torn.offset == size
        assert wal.last_seq == 2


@pytest.mark.parametrize("at", range(MIDDLE_OF_5))
def test_a_flipped_byte_in_a_middle_record_raises_naming_file_offset_and_last_seq(tmp_path, at):
    _write(tmp_path, 5)
    start, end = _frames(tmp_path)[2]  # record 3 of 5
    assert end - start == MIDDLE_OF_5
    path = tmp_path / WAL_FILE
    data = bytearray(path.read_bytes())
    data[start + at] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(WalCorruption) as err:
        read(tmp_path)
    assert isinstance(err.value, WorkbenchError)
    assert err.value.offset == start
    assert err.value.last_good_seq == 2
    message = str(err.value)
    assert f"{path}, byte offset {start}" in message
    assert "last good record is seq 2" in message
    assert "must stop" in message  # the fix
    with pytest.raises(WalCorruption):  # and the writer refuses to append after it
        Wal.open(tmp_path)


def _raw_frame(seq: int, version: int = SCHEMA_VERSION, code: int = 0,
               payload: bytes = b"{}") -> bytes:
    rest = struct.pack("<HBBQ", version, code, 0, seq) + payload
    length = struct.pack("<I", len(payload))
    return length + struct.pack("<I", zlib.crc32(rest, zlib.crc32(length))) + rest


def test_unknown_schema_version_kind_and_a_sequence_gap_are_clear_errors(tmp_path):
    _write(tmp_path, 1)
    path = tmp_path / WAL_FILE
    good = path.read_bytes()
    path.write_bytes(good + _raw_frame(2, version=SCHEMA_VERSION + 1))
    with pytest.raises(WalCorruption, match="schema version 2; this workbench reads version 1"):
        read(tmp_path)
    path.write_bytes(good + _raw_frame(2, code=200))
    with pytest.raises(WalCorruption, match="unknown kind code 200"):
        read(tmp_path)
    path.write_bytes(good + _raw_frame(3))
    with pytest.raises(WalCorruption, match="sequence number 3 where 2 was due"):
        read(tmp_path)
    path.write_bytes(good + _raw_frame(2, payload=b"{nope"))
    with pytest.raises(WalCorruption, match="not JSON"):
        read(tmp_path)


@pytest.mark.parametrize("payload", [
    {"api_key": "abc"},
    {"order": {"apiKey": "abc"}},
    {"headers": [{"X-MBX-APIKEY": "abc"}]},
    {"client_secret": None},
    {"signature_secret": 1},
    {"token": "t"},
    {"venue": {"password": "p"}},
    {"note": SecretStr("hidden")},
])
def test_a_secret_looking_payload_is_refused_and_nothing_is_written(tmp_path, payload):
    with Wal.open(tmp_path) as wal:
        with pytest.raises(WalError, match="secret") as err:
            wal.append("order", payload)
        assert "abc" not in str(err.value) and "hidden" not in str(err.value)
        assert wal.append("order", {"client_order_id": "ok"}) == 1
    assert [r.payload for r in read(tmp_path)] == [{"client_order_id": "ok"}]


@pytest.mark.parametrize("payload, match", [
    ({"price": float("nan")}, "JSON cannot carry"),
    ({"price": float("inf")}, "JSON cannot carry"),
    ({1: "x"}, "non-string key"),
    ({"x": object()}, "cannot be journaled as JSON"),
    ({"n": 2**70}, "cannot be journaled as JSON"),
])
def test_payloads_json_cannot_carry_exactly_are_refused(tmp_path, payload, match):
    with Wal.open(tmp_path) as wal, pytest.raises(WalError, match=match):
        wal.append("bar", payload)
    assert read(tmp_path) == []


def test_bad_kind_non_dict_payload_and_unsynced_critical_records_are_refused(tmp_path):
    with Wal.open(tmp_path) as wal:
        with pytest.raises(WalError, match="unknown record kind 'trade'"):
            wal.append("trade", {})
        with pytest.raises(WalError, match="must be a JSON object"):
            wal.append("bar", [1, 2])  # type: ignore[arg-type]
        with pytest.raises(WalError, match="must be synced"):
            wal.append("order", {"client_order_id": "x"}, sync=False)
        assert wal.last_seq == 0
    with pytest.raises(WalError, match="closed"):
        wal.append("bar", {})


def test_a_second_writer_is_refused_while_the_first_holds_the_log(tmp_path):
    code = ("import sys, time; from workbench.recovery.wal import Wal; "
            "w = Wal.open(sys.argv[1]); print('open', flush=True); time.sleep(30)")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "open"
        with pytest.raises(WalError, match="another process is writing this journal"):
            Wal.open(tmp_path)
    finally:
        child.kill()
        child.wait()
    Wal.open(tmp_path).close()  # the kernel released the dead writer's lock


def test_unsynced_records_are_synced_by_the_next_synced_append_and_by_close(tmp_path, monkeypatch):
    import os

    calls: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append(fd), real(fd))[1])
    wal = Wal.open(tmp_path)
    calls.clear()
    wal.append("bar", {"symbol": "X", "ts": 1}, sync=False)
    wal.append("bar", {"symbol": "X", "ts": 2}, sync=False)
    assert calls == []
    wal.append("order", {"client_order_id": "a"})
    assert len(calls) == 1
    wal.sync()  # nothing pending
    assert len(calls) == 1
    wal.append("bar", {"symbol": "X", "ts": 3}, sync=False)
    wal.close()
    assert len(calls) == 2


def test_a_failed_write_leaves_no_partial_frame_and_closes_the_log(tmp_path, monkeypatch):
    import os

    wal = Wal.open(tmp_path)
    wal.append("control", {"action": "start", "initial_cash": 1.0})
    size = (tmp_path / WAL_FILE).stat().st_size

    def short_then_fail(fd, data):
        real_write(fd, bytes(data[:5]))
        raise OSError(28, "No space left on device")

    real_write = os.write
    monkeypatch.setattr(os, "write", short_then_fail)
    with pytest.raises(WalError, match="No space left"):
        wal.append("order", {"client_order_id": "a"})
    monkeypatch.undo()
    assert (tmp_path / WAL_FILE).stat().st_size == size
    with pytest.raises(WalError, match="closed"):
        wal.append("order", {"client_order_id": "a"})
    with Wal.open(tmp_path) as again:
        assert again.torn is None
        assert again.append("order", {"client_order_id": "a"}) == 2


def test_a_long_torn_payload_is_told_from_corruption_quickly(tmp_path):
    import time

    with Wal.open(tmp_path) as wal:
        wal.append("control", {"action": "start", "initial_cash": 1.0})
    frame = encode(2, "decision", {"blob": "x" * 8_000_000})
    path = tmp_path / WAL_FILE
    with path.open("ab") as f:
        f.write(frame[:-1])
    t0 = time.perf_counter()
    with Wal.open(tmp_path) as wal:
        assert wal.torn is not None and wal.torn.dropped_bytes == len(frame) - 1
    assert time.perf_counter() - t0 < 2.0


def test_threads_appending_at_once_get_distinct_contiguous_seqs(tmp_path):
    import threading

    got: list[int] = []
    with Wal.open(tmp_path) as wal:
        def work(t: int) -> None:
            for i in range(50):
                got.append(wal.append("bar", {"symbol": f"T{t}", "ts": i}, sync=False))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(got) == list(range(1, 201))
    assert [r.seq for r in read(tmp_path)] == list(range(1, 201))


def test_a_payload_read_back_is_a_fresh_copy(tmp_path):
    with Wal.open(tmp_path) as wal:
        wal.append("decision", {"intents": ({"qty": 1.0},), "z": 1, "a": {"y": 2, "b": 3}})
    (record,) = read(tmp_path)
    assert record.payload == {"a": {"b": 3, "y": 2}, "intents": [{"qty": 1.0}], "z": 1}
    record.payload["z"] = 99
    assert read(tmp_path)[0].payload["z"] == 1


def test_wal_batch_syncs_critical_records_once_when_the_block_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import workbench.recovery.wal as wal_module

    synced: list[int] = []
    real = wal_module.datasync
    monkeypatch.setattr(wal_module, "datasync", lambda fd: (synced.append(fd), real(fd)))
    with Wal.open(tmp_path / "run") as wal:
        with wal.batch():
            wal.append("order", PAYLOADS["order"])
            wal.append("order_event", PAYLOADS["order_event"])
            assert synced == []  # written, not yet synced
            assert [r.seq for r in read(tmp_path / "run")] == [1, 2]  # visible at once
        assert len(synced) == 1
        wal.append("fill", PAYLOADS["fill"])  # outside a batch: synced on its own
        assert len(synced) == 2


def test_wal_background_batch_syncs_on_the_syncer_while_appends_go_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import workbench.recovery.wal as wal_module

    real = wal_module.datasync
    entered, release = threading.Event(), threading.Event()
    threads: list[str] = []

    def slow_sync(fd: int) -> None:
        threads.append(threading.current_thread().name)
        entered.set()
        release.wait(10)
        real(fd)

    monkeypatch.setattr(wal_module, "datasync", slow_sync)
    wal = Wal.open(tmp_path / "run")
    with wal.batch(background=True):
        wal.append("order", PAYLOADS["order"])
    assert entered.wait(10)  # the syncer is inside a (stuck) fdatasync ...
    seq = wal.append("bar", PAYLOADS["bar"], sync=False)  # ... and appends still go on
    with wal.batch(background=True):
        wal.append("fill", PAYLOADS["fill"])
    assert not release.is_set() and seq == 2
    assert [r.seq for r in read(tmp_path / "run")] == [1, 2, 3]
    waiter = threading.Thread(target=wal.sync)  # an explicit sync waits for durability
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()
    release.set()
    waiter.join(10)
    wal.close()
    assert threads[0] == "wal-sync" and not waiter.is_alive()
    assert [r.seq for r in read(tmp_path / "run")] == [1, 2, 3]


def test_wal_background_sync_failure_is_raised_by_the_next_append_and_close(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import workbench.recovery.wal as wal_module

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    wal = Wal.open(tmp_path / "run")
    monkeypatch.setattr(wal_module, "datasync", broken)
    with wal.batch(background=True):
        wal.append("order", PAYLOADS["order"])
    assert wal._syncer is not None
    wal._syncer.join(10)
    with pytest.raises(WalError, match="Input/output error") as raised:
        wal.append("bar", PAYLOADS["bar"], sync=False)
    assert "restart the run" in raised.value.render()
    with pytest.raises(WalError, match="Input/output error"):
        wal.close()
    assert [r.seq for r in read(tmp_path / "run")] == [1]  # written before the sync failed


def test_wal_append_signal_during_the_write_waits_until_the_record_is_counted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import workbench.recovery.wal as wal_module
    from workbench import errors

    real_write = os.write

    def write_then_signal(fd: int, data: object) -> int:
        written = real_write(fd, data)  # type: ignore[arg-type]
        if not errors.note_signal("SIGTERM"):  # what the CLI's handler does
            raise errors.Terminated("SIGTERM")
        return written

    errors.clear_signals()
    with Wal.open(tmp_path / "run") as wal:
        monkeypatch.setattr(wal_module.os, "write", write_then_signal)
        with pytest.raises(errors.Terminated):
            wal.append("order", PAYLOADS["order"])
        monkeypatch.undo()
        errors.clear_signals()
        assert wal.last_seq == 1  # written and counted before the signal's exception
        assert wal.append("fill", PAYLOADS["fill"]) == 2
    assert [r.seq for r in read(tmp_path / "run")] == [1, 2]
