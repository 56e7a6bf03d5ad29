"""Forward-only schema migrations from ``sql/schema/NNN_verb_noun.sql``, recorded as a ledger.

Each applied migration is a row in ``schema_migrations`` with the checksum of its file; the
schema's state is read from that ledger, never probed. Editing an applied migration is refused:
add a new one instead.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import WarehouseError
from workbench.warehouse.paths import sql_dir

_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")

LEDGER = """
create table if not exists schema_migrations (
    version    integer primary key,
    name       varchar not null,
    checksum   varchar not null,
    applied_at timestamptz not null
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(schema_dir: Path | None = None) -> list[Migration]:
    folder = schema_dir or sql_dir() / "schema"
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise WarehouseError(f"migration file name {path.name!r} is not NNN_verb_noun.sql",
                                 where=str(path), fix="rename it, e.g. 002_add_fill_index.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path, path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise WarehouseError("two migrations share a number", where=str(folder),
                             fix="give each migration its own NNN prefix")
    return found


def has_table(con: Any, name: str) -> bool:
    """Whether the warehouse has table ``name`` (in ``main``): a reader of a file an older
    version made (its migrations are applied at the next read-write open) asks first."""
    return bool(con.execute("select count(*) from duckdb_tables() where schema_name = 'main' "
                            "and table_name = ?", [name]).fetchall()[0][0])


def has_column(con: Any, table: str, column: str) -> bool:
    """Whether ``main.table`` has ``column`` (see ``has_table``)."""
    return bool(con.execute("select count(*) from duckdb_columns() where schema_name = 'main' "
                            "and table_name = ? and column_name = ?",
                            [table, column]).fetchall()[0][0])


def check_known(con: Any, migrations: list[Migration] | None = None) -> None:
    """Refuse a warehouse with a migration this code does not know (a newer version made
    it). Works read-only: a job checks this when it reads, not after hours of computing."""
    if not has_table(con, "schema_migrations"):
        return
    applied = {v for (v,) in con.execute("select version from schema_migrations").fetchall()}
    known = discover() if migrations is None else migrations
    unknown = sorted(applied - {m.version for m in known})
    if unknown:
        raise WarehouseError(
            f"this warehouse has migration {unknown[-1]:03d}, which this code does not know",
            fix="upgrade workbench, or point --warehouse at a file made by this version",
        )


def apply(con: Any, schema_dir: Path | None = None) -> list[Migration]:
    """Apply pending migrations, each in its own transaction; return the ones applied."""
    con.execute(LEDGER)
    applied = {v: c for v, c in con.execute(
        "select version, checksum from schema_migrations").fetchall()}
    migrations = discover(schema_dir)
    check_known(con, migrations)
    done = []
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None:
            if recorded != migration.checksum:
                raise WarehouseError(
                    f"migration {migration.path.name} changed after it was applied to this "
                    "warehouse",
                    fix="migrations are forward-only: restore the file and add a new migration",
                )
            continue
        con.execute("begin transaction")
        try:
            con.execute(migration.sql)
            con.execute(
                "insert into schema_migrations values (?, ?, ?, now())",
                [migration.version, migration.name, migration.checksum],
            )
            con.execute("commit")
        except Exception:
            from workbench.warehouse.connect import rollback_quietly

            rollback_quietly(con)
            raise
        done.append(migration)
    return done
