"""Report tables (small HTML objects) and plotly figures, built from RunReport objects.

Tables round numbers for display (two decimals from 1 up, four significant digits below; the
stored value on hover), page long tables and show CAGR as n/a for runs under 90 days; figures show
equity and drawdown, candles with fills and round trips, return distributions and a heatmap
(monthly for runs of two months or more, else by week and weekday). ``setup()`` makes figures
render offline.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
import report_warehouse as wh

import workbench.report as wr
from workbench.report.data import TRENDS, VOLS, RunReport
from workbench.report.tables import Table
from workbench.warehouse import views


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return wh.build(tmp_path_factory.mktemp("report-tables"))


@pytest.fixture(scope="module")
def multi(built: Any) -> RunReport:
    return wr.load_run(built.multi, warehouse=built.db)


@pytest.fixture(scope="module")
def single(built: Any) -> RunReport:
    return wr.load_run(built.single, warehouse=built.db)


@pytest.fixture(scope="module")
def failed(built: Any) -> RunReport:
    return wr.load_run(built.failed, warehouse=built.db)


def _cells(table: Table) -> dict[str, Any]:
    """A two-column (field, value) table as a dict."""
    return {row[0]: row[1] for row in table.rows}


# --- Table ---------------------------------------------------------------------------------------
def test_table_html_escapes_titles_headers_and_cells():
    t = Table("<b>title</b>", ["a&b"], [["<script>alert(1)</script>"]], note="<i>n</i>")

    html = t._repr_html_()

    assert "<script>" not in html and "<b>" not in html and "<i>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<th>a&amp;b</th>" in html
    assert '<p class="wb-note">&lt;i&gt;n&lt;/i&gt;</p>' in html


def test_table_float_cell_rounded_for_display_with_exact_value_on_hover():
    html = Table("t", ["x", "y", "n"], [[0.1 + 0.2, 2.5, 3]])._repr_html_()

    assert '<td title="0.30000000000000004">0.3</td>' in html
    assert '<td title="2.5">2.50</td>' in html
    assert "<td>3</td>" in html  # integers as they are


@pytest.mark.parametrize(("value", "shown"), [
    (42_123.456789, "42,123.46"), (-3.14159, "-3.14"), (1.0, "1.00"), (0.0, "0.00"),
    (0.123456, "0.1235"), (0.01, "0.01"), (0.000012345678, "0.00001235"), (-0.5, "-0.5"),
    (1e-15, "1e-15"), (float("nan"), "nan"), (float("inf"), "inf"), (1e20, "1e+20")])
def test_round_for_display(value, shown):
    from workbench.report.tables import round_for_display

    assert round_for_display(value) == shown


def test_table_exact_shows_floats_as_stored():
    t = Table("t", ["x"], [[0.1 + 0.2]], exact=True)

    assert "<td>0.30000000000000004</td>" in t._repr_html_()


def test_table_paged_shows_first_page_and_the_rest_behind_one_click_each():
    rows = [[i, float(i)] for i in range(1, 121)]
    t = Table("t", ["i", "v"], rows, page_rows=50)

    html = t._repr_html_()

    assert t.pages == [(1, 50), (51, 100), (101, 120)]
    assert '<p class="wb-pages">showing rows 1-50 of 120; open the pages below' in html
    assert html.count("<details") == 2
    assert "<summary>rows 51-100 of 120</summary>" in html
    assert "<summary>rows 101-120 of 120</summary>" in html
    first = html[:html.index("<details")]
    assert "<td>50</td>" in first and "<td>51</td>" not in first
    assert all(f"<td>{i}</td>" in html for i in range(1, 121))  # every row, once
    assert "<script" not in html  # no script: works in JupyterLab and offline HTML alike
    assert repr(t).splitlines()[-1] == "showing rows 1-50 of 120"


def test_table_one_page_has_no_pager():
    html = Table("t", ["i"], [[1], [2]], page_rows=50)._repr_html_()

    assert "<details" not in html and "wb-pages" not in html


def test_table_time_column_ms_shown_as_iso_utc_and_none_as_empty():
    t = Table("t", ["ts", "n"], [[wh.JAN_2024_MS, None]], time_columns=frozenset({"ts"}))

    assert "<td>2024-01-01T00:00:00.000Z</td><td></td>" in t._repr_html_()
    assert repr(t).splitlines()[-1] == "2024-01-01T00:00:00.000Z | "


def test_table_dict_cell_shown_as_sorted_json():
    t = Table("t", ["v"], [[{"b": 1, "a": [2]}]])

    assert '{"a": [2], "b": 1}' in repr(t)


# --- tables of a run -----------------------------------------------------------------------------
def test_headline_table_lists_rpt_performance_values_of_the_run(multi):
    t = wr.headline_table(multi)
    cells = _cells(t)

    assert multi.run_id in t.title and t.note.startswith("from rpt.performance; rounded")
    assert cells["period"] == "2024-01-01T00:00:00.000Z .. 2024-01-03T23:59:00.000Z"
    assert cells["total return %"] == multi.headline["total_return_pct"]
    assert cells["final equity (USDT)"] == multi.headline["final_equity"]
    assert cells["trades"] == multi.headline["trades"]
    assert cells["blocked by risk"] == multi.headline["blocked_orders"] > 0
    assert '<div class="wb-table"><h4>Headline: multi' in t._repr_html_()


def test_headline_table_cagr_is_na_for_a_run_under_90_days(multi):
    cells = _cells(wr.headline_table(multi))  # three days

    assert multi.headline["cagr_pct"] is not None  # the view keeps it
    assert cells["CAGR %"] == "n/a (run of 3 days; CAGR needs 90+)"


def test_headline_table_cagr_shown_for_a_run_of_90_days_or_more(multi):
    first = multi.headline["first_ts"]
    long = dataclasses.replace(multi, headline={
        **multi.headline, "last_ts": first + timedelta(days=90, minutes=-1)})

    assert wr.tables.run_days(long) == pytest.approx(90)
    assert _cells(wr.headline_table(long))["CAGR %"] == multi.headline["cagr_pct"]


def test_trades_table_pages_fifty_rows_at_a_time(multi):
    trip = multi.trips[0]
    many = dataclasses.replace(multi, trips=[trip] * 137, trips_total=137)

    t = wr.trades_table(many)

    assert t.page_rows == 50 and t.pages == [(1, 50), (51, 100), (101, 137)]
    assert "showing rows 1-50 of 137" in t._repr_html_()


def test_headline_table_failed_run_shows_status_and_error(failed):
    t = wr.headline_table(failed)

    assert list(t.columns) == ["status", "error"]
    assert t.rows[0][0] == "failed" and "no BTCUSDT 1m bars" in t.rows[0][1]
    assert "did not complete" in t.note


def test_trades_table_has_every_round_trip_with_iso_times(multi):
    t = wr.trades_table(multi)

    assert len(t.rows) == multi.trips_total > 0
    assert t.note == "from rpt.round_trips"
    html = t._repr_html_()
    assert re.search(r"<td>2024-01-0\dT\d\d:\d\d:00\.000Z</td>", html)


def test_trades_table_more_trips_than_shown_says_where_the_rest_is(multi):
    t = wr.trades_table(dataclasses.replace(multi, trips_total=multi.trips_total + 1_000))

    assert t.note.startswith(f"first {len(multi.trips)} of {multi.trips_total + 1_000}")
    assert "rpt.round_trips" in t.note


def test_trades_table_failed_run_says_no_round_trip(failed):
    t = wr.trades_table(failed)

    assert t.rows == [] and t.note == "no round trip closed in this run"


def test_fees_table_has_fees_per_traded_symbol_and_exposure(multi):
    t = wr.fees_table(multi)

    assert [r[0] for r in t.rows] == ["BTCUSDT"]  # ETHUSDT orders were all blocked
    assert t.rows[0][1] == pytest.approx(multi.headline["fees_quote"])
    assert "exposure" in t.note and "USDT" in t.note


def test_costs_table_splits_the_pnl_and_its_costs_add_up(multi):
    t = wr.costs_table(multi)

    values = {row[0]: row[1] for row in t.rows}
    assert values["fees"] == pytest.approx(multi.headline["fees_quote"])
    assert values["gross P&L (had trading been free)"] == pytest.approx(
        values["net P&L"] + values["total costs"])
    assert values["total costs"] == pytest.approx(
        sum(values[k] for k in ("fees", "half spread", "slippage", "market impact",
                                "funding and borrow")))
    assert values["slippage"] > 0  # the test runs pay 5 bps on market fills
    assert t.columns[1] == "USDT" and "fills" in t.note


def test_qc_table_shows_findings_and_gap_policy(multi, single):
    with_gap, clean = wr.qc_table(multi), wr.qc_table(single)

    assert with_gap.rows == [["gap", "warning", "filled", 1]]
    assert with_gap.note.startswith("gap policy: forward.")
    assert "10 missing bars from 2024-01-01T16:40:00.000Z" in with_gap.note
    assert clean.rows == []
    assert clean.note == "gap policy: fail. No findings on the bars this run read."


def test_risk_table_shows_blocks_when_present(multi, single):
    blocked, clear = wr.risk_table(multi), wr.risk_table(single)

    assert [r[:3] for r in blocked.rows] == [
        ["allowed_symbols", "RISK_SYMBOL_NOT_ALLOWED", multi.headline["blocked_orders"]]]
    assert blocked.note == "from rpt.risk_blocks"
    assert clear.rows == [] and clear.note == "no order was blocked by risk"


def test_risk_table_counts_daily_loss_stops(single):
    stops = [{"ts": wh.JAN_2024_MS, "symbol": "BTCUSDT", "detail": "stop"}] * 2

    t = wr.risk_table(dataclasses.replace(single, risk_stops=stops))

    assert "daily-loss stops: 2" in t.note


def test_manifest_table_has_hashes_git_sha_and_view_versions(built, multi):
    row = wh.query(built.db, "select config_hash, data_hash, git_sha from runs where run_id = ?",
                   [built.multi])[0]

    cells = _cells(wr.manifest_table(multi))

    assert cells["run id"] == multi.run_id and cells["status"] == "completed"
    assert (cells["config hash"], cells["data hash"], cells["git SHA"]) == row
    assert all(row)
    assert cells["symbols / timeframe"] == "BTCUSDT, ETHUSDT / 1m"
    assert cells["gap policy"] == "forward"
    assert cells["execution"] == "latency INSTANT, no participation cap"
    performance = f"rpt.performance v{views.versions(views.check())['rpt.performance']['version']}"
    assert performance in cells["view versions (run)"]
    assert performance in cells["view versions (this report)"]
    assert '"fast": 10' in cells["strategy"]


def test_compare_table_puts_each_runs_parameters_against_its_metrics(multi, single):
    t = wr.compare_table([multi, single])

    cols = list(t.columns)
    assert cols[:5] == ["run", "name", "fast", "qty", "slow"]
    rows = {r[0]: dict(zip(cols, r, strict=True)) for r in t.rows}
    assert rows[multi.run_id]["fast"] == 10 and rows[single.run_id]["fast"] == 20
    assert rows[single.run_id]["total_return_pct"] == single.headline["total_return_pct"]
    assert rows[multi.run_id]["block_rate_pct"] == multi.headline["block_rate_pct"]


# --- figures -------------------------------------------------------------------------------------
def test_equity_figure_has_equity_and_drawdown_of_every_curve_point(built):
    r = wr.load_run(built.single, warehouse=built.db, max_points=10_000)  # not downsampled

    fig = wr.equity_figure(r)

    assert [t.name for t in fig.data] == ["equity", "drawdown %"]
    assert list(fig.data[0].y) == r.curve["equity"]
    assert list(fig.data[1].y) == r.curve["drawdown_pct"]
    assert len(fig.data[0].x) == 2_880
    assert "point per" not in fig.layout.title.text


def test_equity_figure_downsampled_curve_says_so_in_title(built):
    r = wr.load_run(built.multi, warehouse=built.db, max_points=100)

    fig = wr.equity_figure(r)

    per = r.curve["bars_per_point"][0]
    assert len(fig.data[0].x) == len(r.curve["ts"]) <= 100
    assert f"1 point per {per} bars; worst drawdown kept" in fig.layout.title.text


def test_candles_figure_has_candles_buy_and_sell_markers_and_round_trips(multi):
    fig = wr.candles_figure(multi, "BTCUSDT")

    kinds = [(t.type, t.name) for t in fig.data]
    assert kinds == [("candlestick", "BTCUSDT"), ("scattergl", "buy"), ("scattergl", "sell"),
                     ("scattergl", "round trips")]
    sides = multi.fills["BTCUSDT"]["side"]
    assert len(fig.data[1].x) == sides.count("BUY") and len(fig.data[2].x) == sides.count("SELL")
    trips = [t for t in multi.trips if t["symbol"] == "BTCUSDT"]
    assert len(fig.data[3].x) == 3 * len(trips)  # entry, exit, gap per trip
    assert len(fig.data[0].x) == len(multi.candles["BTCUSDT"]["ts"])
    assert fig.layout.title.text.startswith("BTCUSDT: 3-minute candles")


def test_candles_figure_symbol_without_fills_has_candles_only(multi):
    fig = wr.candles_figure(multi, "ETHUSDT")

    assert [t.type for t in fig.data] == ["candlestick"]


def test_candles_figure_without_symbol_shows_the_runs_first_symbol(multi):
    assert wr.candles_figure(multi).data[0].name == "BTCUSDT"


def test_candles_figure_title_states_width_of_resampled_candles(built):
    r = wr.load_run(built.multi, warehouse=built.db, max_candles=48)  # 90-minute candles

    title = wr.candles_figure(r, "BTCUSDT").layout.title.text

    assert title.startswith("BTCUSDT: 90-minute candles"), title


def test_returns_figure_has_daily_and_round_trip_histograms(multi):
    fig = wr.returns_figure(multi)

    cash = multi.run["initial_cash"]
    eq = multi.daily["equity"]
    expected = [(e / p - 1) * 100 for p, e in zip([cash, *eq[:-1]], eq, strict=True)]
    assert [t.type for t in fig.data] == ["histogram", "histogram"]
    assert list(fig.data[0].x) == pytest.approx(expected)
    assert list(fig.data[1].x) == multi.trade_returns


def test_heatmap_figure_short_run_shows_daily_returns_by_week_and_weekday(multi):
    fig = wr.heatmap_figure(multi)

    (heat,) = fig.data
    assert "by week and weekday" in fig.layout.title.text
    assert list(heat.y) == ["2024-W01"]  # Mon 1 .. Wed 3 January 2024
    row = list(heat.z[0])
    assert row[3:] == [None, None, None, None]
    cash, eq = multi.run["initial_cash"], multi.daily["equity"]
    assert row[0] == pytest.approx((eq[0] / cash - 1) * 100)
    assert row[2] == pytest.approx((eq[2] / eq[1] - 1) * 100)


def test_heatmap_figure_run_of_two_months_or_more_shows_monthly_returns(single):
    days = [date(2023, 12, 1) + timedelta(days=i) for i in range(91)]  # to 2024-02-29
    month_end = {"2023-12": 11_000.0, "2024-01": 9_900.0, "2024-02": 9_900.0}
    r = dataclasses.replace(single, daily={
        "day": [d.isoformat() for d in days],
        "equity": [month_end[d.isoformat()[:7]] for d in days]})

    fig = wr.heatmap_figure(r)

    (heat,) = fig.data
    assert fig.layout.title.text == "Monthly returns %"
    assert list(heat.y) == ["2023", "2024"]
    z = [list(row) for row in heat.z]
    assert z[0][:11] == [None] * 11 and z[0][11] == pytest.approx(10.0)
    assert z[1][0] == pytest.approx(-10.0) and z[1][1] == pytest.approx(0.0)
    assert z[1][2:] == [None] * 10


def test_compare_equity_figure_has_one_curve_per_completed_run(multi, single, failed):
    fig = wr.compare_equity_figure([multi, single, failed])

    assert [t.name for t in fig.data] == [f"multi {multi.run_id}", f"single {single.run_id}"]
    cash = single.run["initial_cash"]
    assert fig.data[1].y[-1] == pytest.approx((single.curve["equity"][-1] / cash - 1) * 100)


FIGURES: list[Any] = [
    wr.equity_figure,
    wr.candles_figure,
    wr.returns_figure,
    wr.heatmap_figure,
]


@pytest.mark.parametrize("figure", FIGURES)
def test_figure_failed_run_renders_without_raising(failed, figure: Callable[[RunReport], Any]):
    fig = figure(failed)

    assert fig.to_dict()["layout"]


# --- offline rendering ---------------------------------------------------------------------------
def test_setup_makes_offline_renderer_default_without_remote_scripts():
    import plotly.graph_objects as go
    import plotly.io as pio

    from workbench.report import offline

    before = pio.renderers.default
    try:
        wr.setup()
        assert pio.renderers.default == offline.RENDERER
        bundle = pio.renderers["workbench_offline"].to_mimebundle(
            go.Figure(go.Scatter(x=[1, 2], y=[3, 4])).to_dict())
    finally:
        pio.renderers.default = before
    html = bundle["text/html"]
    assert "Plotly.newPlot" in html
    assert not re.search(r'<script[^>]+src="https?://', html)


def test_regime_table_rows_add_up_to_the_runs_bars_and_trades(multi):
    t = wr.regime_table(multi)

    assert t.title == "Performance by regime" and t.columns[:3] == ["symbol", "trend",
                                                                    "volatility"]
    btc = [row for row in t.rows if row[0] == "BTCUSDT"]
    assert sum(row[3] for row in btc) == multi.headline["bars"]
    assert sum(row[7] for row in btc) == multi.headline["trades"]  # all trades are BTCUSDT
    order = [(TRENDS.index(row[1]), VOLS.index(row[2])) for row in btc]
    assert order == sorted(order) and btc[-1][1:3] == ["warmup", "warmup"]
    assert "whole run" in t.note


def test_regime_table_without_the_view_says_so(multi):
    t = wr.regime_table(dataclasses.replace(multi, regimes=[]))

    assert t.rows == [] and "no regime breakdown" in t.note
