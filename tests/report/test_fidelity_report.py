"""notebooks/fidelity.ipynb's pieces: the stored comparisons, the table and the figure."""

from __future__ import annotations

from typing import Any

import pytest

import workbench.report as wr


def row(fid: str, seq: int, variant: str, latency: str, ret: float | None) -> dict[str, Any]:
    return {"fidelity_id": fid, "created_at": None, "variant_seq": seq, "variant": variant,
            "latency": latency, "cap_pct": None, "full_costs": False, "run_id": f"r{seq}",
            "total_return_pct": ret, "sharpe": 1.0, "trades": 4, "total_costs": 2.0,
            "cost_per_trade": 0.5, "edge_kept_pct": None if ret is None else ret / 2 * 100}


REPORT = wr.FidelityReport([row("fid-2", 1, "INSTANT", "INSTANT", 2.0),
                            row("fid-2", 2, "SLOW", "SLOW", 1.0),
                            row("fid-1", 1, "INSTANT", "INSTANT", 5.0)])


def test_fidelity_table_shows_the_newest_comparison_by_default() -> None:
    table = wr.fidelity_table(REPORT)
    assert [r[0] for r in table.rows] == ["INSTANT", "SLOW"]
    assert table.rows[1][6] == 50.0 and "fid-2" in (table.note or "")
    assert [r[1] for r in wr.fidelity_table(REPORT, "fid-1").rows] == [5.0]


def test_fidelity_table_unknown_id_names_the_stored_ones_and_empty_says_how() -> None:
    with pytest.raises(KeyError, match="no fidelity comparison 'nope'; stored: fid-2, fid-1"):
        wr.fidelity_table(REPORT, "nope")
    empty = wr.fidelity_table(wr.FidelityReport([]))
    assert empty.rows == [] and "workbench fidelity --config" in (empty.note or "")


def test_fidelity_figure_bars_each_variant_against_the_baseline() -> None:
    fig = wr.fidelity_figure(REPORT)
    assert list(fig.data[0].x) == ["INSTANT", "SLOW"] and list(fig.data[0].y) == [2.0, 1.0]
