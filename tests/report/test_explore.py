"""workbench.report.explore: the Explorer's widget logic, driven headless, and the sql() helper.

Changing the runs, the symbol or the dates rebuilds ``Explorer.figure.data``: each selected
run's equity as return on its initial cash, the symbol's close, each run's fills on it, all
within the dates (``end`` inclusive). The parameters table follows the selected runs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
import report_warehouse as wh

from workbench.errors import QueryRefused
from workbench.report import Explorer, load_run, sql


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return wh.build(tmp_path_factory.mktemp("report-explore"))


@pytest.fixture
def ex(built: Any) -> Explorer:
    return Explorer(warehouse=built.db)


def _names(ex: Explorer) -> list[str]:
    return [t.name for t in ex.figure.data]


def _trace(ex: Explorer, name: str) -> Any:
    return next(t for t in ex.figure.data if t.name == name)


def _day(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


# --- initial state -------------------------------------------------------------------------------
def test_explorer_lists_completed_runs_newest_first_and_selects_the_latest(built, ex):
    assert [value for _, value in ex.runs.options] == [built.single, built.multi]
    assert ex.runs.value == (built.single,)
    assert ex.symbol.options == ("BTCUSDT",) and ex.symbol.value == "BTCUSDT"
    assert _names(ex) == [f"single {built.single}", "BTCUSDT close", f"fills {built.single}"]


def test_explorer_equity_trace_is_return_on_initial_cash_percent(built, ex):
    r = load_run(built.single, warehouse=built.db)

    y = list(_trace(ex, f"single {built.single}").y)

    cash = r.run["initial_cash"]
    assert y == pytest.approx([(e / cash - 1) * 100 for e in r.curve["equity"]])


def test_explorer_widget_holds_controls_figure_table_and_sql_box(ex):
    import ipywidgets as w

    box = ex.widget

    assert isinstance(box, w.VBox)
    assert ex.chart in box.children and ex.params in box.children
    assert ex.message in box.children


def test_explorer_figure_fills_the_cell_width(ex):
    """No fixed 700 px: a plain autosized figure (JupyterLab's plotly renderer sizes it to
    the cell) in a full-width Output, not a FigureWidget drawn at plotly's default width."""
    import plotly.graph_objects as go

    assert type(ex.figure) is go.Figure
    assert ex.figure.layout.autosize is True and ex.figure.layout.width is None
    assert ex.chart.layout.width == "100%"
    assert ex.widget.layout.width == "100%"


# --- the run picker ------------------------------------------------------------------------------
def test_explorer_picker_is_a_multi_row_full_width_select(ex):
    assert ex.runs.rows >= 4  # not one row behind a scrollbar
    assert ex.runs.layout.width == "auto"  # as wide as the explorer


def test_explorer_picker_labels_carry_name_whole_id_and_differing_parameters(built, ex):
    labels = dict((value, label) for label, value in ex.runs.options)

    assert labels[built.single] == f"single · {built.single} · fast=20 qty=0.1 slow=80"
    assert labels[built.multi] == f"multi · {built.multi} · fast=10 qty=0.01 slow=40"


def test_run_labels_leave_out_parameters_equal_in_every_run():
    from workbench.report.explore import run_labels

    rows = [("r1", "a", '{"strategy": {"params": {"fast": 10, "slow": 40}}}'),
            ("r2", "b", {"strategy": {"params": {"fast": 20, "slow": 40}}}),
            ("r3", None, {"strategy": {"params": {"slow": 40}}})]

    assert run_labels(rows) == [("a · r1 · fast=10", "r1"), ("b · r2 · fast=20", "r2"),
                                ("r3 · fast=None", "r3")]
    assert run_labels(rows[:1]) == [("a · r1", "r1")]


def test_explorer_reload_lists_new_runs_and_keeps_the_selection(built, tmp_path):
    import shutil

    from workbench.engine.run import run_backtest

    db = tmp_path / "copy.duckdb"
    shutil.copy(built.db, db)
    ex = Explorer(warehouse=db)
    ex.runs.value = (built.multi,)
    ex.symbol.value = "ETHUSDT"
    new = run_backtest(wh.SMA_DEMO, overrides=["run.name=newer"], warehouse=db,
                       out=tmp_path / "run", env={}).run_id
    assert new not in [v for _, v in ex.runs.options]  # not until reloaded

    ex.reload_button.click()

    assert ex.runs.options[0][1] == new
    assert ex.runs.value == (built.multi,) and ex.symbol.value == "ETHUSDT"
    assert _names(ex)[0] == f"multi {built.multi}"


# --- callbacks -----------------------------------------------------------------------------------
def test_explorer_selecting_another_run_replaces_figure_data_and_symbols(built, ex):
    ex.runs.value = (built.multi,)

    assert ex.symbol.options == ("BTCUSDT", "ETHUSDT")
    assert ex.symbol.value == "BTCUSDT"
    assert _names(ex) == [f"multi {built.multi}", "BTCUSDT close", f"fills {built.multi}"]
    assert built.multi in ex.params.value and built.single not in ex.params.value


def test_explorer_selecting_two_runs_overlays_both_equity_curves(built, ex):
    ex.runs.value = (built.multi, built.single)

    names = _names(ex)
    assert names[:2] == [f"multi {built.multi}", f"single {built.single}"]
    assert names.count("BTCUSDT close") == 1
    assert {f"fills {built.multi}", f"fills {built.single}"} <= set(names)
    for run_id in (built.multi, built.single):
        assert f"<td>{run_id}</td>" in ex.params.value
    assert "<th>fast</th>" in ex.params.value and "<th>total_return_pct</th>" in ex.params.value


def test_explorer_price_panel_covers_the_longest_selected_run(built, ex):
    ex.runs.value = (built.single, built.multi)  # single starts a day later

    multi = load_run(built.multi, warehouse=built.db).candles["BTCUSDT"]
    assert list(_trace(ex, "BTCUSDT close").y) == multi["close"]


def test_explorer_changing_symbol_shows_that_symbols_close_and_fills(built, ex):
    ex.runs.value = (built.multi,)
    btc_close = list(_trace(ex, "BTCUSDT close").y)

    ex.symbol.value = "ETHUSDT"

    eth = load_run(built.multi, warehouse=built.db).candles["ETHUSDT"]
    assert "BTCUSDT close" not in _names(ex)
    assert list(_trace(ex, "ETHUSDT close").y) == eth["close"] != btc_close
    assert len(_trace(ex, f"fills {built.multi}").x) == 0  # ETHUSDT orders were blocked


def test_explorer_keeps_chosen_symbol_when_runs_change_if_still_offered(built, ex):
    ex.runs.value = (built.multi,)
    ex.symbol.value = "ETHUSDT"

    ex.runs.value = (built.multi, built.single)

    assert ex.symbol.value == "ETHUSDT"


def test_explorer_start_date_drops_earlier_points(built, ex):
    ex.runs.value = (built.multi,)
    before = {t.name: len(t.x) for t in ex.figure.data}

    ex.start.value = date(2024, 1, 2)

    for trace in ex.figure.data:
        assert len(trace.x) < before[trace.name]
        assert min(trace.x) >= _day(date(2024, 1, 2))


def test_explorer_end_date_is_inclusive_and_drops_later_points(built, ex):
    ex.runs.value = (built.multi,)
    ex.start.value = date(2024, 1, 2)

    ex.end.value = date(2024, 1, 2)

    equity = _trace(ex, f"multi {built.multi}")
    assert len(equity.x) > 0
    assert all(_day(date(2024, 1, 2)) <= x < _day(date(2024, 1, 3)) for x in equity.x)
    fills = _trace(ex, f"fills {built.multi}")
    assert all(_day(date(2024, 1, 2)) <= x < _day(date(2024, 1, 3)) for x in fills.x)


def test_explorer_from_after_to_says_so_instead_of_drawing_an_empty_axis(built, ex):
    ex.runs.value = (built.multi,)
    ex.end.value = date(2024, 1, 2)

    ex.start.value = date(2024, 1, 3)

    assert "from (2024-01-03) is after to (2024-01-02)" in ex.message.value
    assert ex.figure.data == () and ex.chart.layout.display == "none"
    assert ex.params.value == ""

    ex.start.value = date(2024, 1, 1)

    assert ex.message.value == "" and ex.chart.layout.display is None
    assert len(_trace(ex, f"multi {built.multi}").x) > 0


def test_explorer_no_run_selected_leaves_empty_figure_and_table(ex):
    ex.runs.value = ()

    assert ex.figure.data == ()
    assert ex.symbol.options == () and ex.symbol.value is None
    assert ex.params.value == ""


def test_explorer_failed_run_is_not_offered(built, ex):
    assert built.failed not in [value for _, value in ex.runs.options]


def test_explorer_sql_box_shows_running_state_while_the_query_runs(built, ex, monkeypatch):
    import workbench.report.explore as explore

    seen = []

    def slow_sql(query: str, **kwargs: Any) -> Any:
        seen.append((ex.sql_button.disabled, ex.sql_status.value))
        return sql(query, **kwargs)

    monkeypatch.setattr(explore, "sql", slow_sql)
    ex.sql_box.value = "select count(*) as n from runs"

    ex.sql_button.click()

    assert seen == [(True, "running...")]
    assert ex.sql_button.disabled is False and ex.sql_status.value == ""


def test_explorer_sql_box_error_also_ends_the_running_state(ex, capsys):
    ex.sql_box.value = "delete from runs"

    ex.sql_button.click()

    assert ex.sql_button.disabled is False and ex.sql_status.value == ""
    assert "error: refused: DELETE is not a read" in capsys.readouterr().out


# --- sql() ---------------------------------------------------------------------------------------
def test_sql_read_query_returns_table_of_rows(built):
    t = sql("select run_id, status from runs order by started_at", warehouse=built.db)

    assert list(t.columns) == ["run_id", "status"]
    assert [tuple(r) for r in t.rows] == [(built.multi, "completed"),
                                          (built.single, "completed"),
                                          (built.failed, "failed")]
    assert t.note == "3 rows" and t.exact  # the SQL box shows stored values unrounded


def test_sql_more_rows_than_limit_keeps_limit_and_says_so(built):
    t = sql("select * from bars", warehouse=built.db, limit=5)

    assert len(t.rows) == 5 and t.note == "first 5 rows"


@pytest.mark.parametrize("query", ["delete from runs", "drop table runs",
                                   "select 1; delete from runs"])
def test_sql_write_statement_refused_and_warehouse_unchanged(built, query):
    with pytest.raises(QueryRefused):
        sql(query, warehouse=built.db)

    assert wh.query(built.db, "select count(*) from runs") == [(3,)]


def test_sql_cannot_read_files_outside_the_warehouse(built, tmp_path):
    from workbench.errors import WorkbenchError

    outside = tmp_path / "secret.csv"
    outside.write_text("a\n1\n", encoding="utf-8")

    with pytest.raises(WorkbenchError, match=r"(?i)disabled|permission") as refused:
        sql(f"select * from read_csv('{outside}')", warehouse=built.db)
    assert "reads the warehouse only" in (refused.value.fix or "")


def test_explorer_in_a_kernel_sets_the_chart_as_plotly_data_without_capturing_display(
        ex, monkeypatch):
    """In a kernel the chart is the figure's mime bundle set on the Output widget: displaying
    the figure inside `with chart:` kept a headless kernel's cell from ending (papermill waited
    its whole timeout) and drew the figure in the cell instead of the widget."""
    import IPython.display

    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    shown: list[Any] = []
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: shown.append(a))
    ex._show_figure()
    assert shown == []  # nothing displayed into the cell
    (output,) = ex.chart.outputs
    assert output["output_type"] == "display_data"
    data = output["data"]["application/vnd.plotly.v1+json"]
    assert [t.get("name") for t in data["data"]] == [t.name for t in ex.figure.data]
