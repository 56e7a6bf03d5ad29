"""``workbench ingest-actions``: a CSV of splits and dividends into ``corporate_actions``."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from workbench.errors import DataError
from workbench.model import ActionKind, CorporateAction
from workbench.warehouse.actions import ingest_actions, read_actions
from workbench.warehouse.connect import open_rw, reading

HEADER = "symbol,ex_date,kind,ratio,amount\n"
GOOD = (HEADER + "AAPL,2024-06-10,split,4,\nAAPL,2024-05-10,dividend,,0.25\n"
        "MSFT,2024-05-15,split,3:2,\n")


@pytest.fixture
def actions_file(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "actions.csv") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def stored(warehouse: Path) -> list[tuple[Any, ...]]:
    with reading(warehouse) as con:
        return con.execute("select symbol, strftime(ex_date, '%Y-%m-%d'), kind, ratio, amount, "
                           "source from corporate_actions order by symbol, ex_date").fetchall()


def test_ingest_actions_good_file_loads_every_row_and_reads_back(
        warehouse: Path, actions_file: Callable[[str], Path]) -> None:
    result = ingest_actions(warehouse, actions_file(GOOD))
    assert (result.rows_read, result.inserted, result.unchanged) == (3, 3, 0)
    assert stored(warehouse) == [
        ("AAPL", "2024-05-10", "dividend", None, 0.25, "actions.csv"),
        ("AAPL", "2024-06-10", "split", 4.0, None, "actions.csv"),
        ("MSFT", "2024-05-15", "split", 1.5, None, "actions.csv")]
    with reading(warehouse) as con:
        assert read_actions(con, ["AAPL"]) == [
            CorporateAction("AAPL", "2024-05-10", ActionKind.DIVIDEND, None, 0.25,
                            1_715_299_200_000),
            CorporateAction("AAPL", "2024-06-10", ActionKind.SPLIT, 4.0, None,
                            1_717_977_600_000)]


def test_ingest_actions_same_file_again_changes_nothing(
        warehouse: Path, actions_file: Callable[[str], Path]) -> None:
    ingest_actions(warehouse, actions_file(GOOD))
    again = ingest_actions(warehouse, actions_file(GOOD))
    assert (again.inserted, again.replaced, again.unchanged) == (0, 0, 3)
    assert len(stored(warehouse)) == 3


def test_ingest_actions_bad_rows_named_by_line_and_column_nothing_loaded(
        warehouse: Path, actions_file: Callable[[str], Path]) -> None:
    bad = actions_file(HEADER + "AAPL,2024-06-10,split,4,\n"
                       "AAPL,2024-06-11,merger,2,\n"
                       "AAPL,2024-06-12,split,0,\n"
                       "AAPL,2024-06-13,split,-2,\n"
                       "AAPL,2024-06-10,split,4,\n"
                       "AAPL,2024-13-01,dividend,,0.5\n"
                       "aapl,2024-06-14,dividend,2,0.5\n")
    with pytest.raises(DataError) as err:
        ingest_actions(warehouse, bad)
    text = str(err.value)
    assert "line 3, column kind: unknown kind 'merger'" in text
    assert "line 4, column ratio: 0 must be a number above 0" in text
    assert "line 5, column ratio: -2 must be a number above 0" in text
    assert "line 6, columns symbol/ex_date/kind: split of AAPL on 2024-06-10 is already on " \
           "line 2" in text
    assert "line 7, column ex_date: '2024-13-01' is not a date" in text
    assert "line 8, column symbol" in text and "line 8, column ratio: a dividend has no " \
                                               "ratio" in text
    assert "nothing was loaded" in text
    assert not warehouse.exists()  # refused before the warehouse was opened


def test_ingest_actions_header_missing_a_column_is_refused(
        warehouse: Path, actions_file: Callable[[str], Path]) -> None:
    with pytest.raises(DataError, match="lacks the column\\(s\\) amount"):
        ingest_actions(warehouse, actions_file("symbol,ex_date,kind,ratio\nAAPL,2024-06-10,"
                                               "split,4\n"))


def test_ingest_actions_differing_stored_action_refused_unless_replace(
        warehouse: Path, actions_file: Callable[[str], Path]) -> None:
    ingest_actions(warehouse, actions_file(GOOD))
    changed = actions_file(HEADER + "AAPL,2024-06-10,split,2,\n", "changed.csv")
    with pytest.raises(DataError, match=re.escape(
            "line 2: split of AAPL on 2024-06-10 is stored with ratio 4.0")):
        ingest_actions(warehouse, changed)
    assert ("AAPL", "2024-06-10", "split", 4.0, None, "actions.csv") in stored(warehouse)
    result = ingest_actions(warehouse, changed, replace=True)
    assert (result.inserted, result.replaced, result.unchanged) == (0, 1, 0)
    assert ("AAPL", "2024-06-10", "split", 2.0, None, "changed.csv") in stored(warehouse)
    assert len(stored(warehouse)) == 3


def test_ingest_actions_symbol_without_bars_warns_and_loads(
        warehouse: Path, actions_file: Callable[[str], Path],
        synth_csv: Callable[..., Path]) -> None:
    from workbench.warehouse.ingest import ingest

    con = open_rw(warehouse)
    try:
        ingest(con, [synth_csv(count=10)], "AAPL")
    finally:
        con.close()
    result = ingest_actions(warehouse, actions_file(GOOD))
    assert result.warnings == ["MSFT: no bars stored yet (its actions are loaded anyway)"]
    assert len(stored(warehouse)) == 3


def test_cli_ingest_actions_prints_summary_and_bad_file_exits_one(
        cli: Callable[..., Any], actions_file: Callable[[str], Path]) -> None:
    ok = cli("ingest-actions", str(actions_file(GOOD)))
    assert ok.code == 0, ok.err
    assert "3 rows read, 3 inserted" in ok.out
    assert "warning: AAPL: no bars stored yet" in ok.err
    bad = cli("ingest-actions", str(actions_file(HEADER + "AAPL,2024-06-10,split,,\n",
                                                 "bad.csv")))
    assert bad.code == 1
    assert "line 2, column ratio: '' is not a number" in bad.err


def test_ingest_actions_sample_file_loads_its_three_actions(warehouse: Path) -> None:
    sample = Path(__file__).resolve().parents[2] / "sample_data" / "corporate_actions_sample.csv"
    result = ingest_actions(warehouse, sample)
    assert (result.rows_read, result.inserted) == (3, 3)
    assert [(s, d, k, r, a) for s, d, k, r, a, _ in stored(warehouse)] == [
        ("AAPL", "2020-08-31", "split", 4.0, None),
        ("AAPL", "2024-05-10", "dividend", None, 0.25),
        ("NVDA", "2024-06-10", "split", 10.0, None)]


def test_ingest_actions_file_with_bom_and_crlf_loads_every_row(
        warehouse: Path, tmp_path: Path) -> None:
    # a spreadsheet's "CSV UTF-8" export starts with a byte order mark
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n").encode())
    result = ingest_actions(warehouse, path)
    assert (result.rows_read, result.inserted) == (3, 3)


def test_ingest_actions_ratio_beyond_a_million_refused_naming_the_line(
        warehouse: Path, actions_file: Callable[[str], Path]) -> None:
    # 10**12 new units per old overflowed the 64-bit units of a backtest's books
    path = actions_file(HEADER + "AAPL,2024-06-10,split,1000000000000,\n"
                        "AAPL,2024-06-11,split,1:10000000,\n")
    with pytest.raises(DataError, match=r"(?s)line 2, column ratio: .*line 3, column ratio"):
        ingest_actions(warehouse, path)
