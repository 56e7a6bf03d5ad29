"""Trading calendars: which bars QC and the loop expect (24x7, an exchange, a sessions file)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from workbench.calendars import calendar_for
from workbench.errors import ConfigError
from workbench.feeds.qc import BarSeries, apply_gap_policy
from workbench.model import ms_to_iso

M = 60_000
H = 60 * M
JUL_1_2024 = 1_719_792_000_000
JAN_1_2024 = 1_704_067_200_000  # Monday 2024-07-01T00:00Z; 4 July is an NYSE holiday
# NYSE sessions that week in UTC (EDT): 13:30-20:00, 3 July closes early at 17:00
SESSIONS = [(0, 13.5, 20.0), (1, 13.5, 20.0), (2, 13.5, 17.0), (4, 13.5, 20.0)]


def nyse_minutes(skip: tuple[int, ...] = ()) -> np.ndarray:
    """Every 1m bar open of the NYSE sessions of 1-5 July 2024, less the indices ``skip``."""
    ts = np.concatenate([np.arange(JUL_1_2024 + day * 24 * H + int(o * H),
                                   JUL_1_2024 + day * 24 * H + int(c * H), M)
                         for day, o, c in SESSIONS])
    return np.delete(ts, list(skip))


def bars(ts: np.ndarray, tf: int = M) -> BarSeries:
    n = len(ts)
    close = 100.0 + np.arange(n) * 0.01
    return BarSeries("SPY", tf, ts.astype(np.int64), close, close + 0.5, close - 0.5, close,
                     np.full(n, 10.0), rows=np.arange(2, n + 2))


def sessions_csv(tmp_path: Path, rows: list[str], header: str = "open,close") -> Path:
    path = tmp_path / "sessions.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_calendar_for_24x7_is_no_calendar() -> None:
    assert calendar_for("24x7") is None and calendar_for(None) is None


def test_calendar_xnys_bar_opens_skip_the_holiday_and_end_early_before_it() -> None:
    cal = calendar_for("XNYS")
    assert cal is not None
    opens = cal.bar_opens(JUL_1_2024, JUL_1_2024 + 6 * 24 * H, M)
    per_day = Counter(ms_to_iso(int(t))[:10] for t in opens)
    assert per_day == {"2024-07-01": 390, "2024-07-02": 390, "2024-07-03": 210,
                       "2024-07-05": 390}
    assert ms_to_iso(int(opens[0])) == "2024-07-01T13:30:00.000Z"
    assert np.array_equal(opens, nyse_minutes())


def test_calendar_hourly_bars_are_expected_when_any_minute_of_them_trades() -> None:
    cal = calendar_for("XNYS")
    assert cal is not None
    opens = cal.bar_opens(JUL_1_2024, JUL_1_2024 + 24 * H - 1, H)
    # 13:00 holds the 13:30 open; 19:00 the last half hour's minutes
    assert [ms_to_iso(int(t))[11:16] for t in opens] == [
        "13:00", "14:00", "15:00", "16:00", "17:00", "18:00", "19:00"]


def test_qc_with_the_exchange_calendar_finds_no_gap_over_nights_weekend_and_holiday() -> None:
    s = bars(nyse_minutes())
    plain = apply_gap_policy(s, "fail")
    assert plain.gaps and len(plain.gaps) == 3  # 24x7: each night and the holiday are gaps
    report = apply_gap_policy(s, "fail", calendar=calendar_for("XNYS"))
    assert report.findings == [] and len(report.series) == len(s)


def test_qc_with_the_exchange_calendar_names_a_missing_minute_inside_a_session() -> None:
    s = bars(nyse_minutes(skip=(100, 101)))
    report = apply_gap_policy(s, "fail", calendar=calendar_for("XNYS"))
    [gap] = report.findings
    assert (gap.rule, gap.severity, gap.data["missing_bars"]) == ("gap", "error", 2)
    assert gap.data["from"] == "2024-07-01T15:10:00.000Z"
    assert gap.data["to"] == "2024-07-01T15:11:00.000Z"


def test_qc_forward_under_a_calendar_fills_only_the_missing_session_bars() -> None:
    s = bars(nyse_minutes(skip=(100, 101, 500)))
    report = apply_gap_policy(s, "forward", calendar=calendar_for("XNYS"))
    out = report.series
    assert np.array_equal(out.ts, nyse_minutes())  # nights and the holiday stay empty
    filled = np.flatnonzero(out.filled_mask)
    assert filled.tolist() == [100, 101, 500]
    assert out.close[100] == out.close[99] and out.volume[100] == 0.0
    assert out.source is None and out.rows is not None and out.rows[100] == 0


def test_qc_bar_outside_the_sessions_is_an_off_session_warning_and_kept() -> None:
    pre_market = JUL_1_2024 + 13 * H  # 09:00 in New York
    s = bars(np.concatenate([[pre_market], nyse_minutes()]))
    report = apply_gap_policy(s, "fail", calendar=calendar_for("XNYS"))
    [off] = report.findings
    assert (off.rule, off.severity, off.action, off.row) == ("off_session", "warning", "kept", 2)
    assert "outside the sessions of calendar XNYS" in off.detail
    assert len(report.series) == len(s)


def test_calendar_file_of_sessions_sets_the_expected_bars(tmp_path: Path) -> None:
    path = sessions_csv(tmp_path, ["2024-07-01T13:30:00Z,2024-07-01T13:35:00Z",
                                   "2024-07-01T14:00:00+00:00,2024-07-01T14:02:00+00:00"])
    cal = calendar_for(str(path))
    assert cal is not None
    opens = cal.bar_opens(JUL_1_2024, JUL_1_2024 + 24 * H, M)
    assert [ms_to_iso(int(t))[11:16] for t in opens] == [
        "13:30", "13:31", "13:32", "13:33", "13:34", "14:00", "14:01"]


@pytest.mark.parametrize("rows, header, message", [
    (["2024-07-01T13:30:00Z,2024-07-01T13:00:00Z"], "open,close", "row 2: a session must close"),
    (["2024-07-01T13:30:00,2024-07-01T14:00:00"], "open,close", "row 2: "),
    (["2024-07-01T13:30:00Z,2024-07-01T14:00:00Z", "2024-07-01T13:45:00Z,2024-07-01T15:00:00Z"],
     "open,close", "row 3: the session opening 2024-07-01T13:45"),
    ([], "open,close", "lists no session"),
    (["x,y"], "start,end", "no 'open' and 'close' columns"),
])
def test_calendar_file_malformed_is_refused_naming_the_row(tmp_path: Path, rows: list[str],
                                                            header: str, message: str) -> None:
    path = sessions_csv(tmp_path, rows, header)
    with pytest.raises(ConfigError, match=message) as err:
        calendar_for(str(path))
    assert err.value.where == f"data.calendar {str(path)!r}"


def test_calendar_unknown_exchange_code_or_missing_file_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'XQQQ' is not an exchange calendar") as err:
        calendar_for("XQQQ")
    assert err.value.fix and "XNYS" in err.value.fix
    with pytest.raises(ConfigError, match="does not exist"):
        calendar_for("no/such/sessions.csv")


def write_nyse_csv(path: Path, skip: tuple[int, ...] = ()) -> Path:
    ts = nyse_minutes(skip)
    lines = ["ts,open,high,low,close,volume"]
    for i, t in enumerate(ts.tolist()):
        price = 500.0 + (i % 50) * 0.1 - (i % 7) * 0.05
        lines.append(f"{t},{price},{price + 0.2},{price - 0.2},{price + 0.05},{100 + i % 13}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ingest_and_backtest_under_the_exchange_calendar_expect_no_closed_hours(
        cli: object, tmp_path: Path, warehouse: Path) -> None:
    source = write_nyse_csv(tmp_path / "spy.csv")
    refused = cli("ingest", str(source), "--symbol", "SPY")  # type: ignore[operator]
    assert refused.code != 0 and "gap" in refused.err
    done = cli("ingest", str(source), "--symbol", "SPY",  # type: ignore[operator]
               "--calendar", "XNYS")
    assert done.code == 0, done.err
    config = tmp_path / "spy.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"symbols": ["SPY"], "timeframe": "1m", "gaps": "fail", "calendar": "XNYS"},
        "strategy": {"class": "workbench.strategies.sma_cross:SmaCross",
                     "params": {"fast": 5, "slow": 20, "qty": 1.0}},
        "portfolio": {"initial_cash": 100_000.0, "quote": "USD"}}))
    out = tmp_path / "run"
    result = cli("backtest", "--config", str(config), "--out", str(out))  # type: ignore[operator]
    assert result.code == 0, result.err
    manifest = yaml.safe_load((out / "run_manifest.json").read_text())
    assert manifest["qc"]["gaps"] == 0 and manifest["bars"] == len(nyse_minutes())
    assert manifest["config"]["data"]["calendar"] == "XNYS"
    assert manifest["calendar"]["name"] == "XNYS" and manifest["calendar"]["exchange_calendars"]
    from workbench.warehouse.connect import reading

    with reading(warehouse) as con:  # Sharpe is annualised with the calendar's year of bars
        [(per_year, sharpe)] = con.sql(
            "select r.bars_per_year, p.sharpe from runs r join rpt.performance p using (run_id)"
            " where r.run_id = ?", params=[manifest["run_id"]]).fetchall()
    assert 97_000 < per_year < 99_000  # about 251 sessions of 390 minutes, not 525,600
    assert sharpe == pytest.approx(manifest["metrics"]["sharpe"])
    without = cli("backtest", "--config", str(config), "--out",  # type: ignore[operator]
                  str(tmp_path / "run2"), "--set", "data.calendar=24x7")
    assert without.code != 0 and "gaps" in without.err


def test_config_unknown_calendar_is_refused_naming_the_key(cli: object, tmp_path: Path,
                                                           warehouse: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"data": {"calendar": "XQQQ"}}))
    result = cli("backtest", "--config", str(config))  # type: ignore[operator]
    assert result.code == 2 and "calendar" in result.err and "XQQQ" in result.err


def test_calendar_daily_bars_one_per_session_and_the_last_one_is_expected() -> None:
    cal = calendar_for("XNYS")
    assert cal is not None
    days = cal.bar_opens(JUL_1_2024, JUL_1_2024 + 4 * 24 * H, 24 * H)  # to 5 July 00:00
    assert [ms_to_iso(int(t))[:10] for t in days] == [
        "2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05"]
    hours = cal.bar_opens(JUL_1_2024, JUL_1_2024 + 13 * H, H)  # ends at the 13:00 bar
    assert [ms_to_iso(int(t))[11:16] for t in hours] == ["13:00"]


def test_calendar_daily_bars_of_a_session_opening_the_evening_before_are_its_day() -> None:
    cal = calendar_for("XASX")  # Sydney in summer (AEDT): 10:00 is 23:00 UTC the day before
    assert cal is not None
    days = cal.bar_opens(JAN_1_2024, JAN_1_2024 + 6 * 24 * H, 24 * H)
    # 1 January is a holiday: its evening's session is 2 January's; no Sunday, no Monday bar
    assert [ms_to_iso(int(t))[:10] for t in days] == [
        "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]


def _warehouse_with(con: Any, symbol: str, ts: np.ndarray) -> None:
    import pyarrow as pa

    from workbench.warehouse.io import insert_arrow

    n = len(ts)
    price = np.full(n, 100.0)
    insert_arrow(con, "bars", pa.table({
        "symbol": [symbol] * n, "timeframe": ["1m"] * n,
        "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")), "open": price, "high": price + 1,
        "low": price - 1, "close": price, "volume": np.ones(n), "source": ["t"] * n}))


def test_resampled_hours_under_the_calendar_keep_the_half_hour_of_the_open() -> None:
    from workbench.feeds.history import check_series, load_series
    from workbench.warehouse.connect import open_memory

    con = open_memory()
    try:
        _warehouse_with(con, "SPY", nyse_minutes())
        cal = calendar_for("XNYS")
        hours = load_series(con, "SPY", "1h", H, None, None, cal)
        report = check_series(hours, "fail", cal)
        daily = load_series(con, "SPY", "1d", 24 * H, None, None, cal)
        plain = load_series(con, "SPY", "1h", H, None, None)
        holed = _without_minute(con)
    finally:
        con.close()
    assert report.findings == [] and len(hours) == 7 + 7 + 4 + 7  # 3 July closes at 17:00
    assert ms_to_iso(int(hours.ts[0])) == "2024-07-01T13:00:00.000Z"
    assert hours.volume[0] == 30.0  # the 13:30-13:59 minutes
    assert [ms_to_iso(int(t))[:10] for t in daily.ts] == [
        "2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05"]
    assert len(plain) == 7 + 7 + 3 + 7 - 3  # without the calendar: only full 60-minute hours
    assert holed == 24  # one hour missing a minute is left out (and is then a gap)


def _without_minute(con: Any) -> int:
    from workbench.feeds.history import load_series

    con.execute("delete from bars where symbol = 'SPY' and ts = ?",
                [datetime_of(JUL_1_2024 + 15 * H + 10 * M)])
    return len(load_series(con, "SPY", "1h", H, None, None, calendar_for("XNYS")))


def datetime_of(ms: int) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def test_resampled_daily_bars_of_sessions_crossing_midnight_utc_are_refused() -> None:
    from workbench.errors import DataError
    from workbench.feeds.history import load_series
    from workbench.warehouse.connect import open_memory

    con = open_memory()
    try:  # 2 January 2024's Sydney session: 1 January 23:00 to 2 January 05:00 UTC
        _warehouse_with(con, "BHP", np.arange(JAN_1_2024 + 23 * H, JAN_1_2024 + 29 * H, M))
        with pytest.raises(DataError, match="cross 00:00 UTC"):
            load_series(con, "BHP", "1d", 24 * H, None, None, calendar_for("XASX"))
    finally:
        con.close()
