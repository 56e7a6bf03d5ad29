"""The run directory's deterministic files: trades.csv, orders.csv, fills.csv, equity.csv.

No run ids, client order ids or wall-clock times appear in them (orders and fills are named by
the per-run ``order_seq``), and floats are written as Python's shortest round-trip repr, never
rounded, so the same config and data give byte-identical files. Timestamps are ISO-8601 UTC with
milliseconds and a ``Z``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from workbench.book import RoundTrip
from workbench.engine.journal import OrderState, as_columns
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


def _iso_parts(ts_ms: Sequence[int] | np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The texts of the distinct days ("2024-01-01T") and times of day ("00:01:00.000Z") of
    ``ts_ms``, and each timestamp's index into each."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    if not len(ts):
        empty = np.empty(0, dtype=object)
        return empty, np.empty(0, dtype=np.int64), empty, np.empty(0, dtype=np.int64)
    days, day_of = _codes(ts // _DAY_MS)
    times, time_of = _codes(ts % _DAY_MS)
    day_text = np.datetime_as_string((days * _DAY_MS).astype("datetime64[ms]"), unit="D")
    time_text = np.datetime_as_string(times.astype("datetime64[ms]"), unit="ms")
    prefix = np.array([d + "T" for d in day_text.tolist()], dtype=object)
    suffix = np.array([t[t.index("T") + 1:] + "Z" for t in time_text.tolist()], dtype=object)
    return prefix, day_of, suffix, time_of


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


def repr_column(values: Sequence[float] | np.ndarray) -> pa.Array:
    """``repr`` of each float, exactly, as an Arrow string column.

    Each run of equal values is formatted once (cash changes only at fills; a flat book's
    position value is 0.0 bar after bar), by orjson, and split apart by Arrow, so no Python
    string is made per value. orjson's shortest round-trip text (ryu) is the same as Python's
    ``repr`` for 0 and for magnitudes in [1e-4, 1e16), where both write plain decimals; outside
    that range ``repr`` switches to exponent notation its own way, so those values (and NaN,
    inf) go through ``repr`` itself.
    """
    arr = np.asarray(values, dtype=np.float64)
    if not len(arr):
        return pa.array([], pa.string())
    bits = arr.view(np.int64)  # bitwise: 0.0 and -0.0 print differently
    starts = np.flatnonzero(np.concatenate(([True], bits[1:] != bits[:-1])))
    distinct = arr[starts]
    size = np.abs(distinct)
    odd = np.flatnonzero(~((distinct == 0) | ((size >= 1e-4) & (size < 1e16))))
    listed = distinct.copy()
    listed[odd] = 0.0  # orjson refuses NaN and inf; these are replaced below
    text = orjson.dumps(listed, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]
    texts = pc.split_pattern(pa.array([text], pa.binary()), b",").flatten().cast(pa.string())
    if len(odd):
        mask = np.zeros(len(distinct), dtype=bool)
        mask[odd] = True
        texts = pc.replace_with_mask(texts, pa.array(mask), pa.array(
            [repr(v) for v in distinct[odd].tolist()], pa.string()))
    counts = np.diff(np.append(starts, len(arr)))
    return texts.take(pa.array(np.repeat(np.arange(len(starts)), counts), pa.int64()))


def write_trades(path: Path, trips: Sequence[RoundTrip]) -> None:
    c = as_columns(trips, RoundTrip._fields)
    _write_columns(path, TRADES, len(trips), lambda lo, hi: [
        _text(c["symbol"][lo:hi]), _text(c["side"][lo:hi]), _floats(c["qty"][lo:hi]),
        iso_column(c["entry_ts"][lo:hi]), _floats(c["entry_price"][lo:hi]),
        iso_column(c["exit_ts"][lo:hi]), _floats(c["exit_price"][lo:hi]),
        _floats(c["fees"][lo:hi]), _floats(c["pnl"][lo:hi]), _floats(c["return_pct"][lo:hi])])


def write_orders(path: Path, orders: Sequence[OrderState]) -> None:
    c = as_columns(orders, OrderState._fields)
    _write_columns(path, ORDERS, len(orders), lambda lo, hi: [
        _ints(c["order_seq"][lo:hi]), iso_column(c["ts"][lo:hi]), _text(c["symbol"][lo:hi]),
        _text(c["side"][lo:hi]), _text(c["type"][lo:hi]), _floats(c["qty"][lo:hi]),
        _floats(c["limit_price"][lo:hi]), _text(c["status"][lo:hi]),
        _text(c["reason"][lo:hi])])


def write_fills(path: Path, fills: Sequence[Fill]) -> None:
    c = as_columns(fills, Fill._fields)
    _write_columns(path, FILLS, len(fills), lambda lo, hi: [
        _ints(c["order_seq"][lo:hi]), iso_column(c["ts"][lo:hi]), _text(c["symbol"][lo:hi]),
        _text(c["side"][lo:hi]), _floats(c["qty"][lo:hi]), _floats(c["price"][lo:hi]),
        _floats(c["fee"][lo:hi])])


def _write_columns(path: Path, header: Sequence[str], rows: int,
                   chunk: Callable[[int, int], list[pa.Array]]) -> None:
    """A header row, then the rows ``chunk(lo, hi)`` gives as text columns, joined by Arrow
    (at C speed, without the GIL) a chunk at a time."""
    with path.open("wb") as fh:
        fh.write((",".join(header) + "\n").encode())
        for lo in range(0, rows, _CHUNK):
            lines = pc.binary_join_element_wise(*chunk(lo, min(lo + _CHUNK, rows)), ",")
            fh.write(_text_bytes(pc.binary_join_element_wise(lines, "", "\n")))


def _text(values: Sequence[Any]) -> pa.Array:
    """``_cell`` of each value (None as empty, quoted where CSV needs it)."""
    texts = [None if v is None else str(v) for v in values]
    if any(t is not None and any(ch in t for ch in ',"\n') for t in texts):
        return pa.array([_cell(v) for v in values], pa.string())
    return pc.fill_null(pa.array(texts, pa.string()), "")


def _ints(values: Sequence[int]) -> pa.Array:
    return pa.array(values, pa.int64()).cast(pa.string())


def _floats(values: Sequence[float | None]) -> pa.Array:
    """``repr`` of each float; None as empty."""
    if any(v is None for v in values):
        filled = [0.0 if v is None else v for v in values]
        mask = pa.array([v is None for v in values])
        return pc.if_else(mask, "", repr_column(filled))
    return repr_column(values)  # type: ignore[arg-type]


def iso_column(ts_ms: Sequence[int] | np.ndarray) -> pa.Array:
    """``ms_to_iso`` of each time, as an Arrow string column: each distinct day and time of
    day is formatted once."""
    days, day_of, times, time_of = _iso_parts(ts_ms)
    return pc.binary_join_element_wise(_taken(days, day_of), _taken(times, time_of), "")


def write_equity(path: Path, ts: Sequence[int] | np.ndarray, cash: Sequence[float] | np.ndarray,
                 position_value: Sequence[float] | np.ndarray,
                 equity: Sequence[float] | np.ndarray) -> None:
    """One line per bar time. Each distinct text is made once in Python; the lines are put
    together by Arrow (at C speed, without the GIL: this runs beside the headline's SQL)."""
    t, c, p, e = [np.asarray(ts, dtype=np.int64)] + [np.asarray(x, dtype=np.float64)
                                                     for x in (cash, position_value, equity)]
    _write_columns(path, EQUITY, len(t), lambda lo, hi: [
        iso_column(t[lo:hi]), repr_column(c[lo:hi]), repr_column(p[lo:hi]),
        repr_column(e[lo:hi])])


def _taken(texts: np.ndarray, index: np.ndarray) -> pa.Array:
    return pa.array(texts, pa.string()).take(pa.array(index, pa.int64()))


def _text_bytes(column: pa.Array) -> memoryview:
    """The concatenated values of a string column without nulls, as its data buffer holds
    them."""
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)
    lo, hi = offsets[column.offset], offsets[column.offset + len(column)]
    return memoryview(column.buffers()[2])[lo:hi]


FILES = ("trades.csv", "orders.csv", "fills.csv", "equity.csv")  # what write_all writes


def write_all(run_dir: Path, trips: Sequence[RoundTrip], orders: Sequence[OrderState],
              fills: Sequence[Fill], equity: Any) -> None:
    """The four deterministic files of a run (``equity``: ts, cash, position_value, equity)."""
    write_trades(run_dir / "trades.csv", trips)
    write_orders(run_dir / "orders.csv", orders)
    write_fills(run_dir / "fills.csv", fills)
    write_equity(run_dir / "equity.csv", equity.ts, equity.cash, equity.position_value,
                 equity.equity)
