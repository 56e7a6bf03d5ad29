"""The Journal contract (engine/journal.py), run against every journal in ``JOURNALS``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from workbench.engine.journal import (
    OrderEvent,
    OrderRecord,
    OrderState,
    contents,
    order_record,
    order_states,
)
from workbench.model import Fill, Order, OrderStatus, OrderType, Side

S = OrderStatus
T0 = 1_704_067_200_000


def order(seq: int = 1, **kw: Any) -> Order:
    fields: dict[str, Any] = dict(order_seq=seq, client_order_id=f"r-{seq}", symbol="X",
                                  side=Side.BUY, type=OrderType.LIMIT, qty=1.5,
                                  qty_units=150_000_000, limit_price=99.0, ts=T0 + 60_000,
                                  bar_ts=T0, expire_after_bars=3, reduce_only=False, tag="bid")
    fields.update(kw)
    return Order(**fields)


def fill(o: Order, seq: int, units: int, **kw: Any) -> Fill:
    return Fill(seq, o.order_seq, o.client_order_id, o.symbol, o.side, units / 1e8, units,
                99.0, 0.1, T0 + 120_000, T0 + 60_000, **kw)


def journal_one_order(j: Any) -> Order:
    """An order through NEW -> SUBMITTED -> PARTIALLY_FILLED -> FILLED, as the step journals."""
    o = order()
    j.order(order_record(o))
    j.event(o, S.NEW, None, o.ts)
    o.status = S.SUBMITTED
    j.event(o, S.SUBMITTED, None, o.ts)
    j.fill(fill(o, 1, 50_000_000, venue_trade_id="T-1", venue_ts=T0 + 119_000))
    o.status, o.filled_units = S.PARTIALLY_FILLED, 50_000_000
    j.event(o, S.PARTIALLY_FILLED, None, T0 + 120_000)
    j.fill(fill(o, 2, 100_000_000))
    o.status, o.filled_units = S.FILLED, 150_000_000
    j.event(o, S.FILLED, None, T0 + 120_000)
    return o


def test_replay_yields_every_record_in_written_order(make_journal: Callable[[], Any]) -> None:
    j = make_journal()
    journal_one_order(j)
    kinds = [type(r).__name__ for r in j.replay()]
    assert kinds == ["OrderRecord", "OrderEvent", "OrderEvent", "Fill", "OrderEvent", "Fill",
                     "OrderEvent"]


def test_order_record_is_the_order_as_journalled_not_its_later_state(
        make_journal: Callable[[], Any]) -> None:
    j = make_journal()
    o = order()
    j.order(order_record(o))
    o.status, o.reason, o.filled_units, o.qty = S.CANCELED, "USER", 7, 99.0  # later changes
    (record,) = contents(j).orders
    assert isinstance(record, OrderRecord)
    assert record == OrderRecord(1, "r-1", "X", Side.BUY, OrderType.LIMIT, 1.5, 150_000_000,
                                 99.0, T0 + 60_000, T0, 3, False, "bid")
    assert not hasattr(record, "status")


def test_records_are_immutable(make_journal: Callable[[], Any]) -> None:
    j = make_journal()
    journal_one_order(j)
    for record in j.replay():
        assert isinstance(record, tuple)  # NamedTuples: no field can be assigned
        with pytest.raises(AttributeError):
            record.order_seq = 99  # type: ignore[misc]
        assert record.order_seq == 1


def test_order_states_fold_last_event_and_fills(make_journal: Callable[[], Any]) -> None:
    j = make_journal()
    journal_one_order(j)
    (state,) = order_states(contents(j))
    (record,) = contents(j).orders
    assert state[:len(record)] == record  # the record, field for field, then the state
    assert (state.symbol, state.limit_price, state.tag) == ("X", 99.0, "bid")
    assert (state.status, state.reason, state.updated_ts) == (S.FILLED, None, T0 + 120_000)
    assert (state.filled_units, state.filled_qty) == (150_000_000, 1.5)
    assert not state.is_open


def test_one_field_list_order_record_then_order_state_then_order() -> None:
    """OrderState is built as ``OrderState(*record, ...)`` and ``order_record`` reads an Order's
    fields by name: the three must share the record's fields, in the record's order."""
    n = len(OrderRecord._fields)
    assert OrderState._fields[:n] == OrderRecord._fields
    assert OrderState._fields[n:] == ("status", "reason", "filled_units", "updated_ts")
    order_fields = tuple(f.name for f in dataclasses.fields(Order))
    assert order_fields[:n] == OrderRecord._fields
    assert set(OrderState._fields) <= set(order_fields)


def test_events_and_fills_keep_their_fields_venue_ids_included(
        make_journal: Callable[[], Any]) -> None:
    j = make_journal()
    journal_one_order(j)
    got = contents(j)
    assert got.events[1] == OrderEvent(1, "r-1", T0 + 60_000, S.SUBMITTED, None)
    assert [(f.fill_seq, f.qty_units, f.venue_trade_id, f.venue_ts) for f in got.fills] == [
        (1, 50_000_000, "T-1", T0 + 119_000), (2, 100_000_000, None, None)]


def test_flush_then_close_keep_everything_readable(make_journal: Callable[[], Any]) -> None:
    j = make_journal()
    journal_one_order(j)
    j.flush()
    j.close()
    assert len(list(j.replay())) == 7


def test_an_empty_journal_replays_nothing(make_journal: Callable[[], Any]) -> None:
    j = make_journal()
    assert list(j.replay()) == []
    assert contents(j) == ([], [], [])
