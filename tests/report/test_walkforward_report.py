"""notebooks/walkforward.ipynb's pieces: the test runs' equity stitched into one curve (the
loading, figure and table run end to end in tests/test_walkforward.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.errors import WorkbenchError
from workbench.report.walkforward import load_walkforward, stitch
from workbench.warehouse import views
from workbench.warehouse.connect import open_rw


def test_stitch_chains_each_test_run_from_where_the_last_ended():
    got = stitch([(100.0, [1, 2], [100.0, 150.0]), (300.0, [3, 4], [300.0, 200.0]),
                  (100.0, [], []), (8.0, [5, 6], [8.0, 10.0])])

    assert got == {"ts": [1, 2, 3, 4, 5, 6], "equity": [100.0, 150.0, 150.0, 100.0, 100.0,
                                                           125.0]}


def test_stitch_thins_to_max_points_keeping_each_segments_last():
    got = stitch([(1.0, list(range(10)), [1.0] * 9 + [2.0]), (1.0, [10, 11], [1.0, 1.5])],
                 max_points=4)

    assert got["ts"] == [0, 3, 6, 9, 10, 11]
    assert got["equity"] == [1.0, 1.0, 1.0, 2.0, 2.0, 3.0]


def test_load_walkforward_unknown_id_is_an_error_saying_how_to_list_them(warehouse: Path):
    con = open_rw(warehouse)
    try:
        views.deploy(con)
    finally:
        con.close()

    with pytest.raises(WorkbenchError, match="no walk-forward analysis wf-nope") as caught:
        load_walkforward("wf-nope", warehouse=warehouse)
    assert "walkforward_windows" in caught.value.render()
    with pytest.raises(WorkbenchError, match="no walk-forward analysis in the warehouse"):
        load_walkforward(warehouse=warehouse)
