"""The fake exchange, driven by the real python-binance ``Client`` over 127.0.0.1.

Venue time comes from a ``ManualClock`` the tests step, and the weight window from another, so
nothing here sleeps for the clock or asserts on wall-clock durations.
"""

from __future__ import annotations

import ast
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from binance.client import Client
from binance.exceptions import BinanceAPIException

from workbench.venues.bar_book import BarBook
from workbench.venues.fake_binance import FakeBinance
from workbench.venues.faults import FaultSpecError, parse_spec
from workbench.venues.venue_clock import AcceleratedClock, ManualClock

T0 = 1_704_067_200_000  # 2024-01-01T00:00Z
MIN = 60_000
KEY, SECRET = "test-key", "test-secret"
GAP_MINUTE = 7  # the bar file has no bar for 00:07
ROOT = Path(__file__).resolve().parents[2]


def _write_bars(path: Path, count: int, gap: int | None = GAP_MINUTE) -> Path:
    lines = ["ts,open,high,low,close,volume,trades"]
    for i in range(count):
        if i == gap:
            continue
        o = 42_000 + i
        lines.append(f"{T0 + i * MIN},{o:.2f},{o + 5.25:.2f},{o - 3.5:.2f},{o + 1.75:.2f},"
                     f"{1.5 + i / 100:.4f},{10 + i}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def wall() -> ManualClock:
    return ManualClock(1_800_000_000_000)  # the weight window's clock, on a minute boundary


@pytest.fixture
def bars(tmp_path: Path) -> BarBook:
    return BarBook.from_file(_write_bars(tmp_path / "bars.csv", 30), "BTCUSDT")


@pytest.fixture
def venue(bars: BarBook, clock: ManualClock, wall: ManualClock) -> Iterator[FakeBinance]:
    with FakeBinance(bars, clock=clock, api_key=KEY, api_secret=SECRET,
                     wall_ms=wall.now_ms) as fx:
        yield fx


def _client(venue: FakeBinance, key: str | None = KEY, secret: str | None = SECRET,
            timeout: float = 10.0) -> Client:
    class FakeClient(Client):
        API_URL = venue.url + "/api"
        REQUEST_TIMEOUT = timeout

    return FakeClient(key, secret, ping=False)


@pytest.fixture
def client(venue: FakeBinance) -> Iterator[Client]:
    c = _client(venue)
    yield c
    c.session.close()


def _sync(c: Client) -> None:
    """Set the client's timestamp offset from the venue's /api/v3/time, as the live loop does."""
    c.timestamp_offset = c.get_server_time()["serverTime"] - int(time.time() * 1000)


def _api_error(call: Callable[[], Any]) -> BinanceAPIException:
    with pytest.raises(BinanceAPIException) as info:
        call()
    return info.value


# --- klines -----------------------------------------------------------------------------------
def test_klines_have_binance_layout_and_types(client: Client, clock: ManualClock) -> None:
    clock.set(T0 + 5 * MIN)
    rows = client.get_klines(symbol="BTCUSDT", interval="1m")
    assert [r[0] for r in rows] == [T0 + i * MIN for i in range(5)]
    first = rows[0]
    assert len(first) == 12
    assert first[:7] == [T0, "42000.00000000", "42005.25000000", "41996.50000000",
                         "42001.75000000", "1.50000000", T0 + MIN - 1]
    assert isinstance(first[8], int) and first[8] == 10
    assert all(isinstance(first[i], str) for i in (1, 2, 3, 4, 5, 7, 9, 10, 11))
    assert float(first[9]) == pytest.approx(0.75)  # the taker split: half, as documented
    assert float(first[7]) > 0


def test_a_bar_is_served_only_once_its_close_time_has_passed(client: Client,
                                                             clock: ManualClock) -> None:
    def opens() -> list[int]:
        return [r[0] for r in client.get_klines(symbol="BTCUSDT", interval="1m")]

    clock.set(T0 + MIN - 1)  # the first bar's close time: still forming
    assert opens() == []
    assert client.get_server_time()["serverTime"] == T0 + MIN - 1
    clock.advance(1)
    assert opens() == [T0]
    clock.set(T0 + 3 * MIN - 1)
    assert opens() == [T0, T0 + MIN]
    # an endTime in the future does not reach past the venue clock either
    rows = client.get_klines(symbol="BTCUSDT", interval="1m", startTime=T0,
                             endTime=T0 + 60 * MIN)
    assert [r[0] for r in rows] == [T0, T0 + MIN]


def test_a_minute_missing_from_the_file_is_served_as_missing(client: Client,
                                                             clock: ManualClock) -> None:
    clock.set(T0 + 30 * MIN)
    rows = client.get_klines(symbol="BTCUSDT", interval="1m", startTime=T0, limit=1000)
    opens = [r[0] for r in rows]
    assert len(opens) == 29
    assert T0 + GAP_MINUTE * MIN not in opens
    assert opens == sorted(opens)


def test_klines_limit_default_500_max_1000_and_windows(tmp_path: Path) -> None:
    book = BarBook.from_file(_write_bars(tmp_path / "long.csv", 1500, gap=None), "BTCUSDT")
    clock = ManualClock(T0 + 1500 * MIN)
    with FakeBinance(book, clock=clock, api_key=KEY, api_secret=SECRET) as fx:
        c = _client(fx)
        latest = c.get_klines(symbol="BTCUSDT", interval="1m")
        assert len(latest) == 500
        assert latest[-1][0] == T0 + 1499 * MIN  # the most recent closed bars
        assert len(c.get_klines(symbol="BTCUSDT", interval="1m", limit=1000)) == 1000
        assert len(c.get_klines(symbol="BTCUSDT", interval="1m", limit=1500)) == 1000
        ahead = c.get_klines(symbol="BTCUSDT", interval="1m", startTime=T0 + 10 * MIN, limit=3)
        assert [r[0] for r in ahead] == [T0 + (10 + i) * MIN for i in range(3)]
        upto = c.get_klines(symbol="BTCUSDT", interval="1m", endTime=T0 + 10 * MIN, limit=2)
        assert [r[0] for r in upto] == [T0 + 9 * MIN, T0 + 10 * MIN]
        err = _api_error(lambda: c.get_klines(symbol="BTCUSDT", interval="1m", limit=0))
        assert (err.status_code, err.code) == (400, -1130)
        # python-binance's own pagination walks the venue by startTime, 1000 bars a page
        rows = c.get_historical_klines("BTCUSDT", "1m", start_str=T0,
                                       end_str=T0 + 1234 * MIN)
        assert [r[0] for r in rows] == [T0 + i * MIN for i in range(1235)]
        c.session.close()


@pytest.mark.parametrize(("params", "code"), [
    ({"symbol": "ETHUSDT", "interval": "1m"}, -1121),
    ({"symbol": "BTCUSDT", "interval": "7m"}, -1120),
    ({"symbol": "BTCUSDT", "interval": "1h"}, -1120),  # the fake serves 1m bars only
    ({"interval": "1m"}, -1102),
    ({"symbol": "BTCUSDT", "interval": "1m", "startTime": T0 + MIN, "endTime": T0}, -1023),
    ({"symbol": "BTCUSDT", "interval": "1m", "startTime": "soon"}, -1100),
])
def test_klines_errors_are_binance_json(client: Client, params: dict[str, Any],
                                        code: int) -> None:
    err = _api_error(lambda: client.get_klines(**params))
    assert (err.status_code, err.code) == (400, code)
    assert err.message


# --- exchangeInfo, time, ping -----------------------------------------------------------------
def test_exchange_info_has_the_real_filter_shapes(client: Client) -> None:
    info = client.get_exchange_info()
    assert info["timezone"] == "UTC"
    weight = next(r for r in info["rateLimits"] if r["rateLimitType"] == "REQUEST_WEIGHT")
    assert (weight["interval"], weight["intervalNum"], weight["limit"]) == ("MINUTE", 1, 6000)
    (sym,) = info["symbols"]
    assert (sym["symbol"], sym["baseAsset"], sym["quoteAsset"], sym["status"]) == (
        "BTCUSDT", "BTC", "USDT", "TRADING")
    filters = {f["filterType"]: f for f in sym["filters"]}
    assert filters["PRICE_FILTER"] == {"filterType": "PRICE_FILTER", "minPrice": "0.01000000",
                                       "maxPrice": "1000000.00000000",
                                       "tickSize": "0.01000000"}
    assert set(filters["LOT_SIZE"]) == {"filterType", "minQty", "maxQty", "stepSize"}
    assert all(isinstance(filters["LOT_SIZE"][k], str) for k in ("minQty", "maxQty", "stepSize"))
    notional = filters["NOTIONAL"]
    assert isinstance(notional["minNotional"], str) and notional["applyMinToMarket"] is True
    assert isinstance(filters["MIN_NOTIONAL"]["minNotional"], str)
    assert client.get_symbol_info("BTCUSDT")["symbol"] == "BTCUSDT"
    err = _api_error(lambda: client._get("exchangeInfo", data={"symbol": "NOPE"}))
    assert err.code == -1121


def test_filters_fit_the_file_and_the_quote_asset() -> None:
    btc_quoted = BarBook.from_file(ROOT / "sample_data/UNITTEST_BTC-1m.json", "UNITTESTBTC")
    rules = btc_quoted.rules()
    assert (rules.base_asset, rules.quote_asset) == ("UNITTEST", "BTC")
    assert (rules.tick_size, rules.step_size, rules.min_notional) == (
        "0.00000001", "1.00000000", "0.00010000")
    usdt = BarBook.from_file(ROOT / "sample_data/btcusdt_1m_2024-01_synthetic.csv", "BTCUSDT")
    rules = usdt.rules(min_notional="10.00000000")
    assert (rules.tick_size, rules.step_size, rules.max_qty, rules.min_notional) == (
        "0.01000000", "0.00001000", "9000.00000000", "10.00000000")


def test_ping_and_time(client: Client, clock: ManualClock) -> None:
    assert client.ping() == {}
    clock.set(T0 + 12_345)
    assert client.get_server_time() == {"serverTime": T0 + 12_345}


# --- signed endpoints -------------------------------------------------------------------------
def test_account_signed_ok(client: Client) -> None:
    _sync(client)
    account = client.get_account()
    assert account["accountType"] == "SPOT"
    assert {"asset": "USDT", "free": "10000.00000000", "locked": "0.00000000"} in \
        account["balances"]


@pytest.mark.parametrize(("key", "secret", "status", "code"), [
    ("wrong-key", SECRET, 401, -2015),
    (None, SECRET, 401, -2015),  # no X-MBX-APIKEY header at all
    (KEY, "wrong-secret", 400, -1022),
])
def test_account_auth_failures(venue: FakeBinance, key: str | None, secret: str,
                               status: int, code: int) -> None:
    c = _client(venue, key, secret)
    _sync(c)
    err = _api_error(c.get_account)
    assert (err.status_code, err.code) == (status, code)
    c.session.close()


def test_account_timestamp_outside_recv_window(client: Client, clock: ManualClock) -> None:
    _sync(client)
    clock.advance(client.REQUEST_RECVWINDOW + 5_000)  # the request arrives too late
    err = _api_error(client.get_account)
    assert (err.status_code, err.code) == (400, -1021)
    assert err.message == "Timestamp for this request is outside of the recvWindow."
    _sync(client)
    clock.advance(-10_000)  # and from a client whose clock runs ahead
    assert _api_error(client.get_account).code == -1021
    _sync(client)
    client.REQUEST_RECVWINDOW = 60_001  # recvWindow is capped at 60000
    assert _api_error(client.get_account).code == -1131


# --- request weight ---------------------------------------------------------------------------
def test_weight_is_counted_per_minute_and_reported(client: Client, wall: ManualClock) -> None:
    def used() -> int:
        return int(client.response.headers["X-MBX-USED-WEIGHT-1M"])

    client.ping()
    assert used() == 1
    client.get_server_time()
    assert used() == 2
    client.get_exchange_info()
    assert used() == 22
    client.get_klines(symbol="BTCUSDT", interval="1m")
    assert used() == 24
    _sync(client)
    client.get_account()
    assert used() == 45  # the sync's /time counts too
    _api_error(lambda: client.get_klines(symbol="NOPE", interval="1m"))
    assert used() == 47  # errors carry the header and count
    wall.advance(MIN)  # a new minute
    client.ping()
    assert used() == 1


def test_over_the_weight_limit_is_429_with_retry_after(bars: BarBook, clock: ManualClock,
                                                       wall: ManualClock) -> None:
    with FakeBinance(bars, clock=clock, weight_limit=25, wall_ms=wall.now_ms) as fx:
        c = _client(fx)
        c.get_exchange_info()
        wall.advance(15_000)
        err = _api_error(c.get_exchange_info)
        assert (err.status_code, err.code) == (429, -1003)
        assert err.response.headers["Retry-After"] == "45"  # until the minute is over
        assert err.response.headers["X-MBX-USED-WEIGHT-1M"] == "40"
        wall.advance(45_000)
        assert c.ping() == {}
        c.session.close()


# --- injected faults --------------------------------------------------------------------------
def _klines(c: Client) -> list[Any]:
    return c.get_klines(symbol="BTCUSDT", interval="1m")


def test_fault_429_on_the_third_klines_call(venue: FakeBinance, client: Client) -> None:
    venue.inject("klines:429@3")
    _klines(client)
    client.ping()  # other endpoints do not count towards klines
    _klines(client)
    err = _api_error(lambda: _klines(client))
    assert (err.status_code, err.code) == (429, -1003)
    assert err.response.headers["Retry-After"] == "1"
    assert "X-MBX-USED-WEIGHT-1M" in err.response.headers
    _klines(client)  # only that one call
    assert venue.faults.calls("klines") == 4


def test_fault_418_with_retry_after(venue: FakeBinance, client: Client) -> None:
    venue.inject("any:418=7x2")
    for call in (client.ping, lambda: _klines(client)):
        err = _api_error(call)
        assert (err.status_code, err.code) == (418, -1003)
        assert err.response.headers["Retry-After"] == "7"
    assert client.ping() == {}


@pytest.mark.parametrize(("status", "code"), [(500, -1000), (502, -1000), (503, -1008)])
def test_fault_5xx(venue: FakeBinance, client: Client, status: int, code: int) -> None:
    venue.inject(f"any:{status}x2")
    for _ in range(2):
        err = _api_error(client.get_server_time)
        assert (err.status_code, err.code) == (status, code)
    assert "serverTime" in client.get_server_time()


def test_fault_slow_answers_late_and_a_short_timeout_gives_up(venue: FakeBinance) -> None:
    venue.inject("klines:slow=200ms@1")
    patient = _client(venue, timeout=30.0)
    assert _klines(patient) == []  # late, but answered
    venue.inject("klines:slow=20s@1")
    hasty = _client(venue, timeout=0.3)
    with pytest.raises(requests.exceptions.Timeout):
        _klines(hasty)
    assert hasty.ping() == {}  # the venue is still there
    for c in (patient, hasty):
        c.session.close()


def test_fault_timeout_holds_the_connection_without_an_answer(venue: FakeBinance) -> None:
    venue.inject("time:timeout@2")
    c = _client(venue, timeout=0.3)
    c.get_server_time()
    with pytest.raises(requests.exceptions.Timeout):
        c.get_server_time()
    assert "serverTime" in c.get_server_time()
    c.session.close()


def test_fault_clock_skew(venue: FakeBinance, client: Client, clock: ManualClock) -> None:
    clock.set(T0 + 2 * MIN)
    venue.inject("time:skew=+2000")
    assert client.get_server_time()["serverTime"] == T0 + 2 * MIN + 2000
    assert len(_klines(client)) == 2  # klines keep the venue's own clock
    venue.clear_faults()
    venue.inject("account:skew=-30000")  # the venue's signed-request clock is 30 s behind
    _sync(client)
    assert _api_error(client.get_account).code == -1021


def test_fault_dropped_minutes_are_missing(venue: FakeBinance, client: Client,
                                           clock: ManualClock) -> None:
    clock.set(T0 + 10 * MIN)
    venue.inject("klines:drop=2024-01-01T00:02Z..2024-01-01T00:03Z,klines:drop=" + str(T0))
    opens = [r[0] for r in _klines(client)]
    assert opens == [T0 + i * MIN for i in (1, 4, 5, 6, 8, 9)]  # 00:07 is the file's own gap


def test_faults_from_the_constructor(bars: BarBook, clock: ManualClock) -> None:
    with FakeBinance(bars, clock=clock, faults="ping:500@1") as fx:
        c = _client(fx)
        assert _api_error(c.ping).status_code == 500
        assert c.ping() == {}
        c.session.close()


# --- the fault grammar ------------------------------------------------------------------------
def test_fault_grammar_parses_the_documented_examples() -> None:
    faults = parse_spec("klines:429@3, any:500x2,time:skew=+2000,klines:slow=800ms,"
                        "account:timeout=2s@1,klines:418=5@2x3,ping:503x*,"
                        "klines:drop=2024-01-01T00:05Z")
    got = [(f.target, f.kind, f.status, f.first, f.count) for f in faults]
    assert got == [("klines", "status", 429, 3, 1), ("any", "status", 500, 1, 2),
                   ("time", "skew", 0, 1, None), ("klines", "slow", 0, 1, None),
                   ("account", "timeout", 0, 1, 1), ("klines", "status", 418, 2, 3),
                   ("ping", "status", 503, 1, None), ("klines", "drop", 0, 1, None)]
    assert faults[2].skew_ms == 2000 and faults[3].delay_ms == 800
    assert faults[4].delay_ms == 2000 and faults[5].retry_after_s == 5
    assert faults[7].drop == (T0 + 5 * MIN, T0 + 5 * MIN)
    assert [faults[0].hits(n) for n in (1, 2, 3, 4)] == [False, False, True, False]


@pytest.mark.parametrize(("spec", "says"), [
    ("klines", "expected TARGET:ACTION"),
    ("orders:429", "unknown target 'orders'"),
    ("klines:lost", "applies to new orders and cancels only"),
    ("cancelOrder:invisible=1s", "invisible applies to new orders only"),
    ("order:unknown=404", "unknown needs 1007 or a status 500..599"),
    ("order:invisible", "invisible needs a duration"),
    ("order:lost=3", "lost takes no value"),
    ("klines:404", "status 404 cannot be injected"),
    ("klines:slow", "slow needs a duration"),
    ("klines:slow=fast", "is not a duration"),
    ("time:skew=2000", "signed number"),
    ("klines:drop=yesterday", "is not a time"),
    ("klines:drop=2024-01-01T00:05:30Z", "not the start of a minute"),
    ("time:drop=2024-01-01T00:05Z", "drop applies to klines only"),
    ("klines:drop=2024-01-01T00:05Z@2", "drop takes no @N"),
    ("klines:429@0", "counted from 1"),
    ("klines:500=3", "only 429=SECONDS and 418=SECONDS"),
    ("klines:explode", "unknown action"),
    (" , ", "no rule"),
])
def test_fault_grammar_errors_are_clear(spec: str, says: str) -> None:
    with pytest.raises(FaultSpecError, match=re.escape(says)):
        parse_spec(spec)


def test_a_bad_spec_adds_no_fault(venue: FakeBinance) -> None:
    with pytest.raises(FaultSpecError):
        venue.inject("ping:500,ping:nope")
    assert venue.faults.faults == []


# --- clock and lifecycle ----------------------------------------------------------------------
def test_accelerated_clock_runs_speed_times_faster() -> None:
    now = [100.0]
    clock = AcceleratedClock(T0, speed=600, monotonic=lambda: now[0])
    assert clock.now_ms() == T0
    now[0] += 1.0
    assert clock.now_ms() == T0 + 10 * MIN


def test_http_1_1_keep_alive_on_one_connection_with_nagle_off(venue: FakeBinance) -> None:
    from workbench.venues.fake_binance import _Handler

    assert _Handler.disable_nagle_algorithm is True  # DESIGN 10: else ~44 ms per call
    conn = http.client.HTTPConnection("127.0.0.1", venue.port, timeout=10)
    try:
        for path in ("/api/v3/ping", "/api/v3/time", "/api/v3/nope"):
            conn.request("GET", path)
            resp = conn.getresponse()
            body = json.loads(resp.read())
            assert resp.version == 11 and resp.getheader("Connection") != "close"
            assert resp.getheader("Content-Type").startswith("application/json")
        assert resp.status == 404 and body["code"] == -1000  # an unknown endpoint
        assert venue.faults.calls("any") == 2  # the unknown path reached no endpoint
    finally:
        conn.close()


def test_stop_ends_open_keep_alive_connections(bars: BarBook) -> None:
    fx = FakeBinance(bars).start()
    c = _client(fx)
    c.ping()  # leaves a keep-alive connection open
    fx.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        c.ping()
    c.session.close()


# --- the command line -------------------------------------------------------------------------
@contextmanager
def _serve(tmp_path: Path, *flags: str, env: dict[str, str] | None = None
           ) -> Iterator[tuple[type[Client], dict[str, Any]]]:
    """``workbench fake-exchange`` over 30 bars in its own process: a python-binance client
    class pointed at it, and (once the block ends: SIGTERM, then the process is waited for)
    its ``returncode``, ``out`` and ``err``."""
    data = _write_bars(tmp_path / "bars.csv", 30)
    base = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench", "fake-exchange", "--data", str(data),
         "--symbol", "BTCUSDT", "--start", "2024-01-01T00:10:00Z", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=base | (env or {}))
    ended: dict[str, Any] = {}
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.fullmatch(r"listening on (http://127\.0\.0\.1:(\d+))\n", line)
        assert m, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")

        class FakeClient(Client):
            API_URL = m.group(1) + "/api"

        yield FakeClient, ended
        proc.send_signal(signal.SIGTERM)
        ended["out"], ended["err"] = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    ended["returncode"] = proc.returncode


@pytest.mark.e2e
def test_cli_serves_klines_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with _serve(tmp_path, "--port", "0", "--speed", "600") as (FakeClient, ended):
        c = FakeClient(ping=False)
        rows = c.get_klines(symbol="BTCUSDT", interval="1m", startTime=T0, limit=5)
        assert [r[0] for r in rows] == [T0 + i * MIN for i in range(5)]
        c.session.close()
    assert ended["returncode"] == 0, ended["err"]
    assert "stopped" in ended["out"]


@pytest.mark.e2e
def test_cli_refuses_a_missing_data_file(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "workbench", "fake-exchange", "--data",
         str(tmp_path / "none.csv"), "--symbol", "BTCUSDT"],
        capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 1
    assert "file not found" in proc.stderr and "listening" not in proc.stdout


@pytest.mark.e2e
def test_cli_takes_the_environments_key_pair_and_the_given_balances(tmp_path: Path) -> None:
    with _serve(tmp_path, "--balances", "USDT=500,BTC=0.25", "--commission", "0.00075",
                env={"WB_VENUE__API_KEY": "env-key", "WB_VENUE__API_SECRET": "env-secret-123"}
                ) as (FakeClient, ended):
        c = FakeClient("env-key", "env-secret-123", ping=False)
        c.timestamp_offset = c.get_server_time()["serverTime"] - int(time.time() * 1000)
        account = c.get_account()
        held = {b["asset"]: b["free"] for b in account["balances"]}
        assert held == {"USDT": "500.00000000", "BTC": "0.25000000"}
        assert account["commissionRates"]["taker"] == "0.00075000"
        with pytest.raises(BinanceAPIException) as raised:
            other = FakeClient("fake-api-key", "fake-api-secret", ping=False)
            other.timestamp_offset = c.timestamp_offset
            other.get_account()
        assert raised.value.code == -2015
        c.session.close()
    assert ended["returncode"] == 0, ended["err"]
    assert "env-secret-123" not in ended["out"] + ended["err"]


@pytest.mark.parametrize(("flags", "says"), [
    (["--balances", "USDT:10"], "is not ASSET=AMOUNT"),
    (["--balances", "USDT=lots"], "is not a decimal number"),
    (["--commission", "-0.1"], "is not a decimal number >= 0"),
    (["--fee-asset", "BNB"], "--fee-asset needs the asset's price"),
])
def test_cli_bad_order_side_flags_are_refused_with_the_flag_named(
        tmp_path: Path, flags: list[str], says: str) -> None:
    data = _write_bars(tmp_path / "bars.csv", 30)
    proc = subprocess.run(
        [sys.executable, "-m", "workbench", "fake-exchange", "--data", str(data),
         "--symbol", "BTCUSDT", *flags], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr and "listening" not in proc.stdout


def _workbench_imports(module: str) -> set[str]:
    """The workbench modules ``module``'s source imports (anywhere in it), by name."""
    rel = module.replace(".", "/")
    path = ROOT / f"{rel}.py"
    if not path.exists():
        path = ROOT / rel / "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        found |= {n for n in names if n.startswith("workbench.")}
    return found


def test_the_venue_imports_nothing_of_the_engine() -> None:
    """Every module the venue reaches, transitively (the ``workbench`` package's own
    ``__init__``, which re-exports the public API, aside)."""
    todo = [f"workbench.venues.{p.stem}" for p in (ROOT / "workbench/venues").glob("*.py")]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_workbench_imports(name))
    assert "workbench.feeds.files" in seen  # the bar reader is shared with ingest
    banned = ("workbench.engine", "workbench.brokers", "workbench.strategy", "workbench.risk")
    assert sorted(m for m in seen if m.startswith(banned)) == []


@pytest.mark.e2e
def test_cli_refuses_a_bad_fault_spec(tmp_path: Path) -> None:
    data = _write_bars(tmp_path / "bars.csv", 30)
    proc = subprocess.run(
        [sys.executable, "-m", "workbench", "fake-exchange", "--data", str(data),
         "--symbol", "BTCUSDT", "--faults", "klines:429@0"],
        capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert "--faults" in proc.stderr and "counted from 1" in proc.stderr


@pytest.mark.e2e
def test_cli_retained_orders_flag_bounds_the_order_history(tmp_path: Path) -> None:
    with _serve(tmp_path, "--retained-orders", "1", "--retention-s", "3600") as (
            FakeClient, ended):
        c = FakeClient("fake-api-key", "fake-api-secret", ping=False)
        c.timestamp_offset = c.get_server_time()["serverTime"] - int(time.time() * 1000)
        first = c.order_market_buy(symbol="BTCUSDT", quantity="0.001")
        c.order_market_buy(symbol="BTCUSDT", quantity="0.001")
        with pytest.raises(BinanceAPIException) as raised:
            c.get_order(symbol="BTCUSDT", orderId=first["orderId"])
        assert raised.value.code == -2013
        c.session.close()
    assert ended["returncode"] == 0, ended["err"]
