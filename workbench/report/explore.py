"""The exploration surface: ipywidgets over the warehouse, logic here and testable headless.

    ex = Explorer()      # pick runs, a symbol, a date range
    ex                   # in JupyterLab: the controls, the figure, the parameters table

Changing a control rebuilds the figure's data: each selected run's equity as return on its
initial cash (top) and the symbol's close with that run's fills (bottom), within the dates. The
figure has no fixed width: it fills the notebook cell.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from workbench.report.data import RunReport, load_run
from workbench.report.project import warehouse_path
from workbench.report.tables import Table, compare_table
from workbench.warehouse.connect import reading


def sql(query: str, *, warehouse: str | Path | None = None, limit: int = 1_000) -> Table:
    """A read-only audit query from a notebook cell (the same guard as ``workbench sql``)."""
    from workbench.warehouse.audit import run_query

    columns, rows = run_query(query, warehouse_path(warehouse), limit + 1)
    note = f"first {limit} rows" if len(rows) > limit else f"{len(rows)} rows"
    return Table(query if len(query) < 80 else query[:77] + "...", columns, rows[:limit], note,
                 exact=True)


def _day_ms(d: date | None, end: bool = False) -> int | None:
    if d is None:
        return None
    ms = int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)
    return ms + 86_400_000 if end else ms


def _params(config_json: Any) -> dict[str, Any]:
    if isinstance(config_json, str):
        config_json = json.loads(config_json)
    return dict(((config_json or {}).get("strategy") or {}).get("params") or {})


def run_labels(rows: Sequence[tuple[str, str, Any]]) -> list[tuple[str, str]]:
    """(label, run_id) per (run_id, name, config_json) row: the name, the whole id and the
    strategy parameters whose values differ between the listed runs (``fast=10 slow=40``)."""
    params = {run_id: _params(cfg) for run_id, _, cfg in rows}
    keys = sorted({k for p in params.values() for k in p})
    differ = [k for k in keys
              if len({json.dumps(p.get(k), sort_keys=True, default=str)
                      for p in params.values()}) > 1]
    labels = []
    for run_id, name, _ in rows:
        shown = " ".join(f"{k}={params[run_id].get(k)}" for k in differ)
        labels.append((" · ".join(part for part in (name, run_id, shown) if part), run_id))
    return labels


class Explorer:
    """Widgets to pick runs, a symbol and dates; a plotly figure and a parameters table.

    The run picker lists completed runs, newest first, labelled with their name, id and the
    parameters that differ between them; ``reload runs`` picks up new runs and keeps the
    selection. A from-date after the to-date says so instead of drawing an empty axis. The SQL
    box shows "running..." (its button disabled) while a query runs."""

    def __init__(self, warehouse: str | Path | None = None, max_runs: int = 50) -> None:
        import ipywidgets as w
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        self.warehouse = warehouse_path(warehouse)
        self.max_runs = max_runs
        self._cache: dict[str, RunReport] = {}
        self._quiet = False
        wide = w.Layout(width="100%")
        self.runs = w.SelectMultiple(description="runs", layout=w.Layout(width="auto"),
                                     style={"description_width": "initial"})
        self.reload_button = w.Button(description="reload runs", icon="refresh",
                                      tooltip="list runs added since, keeping the selection")
        self.symbol = w.Dropdown(description="symbol")
        self.start = w.DatePicker(description="from")
        self.end = w.DatePicker(description="to")
        self.message = w.HTML()
        self.sql_box = w.Textarea(placeholder="select * from rpt.performance", rows=2,
                                  description="SQL", layout=w.Layout(width="80%"))
        self.sql_button = w.Button(description="run query")
        self.sql_status = w.Label()
        self.sql_out = w.Output()
        self.params = w.HTML()
        # A plain figure shown in an Output widget: JupyterLab's plotly renderer sizes it to the
        # cell (and follows resizes); a FigureWidget is drawn at plotly's 700 px default.
        self.figure = go.Figure(make_subplots(rows=2, cols=1, shared_xaxes=True,
                                              row_heights=[0.6, 0.4], vertical_spacing=0.05))
        self.figure.update_layout(height=560, autosize=True, width=None,
                                  title="Equity (return on initial cash %) and price")
        self.chart = w.Output(layout=wide)
        self.load_runs()
        self.runs.observe(self._on_runs, names="value")
        for control in (self.symbol, self.start, self.end):
            control.observe(lambda _change: self.refresh(), names="value")
        self.reload_button.on_click(lambda _b: self.reload())
        self.sql_button.on_click(lambda _b: self._run_sql())
        self._on_runs(None)

    # --- state --------------------------------------------------------------------------------
    def load_runs(self) -> None:
        """(Re)list completed runs, keeping the selected ones that are still there; the
        latest run is selected when nothing is."""
        with reading(self.warehouse) as con:
            rows = con.execute(
                "select run_id, name, config_json from runs where status = 'completed' "
                "order by started_at desc limit ?", [self.max_runs]).fetchall()
        options = run_labels(rows)
        ids = [run_id for _, run_id in options]
        keep = tuple(r for r in self.runs.value if r in ids) or tuple(ids[:1])
        self._quiet = True
        try:
            self.runs.options = options
            self.runs.rows = min(10, max(4, len(options)))
            self.runs.value = keep
        finally:
            self._quiet = False

    def reload(self) -> None:
        """The ``reload runs`` button: new runs appear, the selection stays."""
        before = self.runs.value
        self.load_runs()
        if self.runs.value != before:
            self._on_runs(None)

    def report(self, run_id: str) -> RunReport:
        if run_id not in self._cache:
            self._cache[run_id] = load_run(run_id, warehouse=self.warehouse)
        return self._cache[run_id]

    @property
    def selected(self) -> list[RunReport]:
        return [self.report(r) for r in self.runs.value]

    def _on_runs(self, _change: Any) -> None:
        if self._quiet:
            return
        symbols = sorted({s for r in self.selected for s in r.symbols})
        keep = self.symbol.value if self.symbol.value in symbols else None
        self._quiet = True  # one refresh for the whole change
        try:
            self.symbol.options = symbols
            self.symbol.value = keep or (symbols[0] if symbols else None)
        finally:
            self._quiet = False
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the figure and the table from the current selection."""
        import plotly.graph_objects as go

        if self._quiet:
            return
        if self.start.value and self.end.value and self.start.value > self.end.value:
            self.message.value = (
                f'<p class="wb-message" style="color:#c0392b">from ({self.start.value}) is '
                f"after to ({self.end.value}): nothing to show. Pick a from-date on or before "
                f"the to-date, or clear one of them.</p>")
            self.figure.data = ()
            self.chart.clear_output()  # no empty year-2000 axis
            self.chart.layout.display = "none"
            self.params.value = ""
            return
        self.message.value = ""
        self.chart.layout.display = None
        lo, hi = _day_ms(self.start.value), _day_ms(self.end.value, end=True)

        def inside(ts: int) -> bool:
            return (lo is None or ts >= lo) and (hi is None or ts < hi)

        traces = []
        for r in self.selected:
            pts = [(t, pct) for t, pct in zip(r.curve.get("ts", []), r.curve_return_pct(),
                                              strict=True) if inside(t)]
            traces.append(go.Scatter(x=[_dt(t) for t, _ in pts], y=[p for _, p in pts],
                                     mode="lines",
                                     name=f"{r.run.get('name')} {r.run_id}", xaxis="x",
                                     yaxis="y"))
        symbol = self.symbol.value
        if symbol:
            # the price of the selected run that covers the most time
            shown = max((r for r in self.selected if symbol in r.candles), default=None,
                        key=lambda r: _span(r.candles[symbol]["ts"]))
            if shown is not None:
                c = shown.candles[symbol]
                pts = [(t, v) for t, v in zip(c["ts"], c["close"], strict=True) if inside(t)]
                traces.append(go.Scatter(x=[_dt(t) for t, _ in pts], y=[v for _, v in pts],
                                         mode="lines", name=f"{symbol} close", xaxis="x2",
                                         yaxis="y2", line={"color": "#7f8c8d"}))
            for r in self.selected:
                f = r.fills.get(symbol, {})
                keep = [i for i, t in enumerate(f.get("ts", [])) if inside(t)]
                traces.append(go.Scattergl(
                    x=[_dt(f["ts"][i]) for i in keep], y=[f["price"][i] for i in keep],
                    mode="markers", name=f"fills {r.run_id}", xaxis="x2", yaxis="y2",
                    marker={"size": 6, "symbol": [
                        "triangle-up" if f["side"][i] == "BUY" else "triangle-down"
                        for i in keep]}))
        with self.figure.batch_update():
            self.figure.data = ()
            for trace in traces:
                self.figure.add_trace(trace)
        self._show_figure()
        self.params.value = compare_table(self.selected)._repr_html_() if self.selected else ""

    def _show_figure(self) -> None:
        from IPython import get_ipython

        if get_ipython() is None:  # headless (tests): the figure's data is the state
            return
        # The output is set as plotly's mime bundle, not captured through `with self.chart:
        # display(...)`: a figure displayed inside the capture kept a headless kernel's cell
        # from ending (papermill waited for its timeout), and the figure's own display hook
        # would draw it in the cell instead of the widget.
        from plotly.io import to_json

        bundle = {"application/vnd.plotly.v1+json": json.loads(to_json(
            self.figure, validate=False, remove_uids=False))}
        self.chart.outputs = ({"output_type": "display_data", "data": bundle,
                               "metadata": {}},)

    def _run_sql(self) -> None:
        from IPython.display import display

        from workbench.errors import WorkbenchError

        # the button and the label reach the browser before the query starts
        self.sql_button.disabled = True
        self.sql_status.value = "running..."
        self.sql_out.clear_output()
        try:
            with self.sql_out:
                try:
                    display(sql(self.sql_box.value, warehouse=self.warehouse))
                except WorkbenchError as exc:
                    print(f"error: {exc.render()}")
        finally:
            self.sql_button.disabled = False
            self.sql_status.value = ""

    # --- display ------------------------------------------------------------------------------
    @property
    def widget(self) -> Any:
        import ipywidgets as w

        full = w.Layout(width="100%")
        picker = w.VBox([self.runs, self.reload_button], layout=full)
        controls = w.HBox([self.symbol, self.start, self.end], layout=w.Layout(flex_flow="wrap"))
        query = w.VBox([w.HBox([self.sql_box, self.sql_button, self.sql_status]), self.sql_out],
                       layout=full)
        return w.VBox([picker, controls, self.message, self.chart, self.params, query],
                      layout=full)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def _span(ts: list[int]) -> int:
    return ts[-1] - ts[0] if ts else -1


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
