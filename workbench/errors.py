"""Errors a user can act on: what went wrong, where, and how to fix it."""

from __future__ import annotations

import traceback


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
        """The message as printed and stored, with every secret value seen so far masked."""
        from workbench.secrets import scrub

        head = f"{self.where}: {self.what}" if self.where else self.what
        return scrub(f"{head}\n       {self.fix}" if self.fix else head)


class ConfigError(WorkbenchError):
    """The configuration (file, environment, --set) is missing, unknown or invalid."""

    exit_code = 2


class DataError(WorkbenchError):
    """Input bars are unreadable or fail quality control; nothing was loaded."""


class StrategyError(WorkbenchError):
    """The strategy raised, or asked for something impossible."""


class WarehouseError(WorkbenchError):
    """The warehouse file is busy, corrupt, or its schema or views disagree with the code."""


class ResourceError(WorkbenchError):
    """The machine ran out of a resource (memory) at a named stage of a job."""


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by a signal (SIGTERM from `timeout`, systemd, docker):
    handled like Ctrl-C, so the run ends ``failed`` with the signal named."""

    def __init__(self, signal_name: str = "SIGTERM") -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


class EngineFault(Exception):
    """A defect inside the engine (books, broker, journal) met while serving a strategy's call.

    Deliberately not a WorkbenchError: it is reported as an internal error, never as "fix the
    strategy". The original exception is its ``__cause__``.
    """

    def __init__(self, cause: BaseException, where: str) -> None:
        frames = traceback.extract_tb(cause.__traceback__)
        at = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        super().__init__(f"{type(cause).__name__} in the engine during {where}: {cause}{at}")


class QueryRefused(WorkbenchError):
    """`workbench sql` refused a statement that is not a read."""

    exit_code = 2
