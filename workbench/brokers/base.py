"""The Broker port: the contract every broker (sim, paper, null, Binance) keeps.

State machine, the same for every broker (``model.TRANSITIONS``)::

    NEW -> SUBMITTED -> PARTIALLY_FILLED -> FILLED | CANCELED | REJECTED
    NEW -> REJECTED            (refused at submit: funds, position, minimum notional)
    NEW -> BLOCKED             (risk; set by the step, never reaches a broker)
    NEW | SUBMITTED | PARTIALLY_FILLED -> UNKNOWN
                               (sent, outcome not known: a timeout, a 5xx, a dropped response)
    UNKNOWN -> SUBMITTED | PARTIALLY_FILLED | FILLED | CANCELED | REJECTED
                               (only what a query of the venue answers, from ``poll``)

Size. Before the step creates an order it asks the broker what quantity it takes the intent on
at (``cap_qty``): the intent's own, or less where the broker caps orders (``BinanceBroker``
under ``--tiny``: the venue's minimum notional, or ``live.tiny_notional``), never more. The
order is created, journaled and checked by risk at that quantity, so a capped order is one
record, not an order changed after it was journaled; its NEW event carries the reason
``CAPPED <asked> -> <taken>``. The simulated, paper and null brokers take every intent whole.

The step creates each order (status NEW) and journals it before calling ``submit``. The broker
reports every later transition and every execution back through the ``OrderSink`` it was bound
to (``bind``). A call whose outcome the broker cannot know raises ``OutcomeUnknown``: the step
marks the order UNKNOWN (the run goes on) and the broker resolves it later by asking the venue
in ``poll``, never by sending the order again.

The books. Cash, positions, lots and round trips move only through the step: the broker reports
an execution (``OrderSink.order_fill``) and the step applies it to the ``Book``. The broker
reads the books (free cash, free position, marks) and owns one thing in them: the reservations
of the orders it holds open (``Book.reserve`` when an order starts resting, ``Book.release``
when it stops), as a venue holds the funds of an open order. A broker that holds nothing open
(a market order filled at once, a null broker) writes nothing. See adr/0011.

Time. ``on_bar`` lets resting orders work against a closed bar (a simulated venue); ``poll``
is the hook between bars for a venue that speaks by itself (acknowledgements, fills,
reconciliation of UNKNOWN orders); the sim broker's is a no-op. A fill reported from ``poll``
passes the venue's ``trade_id`` and execution time to ``order_fill``; the step stamps it with
its clock.

Reject reasons are stable codes: ``INSUFFICIENT_FUNDS``, ``INSUFFICIENT_POSITION``,
``MIN_NOTIONAL``, ``NO_PRICE``, ``POSITION_OVERFLOW`` (a buy that would take the position past
``model.MAX_QTY``, the most the books hold as 64-bit integer units); cancel reasons: ``USER``,
``EXPIRED``, ``REMAINDER`` (the rest of an order capped by participation, ``remainder:
cancel``), ``SHADOW`` (shadow mode: ``NullBroker`` accepts, records and withdraws every
order at once, sending nothing); unknown-outcome reasons: ``TIMEOUT``, ``VENUE_ERROR``,
``NO_RESPONSE``. Orders still resting when a backtest ends stay SUBMITTED (or
PARTIALLY_FILLED): they were working when the data ran out; one still on its way to a
simulated venue with a latency stays NEW.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Protocol

from workbench.book import Book
from workbench.model import NO_COSTS, Bar, Order, OrderIntent, OrderStatus

CAPPED = "CAPPED"
"""The reason on the NEW event of an order ``cap_qty`` sized down."""


class RejectReason(StrEnum):
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    INSUFFICIENT_POSITION = "INSUFFICIENT_POSITION"
    INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"  # a short beyond portfolio.short_margin
    MIN_NOTIONAL = "MIN_NOTIONAL"
    NO_PRICE = "NO_PRICE"
    POSITION_OVERFLOW = "POSITION_OVERFLOW"


class CancelReason(StrEnum):
    USER = "USER"
    EXPIRED = "EXPIRED"
    # the unfilled rest of an order capped by participation, with `execution.remainder: cancel`
    REMAINDER = "REMAINDER"
    SHADOW = "SHADOW"  # shadow mode: accepted and recorded by NullBroker, never sent
    SPLIT = "SPLIT"  # a reverse split floored the resting order's quantity to nothing


class UnknownReason(StrEnum):
    TIMEOUT = "TIMEOUT"
    VENUE_ERROR = "VENUE_ERROR"  # a 5xx, or an answer that says nothing of the order
    NO_RESPONSE = "NO_RESPONSE"  # the connection dropped after the request left


class OutcomeUnknown(Exception):
    """Raised by a broker when a request left but its outcome is not known: the order becomes
    UNKNOWN (the run goes on) until a venue query resolves it."""

    def __init__(self, reason: str = UnknownReason.TIMEOUT, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = str(reason)


class OrderSink(Protocol):
    """Receives what a broker reports; the step implements it. A simulated venue with a
    latency also reads the step's time."""

    @property
    def now(self) -> int:
        """The step's clock (ms UTC): the decision's time while the strategy decides."""
        ...

    def order_status(self, order: Order, status: OrderStatus, reason: str | None = None) -> None:
        ...

    def order_fill(self, order: Order, units: int, price: float, fee: float,
                   trade_id: str | None = None, venue_ts: int | None = None,
                   fee_units: int = 0, costs: tuple[float, float, float] = NO_COSTS) -> None:
        """An execution of ``units`` at ``price`` (``fee`` in the quote currency); a venue
        passes its trade id and execution time (ms UTC), and ``fee_units`` of the ``units``
        when it kept its commission in the asset bought (``Fill.fee_units``); a simulation its
        (spread, slippage, impact) ``costs`` (``Fill.spread_cost``, ...)."""


class Broker(Protocol):
    """Takes orders from the step and reports their fate through the sink."""

    @property
    def resting(self) -> Mapping[str, Sequence[Order]]:
        """The orders working at the broker by symbol, live (read-only to others; empty when
        none): resting, partly filled, or (a simulated venue with a latency) still on their
        way to it or with a cancel on its way. The step tests its truth once per bar, calling
        ``on_bar`` only while any rest, and an event-fed backtest hands over every bar then."""

    def bind(self, sink: OrderSink, book: Book) -> None:
        """Report to ``sink``; read (and reserve in) ``book``. Called once, before ``submit``."""

    def cap_qty(self, intent: OrderIntent) -> float:
        """The quantity an order for ``intent`` is taken on at: ``intent.qty``, or less where
        the broker caps orders; called by the step before the order is created and journaled."""

    def submit(self, order: Order) -> None:
        """Accept (SUBMITTED, maybe filled at once) or reject the order, through the sink."""

    def cancel(self, order: Order, reason: str = CancelReason.USER) -> bool:
        """Cancel an open order; False if it was not open here. A broker whose cancels take
        time (a venue, a simulated latency) answers True when the cancel was sent; the order
        ends CANCELED when it arrives, or keeps the state a fill gave it meanwhile."""

    def on_bar(self, bar: Bar) -> None:
        """Let resting orders of ``bar.symbol`` work against this closed bar."""

    def poll(self, now: int) -> None:
        """Between bars: report what the venue says happened since the last call
        (acknowledgements, fills, cancels) and resolve UNKNOWN orders by asking the venue."""
