"""The fake exchange's order side (``matching.py``), driven by the real python-binance ``Client``.

Venue time is a ``ManualClock`` the tests step to close bars; the order-count windows and the
invisibility window run on a separate ``wall`` ``ManualClock``. Nothing sleeps and nothing
asserts on wall-clock durations.

The bars: 0..4 flat at 42000 (the price the tests start at, with bar 4 the last closed), bar 5
gaps down (open 41900, low 41800), bars 6.. trade 41700..41900.3. Every bar's volume is 2.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from binance.client import Client
from binance.exceptions import BinanceAPIException

from workbench.venues.bar_book import BarBook
from workbench.venues.fake_binance import FakeBinance
from workbench.venues.venue_clock import ManualClock

T0 = 1_704_067_200_000  # 2024-01-01T00:00Z
MIN = 60_000
START = T0 + 5 * MIN  # bars 0..4 closed: the price is bar 4's close, 42000
WALL0 = 1_800_000_000_000
KEY, SECRET = "test-key", "test-secret"
SYM = "BTCUSDT"
RECV_WINDOW = 60_000
INSUFFICIENT = "Account has insufficient balance for requested action."


def _bar(i: int) -> tuple[float, float, float, float]:
    if i < 5:
        return 42000.0, 42010.25, 41990.0, 42000.0
    if i == 5:
        return 41900.0, 41950.0, 41800.0, 41850.0
    return 41800.0, 41900.0, 41700.0, 41800.0


@pytest.fixture
def bars(tmp_path: Path) -> BarBook:
    lines = ["ts,open,high,low,close,volume,trades"]
    for i in range(30):
        o, h, lo, c = _bar(i)
        lines.append(f"{T0 + i * MIN},{o:.2f},{h:.2f},{lo:.2f},{c:.2f},2.0000,10")
    path = tmp_path / "bars.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return BarBook.from_file(path, SYM)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def wall() -> ManualClock:
    return ManualClock(WALL0)


Venue = Callable[..., FakeBinance]


@pytest.fixture
def make_venue(bars: BarBook, clock: ManualClock, wall: ManualClock) -> Iterator[Venue]:
    """A started fake with the given extra options (``participation=``, ...)."""
    started: list[FakeBinance] = []

    def make(**options: Any) -> FakeBinance:
        fx = FakeBinance(bars, clock=clock, api_key=KEY, api_secret=SECRET,
                         wall_ms=wall.now_ms, **options).start()
        started.append(fx)
        return fx

    yield make
    for fx in started:
        fx.stop()


@pytest.fixture
def venue(make_venue: Venue) -> FakeBinance:
    return make_venue()


def _client(venue: FakeBinance, key: str = KEY, secret: str = SECRET,
            timeout: float = 10.0) -> Client:
    class FakeClient(Client):
        API_URL = venue.url + "/api"
        REQUEST_TIMEOUT = timeout
        REQUEST_RECVWINDOW = RECV_WINDOW

    c = FakeClient(key, secret, ping=False)
    _sync(c)
    return c


def _sync(c: Client) -> None:
    """Timestamps half a recvWindow behind the venue clock: the manual clock stands still
    while real time runs, so this leaves ~30 s of real time for a test's signed calls."""
    server = c.get_server_time()["serverTime"]
    c.timestamp_offset = server - int(time.time() * 1000) - RECV_WINDOW // 2


@pytest.fixture
def client(venue: FakeBinance) -> Iterator[Client]:
    c = _client(venue)
    yield c
    c.session.close()


def _at(c: Client, clock: ManualClock, bars_closed: int) -> None:
    """Step the venue clock so that bars ``0..bars_closed-1`` are closed, and re-sync."""
    clock.set(T0 + bars_closed * MIN)
    _sync(c)


def _api_error(call: Callable[[], Any]) -> BinanceAPIException:
    with pytest.raises(BinanceAPIException) as info:
        call()
    return info.value


def _balance(c: Client, asset: str) -> tuple[Decimal, Decimal]:
    """(free, locked) of ``asset`` as ``GET /api/v3/account`` says."""
    for b in c.get_account()["balances"]:
        if b["asset"] == asset:
            return Decimal(b["free"]), Decimal(b["locked"])
    raise AssertionError(f"no {asset} balance")


def _limit(c: Client, side: str, qty: str, price: str, tif: str = "GTC",
           **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = c.create_order(symbol=SYM, side=side, type="LIMIT",
                                         timeInForce=tif, quantity=qty, price=price, **extra)
    return out


def _d(text: str) -> Decimal:
    return Decimal(text)


# --- 1. market orders -----------------------------------------------------------------------
def test_market_buy_fills_at_last_close_full_response_and_moves_balances(client: Client
                                                                         ) -> None:
    r = client.order_market_buy(symbol=SYM, quantity="0.1")
    assert (r["status"], r["type"], r["side"]) == ("FILLED", "MARKET", "BUY")
    assert _d(r["executedQty"]) == _d("0.1")
    assert _d(r["cummulativeQuoteQty"]) == _d("4200")
    [fill] = r["fills"]
    assert set(fill) == {"price", "qty", "commission", "commissionAsset", "tradeId"}
    assert (_d(fill["price"]), _d(fill["qty"])) == (_d("42000"), _d("0.1"))
    assert (_d(fill["commission"]), fill["commissionAsset"]) == (_d("0.0001"), "BTC")
    assert isinstance(fill["tradeId"], int)
    assert _balance(client, "USDT") == (_d("5800"), 0)
    assert _balance(client, "BTC") == (_d("0.0999"), 0)
    [trade] = client.get_my_trades(symbol=SYM)
    assert (trade["id"], trade["isBuyer"], trade["isMaker"]) == (fill["tradeId"], True, False)


def test_market_order_ack_and_result_responses_have_their_keys(client: Client) -> None:
    ack = client.order_market_buy(symbol=SYM, quantity="0.01", newOrderRespType="ACK")
    assert set(ack) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    result = client.order_market_buy(symbol=SYM, quantity="0.01", newOrderRespType="RESULT")
    assert set(ack) < set(result)
    assert "fills" not in result
    assert {"price", "origQty", "executedQty", "cummulativeQuoteQty", "status", "timeInForce",
            "type", "side", "workingTime"} <= set(result)
    assert result["status"] == "FILLED"
    full = client.order_market_buy(symbol=SYM, quantity="0.01")
    assert set(full) == set(result) | {"fills"}


def test_market_sell_commission_is_in_quote_asset(client: Client) -> None:
    client.order_market_buy(symbol=SYM, quantity="0.1")
    r = client.order_market_sell(symbol=SYM, quantity="0.05")
    [fill] = r["fills"]
    assert (_d(fill["commission"]), fill["commissionAsset"]) == (_d("2.1"), "USDT")
    assert _balance(client, "USDT") == (_d("5800") + _d("2100") - _d("2.1"), 0)
    assert _balance(client, "BTC") == (_d("0.0499"), 0)


# --- 2. limit orders ------------------------------------------------------------------------
def test_limit_gtc_not_crossing_rests_locks_then_fills_on_touching_bar(
        client: Client, clock: ManualClock) -> None:
    touched = _limit(client, "BUY", "0.01", "41820")  # bar 5: low 41800, open 41900
    gapped = _limit(client, "BUY", "0.01", "41950")  # bar 5 opens below it: 41900
    assert touched["status"] == gapped["status"] == "NEW"
    assert touched["fills"] == []
    listed = client.get_open_orders(symbol=SYM)
    assert [o["orderId"] for o in listed] == [touched["orderId"], gapped["orderId"]]
    assert _balance(client, "USDT") == (_d("10000") - _d("837.7"), _d("837.7"))
    _at(client, clock, 5)  # bar 4 is still the last closed: nothing happens
    assert client.get_order(symbol=SYM, orderId=touched["orderId"])["status"] == "NEW"
    _at(client, clock, 6)  # bar 5 closes
    assert client.get_open_orders(symbol=SYM) == []
    for order, price in ((touched, "41820"), (gapped, "41900")):
        q = client.get_order(symbol=SYM, orderId=order["orderId"])
        assert (q["status"], _d(q["executedQty"])) == ("FILLED", _d("0.01"))
        [t] = client.get_my_trades(symbol=SYM, orderId=order["orderId"])
        assert (_d(t["price"]), t["isMaker"], t["isBuyer"]) == (_d(price), True, True)
        assert t["time"] == T0 + 6 * MIN - 1
    # the gapped-through order paid less than it locked, and got the difference back
    assert _balance(client, "USDT") == (_d("10000") - _d("418.2") - _d("419"), 0)
    assert _balance(client, "BTC") == (_d("0.01998"), 0)


def test_limit_sell_resting_locks_base_and_cancel_releases_it(client: Client,
                                                               clock: ManualClock) -> None:
    client.order_market_buy(symbol=SYM, quantity="0.2")  # 0.1998 after the commission
    r = client.order_limit_sell(symbol=SYM, quantity="0.1", price="42010")
    assert r["status"] == "NEW"
    assert _balance(client, "BTC") == (_d("0.0998"), _d("0.1"))
    _at(client, clock, 6)  # bar 5 never reaches 42010
    assert client.get_order(symbol=SYM, orderId=r["orderId"])["status"] == "NEW"
    assert client.cancel_order(symbol=SYM, orderId=r["orderId"])["status"] == "CANCELED"
    assert _balance(client, "BTC") == (_d("0.1998"), 0)


def test_limit_crossing_fills_at_once_at_current_price_without_locking(client: Client
                                                                       ) -> None:
    r = _limit(client, "BUY", "0.1", "42100")
    assert r["status"] == "FILLED"
    assert _d(r["fills"][0]["price"]) == _d("42000")  # better than the limit
    assert _balance(client, "USDT") == (_d("5800"), 0)  # 42100-42000 not kept locked
    [t] = client.get_my_trades(symbol=SYM)
    assert t["isMaker"] is False


@pytest.mark.parametrize("tif", ["IOC", "FOK"])
def test_limit_ioc_fok_not_crossing_expire_and_release(client: Client, tif: str) -> None:
    r = _limit(client, "BUY", "0.1", "41000", tif)
    assert (r["status"], r["timeInForce"], r["fills"]) == ("EXPIRED", tif, [])
    assert client.get_open_orders(symbol=SYM) == []
    assert _balance(client, "USDT") == (_d("10000"), 0)


def test_limit_fok_crossing_fills_whole(client: Client) -> None:
    r = _limit(client, "BUY", "0.1", "42000", "FOK")
    assert (r["status"], _d(r["executedQty"])) == ("FILLED", _d("0.1"))


# --- 3. partial fills -----------------------------------------------------------------------
def test_limit_with_participation_fills_across_bars_then_filled(
        make_venue: Venue, clock: ManualClock) -> None:
    c = _client(make_venue(participation=0.1, balances={"USDT": "100000"}))  # 0.2 a bar
    r = _limit(c, "BUY", "0.5", "41950")
    assert r["status"] == "NEW"
    seen = []
    for closed in (6, 7, 8):
        _at(c, clock, closed)
        q = c.get_order(symbol=SYM, orderId=r["orderId"])
        seen.append((q["status"], _d(q["executedQty"])))
    assert seen == [("PARTIALLY_FILLED", _d("0.2")), ("PARTIALLY_FILLED", _d("0.4")),
                    ("FILLED", _d("0.5"))]
    trades = c.get_my_trades(symbol=SYM, orderId=r["orderId"])
    assert [(_d(t["price"]), _d(t["qty"])) for t in trades] == [
        (_d("41900"), _d("0.2")), (_d("41800"), _d("0.2")), (_d("41800"), _d("0.1"))]
    assert all(t["isMaker"] for t in trades)
    spent = _d("0.2") * 41900 + _d("0.3") * 41800
    assert _balance(c, "USDT") == (_d("100000") - spent, 0)


def test_market_with_participation_fills_part_and_expires(make_venue: Venue) -> None:
    c = _client(make_venue(participation=0.1, balances={"USDT": "100000"}))
    r = c.order_market_buy(symbol=SYM, quantity="0.3")
    assert (r["status"], _d(r["executedQty"])) == ("EXPIRED", _d("0.2"))
    assert _balance(c, "USDT") == (_d("100000") - _d("8400"), 0)
    fok = _limit(c, "BUY", "0.3", "42000", "FOK")  # more than the bar's share: none of it
    assert (fok["status"], fok["fills"]) == ("EXPIRED", [])


# --- 4. filters and funds -------------------------------------------------------------------
@pytest.mark.parametrize(("qty", "price", "name"), [
    ("0.000015", "41000", "LOT_SIZE"),  # off the step
    ("0.000005", "41000", "LOT_SIZE"),  # below minQty
    ("0.01", "41000.005", "PRICE_FILTER"),  # off the tick
    ("0.0001", "41000", "NOTIONAL"),  # 4.1 USDT
    ("0.0001", None, "NOTIONAL"),  # a market order: 4.2 USDT at the current price
])
def test_order_filters_refuse_with_binance_code_and_text(client: Client, qty: str,
                                                         price: str | None, name: str) -> None:
    if price is None:
        err = _api_error(lambda: client.order_market_buy(symbol=SYM, quantity=qty))
    else:
        err = _api_error(lambda: _limit(client, "BUY", qty, price))
    assert (err.status_code, err.code, err.message) == (400, -1013, f"Filter failure: {name}")
    assert client.get_all_orders(symbol=SYM) == []


def test_order_max_num_orders_filter_and_exchange_info(make_venue: Venue) -> None:
    c = _client(make_venue(max_num_orders=2))
    [info] = c.get_exchange_info()["symbols"]
    assert {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 2} in info["filters"]
    first = _limit(c, "BUY", "0.001", "41000")
    _limit(c, "BUY", "0.001", "41000")
    err = _api_error(lambda: _limit(c, "BUY", "0.001", "41000"))
    assert (err.code, err.message) == (-1013, "Filter failure: MAX_NUM_ORDERS")
    c.cancel_order(symbol=SYM, orderId=first["orderId"])
    assert _limit(c, "BUY", "0.001", "41000")["status"] == "NEW"


@pytest.mark.parametrize("place", [
    lambda c: c.order_market_buy(symbol=SYM, quantity="1"),  # 42000 > 10000 USDT
    lambda c: _limit(c, "BUY", "0.3", "40000"),  # 12000 USDT to lock
    lambda c: c.order_market_sell(symbol=SYM, quantity="0.01"),  # no BTC
], ids=["market-buy", "limit-buy", "market-sell"])
def test_order_insufficient_balance_is_2010(client: Client,
                                            place: Callable[[Client], Any]) -> None:
    err = _api_error(lambda: place(client))
    assert (err.status_code, err.code, err.message) == (400, -2010, INSUFFICIENT)
    assert client.get_all_orders(symbol=SYM) == []
    assert _balance(client, "USDT") == (_d("10000"), 0)


# --- 5. the duplicate rule and unknown orders -----------------------------------------------
def test_duplicate_client_id_refused_while_open_accepted_after_cancel(client: Client) -> None:
    first = _limit(client, "BUY", "0.01", "41000", newClientOrderId="dup-1")
    err = _api_error(lambda: _limit(client, "BUY", "0.01", "41000", newClientOrderId="dup-1"))
    assert (err.status_code, err.code, err.message) == (400, -2010, "Duplicate order sent.")
    assert len(client.get_open_orders(symbol=SYM)) == 1
    client.cancel_order(symbol=SYM, origClientOrderId="dup-1")
    again = _limit(client, "BUY", "0.01", "41000", newClientOrderId="dup-1")
    assert again["orderId"] != first["orderId"]
    q = client.get_order(symbol=SYM, origClientOrderId="dup-1")  # the latest with that id
    assert (q["orderId"], q["status"]) == (again["orderId"], "NEW")
    assert client.get_order(symbol=SYM, orderId=first["orderId"])["status"] == "CANCELED"


def test_duplicate_client_id_after_fill_is_accepted_and_doubles_position(client: Client
                                                                         ) -> None:
    a = client.order_market_buy(symbol=SYM, quantity="0.1", newClientOrderId="blind-1")
    b = client.order_market_buy(symbol=SYM, quantity="0.1", newClientOrderId="blind-1")
    assert a["status"] == b["status"] == "FILLED"
    assert _balance(client, "BTC") == (_d("0.1998"), 0)
    assert client.get_order(symbol=SYM, origClientOrderId="blind-1")["orderId"] == b["orderId"]
    assert [o["clientOrderId"] for o in client.get_all_orders(symbol=SYM)] == ["blind-1"] * 2


@pytest.mark.parametrize("params", [{"orderId": 999}, {"origClientOrderId": "nope"}])
def test_unknown_order_query_is_2013_and_cancel_is_2011(client: Client,
                                                        params: dict[str, Any]) -> None:
    err = _api_error(lambda: client.get_order(symbol=SYM, **params))
    assert (err.status_code, err.code, err.message) == (400, -2013, "Order does not exist.")
    err = _api_error(lambda: client.cancel_order(symbol=SYM, **params))
    assert (err.status_code, err.code, err.message) == (400, -2011, "Unknown order sent.")
    filled = client.order_market_buy(symbol=SYM, quantity="0.01")
    err = _api_error(lambda: client.cancel_order(symbol=SYM, orderId=filled["orderId"]))
    assert (err.code, err.message) == (-2011, "Unknown order sent.")
    canceled = _limit(client, "BUY", "0.01", "41000")
    client.cancel_order(symbol=SYM, orderId=canceled["orderId"])
    err = _api_error(lambda: client.cancel_order(symbol=SYM, orderId=canceled["orderId"]))
    assert err.code == -2011


# --- 6. faults ------------------------------------------------------------------------------
def test_fault_order_lost_client_times_out_yet_order_exists(venue: FakeBinance) -> None:
    venue.inject("order:lost@1")
    c = _client(venue, timeout=2)
    with pytest.raises((requests.ConnectionError, requests.Timeout)):
        c.order_market_buy(symbol=SYM, quantity="0.1", newClientOrderId="lost-1")
    q = c.get_order(symbol=SYM, origClientOrderId="lost-1")
    assert (q["status"], _d(q["executedQty"])) == ("FILLED", _d("0.1"))
    assert _balance(c, "BTC") == (_d("0.0999"), 0)
    assert _balance(c, "USDT") == (_d("5800"), 0)


@pytest.mark.parametrize(("spec", "status", "code"), [
    ("order:unknown=503@1", 503, -1008), ("order:unknown=1007@1", 408, -1007)])
def test_fault_order_unknown_outcome_errors_yet_order_exists(
        venue: FakeBinance, client: Client, spec: str, status: int, code: int) -> None:
    venue.inject(spec)
    err = _api_error(lambda: client.order_market_buy(symbol=SYM, quantity="0.1",
                                                     newClientOrderId="unk-1"))
    assert (err.status_code, err.code) == (status, code)
    assert client.get_order(symbol=SYM, origClientOrderId="unk-1")["status"] == "FILLED"
    assert _balance(client, "BTC") == (_d("0.0999"), 0)


@pytest.mark.parametrize(("spec", "status", "code"), [
    ("order:503@1", 503, -1008), ("order:1007@1", 408, -1007)])
def test_fault_order_plain_error_places_nothing(venue: FakeBinance, client: Client, spec: str,
                                                status: int, code: int) -> None:
    venue.inject(spec)
    err = _api_error(lambda: client.order_market_buy(symbol=SYM, quantity="0.1",
                                                     newClientOrderId="err-1"))
    assert (err.status_code, err.code) == (status, code)
    err = _api_error(lambda: client.get_order(symbol=SYM, origClientOrderId="err-1"))
    assert err.code == -2013
    assert client.get_all_orders(symbol=SYM) == []
    assert _balance(client, "USDT") == (_d("10000"), 0)


def test_fault_order_invisible_until_wall_clock_passes(venue: FakeBinance, client: Client,
                                                       wall: ManualClock) -> None:
    venue.inject("order:invisible=3s")
    r = _limit(client, "BUY", "0.01", "41000", newClientOrderId="ghost-1")
    assert r["status"] == "NEW"  # the answer itself comes back

    def hidden() -> bool:
        try:
            client.get_order(symbol=SYM, origClientOrderId="ghost-1")
        except BinanceAPIException as exc:
            assert (exc.code, exc.message) == (-2013, "Order does not exist.")
            return client.get_open_orders(symbol=SYM) == [] == client.get_all_orders(
                symbol=SYM)
        return False

    assert hidden()
    wall.advance(2_999)
    assert hidden()
    wall.advance(1)
    assert client.get_order(symbol=SYM, origClientOrderId="ghost-1")["orderId"] == r["orderId"]
    assert [o["orderId"] for o in client.get_open_orders(symbol=SYM)] == [r["orderId"]]


def test_fault_order_429_then_418_with_retry_after(venue: FakeBinance, client: Client) -> None:
    venue.inject("order:429=7@1,order:418=60@2")
    first = _api_error(lambda: client.order_market_buy(symbol=SYM, quantity="0.01"))
    assert (first.status_code, first.code) == (429, -1003)
    assert first.response.headers["Retry-After"] == "7"
    second = _api_error(lambda: client.order_market_buy(symbol=SYM, quantity="0.01"))
    assert (second.status_code, second.code) == (418, -1003)
    assert second.response.headers["Retry-After"] == "60"
    assert client.get_all_orders(symbol=SYM) == []
    assert client.order_market_buy(symbol=SYM, quantity="0.01")["status"] == "FILLED"


# --- 7. order-count headers and the 10-second limit -----------------------------------------
def _counts(c: Client) -> tuple[int, int]:
    h = c.response.headers
    return int(h["X-MBX-ORDER-COUNT-10S"]), int(h["X-MBX-ORDER-COUNT-1D"])


def test_order_count_headers_on_order_responses(client: Client, wall: ManualClock) -> None:
    client.order_market_buy(symbol=SYM, quantity="0.01")
    assert _counts(client) == (1, 1)
    _api_error(lambda: client.order_market_buy(symbol=SYM, quantity="0.000015"))
    assert _counts(client) == (2, 2)  # refused orders count too, and carry the headers
    wall.advance(10_000)
    client.order_market_buy(symbol=SYM, quantity="0.01")
    assert _counts(client) == (1, 3)
    client.get_order(symbol=SYM, orderId=1)
    assert "X-MBX-ORDER-COUNT-10S" not in client.response.headers


def test_order_more_than_100_in_10s_is_429_1015(client: Client, wall: ManualClock) -> None:
    for _ in range(100):
        _limit(client, "BUY", "0.0002", "40000", newOrderRespType="ACK")
        wall.advance(50)  # 100 orders in 5 s of wall time
    assert _counts(client) == (100, 100)
    err = _api_error(lambda: _limit(client, "BUY", "0.0002", "40000"))
    assert (err.status_code, err.code) == (429, -1015)
    assert "Too many new orders" in err.message
    assert err.response.headers["X-MBX-ORDER-COUNT-10S"] == "101"
    assert "Retry-After" in err.response.headers
    assert len(client.get_open_orders(symbol=SYM)) == 100
    wall.advance(10_000)  # the window has moved past them all
    assert _limit(client, "BUY", "0.0002", "40000")["status"] == "NEW"
    assert _counts(client) == (1, 102)


# --- 8. signed requests ---------------------------------------------------------------------
ORDER_CALLS: list[Callable[[Client], Any]] = [
    lambda c: c.order_market_buy(symbol=SYM, quantity="0.01"),
    lambda c: c.get_order(symbol=SYM, orderId=1),
    lambda c: c.cancel_order(symbol=SYM, orderId=1),
    lambda c: c.get_open_orders(symbol=SYM),
    lambda c: c.get_all_orders(symbol=SYM),
    lambda c: c.get_my_trades(symbol=SYM),
]


@pytest.mark.parametrize("call", ORDER_CALLS, ids=["order", "getOrder", "cancelOrder",
                                                  "openOrders", "allOrders", "myTrades"])
@pytest.mark.parametrize(("key", "secret", "status", "code"), [
    ("wrong-key", SECRET, 401, -2015), (KEY, "wrong-secret", 400, -1022)])
def test_order_endpoints_refuse_wrong_key_and_bad_signature(
        venue: FakeBinance, call: Callable[[Client], Any], key: str, secret: str, status: int,
        code: int) -> None:
    c = _client(venue, key=key, secret=secret)
    err = _api_error(lambda: call(c))
    assert (err.status_code, err.code) == (status, code)
    assert venue.matcher.orders == []


def _signed(params: dict[str, Any]) -> str:
    text = urlencode(params)
    return text + "&signature=" + hmac.new(SECRET.encode(), text.encode(),
                                           hashlib.sha256).hexdigest()


def test_order_params_in_post_body_or_query_and_get_query(venue: FakeBinance, client: Client,
                                                          clock: ManualClock) -> None:
    # python-binance: POST and DELETE parameters in the form body, GET in the query string
    r = _limit(client, "BUY", "0.01", "41000")
    assert client.get_order(symbol=SYM, orderId=r["orderId"])["status"] == "NEW"
    assert client.cancel_order(symbol=SYM, orderId=r["orderId"])["status"] == "CANCELED"
    # a POST with its parameters in the query string is signed and read the same way
    params = {"symbol": SYM, "side": "BUY", "type": "MARKET", "quantity": "0.01",
              "timestamp": clock.now_ms(), "recvWindow": RECV_WINDOW}
    raw = requests.post(f"{venue.url}/api/v3/order?{_signed(params)}",
                        headers={"X-MBX-APIKEY": KEY}, timeout=10)
    assert raw.status_code == 200, raw.text
    assert raw.json()["status"] == "FILLED"
    del params["quantity"]
    query = urlencode({"quantity": "0.01"})  # split: part query, part body, signed together
    body = urlencode(params)
    sig = hmac.new(SECRET.encode(), (query + body).encode(), hashlib.sha256).hexdigest()
    raw = requests.post(f"{venue.url}/api/v3/order?{query}", data=body + "&signature=" + sig,
                        headers={"X-MBX-APIKEY": KEY,
                                 "Content-Type": "application/x-www-form-urlencoded"},
                        timeout=10)
    assert raw.status_code == 200, raw.text
    assert len(client.get_all_orders(symbol=SYM)) == 3


def test_order_bad_resp_type_is_refused_before_anything_is_done(client: Client) -> None:
    err = _api_error(lambda: client.order_market_buy(symbol=SYM, quantity="0.1",
                                                     newOrderRespType="BOGUS"))
    assert (err.status_code, err.code) == (400, -1100)
    assert client.get_all_orders(symbol=SYM) == []
    assert _balance(client, "USDT") == (_d("10000"), 0)


def test_commission_in_fee_asset_when_the_account_holds_it(make_venue: Venue) -> None:
    c = _client(make_venue(fee_asset="BNB", fee_asset_price="300",
                           balances={"USDT": "10000", "BNB": "0.02"}))
    r = c.order_market_buy(symbol=SYM, quantity="0.1")  # 4.2 USDT of fee: 0.014 BNB
    assert [(f["commissionAsset"], _d(f["commission"])) for f in r["fills"]] == [
        ("BNB", _d("0.014"))]
    assert _balance(c, "BTC") == (_d("0.1"), 0)
    assert _balance(c, "BNB") == (_d("0.006"), 0)
    r = c.order_market_buy(symbol=SYM, quantity="0.1")  # 0.006 BNB is not enough: in BTC
    assert r["fills"][0]["commissionAsset"] == "BTC"


@pytest.mark.parametrize("qty", [1e-05, "1E-5", "0_01", "-0"])
def test_order_quantity_outside_binance_number_syntax_is_1100(client: Client,
                                                               qty: Any) -> None:
    # a float 0.00001 is sent by python-binance as "1e-05", which Binance refuses
    err = _api_error(lambda: client.order_market_buy(symbol=SYM, quantity=qty))
    assert (err.status_code, err.code) == (400, -1100)
    assert "quantity" in err.message
    assert client.get_all_orders(symbol=SYM) == []


def test_cancel_partially_filled_limit_releases_the_rest(make_venue: Venue,
                                                         clock: ManualClock) -> None:
    c = _client(make_venue(participation=0.1))  # 0.2 a bar
    r = _limit(c, "BUY", "0.22", "41950")
    assert _balance(c, "USDT") == (_d("10000") - _d("9229"), _d("9229"))
    _at(c, clock, 6)
    out = c.cancel_order(symbol=SYM, orderId=r["orderId"])
    assert (out["status"], _d(out["executedQty"])) == ("CANCELED", _d("0.2"))
    assert out["origClientOrderId"] == r["clientOrderId"]
    assert _balance(c, "USDT") == (_d("10000") - _d("0.2") * 41900, 0)
    assert _balance(c, "BTC") == (_d("0.1998"), 0)
    _at(c, clock, 8)  # later bars touch the limit: a canceled order takes nothing
    assert len(c.get_my_trades(symbol=SYM)) == 1


# --- 8. retention: finished orders are forgotten, as a venue bounds its history ---------------
def test_finished_order_past_the_retention_window_is_2013_and_its_trades_gone(
        make_venue: Venue, clock: ManualClock) -> None:
    c = _client(make_venue(retention_ms=10 * MIN))
    done = c.order_market_buy(symbol=SYM, quantity="0.01", newClientOrderId="old-1")
    working = _limit(c, "BUY", "0.01", "41000", newClientOrderId="rests-1")  # never touched
    _at(c, clock, 5 + 10)  # exactly the window after it filled: still known
    assert c.get_order(symbol=SYM, origClientOrderId="old-1")["status"] == "FILLED"
    _at(c, clock, 5 + 11)
    for ask in ({"origClientOrderId": "old-1"}, {"orderId": done["orderId"]}):
        err = _api_error(partial(c.get_order, symbol=SYM, **ask))
        assert (err.status_code, err.code, err.message) == (400, -2013, "Order does not exist.")
        err = _api_error(partial(c.cancel_order, symbol=SYM, **ask))
        assert (err.code, err.message) == (-2011, "Unknown order sent.")
    assert [o["clientOrderId"] for o in c.get_all_orders(symbol=SYM)] == ["rests-1"]
    assert c.get_my_trades(symbol=SYM) == []
    assert c.get_order(symbol=SYM, orderId=working["orderId"])["status"] == "NEW"  # kept
    again = c.order_market_buy(symbol=SYM, quantity="0.01", newClientOrderId="old-1")
    assert again["orderId"] == 3 and again["fills"][0]["tradeId"] == 2  # ids never reused


def test_finished_orders_beyond_the_count_cap_are_forgotten_oldest_first(
        make_venue: Venue) -> None:
    venue = make_venue(retained_orders=2)
    c = _client(venue)
    first, second, third = (c.order_market_buy(symbol=SYM, quantity="0.01",
                                               newClientOrderId=f"cap-{i}") for i in (1, 2, 3))
    err = _api_error(lambda: c.get_order(symbol=SYM, orderId=first["orderId"]))
    assert (err.code, err.message) == (-2013, "Order does not exist.")
    assert [o["orderId"] for o in c.get_all_orders(symbol=SYM)] == [
        second["orderId"], third["orderId"]] == [2, 3]
    assert [t["id"] for t in c.get_my_trades(symbol=SYM)] == [2, 3]
    assert [o.order_id for o in venue.matcher.orders] == [2, 3]


def test_open_order_is_never_forgotten_and_its_id_stays_a_duplicate(make_venue: Venue,
                                                                    clock: ManualClock) -> None:
    c = _client(make_venue(retained_orders=1, retention_ms=0))
    _limit(c, "BUY", "0.01", "41000", newClientOrderId="open-1")
    for _ in range(3):
        c.order_market_buy(symbol=SYM, quantity="0.01")
    _at(c, clock, 20)
    assert c.get_order(symbol=SYM, origClientOrderId="open-1")["status"] == "NEW"
    err = _api_error(lambda: _limit(c, "BUY", "0.01", "41000", newClientOrderId="open-1"))
    assert (err.code, err.message) == (-2010, "Duplicate order sent.")
    assert [o["clientOrderId"] for o in c.get_open_orders(symbol=SYM)] == ["open-1"]


def test_retention_settings_outside_their_range_are_refused(bars: BarBook) -> None:
    with pytest.raises(ValueError, match="retained_orders 0 >= 1"):
        FakeBinance(bars, retained_orders=0)
