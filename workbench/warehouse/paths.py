"""Where the project's SQL lives: ``sql/`` in a checkout, ``workbench/sql`` in a wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent


def sql_dir() -> Path:
    for candidate in (_PACKAGE.parent / "sql", _PACKAGE / "sql"):
        if (candidate / "schema").is_dir():
            return candidate
    raise FileNotFoundError(f"cannot find the sql/ folder next to {_PACKAGE}")


def project_root() -> Path:
    return _PACKAGE.parent
