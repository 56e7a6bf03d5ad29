"""Run manifests: what ran, on what data, with which code, config and views.

Every run writes ``run_manifest.json`` in its run directory and the same facts in its ``runs``
row. Secrets never appear here: the config comes in masked (``Config.to_dict()``), its hash is
over the real values, and the text written is scrubbed of every secret value the process has
seen (an error message quoting one, say); see ``workbench.secrets``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from workbench.secrets import clean
from workbench.warehouse.paths import project_root

PACKAGES = ("workbench", "duckdb", "sqlglot", "pyarrow", "numpy", "pydantic", "pyyaml")


def new_id(prefix: str = "") -> str:
    """A fresh id: UTC time to the second plus 6 random hex digits (``20260101T000000-3fa9c1``)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    core = f"{stamp}-{secrets.token_hex(3)}"
    return f"{prefix}-{core}" if prefix else core


def git_sha(root: Path | None = None) -> str:
    """The checkout's HEAD, with ``-dirty`` when files changed; "unknown" outside git."""
    root = root or project_root()
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha or "unknown"


def versions() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["python"] = sys.version.split()[0]
    found["os"] = platform.platform()
    return found


def data_hash(arrays: list[np.ndarray], symbols: list[str]) -> str:
    """sha256 over the exact bars a run saw: the symbols' names, then each symbol's times and
    OHLCV columns in symbol order (the caller passes them so)."""
    digest = hashlib.sha256()
    digest.update("\0".join(symbols).encode())
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def utc_now_iso() -> str:
    ms = time.time_ns() // 1_000_000
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def write(path: Path, manifest: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(clean(manifest), indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)
