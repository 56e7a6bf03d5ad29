"""What ``notebooks/parity.ipynb`` shows: the comparisons ``workbench parity`` stored in
``parity_results`` (read-only, one pass)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from workbench.report.project import warehouse_path
from workbench.report.tables import Table

_COLUMNS = ("parity_id", "created_at", "engine", "engine_version", "strategy", "run_id",
            "quantity", "ours", "peer", "diff", "tolerance", "held", "within", "passed",
            "detail")


@dataclass
class StoredComparisons:
    """Every stored comparison's rows, newest comparison first; ``KEY`` is the column that
    names a comparison, ``WHAT`` what one is called."""

    KEY: ClassVar[str] = "parity_id"
    WHAT: ClassVar[str] = "parity comparison"
    rows: list[dict[str, Any]]

    @property
    def comparisons(self) -> list[str]:
        return list(dict.fromkeys(r[self.KEY] for r in self.rows))

    def of(self, comparison_id: str | None = None) -> list[dict[str, Any]]:
        """One comparison's rows (default: the newest)."""
        ids = self.comparisons
        if not ids:
            return []
        wanted = comparison_id or ids[0]
        if wanted not in ids:
            raise KeyError(f"no {self.WHAT} {wanted!r}; stored: {', '.join(ids[:5])}")
        return [r for r in self.rows if r[self.KEY] == wanted]


def read_comparisons(warehouse: str | Path | None, table: str, columns: tuple[str, ...],
                     order: str) -> list[dict[str, Any]]:
    """The rows of a comparisons table (``parity_results``, ``fidelity_results``) as dicts,
    newest comparison first (read-only, one pass)."""
    from workbench.warehouse.connect import reading

    with reading(warehouse_path(warehouse)) as con:
        got = con.execute(f"select {', '.join(columns)} from {table} order by {order}"
                          ).fetchall()
    return [dict(zip(columns, row, strict=True)) for row in got]


class ParityReport(StoredComparisons):
    """Every stored parity comparison's rows, newest first."""


def load_parity(warehouse: str | Path | None = None) -> ParityReport:
    return ParityReport(read_comparisons(warehouse, "parity_results", _COLUMNS,
                                         "created_at desc, parity_id desc, quantity"))


def parity_history_table(report: ParityReport) -> Table:
    """One row per comparison: when, which engine and strategy, the verdict."""
    rows = []
    for pid in report.comparisons:
        mine = report.of(pid)
        first = mine[0]
        outside = [r["quantity"] for r in mine if not r["within"]]
        trades = next((r for r in mine if r["quantity"] == "trade_count"), {})
        rows.append([pid, first["created_at"], first["strategy"], first["engine"],
                     first["engine_version"], trades.get("ours"), first["passed"],
                     ", ".join(outside) or "-"])
    return Table("Parity comparisons", ["parity", "at", "strategy", "engine", "version",
                                        "trades", "passed", "outside"], rows,
                 note="workbench parity --engine E --config F; newest first",
                 time_columns=frozenset({"at"}))


def parity_table(report: ParityReport, parity_id: str | None = None) -> Table:
    """One comparison side by side: ours, the peer's, the difference, the tolerance."""
    mine = report.of(parity_id)
    if not mine:
        return Table("No parity comparison stored yet", ["quantity"], [],
                     note="run `workbench parity --engine backtesting --config F`")
    first = mine[0]
    rows = [[r["quantity"], r["ours"], r["peer"], r["diff"],
             r["tolerance"] if r["held"] else "not held",
             "ok" if r["within"] else "OUTSIDE", r["detail"] or ""] for r in mine]
    return Table(f"{first['strategy']}: workbench vs {first['engine']} "
                 f"{first['engine_version']}",
                 ["quantity", "workbench", first["engine"], "diff", "tolerance", "verdict",
                  "detail"], rows, exact=True,
                 note=f"{first['parity_id']}, our run {first['run_id']}")


def parity_figure(report: ParityReport, parity_id: str | None = None) -> Any:
    """How much of its tolerance each metric used (|diff| / tolerance; 1 is the edge)."""
    import plotly.graph_objects as go

    mine = [r for r in report.of(parity_id)
            if r["held"] and r["tolerance"] and r["diff"] is not None]
    names = [r["quantity"] for r in mine]
    used = [abs(r["diff"]) / r["tolerance"] for r in mine]
    fig = go.Figure(go.Bar(x=names, y=used, marker_color=[
        "#2e7d32" if u <= 1 else "#c62828" for u in used]))
    fig.add_hline(y=1.0, line_dash="dash", annotation_text="tolerance")
    fig.update_layout(title="Share of the tolerance used", yaxis_title="|diff| / tolerance",
                      template="plotly_white", height=360)
    return fig
