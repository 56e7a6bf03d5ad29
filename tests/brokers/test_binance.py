"""BinanceBroker through the step, against the fake exchange with the real python-binance client.

The venue clock is a ManualClock the tests step (bars close when it passes them); the fake's
wall clock (its invisibility window) and the broker's monotonic clock are stepped too, so nothing
here sleeps or times anything. The fake's own record (``fx.matcher.orders``) is the witness of
what reached the venue: no test may find a duplicate there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from workbench.book import Book
from workbench.brokers.binance import BANNED, RATE_LIMITED, BinanceBroker
from workbench.brokers.venue_rules import SymbolFilters
from workbench.contract.adapters import write_bars
from workbench.engine.journal import MemoryJournal
from workbench.engine.step import Step
from workbench.model import Bar, Order, OrderIntent, OrderStatus, OrderType, Side
from workbench.strategy import Context, Strategy
from workbench.venue_client import RetryPolicy, VenueClient
from workbench.venues.bar_book import BarBook
from workbench.venues.fake_binance import FakeBinance
from workbench.venues.venue_clock import ManualClock

T0 = 1_704_067_200_000
MIN = 60_000
KEY, SECRET = "k-broker", "s-broker"


def _bars(path: Path) -> BarBook:
    """The contract suites' bars (42,000 + i at minute i, volume 0.004 + i/10,000)."""
    return BarBook.from_file(write_bars(path, 40), "BTCUSDT")


class Scripted(Strategy):
    """Submits what the test queues, on the next bar."""

    def on_start(self, ctx: Context) -> None:
        self.queue: list[OrderIntent] = []
        self.ctx = ctx

    def on_bar(self, ctx: Context, bar: Bar) -> list[OrderIntent] | None:
        out, self.queue = self.queue, []
        return out or None


@dataclass
class Rig:
    fx: FakeBinance
    clock: ManualClock
    wall: ManualClock
    venue: VenueClient
    broker: BinanceBroker
    step: Step
    strategy: Scripted
    mono: list[float] = field(default_factory=lambda: [1000.0])

    def advance(self, minutes: int = 1, wall_s: float = 0.0, mono_s: float = 0.0) -> None:
        """Venue minutes pass (bars close); the fake's wall and the broker's clock move."""
        self.clock.advance(minutes * MIN)
        self.wall.advance(int(wall_s * 1000))
        self.mono[0] += mono_s
        self.venue.sync_time()

    def bar(self) -> None:
        """The last closed bar, through the step (marks, then the strategy's orders)."""
        b = self.fx.bars
        i = max(k for k, t in enumerate(b.ts) if t + MIN <= self.clock.now_ms())
        self.step.on_bar(Bar("BTCUSDT", b.ts[i], b.open[i], b.high[i], b.low[i], b.close[i],
                             b.volume[i]))

    def order(self, side: Side, qty: float, limit: float | None = None) -> Order:
        self.strategy.queue.append(OrderIntent(
            "BTCUSDT", side, qty, OrderType.LIMIT if limit else OrderType.MARKET, limit))
        self.bar()
        return self.step_orders()[-1]

    def step_orders(self) -> list[Order]:
        return self.orders_seen

    orders_seen: list[Order] = field(default_factory=list)

    def venue_orders(self) -> list[Any]:
        return self.fx.matcher.orders

    def balances(self) -> dict[str, str]:
        return {b["asset"]: b["free"] for b in self.fx.matcher.balances(self.clock.now_ms())}


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Any]:
    started: list[FakeBinance] = []

    def make(**venue_options: Any) -> Rig:
        broker_options = venue_options.pop("broker", {})
        clock = ManualClock(T0 + 10 * MIN)
        wall = ManualClock(1_800_000_000_000)
        fx = FakeBinance(_bars(tmp_path / "bars.csv"), clock=clock, api_key=KEY,
                         api_secret=SECRET, wall_ms=wall.now_ms, **venue_options).start()
        started.append(fx)
        mono = [1000.0]
        venue = VenueClient(fx.url, api_key=KEY, api_secret=SECRET,
                            policy=RetryPolicy(attempts=2, base_s=0.0, cap_s=0.0),
                            sleep=lambda s: None, monotonic=lambda: mono[0])
        venue.sync_time()
        info = venue.client.get_exchange_info()
        filters = {s["symbol"]: SymbolFilters.from_exchange_info(s) for s in info["symbols"]}
        broker = BinanceBroker(venue, filters, quote_asset="USDT",
                               base_assets={"BTCUSDT": "BTC"}, run_id="run-1",
                               monotonic=lambda: mono[0], **broker_options)
        strategy = Scripted()
        step = Step(strategy, broker, Book(10_000.0), MemoryJournal(), run_id="run-1",
                    timeframe_ms=MIN)
        step.start(T0)
        rig = Rig(fx, clock, wall, venue, broker, step, strategy, mono)
        original = step.submit

        def submit(intent: OrderIntent) -> Order:
            order = original(intent)
            rig.orders_seen.append(order)
            return order

        step.submit = submit  # type: ignore[method-assign]
        return rig

    yield make
    for fx in started:
        fx.stop()


def test_binance_market_buy_with_a_base_asset_commission_books_the_fee_in_kind(
        make_rig: Any) -> None:
    rig = make_rig()
    order = rig.order(Side.BUY, 0.001)
    assert order.status is OrderStatus.FILLED and order.filled_units == 100_000
    fill = rig.step.journal.fills[-1]
    close = rig.fx.bars.close[9]
    # 0.1 % kept in BTC: the books receive what the venue holds, the fee is its quote value
    assert fill.price == close and (fill.qty, fill.qty_units, fill.fee_units) == (
        0.000999, 99_900, 100)
    assert fill.fee == pytest.approx(0.001 * 0.001 * close)
    assert rig.step.book.units["BTCUSDT"] == 99_900
    assert rig.balances()["BTC"] == "0.00099900"
    assert rig.step.book.cash == pytest.approx(10_000 - 0.001 * close)  # as the venue's USDT
    assert rig.broker.base_commission == {}
    assert [v.trade_id for v in rig.broker.venue_fills] == [1]
    assert fill.venue_trade_id == "1"
    assert len(rig.venue_orders()) == 1 and rig.venue_orders()[0].client_order_id == "run-1-1"


def test_binance_filter_breach_is_rejected_with_the_filter_named_and_never_sent(
        make_rig: Any) -> None:
    rig = make_rig()
    order = rig.order(Side.BUY, 0.0010005)
    assert (order.status, order.reason) == (OrderStatus.REJECTED, "VENUE_FILTER_LOT_SIZE")
    small = rig.order(Side.BUY, 0.00001)
    assert (small.status, small.reason) == (OrderStatus.REJECTED, "VENUE_FILTER_NOTIONAL")
    assert rig.fx.faults.calls("order") == 0 and rig.broker.sent == 0


def test_binance_limit_rests_reserves_then_fills_when_a_bar_touches_it(make_rig: Any) -> None:
    rig = make_rig()
    # the last closed bar is 9 (close 42010.75): a buy limit at 42011 crosses, fills at once
    order = rig.order(Side.BUY, 0.001, limit=42_011.0)
    assert order.status is OrderStatus.FILLED
    assert rig.step.journal.fills[-1].price == 42_010.75
    resting = rig.order(Side.BUY, 0.001, limit=42_009.0)
    assert resting.status is OrderStatus.SUBMITTED
    assert rig.step.book.free_cash < rig.step.book.cash  # its cash is reserved
    rig.advance(1)  # bar 10 closes: low 42006.5 touches 42009
    rig.step.poll()
    assert resting.status is OrderStatus.FILLED
    assert rig.step.journal.fills[-1].price == 42_009.0
    assert rig.step.book.free_cash == pytest.approx(rig.step.book.cash)
    assert rig.broker.resting == {}


def test_binance_cancel_of_a_resting_order_and_after_a_fill(make_rig: Any) -> None:
    rig = make_rig()
    resting = rig.order(Side.BUY, 0.001, limit=41_000.0)
    assert rig.step.cancel(resting) is True and resting.status is OrderStatus.CANCELED
    assert rig.step.book.free_cash == pytest.approx(rig.step.book.cash)
    other = rig.order(Side.BUY, 0.001, limit=42_009.0)
    rig.advance(1)  # it fills at the venue; the broker has not polled yet
    assert rig.step.cancel(other) is False
    assert other.status is OrderStatus.FILLED  # learned from the venue, a stable end
    assert len(rig.venue_orders()) == 2


@pytest.mark.parametrize("fault", ["order:lost@1", "order:unknown=503@1",
                                   "order:unknown=1007@1"])
def test_binance_accepted_order_with_an_unknown_outcome_is_found_never_resent(
        make_rig: Any, fault: str) -> None:
    rig = make_rig()
    rig.fx.inject(fault)
    rig.venue.client.REQUEST_TIMEOUT = 3
    order = rig.order(Side.BUY, 0.001)
    assert order.status is OrderStatus.UNKNOWN
    rig.step.poll()
    assert order.status is OrderStatus.FILLED
    assert len(rig.venue_orders()) == 1 and rig.broker.sent == 1
    assert rig.step.journal.fills[-1].executed_units == 100_000


def test_binance_refused_5xx_is_resent_only_after_the_invisibility_window(make_rig: Any
                                                                          ) -> None:
    rig = make_rig(broker={"invisible_s": 10.0})
    rig.fx.inject("order:503@1")  # refused: nothing taken, but the client cannot know
    order = rig.order(Side.BUY, 0.001)
    assert order.status is OrderStatus.UNKNOWN and rig.venue_orders() == []
    rig.step.poll()  # -2013, inside the window: wait
    rig.advance(0, mono_s=3.0)
    rig.step.poll()
    assert order.status is OrderStatus.UNKNOWN and rig.broker.sent == 1
    rig.advance(0, mono_s=8.0)  # past the window: it does not exist, so it is sent again
    rig.step.poll()
    assert order.status is OrderStatus.FILLED and rig.broker.sent == 2
    assert len(rig.venue_orders()) == 1  # exactly one order at the venue


def test_binance_order_invisible_after_create_is_not_duplicated(make_rig: Any) -> None:
    rig = make_rig(broker={"invisible_s": 10.0})
    rig.fx.inject("order:invisible=3s,order:lost@1")
    order = rig.order(Side.BUY, 0.001)
    assert order.status is OrderStatus.UNKNOWN
    for _ in range(3):  # the venue says -2013 for a while: never resent within the window
        rig.advance(0, wall_s=0.5, mono_s=1.0)
        rig.step.poll()
    assert order.status is OrderStatus.UNKNOWN and rig.broker.sent == 1
    rig.advance(0, wall_s=2.0, mono_s=2.0)  # the venue shows it now; the next ask is due
    rig.step.poll()
    assert order.status is OrderStatus.FILLED
    assert len(rig.venue_orders()) == 1 and rig.broker.sent == 1


def test_binance_duplicate_id_after_a_restart_resolves_to_the_open_order(make_rig: Any
                                                                         ) -> None:
    rig = make_rig()
    first = rig.order(Side.BUY, 0.001, limit=41_000.0)
    assert first.status is OrderStatus.SUBMITTED
    # a restarted process whose journal lost the answer sends order 1 again: same id
    broker = BinanceBroker(rig.venue, rig.broker.filters, quote_asset="USDT",
                           base_assets={"BTCUSDT": "BTC"}, run_id="run-1",
                           monotonic=lambda: rig.mono[0])
    step = Step(Scripted(), broker, Book(10_000.0), MemoryJournal(), run_id="run-1",
                timeframe_ms=MIN)
    step.start(T0)
    strategy = step.strategy
    assert isinstance(strategy, Scripted)
    strategy.queue.append(OrderIntent("BTCUSDT", Side.BUY, 0.001, OrderType.LIMIT, 41_000.0))
    b = rig.fx.bars
    step.on_bar(Bar("BTCUSDT", b.ts[9], b.open[9], b.high[9], b.low[9], b.close[9],
                    b.volume[9]))
    order = step.open_orders()[0]
    assert order.status is OrderStatus.UNKNOWN  # -2010 Duplicate order sent.
    step.poll()
    assert order.status is OrderStatus.SUBMITTED and broker.resting["BTCUSDT"] == [order]
    assert len(rig.venue_orders()) == 1


def test_binance_venue_refusals_become_stable_reasons(make_rig: Any) -> None:
    rig = make_rig(balances={"USDT": "10", "BTC": "0"})
    order = rig.order(Side.BUY, 0.001)  # 42 USDT of 10
    assert (order.status, order.reason) == (OrderStatus.REJECTED, "INSUFFICIENT_FUNDS")
    rig.fx.inject("order:429=2@1")
    limited = rig.order(Side.BUY, 0.0002)
    assert (limited.status, limited.reason) == (OrderStatus.REJECTED, RATE_LIMITED)


def test_binance_order_failures_count_venue_refusals_not_orders_held_back_locally(
        make_rig: Any) -> None:
    rig = make_rig()
    told: list[tuple[int, str]] = []
    rig.broker.on_failures = lambda failures, cause: told.append((failures, cause))
    rig.fx.inject("order:429=2@1")
    rig.order(Side.BUY, 0.001)  # the venue throttled it: a failure
    rig.fx.inject("order:418=30@1")
    rig.order(Side.BUY, 0.001)  # the venue banned us: a failure
    held = rig.order(Side.BUY, 0.001)  # held back during the ban, never sent: not one
    assert (held.status, held.reason) == (OrderStatus.REJECTED, BANNED)
    assert rig.broker.failures == 2
    rig.advance(0, mono_s=31.0)
    assert rig.order(Side.BUY, 0.001).status is OrderStatus.FILLED  # answered: back to 0
    assert told == [(1, RATE_LIMITED), (2, BANNED), (0, "ANSWERED")]


def test_binance_ban_stops_every_order_until_it_lifts(make_rig: Any) -> None:
    rig = make_rig()
    rig.fx.inject("order:418=30@1")
    banned = rig.order(Side.BUY, 0.001)
    assert (banned.status, banned.reason) == (OrderStatus.REJECTED, BANNED)
    calls = rig.fx.faults.calls("order")
    during = rig.order(Side.BUY, 0.001)
    assert (during.status, during.reason) == (OrderStatus.REJECTED, BANNED)
    assert rig.fx.faults.calls("order") == calls  # nothing was sent during the ban
    rig.advance(0, mono_s=31.0)
    after = rig.order(Side.BUY, 0.001)
    assert after.status is OrderStatus.FILLED


def test_binance_partial_fills_aggregate_per_report_and_keep_each_venue_fill(
        make_rig: Any) -> None:
    rig = make_rig(participation=0.25)  # bar i's volume is 0.004 + i/10000
    order = rig.order(Side.BUY, 0.003, limit=42_100.0)  # crosses: part now, the rest rests
    assert order.status is OrderStatus.PARTIALLY_FILLED  # 0.25 x 0.0049 -> 0.00122
    rig.advance(3)  # bars 10 (0.00125) and 11 (the last 0.00053) fill the rest at the venue
    rig.step.poll()
    assert order.status is OrderStatus.FILLED
    fills = rig.step.journal.fills
    assert [f.executed_units for f in fills] == [122_000, 178_000]  # one logical fill per report
    assert [v.qty for v in rig.broker.venue_fills] == [
        Decimal("0.00122"), Decimal("0.00125"), Decimal("0.00053")]
    assert fills[1].venue_trade_id == "2,3"
    assert fills[1].price == pytest.approx((0.00125 * 42_010 + 0.00053 * 42_011) / 0.00178)
    assert rig.broker.resting == {}


def test_binance_fee_in_bnb_is_converted_at_the_venues_price(make_rig: Any) -> None:
    rig = make_rig(balances={"USDT": "10000", "BTC": "0", "BNB": "1"}, fee_asset="BNB",
                   fee_asset_price="300")
    rig.order(Side.BUY, 0.001)
    venue_fill = rig.broker.venue_fills[-1]
    assert venue_fill.commission_asset == "BNB"
    fill = rig.step.journal.fills[-1]
    assert fill.fee == pytest.approx(float(venue_fill.commission) * 300)
    assert fill.fee == pytest.approx(0.001 * 0.001 * fill.price, rel=1e-3)
    assert "BTCUSDT" not in rig.broker.base_commission


def test_binance_restore_commissions_counts_only_fees_booked_before_fees_in_kind(
        make_rig: Any) -> None:
    rig = make_rig()
    base = {"symbol": "BTCUSDT", "commission_asset": "BTC", "commission": "0.000001"}
    rig.broker.restore_commissions([
        base,  # journaled by a version that booked it as a quote fee: the books hold it
        base | {"commission": "0.000002", "fee_units": 200},  # booked in kind: nothing to add
        {"symbol": "BTCUSDT", "commission_asset": "USDT", "commission": "0.04"}])
    assert rig.broker.base_commission == {"BTCUSDT": Decimal("0.000001")}


def test_binance_tiny_sizes_an_order_above_the_cap_down_to_the_minimum_notional(
        make_rig: Any) -> None:
    rig = make_rig(broker={"tiny": True})
    big = rig.order(Side.BUY, 0.001)  # 42 USDT at 42,010.75; the minimum is 5
    assert big.status is OrderStatus.FILLED and big.qty == 0.00012  # 5.04 USDT
    assert [o.qty for o in rig.step.journal.orders] == [0.00012]  # journaled as sized
    new = rig.step.journal.events[0]
    assert (new.status, new.reason) == (OrderStatus.NEW, "CAPPED 0.001 -> 0.00012")
    assert [o.qty for o in rig.venue_orders()] == [Decimal("0.00012")]
    assert rig.step.journal.fills[-1].executed_units == 12_000 and rig.broker.sent == 1


def test_binance_tiny_order_at_or_below_the_cap_is_sent_as_asked(make_rig: Any) -> None:
    rig = make_rig(broker={"tiny": True})
    at_cap = rig.order(Side.BUY, 0.00012)
    assert at_cap.status is OrderStatus.FILLED and at_cap.qty == 0.00012
    assert rig.step.journal.events[0].reason is None  # not sized down: nothing to say
    below = rig.order(Side.BUY, 0.00005)  # under the venue's minimum: refused, never sized up
    assert (below.status, below.reason) == (OrderStatus.REJECTED, "VENUE_FILTER_NOTIONAL")
    assert rig.broker.sent == 1


def test_binance_tiny_notional_above_the_minimum_is_the_cap_on_the_lot_grid(make_rig: Any
                                                                            ) -> None:
    rig = make_rig(broker={"tiny": True, "tiny_notional": 10.0})
    order = rig.order(Side.BUY, 0.5)  # 10 / 42,010.75 = 0.000238..: down to the 1e-5 step
    assert order.status is OrderStatus.FILLED and order.qty == 0.00023


def test_binance_tiny_limit_order_is_sized_at_its_limit_price(make_rig: Any) -> None:
    rig = make_rig(broker={"tiny": True})
    order = rig.order(Side.BUY, 0.001, limit=25_000.0)  # 5 / 25,000 = 0.0002, resting
    assert order.status is OrderStatus.SUBMITTED and order.qty == 0.0002


def test_binance_tiny_reduce_only_order_is_not_capped(make_rig: Any) -> None:
    rig = make_rig(broker={"tiny": True}, balances={"USDT": "10000", "BTC": "0", "BNB": "1"},
                   fee_asset="BNB", fee_asset_price="300")  # the venue's BTC is the books'
    rig.order(Side.BUY, 0.001)
    rig.order(Side.BUY, 0.001)
    held = rig.step.book.units["BTCUSDT"]
    assert held == 24_000  # two capped buys of 0.00012
    rig.strategy.queue.append(OrderIntent("BTCUSDT", Side.SELL, 0.00024, reduce_only=True))
    rig.bar()
    flatten = rig.step_orders()[-1]
    assert flatten.status is OrderStatus.FILLED and flatten.qty == 0.00024
    assert rig.step.book.units.get("BTCUSDT", 0) == 0


def test_binance_tiny_order_handed_to_the_broker_unsized_is_refused_not_sent(
        make_rig: Any) -> None:
    rig = make_rig(broker={"tiny": True})
    rig.bar()  # a price for BTCUSDT
    order = Order(1, "run-1-1", "BTCUSDT", Side.BUY, OrderType.MARKET, 0.001, 100_000, None,
                  T0, T0)
    rig.broker.submit(order)  # past the step, so past cap_qty
    assert (order.status, order.reason) == (OrderStatus.REJECTED, "TINY_CAP")
    assert rig.broker.sent == 0 and rig.fx.faults.calls("order") == 0


def test_binance_cap_qty_without_tiny_is_the_intents_quantity(make_rig: Any) -> None:
    rig = make_rig()
    rig.bar()
    assert rig.broker.cap_qty(OrderIntent("BTCUSDT", Side.BUY, 3.0)) == 3.0


def test_binance_stale_clock_is_resynced_and_the_order_sent_once(make_rig: Any) -> None:
    rig = make_rig()
    rig.clock.advance(5 * MIN)  # the venue moved on; our offset is five minutes stale
    order = rig.order(Side.BUY, 0.001)  # -1021: refused, nothing taken; resynced, resent
    assert order.status is OrderStatus.FILLED
    assert len(rig.venue_orders()) == 1 and rig.broker.sent == 2


def test_binance_clock_not_known_within_the_recv_window_refuses_to_trade(make_rig: Any
                                                                         ) -> None:
    rig = make_rig()
    rig.venue.sync_uncertainty_ms = 6_000.0  # the last read of /time took 6 s: recvWindow 5 s
    order = rig.order(Side.BUY, 0.001)
    assert (order.status, order.reason) == (OrderStatus.REJECTED, "CLOCK_SKEW")
    assert rig.broker.sent == 0
    reads = rig.fx.faults.calls("time")
    rig.mono[0] += 61.0  # a minute on: the offset is stale, read again before the order
    again = rig.order(Side.BUY, 0.001)
    assert again.status is OrderStatus.FILLED and rig.fx.faults.calls("time") == reads + 1


def test_binance_ban_while_an_order_is_unknown_stops_its_queries_until_it_lifts(
        make_rig: Any) -> None:
    rig = make_rig(broker={"invisible_s": 10.0})
    rig.fx.inject("order:unknown=503@1,getOrder:418=30@1")
    order = rig.order(Side.BUY, 0.001)
    assert order.status is OrderStatus.UNKNOWN
    rig.step.poll()  # the query is answered 418: banned for 30 s
    asked = rig.fx.faults.calls("getOrder")
    for _ in range(5):  # inside the ban: nothing may reach the venue
        rig.advance(0, mono_s=5.0)
        rig.step.poll()
    assert rig.fx.faults.calls("getOrder") == asked
    rig.advance(0, mono_s=6.0)  # the ban lifted
    rig.step.poll()
    assert order.status is OrderStatus.FILLED and len(rig.venue_orders()) == 1


def test_binance_cancel_throttled_by_the_venue_leaves_the_order_open_not_a_fault(
        make_rig: Any) -> None:
    rig = make_rig()
    order = rig.order(Side.BUY, 0.001, limit=41_000.0)
    assert order.status is OrderStatus.SUBMITTED
    rig.fx.inject("cancelOrder:429@1")
    assert rig.step.cancel(order) is False  # throttled: nothing was done
    assert order.status is OrderStatus.SUBMITTED
    assert rig.step.cancel(order) is True and order.status is OrderStatus.CANCELED


def test_binance_resend_whose_answer_is_lost_too_is_found_not_sent_a_third_time(
        make_rig: Any) -> None:
    rig = make_rig(broker={"invisible_s": 10.0})
    rig.fx.inject("order:503@1,order:lost@2")
    rig.venue.client.REQUEST_TIMEOUT = 3
    order = rig.order(Side.BUY, 0.001)
    assert order.status is OrderStatus.UNKNOWN and rig.venue_orders() == []
    rig.advance(0, mono_s=11.0)  # past the window: sent again, and that answer is lost
    rig.step.poll()
    assert order.status is OrderStatus.UNKNOWN and rig.broker.sent == 2
    for _ in range(4):
        rig.advance(0, mono_s=1.0)
        rig.step.poll()
    assert order.status is OrderStatus.FILLED and rig.broker.sent == 2
    assert len(rig.venue_orders()) == 1 and len(rig.step.journal.fills) == 1
    assert rig.step.book.units["BTCUSDT"] == 99_900  # 0.1 % kept by the venue, in BTC


def test_binance_order_not_at_the_venue_after_a_halt_is_not_sent_again(make_rig: Any) -> None:
    rig = make_rig(broker={"invisible_s": 10.0})
    halted = [False]
    rig.broker.halted = lambda: halted[0]
    rig.fx.inject("order:503@1")  # refused: nothing taken, but the client cannot know
    order = rig.order(Side.BUY, 0.001)
    assert order.status is OrderStatus.UNKNOWN
    halted[0] = True  # the operator halts (or flattens) meanwhile
    rig.advance(0, mono_s=11.0)  # past the window: the venue says it does not exist
    rig.step.poll()
    assert (order.status, order.reason) == (OrderStatus.REJECTED, "NOT_RESENT_HALTED")
    assert rig.broker.sent == 1 and rig.venue_orders() == []
    assert rig.step.book.free_cash == pytest.approx(rig.step.book.cash)  # nothing held


def test_binance_minute_weight_spent_refuses_orders_without_a_request(make_rig: Any) -> None:
    rig = make_rig(weight_limit=45)  # the rig's start used 21
    rig.venue.set_limits(rig.venue.call("exchangeInfo", rig.venue.client.get_exchange_info))
    assert rig.venue.used_weight == 41 and rig.venue.held_back_s() > 0  # 41 >= 90 % of 45
    calls = rig.fx.faults.calls("order")
    order = rig.order(Side.BUY, 0.001)
    assert (order.status, order.reason) == (OrderStatus.REJECTED, "VENUE_RATE_LIMITED")
    assert rig.fx.faults.calls("order") == calls and rig.broker.sent == 0
    assert rig.broker.failures == 0  # held back, not refused by the venue
    rig.advance(0, wall_s=60.0, mono_s=61.0)  # the next minute, at the venue and here
    assert rig.order(Side.BUY, 0.001).status is OrderStatus.FILLED


@pytest.mark.parametrize("fault", ["cancelOrder:lost@1", "cancelOrder:unknown=503@1"])
def test_binance_cancel_that_took_but_whose_answer_was_lost_ends_canceled(
        make_rig: Any, fault: str) -> None:
    rig = make_rig()
    resting = rig.order(Side.BUY, 0.001, limit=41_000.0)
    rig.fx.inject(fault)  # the venue cancels it; the answer never reaches us
    rig.venue.client.REQUEST_TIMEOUT = 3
    assert rig.step.cancel(resting) is False
    assert resting.status is OrderStatus.UNKNOWN
    assert rig.fx.matcher.orders[0].status == "CANCELED"
    rig.advance(1)
    rig.bar()  # the next bar: the broker asks the venue about its working orders
    rig.step.poll()
    assert resting.status is OrderStatus.CANCELED
    assert rig.step.book.free_cash == pytest.approx(rig.step.book.cash)
    assert rig.broker.resting == {}
