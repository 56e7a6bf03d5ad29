"""What ``notebooks/fidelity.ipynb`` shows: the comparisons ``workbench fidelity`` stored in
``fidelity_results`` (read-only, one pass)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.report.parity import StoredComparisons, read_comparisons
from workbench.report.tables import Table

_COLUMNS = ("fidelity_id", "created_at", "variant_seq", "variant", "latency", "cap_pct",
            "full_costs", "run_id", "total_return_pct", "sharpe", "trades", "total_costs",
            "cost_per_trade", "edge_kept_pct")


class FidelityReport(StoredComparisons):
    """Every stored fidelity comparison's rows, newest first, variants in their order."""

    KEY = "fidelity_id"
    WHAT = "fidelity comparison"


def load_fidelity(warehouse: str | Path | None = None) -> FidelityReport:
    return FidelityReport(read_comparisons(warehouse, "fidelity_results", _COLUMNS,
                                           "created_at desc, fidelity_id desc, variant_seq"))


def fidelity_table(report: FidelityReport, fidelity_id: str | None = None) -> Table:
    """One comparison: each variant's return, Sharpe, trades, costs and the edge it kept."""
    mine = report.of(fidelity_id)
    if not mine:
        return Table("No fidelity comparison stored yet", ["variant"], [],
                     note="run `workbench fidelity --config F`")
    rows = [[r["variant"], r["total_return_pct"], r["sharpe"], r["trades"], r["total_costs"],
             r["cost_per_trade"], r["edge_kept_pct"], r["run_id"]] for r in mine]
    return Table("How much of the edge survives each execution assumption",
                 ["variant", "return %", "Sharpe", "trades", "costs", "cost per trade",
                  "edge kept %", "run"], rows,
                 note=f"{mine[0]['fidelity_id']}; the baseline is INSTANT as configured; "
                      "costs in the quote currency (rpt.cost_breakdown of each run)")


def fidelity_figure(report: FidelityReport, fidelity_id: str | None = None) -> Any:
    """Each variant's return beside the baseline's, coloured by latency profile."""
    import plotly.graph_objects as go

    mine = report.of(fidelity_id)
    colours = {"INSTANT": "#455a64", "FAST": "#2e7d32", "NORMAL": "#f9a825",
               "SLOW": "#c62828"}
    fig = go.Figure(go.Bar(
        x=[r["variant"] for r in mine], y=[r["total_return_pct"] for r in mine],
        marker_color=[colours.get(r["latency"], "#607d8b") for r in mine]))
    if mine and mine[0]["total_return_pct"] is not None:
        fig.add_hline(y=mine[0]["total_return_pct"], line_dash="dash",
                      annotation_text="baseline")
    fig.update_layout(title="Total return by execution assumption", yaxis_title="return %",
                      template="plotly_white", height=380)
    return fig
