"""Spec of the bar-file readers: CSV, Parquet and Binance kline JSON into checked-ready columns."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workbench.feeds.files import FORMATS, infer_format, read_bars

M = 60_000
JAN_2024_MS = 1_704_067_200_000
HEADER = "ts,open,high,low,close,volume"
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
REAL_JSON = SAMPLE / "UNITTEST_BTC-1m.json"

# three sane 1m bars from 2024-01-01T00:00Z
ISO_ROWS = [
    "2024-01-01T00:00:00Z,100.0,101.0,99.0,100.5,1.5",
    "2024-01-01T00:01:00Z,100.5,102.0,100.0,101.0,0",
    "2024-01-01T00:02:00Z,101.0,101.5,98.5,99.0,2.25",
]
EXPECTED = {
    "ts": [JAN_2024_MS, JAN_2024_MS + M, JAN_2024_MS + 2 * M],
    "open": [100.0, 100.5, 101.0],
    "high": [101.0, 102.0, 101.5],
    "low": [99.0, 100.0, 98.5],
    "close": [100.5, 101.0, 99.0],
    "volume": [1.5, 0.0, 2.25],
}


def write_csv(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def columns(s) -> dict[str, list]:
    return {c: getattr(s, c).tolist() for c in EXPECTED}


def read_ok(path: Path, fmt: str | None = None, timeframe_ms: int = M):
    s, findings = read_bars(path, "TEST", timeframe_ms, fmt)
    assert findings == []
    assert s is not None
    return s


def read_refused(path: Path, fmt: str | None = None):
    s, findings = read_bars(path, "TEST", M, fmt)
    assert s is None
    assert findings, "a refused file has at least one finding"
    assert all(f.severity == "error" for f in findings)
    assert {f.file for f in findings} == {str(path)}
    return findings


# --- infer_format ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fmt"), [
    ("a.csv", "csv"), ("a.CSV", "csv"), ("a.parquet", "parquet"), ("a.pq", "parquet"),
    ("a.json", "binance-json"), ("dir.v2/a.Json", "binance-json"),
])
def test_infer_format_from_extension(name, fmt):
    assert infer_format(Path(name)) == fmt


@pytest.mark.parametrize("name", ["a.txt", "a", "a.csv.gz", "a.xlsx"])
def test_infer_format_unknown_extension_raises_with_format_hint(name):
    with pytest.raises(ValueError, match=re.escape("pass --format csv|parquet|binance-json")):
        infer_format(Path(name))


def test_formats_are_the_three_documented_ones():
    assert FORMATS == ("csv", "parquet", "binance-json")


# --- CSV -------------------------------------------------------------------------------------


def test_read_bars_csv_iso_timestamps(tmp_path):
    s = read_ok(write_csv(tmp_path / "b.csv", ISO_ROWS))
    assert columns(s) == EXPECTED
    assert s.ts.dtype == np.int64
    assert s.rows is not None and s.rows.tolist() == [1, 2, 3]
    assert s.symbol == "TEST"
    assert s.timeframe_ms == M
    assert s.trades is None
    assert s.filled is None


def test_read_bars_csv_epoch_ms_equals_iso(tmp_path):
    rows = [f"{ts},{r.split(',', 1)[1]}" for ts, r in zip(EXPECTED["ts"], ISO_ROWS, strict=True)]
    s = read_ok(write_csv(tmp_path / "b.csv", rows))
    assert columns(s) == EXPECTED


@pytest.mark.parametrize("text", [
    "2024-01-01T00:00:00Z", "2024-01-01T00:00:00.000Z", "2024-01-01T00:00:00+00:00",
    "2024-01-01T02:00:00+02:00", "2023-12-31T19:00:00-05:00", "2024-01-01T00:00:00",
    "2024-01-01 00:00:00", "1704067200000",
])
def test_read_bars_csv_ts_variants_mean_the_same_utc_instant(tmp_path, text):
    s = read_ok(write_csv(tmp_path / "b.csv", [f"{text},1,1,1,1,1"]))
    assert s.ts.tolist() == [JAN_2024_MS]


def test_read_bars_csv_header_is_case_insensitive_and_may_be_quoted(tmp_path):
    header = '"TS","Open","High","Low","Close","Volume"'
    s = read_ok(write_csv(tmp_path / "b.csv", ISO_ROWS, header=header))
    assert columns(s) == EXPECTED


def test_read_bars_csv_column_order_and_extra_columns_do_not_matter(tmp_path):
    header = "volume,close,note,low,high,open,ts"
    rows = []
    for r in ISO_ROWS:
        ts, o, h, lo, c, v = r.split(",")
        rows.append(",".join([v, c, "x", lo, h, o, ts]))
    s = read_ok(write_csv(tmp_path / "b.csv", rows, header=header))
    assert columns(s) == EXPECTED


def test_read_bars_csv_optional_trades_column(tmp_path):
    rows = [f"{r},{n}" for r, n in zip(ISO_ROWS, [5, 0, 12], strict=True)]
    s = read_ok(write_csv(tmp_path / "b.csv", rows, header=HEADER + ",trades"))
    assert s.trades is not None
    assert s.trades.tolist() == [5, 0, 12]


def test_read_bars_csv_explicit_format_overrides_extension(tmp_path):
    path = write_csv(tmp_path / "bars.txt", ISO_ROWS)
    assert columns(read_ok(path, fmt="csv")) == EXPECTED


def test_read_bars_synthetic_sample_csv_reads_44640_bars():
    s = read_ok(SAMPLE / "btcusdt_1m_2024-01_synthetic.csv")
    assert len(s) == 44_640
    assert s.ts[0] == JAN_2024_MS
    assert s.ts[-1] == JAN_2024_MS + 44_639 * M


@pytest.mark.parametrize(("row", "column", "value"), [
    ("2024-01-01T00:01:00Z,abc,102.0,100.0,101.0,0", "open", "abc"),
    ("2024-01-01T00:01:00Z,100.5,,100.0,101.0,0", "high", ""),
    ("2024-01-01T00:01:00Z,100.5,102.0,1O0.0,101.0,0", "low", "1O0.0"),
])
def test_read_bars_csv_unparsable_number_is_refused_with_row(tmp_path, row, column, value):
    path = write_csv(tmp_path / "b.csv", [ISO_ROWS[0], row, ISO_ROWS[2]])
    findings = read_refused(path)
    assert [(f.rule, f.row) for f in findings] == [("unparsable", 2)]
    assert findings[0].detail == f"{column} {value!r} is not a number"


def test_read_bars_csv_reports_every_unparsable_value(tmp_path):
    rows = list(ISO_ROWS)
    rows[0] = rows[0].replace("101.0", "x")
    rows[2] = rows[2].replace("2.25", "lots")
    findings = read_refused(write_csv(tmp_path / "b.csv", rows))
    assert [(f.row, f.detail) for f in findings] == [
        (1, "high 'x' is not a number"), (3, "volume 'lots' is not a number")]


def test_read_bars_csv_caps_reported_bad_values_per_column(tmp_path):
    rows = [f"2024-01-01T00:00:00Z,bad{i},1,1,1,1" for i in range(1005)]
    findings = read_refused(write_csv(tmp_path / "b.csv", rows))
    assert len(findings) == 1001
    assert findings[0].row == 1
    assert findings[999].row == 1000
    assert findings[-1].row is None
    assert findings[-1].detail == "... and 5 more bad open values"


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01T00:00:00Z", "", "1.5e12x",
                                  "2024-01-01T00:00:00Q", "-"])
def test_read_bars_csv_unparsable_ts_is_refused_with_row(tmp_path, text):
    path = write_csv(tmp_path / "b.csv", [ISO_ROWS[0], f"{text},1,1,1,1,1"])
    findings = read_refused(path)
    assert [(f.rule, f.row) for f in findings] == [("unparsable", 2)]
    assert "is neither epoch milliseconds nor an ISO-8601 time" in findings[0].detail


def test_read_bars_csv_nan_text_is_read_as_nan_for_qc_to_refuse(tmp_path):
    s = read_ok(write_csv(tmp_path / "b.csv", ["2024-01-01T00:00:00Z,1,NaN,1,1,1"]))
    assert np.isnan(s.high[0])


@pytest.mark.parametrize("missing", ["ts", "volume", "open"])
def test_read_bars_csv_missing_column_is_refused_naming_it(tmp_path, missing):
    header = ",".join(c for c in HEADER.split(",") if c != missing)
    path = write_csv(tmp_path / "b.csv", ["1,2,3,4,5"], header=header)
    findings = read_refused(path)
    assert [f.rule for f in findings] == ["missing_column"]
    found = header.replace(",", ", ")
    assert findings[0].detail.startswith(f"missing column {missing}; found {found};")
    assert "expected ts, open, high, low, close, volume" in findings[0].detail


def test_read_bars_csv_missing_columns_are_all_named(tmp_path):
    findings = read_refused(write_csv(tmp_path / "b.csv", ["1,2"], header="time,price"))
    assert findings[0].detail.startswith("missing columns ts, open, high, low, close, volume")


@pytest.mark.parametrize(("content", "rule"), [
    ("", "empty"), ("\n", "empty"), (HEADER + "\n", "empty"),
])
def test_read_bars_csv_without_bars_is_refused_as_empty(tmp_path, content, rule):
    path = tmp_path / "b.csv"
    path.write_text(content, encoding="utf-8")
    findings = read_refused(path)
    assert [f.rule for f in findings] == [rule]
    assert findings[0].row is None


def test_read_bars_csv_epoch_seconds_are_refused_with_a_hint(tmp_path):
    rows = ["1704067200,1,1,1,1,1", "1704067260,1,1,1,1,1"]
    findings = read_refused(write_csv(tmp_path / "b.csv", rows))
    assert [(f.rule, f.row) for f in findings] == [("unparsable", 1)]
    assert "look like epoch seconds" in findings[0].detail
    assert "multiply by 1000" in findings[0].detail


def test_read_bars_csv_not_utf8_is_refused_as_unreadable(tmp_path):
    path = tmp_path / "b.csv"
    path.write_bytes(b"ts,open,high,low,close,volume\n\xff\xfe,1,1,1,1,1\n")
    findings = read_refused(path)
    assert [f.rule for f in findings] == ["unreadable"]


def test_read_bars_csv_header_with_spaces_after_commas_is_read(tmp_path):
    header = "ts, open, high, low, close, volume"
    s = read_ok(write_csv(tmp_path / "b.csv", ISO_ROWS, header=header))
    assert columns(s) == EXPECTED


@pytest.mark.parametrize("row", ["2024-01-01T00:03:00Z,1,1,1,1",
                                 "2024-01-01T00:03:00Z,1,1,1,1,1,1"], ids=["short", "long"])
def test_read_bars_csv_row_with_wrong_field_count_is_refused_naming_its_row(tmp_path, row):
    findings = read_refused(write_csv(tmp_path / "b.csv", [*ISO_ROWS, row]))
    assert [(f.rule, f.row) for f in findings] == [("unparsable", 4)]
    assert "row 4 (line 5) does not have 6 fields" in findings[0].describe()


# --- Parquet ---------------------------------------------------------------------------------


def parquet(path: Path, ts: pa.Array, **overrides) -> Path:
    cols = {"ts": ts, **{c: pa.array(EXPECTED[c], pa.float64()) for c in list(EXPECTED)[1:]}}
    cols.update(overrides)
    pq.write_table(pa.table(cols), path)
    return path


def test_read_bars_parquet_epoch_ms_int64(tmp_path):
    s = read_ok(parquet(tmp_path / "b.parquet", pa.array(EXPECTED["ts"], pa.int64())))
    assert columns(s) == EXPECTED
    assert s.rows is not None and s.rows.tolist() == [1, 2, 3]


@pytest.mark.parametrize(("unit", "tz", "scale"), [
    ("ms", "UTC", 1), ("s", "UTC", 1 / 1000), ("us", "UTC", 1000), ("ns", "UTC", 1_000_000),
    ("ms", None, 1), ("ms", "Europe/Berlin", 1),
])
def test_read_bars_parquet_timestamp_typed_ts(tmp_path, unit, tz, scale):
    values = [int(t * scale) for t in EXPECTED["ts"]]
    s = read_ok(parquet(tmp_path / "b.parquet", pa.array(values, pa.timestamp(unit, tz))))
    assert columns(s) == EXPECTED
    assert s.ts.dtype == np.int64


def test_read_bars_parquet_iso_string_ts(tmp_path):
    iso = [r.split(",")[0] for r in ISO_ROWS]
    s = read_ok(parquet(tmp_path / "b.pq", pa.array(iso, pa.string())))
    assert columns(s) == EXPECTED


def test_read_bars_parquet_integer_and_string_price_columns(tmp_path):
    path = parquet(tmp_path / "b.parquet", pa.array(EXPECTED["ts"], pa.int64()),
                   volume=pa.array([1, 0, 2], pa.int32()),
                   open=pa.array(["100.0", "100.5", "101.0"], pa.string()))
    s = read_ok(path)
    assert s.volume.tolist() == [1.0, 0.0, 2.0]
    assert s.open.tolist() == EXPECTED["open"]


def test_read_bars_parquet_null_price_is_refused_as_missing(tmp_path):
    path = parquet(tmp_path / "b.parquet", pa.array(EXPECTED["ts"], pa.int64()),
                   close=pa.array([100.5, None, 99.0], pa.float64()))
    findings = read_refused(path)
    assert [(f.rule, f.row, f.detail) for f in findings] == [
        ("unparsable", 2, "close None is missing")]


def test_read_bars_parquet_null_integer_ts_is_refused_with_row(tmp_path):
    findings = read_refused(parquet(tmp_path / "b.parquet",
                                    pa.array([JAN_2024_MS, None, JAN_2024_MS + 2 * M], pa.int64())))
    assert [(f.rule, f.row) for f in findings] == [("unparsable", 2)]


def test_read_bars_parquet_missing_column_is_refused(tmp_path):
    path = tmp_path / "b.parquet"
    pq.write_table(pa.table({"ts": EXPECTED["ts"], "open": EXPECTED["open"]}), path)
    findings = read_refused(path)
    assert [f.rule for f in findings] == ["missing_column"]
    assert "high, low, close, volume" in findings[0].detail


def test_read_bars_parquet_without_rows_is_refused_as_empty(tmp_path):
    path = tmp_path / "b.parquet"
    pq.write_table(pa.table({c: pa.array([], pa.float64()) for c in EXPECTED}), path)
    assert [f.rule for f in read_refused(path)] == ["empty"]


def test_read_bars_parquet_epoch_seconds_are_refused(tmp_path):
    ts = pa.array([t // 1000 for t in EXPECTED["ts"]], pa.int64())
    findings = read_refused(parquet(tmp_path / "b.parquet", ts))
    assert "epoch seconds" in findings[0].detail


def test_read_bars_garbage_parquet_is_refused_as_unreadable(tmp_path):
    path = tmp_path / "b.parquet"
    path.write_bytes(b"not a parquet file at all")
    findings = read_refused(path)
    assert [f.rule for f in findings] == ["unreadable"]
    assert "cannot read as parquet" in findings[0].detail


def test_read_bars_parquet_null_timestamp_ts_is_refused_with_row(tmp_path):
    ts = pa.array([JAN_2024_MS, None, JAN_2024_MS + 2 * M], pa.timestamp("ms", "UTC"))
    findings = read_refused(parquet(tmp_path / "b.parquet", ts))
    assert [(f.rule, f.row) for f in findings] == [("unparsable", 2)]


def test_read_bars_parquet_sub_millisecond_timestamp_is_not_a_crash(tmp_path):
    us = [t * 1000 for t in EXPECTED["ts"]]
    us[1] += 5
    path = parquet(tmp_path / "b.parquet", pa.array(us, pa.timestamp("us", "UTC")))
    s, findings = read_bars(path, "TEST", M)
    # either refused here, or read so that QC refuses the row as misaligned
    assert findings or (s is not None and s.ts[1] % M != 0)


# --- Binance kline JSON ----------------------------------------------------------------------


def klines(path: Path, rows: list) -> Path:
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def test_read_bars_binance_json_numbers(tmp_path):
    rows = [[t, o, h, lo, c, v] for t, o, h, lo, c, v in zip(*EXPECTED.values(), strict=True)]
    s = read_ok(klines(tmp_path / "k.json", rows))
    assert columns(s) == EXPECTED
    assert s.trades is None


def test_read_bars_binance_json_api_shape_with_strings_and_trades(tmp_path):
    rows = [[t, str(o), str(h), str(lo), str(c), str(v), t + M - 1, "0", n, "0", "0", "0"]
            for (t, o, h, lo, c, v), n in zip(zip(*EXPECTED.values(), strict=True), [7, 0, 3],
                                              strict=True)]
    s = read_ok(klines(tmp_path / "k.json", rows))
    assert columns(s) == EXPECTED
    assert s.trades is not None
    assert s.trades.tolist() == [7, 0, 3]


def test_read_bars_binance_json_real_sample():
    s = read_ok(REAL_JSON)
    raw = json.loads(REAL_JSON.read_text())
    assert len(s) == len(raw) == 13_681
    assert s.ts.tolist() == [r[0] for r in raw]
    assert s.close.tolist() == [float(r[4]) for r in raw]
    assert s.volume.tolist() == [float(r[5]) for r in raw]


@pytest.mark.parametrize("content", [{"a": 1}, "text", 5])
def test_read_bars_binance_json_not_an_array_is_refused(tmp_path, content):
    findings = read_refused(klines(tmp_path / "k.json", content))
    assert [f.rule for f in findings] == ["unreadable"]
    assert "JSON array of klines" in findings[0].detail


@pytest.mark.parametrize("bad", [[JAN_2024_MS + M, 1, 1, 1, 1], {"ts": 1}, None])
def test_read_bars_binance_json_short_kline_is_refused_naming_row(tmp_path, bad):
    findings = read_refused(klines(tmp_path / "k.json", [[JAN_2024_MS, 1, 1, 1, 1, 1], bad]))
    assert [f.rule for f in findings] == ["unparsable"]
    assert findings[0].detail.startswith("row 2: expected a kline")


@pytest.mark.parametrize(("bad", "detail"), [
    ([JAN_2024_MS + M, "x", 1, 1, 1, 1], "open 'x' is not a number"),
    ([JAN_2024_MS + M, 1, None, 1, 1, 1], "high None is not a number"),
    ([JAN_2024_MS + M, 1, 1, True, 1, 1], "low True is not a number"),
    ([JAN_2024_MS + M + 0.5, 1, 1, 1, 1, 1],
     "ts 1704067260000.5 is neither epoch milliseconds nor an ISO-8601 time"),
    (["soon", 1, 1, 1, 1, 1], "ts 'soon' is neither epoch milliseconds nor an ISO-8601 time"),
])
def test_read_bars_binance_json_bad_value_is_refused_with_row(tmp_path, bad, detail):
    findings = read_refused(klines(tmp_path / "k.json", [[JAN_2024_MS, 1, 1, 1, 1, 1], bad]))
    assert [(f.rule, f.row, f.detail) for f in findings] == [("unparsable", 2, detail)]


def test_read_bars_binance_json_empty_array_is_refused_as_empty(tmp_path):
    assert [f.rule for f in read_refused(klines(tmp_path / "k.json", []))] == ["empty"]


def test_read_bars_invalid_json_is_refused_as_unreadable(tmp_path):
    path = tmp_path / "k.json"
    path.write_text("[[1, 2, 3", encoding="utf-8")
    findings = read_refused(path)
    assert [f.rule for f in findings] == ["unreadable"]
    assert "cannot read as binance-json" in findings[0].detail


# --- any format ------------------------------------------------------------------------------


def test_read_bars_missing_file_is_refused(tmp_path):
    findings = read_refused(tmp_path / "nope.csv")
    assert [(f.rule, f.detail) for f in findings] == [("unreadable", "file not found")]


def test_read_bars_directory_is_refused(tmp_path):
    (tmp_path / "d.csv").mkdir()
    assert [f.rule for f in read_refused(tmp_path / "d.csv")] == ["unreadable"]


def test_read_bars_unknown_extension_is_refused_with_format_hint(tmp_path):
    findings = read_refused(write_csv(tmp_path / "bars.txt", ISO_ROWS))
    assert [f.rule for f in findings] == ["unreadable"]
    assert "pass --format csv|parquet|binance-json" in findings[0].detail


def test_read_bars_unknown_explicit_format_is_refused(tmp_path):
    findings = read_refused(write_csv(tmp_path / "b.csv", ISO_ROWS), fmt="xlsx")
    assert "unknown format 'xlsx'" in findings[0].detail


def test_read_bars_csv_read_as_json_is_refused(tmp_path):
    findings = read_refused(write_csv(tmp_path / "b.csv", ISO_ROWS), fmt="binance-json")
    assert [f.rule for f in findings] == ["unreadable"]
