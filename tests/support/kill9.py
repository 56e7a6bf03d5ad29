"""Run a child process that prints ``ready ...`` and then one line per durable write; SIGKILL it
at a chosen point. The kill -9 tests of the write-ahead log and WalJournal share it."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence


def kill_9_after(args: Sequence[str], want: int, *, env: Mapping[str, str] | None = None,
                 ) -> tuple[list[str], list[str]]:
    """Start ``args``, wait for its ``ready`` line, read ``want`` more lines, kill it with
    SIGKILL and read what it printed before dying. Returns (the ready line's words, every line
    it printed after it, stripped)."""
    child = subprocess.Popen(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
    assert child.stdout is not None and child.stderr is not None
    head = child.stdout.readline().split()
    assert head and head[0] == "ready", child.stderr.read()
    lines: list[str] = []
    for line in child.stdout:
        lines.append(line)
        if len(lines) >= want:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    lines += child.stdout.read().splitlines()  # printed before the kill
    child.stdout.close()
    child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    return head, [line.strip() for line in lines if line.strip()]
