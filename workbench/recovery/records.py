"""Payloads for WAL records, built from the model's objects, and the books rebuilt from a State.

These are the shapes ``replay.apply_record`` reads, and the one mapping between the Journal port's
records (``OrderRecord``, ``OrderEvent``, ``Fill``) and WAL payloads, both ways (``*_record``
builds a payload, ``*_from_record`` reads one back, exactly); a runtime that journals through these
functions and rebuilds through :func:`book_from_state` cannot disagree with the fold. Payloads
hold immutable facts only: an ``order`` record is the order as taken on (its status lives in
``order_event`` records), never the live mutable ``Order``.
"""

from __future__ import annotations

from typing import Any

from workbench.book import Book
from workbench.engine.journal import OrderEvent, OrderRecord
from workbench.model import NO_COSTS, Bar, Fill, Order, OrderStatus, OrderType, Side
from workbench.recovery.replay import State


def start_record(initial_cash: float, *, run_id: str, mode: str, **extra: Any) -> dict[str, Any]:
    """The first ``control`` record of a run."""
    return {"action": "start", "initial_cash": float(initial_cash), "run_id": run_id,
            "mode": mode, **extra}


def control_record(action: str, *, ts: int, reason: str | None = None,
                   **extra: Any) -> dict[str, Any]:
    """``halt``, ``resume``, ``flatten`` (or another operator action) at ``ts``."""
    return {"action": action, "ts": ts, "reason": reason, **extra}


def bar_record(bar: Bar) -> dict[str, Any]:
    return {"symbol": bar.symbol, "ts": bar.ts, "open": bar.open, "high": bar.high,
            "low": bar.low, "close": bar.close, "volume": bar.volume}


def bar_from_record(payload: dict[str, Any]) -> Bar:
    """The ``Bar`` of a ``bar`` payload (extra keys, such as a live run's phase, ignored)."""
    return Bar(payload["symbol"], payload["ts"], payload["open"], payload["high"],
               payload["low"], payload["close"], payload["volume"])


def order_record(order: Order | OrderRecord, **extra: Any) -> dict[str, Any]:
    """The order as taken on: everything but its changing state (status, fills, bars seen).
    ``order`` is the journal's ``OrderRecord`` or a live ``Order`` (the same leading fields);
    ``extra``: e.g. ``wall_ts``."""
    return {"client_order_id": order.client_order_id, "order_seq": order.order_seq,
            "symbol": order.symbol, "side": order.side.value, "type": order.type.value,
            "qty": order.qty, "qty_units": order.qty_units, "limit_price": order.limit_price,
            "ts": order.ts, "bar_ts": order.bar_ts,
            "expire_after_bars": order.expire_after_bars, "reduce_only": order.reduce_only,
            "tag": order.tag, **extra}


def order_from_record(payload: dict[str, Any]) -> OrderRecord:
    """The journal's ``OrderRecord`` back from an ``order`` payload (exact: JSON carries the
    floats bit for bit, the enums by value)."""
    return OrderRecord(payload["order_seq"], payload["client_order_id"], payload["symbol"],
                       Side(payload["side"]), OrderType(payload["type"]), payload["qty"],
                       payload["qty_units"], payload["limit_price"], payload["ts"],
                       payload["bar_ts"], payload["expire_after_bars"], payload["reduce_only"],
                       payload["tag"])


def order_event_record(event: OrderEvent, **extra: Any) -> dict[str, Any]:
    """A status change (``extra``: e.g. the venue's order id or error code). The fold keys
    orders by ``client_order_id``; ``order_seq`` is kept for the journal's ``OrderEvent``."""
    return {"client_order_id": event.client_order_id, "order_seq": event.order_seq,
            "status": event.status.value, "reason": event.reason, "ts": event.ts, **extra}


def order_event_from_record(payload: dict[str, Any]) -> OrderEvent:
    return OrderEvent(payload["order_seq"], payload["client_order_id"], payload["ts"],
                      OrderStatus(payload["status"]), payload["reason"])


def fill_record(fill: Fill, **extra: Any) -> dict[str, Any]:
    """One fill, the venue's trade id and time included (``extra``: e.g. ``wall_ts``)."""
    return {"fill_seq": fill.fill_seq, "order_seq": fill.order_seq,
            "client_order_id": fill.client_order_id, "symbol": fill.symbol,
            "side": fill.side.value, "qty": fill.qty, "qty_units": fill.qty_units,
            "price": fill.price, "fee": fill.fee, "ts": fill.ts, "bar_ts": fill.bar_ts,
            "venue_trade_id": fill.venue_trade_id, "venue_ts": fill.venue_ts,
            **({"fee_units": fill.fee_units} if fill.fee_units else {}),
            **({"costs": [fill.spread_cost, fill.slippage_cost, fill.impact_cost]}
               if fill.spread_cost or fill.slippage_cost or fill.impact_cost else {}), **extra}


def fill_from_record(payload: dict[str, Any]) -> Fill:
    return Fill(payload["fill_seq"], payload["order_seq"], payload["client_order_id"],
                payload["symbol"], Side(payload["side"]), payload["qty"], payload["qty_units"],
                payload["price"], payload["fee"], payload["ts"], payload["bar_ts"],
                payload.get("venue_trade_id"), payload.get("venue_ts"),
                payload.get("fee_units", 0), *payload.get("costs", NO_COSTS))


def book_from_state(state: State) -> Book:
    """The in-loop books of a rebuilt state: its fills applied to a fresh ``Book`` in order
    (so FIFO lots and round trips come back too), marked at the last closes. Cash and positions
    equal the state's exactly (the fold does the same arithmetic); ``Book.check`` holds them."""
    book = Book(state.initial_cash)
    for payload in state.fills:
        book.apply_fill(fill_from_record(payload))
    for symbol, close in state.last_close.items():
        book.mark(symbol, close)
    return book
