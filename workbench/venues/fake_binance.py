"""A local Binance Spot REST exchange for tests and offline rehearsal.

A real HTTP/1.1 server on 127.0.0.1 (stdlib ``ThreadingHTTPServer``, keep-alive, Nagle off)
answering the subset of ``/api/v3`` the workbench uses: ``ping``, ``time``, ``exchangeInfo``,
``klines``, ``ticker/price``, and signed: ``account``, ``order`` (POST, GET, DELETE),
``openOrders``, ``allOrders`` and ``myTrades``. It replays one symbol's 1-minute bars from a
file on a venue clock (``AcceleratedClock``, or a ``ManualClock`` a test steps); a bar is
served only once its close time has passed on that clock, and orders are matched on those bars
(``matching.py``: fills, balances, filters, the duplicate rule, Binance's error codes and
texts). Signed requests are checked as Binance does (``X-MBX-APIKEY``, HMAC-SHA256 over the
query string and body, ``timestamp``/``recvWindow``); request weight is counted per wall-clock
minute and reported in ``X-MBX-USED-WEIGHT-1M`` on every response, new orders in
``X-MBX-ORDER-COUNT-10S`` and ``-1D``; faults are injected with ``inject(SPEC)`` (grammar in
``faults.py``).

A separate party: it imports nothing of the engine, the brokers or the strategy.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from workbench.venues.bar_book import KLINES_DEFAULT_LIMIT, KLINES_MAX_LIMIT, BarBook, SymbolRules
from workbench.venues.faults import UNKNOWN_OUTCOME_STATUS, CallFaults, Fault, FaultPlan
from workbench.venues.matching import (
    MAX_NUM_ORDERS,
    RETAINED_ORDERS,
    RETENTION_MS,
    Matcher,
    VenueError,
    long_param,
)
from workbench.venues.matching import mandatory as _mandatory
from workbench.venues.venue_clock import AcceleratedClock, VenueClock

HOST = "127.0.0.1"
WEIGHT_LIMIT = 6000  # REQUEST_WEIGHT per minute, as Binance Spot publishes it
ORDERS_10S_LIMIT, ORDERS_1D_LIMIT = 100, 200_000  # ORDERS rate limits (exchangeInfo)
# (method, path) -> the route's name (the fault target) and its Spot request weight
# (klines: 2 whatever the limit; the limit-dependent table is futures')
ROUTES: dict[tuple[str, str], tuple[str, int]] = {
    ("GET", "ping"): ("ping", 1), ("GET", "time"): ("time", 1),
    ("GET", "exchangeInfo"): ("exchangeInfo", 20), ("GET", "klines"): ("klines", 2),
    ("GET", "account"): ("account", 20), ("POST", "order"): ("order", 1),
    ("GET", "order"): ("getOrder", 4), ("DELETE", "order"): ("cancelOrder", 1),
    ("GET", "openOrders"): ("openOrders", 6), ("GET", "allOrders"): ("allOrders", 20),
    ("GET", "myTrades"): ("myTrades", 20), ("GET", "ticker/price"): ("tickerPrice", 2)}
PATHS = frozenset(path for _, path in ROUTES)
SIGNED = frozenset({"account", "order", "getOrder", "cancelOrder", "openOrders", "allOrders",
                    "myTrades"})
MAX_RECV_WINDOW = 60_000
DEFAULT_RECV_WINDOW = 5000
DEFAULT_API_KEY = "fake-api-key"
DEFAULT_API_SECRET = "fake-api-secret"
_5XX = {503: (-1008, "Service Unavailable."),
        UNKNOWN_OUTCOME_STATUS: (-1007, "Timeout waiting for response from backend server. "
                                        "Send status unknown; execution status unknown.")}


class WeightMeter:
    """Request weight used in the current wall-clock minute (thread-safe)."""

    def __init__(self, limit: int, wall_ms: Callable[[], int]) -> None:
        self.limit = limit
        self._wall_ms = wall_ms
        self._lock = threading.Lock()
        self._window = -1
        self._used = 0

    def add(self, weight: int) -> tuple[int, int]:
        """Count ``weight``; returns the minute's total and seconds until the minute ends."""
        now = self._wall_ms()
        with self._lock:
            window = now // 60_000
            if window != self._window:
                self._window, self._used = window, 0
            self._used += weight
            return self._used, max(1, math.ceil(((window + 1) * 60_000 - now) / 1000))

    @property
    def used(self) -> int:
        with self._lock:
            return self._used if self._wall_ms() // 60_000 == self._window else 0


class OrderMeter:
    """New orders in the last 10 wall seconds and the current UTC day (thread-safe)."""

    def __init__(self, wall_ms: Callable[[], int]) -> None:
        self._wall_ms = wall_ms
        self._lock = threading.Lock()
        self._recent: list[int] = []
        self._day, self._today = -1, 0

    def add(self) -> tuple[int, int]:
        """Count one new order; the 10-second and day counts with it."""
        now = self._wall_ms()
        with self._lock:
            self._recent = [t for t in self._recent if t > now - 10_000] + [now]
            day = now // 86_400_000
            if day != self._day:
                self._day, self._today = day, 0
            self._today += 1
            return len(self._recent), self._today


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, venue: FakeBinance, port: int) -> None:
        self.venue = venue
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__((HOST, port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else a keep-alive loopback call stalls ~44 ms (DESIGN 10)
    timeout = 120  # an idle keep-alive connection is closed after two minutes
    server_version = "fake-binance/1"
    server: _Server

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.venue.verbose:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        venue = self.server.venue
        length_text = self.headers.get("Content-Length") or "0"
        length = int(length_text) if length_text.isdigit() else 0
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        parts = urlsplit(self.path)
        path = parts.path[len("/api/v3/"):] if parts.path.startswith("/api/v3/") else ""
        used = 0
        counts: dict[str, str] = {}
        try:
            if path not in PATHS:
                raise VenueError(404, -1000, f"Unknown endpoint {parts.path!r}.")
            if (method, path) not in ROUTES:
                raise VenueError(405, -1000, f"{method} is not allowed on {parts.path}.")
            route, weight = ROUTES[(method, path)]
            calls = venue.faults.on_call(route)
            used, reset_s = venue.weight.add(weight)
            if used > venue.weight.limit:
                raise VenueError(429, -1003, "Too much request weight used; current limit is "
                                 f"{venue.weight.limit} request weight per 1 MINUTE. Please "
                                 "use WebSocket Streams for live updates to avoid polling the "
                                 "API.", reset_s)
            if calls.delay_ms and venue.stopping.wait(calls.delay_ms / 1000):
                return self._drop()
            if calls.hold_ms is not None:
                venue.stopping.wait(calls.hold_ms / 1000)
                return self._drop()
            if calls.status is not None:
                raise _injected(calls.status, venue)
            if route == "order":
                ten_s, day = venue.order_count.add()
                counts = {"X-MBX-ORDER-COUNT-10S": str(ten_s), "X-MBX-ORDER-COUNT-1D": str(day)}
                if ten_s > ORDERS_10S_LIMIT:
                    raise VenueError(429, -1015, "Too many new orders; current limit is "
                                     f"{ORDERS_10S_LIMIT} orders per TEN_SECONDS.", 10)
            try:
                payload = venue.answer(route, parts.query, body, self.headers, calls)
            except VenueError:
                if calls.lost:  # the order was refused, and the answer is lost anyway
                    return self._drop()
                raise
            if calls.lost:  # accepted; the client never hears so
                return self._drop()
            if calls.accepted_status is not None:  # accepted; the client hears an error
                raise _injected(calls.accepted_status, venue)
            self._send(200, payload, used, headers=counts)
        except VenueError as exc:
            self._send(exc.status, {"code": exc.code, "msg": exc.msg}, used, exc.retry_after_s,
                       headers=counts)
        except Exception as exc:  # a bug in the fake: answer as Binance would, and say so
            sys.stderr.write(f"fake-binance: {type(exc).__name__}: {exc} on {self.path}\n")
            self._send(500, {"code": -1000, "msg": "An unknown error occurred while "
                             "processing the request."}, used)

    def _drop(self) -> None:
        """Close the connection without an answer (a timeout as the client sees it)."""
        self.close_connection = True

    def _send(self, status: int, payload: Any, used: int, retry_after_s: int | None = None,
              headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-MBX-USED-WEIGHT-1M", str(used))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if retry_after_s is not None:
            self.send_header("Retry-After", str(retry_after_s))
        self.end_headers()
        self.wfile.write(data)


def _injected(fault: Fault, venue: FakeBinance) -> VenueError:
    if fault.status == 429:
        return VenueError(429, -1003, "Too many requests; current limit is "
                          f"{venue.weight.limit} request weight per 1 MINUTE. Please use "
                          "WebSocket Streams for live updates to avoid polling the API.",
                          fault.retry_after_s)
    if fault.status == 418:
        until = int(time.time() * 1000) + fault.retry_after_s * 1000
        return VenueError(418, -1003, f"Way too much request weight used; IP banned until "
                          f"{until}. Please use WebSocket Streams for live updates to avoid "
                          "bans.", fault.retry_after_s)
    code, msg = _5XX.get(fault.status, (-1000, "An unknown error occurred while processing "
                                               "the request."))
    return VenueError(fault.status, code, msg)


def default_balances(rules: SymbolRules) -> dict[str, str]:
    """A fresh account: 10,000 of the quote asset and none of the base."""
    return {rules.quote_asset: "10000", rules.base_asset: "0"}


class FakeBinance:
    """The fake exchange. ``start()`` binds 127.0.0.1:``port`` (0: a free port) and serves in
    a background thread; ``stop()`` ends it and every open connection. A context manager.

    Test hooks: ``clock`` (pass a ``ManualClock`` to step venue time), ``inject(SPEC)`` and
    ``clear_faults()``, ``faults.calls(route)``, ``weight.used``, ``matcher`` (the orders,
    trades and balances as the venue holds them).

    Orders: ``balances`` (asset -> decimal text; default ``default_balances``), ``commission``
    (taker and maker rate), ``participation`` (partial fills: the share of a bar's volume an
    order may take per bar), ``fee_asset``/``fee_asset_price`` (commissions in e.g. BNB),
    ``max_num_orders`` (the MAX_NUM_ORDERS filter), ``retention_ms``/``retained_orders`` (how
    long, in venue time, and how many finished orders it keeps before it forgets them).
    """

    def __init__(self, bars: BarBook, *, clock: VenueClock | None = None,
                 api_key: str = DEFAULT_API_KEY, api_secret: str = DEFAULT_API_SECRET,
                 rules: SymbolRules | None = None, balances: dict[str, str] | None = None,
                 weight_limit: int = WEIGHT_LIMIT, faults: str | None = None,
                 wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
                 commission: str = "0.001", participation: float | None = None,
                 fee_asset: str | None = None, fee_asset_price: str = "0",
                 max_num_orders: int = MAX_NUM_ORDERS, retention_ms: int = RETENTION_MS,
                 retained_orders: int = RETAINED_ORDERS,
                 port: int = 0, verbose: bool = False) -> None:
        self.bars = bars
        self.symbol = bars.symbol
        self.clock: VenueClock = clock or AcceleratedClock(bars.first_open_ms, 1.0)
        self.api_key = api_key
        self._secret = api_secret.encode()
        self.rules = rules or bars.rules()
        self.commission = commission
        self.matcher = Matcher(bars, self.rules, balances if balances is not None
                               else default_balances(self.rules), commission=commission,
                               participation=participation, fee_asset=fee_asset,
                               fee_asset_price=fee_asset_price, max_num_orders=max_num_orders,
                               retention_ms=retention_ms, retained_orders=retained_orders,
                               wall_ms=wall_ms)
        self.weight = WeightMeter(weight_limit, wall_ms)
        self.order_count = OrderMeter(wall_ms)
        self.faults = FaultPlan()
        if faults:
            self.faults.add(faults)
        self.verbose = verbose
        self.stopping = threading.Event()
        self._port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> FakeBinance:
        self._httpd = _Server(self, self._port)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={
            "poll_interval": 0.1}, name="fake-binance", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd = self._httpd
        if httpd is None:
            return
        self.stopping.set()  # slow and held answers give up now
        httpd.shutdown()
        with httpd.sockets_lock:
            for sock in list(httpd.open_sockets):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = None

    def __enter__(self) -> FakeBinance:
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the fake exchange is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT``; python-binance's ``API_URL`` is this
        plus ``/api``."""
        return f"http://{HOST}:{self.port}"

    def inject(self, spec: str) -> list[Fault]:
        """Add the faults of a SPEC (see ``faults.py``); calls are counted from now."""
        return self.faults.add(spec)

    def clear_faults(self) -> None:
        self.faults.clear()

    # --- endpoints ------------------------------------------------------------------------
    def answer(self, route: str, query: str, body: str, headers: Any,
               calls: CallFaults) -> Any:
        params = self._params(query, body)
        now = self.clock.now_ms() + calls.skew_ms
        if route in SIGNED:
            self._check_signed(query, body, params, headers, now)
            params.pop("signature", None)
        m = self.matcher
        if route == "ping":
            return {}
        if route == "time":
            return {"serverTime": now}
        if route == "exchangeInfo":
            return self._exchange_info(params, now)
        if route == "klines":
            return self._klines(params, now)
        if route == "order":
            return m.place(params, now, invisible_ms=calls.invisible_ms)
        if route == "getOrder":
            return m.query(params, now)
        if route == "cancelOrder":
            return m.cancel(params, now)
        if route == "openOrders":
            return m.open_orders(params, now)
        if route == "allOrders":
            return m.all_orders(params, now)
        if route == "myTrades":
            return m.my_trades(params, now)
        if route == "tickerPrice":
            return m.ticker_price(params, now)
        return self._account(now)

    @staticmethod
    def _params(query: str, body: str) -> dict[str, str]:
        pairs = parse_qsl(query, keep_blank_values=True) + parse_qsl(body, keep_blank_values=True)
        params = dict(pairs)
        if len(params) != len(pairs):
            raise VenueError(400, -1101, "Duplicate values for a parameter detected.")
        return params

    def _check_signed(self, query: str, body: str, params: dict[str, str], headers: Any,
                      now: int) -> None:
        key = headers.get("X-MBX-APIKEY")
        if not key or not hmac.compare_digest(key.encode(), self.api_key.encode()):
            raise VenueError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        timestamp = long_param(params, "timestamp")
        if timestamp is None:
            raise _mandatory("timestamp")
        signature = params.get("signature")
        if not signature:
            raise _mandatory("signature")
        window = long_param(params, "recvWindow")
        window = DEFAULT_RECV_WINDOW if window is None else window
        if window > MAX_RECV_WINDOW:
            raise VenueError(400, -1131, f"recvWindow must be less than {MAX_RECV_WINDOW}.")
        unsigned = lambda text: "&".join(  # noqa: E731
            p for p in text.split("&") if p and not p.startswith("signature="))
        total = unsigned(query) + unsigned(body)
        expected = hmac.new(self._secret, total.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise VenueError(400, -1022, "Signature for this request is not valid.")
        # Windows are wall-time allowances: on a clock running `speed` times faster they
        # stretch by the same factor, so a client that syncs from /time stays inside them.
        scale = max(1.0, self.clock.speed)
        if timestamp >= now + 1000 * scale or now - timestamp > window * scale:
            raise VenueError(400, -1021, "Timestamp for this request is outside of the "
                                         "recvWindow.")

    def _exchange_info(self, params: dict[str, str], now: int) -> Any:
        wanted = params.get("symbol")
        if params.get("symbols"):
            try:
                names = json.loads(params["symbols"])
            except ValueError:
                raise VenueError(400, -1100, "Illegal characters found in parameter "
                                             "'symbols'.") from None
            if not isinstance(names, list) or any(n != self.symbol for n in names):
                raise VenueError(400, -1121, "Invalid symbol.")
        elif wanted is not None and wanted != self.symbol:
            raise VenueError(400, -1121, "Invalid symbol.")
        r = self.rules
        return {
            "timezone": "UTC",
            "serverTime": now,
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": self.weight.limit},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                 "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
                 "limit": 200000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5,
                 "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": [{
                "symbol": r.symbol, "status": "TRADING", "baseAsset": r.base_asset,
                "baseAssetPrecision": 8, "quoteAsset": r.quote_asset, "quotePrecision": 8,
                "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT",
                               "TAKE_PROFIT_LIMIT"],
                "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True,
                "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True,
                "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False, "permissions": [],
                "filters": [*r.filters(), {"filterType": "MAX_NUM_ORDERS",
                                           "maxNumOrders": self.matcher.max_num_orders}],
                "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER",
                                                    "EXPIRE_BOTH"],
            }],
        }

    def _klines(self, params: dict[str, str], now: int) -> Any:
        symbol = params.get("symbol")
        if not symbol:
            raise _mandatory("symbol")
        if symbol != self.symbol:
            raise VenueError(400, -1121, "Invalid symbol.")
        interval = params.get("interval")
        if not interval:
            raise _mandatory("interval")
        if interval != "1m":  # the fake serves 1m bars only: any other interval is -1120
            raise VenueError(400, -1120, "Invalid interval.")
        limit = long_param(params, "limit")
        if limit is None:
            limit = KLINES_DEFAULT_LIMIT
        elif limit < 1:
            raise VenueError(400, -1130, "Data sent for parameter 'limit' is not valid.")
        start, end = long_param(params, "startTime"), long_param(params, "endTime")
        if start is not None and end is not None and start > end:
            raise VenueError(400, -1023, "Start time is greater than end time.")
        return self.bars.klines(now, start, end, min(limit, KLINES_MAX_LIMIT),
                                self.faults.drops())

    def _account(self, now: int) -> Any:
        rate = f"{float(self.commission):.8f}"
        bps = round(float(self.commission) * 10_000)
        return {
            "makerCommission": bps, "takerCommission": bps, "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": rate, "taker": rate,
                                "buyer": "0.00000000", "seller": "0.00000000"},
            "canTrade": True, "canWithdraw": False, "canDeposit": False, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": now,
            "accountType": "SPOT",
            "balances": self.matcher.balances(now),
            "permissions": ["SPOT"], "uid": 1,
        }


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (the previous handlers come back afterwards)."""
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, lambda signum, frame: stop.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(data: Path, symbol: str, *, port: int = 0, speed: float = 1.0,
          start_ms: int | None = None, faults: str | None = None,
          api_key: str = DEFAULT_API_KEY, api_secret: str = DEFAULT_API_SECRET,
          weight_limit: int = WEIGHT_LIMIT, verbose: bool = False,
          out: Any = None, **orders: Any) -> int:
    """``workbench fake-exchange``: serve until SIGTERM or Ctrl-C, then stop cleanly (0).
    ``orders``: the order side's options of ``FakeBinance`` (balances, commission, ...)."""
    out = out or sys.stdout
    bars = BarBook.from_file(data, symbol)
    clock = AcceleratedClock(bars.first_open_ms if start_ms is None else start_ms, speed)
    venue = FakeBinance(bars, clock=clock, api_key=api_key, api_secret=api_secret,
                        weight_limit=weight_limit, faults=faults, port=port, verbose=verbose,
                        **orders)
    stop = threading.Event()
    with _stop_on_signals(stop):
        venue.start()
        try:
            print(f"listening on {venue.url}", file=out, flush=True)
            print(f"{symbol}: {len(bars)} bars from {data}, venue clock x{speed:g}; "
                  f"python-binance API_URL = {venue.url}/api; stop with Ctrl-C",
                  file=out, flush=True)
            held = ", ".join(f"{b['asset']} {b['free']}"
                             for b in venue.matcher.balances(venue.clock.now_ms()))
            print(f"account: {held}; commission {venue.commission}", file=out, flush=True)
            while not stop.wait(0.2):
                pass
        finally:
            venue.stop()
    print("stopped", file=out, flush=True)
    return 0
