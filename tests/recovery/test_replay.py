"""The replay fold: what each record does to the state, rebuild from snapshot + tail, compare."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from journal_records import T0, bar, fill, order, small_run

from workbench.book import Book
from workbench.recovery.records import fill_from_record
from workbench.recovery.replay import (
    ReplayError,
    State,
    apply_record,
    compare,
    fold,
    rebuild,
    recover,
)
from workbench.recovery.snapshot import SNAPSHOT_FILE, take_snapshot
from workbench.recovery.wal import Record, Wal, read


def _records(stream: list[tuple[str, dict[str, Any]]], first: int = 1) -> list[Record]:
    return [Record(seq, kind, payload, 1, 0) for seq, (kind, payload) in enumerate(stream, first)]


def test_the_fold_of_a_small_run():
    state = fold(_records(small_run()))
    assert state.seq == 17
    assert state.initial_cash == 10_000.0
    assert state.units == {"BTCUSDT": 7_000_000}
    assert {coid: o["status"] for coid, o in state.orders.items()} == {
        "r1-1": "FILLED", "r1-2": "PARTIALLY_FILLED", "r1-3": "BLOCKED"}
    assert state.orders["r1-2"]["filled_units"] == 3_000_000
    assert state.orders["r1-3"]["reason"] == "MAX_EXPOSURE"
    assert list(state.open_orders()) == ["r1-2"]
    assert [f["fill_seq"] for f in state.fills] == [1, 2]
    assert state.last_bar_ts == {"BTCUSDT": T0 + 2 * 60_000}
    assert state.last_close == {"BTCUSDT": 41_900.0}
    assert state.halted and state.halt_reason == "operator"
    assert state.risk == {"blocks_today": 1}
    assert state.strategy == {"fast": [42_000.0]}
    assert state.counts["order"] == 3 and state.counts["fill"] == 2


def test_cash_and_positions_are_the_books_to_the_last_bit():
    state = fold(_records(small_run()))
    book = Book(10_000.0)
    for kind, p in small_run():
        if kind == "fill":
            book.apply_fill(fill_from_record(p))
    assert state.cash == book.cash  # exactly: the same float operations in the same order
    assert state.units == book.units
    assert state.fees_paid == book.fees_paid


def test_fold_fill_with_a_fee_in_kind_books_the_units_received_and_fills_the_order():
    paid = fill(1, "a", 1, "X", "BUY", 0.000999, 42_000.0, 0.042, T0) | {"fee_units": 100}
    state = fold(_records([("control", {"action": "start", "initial_cash": 100.0}),
                           ("order", order("a", 1, "X", "BUY", 0.001, T0)),
                           ("fill", paid)]))
    assert state.units == {"X": 99_900}  # what the venue holds
    assert state.orders["a"]["filled_units"] == 100_000  # what the order executed
    assert state.cash == 100.0 - (0.000999 * 42_000.0 + 0.042)  # as Book.apply_fill
    assert fill_from_record(paid).executed_units == 100_000


def test_fold_fill_with_negative_fee_units_is_refused_naming_the_seq():
    bad = fill(1, "a", 1, "X", "BUY", 0.001, 1.0, 0.0, T0) | {"fee_units": -1}
    with pytest.raises(ReplayError, match="fee_units -1") as err:
        fold(_records([("order", order("a", 1, "X", "BUY", 0.001, T0)), ("fill", bad)]))
    assert "WAL seq 2" in str(err.value)


def test_halt_resume_flatten():
    stream = [("control", {"action": "start", "initial_cash": 1.0}),
              ("control", {"action": "flatten"}),
              ("control", {"action": "halt", "reason": "flat"})]
    state = fold(_records(stream))
    assert state.halted and state.flatten_requested and state.halt_reason == "flat"
    apply_record(state, Record(4, "control", {"action": "resume"}, 1, 0))
    assert not state.halted and not state.flatten_requested and state.halt_reason is None


def test_order_failures_fold_to_the_last_count_and_a_resume_starts_it_again():
    stream = [("control", {"action": "start", "initial_cash": 1.0}),
              ("order_failures", {"failures": 1, "cause": "VENUE_RATE_LIMITED"}),
              ("order_failures", {"failures": 2, "cause": "TIMEOUT"})]
    state = fold(_records(stream))
    assert state.order_failures == 2
    assert State.from_dict(state.to_dict()).order_failures == 2  # a snapshot keeps it
    apply_record(state, Record(4, "control", {"action": "resume"}, 1, 0))
    assert state.order_failures == 0


def test_snapshot_state_written_before_order_failures_existed_reads_as_none_failed():
    old = State(seq=3, initial_cash=1.0).to_dict()
    del old["order_failures"]  # a snapshot of an earlier workbench
    assert State.from_dict(old).order_failures == 0


@pytest.mark.parametrize("stream, match", [
    ([("order", order("a", 1, "X", "BUY", 1.0, T0)),
      ("order", order("a", 2, "X", "BUY", 1.0, T0))], "second order record for client_order_id"),
    ([("order_event", {"client_order_id": "zz", "status": "FILLED"})], "no order record"),
    ([("fill", fill(1, "zz", 1, "X", "BUY", 1.0, 1.0, 0.0, T0))], "no order record"),
    ([("order", order("a", 1, "X", "BUY", 1.0, T0)),
      ("order_event", {"client_order_id": "a", "status": "DONE"})], "unknown status 'DONE'"),
    ([("order", order("a", 1, "X", "BUY", 1.0, T0)),
      ("fill", {"client_order_id": "a", "symbol": "X"})], "no 'side'"),
    ([("bar", {"symbol": "X"})], "a bar record has no 'ts'"),
    ([("order_failures", {"cause": "TIMEOUT"})], "order_failures record has no 'failures'"),
    ([("order_failures", {"failures": -1})], "order_failures record with failures -1"),
])
def test_records_the_fold_cannot_apply_are_refused_naming_the_seq(stream, match):
    with pytest.raises(ReplayError, match=match) as err:
        fold(_records(stream))
    assert f"WAL seq {len(stream)}" in str(err.value)


def test_a_record_already_in_the_state_is_refused():
    state = fold(_records(small_run()[:3]))
    with pytest.raises(ReplayError, match="not after the state's seq 3"):
        apply_record(state, Record(3, "bar", bar("X", 9, 1.0), 1, 0))


def test_fold_copies_its_starting_state():
    start = fold(_records(small_run()[:6]))
    before = start.to_dict()
    fold(_records(small_run()[6:], first=7), start)
    assert start.to_dict() == before


def test_compare_names_the_first_difference():
    a = fold(_records(small_run()))
    assert compare(a, fold(_records(small_run()))) is None
    b = fold(_records(small_run()))
    b.orders["r1-2"]["status"] = "FILLED"
    diff = compare(a, b)
    assert diff is not None
    assert diff.path == "state['orders']['r1-2']['status']"
    assert str(diff) == "state['orders']['r1-2']['status']: 'PARTIALLY_FILLED' != 'FILLED'"
    b = fold(_records(small_run()))
    b.fills.pop()
    assert compare(a, b).path == "len(state['fills'])"  # type: ignore[union-attr]
    b = fold(_records(small_run()))
    b.units["ETHUSDT"] = 1
    assert str(compare(a, b)) == "state['units']['ETHUSDT']: None != 1"
    b = fold(_records(small_run()))
    b.cash = a.cash + 1e-9
    assert compare(a, b).path == "state['cash']"  # type: ignore[union-attr]


def _write(directory: Path, stream: list[tuple[str, dict[str, Any]]], snapshot_after: set[int],
           ) -> None:
    with Wal.open(directory) as wal:
        for kind, payload in stream:
            wal.append(kind, payload, sync=kind in ("order", "order_event", "fill",
                                                    "risk_event", "control"))
            if wal.last_seq in snapshot_after:
                take_snapshot(wal, fold(read(directory)).to_dict())


def test_rebuild_from_snapshot_and_tail_equals_replay_from_scratch(tmp_path):
    _write(tmp_path, small_run(), {6, 12})
    got = recover(tmp_path)
    assert got.snapshot.snapshot is not None and got.snapshot.snapshot.wal_seq == 12
    assert got.torn is None
    scratch = fold(read(tmp_path))
    assert compare(got.state, scratch) is None
    assert got.state.snapshot_ref is not None and got.state.snapshot_ref["wal_seq"] == 12
    assert rebuild(tmp_path).seq == 19  # 17 records and two snapshot_refs


def test_rebuild_of_an_empty_journal_is_the_empty_state(tmp_path):
    assert compare(rebuild(tmp_path), State()) is None


def test_a_snapshot_ahead_of_the_log_is_corruption(tmp_path):
    from workbench.recovery.wal import WAL_FILE, WalCorruption

    _write(tmp_path, small_run(), {10})
    data = (tmp_path / WAL_FILE).read_bytes()
    records = read(tmp_path)
    (tmp_path / WAL_FILE).write_bytes(data[:records[5].offset])  # the log lost records 6..
    with pytest.raises(WalCorruption, match="covers WAL seq 10 but the log ends at seq 5"):
        rebuild(tmp_path)


# --- the property: snapshot + tail == scratch, for random streams --------------------------------
@st.composite
def streams(draw: st.DrawFn) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = [
        ("control", {"action": "start",
                     "initial_cash": draw(st.floats(1.0, 1e7, allow_nan=False))})]
    orders: list[tuple[str, int, str]] = []
    prices = st.floats(1e-4, 1e6, allow_nan=False, allow_infinity=False)
    symbols = st.sampled_from(["BTCUSDT", "ETHUSDT"])
    fill_seq = 0
    for i in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from(["bar", "decision", "order", "order_event", "fill",
                                     "risk_event", "control"]))
        if kind in ("order_event", "fill") and not orders:
            kind = "order"
        if kind == "bar":
            out.append(("bar", bar(draw(symbols), draw(st.integers(0, 50)), draw(prices))))
        elif kind == "decision":
            out.append(("decision", {"bar_ts": T0, "strategy_state": {"i": i}}
                        if draw(st.booleans()) else {"bar_ts": T0}))
        elif kind == "order":
            coid = f"r-{len(orders) + 1}"
            symbol, side = draw(symbols), draw(st.sampled_from(["BUY", "SELL"]))
            orders.append((coid, len(orders) + 1, symbol))
            out.append(("order", order(coid, len(orders), symbol, side,
                                       draw(st.integers(1, 10**9)) / 1e8, T0 + i)))
        elif kind == "order_event":
            coid, _, _ = draw(st.sampled_from(orders))
            out.append(("order_event", {
                "client_order_id": coid, "ts": T0 + i,
                "status": draw(st.sampled_from(["SUBMITTED", "PARTIALLY_FILLED", "FILLED",
                                                "CANCELED", "REJECTED", "UNKNOWN"])),
                "reason": draw(st.none() | st.sampled_from(["TIMEOUT", "VENUE"]))}))
        elif kind == "fill":
            coid, seq, symbol = draw(st.sampled_from(orders))
            fill_seq += 1
            out.append(("fill", fill(fill_seq, coid, seq, symbol,
                                     draw(st.sampled_from(["BUY", "SELL"])),
                                     draw(st.integers(1, 10**9)) / 1e8, draw(prices),
                                     draw(st.floats(0, 100, allow_nan=False)), T0 + i)))
        elif kind == "risk_event":
            out.append(("risk_event", {"reason": "MAX_POSITION", "risk_state": {"n": i}}
                        if draw(st.booleans()) else {"reason": "MAX_EXPOSURE"}))
        else:
            out.append(("control", {"action": draw(st.sampled_from(["halt", "resume",
                                                                      "flatten", "noted"])),
                                    "reason": "test"}))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(), data=st.data())
def test_property_snapshot_plus_tail_equals_replay_from_scratch(stream, data):
    cut = data.draw(st.integers(0, len(stream)), label="snapshot after")
    scratch = fold(_records(stream))
    head = fold(_records(stream[:cut]))
    tail = fold(_records(stream[cut:], first=cut + 1), head)
    assert compare(tail, scratch) is None
    # through the files: a WAL, snapshots (the newest possibly corrupt), rebuild
    later = data.draw(st.integers(cut, len(stream)), label="second snapshot after")
    corrupt = data.draw(st.booleans(), label="corrupt the newest snapshot")
    with (tempfile.TemporaryDirectory() as tmp, mock.patch.object(os, "fsync"),
          mock.patch.object(os, "fdatasync")):
        directory = Path(tmp)
        _write(directory, stream, {cut, later} - {0})
        if corrupt and (directory / SNAPSHOT_FILE).exists():
            text = (directory / SNAPSHOT_FILE).read_text()
            (directory / SNAPSHOT_FILE).write_text(text.replace('"seq"', '"seq_"', 1))
        got = recover(directory)
        event(f"rebuilt from {got.snapshot.source.name if got.snapshot.source else 'scratch'}")
        assert compare(got.state, fold(read(directory))) is None
        if corrupt and later and got.snapshot.problems:
            assert "checksum mismatch" in got.snapshot.problems[0]
