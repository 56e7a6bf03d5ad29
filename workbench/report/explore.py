"""The exploration surface: ipywidgets over the warehouse, logic here and testable headless.

    ex = Explorer()      # pick runs, a symbol, a date range
    ex                   # in JupyterLab: the controls, the figure, the parameters table

Changing a control rebuilds the figure's data: each selected run's equity as return on its
initial cash (top) and the symbol's close with that run's fills (bottom), within the dates.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from workbench.report.data import RunReport, load_run
from workbench.report.tables import Table, compare_table
from workbench.warehouse.connect import reading


def sql(query: str, *, warehouse: str | Path | None = None, limit: int = 1_000) -> Table:
    """A read-only audit query from a notebook cell (the same guard as ``workbench sql``)."""
    from workbench.warehouse.audit import run_query

    columns, rows = run_query(query, warehouse, limit + 1)
    note = f"first {limit} rows" if len(rows) > limit else f"{len(rows)} rows"
    return Table(query if len(query) < 80 else query[:77] + "...", columns, rows[:limit], note)


def _day_ms(d: date | None, end: bool = False) -> int | None:
    if d is None:
        return None
    ms = int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)
    return ms + 86_400_000 if end else ms


class Explorer:
    """Widgets to pick runs, a symbol and dates; a FigureWidget and a parameters table."""

    def __init__(self, warehouse: str | Path | None = None, max_runs: int = 50) -> None:
        import ipywidgets as w
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        self.warehouse = warehouse
        with reading(warehouse) as con:
            rows = con.execute(
                "select run_id, name from runs where status = 'completed' "
                "order by started_at desc limit ?", [max_runs]).fetchall()
        self._cache: dict[str, RunReport] = {}
        self._quiet = False
        options = [(f"{name} {run_id}", run_id) for run_id, name in rows]
        self.runs = w.SelectMultiple(options=options, value=tuple(r for _, r in options[:1]),
                                     description="runs", rows=min(8, max(2, len(options))))
        self.symbol = w.Dropdown(description="symbol")
        self.start = w.DatePicker(description="from")
        self.end = w.DatePicker(description="to")
        self.sql_box = w.Textarea(placeholder="select * from rpt.performance", rows=2,
                                  description="SQL")
        self.sql_button = w.Button(description="run query")
        self.sql_out = w.Output()
        self.params = w.HTML()
        self.figure = go.FigureWidget(make_subplots(rows=2, cols=1, shared_xaxes=True,
                                                    row_heights=[0.6, 0.4],
                                                    vertical_spacing=0.05))
        self.figure.update_layout(height=560, title="Equity (return on initial cash %) and price")
        self.runs.observe(self._on_runs, names="value")
        for control in (self.symbol, self.start, self.end):
            control.observe(lambda _change: self.refresh(), names="value")
        self.sql_button.on_click(lambda _b: self._run_sql())
        self._on_runs(None)

    # --- state --------------------------------------------------------------------------------
    def report(self, run_id: str) -> RunReport:
        if run_id not in self._cache:
            self._cache[run_id] = load_run(run_id, warehouse=self.warehouse)
        return self._cache[run_id]

    @property
    def selected(self) -> list[RunReport]:
        return [self.report(r) for r in self.runs.value]

    def _on_runs(self, _change: Any) -> None:
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
            shown = next((r for r in self.selected if symbol in r.candles), None)
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
        self.params.value = compare_table(self.selected)._repr_html_() if self.selected else ""

    def _run_sql(self) -> None:
        from IPython.display import display

        from workbench.errors import WorkbenchError

        self.sql_out.clear_output()
        with self.sql_out:
            try:
                display(sql(self.sql_box.value, warehouse=self.warehouse))
            except WorkbenchError as exc:
                print(f"error: {exc.render()}")

    # --- display ------------------------------------------------------------------------------
    @property
    def widget(self) -> Any:
        import ipywidgets as w

        controls = w.HBox([self.runs, w.VBox([self.symbol, self.start, self.end])])
        query = w.VBox([w.HBox([self.sql_box, self.sql_button]), self.sql_out])
        return w.VBox([controls, self.figure, self.params, query])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
