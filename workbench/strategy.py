"""The Strategy base class and the Context a strategy sees.

A strategy declares its parameters as annotated class attributes with defaults::

    class Breakout(Strategy):
        lookback: int = 20
        qty: float = 0.01

        def on_bar(self, ctx, bar):
            ...

``Breakout(lookback=30)`` validates the parameters (types, unknown names with a "did you mean").
The strategy sees the current bar and its own state only: no future bars, no clock, no I/O.
"""

from __future__ import annotations

import difflib
import inspect
import os
import random
import sys
import typing
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pydantic

from workbench import secrets
from workbench.errors import ConfigError
from workbench.model import Bar, Fill, Order, OrderIntent, ms_to_dt

if TYPE_CHECKING:
    from workbench.book import BookView
    from workbench.engine.step import Step
    from workbench.indicators import Indicator


class Strategy:
    """Base class: override ``on_bar`` and, when needed, the other hooks."""

    _params_model: ClassVar[type[pydantic.BaseModel] | None] = None
    wake_on: ClassVar[str | None] = None
    """A declared indicator that is 0 (or NaN) on every bar where ``on_bar`` does nothing:
    returns no intents, submits and cancels nothing, changes no state of its own. A backtest
    then hands over only the bars where it is not 0, plus every bar while orders rest and the
    last bar (unless a risk rule follows the equity bar by bar); a live run hands over every
    bar. SmaCross: ``wake_on = "cross"``."""

    def __init__(self, **params: Any) -> None:
        values = type(self).validate_params(params)
        for name, value in values.items():
            setattr(self, name, value)

    # --- parameters -------------------------------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        return list(cls._param_fields())

    @classmethod
    def _param_fields(cls) -> dict[str, tuple[Any, Any]]:
        fields: dict[str, tuple[Any, Any]] = {}
        for klass in reversed(cls.__mro__):
            if klass is object or not issubclass(klass, Strategy):
                continue
            hints = typing.get_type_hints(klass, include_extras=True)
            for name in inspect.get_annotations(klass):
                hint = hints.get(name)
                if name.startswith("_") or typing.get_origin(hint) is ClassVar:
                    continue
                default = klass.__dict__.get(name, ...)
                fields[name] = (hint, default)
        return fields

    @classmethod
    def validate_params(cls, params: dict[str, Any], where: str = "strategy.params") -> dict:
        """Check ``params`` against the declared parameters; return them typed and complete."""
        fields = cls._param_fields()
        unknown = [k for k in params if k not in fields]
        if unknown:
            name = unknown[0]
            close = difflib.get_close_matches(name, list(fields), n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            known = ", ".join(fields) or "(none)"
            raise ConfigError(
                f"unknown parameter `{name}` for strategy {cls.__name__}",
                where=f"{where}.{name}",
                fix=f"{hint}{cls.__name__} takes: {known}",
            )
        if cls.__dict__.get("_params_model") is None:
            cls._params_model = pydantic.create_model(  # type: ignore[call-overload]
                f"{cls.__name__}Params",
                # inf and nan are refused like in the config: they overflow the books later
                __config__=pydantic.ConfigDict(extra="forbid", strict=False,
                                               allow_inf_nan=False),
                **fields,
            )
        model = cls.__dict__["_params_model"]
        try:
            validated = model.model_validate(params)
        except pydantic.ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            raise ConfigError(
                f"{err['msg']} (got {secrets.shown(err['loc'], err.get('input'))})",
                where=f"{where}.{key}",
                fix=f"set `{key}` to a valid value for {cls.__name__}",
            ) from None
        values = dict(validated)
        cls.check_params(values, where)
        return values

    @classmethod
    def check_params(cls, params: dict[str, Any], where: str = "strategy.params") -> None:
        """Checks across parameters (each one is already typed and valid on its own).

        Override to refuse combinations that cannot work, raising ``ConfigError`` with
        ``where`` naming the keys (``f"{where}.fast/slow"``) and a fix.
        """

    @property
    def warmup_bars(self) -> int:
        """Bars of a symbol the strategy reads before it can act on that symbol (default 0).

        The end-of-run summary warns when a run placed no orders and a symbol had no more bars
        than this: the strategy never left its warm-up. Override it (SmaCross: ``slow``).
        """
        return 0

    def indicators(self) -> dict[str, Indicator]:
        """Declared indicators by name (default none): ``ctx.ind.<name>`` at each bar is the
        value at that bar of its symbol, computed vectorised before a backtest's loop and bar
        by bar live, the same to the bit (``workbench.indicators``). Called once per run,
        after the parameters are set::

            def indicators(self):
                return {"cross": Cross(Sma(self.fast), Sma(self.slow))}
        """
        return {}

    # --- hooks ------------------------------------------------------------------------------
    def on_start(self, ctx: Context) -> None:
        """Called once before the first bar."""

    def on_bar(self, ctx: Context, bar: Bar) -> list[OrderIntent] | None:
        """Called for every closed bar; return intents or call ``ctx.submit``."""
        return None

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        """Called after each fill has been applied to the books."""

    def on_reject(self, ctx: Context, order: Order) -> None:
        """Called when an order ends REJECTED (broker) or BLOCKED (risk); see ``order.reason``."""

    def on_stop(self, ctx: Context) -> None:
        """Called once after the last bar."""


class Context:
    """What a strategy may see and do. ``now`` is ms UTC: the current bar's close time.

    The books are read-only here (``ctx.book`` is a ``BookView``); a strategy changes them
    only by orders. ``ind`` holds the declared indicators' values at the current bar
    (``Strategy.indicators``; None when none are declared).
    """

    __slots__ = ("_book", "_step", "_units", "book", "ind", "random", "timeframe_ms")

    def __init__(self, step: Step, timeframe_ms: int, seed: int) -> None:
        self._step = step
        self._book = step.book
        self._units = step.book.units
        self.book: BookView = step.book.view
        self.timeframe_ms = timeframe_ms
        self.random = random.Random(seed)
        self.ind: Any = None

    @property
    def now(self) -> int:
        """The current bar's close time, ms UTC (the first bar's open time in on_start)."""
        return self._step.now

    @property
    def now_dt(self) -> datetime:
        return ms_to_dt(self.now)

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols the run trades, as configured (``data.symbols``)."""
        return self._step.symbols

    @property
    def cash(self) -> float:
        return self._book.cash

    @property
    def equity(self) -> float:
        return self._book.equity()

    def position(self, symbol: str) -> float:
        return self._units.get(symbol, 0) / 100_000_000

    def submit(self, intent: OrderIntent) -> Order:
        """Send an intent through risk to the broker; returns the order (the cancel handle)."""
        return self._step.submit(intent)

    def cancel(self, order: Order) -> bool:
        """Ask to cancel an open order; False when it had already ended."""
        return self._step.cancel(order)

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return self._step.open_orders(symbol)


def search_dirs(paths: Iterable[str | Path] = ()) -> list[Path]:
    """Where user strategies are imported from: each of ``paths`` (an entry may hold several
    directories separated by ``os.pathsep``), then the working directory, as ``python -m``
    puts it on ``sys.path``. A directory that does not exist is a ConfigError."""
    dirs: list[Path] = []
    for entry in paths:
        for part in str(entry).split(os.pathsep):
            if not part.strip():
                continue
            d = Path(part).expanduser().resolve()
            if not d.is_dir():
                raise ConfigError(
                    f"strategy path {part!r} is not a directory ({d})",
                    where="--strategy-path / strategy.path",
                    fix="name a directory that holds your strategy modules (relative paths "
                        "start at the working directory)")
            if d not in dirs:
                dirs.append(d)
    cwd = Path.cwd().resolve()
    if cwd not in dirs:
        dirs.append(cwd)
    return dirs


def strategy_identity(cls: type) -> str:
    """``module:qualname``: how a run's config and manifest name a strategy class."""
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_strategy_module(module_name: str, dirs: list[Path], where: str) -> Any:
    import importlib

    # As `python -m` does for the working directory: the search directories come first on
    # sys.path and stay there (the strategy's own later imports of sibling modules need them).
    for d in reversed(dirs):
        if str(d) not in sys.path:
            sys.path.insert(0, str(d))
    importlib.invalidate_caches()  # a module file written since the last import
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and not (module_name == missing or module_name.startswith(missing + ".")):
            raise ConfigError(
                f"strategy module {module_name!r} was found, but its own import of "
                f"{missing!r} failed: {exc}", where=where,
                fix=f"install {missing.split('.')[0]!r} into this environment, or fix that "
                    "import in the strategy module") from None
        file = module_name.replace(".", "/")
        searched = "\n         ".join(str(d) for d in dirs)
        raise ConfigError(
            f"cannot import strategy module {module_name!r}: no {file}.py (or package "
            f"{file}/) in the searched directories:\n         {searched}\n       nor among "
            "the installed packages", where=where,
            fix=f"run from the directory that holds {file}.py, or pass --strategy-path DIR "
                "(strategy.path in the config; repeatable, or separated by "
                f"{os.pathsep!r}), or in Python pass the class itself: "
                "run_backtest(config, strategy=MyStrategy). Built-in examples: "
                "workbench.strategies.sma_cross:SmaCross, "
                "workbench.strategies.pullback_limit:PullbackLimit",
        ) from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # sys.exit() at import time, too
        raise ConfigError(
            f"importing strategy module {module_name!r} raised {type(exc).__name__}: {exc}",
            where=where, fix="fix the module so that it imports cleanly",
        ) from None


def load_strategy_class(class_path: str, where: str = "strategy.class",
                        paths: Iterable[str | Path] = ()) -> type[Strategy]:
    """Import ``module:Class`` and check it is a Strategy, with a fix for each failure.

    The module is searched in ``paths``, then the working directory, then the installed
    packages (``search_dirs``). ``Class`` may be a dotted qualified name (``Outer.Inner``).
    """
    module_name, _, qualname = class_path.partition(":")
    module = _import_strategy_module(module_name, search_dirs(paths), where)
    if "<locals>" in qualname:
        raise ConfigError(
            f"{class_path} is defined inside a function and cannot be imported by name",
            where=where, fix="pass the class itself: run_backtest(config, strategy=TheClass)")
    cls: Any = module
    for part in qualname.split("."):
        cls = getattr(cls, part, None)
        if cls is None:
            break
    if cls is None:
        found = [n for n, v in inspect.getmembers(module, inspect.isclass)
                 if issubclass(v, Strategy) and v is not Strategy]
        close = difflib.get_close_matches(qualname, found, n=1)
        hint = f"did you mean `{close[0]}`? " if close else ""
        if module_name == "__main__":
            hint += ("a class defined in a notebook or script (__main__) is known only in "
                     "that session: pass it as run_backtest(config, strategy=MyStrategy), or "
                     "move it into a module file; ")
        raise ConfigError(
            f"module {module_name!r} has no class {qualname!r}", where=where,
            fix=f"{hint}strategies in it: {', '.join(found) or '(none)'}",
        )
    return check_strategy_class(cls, where, class_path)


def check_strategy_class(cls: Any, where: str = "strategy.class",
                         name: str | None = None) -> type[Strategy]:
    """``cls`` if it is a Strategy subclass; a ConfigError otherwise."""
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ConfigError(f"{name or cls!r} is not a workbench Strategy subclass", where=where,
                          fix="derive it from workbench.Strategy")
    return cls
