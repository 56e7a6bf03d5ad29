"""What ``notebooks/walkforward.ipynb`` shows: one walk-forward analysis from
``rpt.walkforward`` (read-only, one pass), its test runs' equity stitched into one
out-of-sample curve, and the windows with the chosen parameters beside the in-sample metric."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.report.project import warehouse_path
from workbench.report.tables import Table
from workbench.sweeps import params_label

MAX_POINTS = 5_000  # of the stitched curve, over all windows

_COLUMNS = ("wf_id", "window_seq", "name", "metric", "anchored", "train_start", "train_end",
            "test_start", "test_end", "status", "params", "in_sample", "out_of_sample", "gap",
            "test_return_pct", "test_trades", "stitched_return_pct", "test_run_id",
            "error_kind", "error")


@dataclass
class WalkForwardReport:
    """One analysis' windows in time order (``params`` as dicts) and the stitched
    out-of-sample equity (``curve``: ``ts`` in ms and ``equity``)."""

    wf_id: str | None
    rows: list[dict[str, Any]]
    curve: dict[str, list[Any]] = field(default_factory=lambda: {"ts": [], "equity": []})

    @property
    def metric(self) -> str:
        """The metric the analysis chose by (``sharpe`` when it has no window)."""
        return str(self.rows[0]["metric"]) if self.rows else "sharpe"


def stitch(segments: Sequence[tuple[float, Sequence[int], Sequence[float]]],
           max_points: int = MAX_POINTS) -> dict[str, list[Any]]:
    """Test runs' equity chained: each ``(initial_cash, ts, equity)`` segment, in window
    order, is scaled to start where the previous one ended (its returns compounded), the
    first at its own initial cash. At most about ``max_points`` points; every segment's last
    point is kept."""
    total = sum(len(ts) for _, ts, _ in segments)
    step = max(1, math.ceil(total / max_points))
    out: dict[str, list[Any]] = {"ts": [], "equity": []}
    level: float | None = None
    for cash, ts, equity in segments:
        if not ts:
            continue
        scale = 1.0 if level is None else level / cash
        keep = list(range(0, len(ts), step))
        if keep[-1] != len(ts) - 1:
            keep.append(len(ts) - 1)
        out["ts"] += [ts[i] for i in keep]
        out["equity"] += [equity[i] * scale for i in keep]
        level = equity[-1] * scale
    return out


def load_walkforward(wf_id: str | None = None, warehouse: str | Path | None = None
                     ) -> WalkForwardReport:
    """The windows of ``wf_id`` (default: the newest analysis) and its stitched curve; an
    error naming the newest analyses when there is no such analysis."""
    from workbench.warehouse.connect import reading

    with reading(warehouse_path(warehouse)) as con:
        if wf_id is None:
            got = con.execute("select wf_id from walkforward_windows order by wf_id desc "
                              "limit 1").fetchall()
            if not got:
                raise WorkbenchError("no walk-forward analysis in the warehouse",
                                     fix="run one with `workbench walkforward --config ... "
                                         "--grid ... --train ... --test ...`")
            wf_id = got[0][0]
        rows = [dict(zip(_COLUMNS, row, strict=True)) for row in con.execute(
            f"select {', '.join(_COLUMNS)} from rpt.walkforward where wf_id = ? "
            "order by window_seq", [wf_id]).fetchall()]
        if not rows:
            newest = [r[0] for r in con.execute(
                "select distinct wf_id from walkforward_windows order by wf_id desc limit 3"
            ).fetchall()]
            raise WorkbenchError(
                f"no walk-forward analysis {str(wf_id)[:60]}"
                + (f" (the newest: {', '.join(newest)})" if newest else ""),
                fix="set wf_id to one of walkforward_windows.wf_id (`workbench sql \"select "
                    "distinct wf_id from walkforward_windows\"`), or None for the newest")
        segments = []
        for row in rows:
            if row["test_run_id"] is None:
                continue
            cash = con.execute("select initial_cash from runs where run_id = ?",
                               [row["test_run_id"]]).fetchall()[0][0]
            points = con.execute("select epoch_ms(ts), equity from acct.equity_curve "
                                 "where run_id = ? order by ts",
                                 [row["test_run_id"]]).fetchall()
            segments.append((cash, [p[0] for p in points], [p[1] for p in points]))
    for row in rows:
        row["params"] = None if row["params"] is None else json.loads(row["params"])
    return WalkForwardReport(wf_id, rows, stitch(segments))


def walkforward_figure(report: WalkForwardReport) -> Any:
    """The stitched out-of-sample equity, each test window shaded with its chosen
    parameters."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(
        x=[datetime.fromtimestamp(t / 1000, tz=UTC) for t in report.curve["ts"]],
        y=report.curve["equity"], mode="lines", name="out-of-sample equity",
        line={"color": "#1565c0"}))
    for i, row in enumerate(report.rows):
        fig.add_vrect(x0=row["test_start"], x1=row["test_end"], line_width=0, opacity=0.08,
                      fillcolor="#455a64" if i % 2 else "#90a4ae",
                      annotation_text=_params(row), annotation_position="top left",
                      annotation_font_size=9)
    fig.update_layout(title=f"Out-of-sample equity, test windows stitched ({report.wf_id})",
                      yaxis_title="equity", template="plotly_white", height=420,
                      showlegend=False)
    return fig


def walkforward_table(report: WalkForwardReport) -> Table:
    """Per window: the spans, the chosen parameters, the metric in and out of sample, the
    gap, and the test run's return alone and compounded."""
    m = report.metric
    rows = [[r["window_seq"], r["train_start"], r["test_start"], r["test_end"], _params(r),
             r["in_sample"], r["out_of_sample"], r["gap"], r["test_return_pct"],
             r["stitched_return_pct"], r["test_trades"],
             r["test_run_id"] or r["error_kind"] or r["status"]] for r in report.rows]
    return Table(f"Chosen parameters per window, {m} in and out of sample",
                 ["window", "train from", "test from", "test to", "chosen",
                  f"in-sample {m}", f"out-of-sample {m}", "gap", "test return %",
                  "stitched return %", "test trades", "test run"], rows,
                 note=f"{report.wf_id}; gap = in-sample less out-of-sample; each test run "
                      "opens with `workbench report RUN_ID`; a window without a run says "
                      "why in rpt.walkforward.error")


def _params(row: dict[str, Any]) -> str:
    return "-" if row["params"] is None else params_label(row["params"])
