"""The run directory's deterministic files: trades.csv, orders.csv, fills.csv, equity.csv.

No run ids, client order ids or wall-clock times appear in them (orders and fills are named by
the per-run ``order_seq``), and floats are written as Python's shortest round-trip repr, never
rounded, so the same config and data give byte-identical files. Timestamps are ISO-8601 UTC with
milliseconds and a ``Z``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from workbench.book import RoundTrip
from workbench.model import Fill, Order, ms_to_iso

TRADES = ("symbol", "side", "qty", "entry_ts", "entry_price", "exit_ts", "exit_price", "fees",
          "pnl", "return_pct")
ORDERS = ("order_seq", "ts", "symbol", "side", "type", "qty", "limit_price", "status", "reason")
FILLS = ("order_seq", "ts", "symbol", "side", "qty", "price", "fee")
EQUITY = ("ts", "cash", "position_value", "equity")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if any(ch in text for ch in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _write(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(",".join(header) + "\n")
        fh.writelines(",".join(map(_cell, row)) + "\n" for row in rows)


def iso_many(ts_ms: Sequence[int] | np.ndarray) -> list[str]:
    """Vectorised ``ms_to_iso`` for long columns."""
    arr = np.asarray(ts_ms, dtype="int64").astype("datetime64[ms]")
    return [s + "Z" for s in np.datetime_as_string(arr, unit="ms").tolist()]


def write_trades(path: Path, trips: Iterable[RoundTrip]) -> None:
    _write(path, TRADES, ((t.symbol, t.side, t.qty, ms_to_iso(t.entry_ts), t.entry_price,
                           ms_to_iso(t.exit_ts), t.exit_price, t.fees, t.pnl, t.return_pct)
                          for t in trips))


def write_orders(path: Path, orders: Iterable[Order]) -> None:
    _write(path, ORDERS, ((o.order_seq, ms_to_iso(o.ts), o.symbol, o.side.value, o.type.value,
                           o.qty, o.limit_price, o.status.value, o.reason) for o in orders))


def write_fills(path: Path, fills: Iterable[Fill]) -> None:
    _write(path, FILLS, ((f.order_seq, ms_to_iso(f.ts), f.symbol, f.side.value, f.qty, f.price,
                          f.fee) for f in fills))


def write_equity(path: Path, ts: Sequence[int] | np.ndarray, cash: Sequence[float] | np.ndarray,
                 position_value: Sequence[float] | np.ndarray,
                 equity: Sequence[float] | np.ndarray) -> None:
    stamps = iso_many(ts)
    columns = [np.asarray(c, dtype=np.float64).tolist() for c in (cash, position_value, equity)]
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(",".join(EQUITY) + "\n")
        fh.writelines(f"{t},{c!r},{p!r},{e!r}\n"
                      for t, c, p, e in zip(stamps, *columns, strict=True))
