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
import random
import typing
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import pydantic

from workbench import secrets
from workbench.errors import ConfigError
from workbench.model import Bar, Fill, Order, OrderIntent, ms_to_dt

if TYPE_CHECKING:
    from workbench.book import BookView
    from workbench.engine.step import Step


class Strategy:
    """Base class: override ``on_bar`` and, when needed, the other hooks."""

    _params_model: ClassVar[type[pydantic.BaseModel] | None] = None

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
        return dict(validated)

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
    only by orders.
    """

    __slots__ = ("_book", "_step", "_units", "book", "random", "timeframe_ms")

    def __init__(self, step: Step, timeframe_ms: int, seed: int) -> None:
        self._step = step
        self._book = step.book
        self._units = step.book.units
        self.book: BookView = step.book.view
        self.timeframe_ms = timeframe_ms
        self.random = random.Random(seed)

    @property
    def now(self) -> int:
        """The current bar's close time, ms UTC (the first bar's open time in on_start)."""
        return self._step.now

    @property
    def now_dt(self) -> datetime:
        return ms_to_dt(self.now)

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


def load_strategy_class(class_path: str, where: str = "strategy.class") -> type[Strategy]:
    """Import ``module:Class`` and check it is a Strategy, with a fix for each failure."""
    import importlib

    module_name, _, class_name = class_path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"cannot import strategy module {module_name!r}: {exc}", where=where,
            fix="check the module path (examples: workbench.strategies.sma_cross:SmaCross, "
                "workbench.strategies.pullback_limit:PullbackLimit) and that it is importable",
        ) from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # sys.exit() at import time, too
        raise ConfigError(
            f"importing strategy module {module_name!r} raised {type(exc).__name__}: {exc}",
            where=where, fix="fix the module so that it imports cleanly",
        ) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        found = [n for n, v in inspect.getmembers(module, inspect.isclass)
                 if issubclass(v, Strategy) and v is not Strategy]
        close = difflib.get_close_matches(class_name, found, n=1)
        hint = f"did you mean `{close[0]}`? " if close else ""
        raise ConfigError(
            f"module {module_name!r} has no class {class_name!r}", where=where,
            fix=f"{hint}strategies in it: {', '.join(found) or '(none)'}",
        )
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ConfigError(f"{class_path} is not a workbench Strategy subclass", where=where,
                          fix="derive it from workbench.Strategy")
    return cls
