"""Runs whose process is gone: a ``running`` row never outlives its process.

The points of a sweep (``experiments``) are owned the same way by the sweep's driver while
they are ``pending`` or ``running``: a driver killed mid-sweep leaves them ``abandoned``.

A ``runs`` row says ``running`` only while the process that wrote it (``pid`` on ``host``) is
alive. Every read-write open marks the rows of dead processes ``abandoned``; readers show them
so until then (``effective_status``). A row without a pid comes from a job that held the file
for its whole length (before migration 002): whoever can open the file read-write knows that
job is gone.
"""

from __future__ import annotations

import os
import socket
from typing import Any

HOST = socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def is_stale(status: str | None, pid: int | None, host: str | None) -> bool:
    """A ``running`` row whose process is known to be gone. Whoever asks has the file open
    (DuckDB refuses that while another process holds it read-write), so the job of a row
    without a pid, which held the file for its whole length, is gone too."""
    if status != "running":
        return False
    if pid is None:
        return True
    return host == HOST and not pid_alive(int(pid))


def effective_status(status: str | None, pid: int | None, host: str | None) -> str | None:
    """The status to show: ``abandoned`` for a running row whose process is gone
    (``is_stale``)."""
    return "abandoned" if is_stale(status, pid, host) else status


def abandon_stale(con: Any) -> list[str]:
    """Mark the running rows of dead processes ``abandoned``, and the unfinished points of
    sweeps whose driver is dead; return the run ids. Called on every read-write open, so the
    file is ours for the moment."""
    _abandon_stale_points(con)
    rows = con.execute(
        "select run_id, pid, host from runs where status = 'running'").fetchall()
    gone = [r[0] for r in rows if is_stale("running", r[1], r[2])]
    for run_id in gone:
        con.execute(
            "update runs set status = 'abandoned', ended_at = coalesce(ended_at, now()), "
            "error = coalesce(error, 'its process ended without closing the run (killed?)') "
            "where run_id = ?", [run_id])
    return gone


def _abandon_stale_points(con: Any) -> None:
    drivers = con.execute(
        "select distinct sweep_id, pid, host from experiments "
        "where status in ('pending', 'running')").fetchall()
    for sweep_id, pid, host in drivers:
        if is_stale("running", pid, host):
            con.execute(
                "update experiments set status = 'abandoned', "
                "ended_at = coalesce(ended_at, now()), "
                "error = coalesce(error, 'the sweep''s driver process ended before this "
                "point finished (killed?); run the sweep again for its points') "
                "where sweep_id = ? and status in ('pending', 'running') "
                "and pid is not distinct from ? and host is not distinct from ?",
                [sweep_id, pid, host])
