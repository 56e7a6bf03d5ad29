"""Forward-only schema migrations, recorded in the ``schema_migrations`` ledger: applied once,
never edited after the fact, and a warehouse from newer code is refused."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from workbench.errors import WarehouseError
from workbench.warehouse import migrations
from workbench.warehouse.connect import open_rw
from workbench.warehouse.paths import sql_dir

REPO_SCHEMA = sql_dir() / "schema"
CORE = "001_create_core_tables.sql"


@pytest.fixture
def con() -> Iterator[Any]:
    con = duckdb.connect(":memory:")
    yield con
    con.close()


@pytest.fixture
def schema(tmp_path: Path) -> Path:
    """A schema folder holding a copy of the real first migration."""
    folder = tmp_path / "schema"
    folder.mkdir()
    shutil.copy(REPO_SCHEMA / CORE, folder / CORE)
    return folder


def add(folder: Path, name: str, sql: str) -> Path:
    path = folder / name
    path.write_text(sql)
    return path


def ledger(con: Any) -> list[tuple[int, str, str]]:
    return con.execute("select version, name, checksum from schema_migrations "
                       "order by version").fetchall()


def tables(con: Any) -> set[str]:
    return {r[0] for r in con.execute(
        "select table_name from information_schema.tables where table_schema = 'main'"
    ).fetchall()}


def test_apply_fresh_warehouse_records_every_migration_in_ledger(con: Any) -> None:
    known = migrations.discover()
    applied = migrations.apply(con)
    assert [m.version for m in applied] == [m.version for m in known]
    core = (REPO_SCHEMA / CORE).read_text()
    assert ledger(con)[0] == (1, "create_core_tables", hashlib.sha256(core.encode()).hexdigest())
    assert ledger(con) == [(m.version, m.name, m.checksum) for m in known]
    assert {"runs", "bars", "run_bars", "fills", "orders", "order_events", "snapshots",
            "view_versions", "schema_migrations"} <= tables(con)


def test_apply_again_is_a_no_op(con: Any) -> None:
    migrations.apply(con)
    before = con.execute("select * from schema_migrations order by version").fetchall()
    assert migrations.apply(con) == []
    assert con.execute("select * from schema_migrations order by version").fetchall() == before


def test_apply_reopened_file_warehouse_applies_nothing_new(warehouse: Path) -> None:
    first = open_rw(warehouse)
    rows = first.execute("select * from schema_migrations").fetchall()
    first.close()
    again = open_rw(warehouse)
    try:
        assert again.execute("select * from schema_migrations").fetchall() == rows
        assert migrations.apply(again) == []
    finally:
        again.close()


def test_apply_new_migration_applies_only_that_one(con: Any, schema: Path) -> None:
    assert [m.name for m in migrations.apply(con, schema)] == ["create_core_tables"]
    add(schema, "002_add_notes.sql", "create table notes (run_id varchar, note varchar);")
    assert [m.name for m in migrations.apply(con, schema)] == ["add_notes"]
    assert [v for v, _, _ in ledger(con)] == [1, 2]
    assert "notes" in tables(con)


def test_apply_edited_applied_migration_is_refused(con: Any, schema: Path) -> None:
    notes = add(schema, "002_add_notes.sql", "create table notes (run_id varchar);")
    migrations.apply(con, schema)
    notes.write_text("create table notes (run_id varchar, note varchar);")
    add(schema, "003_add_tags.sql", "create table tags (tag varchar);")
    with pytest.raises(WarehouseError,
                       match=re.escape("migration 002_add_notes.sql changed after it was "
                                       "applied to this warehouse")):
        migrations.apply(con, schema)
    assert [v for v, _, _ in ledger(con)] == [1, 2]
    assert "tags" not in tables(con)


def test_apply_comment_only_edit_of_applied_migration_is_refused(con: Any, schema: Path
                                                                 ) -> None:
    migrations.apply(con, schema)
    core = schema / CORE
    core.write_text(core.read_text() + "\n-- a harmless note\n")
    with pytest.raises(WarehouseError, match="forward-only"):
        migrations.apply(con, schema)


def test_apply_warehouse_with_newer_migration_is_refused(con: Any, schema: Path,
                                                         tmp_path: Path) -> None:
    newer = tmp_path / "newer"
    shutil.copytree(schema, newer)
    add(newer, "002_add_notes.sql", "create table notes (run_id varchar);")
    migrations.apply(con, newer)
    with pytest.raises(WarehouseError,
                       match=re.escape("this warehouse has migration 002, which this code does "
                                       "not know")):
        migrations.apply(con, schema)


def test_apply_warehouse_with_newer_migration_is_refused_before_changing_it(
        con: Any, schema: Path, tmp_path: Path) -> None:
    newer = tmp_path / "newer"
    shutil.copytree(schema, newer)
    add(newer, "003_add_tags.sql", "create table tags (tag varchar);")
    migrations.apply(con, newer)  # a warehouse with 001 and 003
    add(schema, "002_add_notes.sql", "create table notes (run_id varchar);")  # this code: 001, 002
    with pytest.raises(WarehouseError, match="which this code does not know"):
        migrations.apply(con, schema)
    assert [v for v, _, _ in ledger(con)] == [1, 3]
    assert "notes" not in tables(con)


def test_apply_failing_migration_rolls_back_and_is_not_recorded(con: Any, schema: Path
                                                                ) -> None:
    migrations.apply(con, schema)
    add(schema, "002_add_two_tables.sql",
        "create table first_one (x integer);\ncreate table second_one (x integer;\n")
    with pytest.raises(duckdb.Error):
        migrations.apply(con, schema)
    assert [v for v, _, _ in ledger(con)] == [1]
    assert "first_one" not in tables(con)


@pytest.mark.parametrize("name", ["1_create.sql", "002-add-notes.sql", "002_Add_Notes.sql",
                                  "002_add_notes.SQL.sql"])
def test_discover_badly_named_migration_is_refused(schema: Path, name: str) -> None:
    add(schema, name, "select 1;")
    with pytest.raises(WarehouseError, match=re.escape("is not NNN_verb_noun.sql")):
        migrations.discover(schema)


def test_discover_two_migrations_with_one_number_are_refused(schema: Path) -> None:
    add(schema, "001_create_other_tables.sql", "create table other (x integer);")
    with pytest.raises(WarehouseError, match="two migrations share a number"):
        migrations.discover(schema)
