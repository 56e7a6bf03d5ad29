"""The end-of-run summary (engine/summary.py): a range clipped to the data, a strategy that
never left its warm-up, and orders rejected or blocked, by reason."""

from __future__ import annotations

import numpy as np

from workbench.engine.summary import (
    clipping_warnings,
    order_counts,
    summarize,
    warmup_warnings,
)
from workbench.feeds.qc import BarSeries, QcReport
from workbench.model import Order, OrderStatus, OrderType, Side
from workbench.strategies.sma_cross import SmaCross
from workbench.strategy import Strategy

T0 = 1_704_067_200_000
M = 60_000


def _order(seq: int, status: OrderStatus, reason: str | None = None,
           symbol: str = "BTCUSDT") -> Order:
    return Order(seq, f"r-{seq}", symbol, Side.BUY, OrderType.MARKET, 0.1, 10_000_000, None,
                 T0, T0, status=status, reason=reason)


def _report(symbol: str, n: int, start: int = T0) -> QcReport:
    ts = start + np.arange(n, dtype=np.int64) * M
    col = np.ones(n)
    return QcReport(BarSeries(symbol, M, ts, col, col, col, col, col), [])


def test_clipping_warnings_range_inside_data_no_warning():
    assert clipping_warnings("X", T0, T0 + 99 * M, M, T0, T0 + 100 * M) == []
    assert clipping_warnings("X", T0, T0 + 99 * M, M, None, None) == []
    # less than a bar of slack (an unaligned --from) is not clipping
    assert clipping_warnings("X", T0, T0 + 99 * M, M, T0 - M + 1, T0 + 101 * M - 1) == []


def test_clipping_warnings_range_beyond_data_warns_each_end():
    start, end = T0 - M, T0 + 101 * M
    [before, after] = clipping_warnings("X", T0, T0 + 99 * M, M, start, end)
    assert before.startswith("X: the requested start 2023-12-31T23:59:00.000Z")
    assert "first bar there is, 2024-01-01T00:00:00.000Z" in before
    assert after.startswith("X: the requested end 2024-01-01T01:41:00.000Z")
    assert "last bar there is, 2024-01-01T01:39:00.000Z" in after


def test_warmup_warnings_bars_not_more_than_warmup_and_no_orders_warns():
    assert warmup_warnings({"A": 30, "B": 31}, [], 30, "SmaCross") == [
        "A: no orders: SmaCross needs more than 30 bars to warm up (warmup_bars) and the run "
        "has 30 bars of A; lengthen the date range or shorten the strategy's windows"]


def test_warmup_warnings_symbol_with_orders_or_no_warmup_no_warning():
    orders = [_order(1, OrderStatus.FILLED, symbol="A")]
    assert warmup_warnings({"A": 5}, orders, 30, "S") == []
    assert warmup_warnings({"A": 5}, [], 0, "S") == []


def test_order_counts_rejected_and_blocked_by_reason_sorted():
    orders = [_order(1, OrderStatus.FILLED),
              _order(2, OrderStatus.REJECTED, "INSUFFICIENT_FUNDS"),
              _order(3, OrderStatus.BLOCKED, "RISK_ORDER_NOTIONAL"),
              _order(4, OrderStatus.REJECTED, "INSUFFICIENT_FUNDS"),
              _order(5, OrderStatus.REJECTED, "MIN_NOTIONAL"),
              _order(6, OrderStatus.CANCELED, "EXPIRED")]
    assert order_counts(orders) == {
        "total": 6, "rejected": {"INSUFFICIENT_FUNDS": 2, "MIN_NOTIONAL": 1},
        "blocked": {"RISK_ORDER_NOTIONAL": 1}}


def test_summarize_refused_orders_warn_with_counts_and_clipping_per_symbol():
    orders = [_order(1, OrderStatus.REJECTED, "INSUFFICIENT_FUNDS"),
              _order(2, OrderStatus.BLOCKED, "RISK_ORDER_NOTIONAL")]
    out = summarize(SmaCross(fast=2, slow=5), [_report("B", 50, T0 + 10 * M), _report("A", 60)],
                    orders, T0, None)
    assert out["warnings"] == [
        "B: the requested start 2024-01-01T00:00:00.000Z (--from / data.start) is before the "
        "first bar there is, 2024-01-01T00:10:00.000Z: the run starts there",
        "1 of 2 orders rejected by the broker: INSUFFICIENT_FUNDS 1",
        "1 of 2 orders blocked by risk: RISK_ORDER_NOTIONAL 1",
    ]
    assert out["bars_per_symbol"] == {"A": 60, "B": 50}
    assert out["warmup_bars"] == 5


def test_strategy_warmup_bars_default_zero():
    assert Strategy().warmup_bars == 0


def test_summarize_no_orders_without_warmup_reason_warns_generally():
    out = summarize(Strategy(), [_report("A", 60)], [], None, None)
    assert out["warnings"] == ["no orders: Strategy placed none in 60 bars; check its "
                               "parameters (strategy.params) and the date range"]


def test_summarize_no_orders_in_warmup_warns_once():
    out = summarize(SmaCross(fast=2, slow=60), [_report("A", 60)], [], None, None)
    assert len(out["warnings"]) == 1
    assert "needs more than 60 bars to warm up" in out["warnings"][0]
