"""Spec of `workbench ingest`: files -> QC -> `bars`, in one transaction or not at all."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workbench.errors import DataError
from workbench.telemetry.log import JsonlLog
from workbench.warehouse import migrations
from workbench.warehouse.connect import open_ro
from workbench.warehouse.ingest import IngestResult, ingest

M = 60_000
B = 1_704_067_200_000  # 2024-01-01T00:00:00Z
HEADER = "ts,open,high,low,close,volume"
SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
REAL_JSON = SAMPLE / "UNITTEST_BTC-1m.json"
REAL_SYMBOL = "UNITTESTBTC"
POLICIES = ("fail", "forward", "none")


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def con():
    """An in-memory warehouse with the schema only: ingest needs no views, and this is cheaper
    than ``memory_con``. Tests that need the real file warehouse use ``rw_con``."""
    c = duckdb.connect(":memory:")
    c.execute("set TimeZone = 'UTC'")
    migrations.apply(c)
    yield c
    c.close()


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def bar(i: int, ts: int | None = None, step: int = M) -> list[str]:
    """A sane bar as CSV fields: low < open < close < high, volume > 0."""
    o = 100.0 + i / 10
    return [iso(B + i * step if ts is None else ts), f"{o:.2f}", f"{o + 0.6:.2f}",
            f"{o - 0.5:.2f}", f"{o + 0.05:.2f}", f"{1 + i:.1f}"]


def csv_text(rows: list[list[str]], header: str = HEADER) -> str:
    return "\n".join([header, *(",".join(r) for r in rows)]) + "\n"


def write(path: Path, rows: list[list[str]], header: str = HEADER) -> Path:
    path.write_text(csv_text(rows, header), encoding="utf-8")
    return path


def good(n: int, start: int = 0, step: int = M) -> list[list[str]]:
    return [bar(i, step=step) for i in range(start, start + n)]


def scalar(con, sql: str, params=None):
    return con.execute(sql, params or []).fetchall()[0][0]


def bar_rows(con, symbol: str = "X", timeframe: str = "1m") -> list[tuple]:
    return con.execute(
        "select epoch_ms(ts), open, high, low, close, volume, source from bars "
        "where symbol = ? and timeframe = ? order by ts", [symbol, timeframe]).fetchall()


def qc_rows(con, ingest_id: str | None = None) -> list[dict]:
    sql = ("select ingest_id, rule, row_number, file, severity, action, policy, symbol, "
           "timeframe, stage, epoch_ms(ts) as ts, data, detail from qc_events")
    rel = con.execute(sql + (" where ingest_id = ?" if ingest_id else "") + " order by event_seq",
                      [ingest_id] if ingest_id else [])
    names = [d[0] for d in rel.description]
    return [dict(zip(names, r, strict=True)) for r in rel.fetchall()]


def refused(con, paths, symbol: str = "X", **kw) -> tuple[str, str]:
    """Ingest expecting a refusal; return the message and the ingest_id it names."""
    with pytest.raises(DataError) as info:
        ingest(con, paths, symbol, **kw)
    msg = str(info.value)
    assert "nothing was loaded" in msg
    found = re.search(r"ingest_id=(ing-[^)\s]+)\)", msg)
    assert found, msg
    return msg, found.group(1)


@cache
def real_klines() -> list[list]:
    return json.loads(REAL_JSON.read_text(encoding="utf-8"))


@cache
def real_gaps() -> list[tuple[int, int, int]]:
    """(first missing ts, last missing ts, missing bars) per gap, computed without the package."""
    ts = [int(r[0]) for r in real_klines()]
    out = []
    for a, b in itertools.pairwise(ts):
        if b - a > M:
            out.append((a + M, b - M, (b - a) // M - 1))
    return out


def gap_detail(first: int, last: int, missing: int) -> str:
    if missing == 1:
        return f"1 missing bar at {iso(first)}"
    return f"{missing} missing bars from {iso(first)} to {iso(last)}"


# --- the real sample under each gap policy ---------------------------------------------------


def test_real_sample_gap_statistics_match_the_documented_facts():
    klines = real_klines()
    gaps = real_gaps()
    sizes = Counter(m for _, _, m in gaps)
    assert len(klines) == 13_681
    assert iso(klines[0][0]) == "2017-11-04T23:02:00.000Z"
    assert iso(klines[-1][0]) == "2017-11-14T22:59:00.000Z"
    assert len(gaps) == 538
    assert sizes[1] == 423
    assert sizes[2] == 78
    assert max(sizes) == 7
    assert sum(m for _, _, m in gaps) == 717


def test_ingest_real_sample_gaps_fail_refuses_naming_first_gaps_and_loads_nothing(rw_con):
    msg, ingest_id = refused(rw_con, [REAL_JSON], REAL_SYMBOL)
    assert f"{REAL_SYMBOL} has 538 gaps (policy --gaps fail)" in msg
    first_five = [f"{REAL_SYMBOL}: {gap_detail(*g)}" for g in real_gaps()[:5]]
    positions = [msg.index(line) for line in first_five]
    assert positions == sorted(positions)
    assert "... and 533 more" in msg
    assert "--gaps forward" in msg
    assert scalar(rw_con, "select count(*) from bars") == 0

    events = qc_rows(rw_con)
    assert len(events) == 538
    assert {(e["rule"], e["severity"], e["action"], e["policy"], e["ingest_id"]) for e in events} \
        == {("gap", "error", "refused", "fail", ingest_id)}
    assert [e["ts"] for e in events] == [g[0] for g in real_gaps()]
    assert [json.loads(e["data"])["missing_bars"] for e in events] == [g[2] for g in real_gaps()]
    assert {e["symbol"] for e in events} == {REAL_SYMBOL}


def test_ingest_real_sample_gaps_forward_fills_717_flat_bars(rw_con):
    result = ingest(rw_con, [REAL_JSON], REAL_SYMBOL, gaps="forward")
    assert isinstance(result, IngestResult)
    assert (result.rows_read, result.inserted, result.replaced, result.unchanged) == \
        (13_681, 14_398, 0, 0)
    assert (result.gaps, result.filled) == (538, 717)
    assert result.first_ts == real_klines()[0][0]
    assert result.last_ts == real_klines()[-1][0]

    # the expected table, built bar by bar from the JSON
    expected = []
    prev = None
    for k in real_klines():
        if prev is not None:
            for t in range(prev[0] + M, k[0], M):
                c = float(prev[4])
                expected.append((t, c, c, c, c, 0.0, "fill"))
        expected.append((k[0], *(float(v) for v in k[1:6]), REAL_JSON.name))
        prev = k
    assert len(expected) == 14_398
    assert bar_rows(rw_con, REAL_SYMBOL) == expected

    counts = rw_con.execute(
        "select count(*), count(*) filter (where source = 'fill'), "
        "count(*) filter (where source = 'fill' and not (open = high and high = low and "
        "low = close and volume = 0)) from bars").fetchall()[0]
    assert counts == (14_398, 717, 0)

    events = qc_rows(rw_con, result.ingest_id)
    assert len(events) == 538
    assert {(e["rule"], e["severity"], e["action"], e["policy"]) for e in events} == {
        ("gap", "warning", "filled", "forward")}
    sizes = Counter(json.loads(e["data"])["missing_bars"] for e in events)
    assert sizes == Counter(m for _, _, m in real_gaps())


def test_ingest_real_sample_gaps_none_keeps_13681_bars_and_records_gap_warnings(rw_con):
    result = ingest(rw_con, [REAL_JSON], REAL_SYMBOL, gaps="none")
    assert (result.rows_read, result.inserted, result.gaps, result.filled) == \
        (13_681, 13_681, 538, 0)
    stored = bar_rows(rw_con, REAL_SYMBOL)
    assert [r[0] for r in stored] == [k[0] for k in real_klines()]
    assert {r[6] for r in stored} == {REAL_JSON.name}

    events = qc_rows(rw_con, result.ingest_id)
    assert len(events) == 538
    assert {(e["rule"], e["severity"], e["action"], e["policy"]) for e in events} == {
        ("gap", "warning", "kept", "none")}
    assert [e["detail"] for e in events] == [gap_detail(*g) for g in real_gaps()]
    assert sum(json.loads(e["data"])["missing_bars"] for e in events) == 717


def test_ingest_real_sample_forward_twice_is_a_no_op(rw_con):
    first = ingest(rw_con, [REAL_JSON], REAL_SYMBOL, gaps="forward")
    again = ingest(rw_con, [REAL_JSON], REAL_SYMBOL, gaps="forward")
    assert (again.inserted, again.replaced, again.unchanged) == (0, 0, 14_398)
    assert scalar(rw_con, "select count(*) from bars") == 14_398
    assert scalar(rw_con, "select count(distinct ingest_id) from bars") == 1
    assert scalar(rw_con, "select any_value(ingest_id) from bars") == first.ingest_id


# --- row-level errors: refused under every policy --------------------------------------------


def _case(kind: str) -> tuple[str, list[list[str]], str, int | None, str]:
    """(header, rows, rule, row, message fragment) of a 10-bar file broken in one way."""
    rows = good(10)
    header = HEADER
    if kind == "duplicate":
        rows[4] = rows[3]
        return header, rows, "duplicate", 5, "repeats row 4"
    if kind == "non_increasing":
        rows[4], rows[5] = rows[5], rows[4]
        return header, rows, "non_increasing", 6, "is before the previous row's"
    if kind == "misaligned":
        rows[4][0] = iso(B + 4 * M + 30_000)
        return header, rows, "misaligned", 5, "is not a whole multiple of the timeframe"
    if kind == "high_below_max_open_close":
        rows[4][2] = f"{float(rows[4][4]) - 0.01:.2f}"  # below the close
        return header, rows, "ohlc", 5, "is below max(open"
    if kind == "low_above_min_open_close":
        rows[4][3] = f"{float(rows[4][1]) + 0.01:.2f}"  # above the open
        return header, rows, "ohlc", 5, "is above min(open"
    if kind == "nan":
        rows[4][4] = "NaN"
        return header, rows, "nan", 5, "not a finite number"
    if kind == "negative_volume":
        rows[4][5] = "-1.0"
        return header, rows, "negative_volume", 5, "is negative"
    if kind == "zero_price":
        rows[4][3] = "0"
        return header, rows, "non_positive_price", 5, "low is 0.0; prices must be above zero"
    if kind == "negative_price":
        rows[4][3] = "-5.5"
        return header, rows, "non_positive_price", 5, "low is -5.5; prices must be above zero"
    if kind == "before_1970":
        rows[0][0] = "1969-12-31T23:59:00Z"
        return header, rows, "ts_range", 1, "ts 1969-12-31T23:59:00.000Z is outside the supported"
    if kind == "negative_epoch_ms":
        rows[0][0] = "-60000"
        return header, rows, "ts_range", 1, "ts 1969-12-31T23:59:00.000Z is outside the supported"
    if kind == "after_2262":
        rows[9][0] = "2262-01-01T00:00:00Z"
        return header, rows, "ts_range", 10, "ts 2262-01-01T00:00:00.000Z is outside the"
    if kind == "missing_column":
        return "ts,open,high,low,close", [r[:5] for r in rows], "missing_column", None, \
            "missing column volume"
    if kind == "unparsable_number":
        rows[4][1] = "12..5"
        return header, rows, "unparsable", 5, "open '12..5' is not a number"
    if kind == "unparsable_ts":
        rows[4][0] = "2024-01-01T25:00:00Z"
        return header, rows, "unparsable", 5, "is neither epoch milliseconds nor an ISO-8601"
    if kind == "empty_file":
        return header, [], "empty", None, "holds no bars"
    if kind == "epoch_seconds":
        for i, r in enumerate(rows):
            r[0] = str((B + i * M) // 1000)
        return header, rows, "unparsable", 1, "look like epoch seconds"
    raise AssertionError(kind)


ROW_ERRORS = ["duplicate", "non_increasing", "misaligned", "high_below_max_open_close",
              "low_above_min_open_close", "nan", "negative_volume", "zero_price",
              "negative_price", "before_1970", "negative_epoch_ms", "after_2262", "missing_column",
              "unparsable_number", "unparsable_ts", "empty_file", "epoch_seconds"]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("kind", ROW_ERRORS)
def test_ingest_row_error_is_refused_under_every_policy_with_file_row_and_qc_event(
        con, tmp_path, kind, policy):
    header, rows, rule, row, fragment = _case(kind)
    path = write(tmp_path / f"{kind}.csv", rows, header)

    msg, ingest_id = refused(con, [path], gaps=policy)

    where = f"{path}, row {row}: " if row is not None else f"{path}: "
    assert where in msg
    assert fragment in msg
    assert msg.startswith("refused to ingest X")
    assert scalar(con, "select count(*) from bars") == 0
    events = qc_rows(con)
    assert [(e["rule"], e["row_number"], e["file"], e["severity"], e["action"], e["policy"],
             e["ingest_id"], e["stage"], e["timeframe"]) for e in events] == [
        (rule, row, str(path), "error", "refused", policy, ingest_id, "ingest", "1m")]


def test_ingest_refusal_lists_every_bad_row_in_qc_events(con, tmp_path):
    rows = good(20)
    for i in (2, 9, 17):
        rows[i][5] = "-3"
    path = write(tmp_path / "b.csv", rows)
    msg, _ = refused(con, [path], gaps="none")
    assert all(f"row {r}:" in msg for r in (3, 10, 18))
    assert [(e["rule"], e["row_number"]) for e in qc_rows(con)] == [
        ("negative_volume", 3), ("negative_volume", 10), ("negative_volume", 18)]


def test_ingest_missing_file_is_refused(con, tmp_path):
    msg, _ = refused(con, [tmp_path / "nope.csv"])
    assert f"{tmp_path / 'nope.csv'}: file not found" in msg
    assert qc_rows(con)[0]["rule"] == "unreadable"


# --- atomicity -------------------------------------------------------------------------------


def test_ingest_one_bad_row_among_many_loads_nothing(rw_con, synth_csv):
    path = synth_csv(count=600)
    lines = path.read_text().splitlines()
    fields = lines[300].split(",")  # data row 300
    fields[2] = f"{min(float(fields[1]), float(fields[4])) - 1:.2f}"  # high below open and close
    lines[300] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")

    msg, _ = refused(rw_con, [path], gaps="forward")
    assert f"{path}, row 300: high" in msg
    assert scalar(rw_con, "select count(*) from bars") == 0
    assert [(e["rule"], e["row_number"]) for e in qc_rows(rw_con)] == [("ohlc", 300)]


def test_ingest_bad_second_file_refuses_the_good_first_file_too(rw_con, synth_csv, tmp_path):
    first = synth_csv(count=120)
    rows = [bar(i) for i in range(120, 130)]
    rows[3][5] = "-1"
    second = write(tmp_path / "second.csv", rows)

    msg, _ = refused(rw_con, [first, second], gaps="none")
    assert f"{second}, row 4:" in msg
    assert str(first) not in msg
    assert scalar(rw_con, "select count(*) from bars") == 0
    assert {e["file"] for e in qc_rows(rw_con)} == {str(second)}


def test_ingest_conflict_with_stored_bar_loads_none_of_the_new_bars(rw_con, tmp_path):
    ingest(rw_con, [write(tmp_path / "a.csv", good(10))], "X")
    rows = good(20, start=5)  # 5 overlap, 15 new
    rows[0][4] = f"{float(rows[0][4]) + 0.01:.2f}"  # bar 5 now differs
    before = bar_rows(rw_con)

    msg, ingest_id = refused(rw_con, [write(tmp_path / "b.csv", rows)])
    assert "1 row(s) conflict with bars already in the warehouse" in msg
    assert bar_rows(rw_con) == before
    assert [e["rule"] for e in qc_rows(rw_con, ingest_id)] == ["conflict"]


def test_ingest_refused_for_gaps_loads_nothing_and_leaves_earlier_bars(rw_con, tmp_path):
    ingest(rw_con, [write(tmp_path / "a.csv", good(10))], "X")
    before = bar_rows(rw_con)
    rows = good(10, start=10)
    del rows[4]
    msg, _ = refused(rw_con, [write(tmp_path / "b.csv", rows)])
    assert f"X: 1 missing bar at {iso(B + 14 * M)}" in msg
    assert bar_rows(rw_con) == before


def test_ingest_refusal_is_recorded_even_though_bars_are_rolled_back(warehouse, tmp_path):
    from workbench.warehouse.connect import open_rw

    rows = good(10)
    rows[2][0] = "later"
    path = write(tmp_path / "b.csv", rows)
    con = open_rw(warehouse)
    try:
        refused(con, [path])
    finally:
        con.close()
    ro = open_ro(warehouse)
    try:
        assert scalar(ro, "select count(*) from bars") == 0
        assert [(e["rule"], e["row_number"]) for e in qc_rows(ro)] == [("unparsable", 3)]
    finally:
        ro.close()


# --- re-ingest, conflicts, replace -----------------------------------------------------------


def test_ingest_identical_rows_again_is_a_no_op(con, synth_csv):
    path = synth_csv(count=120)
    first = ingest(con, [path], "X")
    assert (first.rows_read, first.inserted, first.replaced, first.unchanged) == (120, 120, 0, 0)
    before = bar_rows(con)

    again = ingest(con, [path], "X")
    assert (again.rows_read, again.inserted, again.replaced, again.unchanged) == (120, 0, 0, 120)
    assert bar_rows(con) == before
    assert scalar(con, "select count(distinct ingest_id) from bars") == 1
    assert scalar(con, "select any_value(ingest_id) from bars") == first.ingest_id


def test_ingest_overlapping_file_inserts_only_the_new_bars(con, tmp_path):
    ingest(con, [write(tmp_path / "a.csv", good(30))], "X")
    result = ingest(con, [write(tmp_path / "b.csv", good(30, start=20))], "X")
    assert (result.inserted, result.replaced, result.unchanged) == (20, 0, 10)
    assert scalar(con, "select count(*) from bars") == 50


def test_ingest_conflicting_row_is_refused_without_replace(con, tmp_path):
    ingest(con, [write(tmp_path / "a.csv", good(10))], "X")
    rows = good(10)
    old_close = float(rows[6][4])
    rows[6][4] = f"{old_close + 0.1:.2f}"
    rows[6][2] = f"{float(rows[6][2]) + 0.1:.2f}"

    msg, ingest_id = refused(con, [write(tmp_path / "b.csv", rows)])
    assert f"{iso(B + 6 * M)} is already stored with different values" in msg
    assert f"stored close {old_close!r}" in msg
    assert "--replace" in msg
    assert scalar(con, "select close from bars where epoch_ms(ts) = ?", [B + 6 * M]) \
        == old_close
    events = qc_rows(con, ingest_id)
    assert [(e["rule"], e["severity"], e["ts"]) for e in events] == [
        ("conflict", "error", B + 6 * M)]


def test_ingest_conflicting_row_with_replace_overwrites_it(con, tmp_path):
    ingest(con, [write(tmp_path / "a.csv", good(10))], "X")
    rows = good(12)
    rows[6] = [iso(B + 6 * M), "50.00", "55.00", "45.00", "52.00", "9.0"]
    result = ingest(con, [write(tmp_path / "b.csv", rows)], "X", replace=True)

    assert (result.inserted, result.replaced, result.unchanged) == (2, 1, 9)
    assert scalar(con, "select count(*) from bars") == 12
    assert con.execute(
        "select open, high, low, close, volume, source, ingest_id from bars "
        "where epoch_ms(ts) = ?", [B + 6 * M]).fetchall() == [
        (50.0, 55.0, 45.0, 52.0, 9.0, "b.csv", result.ingest_id)]
    assert scalar(con, "select source from bars where epoch_ms(ts) = ?", [B + 5 * M]) \
        == "a.csv"


def test_ingest_replace_with_identical_rows_changes_nothing(con, tmp_path):
    path = write(tmp_path / "a.csv", good(10))
    first = ingest(con, [path], "X")
    again = ingest(con, [path], "X", replace=True)
    assert (again.inserted, again.replaced, again.unchanged) == (0, 0, 10)
    assert scalar(con, "select any_value(ingest_id) from bars") == first.ingest_id


def test_ingest_real_bar_replaces_a_filled_bar_without_replace(con, tmp_path):
    rows = good(3)
    ingest(con, [write(tmp_path / "a.csv", [rows[0], rows[2]])], "X", gaps="forward")
    assert scalar(con, "select source from bars where epoch_ms(ts) = ?", [B + M]) == "fill"

    result = ingest(con, [write(tmp_path / "b.csv", [rows[1]])], "X")
    assert (result.inserted, result.replaced, result.unchanged) == (0, 1, 0)
    assert bar_rows(con)[1] == (B + M, *(float(v) for v in rows[1][1:]), "b.csv")


@pytest.mark.parametrize("replace", [False, True])
def test_ingest_filled_bar_never_replaces_a_stored_bar(con, tmp_path, replace):
    rows = good(3)
    ingest(con, [write(tmp_path / "a.csv", rows)], "X")
    before = bar_rows(con)

    result = ingest(con, [write(tmp_path / "b.csv", [rows[0], rows[2]])], "X",
                    gaps="forward", replace=replace)
    assert result.filled == 1
    assert (result.inserted, result.replaced, result.unchanged) == (0, 0, 3)
    assert bar_rows(con) == before


def test_ingest_real_flat_bar_equal_to_a_filled_bar_clears_the_fill_mark(con, tmp_path):
    rows = good(3)
    ingest(con, [write(tmp_path / "a.csv", [rows[0], rows[2]])], "X", gaps="forward")
    close = rows[0][4]
    real_flat = [iso(B + M), close, close, close, close, "0"]  # a real bar with no trades
    ingest(con, [write(tmp_path / "b.csv", [real_flat])], "X")
    assert scalar(con, "select source from bars where epoch_ms(ts) = ?", [B + M]) == "b.csv"


# --- several files in one ingest -------------------------------------------------------------


def test_ingest_identical_overlap_across_files_is_deduplicated(con, tmp_path):
    a = write(tmp_path / "a.csv", good(30))
    b = write(tmp_path / "b.csv", good(30, start=20))
    result = ingest(con, [a, b], "X")
    assert result.rows_read == 60
    assert result.inserted == 50
    assert [r[0] for r in bar_rows(con)] == [B + i * M for i in range(50)]


def test_ingest_conflicting_overlap_across_files_is_refused_naming_both(con, tmp_path):
    a = write(tmp_path / "a.csv", good(30))
    rows = good(30, start=20)
    rows[5][5] = "99.0"  # bar 25, row 6 of b.csv, row 26 of a.csv
    b = write(tmp_path / "b.csv", rows)

    msg, ingest_id = refused(con, [a, b], gaps="none")
    assert "the files disagree where they overlap" in msg
    assert f"{iso(B + 25 * M)} differs between {a} row 26 and {b} row 6" in msg
    assert scalar(con, "select count(*) from bars") == 0
    assert [(e["rule"], e["file"], e["row_number"]) for e in qc_rows(con, ingest_id)] == [
        ("conflict", str(b), 6)]


def test_ingest_files_in_any_order_are_merged_in_time_order(con, tmp_path):
    late = write(tmp_path / "late.csv", good(10, start=10))
    early = write(tmp_path / "early.csv", good(10))
    result = ingest(con, [late, early], "X")
    assert (result.inserted, result.gaps) == (20, 0)
    stored = bar_rows(con)
    assert [r[0] for r in stored] == [B + i * M for i in range(20)]
    assert [r[6] for r in stored] == ["early.csv"] * 10 + ["late.csv"] * 10


def test_ingest_gap_between_files_is_a_gap(con, tmp_path):
    a = write(tmp_path / "a.csv", good(10))
    b = write(tmp_path / "b.csv", good(10, start=13))
    msg, _ = refused(con, [a, b])
    assert f"X: 3 missing bars from {iso(B + 10 * M)} to {iso(B + 12 * M)}" in msg
    result = ingest(con, [a, b], "X", gaps="forward")
    assert (result.inserted, result.filled) == (23, 3)


# --- timeframes ------------------------------------------------------------------------------


def test_ingest_1m_and_5m_series_of_one_symbol_live_side_by_side(con, tmp_path):
    one = write(tmp_path / "one.csv", good(60))
    five = write(tmp_path / "five.csv", good(12, step=5 * M))
    ingest(con, [one], "X")
    r5 = ingest(con, [five], "X", timeframe="5m")
    assert (r5.inserted, r5.timeframe) == (12, "5m")
    assert con.execute(
        "select timeframe, count(*) from bars where symbol = 'X' group by all order by 1"
    ).fetchall() == [("1m", 60), ("5m", 12)]
    # same ts, different values: no conflict across timeframes
    again = ingest(con, [one], "X")
    assert (again.inserted, again.unchanged) == (0, 60)
    assert bar_rows(con, timeframe="5m")[1][1] == float(good(12, step=5 * M)[1][1])


def test_ingest_1m_bars_as_5m_are_refused_as_misaligned(con, tmp_path):
    path = write(tmp_path / "one.csv", good(10))
    msg, _ = refused(con, [path], timeframe="5m", gaps="none")
    assert f"{path}, row 2: ts {iso(B + M)} is not a whole multiple of the timeframe (5m)" in msg
    assert {e["row_number"] for e in qc_rows(con)} == {2, 3, 4, 5, 7, 8, 9, 10}


def test_ingest_5m_gaps_are_counted_and_filled_in_5m_bars(con, tmp_path):
    rows = good(6, step=5 * M)
    del rows[2:4]  # 10:00 and 15:00 missing
    result = ingest(con, [write(tmp_path / "five.csv", rows)], "X", timeframe="5m",
                    gaps="forward")
    assert (result.gaps, result.filled, result.inserted) == (1, 2, 6)
    stored = bar_rows(con, timeframe="5m")
    assert [r[0] for r in stored] == [B + i * 5 * M for i in range(6)]
    assert [r[6] for r in stored].count("fill") == 2


# --- formats ---------------------------------------------------------------------------------


def values(con, symbol: str = "X") -> list[tuple]:
    return [r[:6] for r in bar_rows(con, symbol)]


def test_ingest_csv_with_iso_or_epoch_ms_ts_stores_the_same_bars(con, tmp_path):
    rows = good(5)
    ingest(con, [write(tmp_path / "iso.csv", rows)], "ISO")
    ms_rows = [[str(B + i * M), *r[1:]] for i, r in enumerate(rows)]
    ingest(con, [write(tmp_path / "ms.csv", ms_rows)], "MS")
    assert values(con, "ISO") == values(con, "MS")
    assert values(con, "ISO")[0] == (B, *(float(v) for v in rows[0][1:]))


def test_ingest_synthetic_sample_csv(con):
    result = ingest(con, [SAMPLE / "btcusdt_1m_2024-01_synthetic.csv"], "BTCUSDT")
    assert (result.inserted, result.gaps, result.filled) == (44_640, 0, 0)
    assert (result.first_ts, result.last_ts) == (B, B + 44_639 * M)


@pytest.mark.parametrize("ts_type", ["int64", "timestamp_ms_utc", "timestamp_us_utc",
                                     "timestamp_s_naive"])
def test_ingest_parquet(con, tmp_path, ts_type):
    rows = good(5)
    ms = [B + i * M for i in range(5)]
    ts = {
        "int64": pa.array(ms, pa.int64()),
        "timestamp_ms_utc": pa.array(ms, pa.timestamp("ms", "UTC")),
        "timestamp_us_utc": pa.array([t * 1000 for t in ms], pa.timestamp("us", "UTC")),
        "timestamp_s_naive": pa.array([t // 1000 for t in ms], pa.timestamp("s")),
    }[ts_type]
    table = pa.table({"ts": ts, **{c: pa.array([float(r[k]) for r in rows])
                                   for k, c in enumerate(HEADER.split(",")[1:], start=1)}})
    path = tmp_path / "bars.parquet"
    pq.write_table(table, path)
    ingest(con, [write(tmp_path / "ref.csv", rows)], "REF")

    result = ingest(con, [path], "X")
    assert result.inserted == 5
    assert values(con) == values(con, "REF")


def test_ingest_binance_json_with_trades(con, tmp_path):
    klines = [[B + i * M, "1.5", "2.0", "1.0", "1.75", "10.5", B + (i + 1) * M - 1, "0", 40 + i,
               "0", "0", "0"] for i in range(3)]
    path = tmp_path / "k.json"
    path.write_text(json.dumps(klines))
    result = ingest(con, [path], "X")
    assert result.inserted == 3
    assert con.execute(
        "select epoch_ms(ts), open, high, low, close, volume, trades, source from bars "
        "order by ts").fetchall() == [
        (B + i * M, 1.5, 2.0, 1.0, 1.75, 10.5, 40 + i, "k.json") for i in range(3)]


def test_ingest_trades_are_null_when_the_file_has_none(con, tmp_path):
    ingest(con, [write(tmp_path / "a.csv", good(3))], "X")
    assert scalar(con, "select count(*) from bars where trades is null") == 3


@pytest.mark.parametrize("name", ["bars.csv", "bars.CSV", "bars.pq", "bars.parquet",
                                  "bars.json"])
def test_ingest_format_is_inferred_from_the_extension(con, tmp_path, name):
    rows = good(3)
    path = tmp_path / name
    suffix = path.suffix.lower()
    if suffix == ".csv":
        write(path, rows)
    elif suffix == ".json":
        path.write_text(json.dumps([[B + i * M, *map(float, r[1:])] for i, r in enumerate(rows)]))
    else:
        pq.write_table(pa.table({"ts": [B + i * M for i in range(3)],
                                 **{c: [float(r[k]) for r in rows]
                                    for k, c in enumerate(HEADER.split(",")[1:], start=1)}}),
                       path)
    assert ingest(con, [path], "X").inserted == 3
    assert values(con) == [(B + i * M, *(float(v) for v in r[1:])) for i, r in
                                  enumerate(rows)]


def test_ingest_unknown_extension_is_refused_with_a_format_hint(con, tmp_path):
    path = write(tmp_path / "bars.txt", good(3))
    msg, _ = refused(con, [path])
    assert f"{path}: cannot tell the format" in msg
    assert "pass --format csv|parquet|binance-json" in msg
    assert qc_rows(con)[0]["rule"] == "unreadable"


def test_ingest_explicit_format_reads_any_extension(con, tmp_path):
    path = write(tmp_path / "bars.txt", good(3))
    assert ingest(con, [path], "X", fmt="csv").inserted == 3


def test_ingest_wrong_explicit_format_is_refused(con, tmp_path):
    path = write(tmp_path / "bars.csv", good(3))
    msg, _ = refused(con, [path], fmt="parquet")
    assert f"{path}: cannot read as parquet" in msg


# --- source, logging -------------------------------------------------------------------------


def test_ingest_source_defaults_to_the_file_name(con, tmp_path):
    ingest(con, [write(tmp_path / "a.csv", good(3))], "X")
    assert scalar(con, "select list(distinct source) from bars") == ["a.csv"]


def test_ingest_source_option_names_the_source(con, tmp_path):
    ingest(con, [write(tmp_path / "a.csv", good(3))], "X", source="binance")
    assert scalar(con, "select list(distinct source) from bars") == ["binance"]


def test_ingest_stores_symbol_timeframe_and_ingest_id(con, tmp_path):
    result = ingest(con, [write(tmp_path / "a.csv", good(3))], "ETHUSDT")
    assert con.execute("select distinct symbol, timeframe, ingest_id from bars").fetchall() \
        == [("ETHUSDT", "1m", result.ingest_id)]


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_ingest_refused_findings_are_logged_and_recorded(con, tmp_path):
    rows = good(10)
    rows[2][5] = "-1"
    rows[7][0] = rows[6][0]
    path = write(tmp_path / "b.csv", rows)
    log_path = tmp_path / "ingest.jsonl"
    with JsonlLog(log_path) as log, pytest.raises(DataError):
        ingest(con, [path], "X", log=log)
    records = [r for r in read_log(log_path) if r["component"] == "qc"]
    events = qc_rows(con)
    assert len(records) == len(events) == 2
    assert [r["context"]["rule"] for r in records] == [e["rule"] for e in events]
    assert {r["level"] for r in records} == {"error"}
    assert {r["context"]["ingest_id"] for r in records} == {events[0]["ingest_id"]}
    assert {r["msg"].split(": ", 1)[0] for r in records} == {f"{path}, row 3", f"{path}, row 8"}


def test_ingest_accepted_findings_are_logged_and_recorded(con, tmp_path):
    rows = good(10)
    del rows[3]
    del rows[6]
    log_path = tmp_path / "ingest.jsonl"
    with JsonlLog(log_path) as log:
        result = ingest(con, [write(tmp_path / "b.csv", rows)], "X", gaps="none", log=log)
    records = read_log(log_path)
    qc = [r for r in records if r["component"] == "qc"]
    assert [(r["level"], r["context"]["missing_bars"]) for r in qc] == [("warning", 1)] * 2
    assert [e["rule"] for e in qc_rows(con, result.ingest_id)] == ["gap", "gap"]
    assert [r["msg"] for r in records if r["component"] == "ingest"] == [result.summary()]
    assert result.findings and all(f.rule == "gap" for f in result.findings)


def test_ingest_clean_data_records_no_qc_events(con, tmp_path):
    result = ingest(con, [write(tmp_path / "a.csv", good(10))], "X")
    assert result.findings == []
    assert scalar(con, "select count(*) from qc_events") == 0


def test_ingest_result_summary_states_the_counts(con, tmp_path):
    rows = good(5)
    del rows[2]
    result = ingest(con, [write(tmp_path / "a.csv", rows)], "X", gaps="forward")
    assert result.summary() == (
        f"ingested X 1m from {iso(B)} to {iso(B + 4 * M)}: 4 rows read, 5 inserted, "
        f"0 replaced, 0 unchanged, 1 gaps, 1 bars filled forward (ingest_id={result.ingest_id})")


# --- the CLI ---------------------------------------------------------------------------------


def stored(warehouse: Path, sql: str) -> list[tuple]:
    con = open_ro(warehouse)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_cli_ingest_success_exits_zero_and_prints_the_summary(cli, warehouse, synth_csv):
    path = synth_csv(count=60)
    res = cli("ingest", str(path), "--symbol", "X")
    assert res.code == 0, res.err
    assert res.out.startswith("ingested X 1m from 2024-01-01T00:00:00.000Z")
    assert "60 rows read, 60 inserted, 0 replaced, 0 unchanged" in res.out
    assert res.err == ""
    assert stored(warehouse, "select count(*), list(distinct source) from bars") == [
        (60, ["bars.csv"])]


def test_cli_ingest_bad_row_exits_non_zero_naming_file_and_row(cli, warehouse, tmp_path):
    rows = good(10)
    rows[4][3] = "200.00"  # low above open and close
    path = write(tmp_path / "bad.csv", rows)
    res = cli("ingest", str(path), "--symbol", "X", "--gaps", "forward")
    assert res.code != 0
    assert res.err.startswith("error: refused to ingest X")
    assert f"{path}, row 5: low" in res.err
    assert "is above min(open" in res.err
    assert res.out == ""
    assert stored(warehouse, "select count(*) from bars") == [(0,)]
    assert stored(warehouse, "select rule, row_number, policy from qc_events") == [
        ("ohlc", 5, "forward")]


def test_cli_ingest_real_sample_default_policy_refuses_gaps(cli, warehouse):
    res = cli("ingest", str(REAL_JSON), "--symbol", REAL_SYMBOL)
    assert res.code != 0
    assert res.err.startswith(f"error: {REAL_SYMBOL} has 538 gaps (policy --gaps fail)")
    assert f"{REAL_SYMBOL}: {gap_detail(*real_gaps()[0])}" in res.err
    assert stored(warehouse, "select count(*) from bars") == [(0,)]
    assert stored(warehouse, "select count(*) from qc_events") == [(538,)]


def test_cli_ingest_gaps_none_exits_zero_and_reports_findings(cli, warehouse, tmp_path):
    rows = good(10)
    del rows[5]
    res = cli("ingest", str(write(tmp_path / "a.csv", rows)), "--symbol", "X", "--gaps", "none")
    assert res.code == 0, res.err
    assert "1 QC finding(s), policy --gaps none" in res.err
    assert f"X: 1 missing bar at {iso(B + 5 * M)}" in res.err
    assert "9 inserted" in res.out


def test_cli_ingest_conflict_needs_replace(cli, warehouse, tmp_path):
    cli("ingest", str(write(tmp_path / "a.csv", good(5))), "--symbol", "X")
    rows = good(5)
    rows[2][5] = "77.0"
    path = write(tmp_path / "b.csv", rows)
    res = cli("ingest", str(path), "--symbol", "X")
    assert res.code != 0
    assert "conflict with bars already in the warehouse" in res.err
    assert "pass --replace" in res.err
    res = cli("ingest", str(path), "--symbol", "X", "--replace", "--source", "fixed")
    assert res.code == 0, res.err
    assert "0 inserted, 1 replaced, 4 unchanged" in res.out
    assert stored(warehouse, "select volume, source from bars where epoch_ms(ts) = "
                             f"{B + 2 * M}") == [(77.0, "fixed")]


def test_cli_ingest_unknown_extension_exits_non_zero_with_hint(cli, tmp_path):
    path = write(tmp_path / "bars.dat", good(3))
    res = cli("ingest", str(path), "--symbol", "X")
    assert res.code != 0
    assert res.err.startswith("error:")
    assert str(path) in res.err
    assert "--format" in res.err
    res = cli("ingest", str(path), "--symbol", "X", "--format", "csv")
    assert res.code == 0, res.err


def test_cli_ingest_5m_timeframe_option(cli, warehouse, tmp_path):
    res = cli("ingest", str(write(tmp_path / "five.csv", good(4, step=5 * M))), "--symbol", "X",
              "--timeframe", "5m")
    assert res.code == 0, res.err
    assert stored(warehouse, "select timeframe, count(*) from bars group by 1") == [("5m", 4)]


def test_cli_ingest_writes_findings_to_the_ingest_log(cli, warehouse, tmp_path):
    rows = good(5)
    rows[1][1] = "oops"
    res = cli("ingest", str(write(tmp_path / "bad.csv", rows)), "--symbol", "X")
    assert res.code != 0
    records = read_log(warehouse.parent / "logs" / "ingest.jsonl")
    assert [(r["level"], r["component"], r["context"]["rule"]) for r in records] == [
        ("error", "qc", "unparsable")]
    assert "row 2: open 'oops' is not a number" in records[0]["msg"]
