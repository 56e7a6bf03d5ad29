"""workbench: a notebook-first, SQL-backed trading workbench for 1-minute bars.

Most of what a user needs::

    from workbench import Strategy, Bar, OrderIntent, Side, run_backtest, plot, connect

and ``sweep`` for a grid of backtests on dask.distributed, ``walkforward`` for parameters
chosen on train windows and judged on the test windows that follow.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from workbench.engine.run import RunResult, run_backtest
from workbench.model import Bar, Fill, Order, OrderIntent, OrderStatus, OrderType, Side
from workbench.strategy import Context, Strategy

if TYPE_CHECKING:
    from workbench.sweeps import SweepResult, sweep
    from workbench.walkforward import WalkForwardResult, walkforward

__version__ = "0.1.0"

# imported when first asked for: a backtest's command line needs neither
_LATER = {"sweep": "workbench.sweeps", "SweepResult": "workbench.sweeps",
          "walkforward": "workbench.walkforward", "WalkForwardResult": "workbench.walkforward"}


def __getattr__(name: str) -> Any:
    if name in _LATER:
        import importlib

        return getattr(importlib.import_module(_LATER[name]), name)
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LATER})


class _Package(types.ModuleType):
    """Loading the submodule ``workbench.walkforward`` sets the package's attribute of that
    name to the module; ``workbench.walkforward`` stays the function, as it was imported
    eagerly."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "walkforward" and isinstance(value, types.ModuleType):
            value = value.walkforward
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def plot(run_id: str | None = None, *, warehouse: Any = None, symbol: str | None = None
         ) -> Any:
    """A plotly figure of a run's equity, drawdown and trades on the price (the latest
    completed run when ``run_id`` is None); ``run_backtest(...).plot()`` does the same."""
    from workbench.report.figures import plot as _plot

    return _plot(run_id, warehouse=warehouse, symbol=symbol)


def connect(path: Any = None, *, read_only: bool = True) -> Any:
    """A DuckDB connection to the warehouse: read-only by default (close it when done)."""
    from workbench.warehouse.connect import open_ro, open_rw

    return open_ro(path) if read_only else open_rw(path)


__all__ = [
    "Bar",
    "Context",
    "Fill",
    "Order",
    "OrderIntent",
    "OrderStatus",
    "OrderType",
    "RunResult",
    "Side",
    "Strategy",
    "SweepResult",
    "WalkForwardResult",
    "connect",
    "plot",
    "run_backtest",
    "sweep",
    "walkforward",
]
