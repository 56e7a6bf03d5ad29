"""Who opens the DuckDB file, and how (docs/architecture.md, "The warehouse").

* Nobody holds it across computation. A backtest reads its bars read-only and closes, computes
  in memory, then writes in one short transaction (``open_rw``, which also applies pending
  migrations and marks the ``running`` rows of dead processes ``abandoned``).
* Notebooks and ``workbench sql`` read through ``read``/``open_ro``: open read-only, run, close.
  DuckDB lets one process write, and a reader blocks a writer too, so both retry with backoff
  while another process holds the file, then say who holds it.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb

from workbench.errors import WarehouseError

DEFAULT_PATH = Path("warehouse") / "workbench.duckdb"
_HOLDER = re.compile(r"Conflicting lock is held in (.+?) \(PID (\d+)\)")


def resolve_path(path: str | Path | None = None, env_prefix: str = "WB_") -> Path:
    """``path``, else ``$WB_WAREHOUSE``, else ``warehouse/workbench.duckdb``."""
    if path:
        return Path(path)
    env = os.environ.get(f"{env_prefix}WAREHOUSE")
    return Path(env) if env else DEFAULT_PATH


NOTICE_AFTER_S = 1.0  # a wait longer than this is said on stderr, once


def _connect(path: Path, read_only: bool, wait_s: float,
             config: dict[str, Any] | None = None) -> Any:
    began = time.monotonic()
    delay, deadline, told = 0.05, began + wait_s, False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config or {})
        except duckdb.IOException as exc:
            holder = _HOLDER.search(str(exc))
            if holder is None and "lock" not in str(exc).lower():
                raise WarehouseError(f"cannot open the warehouse: {exc}", where=str(path),
                                     fix="check the file is a DuckDB 2.0 database") from None
            who = (f"process {holder.group(2)} ({holder.group(1)})" if holder
                   else "another process")
            if time.monotonic() >= deadline:
                raise WarehouseError(
                    f"the warehouse is held by {who}",
                    where=str(path),
                    fix="wait for that job to finish (DuckDB allows one writer, and a reader "
                        "blocks it), or point --warehouse at another file",
                ) from None
            if not told and time.monotonic() - began >= NOTICE_AFTER_S:
                told = True  # a silent wait of minutes looks like a hang
                print(f"waiting for the warehouse {path}: {who} holds it; trying for up to "
                      f"{wait_s:g} s", file=sys.stderr, flush=True)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def open_rw(path: str | Path | None = None, *, wait_s: float = 10.0,
            connected: list[float] | None = None) -> Any:
    """Open read-write, creating the file and applying migrations as needed; the moment the
    file was ours (``time.perf_counter()``) is appended to ``connected`` when given."""
    from workbench.warehouse import migrations, stale

    target = resolve_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    con = _connect(target, False, wait_s)
    if connected is not None:
        connected.append(time.perf_counter())
    try:
        con.execute("set TimeZone = 'UTC'")
        migrations.apply(con)
        stale.abandon_stale(con)
    except BaseException:
        con.close()
        raise
    return con


def open_ro(path: str | Path | None = None, *, wait_s: float = 10.0, sealed: bool = False
            ) -> Any:
    """Open read-only; the file must exist. ``sealed`` also forbids touching any other file
    (no COPY TO, no read_csv of arbitrary paths, no extensions): for untrusted audit queries."""
    target = resolve_path(path)
    if not target.is_file():
        raise WarehouseError(
            "no warehouse here yet", where=str(target),
            fix="create one with `workbench ingest FILE --symbol SYMBOL` (or `make demo`), "
                "or pass --warehouse PATH",
        )
    con = _connect(target, True, wait_s)
    con.execute("set TimeZone = 'UTC'")
    if sealed:
        con.execute("set enable_external_access = false")
        con.execute("set lock_configuration = true")
    return con


def rollback_quietly(con: Any) -> None:
    """Roll back after a failure in a transaction; a failed commit (out of memory, a
    constraint) has already ended it, and "no transaction is active" must not hide the real
    error."""
    with suppress(duckdb.Error):
        con.execute("rollback")


@contextmanager
def reading(path: str | Path | None = None, *, wait_s: float = 10.0, sealed: bool = False
            ) -> Iterator[Any]:
    """A read-only connection that is closed when the block ends."""
    con = open_ro(path, wait_s=wait_s, sealed=sealed)
    try:
        yield con
    finally:
        con.close()


def open_memory(view_list: list[Any] | None = None, *, memory_limit: str | None = None,
                stand_ins: dict[str, Any] | None = None, needs: Collection[str] = (),
                threads: int | None = None) -> Any:
    """An in-memory warehouse with the schema and views deployed: a job's private database
    for computing through the views, tests, scratch work. ``memory_limit`` (DuckDB's syntax,
    e.g. ``2GB``) caps it. ``stand_ins`` maps view names to Arrow tables that take those views'
    place (read in place, not copied; the views that read them are created as usual).
    ``needs``: create only these views and what they read (default: every view); ``threads``:
    DuckDB's worker threads (default: one per core)."""
    from workbench.warehouse import migrations, views

    config: dict[str, Any] = {"memory_limit": memory_limit} if memory_limit else {}
    if threads:
        config["threads"] = threads
    con = duckdb.connect(":memory:", config=config)
    con.execute("set TimeZone = 'UTC'")
    migrations.apply(con)
    if not stand_ins and not needs:
        views.deploy(con, view_list)
        return con
    for schema in views.LAYERS:
        con.execute(f"create schema if not exists {schema}")
    for number, (name, table) in enumerate((stand_ins or {}).items()):
        con.register(f"__wb_stand_in_{number}", table)
        con.execute(f"create view {name} as select * from __wb_stand_in_{number}")
    chosen = views.check(view_list)
    if needs:
        chosen = views.lineage(chosen, needs, stop=set(stand_ins or ()))
    views.create(con, chosen, skip=set(stand_ins or ()))
    return con
