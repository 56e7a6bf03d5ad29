"""The run directory's deterministic files: trades.csv, orders.csv, fills.csv, equity.csv.

No run ids, client order ids or wall-clock times appear in them (orders and fills are named by
the per-run ``order_seq``), and floats are written as Python's shortest round-trip repr, never
rounded, so the same config and data give byte-identical files. Timestamps are ISO-8601 UTC with
milliseconds and a ``Z``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from workbench.book import RoundTrip
from workbench.engine.journal import OrderState
from workbench.model import Fill

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


_DAY_MS = 86_400_000
_CHUNK = 1 << 15


def iso_many(ts_ms: Sequence[int] | np.ndarray) -> np.ndarray:
    """``ms_to_iso`` for long columns: each distinct day and time of day is formatted once."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    if not len(ts):
        return np.empty(0, dtype=object)
    days, day_of = _codes(ts // _DAY_MS)
    times, time_of = _codes(ts % _DAY_MS)
    day_text = np.datetime_as_string((days * _DAY_MS).astype("datetime64[ms]"), unit="D")
    time_text = np.datetime_as_string(times.astype("datetime64[ms]"), unit="ms")
    prefix = np.array([d + "T" for d in day_text.tolist()], dtype=object)
    suffix = np.array([t[t.index("T") + 1:] + "Z" for t in time_text.tolist()], dtype=object)
    return prefix[day_of] + suffix[time_of]


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and each value's index among them (np.unique, without its sort when the
    values are whole minutes or a contiguous range, as bar times are)."""
    lo, hi = int(values.min()), int(values.max())
    step = 60_000 if not (values % 60_000).any() else 1
    if (hi - lo) // step <= 4 * len(values):
        index = (values - lo) // step
        present = np.zeros((hi - lo) // step + 1, dtype=bool)
        present[index] = True
        distinct = np.flatnonzero(present)
        rank = np.cumsum(present) - 1
        return distinct * step + lo, rank[index]
    return np.unique(values, return_inverse=True)


def repr_many(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """``repr`` of each float, exactly, for long columns.

    Each run of equal values is formatted once (cash changes only at fills; a flat book's
    position value is 0.0 bar after bar). orjson's shortest round-trip text (ryu) is the same
    as Python's ``repr`` for 0 and for magnitudes in [1e-4, 1e16), where both write plain
    decimals; outside that range ``repr`` switches to exponent notation its own way, so those
    values (and NaN, inf) go through ``repr`` itself.
    """
    arr = np.asarray(values, dtype=np.float64)
    if not len(arr):
        return np.empty(0, dtype=object)
    bits = arr.view(np.int64)  # bitwise: 0.0 and -0.0 print differently
    starts = np.flatnonzero(np.concatenate(([True], bits[1:] != bits[:-1])))
    distinct = arr[starts]
    texts = np.array(orjson.dumps(distinct, option=orjson.OPT_SERIALIZE_NUMPY)
                     .decode()[1:-1].split(","), dtype=object)
    size = np.abs(distinct)
    plain = (distinct == 0) | ((size >= 1e-4) & (size < 1e16))
    for i in np.flatnonzero(~plain).tolist():
        texts[i] = repr(float(distinct[i]))
    return np.repeat(texts, np.diff(np.append(starts, len(arr))))


def _iso(ts: Iterable[int]) -> list[str]:
    return iso_many(np.fromiter(ts, dtype=np.int64)).tolist()


def _write(path: Path, header: Sequence[str], lines: Iterable[str]) -> None:
    """A header row, then ``lines`` (each ending in a newline)."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(",".join(header) + "\n")
        fh.writelines(lines)


def write_trades(path: Path, trips: Sequence[RoundTrip]) -> None:
    when = zip(_iso(t.entry_ts for t in trips), _iso(t.exit_ts for t in trips), strict=True)
    _write(path, TRADES, (
        f"{_cell(t.symbol)},{t.side},{t.qty!r},{entry},{t.entry_price!r},{exit_},"
        f"{t.exit_price!r},{t.fees!r},{t.pnl!r},{t.return_pct!r}\n"
        for t, (entry, exit_) in zip(trips, when, strict=True)))


def write_orders(path: Path, orders: Sequence[OrderState]) -> None:
    _write(path, ORDERS, (
        f"{o.order_seq},{ts},{_cell(o.symbol)},{o.side},{o.type},{o.qty!r},"
        f"{_cell(o.limit_price)},{o.status},{_cell(o.reason)}\n"
        for o, ts in zip(orders, _iso(o.ts for o in orders), strict=True)))


def write_fills(path: Path, fills: Sequence[Fill]) -> None:
    _write(path, FILLS, (
        f"{f.order_seq},{ts},{_cell(f.symbol)},{f.side},{f.qty!r},{f.price!r},{f.fee!r}\n"
        for f, ts in zip(fills, _iso(f.ts for f in fills), strict=True)))


def write_equity(path: Path, ts: Sequence[int] | np.ndarray, cash: Sequence[float] | np.ndarray,
                 position_value: Sequence[float] | np.ndarray,
                 equity: Sequence[float] | np.ndarray) -> None:
    arrays = [np.asarray(ts, dtype=np.int64)] + [np.asarray(c, dtype=np.float64)
                                                 for c in (cash, position_value, equity)]

    def blocks() -> Iterator[str]:
        # in chunks, so the text of one chunk reuses the memory of the previous one
        for lo in range(0, len(arrays[0]), _CHUNK):
            t, c, p, e = (a[lo:lo + _CHUNK] for a in arrays)
            columns = [iso_many(t), repr_many(c), repr_many(p), repr_many(e)]
            yield "".join([f"{a},{b},{c},{d}\n" for a, b, c, d in
                           zip(*(col.tolist() for col in columns), strict=True)])

    _write(path, EQUITY, blocks())


FILES = ("trades.csv", "orders.csv", "fills.csv", "equity.csv")  # what write_all writes


def write_all(run_dir: Path, trips: Sequence[RoundTrip], orders: Sequence[OrderState],
              fills: Sequence[Fill], equity: Any) -> None:
    """The four deterministic files of a run (``equity``: ts, cash, position_value, equity)."""
    write_trades(run_dir / "trades.csv", trips)
    write_orders(run_dir / "orders.csv", orders)
    write_fills(run_dir / "fills.csv", fills)
    write_equity(run_dir / "equity.csv", equity.ts, equity.cash, equity.position_value,
                 equity.equity)
