"""The python-binance client pointed at one venue, and the policy every venue call goes through.

python-binance (1.0.x) has no base-URL argument, never retries and ignores ``Retry-After``; its
sync client keeps ``timestamp_offset`` at 0 unless told. ``VenueClient`` points ``API_URL`` at
the venue (Binance, the testnet, or ``workbench fake-exchange``), always with ``ping=False``,
sets the offset from ``/api/v3/time``, and runs every call through ``call``:

* retryable: a timeout or a dropped connection, HTTP 5xx, 429 (and ``-1003``), an answer that
  is not JSON; a timestamp outside ``recvWindow`` (``-1021``) after re-reading the venue clock.
  Each retry waits an exponential backoff with jitter, at least the venue's ``Retry-After``.
* 418 (an IP ban): no request at all leaves until ``Retry-After`` has passed.
* terminal: any other venue error (a bad symbol, a bad key, a rejected parameter): raised at
  once as ``VenueRejected``.
* After ``RetryPolicy.attempts`` failures in a row: ``VenueUnavailable`` (the run halts).
* The weight header: when an answer's ``X-MBX-USED-WEIGHT-1M`` reaches
  ``RetryPolicy.weight_headroom`` of the minute's limit (``weight_limit``, from
  ``exchangeInfo``'s REQUEST_WEIGHT), the next call waits for the minute to end instead of
  running into a 429 (and, after more, a 418 ban).

Nothing here sleeps in a loop without a bound, and every failure is counted (``errors``) and
described (``events``) for metrics and alerts.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from workbench.errors import WorkbenchError

T = TypeVar("T")


class VenueRejected(WorkbenchError):
    """The venue refused a request for good (a terminal error): retrying would not help."""


class VenueUnavailable(WorkbenchError):
    """The venue failed every retry of a call; the run halts with an alert."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # calls before giving up
    base_s: float = 0.25  # first backoff
    cap_s: float = 8.0  # longest backoff
    jitter: float = 0.5  # up to +50 %
    ban_default_s: float = 60.0  # a 418 without Retry-After
    max_wait_s: float = 300.0  # no single wait (a ban included) beyond this
    weight_headroom: float = 0.9  # of the minute's request weight: then wait for the next


@dataclass(frozen=True)
class VenueEvent:
    """One failed attempt, for logs, metrics and alerts."""

    call: str
    kind: str  # timeout, network, server, throttled, banned, clock, garbage
    detail: str
    wait_s: float


class VenueClient:
    def __init__(self, base_url: str, *, api_key: str | None = None,
                 api_secret: str | None = None, recv_window_ms: int = 5000,
                 timeout_s: float = 10.0, policy: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
                 seed: int = 0) -> None:
        from binance.client import Client

        if not base_url.startswith(("http://", "https://")):
            raise VenueRejected(f"venue base URL {base_url!r} is not an http(s) URL",
                                where="venue.base_url",
                                fix='write it like "https://api.binance.com" or '
                                    '"http://127.0.0.1:8765"')

        owner = self

        class _PointedClient(Client):  # python-binance has no base-URL argument
            API_URL = base_url.rstrip("/") + "/api"
            REQUEST_TIMEOUT = timeout_s

            def _handle_response(self, response: Any) -> Any:  # every answer passes here
                owner.note_weight(response)
                return Client._handle_response(response)

        self.base_url = base_url.rstrip("/")
        self.client = _PointedClient(api_key, api_secret, ping=False)
        self.recv_window_ms = recv_window_ms
        self.policy = policy or RetryPolicy()
        self._sleep, self._monotonic, self._wall_ms = sleep, monotonic, wall_ms
        self._rng = random.Random(seed)
        self.banned_until = 0.0  # monotonic seconds
        self.synced_at = float("-inf")  # monotonic seconds of the last sync_time
        self.sync_uncertainty_ms = 0.0
        self.weight_limit = 6000  # REQUEST_WEIGHT per minute (set from exchangeInfo)
        self.used_weight = 0  # the last X-MBX-USED-WEIGHT-1M seen
        self._weight_wait_until = 0.0  # monotonic seconds
        self.errors = 0
        self.calls = 0
        self.events: list[VenueEvent] = []

    # --- time ---------------------------------------------------------------------------
    def sync_time(self) -> int:
        """Set the client's timestamp offset from the venue clock; return the venue time.
        ``synced_at`` and ``sync_uncertainty_ms`` (the round trip of the read: the offset is
        known no better) say how far the offset can be trusted."""
        t0 = self._monotonic()
        server = int(self.call("time", self.client.get_server_time)["serverTime"])
        self.client.timestamp_offset = server - self._wall_ms()
        self.synced_at = self._monotonic()
        self.sync_uncertainty_ms = (self.synced_at - t0) * 1000
        return server

    def clock_trusted(self, max_age_s: float = 60.0) -> bool:
        """Whether a signed request would land inside the venue's ``recvWindow``: the offset
        was read within ``max_age_s`` and its uncertainty is within the window. A stale offset
        is read again here."""
        if self._monotonic() - self.synced_at > max_age_s:
            self.sync_time()
        return self.sync_uncertainty_ms <= self.recv_window_ms

    def now_ms(self) -> int:
        """The venue's time as this process estimates it (after ``sync_time``)."""
        return self._wall_ms() + int(self.client.timestamp_offset)

    # --- the policy ---------------------------------------------------------------------
    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` under the retry policy (see the module docstring)."""
        import requests
        from binance.exceptions import BinanceAPIException, BinanceRequestException

        policy = self.policy
        last = ""
        for attempt in range(1, policy.attempts + 1):
            self._wait_out_ban()
            self.calls += 1
            try:
                return fn(*args, **kwargs)
            except BinanceAPIException as exc:
                kind, wait, detail = self._classify(exc, attempt)
                if kind == "terminal":
                    raise VenueRejected(
                        f"{what}: the venue refused it: {detail}", where=self.base_url,
                        fix=_FIXES.get(exc.code, "check the request (symbol, key, "
                                                 "parameters); retrying would not help"),
                    ) from None
                if kind == "clock" and attempt < policy.attempts:
                    self._record(what, kind, detail, 0.0)
                    self.sync_time()
                    continue
            except requests.Timeout as exc:
                kind, wait, detail = "timeout", self._backoff(attempt), str(exc)
            except requests.RequestException as exc:
                kind, wait, detail = "network", self._backoff(attempt), str(exc)
            except BinanceRequestException as exc:
                kind, wait, detail = "garbage", self._backoff(attempt), exc.message[:200]
            last = f"{kind}: {detail}"
            self._record(what, kind, detail, wait)
            if attempt < policy.attempts and wait > 0:
                self._sleep(wait)
        raise VenueUnavailable(
            f"{what} failed {policy.attempts} times in a row (last: {last})",
            where=self.base_url,
            fix="check that the venue is reachable and answering (`venue.base_url`); the run "
                "halts and resumes from its journal when restarted")

    def _classify(self, exc: Any, attempt: int) -> tuple[str, float, str]:
        status, code = int(exc.status_code), exc.code
        detail = f"HTTP {status}, code {code}: {exc.message}"
        retry_after = _retry_after(exc.response)
        if status == 418:
            ban = min(retry_after or self.policy.ban_default_s, self.policy.max_wait_s)
            self.banned_until = self._monotonic() + ban
            return "banned", 0.0, detail
        if status == 429 or code == -1003:
            return "throttled", max(self._backoff(attempt), retry_after or 0.0), detail
        if status >= 500 or code == -1007:  # -1007: timeout waiting for the backend
            return "server", self._backoff(attempt), detail
        if code == -1021:
            return "clock", 0.0, detail
        return "terminal", 0.0, detail

    def set_limits(self, exchange_info: Any) -> None:
        """Take the minute's request weight limit from ``exchangeInfo``'s ``rateLimits``."""
        for limit in exchange_info.get("rateLimits", []) if isinstance(exchange_info,
                                                                       dict) else []:
            if (limit.get("rateLimitType") == "REQUEST_WEIGHT" and limit.get("interval")
                    == "MINUTE" and int(limit.get("intervalNum", 1)) == 1):
                self.weight_limit = int(limit["limit"])
        self._check_weight(self.used_weight)

    def note_weight(self, response: Any) -> None:
        """Read an answer's ``X-MBX-USED-WEIGHT-1M`` (every answer of the client, errors and
        calls made outside ``call`` included); near the limit, the next request waits for
        the minute to end."""
        try:
            used = int(response.headers.get("X-MBX-USED-WEIGHT-1M"))
        except (AttributeError, TypeError, ValueError):
            return
        self.used_weight = used
        self._check_weight(used)

    def _check_weight(self, used: int) -> None:
        if used >= self.policy.weight_headroom * self.weight_limit:
            wait = (60_000 - self._wall_ms() % 60_000) / 1000
            self._weight_wait_until = max(self._weight_wait_until, self._monotonic() + wait)
            self._record("weight", "weight", f"{used} of {self.weight_limit} request weight "
                         "used this minute: waiting for the next", wait)

    def start_ban(self, exc: Any) -> float:
        """A 418 answered a call made outside ``call``: no request leaves until its
        ``Retry-After`` has passed. Returns the ban's length in seconds."""
        ban = min(_retry_after(exc.response) or self.policy.ban_default_s,
                  self.policy.max_wait_s)
        self.banned_until = max(self.banned_until, self._monotonic() + ban)
        self._record("order", "banned", f"HTTP 418: {exc.message}", ban)
        return ban

    def _backoff(self, attempt: int) -> float:
        p = self.policy
        base = min(p.cap_s, p.base_s * 2 ** (attempt - 1))
        return min(base * (1 + p.jitter * self._rng.random()), p.max_wait_s)

    def _wait_out_ban(self) -> None:
        """No request during a 418 ban, nor past the weight headroom before the minute ends."""
        left = max(self.banned_until, self._weight_wait_until) - self._monotonic()
        if left > 0:
            self._sleep(min(left, self.policy.max_wait_s))

    def held_back_s(self) -> float:
        """Seconds before a request may leave (a 418 ban, or a minute whose weight is spent);
        0 when one may leave now. Orders ask this instead of waiting: the loop must not."""
        return max(0.0, max(self.banned_until, self._weight_wait_until) - self._monotonic())

    def _record(self, what: str, kind: str, detail: str, wait: float) -> None:
        self.errors += 1
        self.events.append(VenueEvent(what, kind, detail, wait))


_FIXES = {
    -1121: "the symbol is not traded on this venue: check data.symbols",
    -2014: "the API key is malformed: check WB_VENUE__API_KEY (or the secrets file)",
    -2015: "the API key, its IP allow-list or its permissions do not match: check "
           "WB_VENUE__API_KEY / WB_VENUE__API_SECRET",
    -1022: "the request signature is wrong: check WB_VENUE__API_SECRET",
}


def _retry_after(response: Any) -> float | None:
    try:
        value = response.headers.get("Retry-After")
        return float(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None
