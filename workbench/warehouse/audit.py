"""The read-only guard of ``workbench sql``: parse with sqlglot, refuse anything but a read.

The check runs before DuckDB sees the query; the file is opened read-only as well, so a
statement the guard missed would still fail to write.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlglot
from sqlglot import exp

from workbench.errors import QueryRefused

logging.getLogger("sqlglot").setLevel(logging.ERROR)

READS = (exp.Query, exp.Values, exp.Describe, exp.Show, exp.Summarize, exp.Pivot)
_WRITES = tuple(
    getattr(exp, name) for name in (
        "Insert", "Update", "Delete", "Drop", "Create", "Alter", "Merge", "Copy", "Set",
        "Pragma", "Attach", "Detach", "Use", "Transaction", "Commit", "Rollback", "Command",
        "Install", "LoadData", "Into", "TruncateTable", "Export", "Refresh", "Grant",
    ) if hasattr(exp, name)
)


_READ_COMMANDS = {"SHOW", "DESCRIBE", "SUMMARIZE"}


def _verb(node: exp.Expr) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    if isinstance(node, _WRITES):
        return type(node).__name__.upper()
    words = node.sql(dialect="duckdb").split()  # e.g. a bare CHECKPOINT parses as a column
    return words[0].upper() if words else "?"


def _is_read(statement: exp.Expr) -> bool:
    if isinstance(statement, exp.Command):  # sqlglot's fallback for statements it only tokenises
        return str(statement.this).upper() in _READ_COMMANDS
    if isinstance(statement, _WRITES) or not isinstance(statement, READS):
        return False
    return not any(isinstance(n, _WRITES) for n in statement.walk())


def check_read_only(query: str) -> str:
    """The query, when it is exactly one read statement; QueryRefused otherwise."""
    try:
        statements = [s for s in sqlglot.parse(query, read="duckdb") if s is not None]
    except sqlglot.errors.SqlglotError as exc:  # ParseError, TokenError (an open quote), ...
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        if isinstance(exc, sqlglot.errors.TokenError):
            first = f"{first} (an unterminated quote or comment?)"
        raise QueryRefused(
            f"cannot parse the query: {first}",
            fix="workbench sql runs one read query (SELECT, WITH ... SELECT, DESCRIBE, SHOW, "
                "SUMMARIZE) in DuckDB's dialect",
        ) from None
    if not statements:
        raise QueryRefused("the query is empty", fix='pass a query: workbench sql "select 1"')
    for statement in statements:
        if not _is_read(statement):
            inner = next((n for n in statement.walk() if isinstance(n, _WRITES)), statement)
            raise QueryRefused(
                f"refused: {_verb(inner)} is not a read; workbench sql only reads the "
                "warehouse",
                fix="writes happen through workbench ingest / backtest; to explore, use "
                    "SELECT, WITH ... SELECT, DESCRIBE, SHOW or SUMMARIZE",
            )
    if len(statements) > 1:
        raise QueryRefused(f"{len(statements)} statements given; workbench sql runs one at a time",
                           fix="run them one by one")
    return query


def _hint(error: Exception, query: str) -> str:
    import duckdb

    if isinstance(error, duckdb.CatalogException):
        if any(f"{schema}." in query.lower() for schema in ("acct", "rpt")):
            return ("views reach a warehouse with each backtest, or now with "
                    "`workbench views deploy`; `workbench views list` names them")
        return 'check table and column names: workbench sql "show all tables"'
    if isinstance(error, duckdb.ParserException):
        return "fix the SQL syntax (DuckDB dialect)"
    if isinstance(error, duckdb.PermissionException):
        return "workbench sql reads the warehouse only: no files, extensions or settings"
    if isinstance(error, duckdb.BinderException):
        return "check column names and types: workbench sql \"describe <table>\""
    return "check the query"


def run_query(query: str, warehouse: Any = None, limit: int | None = None,
              timeout_s: float | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
    """One guarded read: refused unless a read, run on a sealed read-only connection, errors
    turned into a message with a hint. Returns (columns, rows), at most ``limit`` rows; a
    query still running after ``timeout_s`` seconds is interrupted (and the file released)."""
    import threading

    import duckdb

    from workbench.errors import WorkbenchError
    from workbench.warehouse.connect import reading

    check_read_only(query)
    with reading(warehouse, sealed=True) as con:
        timer = threading.Timer(timeout_s, con.interrupt) if timeout_s else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            rel = con.sql(query)
            if rel is None:
                return [], []
            rows = (rel.limit(limit) if limit is not None else rel).fetchall()
            return list(rel.columns), rows
        except duckdb.InterruptException:
            raise WorkbenchError(
                f"the query ran longer than {timeout_s:g} s and was stopped",
                fix="narrow it (a where clause on run_id, symbol or ts), or allow more time "
                    "with --timeout SECONDS") from None
        except duckdb.Error as exc:
            raise WorkbenchError(f"the query failed: {str(exc).splitlines()[0]}",
                                 fix=_hint(exc, query)) from None
        finally:
            if timer is not None:
                timer.cancel()
