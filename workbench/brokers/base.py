"""The Broker port: the contract every broker (sim, paper, null, Binance) keeps.

State machine, the same for every broker::

    NEW -> SUBMITTED -> PARTIALLY_FILLED -> FILLED | CANCELED | REJECTED
    NEW -> REJECTED            (refused at submit: funds, position, minimum notional)
    NEW -> BLOCKED             (risk; set by the step, never reaches a broker)

The step creates each order (status NEW) and journals it before calling ``submit``. The broker
reports every later transition and every execution back through the ``OrderSink`` it was bound
to; it never writes the books itself, it only reads them (free cash, free position, marks).

Reject reasons are stable codes: ``INSUFFICIENT_FUNDS``, ``INSUFFICIENT_POSITION``,
``MIN_NOTIONAL``, ``NO_PRICE``, ``POSITION_OVERFLOW`` (a buy that would take the position past
``model.MAX_QTY``, the most the books hold as 64-bit integer units); cancel reasons: ``USER``,
``EXPIRED``. Orders still resting when a backtest ends stay SUBMITTED: they were working when
the data ran out.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from workbench.book import Book
from workbench.model import Bar, Order, OrderStatus


class RejectReason(StrEnum):
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    INSUFFICIENT_POSITION = "INSUFFICIENT_POSITION"
    MIN_NOTIONAL = "MIN_NOTIONAL"
    NO_PRICE = "NO_PRICE"
    POSITION_OVERFLOW = "POSITION_OVERFLOW"


class CancelReason(StrEnum):
    USER = "USER"
    EXPIRED = "EXPIRED"


class OrderSink(Protocol):
    """Receives what a broker reports; the step implements it."""

    def order_status(self, order: Order, status: OrderStatus, reason: str | None = None) -> None:
        ...

    def order_fill(self, order: Order, units: int, price: float, fee: float) -> None:
        ...


class Broker(Protocol):
    """Takes orders from the step and reports their fate through the sink."""

    pending: dict[str, list[Order]]

    def bind(self, sink: OrderSink, book: Book) -> None:
        ...

    def submit(self, order: Order) -> None:
        """Accept (SUBMITTED, maybe filled at once) or reject the order, through the sink."""

    def cancel(self, order: Order, reason: str = CancelReason.USER) -> bool:
        """Cancel an open order; False if it was not open here."""

    def on_bar(self, bar: Bar) -> None:
        """Let resting orders of ``bar.symbol`` work against this bar."""
