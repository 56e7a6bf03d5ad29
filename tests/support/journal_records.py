"""Journal payloads for the recovery tests: a small live run as WAL records."""

from __future__ import annotations

from typing import Any

from workbench.model import qty_to_units

T0 = 1_704_067_200_000
MINUTE = 60_000


def bar(symbol: str, i: int, close: float) -> dict[str, Any]:
    return {"symbol": symbol, "ts": T0 + i * MINUTE, "open": close, "high": close,
            "low": close, "close": close, "volume": 1.0}


def order(coid: str, seq: int, symbol: str, side: str, qty: float, ts: int) -> dict[str, Any]:
    return {"client_order_id": coid, "order_seq": seq, "symbol": symbol, "side": side,
            "type": "MARKET", "qty": qty, "qty_units": qty_to_units(qty),
            "limit_price": None, "ts": ts, "bar_ts": ts - MINUTE, "reduce_only": False,
            "tag": None}


def fill(fill_seq: int, coid: str, order_seq: int, symbol: str, side: str, qty: float,
         price: float, fee: float, ts: int) -> dict[str, Any]:
    return {"fill_seq": fill_seq, "client_order_id": coid, "order_seq": order_seq,
            "symbol": symbol, "side": side, "qty": qty, "qty_units": qty_to_units(qty),
            "price": price, "fee": fee, "ts": ts, "bar_ts": ts - MINUTE}


def small_run() -> list[tuple[str, dict[str, Any]]]:
    """A start, bars, a buy filled, a sell filled in two parts, a risk block, a halt."""
    t = T0 + MINUTE
    return [
        ("control", {"action": "start", "initial_cash": 10_000.0, "run_id": "r1"}),
        ("bar", bar("BTCUSDT", 0, 42_000.0)),
        ("decision", {"bar_ts": T0, "strategy_state": {"fast": [42_000.0]}}),
        ("order", order("r1-1", 1, "BTCUSDT", "BUY", 0.1, t)),
        ("order_event", {"client_order_id": "r1-1", "status": "SUBMITTED", "reason": None,
                         "ts": t}),
        ("fill", fill(1, "r1-1", 1, "BTCUSDT", "BUY", 0.1, 42_000.0, 4.2, t)),
        ("order_event", {"client_order_id": "r1-1", "status": "FILLED", "reason": None,
                         "ts": t}),
        ("bar", bar("BTCUSDT", 1, 42_100.5)),
        ("order", order("r1-2", 2, "BTCUSDT", "SELL", 0.1, t + MINUTE)),
        ("order_event", {"client_order_id": "r1-2", "status": "SUBMITTED", "reason": None,
                         "ts": t + MINUTE}),
        ("fill", fill(2, "r1-2", 2, "BTCUSDT", "SELL", 0.03, 42_100.5, 1.263015, t + MINUTE)),
        ("order_event", {"client_order_id": "r1-2", "status": "PARTIALLY_FILLED",
                         "reason": None, "ts": t + MINUTE}),
        ("order", order("r1-3", 3, "ETHUSDT", "BUY", 1.0, t + MINUTE)),
        ("order_event", {"client_order_id": "r1-3", "status": "BLOCKED",
                         "reason": "MAX_EXPOSURE", "ts": t + MINUTE}),
        ("risk_event", {"client_order_id": "r1-3", "reason": "MAX_EXPOSURE",
                        "risk_state": {"blocks_today": 1}}),
        ("bar", bar("BTCUSDT", 2, 41_900.0)),
        ("control", {"action": "halt", "reason": "operator", "ts": t + 2 * MINUTE}),
    ]
