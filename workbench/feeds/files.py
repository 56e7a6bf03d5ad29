"""Read bar files (CSV, Parquet, Binance kline JSON) into columns, naming every bad value.

CSV and Parquet carry columns ``ts, open, high, low, close, volume`` (and optionally ``trades``
and ``spread_bps``, a bar's quoted spread in basis points; empty cells are bars without one);
``ts`` is ISO-8601 (UTC unless it says otherwise) or epoch milliseconds. ``binance-json`` is a JSON
array of klines ``[open_time_ms, open, high, low, close, volume, ...]`` (index 8: trades).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from workbench.feeds.qc import BarSeries, Finding

FORMATS = ("csv", "parquet", "binance-json")
COLUMNS = ("ts", "open", "high", "low", "close", "volume")
OPTIONAL = ("trades", "spread_bps")
_EXT = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".json": "binance-json"}
_DIGITS = re.compile(r"^-?\d+$")
_MAX_REPORTED = 1000  # per file and column: the rest are counted in one finding


def infer_format(path: Path) -> str:
    fmt = _EXT.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot tell the format of {path} from its extension; "
            f"pass --format {'|'.join(FORMATS)}"
        )
    return fmt


def read_bars(path: Path, symbol: str, timeframe_ms: int, fmt: str | None = None,
              ) -> tuple[BarSeries | None, list[Finding]]:
    """Parse one file; on any problem return no series and the findings that say why."""
    name = str(path)
    fail = lambda rule, text: (None, [Finding(rule, "error", symbol, text, file=name)])  # noqa: E731
    if not path.is_file():
        return fail("unreadable", "file not found")
    try:
        fmt = fmt or infer_format(path)
    except ValueError as exc:
        return fail("unreadable", str(exc))
    try:
        if fmt == "binance-json":
            raw = _read_klines(path)
        elif fmt == "csv":
            raw = _read_csv(path)
        elif fmt == "parquet":
            raw = _read_parquet(path)
        else:
            return fail("unreadable", f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    except _Unreadable as exc:
        return None, [Finding(exc.rule, "error", symbol, str(exc), exc.row, None, name)]
    except (OSError, pa.ArrowInvalid, json.JSONDecodeError, UnicodeDecodeError) as exc:
        return fail("unreadable", f"cannot read as {fmt}: {exc}")
    n = len(raw["ts"])
    if n == 0:
        return fail("empty", "the file holds no bars")
    findings: list[Finding] = []
    ts = _timestamps(raw["ts"], symbol, name, findings)
    cols = {c: _numbers(raw[c], c, symbol, name, findings) for c in COLUMNS[1:]}
    trades = None
    if raw.get("trades") is not None:
        trades = _numbers(raw["trades"], "trades", symbol, name, findings, allow_null=True)
    spread = None
    if raw.get("spread_bps") is not None:
        spread = _numbers(raw["spread_bps"], "spread_bps", symbol, name, findings,
                          allow_null=True)
    if findings:
        return None, findings
    series = BarSeries(symbol, timeframe_ms, ts, cols["open"], cols["high"], cols["low"],
                       cols["close"], cols["volume"], trades, None, None,
                       np.arange(1, n + 1, dtype=np.int64), spread_bps=spread)
    return series, []


class _Unreadable(Exception):
    def __init__(self, rule: str, text: str, row: int | None = None) -> None:
        super().__init__(text)
        self.rule = rule
        self.row = row


def _columns(names: list[str]) -> dict[str, str]:
    """Map our column names to the file's (case and surrounding spaces ignored)."""
    found = {n.strip().lstrip("\ufeff").strip().lower(): n for n in names}
    missing = [c for c in COLUMNS if c not in found]
    if missing:
        raise _Unreadable(
            "missing_column",
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; found "
            f"{', '.join(names) or 'none'}; expected {', '.join(COLUMNS)} (and optionally trades)",
        )
    wanted = {c: found[c] for c in COLUMNS}
    for optional in OPTIONAL:
        if optional in found:
            wanted[optional] = found[optional]
    return wanted


def _read_csv(path: Path) -> dict[str, Any]:
    import pyarrow.csv as pacsv

    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        header = fh.readline().strip()
    if not header:
        raise _Unreadable("empty", "the file is empty (no header row)")
    # the names exactly as pyarrow will see them (it keeps spaces, drops quotes and a BOM)
    names = pacsv.open_csv(
        path, read_options=pacsv.ReadOptions(block_size=1 << 16),
        parse_options=pacsv.ParseOptions(invalid_row_handler=lambda row: "skip"),
    ).schema.names
    wanted = _columns(names)
    bad_lines: list[int] = []

    def on_invalid(row: Any) -> str:
        bad_lines.append(row.number)
        return "skip"

    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(use_threads=False),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in names},
            include_columns=list(wanted.values()),
            strings_can_be_null=False,
        ),
    )
    if bad_lines:
        raise _Unreadable(
            "unparsable",
            f"row {bad_lines[0] - 1} (line {bad_lines[0]}) does not have {len(names)} fields "
            f"like the header" + (f" ({len(bad_lines) - 1} more such rows)"
                                  if len(bad_lines) > 1 else ""),
            row=bad_lines[0] - 1,
        )
    return {c: table.column(src).combine_chunks() for c, src in wanted.items()}


def _read_parquet(path: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    wanted = _columns(table.column_names)
    return {c: table.column(src).combine_chunks() for c, src in wanted.items()}


def _read_klines(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise _Unreadable("unreadable",
                          "expected a JSON array of klines [open_time_ms, open, high, low, "
                          "close, volume, ...]")
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) < 6:
            raise _Unreadable(
                "unparsable",
                f"row {i + 1}: expected a kline [open_time_ms, open, high, low, close, volume, "
                f"...], got {json.dumps(row)[:80]}",
            )
    out: dict[str, Any] = {c: [row[k] for row in data] for k, c in enumerate(COLUMNS)}
    if data and all(len(row) > 8 for row in data):
        out["trades"] = [row[8] for row in data]
    return out


def _bad(findings: list[Finding], symbol: str, file: str, column: str, rows: list[int],
         values: list[Any], why: str) -> None:
    for row, value in zip(rows[:_MAX_REPORTED], values[:_MAX_REPORTED], strict=False):
        findings.append(Finding("unparsable", "error", symbol,
                                f"{column} {value!r} {why}", row, None, file))
    if len(rows) > _MAX_REPORTED:
        findings.append(Finding("unparsable", "error", symbol,
                                f"... and {len(rows) - _MAX_REPORTED} more bad {column} values",
                                None, None, file))


def _numbers(values: Any, column: str, symbol: str, file: str, findings: list[Finding],
             allow_null: bool = False) -> np.ndarray:
    """Column as float64; each value that is not a number becomes a finding."""
    if isinstance(values, pa.Array) and (pa.types.is_floating(values.type)
                                         or pa.types.is_integer(values.type)):
        if values.null_count and not allow_null:
            rows = [i + 1 for i, v in enumerate(values.is_null().to_pylist()) if v]
            _bad(findings, symbol, file, column, rows, [None] * len(rows), "is missing")
        return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    if isinstance(values, pa.Array):
        try:
            return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values = values.to_pylist()
    out = np.empty(len(values), dtype=np.float64)
    bad_rows: list[int] = []
    bad_values: list[Any] = []
    for i, v in enumerate(values):
        if (v is None or v == "") and allow_null:
            out[i] = math.nan
            continue
        try:
            if isinstance(v, bool):
                raise TypeError
            out[i] = float(v)
        except (TypeError, ValueError):
            bad_rows.append(i + 1)
            bad_values.append(v)
    if bad_rows:
        _bad(findings, symbol, file, column, bad_rows, bad_values, "is not a number")
    return out


def _timestamps(values: Any, symbol: str, file: str, findings: list[Finding]) -> np.ndarray:
    """The ts column as int64 ms UTC, from epoch ms, ISO-8601 text or a timestamp type."""
    if isinstance(values, pa.Array):
        if pa.types.is_timestamp(values.type):
            return _typed_timestamps(values, symbol, file, findings)
        if pa.types.is_integer(values.type) and not values.null_count:
            return _check_epoch(values.to_numpy().astype(np.int64), symbol, file, findings)
        values = values.to_pylist()
    out = np.empty(len(values), dtype=np.int64)
    bad_rows: list[int] = []
    bad_values: list[Any] = []
    for i, v in enumerate(values):
        try:
            out[i] = _one_ts(v)
        except (TypeError, ValueError, OverflowError):
            bad_rows.append(i + 1)
            bad_values.append(v)
    if bad_rows:
        _bad(findings, symbol, file, "ts", bad_rows, bad_values,
             "is neither epoch milliseconds nor an ISO-8601 time")
        return out
    return _check_epoch(out, symbol, file, findings)


_PER_MS = {"s": None, "ms": 1, "us": 1_000, "ns": 1_000_000}


def _typed_timestamps(values: pa.Array, symbol: str, file: str, findings: list[Finding]
                      ) -> np.ndarray:
    """A timestamp-typed column as ms; nulls and sub-millisecond values become findings."""
    if values.null_count:
        rows = [i + 1 for i, v in enumerate(values.is_null().to_pylist()) if v]
        _bad(findings, symbol, file, "ts", rows, [None] * len(rows), "is missing")
    raw = pc.cast(values, pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    per_ms = _PER_MS[values.type.unit]
    if per_ms is None:  # seconds
        return raw * 1000
    if per_ms > 1:
        off = np.flatnonzero(raw % per_ms)
        if len(off):
            _bad(findings, symbol, file, "ts", (off + 1).tolist(),
                 [values[int(i)].as_py() for i in off],
                 "has sub-millisecond precision; bar times are whole milliseconds")
        return raw // per_ms
    return raw


def _one_ts(v: Any) -> int:
    if isinstance(v, bool) or v is None:
        raise TypeError
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if not v.is_integer():
            raise ValueError
        return int(v)
    text = str(v).strip()
    if _DIGITS.match(text):
        return int(text)
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * 1000)


def _check_epoch(ts: np.ndarray, symbol: str, file: str, findings: list[Finding]) -> np.ndarray:
    if len(ts) and 0 < int(ts.max()) < 100_000_000_000:
        findings.append(Finding(
            "unparsable", "error", symbol,
            "ts values look like epoch seconds (all before 1973-03-03 as milliseconds); "
            "ts must be epoch milliseconds or ISO-8601: multiply by 1000",
            1, int(ts[0]), file))
    return ts
