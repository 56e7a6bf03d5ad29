"""The read-only guard of ``workbench sql``: one read statement passes, anything else is refused
before DuckDB sees it."""

from __future__ import annotations

import pytest

from workbench.errors import QueryRefused
from workbench.warehouse.audit import check_read_only

READS = [
    "select 1",
    "SELECT symbol, count(*) FROM bars GROUP BY symbol",
    "with x as (select 1 as a) select a from x",
    "from bars",
    "select * from rpt.performance where run_id = 'r1'",
    "describe bars",
    "show tables",
    "show all tables",
    "summarize bars",
    "values (1), (2)",
    "pivot bars on symbol using count(*)",
    "select 1;",
    "/* audit */ select 1 -- trailing comment",
]

WRITES = [
    ("delete from bars", "DELETE"),
    ("DELETE FROM runs WHERE run_id = 'x'", "DELETE"),
    ("update runs set status = 'completed'", "UPDATE"),
    ("insert into bars select * from bars", "INSERT"),
    ("insert or replace into bars select * from bars", "INSERT"),
    ("drop table bars", "DROP"),
    ("drop view rpt.performance", "DROP"),
    ("attach 'other.duckdb' as other", "ATTACH"),
    ("detach other", "DETACH"),
    ("copy bars to 'out.csv'", "COPY"),
    ("copy (select 1) to 'out.csv'", "COPY"),
    ("copy bars from 'in.csv'", "COPY"),
    ("pragma database_size", "PRAGMA"),
    ("set threads = 1", "SET"),
    ("create table t (a int)", "CREATE"),
    ("create or replace view v as select 1", "CREATE"),
    ("create temp table t as select 1", "CREATE"),
    ("alter table bars add column z int", "ALTER"),
    ("truncate bars", "TRUNCATE"),
    ("merge into bars using bars as b on true when matched then delete", "MERGE"),
    ("install httpfs", "INSTALL"),
    ("load httpfs", "LOAD"),
    ("call pragma_version()", "CALL"),
    ("begin", "TRANSACTION"),
    ("commit", "COMMIT"),
    ("use other", "USE"),
    ("vacuum", "VACUUM"),
    ("select * into t from bars", "INTO"),
]


@pytest.mark.parametrize("query", READS)
def test_check_read_only_single_read_returns_query_unchanged(query: str) -> None:
    assert check_read_only(query) == query


@pytest.mark.parametrize(("query", "verb"), WRITES)
def test_check_read_only_write_refused_naming_the_verb(query: str, verb: str) -> None:
    with pytest.raises(QueryRefused) as info:
        check_read_only(query)
    err = info.value
    assert err.what.startswith(f"refused: {verb}")
    assert "not a read" in err.what
    assert "SELECT" in (err.fix or "")
    assert err.exit_code == 2


def test_check_read_only_write_hidden_in_cte_refused() -> None:
    with pytest.raises(QueryRefused, match="DELETE"):
        check_read_only("with d as (delete from bars returning *) select * from d")


def test_check_read_only_write_after_a_read_refused_naming_the_write() -> None:
    with pytest.raises(QueryRefused, match="refused: DROP"):
        check_read_only("select 1; drop table bars")


def test_check_read_only_two_reads_refused_one_at_a_time() -> None:
    with pytest.raises(QueryRefused, match="2 statements") as info:
        check_read_only("select 1; select 2")
    assert "one by one" in (info.value.fix or "")


@pytest.mark.parametrize("query", ["", "   ", " ; ", "-- only a comment"])
def test_check_read_only_empty_query_refused(query: str) -> None:
    with pytest.raises(QueryRefused, match="empty"):
        check_read_only(query)


@pytest.mark.parametrize("query", ["selec 1", "export database 'x'", "update"])
def test_check_read_only_unparsable_query_refused(query: str) -> None:
    with pytest.raises(QueryRefused, match="cannot parse"):
        check_read_only(query)


def test_check_read_only_show_table_is_a_read() -> None:
    assert check_read_only("show bars") == "show bars"


def test_check_read_only_checkpoint_refusal_names_checkpoint() -> None:
    with pytest.raises(QueryRefused) as info:
        check_read_only("checkpoint")
    assert "CHECKPOINT" in info.value.what
