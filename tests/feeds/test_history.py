"""Reading bars for a run (feeds/history.py): stored bars as they are, or, when the run's
timeframe has none of its own, resampled in DuckDB from finer stored bars."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from workbench.errors import DataError
from workbench.feeds.history import check_series, finer_source, load_series

T0 = 1_704_067_200_000  # 2024-01-01T00:00Z, aligned to every timeframe used here
M = 60_000

# (open, high, low, close, volume) of 1-minute bars 0..11 from T0
ROWS = [
    (10.0, 12.0, 9.0, 11.0, 1.0),
    (11.0, 15.0, 10.0, 14.0, 2.0),
    (14.0, 14.0, 8.0, 9.0, 0.5),
    (9.0, 10.0, 7.5, 10.0, 1.5),
    (10.0, 11.0, 9.5, 10.5, 3.0),
    (10.5, 11.0, 10.0, 10.8, 1.0),
    (10.8, 13.0, 10.7, 12.9, 1.0),
    (12.9, 13.5, 12.0, 12.2, 2.0),
    (12.2, 12.5, 11.0, 11.1, 0.25),
    (11.1, 11.6, 11.0, 11.5, 0.75),
    (11.5, 12.0, 11.0, 11.9, 1.0),
    (11.9, 12.1, 11.8, 12.0, 1.0),
]
# the two complete 5-minute buckets; minutes 10-11 are a partial last bucket
FIVE = [
    (T0, 10.0, 15.0, 7.5, 10.5, 8.0),
    (T0 + 5 * M, 10.5, 13.5, 10.0, 11.5, 5.0),
]


def _insert(con: Any, rows: list[tuple[float, ...]], *, symbol: str = "BTCUSDT",
            timeframe: str = "1m", step: int = M, start: int = T0,
            skip: tuple[int, ...] = (), filled: tuple[int, ...] = ()) -> None:
    for i, (o, h, lo, c, v) in enumerate(rows):
        if i in skip:
            continue
        con.execute("insert into bars (symbol, timeframe, ts, open, high, low, close, volume, "
                    "source) values (?, ?, to_timestamp(? / 1000), ?, ?, ?, ?, ?, ?)",
                    [symbol, timeframe, start + i * step, o, h, lo, c, v,
                     "fill" if i in filled else "test"])


def _rows(series: Any) -> list[tuple[Any, ...]]:
    return [(int(t), float(o), float(h), float(lo), float(c), float(v)) for t, o, h, lo, c, v in
            zip(series.ts, series.open, series.high, series.low, series.close, series.volume,
                strict=True)]


def test_load_series_5m_over_1m_bars_resamples_exact_rows_drops_partial_last(memory_con):
    _insert(memory_con, ROWS)
    series = load_series(memory_con, "BTCUSDT", "5m", 5 * M, None, None)
    assert _rows(series) == FIVE
    assert series.resampled_from == "1m"
    assert series.timeframe_ms == 5 * M
    assert not series.filled_mask.any()


def test_load_series_resample_bucket_missing_a_bar_dropped_then_gap_qc_sees_it(memory_con):
    rows = [*ROWS, *[(12.0, 12.5, 11.5, 12.2, 1.0)] * 3]  # minutes 12-14 complete bucket 10
    _insert(memory_con, rows, skip=(7,))
    series = load_series(memory_con, "BTCUSDT", "5m", 5 * M, None, None)
    assert [r[0] for r in _rows(series)] == [T0, T0 + 10 * M]
    assert _rows(series)[1] == (T0 + 10 * M, 11.5, 12.5, 11.0, 12.2, 5.0)
    failed = check_series(series, "fail")
    assert [f.rule for f in failed.errors] == ["gap"]
    assert failed.errors[0].detail == (
        "1 missing bar at 2024-01-01T00:05:00.000Z (resampled from stored 1m bars: a bar is "
        "left out when any 1m bar of it is missing)")
    forward = check_series(series, "forward")
    assert not forward.errors
    assert forward.series.ts.tolist() == [T0, T0 + 5 * M, T0 + 10 * M]
    assert forward.series.filled_mask.tolist() == [False, True, False]
    assert forward.series.resampled_from == "1m"


def test_load_series_resample_window_keeps_only_buckets_inside_it(memory_con):
    _insert(memory_con, ROWS)
    # from minute 1: bucket 0 lacks its first bar; to minute 10: bucket 10 is outside
    series = load_series(memory_con, "BTCUSDT", "5m", 5 * M, T0 + M, T0 + 10 * M)
    assert _rows(series) == [FIVE[1]]


def test_load_series_resample_unaligned_start_drops_leading_partial_bucket(memory_con):
    _insert(memory_con, ROWS, start=T0 + 2 * M)  # minutes 2..13: buckets 0 and 10 partial
    series = load_series(memory_con, "BTCUSDT", "5m", 5 * M, None, None)
    assert [r[0] for r in _rows(series)] == [T0 + 5 * M]
    # minutes 5..9 of this series are ROWS[3..7]
    assert _rows(series)[0] == (T0 + 5 * M, 9.0, 13.5, 7.5, 12.2, 8.5)


def test_load_series_resample_filled_only_when_every_bar_filled(memory_con):
    _insert(memory_con, ROWS, filled=(0, 1, 2, 3, 4, 5))
    series = load_series(memory_con, "BTCUSDT", "5m", 5 * M, None, None)
    assert series.filled_mask.tolist() == [True, False]


def test_load_series_own_bars_stored_not_resampled(memory_con):
    _insert(memory_con, ROWS)
    _insert(memory_con, [(1.0, 2.0, 0.5, 1.5, 9.0)], timeframe="5m", step=5 * M)
    series = load_series(memory_con, "BTCUSDT", "5m", 5 * M, None, None)
    assert _rows(series) == [(T0, 1.0, 2.0, 0.5, 1.5, 9.0)]
    assert series.resampled_from is None


def test_finer_source_coarsest_dividing_timeframe_chosen(memory_con):
    _insert(memory_con, ROWS)
    _insert(memory_con, ROWS[:3], timeframe="5m", step=5 * M)
    _insert(memory_con, ROWS[:1], timeframe="2m", step=2 * M)
    assert finer_source(memory_con, "BTCUSDT", "15m", 15 * M) == ("5m", 5 * M)
    assert finer_source(memory_con, "BTCUSDT", "7m", 7 * M) == ("1m", M)
    assert finer_source(memory_con, "BTCUSDT", "5m", 5 * M) is None  # its own bars
    assert finer_source(memory_con, "ETHUSDT", "5m", 5 * M) is None


def test_load_series_no_dividing_finer_bars_error_names_what_exists(memory_con):
    _insert(memory_con, ROWS[:4], timeframe="2m", step=2 * M)
    with pytest.raises(DataError, match=r"no bars for BTCUSDT 5m") as info:
        load_series(memory_con, "BTCUSDT", "5m", 5 * M, None, None)
    assert "BTCUSDT 2m" in (info.value.fix or "")


def test_load_series_resample_no_complete_bucket_error_says_why(memory_con):
    _insert(memory_con, ROWS[:4])
    with pytest.raises(DataError, match="no complete BTCUSDT 5m bars") as info:
        load_series(memory_con, "BTCUSDT", "5m", 5 * M, None, None)
    assert "all 5 1m bars" in (info.value.fix or "")


def test_load_series_resample_volume_sum_in_time_order_is_exact(memory_con):
    # 0.1 + 0.2 + 0.3 in time order is 0.6000000000000001; any other order gives 0.6
    rows = [(1.0, 1.0, 1.0, 1.0, v) for v in (0.1, 0.2, 0.3, 0.0, 0.0)]
    _insert(memory_con, rows)
    series = load_series(memory_con, "BTCUSDT", "5m", 5 * M, None, None)
    assert series.volume.tolist() == [((0.1 + 0.2) + 0.3) + 0.0 + 0.0]
    assert np.float64(series.volume[0]) == 0.6000000000000001
