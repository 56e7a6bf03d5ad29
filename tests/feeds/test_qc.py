"""Spec of bar-series quality control: row checks, gap detection and the three gap policies."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from workbench.feeds.qc import (
    GAP_POLICIES,
    BarSeries,
    Finding,
    QcReport,
    apply_gap_policy,
    check_rows,
    find_gaps,
    findings_table,
    summarize,
)

M = 60_000  # one minute in ms
JAN_2024_MS = 1_704_067_200_000


def series(ts_minutes, *, open_=None, high=None, low=None, close=None, volume=None,
           trades=None, filled=None, source=None, rows=None, tf=M, base=0):
    """A BarSeries from minute offsets; OHLC default to a sane flat-ish bar per row."""
    n = len(ts_minutes)
    ts = np.asarray(ts_minutes, dtype=np.int64) * M + base
    o = np.asarray(open_ if open_ is not None else [100.0] * n, dtype=np.float64)
    c = np.asarray(close if close is not None else [100.5] * n, dtype=np.float64)
    h = np.asarray(high if high is not None else [101.0] * n, dtype=np.float64)
    lo = np.asarray(low if low is not None else [99.0] * n, dtype=np.float64)
    v = np.asarray(volume if volume is not None else [1.0] * n, dtype=np.float64)
    return BarSeries(
        "TEST", tf, ts, o, h, lo, c, v,
        None if trades is None else np.asarray(trades, dtype=np.float64),
        None if filled is None else np.asarray(filled, dtype=bool),
        None if source is None else np.asarray(source, dtype=object),
        None if rows is None else np.asarray(rows, dtype=np.int64),
    )


def rules(findings):
    return [(f.rule, f.row) for f in findings]


# --- check_rows ------------------------------------------------------------------------------


def test_check_rows_clean_series_has_no_findings():
    assert check_rows(series([0, 1, 2, 5, 6])) == []


def test_check_rows_gaps_are_not_row_errors():
    assert check_rows(series([0, 10, 100])) == []


def test_check_rows_duplicate_ts_is_error_naming_both_rows():
    findings = check_rows(series([0, 1, 1, 2]), file="f.csv")
    assert rules(findings) == [("duplicate", 3)]
    f = findings[0]
    assert f.severity == "error"
    assert f.action == "refused"
    assert f.file == "f.csv"
    assert f.ts == M
    assert "repeats row 2" in f.detail


def test_check_rows_non_increasing_ts_is_error_at_the_later_row():
    findings = check_rows(series([0, 2, 1, 3]))
    assert rules(findings) == [("non_increasing", 3)]
    assert "1970-01-01T00:01:00.000Z" in findings[0].detail
    assert "1970-01-01T00:02:00.000Z" in findings[0].detail


def test_check_rows_misaligned_ts_is_error():
    s = series([0, 1, 2, 3])
    s.ts[2] += 30_000
    findings = check_rows(s)
    assert rules(findings) == [("misaligned", 3)]
    assert "not a whole multiple of the timeframe (1m)" in findings[0].detail


def test_check_rows_alignment_uses_the_series_timeframe():
    five = 5 * M
    aligned = series([0, 5, 10], tf=five)
    assert check_rows(aligned) == []
    off = series([0, 5, 11], tf=five)
    assert rules(check_rows(off)) == [("misaligned", 3)]
    assert "(5m)" in check_rows(off)[0].detail


def test_check_rows_alignment_is_relative_to_the_unix_epoch():
    # 2024-01-01T00:00Z is a multiple of 5m, 00:01 is not
    s = series([0, 1], tf=5 * M, base=JAN_2024_MS)
    assert rules(check_rows(s)) == [("misaligned", 2)]


def test_check_rows_high_below_max_open_close_is_ohlc_error():
    findings = check_rows(series([0, 1, 2], high=[101, 100.2, 101]))
    assert rules(findings) == [("ohlc", 2)]
    assert "is below max(open" in findings[0].detail


def test_check_rows_low_above_min_open_close_is_ohlc_error():
    findings = check_rows(series([0, 1, 2], low=[99, 99, 100.2]))
    assert rules(findings) == [("ohlc", 3)]
    assert "is above min(open" in findings[0].detail


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"high": [100.2]}, "high 100.2 is below max(open 100.0, close 100.5)"),
    ({"low": [100.2]}, "low 100.2 is above min(open 100.0, close 100.5)"),
    ({"volume": [-0.5]}, "volume -0.5 is negative"),
    ({"close": [float("nan")]}, "close is nan, not a finite number"),
], ids=["high", "low", "volume", "nan"])
def test_check_rows_messages_show_plain_numbers(kwargs, expected):
    findings = check_rows(series([0], **kwargs))
    assert [f.detail for f in findings] == [expected]


def test_check_rows_row_with_both_high_and_low_broken_reports_one_ohlc_error():
    findings = check_rows(series([0], high=[99.5], low=[100.7]))
    assert rules(findings) == [("ohlc", 1)]


def test_check_rows_high_equal_to_max_and_low_equal_to_min_are_accepted():
    s = series([0, 1], open_=[100, 101], close=[101, 100], high=[101, 101], low=[100, 100])
    assert check_rows(s) == []


@pytest.mark.parametrize("column", ["open", "high", "low", "close", "volume"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_check_rows_non_finite_value_is_nan_error(column, value):
    s = series([0, 1, 2])
    getattr(s, column)[1] = value
    findings = check_rows(s)
    assert rules(findings) == [("nan", 2)]
    assert findings[0].detail.startswith(f"{column} is ")
    assert "not a finite number" in findings[0].detail


def test_check_rows_negative_volume_is_error():
    findings = check_rows(series([0, 1, 2], volume=[1, -0.5, 0]))
    assert rules(findings) == [("negative_volume", 2)]


def test_check_rows_zero_volume_is_accepted():
    assert check_rows(series([0, 1], volume=[0, 0])) == []


def test_check_rows_reports_the_file_row_numbers_of_the_series():
    s = series([0, 1, 1], rows=[10, 11, 12])
    assert rules(check_rows(s)) == [("duplicate", 12)]


def test_check_rows_reports_every_bad_row():
    s = series([0, 1, 2, 3, 4], volume=[-1, 1, -1, 1, -1])
    assert rules(check_rows(s)) == [("negative_volume", 1), ("negative_volume", 3),
                                    ("negative_volume", 5)]


# --- find_gaps -------------------------------------------------------------------------------


def test_find_gaps_returns_positions_and_missing_counts():
    idx, missing = find_gaps(series([0, 1, 3, 4, 8]))
    assert idx.tolist() == [1, 3]
    assert missing.tolist() == [1, 3]


@pytest.mark.parametrize("minutes", [[], [5], [0, 1, 2, 3]])
def test_find_gaps_short_or_contiguous_series_has_none(minutes):
    idx, missing = find_gaps(series(minutes))
    assert idx.tolist() == []
    assert missing.tolist() == []


def test_find_gaps_counts_missing_bars_in_the_series_timeframe():
    idx, missing = find_gaps(series([0, 5, 20], tf=5 * M))
    assert idx.tolist() == [1]
    assert missing.tolist() == [2]


# --- apply_gap_policy ------------------------------------------------------------------------


def test_apply_gap_policy_unknown_policy_raises_value_error():
    with pytest.raises(ValueError, match="unknown gap policy 'skip'"):
        apply_gap_policy(series([0, 2]), "skip")  # type: ignore[arg-type]


def test_gap_policies_are_fail_forward_none():
    assert GAP_POLICIES == ("fail", "forward", "none")


def test_apply_gap_policy_fail_reports_gaps_as_errors_and_keeps_series():
    s = series([0, 1, 4, 5, 7])
    report = apply_gap_policy(s, "fail", file="x.csv")
    assert [f.severity for f in report.findings] == ["error", "error"]
    assert [f.action for f in report.findings] == ["refused", "refused"]
    assert len(report.errors) == 2
    assert len(report.gaps) == 2
    assert report.filled_bars == 0
    assert report.series.ts.tolist() == s.ts.tolist()
    assert {f.file for f in report.findings} == {"x.csv"}


def test_apply_gap_policy_none_reports_gaps_as_kept_warnings_and_keeps_series():
    s = series([0, 1, 4, 5, 7])
    report = apply_gap_policy(s, "none")
    assert [(f.rule, f.severity, f.action) for f in report.findings] == [
        ("gap", "warning", "kept"), ("gap", "warning", "kept")]
    assert report.errors == []
    assert report.filled_bars == 0
    assert report.series.ts.tolist() == s.ts.tolist()


def test_apply_gap_policy_gap_findings_name_symbol_span_and_missing_bars():
    report = apply_gap_policy(series([0, 1, 4, 5, 7]), "fail")
    first, second = report.findings
    assert first.symbol == "TEST"
    assert first.row is None
    assert first.ts == 2 * M
    assert first.detail == ("2 missing bars from 1970-01-01T00:02:00.000Z "
                            "to 1970-01-01T00:03:00.000Z")
    assert first.data == {"from": "1970-01-01T00:02:00.000Z", "to": "1970-01-01T00:03:00.000Z",
                          "missing_bars": 2}
    assert second.ts == 6 * M
    assert second.detail == "1 missing bar at 1970-01-01T00:06:00.000Z"
    assert second.data == {"from": "1970-01-01T00:06:00.000Z", "to": "1970-01-01T00:06:00.000Z",
                           "missing_bars": 1}


@pytest.mark.parametrize("policy", GAP_POLICIES)
def test_apply_gap_policy_without_gaps_has_no_findings(policy):
    s = series([0, 1, 2, 3])
    report = apply_gap_policy(s, policy)
    assert report.findings == []
    assert report.filled_bars == 0
    assert report.series.ts.tolist() == s.ts.tolist()


def test_apply_gap_policy_forward_fills_flat_bars_at_previous_close():
    s = series(
        [0, 1, 4, 5, 7],
        open_=[10.0, 11.0, 12.0, 13.0, 14.0],
        high=[10.8, 11.9, 12.9, 13.9, 14.9],
        low=[9.9, 10.9, 11.9, 12.9, 13.9],
        close=[10.5, 11.5, 12.5, 13.5, 14.5],
        volume=[1.0, 2.0, 3.0, 4.0, 5.0],
        trades=[3, 4, 5, 6, 7],
        source=["f.csv"] * 5,
        rows=[1, 2, 3, 4, 5],
    )
    report = apply_gap_policy(s, "forward")
    out = report.series

    assert out.ts.tolist() == [m * M for m in range(8)]
    assert out.open.tolist() == [10.0, 11.0, 11.5, 11.5, 12.0, 13.0, 13.5, 14.0]
    assert out.high.tolist() == [10.8, 11.9, 11.5, 11.5, 12.9, 13.9, 13.5, 14.9]
    assert out.low.tolist() == [9.9, 10.9, 11.5, 11.5, 11.9, 12.9, 13.5, 13.9]
    assert out.close.tolist() == [10.5, 11.5, 11.5, 11.5, 12.5, 13.5, 13.5, 14.5]
    assert out.volume.tolist() == [1.0, 2.0, 0.0, 0.0, 3.0, 4.0, 0.0, 5.0]
    assert out.trades is not None
    assert out.trades.tolist() == [3, 4, 0, 0, 5, 6, 0, 7]
    assert out.filled_mask.tolist() == [False, False, True, True, False, False, True, False]
    assert out.source is not None
    assert out.source.tolist() == ["f.csv", "f.csv", "fill", "fill", "f.csv", "f.csv", "fill",
                                   "f.csv"]
    assert out.rows is not None
    assert out.rows.tolist() == [1, 2, 0, 0, 3, 4, 0, 5]
    assert out.symbol == "TEST"
    assert out.timeframe_ms == M

    assert report.filled_bars == 3
    assert [(f.severity, f.action) for f in report.findings] == [("warning", "filled")] * 2
    assert [f.data["missing_bars"] for f in report.findings] == [2, 1]
    assert report.errors == []


def test_apply_gap_policy_forward_filled_series_passes_row_checks_and_has_no_gaps():
    s = series([0, 3, 4, 9], close=[100.5, 100.2, 100.9, 100.1],
               high=[101, 101, 101, 101], low=[99, 99, 99, 99])
    out = apply_gap_policy(s, "forward").series
    assert check_rows(out) == []
    assert find_gaps(out)[0].tolist() == []
    assert len(out) == 10


def test_apply_gap_policy_forward_without_trades_or_source_leaves_them_none():
    out = apply_gap_policy(series([0, 2]), "forward").series
    assert out.trades is None
    assert out.source is None
    assert out.rows is None
    assert out.filled_mask.tolist() == [False, True, False]


def test_apply_gap_policy_forward_keeps_filled_flags_of_already_filled_bars():
    s = series([0, 1, 3], filled=[False, True, False])
    out = apply_gap_policy(s, "forward").series
    assert out.filled_mask.tolist() == [False, True, True, False]


def test_apply_gap_policy_forward_fills_in_the_series_timeframe():
    s = series([0, 5, 20], tf=5 * M, close=[1.0, 2.0, 3.0], open_=[1.0, 2.0, 3.0],
               high=[1.0, 2.0, 3.0], low=[1.0, 2.0, 3.0])
    out = apply_gap_policy(s, "forward").series
    assert out.ts.tolist() == [0, 5 * M, 10 * M, 15 * M, 20 * M]
    assert out.close.tolist() == [1.0, 2.0, 2.0, 2.0, 3.0]


def test_apply_gap_policy_does_not_modify_its_input():
    s = series([0, 2, 3])
    before = s.ts.copy(), s.close.copy(), s.volume.copy()
    apply_gap_policy(s, "forward")
    assert s.ts.tolist() == before[0].tolist()
    assert s.close.tolist() == before[1].tolist()
    assert s.volume.tolist() == before[2].tolist()
    assert s.filled is None


# --- BarSeries / QcReport --------------------------------------------------------------------


def test_bar_series_take_selects_every_column():
    s = series([0, 1, 2], close=[1.0, 2.0, 3.0], trades=[1, 2, 3], filled=[False, True, False],
               source=["a", "b", "c"], rows=[7, 8, 9])
    t = s.take(np.array([2, 0]))
    assert t.ts.tolist() == [2 * M, 0]
    assert t.close.tolist() == [3.0, 1.0]
    assert t.trades is not None and t.trades.tolist() == [3, 1]
    assert t.filled_mask.tolist() == [False, False]
    assert t.source is not None and t.source.tolist() == ["c", "a"]
    assert t.rows is not None and t.rows.tolist() == [9, 7]
    assert len(t) == 2


def test_qc_report_splits_errors_gaps_and_counts_filled():
    s = series([0, 1], filled=[True, False])
    gap = Finding("gap", "warning", "TEST", "1 missing bar", action="kept")
    err = Finding("ohlc", "error", "TEST", "bad", row=1)
    report = QcReport(s, [gap, err])
    assert report.errors == [err]
    assert report.gaps == [gap]
    assert report.filled_bars == 1


# --- Finding / summarize / findings_table ----------------------------------------------------


def test_finding_describe_names_file_and_row():
    f = Finding("ohlc", "error", "BTC", "high is low", row=5, file="a.csv")
    assert f.describe() == "a.csv, row 5: high is low"


def test_finding_describe_without_row_names_the_file():
    assert Finding("empty", "error", "BTC", "no bars", file="a.csv").describe() == "a.csv: no bars"


def test_finding_describe_without_file_or_row_names_the_symbol():
    assert Finding("gap", "error", "BTC", "1 missing bar").describe() == "BTC: 1 missing bar"


def test_finding_describe_row_without_file():
    assert Finding("nan", "error", "BTC", "x", row=2).describe() == "row 2: x"


def test_summarize_lists_the_first_findings_and_counts_the_rest():
    findings = [Finding("gap", "error", "S", f"gap {i}") for i in range(8)]
    text = summarize(findings, limit=3)
    lines = [line.strip() for line in text.split("\n")]
    assert lines == ["S: gap 0", "S: gap 1", "S: gap 2", "... and 5 more"]


def test_summarize_at_or_below_limit_has_no_remainder_line():
    findings = [Finding("gap", "error", "S", f"gap {i}") for i in range(5)]
    assert "more" not in summarize(findings)
    assert summarize(findings).count("S: gap") == 5
    assert summarize([]) == ""


def test_findings_table_has_one_qc_events_row_per_finding():
    findings = [
        Finding("ohlc", "error", "BTC", "bad high", row=3, ts=JAN_2024_MS, file="a.csv"),
        Finding("gap", "warning", "BTC", "1 missing bar", ts=JAN_2024_MS + M, action="kept",
                data={"missing_bars": 1, "from": "x", "to": "y"}),
    ]
    table = findings_table(findings, stage="ingest", timeframe="1m", policy="none",
                           ingest_id="ing-1")
    assert table.num_rows == 2
    rows = table.to_pylist()
    assert [r["event_seq"] for r in rows] == [1, 2]
    assert [r["rule"] for r in rows] == ["ohlc", "gap"]
    assert [r["severity"] for r in rows] == ["error", "warning"]
    assert [r["action"] for r in rows] == ["refused", "kept"]
    assert [r["row_number"] for r in rows] == [3, None]
    assert [r["file"] for r in rows] == ["a.csv", None]
    assert {r["ingest_id"] for r in rows} == {"ing-1"}
    assert {r["run_id"] for r in rows} == {None}
    assert {r["stage"] for r in rows} == {"ingest"}
    assert {r["timeframe"] for r in rows} == {"1m"}
    assert {r["policy"] for r in rows} == {"none"}
    assert json.loads(rows[0]["data"]) == {}
    assert json.loads(rows[1]["data"]) == {"missing_bars": 1, "from": "x", "to": "y"}
    assert table.schema.field("ts").type == pa.timestamp("ms", tz="UTC")
    assert table.column("ts").cast(pa.int64()).to_pylist() == [JAN_2024_MS, JAN_2024_MS + M]


def test_findings_table_of_no_findings_is_empty():
    table = findings_table([], stage="backtest", timeframe="1m", policy=None, run_id="r")
    assert table.num_rows == 0
    assert "recorded_at" in table.column_names


# --- absurd values ---------------------------------------------------------------------------
@pytest.mark.parametrize("column", ["open", "high", "low", "close"])
@pytest.mark.parametrize("value", [0.0, -0.0, -1.0])
def test_check_rows_price_at_or_below_zero_refused_naming_column_and_row(column, value):
    cols = {"open_": [100.0] * 3, "high": [101.0] * 3, "low": [99.0] * 3, "close": [100.5] * 3}
    key = "open_" if column == "open" else column
    cols[key][1] = value
    found = check_rows(series([0, 1, 2], **cols))
    assert [(f.rule, f.row) for f in found] == [("non_positive_price", 2)]
    assert found[0].detail == f"{column} is {float(value)!r}; prices must be above zero"


@pytest.mark.parametrize(("ts_ms", "shown"), [
    (-60_000, "1969-12-31T23:59:00.000Z"),
    (9_214_646_400_000, "2262-01-01T00:00:00.000Z"),
    (9_000_000_000_000_000_000, "9000000000000000000 (epoch ms)"),
    (-9_000_000_000_000_000_000, "-9000000000000000000 (epoch ms)"),
], ids=["before-1970", "2262", "far-future", "far-past"])
def test_check_rows_ts_outside_1970_to_2262_refused_naming_row_without_crashing(ts_ms, shown):
    s = series([0, 1, 2], base=JAN_2024_MS)
    s.ts[2] = ts_ms
    found = check_rows(s)
    assert [(f.rule, f.row, f.ts) for f in found] == [("ts_range", 3, None)]
    assert found[0].detail.startswith(f"ts {shown} is outside the supported range "
                                      "[1970-01-01T00:00:00.000Z, 2262-01-01T00:00:00.000Z)")
    findings_table(found, stage="ingest", timeframe="1m", policy="fail")  # fits qc_events


def test_check_rows_first_and_last_supported_times_accepted():
    s = series([0, 1], base=0)
    assert check_rows(s) == []
    late = series([-2, -1], base=9_214_646_400_000)
    assert check_rows(late) == []
