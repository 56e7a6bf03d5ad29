"""Errors a user can act on: what went wrong, where, and how to fix it."""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base of every error the CLI reports without a traceback.

    ``what`` says what went wrong, ``where`` names the file, row, key or run, and ``fix`` says
    what to do about it. ``exit_code`` is the process exit status the CLI uses.
    """

    exit_code = 1

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.where}: {self.what}" if self.where else self.what
        return f"{head}\n       {self.fix}" if self.fix else head


class ConfigError(WorkbenchError):
    """The configuration (file, environment, --set) is missing, unknown or invalid."""

    exit_code = 2


class DataError(WorkbenchError):
    """Input bars are unreadable or fail quality control; nothing was loaded."""


class StrategyError(WorkbenchError):
    """The strategy raised, or asked for something impossible."""


class WarehouseError(WorkbenchError):
    """The warehouse file is busy, corrupt, or its schema or views disagree with the code."""


class QueryRefused(WorkbenchError):
    """`workbench sql` refused a statement that is not a read."""

    exit_code = 2
