"""The journal port: where the step writes orders, their events and fills, ahead of the broker.

In a backtest it is ``MemoryJournal``: plain lists, written to the warehouse in one transaction
at the end (no fsync in the hot loop). Live modes use the fsync'd write-ahead log instead.
"""

from __future__ import annotations

from typing import Protocol

from workbench.model import Fill, Order, OrderStatus


class Journal(Protocol):
    def order(self, order: Order) -> None:
        """Record a new order (intent plus client_order_id) before any broker sees it."""

    def event(self, order: Order, status: OrderStatus, reason: str | None, ts: int) -> None:
        ...

    def fill(self, fill: Fill) -> None:
        ...


class MemoryJournal:
    """Keeps everything in lists; the backtest writes them out in bulk at the end."""

    def __init__(self) -> None:
        self.orders: list[Order] = []
        self.events: list[tuple[int, str, int, OrderStatus, str | None]] = []
        self.fills: list[Fill] = []

    def order(self, order: Order) -> None:
        self.orders.append(order)

    def event(self, order: Order, status: OrderStatus, reason: str | None, ts: int) -> None:
        self.events.append((order.order_seq, order.client_order_id, ts, status, reason))

    def fill(self, fill: Fill) -> None:
        self.fills.append(fill)
