"""Atomic JSON snapshots of a live run's state, beside its write-ahead log.

``snapshot.json`` in the journal directory holds::

    {"format": "workbench.snapshot", "version": 1, "wal_seq": N, "sha256": "...", "state": {...}}

``wal_seq`` is the last WAL record the state covers (replay applies records after it);
``sha256`` is over the canonical JSON (orjson, keys sorted) of ``{"format", "version",
"wal_seq", "state"}``. ``state`` is whatever the caller hands in (``replay.State.to_dict()``:
positions, cash, open orders, risk state, the strategy's ``get_state()``); it goes through the
WAL's payload check, so a secret-named key is refused here too.

Writing (:func:`save_snapshot`): the JSON goes to ``snapshot.json.tmp``, is fsync'd, the current
``snapshot.json`` is renamed to ``snapshot.prev.json``, the temp file is renamed to
``snapshot.json``, and the directory is fsync'd. A crash at any point leaves a loadable snapshot:
before the first rename the old pair is intact (a leftover temp file is ignored and overwritten
next time); between the renames ``snapshot.json`` is missing and ``snapshot.prev.json`` is the
previous snapshot.

Loading (:func:`load_snapshot`): ``snapshot.json`` if present, its checksum, format and version
good; else ``snapshot.prev.json`` under the same checks; else None, and replay starts from the
first WAL record (the WAL holds everything, snapshots only shorten the replay). Each rejected
file is reported in ``Loaded.problems`` and logged as a warning. A snapshot of an unknown version
is skipped the same way.

Before saving, the caller must have synced the WAL up to ``wal_seq`` (``Wal.sync``): a snapshot
must never cover records a power loss could take back. :func:`take_snapshot` does it all: syncs
the WAL, saves, and appends a ``snapshot_ref`` record.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from workbench.recovery.wal import Wal, WalError, check_payload, fsync_dir

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "snapshot.json"
PREVIOUS_FILE = "snapshot.prev.json"
TEMP_FILE = "snapshot.json.tmp"
FORMAT = "workbench.snapshot"
SNAPSHOT_VERSION = 1


class Snapshot(NamedTuple):
    wal_seq: int
    state: dict[str, Any]
    sha256: str


class Loaded(NamedTuple):
    """The snapshot loaded (None: replay from the start), which file it came from, and what was
    wrong with the files passed over."""

    snapshot: Snapshot | None
    source: Path | None
    problems: list[str]


def _digest(wal_seq: int, state: Mapping[str, Any]) -> str:
    body = {"format": FORMAT, "version": SNAPSHOT_VERSION, "wal_seq": wal_seq, "state": state}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def save_snapshot(journal_dir: str | Path, state: Mapping[str, Any], wal_seq: int) -> Snapshot:
    """Atomically replace the journal directory's snapshot (see the module docstring)."""
    if not isinstance(wal_seq, int) or wal_seq < 0:
        raise WalError(f"a snapshot's wal_seq must be an integer >= 0, got {wal_seq!r}")
    check_payload(state, "snapshot state")
    directory = Path(journal_dir)
    try:
        sha = _digest(wal_seq, state)
    except TypeError as exc:
        raise WalError(f"the snapshot state cannot be written as JSON: {exc}") from None
    doc = {"format": FORMAT, "version": SNAPSHOT_VERSION, "wal_seq": wal_seq, "sha256": sha,
           "state": state}
    data = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    temp = directory / TEMP_FILE
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    current = directory / SNAPSHOT_FILE
    if current.exists():
        os.replace(current, directory / PREVIOUS_FILE)
    os.replace(temp, current)
    fsync_dir(directory)
    # round-trip what was written, so the returned state is exactly what a load gives back
    return Snapshot(wal_seq, orjson.loads(orjson.dumps(state)), sha)


def read_snapshot(path: Path) -> Snapshot:
    """One snapshot file, verified; raises ValueError saying what is wrong with it."""
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError("not a workbench snapshot")
    if doc.get("version") != SNAPSHOT_VERSION:
        raise ValueError(f"snapshot version {doc.get('version')!r}; this workbench reads "
                         f"version {SNAPSHOT_VERSION}")
    wal_seq, state, sha = doc.get("wal_seq"), doc.get("state"), doc.get("sha256")
    if not isinstance(wal_seq, int) or not isinstance(state, dict):
        raise ValueError("no wal_seq or no state")
    if _digest(wal_seq, state) != sha:
        raise ValueError("checksum mismatch")
    return Snapshot(wal_seq, state, sha)


def load_snapshot(journal_dir: str | Path) -> Loaded:
    """The newest good snapshot of the journal directory, or None (see the module docstring)."""
    directory = Path(journal_dir)
    problems: list[str] = []
    for name in (SNAPSHOT_FILE, PREVIOUS_FILE):
        path = directory / name
        if not path.exists():
            continue
        try:
            return Loaded(read_snapshot(path), path, problems)
        except (ValueError, OSError) as exc:
            problem = f"{path}: skipped, {exc}"
            log.warning("%s", problem)
            problems.append(problem)
    return Loaded(None, None, problems)


def take_snapshot(wal: Wal, state: Mapping[str, Any]) -> int:
    """Sync ``wal``, save ``state`` as covering every record in it, then append (synced) a
    ``snapshot_ref`` record naming it. Returns the snapshot's ``wal_seq``."""
    wal.sync()
    wal_seq = wal.last_seq
    if state.get("seq", wal_seq) != wal_seq:
        raise WalError(f"the state covers WAL seq {state.get('seq')!r} but the log is at seq "
                       f"{wal_seq}", where=str(wal.path),
                       fix="fold every record appended so far into the state before taking a "
                           "snapshot")
    snap = save_snapshot(wal.path.parent, state, wal_seq)
    wal.append("snapshot_ref", {"file": SNAPSHOT_FILE, "wal_seq": wal_seq,
                                "sha256": snap.sha256})
    return wal_seq
