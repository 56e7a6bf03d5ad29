"""Versioned SQL views: one view per file under ``sql/views/<layer>/<name>.sql``.

Each file starts with a header::

    -- name: acct.equity_curve
    -- version: 2
    -- description: cash + marked positions per run per bar

The body is parsed with sqlglot (DuckDB dialect). A view's fingerprint is the sha256 of its
normalised query (so reformatting or comments are not a change) plus its parents' fingerprints
(so a change upstream changes everything downstream). ``sql/views.lock`` (committed) records each
view's name, version and fingerprint and the sqlglot version that computed them; it is the
authority. ``check`` refuses a changed fingerprint whose version was not bumped; ``lock``
rewrites the lock after a bump; ``deploy`` creates the views in a warehouse and records the
deployed versions in ``view_versions``.

The lock also records each file's sha256 and parents: when every file is byte-identical to what
was locked, under the same sqlglot version, ``check`` trusts the lock and skips sqlglot (its
import and parsing are a good part of a short job's start-up).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from importlib import metadata
from pathlib import Path
from typing import Any

from workbench.errors import WarehouseError
from workbench.warehouse.paths import sql_dir

logging.getLogger("sqlglot").setLevel(logging.ERROR)


def sqlglot_version() -> str:
    """The installed sqlglot's version, without importing it."""
    return metadata.version("sqlglot")

_HEADER = re.compile(r"^--\s*(name|version|description):\s*(.*?)\s*$")
LAYERS = ("acct", "rpt")


@dataclass
class View:
    name: str
    version: int
    description: str
    path: Path
    body: str
    ast: Any = None  # the parsed query (None when the view was taken from the lock as is)
    parents: list[str] = field(default_factory=list)
    fingerprint: str = ""
    sha256: str = ""

    @property
    def schema(self) -> str:
        return self.name.split(".")[0]

    @property
    def normalized(self) -> str:
        """The query in sqlglot's normal form: case, whitespace and comments do not count."""
        from sqlglot import exp

        tree = self.ast.copy()
        for spec in tree.find_all(exp.WindowSpec):  # sqlglot keeps frame words as written
            for key in ("kind", "start", "start_side", "end", "end_side"):
                value = spec.args.get(key)
                if isinstance(value, str):
                    spec.set(key, value.upper())
        return str(tree.sql(dialect="duckdb", normalize=True, comments=False))


def views_dir() -> Path:
    return sql_dir() / "views"


def lock_path() -> Path:
    return sql_dir() / "views.lock"


def _read_file(path: Path, root: Path) -> View:
    """Header and body of a view file, checked, not parsed."""
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    rel = path.relative_to(root)
    expected = f"{rel.parent.as_posix().replace('/', '.')}.{path.stem}"
    header: dict[str, str] = {}
    body_lines = []
    in_header = True
    for line in text.splitlines():
        match = _HEADER.match(line) if in_header else None
        if match:
            header[match.group(1)] = match.group(2)
            continue
        if in_header and line.strip().startswith("--"):
            continue
        in_header = in_header and not line.strip()
        body_lines.append(line)
    for key in ("name", "version", "description"):
        if key not in header:
            raise WarehouseError(f"the view header lacks `-- {key}:`", where=str(path),
                                 fix="start the file with -- name:, -- version:, -- description:")
    if header["name"] != expected:
        raise WarehouseError(
            f"the header names the view {header['name']!r} but its path says {expected!r}",
            where=str(path), fix=f"set `-- name: {expected}` or move the file",
        )
    if not header["version"].isdigit() or int(header["version"]) < 1:
        raise WarehouseError(f"version {header['version']!r} is not a positive integer",
                             where=str(path), fix="write `-- version: 1` (then 2, 3, ...)")
    body = "\n".join(body_lines).strip().rstrip(";")
    return View(header["name"], int(header["version"]), header["description"], path, body,
                sha256=hashlib.sha256(raw).hexdigest())


def _parse_file(path: Path, root: Path) -> View:
    import sqlglot
    from sqlglot import exp

    view = _read_file(path, root)
    body = view.body
    try:
        statements = [s for s in sqlglot.parse(body, read="duckdb") if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise WarehouseError(f"the query does not parse: {exc}", where=str(path),
                             fix="fix the SQL (DuckDB dialect)") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise WarehouseError("a view file holds exactly one query (select ... from final)",
                             where=str(path), fix="remove other statements")
    view.ast = statements[0]
    return view


def discover(root: Path | None = None) -> list[View]:
    """All views, parsed, with parents resolved, in dependency order, fingerprinted."""
    from sqlglot import exp

    root = root or views_dir()
    views = {}
    for path in sorted(root.glob("*/*.sql")):
        view = _parse_file(path, root)
        _check_layer(view)
        views[view.name] = view
    for view in views.values():
        refs = {f"{t.db}.{t.name}".lower() for t in view.ast.find_all(exp.Table) if t.db}
        view.parents = sorted(r for r in refs if r in views)
    ordered = _in_dependency_order(views)
    for view in ordered:
        digest = hashlib.sha256(view.normalized.encode())
        for parent in view.parents:
            digest.update(views[parent].fingerprint.encode())
        view.fingerprint = digest.hexdigest()
    return ordered


def _check_layer(view: View) -> None:
    if view.schema not in LAYERS:
        raise WarehouseError(f"unknown layer {view.schema!r}", where=str(view.path),
                             fix=f"put views under one of: {', '.join(LAYERS)}")


def _in_dependency_order(views: dict[str, View]) -> list[View]:
    try:
        order = list(TopologicalSorter({n: v.parents for n, v in views.items()}).static_order())
    except CycleError as exc:
        raise WarehouseError(f"views depend on each other in a cycle: {exc.args[1]}",
                             fix="break the cycle") from None
    return [views[n] for n in order]


def _from_lock(lock: dict[str, Any] | None, root: Path | None = None) -> list[View] | None:
    """The views as locked, when every file is byte-identical to what was locked under the
    installed sqlglot; None when anything differs (then they must be parsed and checked)."""
    if not lock or lock.get("sqlglot_version") != sqlglot_version():
        return None
    root = root or views_dir()
    locked = lock.get("views", {})
    views = {}
    for path in sorted(root.glob("*/*.sql")):
        view = _read_file(path, root)
        entry = locked.get(view.name)
        if (entry is None or entry.get("sha256") != view.sha256
                or entry.get("version") != view.version):
            return None
        _check_layer(view)
        view.fingerprint, view.parents = entry["fingerprint"], list(entry.get("parents", []))
        views[view.name] = view
    if set(views) != set(locked):
        return None
    return _in_dependency_order(views)


# --- the lock ---------------------------------------------------------------------------------
def read_lock(path: Path | None = None) -> dict[str, Any] | None:
    path = path or lock_path()
    if not path.is_file():
        return None
    return dict(json.loads(path.read_text()))


def _lock_document(views: list[View]) -> dict[str, Any]:
    return {
        "sqlglot_version": sqlglot_version(),
        "views": {v.name: {"version": v.version, "fingerprint": v.fingerprint,
                           "parents": v.parents, "sha256": v.sha256}
                  for v in sorted(views, key=lambda v: v.name)},
    }


def problems(views: list[View], lock: dict[str, Any] | None, *, for_lock: bool = False
             ) -> list[str]:
    """What disagrees between the view files and the lock (empty when all is well).

    With ``for_lock``, only what ``lock`` itself must refuse: a changed view whose version was
    not bumped, or a version that went backwards.
    """
    if lock is None:
        return [] if for_lock else ["sql/views.lock is missing: run `workbench views lock`"]
    out = []
    locked_with = lock.get("sqlglot_version")
    if locked_with != sqlglot_version() and not for_lock:
        out.append(
            f"sql/views.lock was written with sqlglot {locked_with}, but sqlglot "
            f"{sqlglot_version()} is installed; fingerprints would not compare: install the "
            f"pinned version (pip install -e .) or, after review, re-lock"
        )
        return out
    locked = lock.get("views", {})
    for view in views:
        entry = locked.get(view.name)
        if entry is None:
            if not for_lock:
                out.append(f"{view.name} (v{view.version}) is not in sql/views.lock: "
                           "run `workbench views lock`")
            continue
        if view.version < entry["version"]:
            out.append(f"{view.name}: version {view.version} is below the locked "
                       f"{entry['version']}; versions only go up")
        elif view.version == entry["version"] and view.fingerprint != entry["fingerprint"]:
            out.append(
                f"{view.name} changed (fingerprint {entry['fingerprint'][:12]} -> "
                f"{view.fingerprint[:12]}) but its version is still {view.version}: bump "
                f"`-- version:` to {view.version + 1} in {view.path.name}, then run "
                "`workbench views lock`"
            )
        elif view.version > entry["version"] and not for_lock:
            out.append(f"{view.name} was bumped to v{view.version} but the lock has "
                       f"v{entry['version']}: run `workbench views lock`")
    if not for_lock:
        names = {v.name for v in views}
        for gone in sorted(set(locked) - names):
            out.append(f"{gone} is in sql/views.lock but its file is gone: "
                       "run `workbench views lock`")
    return out


def check(views: list[View] | None = None) -> list[View]:
    """Views as discovered, or WarehouseError when they disagree with the lock."""
    lock_doc = read_lock()
    if views is None:
        trusted = _from_lock(lock_doc)
        if trusted is not None:
            return trusted
        views = discover()
    found = problems(views, lock_doc)
    if found:
        raise WarehouseError("the SQL views disagree with sql/views.lock:\n       - "
                             + "\n       - ".join(found))
    return views


def lock(views: list[View] | None = None, path: Path | None = None) -> list[View]:
    """Rewrite the lock from the view files; refuse a change whose version was not bumped."""
    views = discover() if views is None else views
    path = path or lock_path()
    current = read_lock(path)
    if current and current.get("sqlglot_version") == sqlglot_version():
        found = problems(views, current, for_lock=True)
        if found:
            raise WarehouseError("refusing to lock:\n       - " + "\n       - ".join(found))
    path.write_text(json.dumps(_lock_document(views), indent=2, sort_keys=True) + "\n")
    return views


def versions(views: list[View]) -> dict[str, dict[str, Any]]:
    """{name: {version, fingerprint}}: what a manifest records."""
    return {v.name: {"version": v.version, "fingerprint": v.fingerprint} for v in views}


def lineage(views: list[View], names: Collection[str], *, stop: Collection[str] = ()
            ) -> list[View]:
    """The views ``names`` and every view they read, in dependency order (``views``'
    order), not looking past the views named in ``stop``."""
    by_name = {view.name: view for view in views}
    unknown = sorted(set(names) - set(by_name))
    if unknown:
        raise WarehouseError(f"no view named {', '.join(unknown)}",
                             fix=f"name one of: {', '.join(sorted(by_name))}")
    wanted: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in wanted or name not in by_name:  # a table (main.fills) or a stand-in
            continue
        wanted.add(name)
        if name not in stop:
            todo.extend(by_name[name].parents)
    return [view for view in views if view.name in wanted]


def _mark(view: View) -> str:
    return f"workbench view {view.version} {view.fingerprint}"


def deployed(con: Any) -> dict[str, str]:
    """The views the warehouse has that ``deploy`` made, by name: what their comments say
    (the connection's current database only: an attached one's views are not these)."""
    return dict(con.execute(
        "select schema_name || '.' || view_name, comment from duckdb_views() "
        "where not internal and database_name = current_database() "
        "and comment like 'workbench view %'").fetchall())


def create(con: Any, views: list[View], *, skip: Collection[str] = ()) -> None:
    """Create or replace the views in dependency order, but those named in ``skip`` (their
    names are already taken by something that stands in for them)."""
    for schema in LAYERS:
        con.execute(f"create schema if not exists {schema}")
    for view in views:
        if view.name not in skip:
            con.execute(f"create or replace view {view.name} as {view.body}")


def deploy(con: Any, views: list[View] | None = None) -> list[View]:
    """Create or replace every view in dependency order; record new versions. Nothing is done
    when the warehouse already has these views: each deployed view carries its fingerprint in
    its catalog comment, so a run does not re-create fifteen views it finds in place."""
    views = check(views)
    if deployed(con) == {view.name: _mark(view) for view in views}:
        return views
    installed = sqlglot_version()
    con.execute("begin transaction")
    try:
        create(con, views)
        for view in views:
            con.execute(f"comment on view {view.name} is '{_mark(view)}'")
            con.execute(
                "insert into view_versions select ?, ?, ?, ?, now() where not exists ("
                "select 1 from view_versions where name = ? and version = ? and fingerprint = ?)",
                [view.name, view.version, view.fingerprint, installed,
                 view.name, view.version, view.fingerprint],
            )
        con.execute("commit")
    except Exception:
        from workbench.warehouse.connect import rollback_quietly

        rollback_quietly(con)
        raise
    return views
