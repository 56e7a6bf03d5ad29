"""What ``notebooks/sweep.ipynb`` shows: one sweep's points from ``rpt.sweep_results`` (read
only, one pass), a metric as a heatmap over two of the grid's parameters, the top runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.report.project import warehouse_path
from workbench.report.tables import Table

_COLUMNS = ("sweep_id", "point_seq", "name", "params", "run_id", "status", "error_kind",
            "error", "total_return_pct", "sharpe", "max_drawdown_pct", "trades")


@dataclass
class SweepReport:
    """One sweep's points in grid order, ``params`` as dicts."""

    sweep_id: str | None
    rows: list[dict[str, Any]]

    @property
    def keys(self) -> list[str]:
        """The grid's keys, in grid order."""
        return list(self.rows[0]["params"]) if self.rows else []


def load_sweep(sweep_id: str | None = None, warehouse: str | Path | None = None) -> SweepReport:
    """The points of ``sweep_id`` (default: the newest sweep)."""
    from workbench.warehouse.connect import reading

    with reading(warehouse_path(warehouse)) as con:
        if sweep_id is None:
            got = con.execute("select sweep_id from experiments order by sweep_id desc "
                              "limit 1").fetchall()
            sweep_id = got[0][0] if got else None
        rows = con.execute(f"select {', '.join(_COLUMNS)} from rpt.sweep_results "
                           "where sweep_id = ? order by point_seq", [sweep_id]).fetchall()
    out = [dict(zip(_COLUMNS, row, strict=True)) for row in rows]
    for row in out:
        row["params"] = json.loads(row["params"])
    return SweepReport(sweep_id, out)


def sweep_heatmap(report: SweepReport, metric: str = "sharpe", x: str | None = None,
                  y: str | None = None) -> Any:
    """``metric`` over two grid keys (default: the first two); points that share both values
    (a grid of more than two keys) are averaged."""
    import plotly.graph_objects as go

    keys = report.keys
    x = x or (keys[0] if keys else "")
    y = y or (keys[1] if len(keys) > 1 else x)
    xs = sorted({r["params"].get(x) for r in report.rows}, key=_order)
    ys = sorted({r["params"].get(y) for r in report.rows}, key=_order)
    cells: dict[tuple[Any, Any], list[float]] = {}
    for r in report.rows:
        if r[metric] is not None:
            cells.setdefault((r["params"].get(x), r["params"].get(y)), []).append(r[metric])
    z = [[_mean(cells.get((xv, yv))) for xv in xs] for yv in ys]
    fig = go.Figure(go.Heatmap(x=[str(v) for v in xs], y=[str(v) for v in ys], z=z,
                               colorscale="RdYlGn", colorbar={"title": metric},
                               texttemplate="%{z:.3g}"))
    fig.update_layout(title=f"{metric} by {_short(x)} and {_short(y)} ({report.sweep_id})",
                      xaxis_title=_short(x), yaxis_title=_short(y), template="plotly_white",
                      height=420)
    return fig


def top_runs_table(report: SweepReport, metric: str = "sharpe", n: int = 10) -> Table:
    """The ``n`` completed points with the highest ``metric``, then the failed ones."""
    done = sorted((r for r in report.rows if r[metric] is not None),
                  key=lambda r: r[metric], reverse=True)[:n]
    failed = [r for r in report.rows if r["status"] != "completed"]
    rows = [[r["point_seq"], _params(r), r["status"], r["total_return_pct"], r["sharpe"],
             r["max_drawdown_pct"], r["trades"], r["run_id"] or r["error_kind"] or "cancelled"]
            for r in [*done, *failed]]
    return Table(f"Top runs by {metric}", ["point", "params", "status", "return %", "Sharpe",
                                            "max drawdown %", "trades", "run"], rows,
                 note=f"{report.sweep_id}; each run opens with `workbench report RUN_ID`; "
                      "failed points say why in experiments.error")


def _params(row: dict[str, Any]) -> str:
    return ", ".join(f"{_short(k)}={v}" for k, v in row["params"].items())


def _short(key: str) -> str:
    return key.removeprefix("strategy.params.")


def _order(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))


def _mean(values: list[float] | None) -> float | None:
    return sum(values) / len(values) if values else None
