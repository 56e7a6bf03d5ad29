"""The end-of-run summary: what a finished backtest should tell its user beyond the numbers.

It warns when the requested date range reached beyond the stored bars (the run was clipped to
the data), when nothing traded because the strategy never finished its warm-up (a symbol had
no more bars than ``Strategy.warmup_bars``) or for a reason it cannot tell, and counts the
orders the broker rejected and the risk rails blocked, by reason code. It also records which
series were resampled from finer stored bars (``feeds/history.py``). Everything lands in the
manifest (``summary``, ``resampled_from``); ``RunResult.warnings`` and ``workbench backtest``
show it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from workbench.engine.journal import OrderState
from workbench.feeds.qc import QcReport
from workbench.model import Order, OrderStatus, ms_to_iso
from workbench.strategy import Strategy


def clipping_warnings(symbol: str, first_ts: int, last_ts: int, tf_ms: int,
                      start: int | None, end: int | None) -> list[str]:
    """A warning for each end of the requested range [start, end) that lies a whole bar or
    more beyond the bars the run got (bars are named by their open time)."""
    out = []
    if start is not None and first_ts - start >= tf_ms:
        out.append(f"{symbol}: the requested start {ms_to_iso(start)} (--from / data.start) "
                   f"is before the first bar there is, {ms_to_iso(first_ts)}: the run starts "
                   "there")
    if end is not None and end - (last_ts + tf_ms) >= tf_ms:
        out.append(f"{symbol}: the requested end {ms_to_iso(end)} (--to / data.end) is after "
                   f"the last bar there is, {ms_to_iso(last_ts)}: the run ends there")
    return out


def warmup_warnings(bars: dict[str, int], orders: Sequence[Order | OrderState], warmup: int,
                    strategy_name: str) -> list[str]:
    """A warning for each symbol with no orders and no more bars than the warm-up."""
    if warmup <= 0:
        return []
    traded = {o.symbol for o in orders}
    return [f"{symbol}: no orders: {strategy_name} needs more than {warmup} bars to warm up "
            f"(warmup_bars) and the run has {n} bars of {symbol}; lengthen the date range or "
            "shorten the strategy's windows"
            for symbol, n in sorted(bars.items()) if n <= warmup and symbol not in traded]


def order_counts(orders: Sequence[Order | OrderState]) -> dict[str, Any]:
    """Orders in all, and those REJECTED (broker) and BLOCKED (risk) by reason code."""
    rejected = Counter(o.reason or "UNKNOWN" for o in orders
                       if o.status is OrderStatus.REJECTED)
    blocked = Counter(o.reason or "UNKNOWN" for o in orders if o.status is OrderStatus.BLOCKED)
    return {"total": len(orders), "rejected": dict(sorted(rejected.items())),
            "blocked": dict(sorted(blocked.items()))}


def summarize(strategy: Strategy, reports: Sequence[QcReport], orders: Sequence[Order | OrderState],
              start: int | None, end: int | None) -> dict[str, Any]:
    """The summary of a finished loop (see the module docstring)."""
    warnings: list[str] = []
    bars: dict[str, int] = {}
    for r in sorted(reports, key=lambda r: r.series.symbol):
        s = r.series
        bars[s.symbol] = len(s)
        if len(s):
            warnings += clipping_warnings(s.symbol, int(s.ts[0]), int(s.ts[-1]),
                                          s.timeframe_ms, start, end)
    name = type(strategy).__name__
    warmup = warmup_warnings(bars, orders, int(strategy.warmup_bars), name)
    warnings += warmup
    if not orders and not warmup:
        warnings.append(f"no orders: {name} placed none in {sum(bars.values())} bars; check "
                        "its parameters (strategy.params) and the date range")
    counts = order_counts(orders)
    for kind, what in (("rejected", "rejected by the broker"), ("blocked", "blocked by risk")):
        if counts[kind]:
            n = sum(counts[kind].values())
            reasons = ", ".join(f"{k} {v}" for k, v in counts[kind].items())
            warnings.append(f"{n} of {counts['total']} orders {what}: {reasons}")
    return {"warnings": warnings, "orders": counts, "bars_per_symbol": bars,
            "warmup_bars": int(strategy.warmup_bars)}


def record(manifest: dict[str, Any], strategy: Strategy, reports: Sequence[QcReport],
           orders: Sequence[Order | OrderState], start: int | None, end: int | None) -> None:
    """Put the summary (and which series were resampled, from what) into the manifest."""
    manifest["summary"] = summarize(strategy, reports, orders, start, end)
    resampled = {r.series.symbol: r.series.resampled_from for r in reports
                 if r.series.resampled_from}
    if resampled:
        manifest["resampled_from"] = resampled
