"""A tiny check runner: each check is a function of an adapter; its result is pass, fail or skip.

A check passes by returning (optionally a message), fails by raising ``CheckFailed`` (or any
other exception, reported with its type), and is skipped by raising ``Skip`` with the reason.
Checks register with ``@check("port.name")`` in their suite module; ``run_adapter`` runs every
registered check, in registration order, against one adapter.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

PORTS = ("market_data", "order_router", "risk", "snapshot_store", "portfolio_store",
         "event_bus")


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


class CheckFailed(AssertionError):
    """A contract clause does not hold; the message says which and what was seen."""


class Skip(Exception):
    """The check does not apply to this adapter; the message says why."""


def expect(condition: object, message: str) -> None:
    """Fail the running check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


@dataclass(frozen=True)
class Check:
    id: str
    fn: Callable[[Any], str | None]
    doc: str

    @property
    def port(self) -> str:
        return self.id.split(".", 1)[0]


@dataclass(frozen=True)
class Result:
    check_id: str
    port: str
    status: Status
    message: str
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: id, port, status, message, duration_s."""
        return {"id": self.check_id, "port": self.port, "status": self.status.value,
                "message": self.message, "duration_s": round(self.duration_s, 6)}


@dataclass
class AdapterReport:
    adapter: str
    results: list[Result] = field(default_factory=list)
    skip_reason: str | None = None  # set when the whole adapter was unavailable

    def count(self, status: Status) -> int:
        """How many checks ended with ``status``."""
        return sum(1 for r in self.results if r.status is status)

    @property
    def failed(self) -> int:
        return self.count(Status.FAILED)

    @property
    def ok(self) -> bool:
        """Nothing failed and something passed: what the live gate needs."""
        return self.failed == 0 and self.count(Status.PASSED) > 0

    def to_dict(self) -> dict[str, Any]:
        """The adapter's part of the JSON summary."""
        return {"passed": self.count(Status.PASSED), "failed": self.failed,
                "skipped": self.count(Status.SKIPPED), "ok": self.ok,
                "skip_reason": self.skip_reason,
                "checks": [r.to_dict() for r in self.results]}


REGISTRY: list[Check] = []


def check(check_id: str) -> Callable[[Callable[[Any], str | None]], Callable[[Any], str | None]]:
    """Register a check under a stable id ``port.what_it_proves``."""
    port = check_id.split(".", 1)[0]
    if port not in PORTS:
        raise ValueError(f"check id {check_id!r} names no port; use one of {', '.join(PORTS)}")

    def register(fn: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
        if any(c.id == check_id for c in REGISTRY):
            raise ValueError(f"two checks share the id {check_id!r}")
        REGISTRY.append(Check(check_id, fn, (fn.__doc__ or "").strip().split("\n")[0]))
        return fn

    return register


def checks() -> list[Check]:
    """Every registered check, port by port in ``PORTS`` order, each port's checks in the
    order its module defines them (importing the suites registers them)."""
    from workbench.contract import suites  # noqa: F401 (registers the checks)

    return sorted(REGISTRY, key=lambda c: PORTS.index(c.port))


def run_one(c: Check, adapter: Any) -> Result:
    """Run one check against ``adapter`` and time it."""
    began = time.perf_counter()
    try:
        message = c.fn(adapter) or ""
        status = Status.PASSED
    except Skip as exc:
        status, message = Status.SKIPPED, str(exc)
    except CheckFailed as exc:
        status, message = Status.FAILED, str(exc) or "a contract clause does not hold"
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        status = Status.FAILED
        message = (f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})")
    return Result(c.id, c.port, status, message, time.perf_counter() - began)


def run_adapter(adapter: Any, on_result: Callable[[Result], None] | None = None
                ) -> AdapterReport:
    """Every check against ``adapter``, each passed to ``on_result`` as it ends; when the
    adapter is unavailable, every check is skipped with its reason (``skip_reason``) and
    ``on_result`` is not called."""
    report = AdapterReport(adapter.name)
    reason = adapter.unavailable()
    report.skip_reason = reason
    try:
        for c in checks():
            if reason is not None:  # said once by the caller, not per check
                report.results.append(Result(c.id, c.port, Status.SKIPPED, reason, 0.0))
                continue
            result = run_one(c, adapter)
            report.results.append(result)
            if on_result is not None:
                on_result(result)
    finally:
        adapter.close()
    return report
