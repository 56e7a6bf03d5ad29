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
import orjson
import pyarrow as pa
import pyarrow.compute as pc

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
    days, day_of, times, time_of = _iso_parts(ts_ms)
    return days[day_of] + times[time_of]


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


def repr_many(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """``repr`` of each float, exactly, for long columns."""
    return np.array(repr_column(values).to_pylist(), dtype=object)


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
    """One line per bar time. Each distinct text is made once in Python; the lines are put
    together by Arrow (at C speed, without the GIL: this runs beside the headline's SQL)."""
    arrays = [np.asarray(ts, dtype=np.int64)] + [np.asarray(c, dtype=np.float64)
                                                 for c in (cash, position_value, equity)]
    with path.open("wb") as fh:
        fh.write((",".join(EQUITY) + "\n").encode())
        # in chunks, so the text of one chunk reuses the memory of the previous one
        for lo in range(0, len(arrays[0]), _CHUNK):
            t, c, p, e = (a[lo:lo + _CHUNK] for a in arrays)
            days, day_of, times, time_of = _iso_parts(t)
            stamp = pc.binary_join_element_wise(_taken(days, day_of), _taken(times, time_of),
                                                "")
            lines = pc.binary_join_element_wise(stamp, *(repr_column(x) for x in (c, p, e)),
                                                ",")
            lines = pc.binary_join_element_wise(lines, "", "\n")
            fh.write(_text_bytes(lines))


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
