"""Where notebook paths point: the project directory, whatever the kernel's cwd.

A notebook runs with cwd ``notebooks/`` in JupyterLab, the project directory under
``papermill notebooks/report.ipynb ...`` from a shell, or a copy folder (``make lab`` works on
copies in ``lab/``). Relative paths in notebook parameters (a config, a warehouse, a runs folder)
therefore resolve against the project directory, never the cwd:

* the project is the nearest folder, from the cwd up, holding ``pyproject.toml`` and
  ``notebooks/``; else the checkout this package was imported from; else the cwd;
* ``warehouse=None`` is ``$WB_WAREHOUSE``, else ``<project>/warehouse/workbench.duckdb``;
* ``runs_dir=None`` is ``$WB_RUNS_DIR``, else ``<project>/runs``.

Reads then go through ``workbench.warehouse.connect.reading`` (open read-only, then close), which
refuses a missing file and names it: a read never creates an empty warehouse.
"""

from __future__ import annotations

import os
from pathlib import Path

from workbench.warehouse.connect import DEFAULT_PATH
from workbench.warehouse.paths import project_root


def _is_project(folder: Path) -> bool:
    return (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir()


def project_dir() -> Path:
    """The project directory notebook paths are relative to (see the module docstring)."""
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if _is_project(folder):
            return folder
    checkout = project_root()
    return checkout if _is_project(checkout) else cwd


def project_path(path: str | Path) -> Path:
    """``path`` if absolute, else ``path`` under the project directory."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_dir() / p


def warehouse_path(warehouse: str | Path | None = None, env_prefix: str = "WB_") -> Path:
    """The warehouse a notebook reads: ``warehouse``, ``$WB_WAREHOUSE``, or the project's
    ``warehouse/workbench.duckdb``; relative paths are under the project directory."""
    chosen = warehouse or os.environ.get(f"{env_prefix}WAREHOUSE") or DEFAULT_PATH
    return project_path(chosen)


def runs_dir_path(runs_dir: str | Path | None = None, env_prefix: str = "WB_") -> Path:
    """Where a notebook's backtest puts its run folder: ``runs_dir``, ``$WB_RUNS_DIR``, or the
    project's ``runs/``; relative paths are under the project directory."""
    chosen = runs_dir or os.environ.get(f"{env_prefix}RUNS_DIR") or "runs"
    return project_path(chosen)
