"""Fault injection for the fake exchange: a small grammar, parsed once, matched per call.

Grammar (whitespace around the separators is ignored)::

    SPEC     := RULE ( "," RULE )*
    RULE     := TARGET ":" ACTION [ "@" N ] [ "x" COUNT ]
    TARGET   := "any" | "ping" | "time" | "exchangeInfo" | "klines" | "account"
              | "order" (POST: a new order) | "getOrder" | "cancelOrder" | "openOrders"
              | "allOrders" | "myTrades" | "tickerPrice"
    ACTION   := "429" [ "=" SECONDS ]        too many requests (-1003), Retry-After SECONDS (1)
              | "418" [ "=" SECONDS ]        IP banned (-1003), Retry-After SECONDS (120)
              | 5xx                          a server error, 500..599 (nothing done)
              | "1007"                       -1007 "execution status unknown" (HTTP 408;
                                             nothing done)
              | "unknown=" (5xx | "1007")    order, cancelOrder: the request IS carried out,
                                             and the answer is that error (the outcome is
                                             unknown to the client)
              | "lost"                       order, cancelOrder: the request is carried out,
                                             and the connection closed without an answer
              | "invisible=" DURATION        order: an accepted order is unknown to queries
                                             (-2013, not listed) for DURATION of wall time
              | "slow=" DURATION             answer after DURATION
              | "timeout" [ "=" DURATION ]   hold the connection DURATION (30s), then close it
                                             without an answer
              | "skew=" ("+"|"-") MS         the venue clock as these calls see it is off by MS
              | "drop=" WHEN [ ".." WHEN ]   klines: the minute(s) are missing (a venue gap)
    DURATION := N "ms" | N "s" | N           (a bare number is milliseconds)
    WHEN     := 2024-01-01T00:05Z | 2024-01-01T00:05:00Z | 2024-01-01 00:05 | epoch ms

Which calls a rule hits: calls are counted per target (``any`` counts every call) from the
moment the rule is added, starting at 1. ``@N`` starts at the Nth call, ``xCOUNT`` lasts COUNT
calls (``x*``: for ever). ``@N`` alone means that one call; ``xCOUNT`` alone starts at the first
call; with neither, the rule hits every call. ``drop`` takes neither: a dropped minute is missing
for every caller.

Examples: ``klines:429@3`` (the 3rd klines call), ``any:500x2`` (the next two calls),
``time:skew=+2000``, ``klines:slow=800ms``, ``account:timeout@1``, ``klines:418=5@2x3``,
``klines:drop=2024-01-01T00:05Z..2024-01-01T00:07Z``, ``order:lost@1``,
``order:unknown=503@2``, ``order:invisible=3s``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

ENDPOINTS = ("ping", "time", "exchangeInfo", "klines", "account", "order", "getOrder",
             "cancelOrder", "openOrders", "allOrders", "myTrades", "tickerPrice")
TARGETS = ("any", *ENDPOINTS)
UNKNOWN_OUTCOME_STATUS = 408  # the HTTP status -1007 ("execution status unknown") comes with
ORDER_ONLY = ("order", "cancelOrder", "any")  # targets the taken-then-lost actions apply to
RETRY_AFTER_DEFAULT = {429: 1, 418: 120}
TIMEOUT_HOLD_MS = 30_000
MINUTE_MS = 60_000

_RULE = re.compile(r"^(?P<target>[A-Za-z]+)\s*:\s*(?P<action>.+?)"
                   r"(?:@(?P<first>\d+))?(?:x(?P<count>\d+|\*))?$")
_DURATION = re.compile(r"^(\d+)\s*(ms|s)?$")
_SKEW = re.compile(r"^([+-])(\d+)$")


class FaultSpecError(ValueError):
    """A fault SPEC that does not parse; the message names the rule and says what is wrong."""


@dataclass(frozen=True)
class Fault:
    """One parsed rule. ``first``/``count`` are relative to the calls after it was added."""

    text: str
    target: str
    kind: str  # "status" | "slow" | "timeout" | "skew" | "drop" | "accepted" | "lost"
    #            | "invisible"
    status: int = 0
    retry_after_s: int = 0
    delay_ms: int = 0
    skew_ms: int = 0
    drop: tuple[int, int] | None = None  # first and last dropped minute (open times, ms)
    first: int = 1
    count: int | None = None  # None: every call from ``first`` on

    def hits(self, n: int) -> bool:
        """Whether the rule applies to the ``n``-th call (1-based) since it was added."""
        return n >= self.first and (self.count is None or n < self.first + self.count)


def _duration_ms(text: str, rule: str) -> int:
    m = _DURATION.match(text.strip())
    if m is None:
        raise FaultSpecError(f"{rule!r}: {text!r} is not a duration; write e.g. 800ms, 2s or 800")
    return int(m.group(1)) * (1000 if m.group(2) == "s" else 1)


def parse_when(text: str, rule: str) -> int:
    """A minute as epoch ms: ISO-8601 UTC (Z, +00:00 or no zone) or epoch milliseconds."""
    text = text.strip()
    if text.isdigit():
        ms = int(text)
    else:
        iso = text.replace(" ", "T")
        if iso.endswith(("Z", "z")):
            iso = iso[:-1] + "+00:00"
        try:
            when = datetime.fromisoformat(iso)
        except ValueError:
            raise FaultSpecError(
                f"{rule!r}: {text!r} is not a time; write e.g. 2024-01-01T00:05Z or epoch ms"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if when.utcoffset():
            raise FaultSpecError(f"{rule!r}: {text!r} is not UTC; write the time in UTC (Z)")
        ms = int(when.timestamp() * 1000)
    if ms % MINUTE_MS:
        raise FaultSpecError(f"{rule!r}: {text!r} is not the start of a minute")
    return ms


def parse_rule(text: str) -> Fault:
    rule = text.strip()
    m = _RULE.match(rule)
    if m is None:
        raise FaultSpecError(f"{rule!r}: expected TARGET:ACTION, e.g. klines:429@3")
    target, action = m.group("target"), m.group("action").strip()
    if target not in TARGETS:
        raise FaultSpecError(f"{rule!r}: unknown target {target!r}; use one of "
                             f"{', '.join(TARGETS)}")
    first_text, count_text = m.group("first"), m.group("count")
    first = int(first_text) if first_text else 1
    if first_text and first < 1:
        raise FaultSpecError(f"{rule!r}: calls are counted from 1; @{first_text} names none")
    count: int | None
    if count_text == "*":
        count = None
    elif count_text:
        count = int(count_text)
        if count < 1:
            raise FaultSpecError(f"{rule!r}: x{count_text} hits no call; use x1 or more")
    else:
        count = 1 if first_text else None
    name, _, value = action.partition("=")
    name, value = name.strip(), value.strip()
    make = partial(Fault, text=rule, target=target, first=first, count=count)
    if name in ("unknown", "lost") and target not in ORDER_ONLY:
        raise FaultSpecError(f"{rule!r}: {name} applies to new orders and cancels only "
                             "(target order or cancelOrder)")
    if name == "invisible" and target not in ("order", "any"):
        raise FaultSpecError(f"{rule!r}: invisible applies to new orders only (target order)")
    if name == "1007" and not value:
        return make(kind="status", status=UNKNOWN_OUTCOME_STATUS)
    if name == "unknown":
        if value != "1007" and not (value.isdigit() and 500 <= int(value) <= 599):
            raise FaultSpecError(f"{rule!r}: unknown needs 1007 or a status 500..599, e.g. "
                                 "unknown=503")
        status = UNKNOWN_OUTCOME_STATUS if value == "1007" else int(value)
        return make(kind="accepted", status=status)
    if name == "lost":
        if value:
            raise FaultSpecError(f"{rule!r}: lost takes no value")
        return make(kind="lost")
    if name == "invisible":
        if not value:
            raise FaultSpecError(f"{rule!r}: invisible needs a duration, e.g. invisible=3s")
        return make(kind="invisible", delay_ms=_duration_ms(value, rule))
    if name.isdigit():
        status = int(name)
        if status not in (429, 418) and not 500 <= status <= 599:
            raise FaultSpecError(f"{rule!r}: status {status} cannot be injected; "
                                 "use 429, 418, 1007 or 500..599")
        retry = 0
        if value:
            if status not in RETRY_AFTER_DEFAULT or not value.isdigit():
                raise FaultSpecError(f"{rule!r}: only 429=SECONDS and 418=SECONDS take a value"
                                     " (the Retry-After header, whole seconds)")
            retry = int(value)
        elif status in RETRY_AFTER_DEFAULT:
            retry = RETRY_AFTER_DEFAULT[status]
        return make(kind="status", status=status, retry_after_s=retry)
    if name == "slow":
        if not value:
            raise FaultSpecError(f"{rule!r}: slow needs a duration, e.g. slow=800ms")
        return make(kind="slow", delay_ms=_duration_ms(value, rule))
    if name == "timeout":
        hold = _duration_ms(value, rule) if value else TIMEOUT_HOLD_MS
        return make(kind="timeout", delay_ms=hold)
    if name == "skew":
        s = _SKEW.match(value)
        if s is None:
            raise FaultSpecError(f"{rule!r}: skew needs a signed number of ms, e.g. skew=+2000")
        ms = int(s.group(2)) * (1 if s.group(1) == "+" else -1)
        return make(kind="skew", skew_ms=ms)
    if name == "drop":
        if target not in ("klines", "any"):
            raise FaultSpecError(f"{rule!r}: drop applies to klines only")
        if first_text or count_text:
            raise FaultSpecError(f"{rule!r}: drop takes no @N or xCOUNT: a dropped minute is "
                                 "missing for every call")
        if not value:
            raise FaultSpecError(f"{rule!r}: drop needs a minute, e.g. "
                                 "drop=2024-01-01T00:05Z or drop=A..B")
        lo_text, dots, hi_text = value.partition("..")
        lo = parse_when(lo_text, rule)
        hi = parse_when(hi_text, rule) if dots else lo
        if hi < lo:
            raise FaultSpecError(f"{rule!r}: the range ends before it starts")
        return Fault(text=rule, target=target, kind="drop", drop=(lo, hi))
    raise FaultSpecError(f"{rule!r}: unknown action {action!r}; use 429, 418, 5xx, 1007, "
                         "slow=, timeout, skew=, drop=, unknown=, lost or invisible=")


def parse_spec(spec: str) -> list[Fault]:
    """Every rule of a SPEC, or ``FaultSpecError`` naming the first bad one."""
    rules = [r for r in (part.strip() for part in spec.split(",")) if r]
    if not rules:
        raise FaultSpecError(f"{spec!r}: no rule; write e.g. klines:429@3")
    return [parse_rule(r) for r in rules]


@dataclass
class CallFaults:
    """What the faults say about one call: the first status hit wins, delays and skews add."""

    status: Fault | None = None
    delay_ms: int = 0
    hold_ms: int | None = None
    skew_ms: int = 0
    accepted_status: Fault | None = None  # the order is taken on, the answer is this error
    lost: bool = False  # the order is taken on, the answer never sent
    invisible_ms: int = 0  # an order taken on is unknown to queries for this long
    rules: list[str] = field(default_factory=list)


class FaultPlan:
    """The faults in force, with per-target call counters (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, int] = dict.fromkeys(TARGETS, 0)
        self._faults: list[tuple[Fault, int]] = []  # each with its target's count when added
        self._drops: list[tuple[int, int]] = []

    def add(self, spec: str) -> list[Fault]:
        faults = parse_spec(spec)  # all or nothing: a bad rule adds none of the spec
        with self._lock:
            for f in faults:
                if f.kind == "drop":
                    assert f.drop is not None
                    self._drops.append(f.drop)
                else:
                    self._faults.append((f, self._calls[f.target]))
        return faults

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._drops.clear()

    @property
    def faults(self) -> list[Fault]:
        with self._lock:
            return [f for f, _ in self._faults]

    def drops(self) -> list[tuple[int, int]]:
        with self._lock:
            return list(self._drops)

    def calls(self, target: str) -> int:
        with self._lock:
            return self._calls[target]

    def on_call(self, endpoint: str) -> CallFaults:
        """Count one call to ``endpoint`` (and to ``any``) and say which faults hit it."""
        out = CallFaults()
        with self._lock:
            if endpoint in self._calls:
                self._calls[endpoint] += 1
            self._calls["any"] += 1
            for f, base in self._faults:
                if f.target not in ("any", endpoint) or not f.hits(self._calls[f.target] - base):
                    continue
                out.rules.append(f.text)
                if f.kind == "status":
                    out.status = out.status or f
                elif f.kind == "slow":
                    out.delay_ms += f.delay_ms
                elif f.kind == "timeout":
                    out.hold_ms = max(out.hold_ms or 0, f.delay_ms)
                elif f.kind == "skew":
                    out.skew_ms += f.skew_ms
                elif endpoint not in ("order", "cancelOrder"):
                    continue  # accepted, lost, invisible: new orders and cancels only
                elif f.kind == "accepted":
                    out.accepted_status = out.accepted_status or f
                elif f.kind == "lost":
                    out.lost = True
                elif f.kind == "invisible":
                    out.invisible_ms = max(out.invisible_ms, f.delay_ms)
        return out
