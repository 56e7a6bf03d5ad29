"""The deterministic backtest: a bar clock over stored bars, the SimBroker, the shared step.

``run_backtest`` is the whole job (config -> bars -> QC -> loop -> warehouse -> run directory);
``simulate`` is the loop alone. The backtest never reads the wall clock for decisions, so the
same config and data give byte-identical trades, orders, fills and equity files.
"""

from __future__ import annotations

import gc
import os
import sys
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from workbench.book import Book
from workbench.brokers.fills import CostModel
from workbench.brokers.sim import SimBroker
from workbench.config import Config, StrategyConfig, load_config, timeframe_ms
from workbench.engine.journal import MemoryJournal
from workbench.engine.step import Step
from workbench.errors import StrategyError, WorkbenchError
from workbench.feeds.history import LoopData
from workbench.model import QTY_SCALE, Bar, Mode
from workbench.risk.engine import RiskEngine
from workbench.strategy import (
    Strategy,
    check_strategy_class,
    load_strategy_class,
    strategy_identity,
)
from workbench.telemetry.log import JsonlLog

CHUNK = 1 << 15


@dataclass
class EquityRows:
    """The account after each distinct bar time, from the loop's own books.

    Cash and positions are the Book's own values after its last fill at or before each bar
    time (``Book.history``); each position is marked at its symbol's last close at or before
    that time, as ``Book.position_value`` does in the loop.
    """

    ts: np.ndarray
    cash: np.ndarray
    position_value: np.ndarray
    equity: np.ndarray
    in_market: np.ndarray  # any position held


_new_bar = tuple.__new__


def simulate(step: Step, data: LoopData, progress: Callable[[int], None] | None = None,
             *, start: int | None = None) -> EquityRows:
    """The whole backtest loop: start the strategy, ``feed`` it every bar, stop it, then mark
    the account per bar time (``equity_rows``), so orders placed in ``on_stop`` are marked too.

    ``start`` is ``ctx.now`` in ``on_start`` (default: the first bar's open time).
    """
    step.start(start if start is not None else int(data.ts[0]) if len(data) else 0)
    feed(step, data, progress)
    step.stop()
    return equity_rows(step.book, data)


def feed(step: Step, data: LoopData, progress: Callable[[int], None] | None = None) -> None:
    """Hand every bar to the step in (ts, symbol) order.

    The bars are handed over at C speed (``map``) from one chunk at a time of the columns,
    copied into ``array.array``s whose iteration makes each Python value as it is needed
    (cheaper than ``tolist``, and memory stays flat); the only Python work per bar is the
    step's. Equity is
    not recorded bar by bar: the Book records its state at each fill, and ``equity_rows``
    marks it afterwards, vectorised.
    """
    n = len(data)
    on_bar = step.on_bar
    consume = deque[None](maxlen=0).extend
    name = data.symbol_names[0] if data.single else None
    i8, f8 = np.int64, np.float64
    columns = (("q", i8, data.ts), ("d", f8, data.open), ("d", f8, data.high),
               ("d", f8, data.low), ("d", f8, data.close), ("d", f8, data.volume))
    # The ledger grows by millions of small objects; the cyclic collector would traverse them
    # again and again (it cost more than the orders themselves). Nothing in the step makes
    # reference cycles, so the collector pauses for the loop and is re-enabled afterwards.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for lo in range(0, n, CHUNK):
            hi = min(lo + CHUNK, n)
            symbols: Iterable[str] = (repeat(name, hi - lo) if name is not None
                                      else data.symbol_chunk(lo, hi))
            consume(map(on_bar, map(_new_bar, repeat(Bar), zip(
                symbols, *[array(code, column[lo:hi].astype(kind, copy=False).tobytes())
                           for code, kind, column in columns], strict=False))))
            if progress is not None:
                progress(hi - lo)
    finally:
        if collecting:
            gc.enable()


def equity_rows(book: Book, data: LoopData) -> EquityRows:
    """Cash, position value and equity after each distinct bar time (see EquityRows)."""
    ts = data.ts_array
    last_of_ts = np.flatnonzero(np.append(ts[1:] != ts[:-1], True)) if len(ts) else ts
    grid = ts[last_of_ts]
    history = book.history
    fill_ts = np.fromiter((h[0] for h in history), np.int64, len(history))
    # state after the last fill at or before each bar time; slot 0 is the state before any fill
    after = np.searchsorted(fill_ts, grid, side="right")
    cash_after = np.fromiter((h[1] for h in history), np.float64, len(history))
    cash = np.concatenate(([book.initial_cash], cash_after))[after]
    value = np.zeros(len(grid))
    held = np.zeros(len(grid), dtype=bool)
    closes = data.close_array
    fill_symbol = np.array([h[2] for h in history], dtype=object)
    fill_units = np.fromiter((h[3] for h in history), np.int64, len(history))
    for k, name in enumerate(data.symbol_names):
        mine = np.flatnonzero(fill_symbol == name)
        if not len(mine):
            continue
        units_after = np.concatenate(([0], fill_units[mine]))
        units = units_after[np.searchsorted(fill_ts[mine], grid, side="right")]
        rows = np.flatnonzero(data.symbol_index == k)
        seen = np.searchsorted(ts[rows], grid, side="right") - 1  # this symbol's last bar
        mark = closes[rows[np.maximum(seen, 0)]]
        value = value + np.where(units != 0, units / QTY_SCALE * mark, 0.0)
        held |= units != 0
    return EquityRows(grid, cash, value, cash + value, held)


def cost_model(cfg: Config) -> CostModel:
    costs = cfg.costs
    if not costs.enabled:
        return CostModel.free(costs.fill_at)
    return CostModel(costs.fee_bps, costs.spread_bps, costs.slippage_bps, costs.min_notional,
                     costs.fill_at)


def strategy_class(cfg: Config) -> type[Strategy]:
    """The class passed in Python (``with_strategy``), else ``strategy.class`` imported from
    ``strategy.path``, the working directory or the installed packages."""
    given = cfg.strategy._class
    if given is not None:
        return check_strategy_class(given)
    return load_strategy_class(cfg.strategy.class_path, paths=cfg.strategy.path)


def build_strategy(cfg: Config) -> Strategy:
    cls = strategy_class(cfg)
    try:
        return cls(**cfg.strategy.params)  # validated by the constructor
    except (WorkbenchError, KeyboardInterrupt):
        raise
    except BaseException as exc:  # the strategy's own __init__ raised (or called sys.exit)
        raise StrategyError(
            f"strategy {cls.__name__} raised {type(exc).__name__} in __init__: {exc}",
            where="strategy.class", fix="fix the strategy's constructor and run again",
        ) from exc


def with_strategy(cfg: Config, cls: type[Strategy]) -> Config:
    """``cfg`` running the class ``cls`` itself: ``strategy.class`` must already name it
    (``module:qualname``, as ``run_backtest`` sets it), so the hash records its identity."""
    check_strategy_class(cls)
    cfg.strategy._class = cls
    return cfg


def _strategy_in(config: Any) -> Any:
    """A class object given as ``strategy.class`` in a config mapping, else None."""
    if isinstance(config, Config):
        return config.strategy._class
    if isinstance(config, Mapping):
        section = config.get("strategy")
        if isinstance(section, Mapping) and isinstance(section.get("class"), type):
            return section["class"]
    return None


def _without_class(config: Any) -> Any:
    if isinstance(config, Mapping) and isinstance(config.get("strategy"), Mapping):
        section = {k: v for k, v in config["strategy"].items() if k != "class"}
        return {**config, "strategy": section}
    return config


def build_step(cfg: Config, strategy: Strategy, run_id: str, log: JsonlLog | None = None
               ) -> Step:
    """The backtest's wiring: SimBroker, fresh books, an in-memory journal, the risk engine."""
    costs = cost_model(cfg)
    return Step(strategy, SimBroker(costs), Book(cfg.portfolio.initial_cash), MemoryJournal(),
                run_id=run_id, timeframe_ms=timeframe_ms(cfg.data.timeframe), seed=cfg.run.seed,
                risk=RiskEngine.for_mode(cfg.risk, costs, Mode.BACKTEST, log))


def as_config(config: Config | str | Path | Mapping[str, Any] | None, overrides: Iterable[str],
              env_prefix: str, env: Mapping[str, str] | None = None) -> Config:
    if isinstance(config, Config):
        if overrides:
            return load_config(None, overrides, base=config.to_dict(reveal=True), env={},
                               env_prefix=env_prefix)
        return config
    if isinstance(config, Mapping):
        return load_config(None, overrides, base=config, env=env, env_prefix=env_prefix)
    return load_config(config, overrides, env=env, env_prefix=env_prefix)


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    metrics: dict[str, Any]
    manifest: dict[str, Any]

    @property
    def headline(self) -> str:
        m = self.metrics
        fmt = lambda v, spec: "n/a" if v is None else format(v, spec)  # noqa: E731
        return (f"trades {m.get('trades', 0)}, total return {fmt(m.get('total_return_pct'), '.4f')}"
                f" %, max drawdown {fmt(m.get('max_drawdown_pct'), '.4f')} %, "
                f"Sharpe {fmt(m.get('sharpe'), '.3f')}")

    def __repr__(self) -> str:
        """Short enough for a notebook cell: the id, the headline, then any warnings."""
        lines = [f"RunResult {self.run_id} ({self.run_dir}): {self.headline}"]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    @property
    def summary(self) -> dict[str, Any]:
        """Warnings, order counts (rejected and risk-blocked by reason), bars per symbol."""
        return dict(self.manifest.get("summary") or {})

    @property
    def warnings(self) -> list[str]:
        """What the run should tell you: the range clipped to the data, a strategy that never
        finished its warm-up, rejected and risk-blocked orders (see engine/summary.py)."""
        return list(self.summary.get("warnings") or [])

    def plot(self, symbol: str | None = None) -> Any:
        """Equity, drawdown and the trades on the price, as one plotly figure
        (``workbench.plot(run_id)``); it reads the warehouse read-only."""
        from workbench.report.figures import plot

        return plot(self.run_id, warehouse=self.manifest.get("warehouse"), symbol=symbol)


def run_backtest(
    config: Config | str | Path | Mapping[str, Any] | None = None,
    *,
    overrides: Iterable[str] = (),
    warehouse: str | Path | None = None,
    start: str | None = None,
    end: str | None = None,
    gaps: str | None = None,
    out: str | Path | None = None,
    env_prefix: str = "WB_",
    env: Mapping[str, str] | None = None,
    progress: bool | None = None,
    runs_dir: str | Path | None = None,
    strategy: type[Strategy] | str | None = None,
    strategy_path: str | Path | Iterable[str | Path] | None = None,
) -> RunResult:
    """Run one backtest end to end and return its id, directory, headline metrics and manifest.

    ``config`` is a YAML path, a dict of sections (``{"data": {...}, "strategy": {"params":
    {...}}}``), a ``Config``, or None (the defaults). ``strategy`` is the strategy: a Strategy
    subclass (defined anywhere, a notebook included) or a ``"module:Class"`` string; a class
    may also be given as ``strategy.class`` in a dict. The config records a class as
    ``module:qualname``. ``strategy_path`` adds directories to search for ``module``
    (``--strategy-path``; the working directory is always searched).

    ``start`` (inclusive), ``end`` (exclusive) and ``gaps`` override the config's ``data``
    section, as ``--from``, ``--to`` and ``--gaps`` do on the command line. The run directory
    is ``out``, or ``runs_dir/<run_id>`` (``runs_dir`` defaults to ``$WB_RUNS_DIR``, else
    ``runs``). ``progress`` shows a bar (default: on a terminal).
    """
    from workbench.engine.run import execute

    cls = _strategy_in(config) if strategy is None else (
        strategy if isinstance(strategy, type) else None)
    if cls is not None:
        check_strategy_class(cls, "strategy" if strategy is not None else "strategy.class")
    if cls is not None or strategy is not None:  # the argument wins over the config's class
        config = _without_class(config)
    extra = list(overrides)
    if isinstance(strategy, str):
        extra.append(f"strategy.class={strategy}")
    elif cls is not None:
        extra.append(f"strategy.class={strategy_identity(cls)}")
    for key, value in (("data.start", start), ("data.end", end), ("data.gaps", gaps)):
        if value is not None:
            extra.append(f"{key}={value}")
    cfg = as_config(config, extra, env_prefix, env)
    if strategy_path is not None:
        dirs = ([strategy_path] if isinstance(strategy_path, str | Path)
                else list(strategy_path))
        paths = [str(p) for p in dirs] + list(cfg.strategy.path)
        cfg = cfg.model_copy(update={"strategy": StrategyConfig.model_validate(
            {**cfg.strategy.model_dump(by_alias=True), "path": paths})})
    if cls is not None:
        cfg = with_strategy(cfg, cls)
    show = sys.stderr.isatty() if progress is None else progress
    if runs_dir is None:
        runs_dir = os.environ.get(f"{env_prefix}RUNS_DIR") or "runs"
    return execute(cfg, warehouse=warehouse, out=out, progress=show, env_prefix=env_prefix,
                   runs_dir=runs_dir)
