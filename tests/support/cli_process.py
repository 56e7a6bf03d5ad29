"""``workbench ARGS`` in a separate process, as a user runs it: its exit code, stdout, stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def run_subprocess(*args: str, cwd: Path, env: dict[str, str] | None = None,
                   timeout: float = 300, console: bool = False) -> CliResult:
    """Run ``python -m workbench ARGS`` as a separate process, with no WB_* from the caller's
    shell. ``console`` runs the ``workbench`` console script instead, without PYTHONPATH
    (unlike ``python -m``, it does not put the working directory on sys.path by itself)."""
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith("WB_") and not (console and k == "PYTHONPATH")}
    full_env.update(env or {})
    cmd = [sys.executable, "-m", "workbench"]
    script = Path(sys.executable).with_name("workbench")
    if console and script.exists():
        cmd = [str(script)]
    proc = subprocess.run([*cmd, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)
