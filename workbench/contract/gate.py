"""The live gate's record: each adapter's contract-test result in the warehouse, and whether the
suite passed for an adapter on this version of the code.

"This version" is the git SHA (``manifest.git_sha``, ``-dirty`` included) and a fingerprint of
the workbench package's sources (sha256 over every ``workbench/**/*.py``, path and bytes), so an
edit to an uncommitted tree counts as another version. A run is written in one short
transaction (``open_rw``; adr/0008); the gate reads through ``reading`` and holds nothing.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from importlib import metadata
from pathlib import Path

from workbench.contract.runner import AdapterReport, Status

CONTRACT_MIGRATION = 4  # sql/schema/004_add_contract_runs.sql
_PACKAGE = Path(__file__).resolve().parent.parent


def code_fingerprint(package_dir: Path | None = None) -> str:
    """sha256 over the workbench package's ``*.py`` files: relative path and bytes of each."""
    root = package_dir or _PACKAGE
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def current_git_sha() -> str:
    """The checkout's HEAD (``-dirty`` when files changed), "unknown" outside git."""
    from workbench.manifest import git_sha

    return git_sha()


def version() -> str:
    """The installed workbench version."""
    try:
        return metadata.version("workbench")
    except metadata.PackageNotFoundError:
        return "unknown"


def record(warehouse: str | Path, reports: list[AdapterReport], *, git_sha: str,
           fingerprint: str) -> None:
    """Write one ``contract_runs`` row per adapter, in one short transaction."""
    from workbench.warehouse.results import write_transaction

    with write_transaction(Path(warehouse), wait_s=10.0) as (con, _):
        for r in reports:
            con.execute(
                "insert into contract_runs values (now(), ?, ?, ?, ?, ?, ?, ?, ?)",
                [r.adapter, git_sha, fingerprint, r.count(Status.PASSED), r.failed,
                 r.count(Status.SKIPPED), r.ok, json.dumps(r.to_dict(), sort_keys=True)])


def contract_passed(warehouse_path: str | Path, adapter: str, *, git_sha: str | None = None,
                    fingerprint: str | None = None) -> tuple[bool, str]:
    """Whether ``workbench contract-tests`` passed for ``adapter`` on this version of the code
    (its git SHA and source fingerprint), as recorded in the warehouse; the message says
    what was found and, when the answer is no, what to run."""
    from workbench.warehouse.connect import reading
    from workbench.warehouse.migrations import has_table

    path = Path(warehouse_path)
    sha = git_sha or current_git_sha()
    fp = fingerprint or code_fingerprint()
    run = f"run `workbench contract-tests --adapter {adapter} --warehouse {path}`"
    if not path.is_file():
        return False, f"no contract-test results: there is no warehouse at {path}; {run}"
    with reading(path) as con:
        applied = has_table(con, "schema_migrations") and con.execute(
            "select count(*) from schema_migrations where version = ?",
            [CONTRACT_MIGRATION]).fetchall()[0][0]
        if not applied:
            return False, (f"no contract-test results in {path} (it predates the "
                           f"contract_runs table); {run}")
        columns = "run_at, git_sha, code_fingerprint, ok, passed, failed, skipped"
        mine = con.execute(
            f"select {columns} from contract_runs where adapter = ? and git_sha = ? and "
            "code_fingerprint = ? order by run_at desc limit 1", [adapter, sha, fp]).fetchall()
        latest = con.execute(
            f"select {columns} from contract_runs where adapter = ? order by run_at desc "
            "limit 1", [adapter]).fetchall()
    this = f"git {sha[:12]}, fingerprint {fp[:12]}"
    if mine:
        run_at, _, _, ok, passed, failed, skipped = mine[0]
        when = _when(run_at)
        if ok:
            return True, (f"contract tests passed for {adapter} on this code ({this}) at "
                          f"{when}: {passed} passed, {skipped} skipped")
        why = f"{failed} check(s) failed" if failed else "no check passed (all skipped)"
        return False, (f"the contract-test run for {adapter} on this code ({this}) at {when} "
                       f"did not pass: {why}; fix that, then {run}")
    if latest:
        run_at, old_sha, old_fp = latest[0][:3]
        return False, (f"contract tests for {adapter} last ran at {_when(run_at)} on other code "
                       f"(git {old_sha[:12]}, fingerprint {old_fp[:12]}); this code is {this}: "
                       f"{run}")
    return False, f"contract tests never ran for {adapter} in {path}; {run}"


def _when(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds").replace("+00:00", "Z")
    return str(value)
