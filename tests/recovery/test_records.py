"""Payload builders from model objects, and the books rebuilt from a folded state."""

from __future__ import annotations

from journal_records import small_run

from workbench.engine.journal import OrderEvent
from workbench.engine.journal import order_record as order_record_of
from workbench.model import Bar, Fill, Order, OrderStatus, OrderType, Side
from workbench.recovery.records import (
    bar_record,
    book_from_state,
    control_record,
    fill_from_record,
    fill_record,
    order_event_from_record,
    order_event_record,
    order_from_record,
    order_record,
    start_record,
)
from workbench.recovery.replay import fold
from workbench.recovery.wal import Wal, read


def test_model_objects_journal_and_fold_into_the_books(tmp_path):
    order = Order(1, "run-1", "BTCUSDT", Side.BUY, OrderType.LIMIT, 0.5, 50_000_000, 41_000.0,
                  1_000, 900, expire_after_bars=3, tag="dip")
    order.status = OrderStatus.SUBMITTED  # mutable state never goes into the order record
    order.bars_seen = 2
    fill = Fill(1, 1, "run-1", "BTCUSDT", Side.BUY, 0.5, 50_000_000, 41_000.0, 20.5, 1_060, 1_000,
                "T-9", 1_059)
    with Wal.open(tmp_path) as wal:
        wal.append("control", start_record(100_000.0, run_id="run", mode="paper"))
        wal.append("bar", bar_record(Bar("BTCUSDT", 1_000, 1.0, 2.0, 0.5, 41_500.0, 3.0)),
                   sync=False)
        wal.append("order", order_record(order))
        wal.append("order_event", order_event_record(
            OrderEvent(1, "run-1", 1_001, OrderStatus.SUBMITTED, None), venue_order_id=77))
        wal.append("fill", fill_record(fill, wall_ts=1_061))
        wal.append("order_event", order_event_record(
            OrderEvent(1, "run-1", 1_060, OrderStatus.FILLED, None)))
        wal.append("control", control_record("halt", ts=1_070, reason="operator"))
    records = read(tmp_path)
    assert "status" not in records[2].payload and "bars_seen" not in records[2].payload
    assert fill_from_record(records[4].payload) == fill
    assert order_from_record(records[2].payload) == order_record_of(order)
    assert order_event_from_record(records[3].payload) == OrderEvent(
        1, "run-1", 1_001, OrderStatus.SUBMITTED, None)
    state = fold(records)
    assert state.orders["run-1"]["status"] == "FILLED"
    assert state.orders["run-1"]["filled_units"] == 50_000_000
    assert state.halted
    book = book_from_state(state)
    assert book.cash == state.cash == 100_000.0 - (0.5 * 41_000.0 + 20.5)
    assert book.units == state.units == {"BTCUSDT": 50_000_000}
    assert book.last == {"BTCUSDT": 41_500.0}
    book.check([fill_from_record(f) for f in state.fills])


def test_the_books_of_the_small_run_keep_their_round_trips():
    state = fold(_records())
    book = book_from_state(state)
    assert book.cash == state.cash and book.units == state.units
    assert book.fees_paid == state.fees_paid
    assert len(book.round_trips) == 1 and book.round_trips[0].qty == 0.03


def _records():
    from workbench.recovery.wal import Record

    return [Record(i, kind, payload, 1, 0) for i, (kind, payload) in enumerate(small_run(), 1)]
