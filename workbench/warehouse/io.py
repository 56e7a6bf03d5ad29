"""Bulk I/O through Arrow: reads return Arrow tables, writes insert Arrow tables by name.

Row-by-row ``executemany`` is never used for bulk data: a year of rows goes in via Arrow in about
0.1 s and would take minutes row by row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from workbench.warehouse.connect import reading


def read(query: str, params: Sequence[Any] | None = None, *, path: str | Path | None = None,
         wait_s: float = 10.0) -> pa.Table:
    """Run one read query (parameters bound, never formatted in) and return an Arrow table."""
    with reading(path, wait_s=wait_s) as con:
        return con.sql(query, params=list(params) if params else None).to_arrow_table()


def insert_arrow(con: Any, table: str, data: pa.Table, **constants: Any) -> None:
    """Bulk-insert an Arrow table by column name; ``constants`` fill the remaining columns."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", table):
        raise ValueError(f"bad table name {table!r}")
    if data.num_rows == 0:
        return
    names = list(constants)
    select = ", ".join([f"? as {n}" for n in names] + ["*"])
    con.register("__wb_insert", data)
    try:
        con.execute(f"insert into {table} by name select {select} from __wb_insert",
                    list(constants.values()))
    finally:
        con.unregister("__wb_insert")
