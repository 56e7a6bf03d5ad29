"""Errors a user can act on: what went wrong, where, and how to fix it."""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator


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


# Signals the command line's handlers received, in order. Raising from a signal handler is
# not enough on its own: the exception can land in a weakref callback or finaliser (where
# Python prints and drops it) or inside DuckDB (which turns it into "Query interrupted").
_RECEIVED: list[str] = []


_DEFERRING: list[bool] = []


def note_signal(name: str) -> bool:
    """Note a stop signal; True when its exception must wait (``signals_held``)."""
    _RECEIVED.append(name)
    return bool(_DEFERRING)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM (through the command line's handlers) wait until the block ends (a
    commit and the note that it happened): the handlers only note them inside it, and they
    arrive when it ends (``raise_if_signalled``). A signal mask would not do: DuckDB's threads
    take the signal instead."""
    _DEFERRING.append(True)
    try:
        yield
    finally:
        _DEFERRING.pop()
    raise_if_signalled()


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends, as in ``signals_held``, and only one
    received inside the block is raised then: for a few statements that must not be cut in
    two (a journal record written and counted), also while a stop is already being handled."""
    before = len(_RECEIVED)
    _DEFERRING.append(True)
    try:
        yield
    finally:
        _DEFERRING.pop()
    if len(_RECEIVED) > before:
        raise _stop(_RECEIVED[before])


def clear_signals() -> None:
    _RECEIVED.clear()


def signal_received() -> str | None:
    """The first stop signal received (``SIGTERM``, ``SIGINT``), if any."""
    return _RECEIVED[0] if _RECEIVED else None


def as_interruption(exc: BaseException) -> BaseException:
    """``exc``, or the interruption it stands for: a signal was received (whatever it turned
    into on the way), or DuckDB reports the query interrupted (Ctrl-C in a notebook)."""
    if isinstance(exc, KeyboardInterrupt):
        return exc
    name = signal_received()
    if name is not None:
        return _stop(name)
    import duckdb

    interrupted = (isinstance(exc, RuntimeError | duckdb.InterruptException)
                   and "interrupted" in str(exc).lower())
    return KeyboardInterrupt() if interrupted else exc


def raise_if_signalled() -> None:
    """Raise the interruption of a signal received earlier whose exception was lost."""
    name = signal_received()
    if name is not None:
        raise _stop(name)


def _stop(name: str) -> KeyboardInterrupt:
    """The exception a stop signal stands for: KeyboardInterrupt for SIGINT, else Terminated."""
    return KeyboardInterrupt() if name == "SIGINT" else Terminated(name)


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
