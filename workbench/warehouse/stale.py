"""Runs whose process is gone: a ``running`` row never outlives its process.

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
    """Mark the running rows of dead processes ``abandoned``; return their run ids. Called
    on every read-write open, so the file is ours for the moment."""
    rows = con.execute(
        "select run_id, pid, host from runs where status = 'running'").fetchall()
    gone = [r[0] for r in rows if is_stale("running", r[1], r[2])]
    for run_id in gone:
        con.execute(
            "update runs set status = 'abandoned', ended_at = coalesce(ended_at, now()), "
            "error = coalesce(error, 'its process ended without closing the run (killed?)') "
            "where run_id = ?", [run_id])
    return gone
