"""The deterministic backtest: a bar clock over stored bars, the SimBroker, the shared step.

``run_backtest`` is the whole job (config -> bars -> QC -> loop -> warehouse -> run directory);
``run_loop`` is the loop alone. The backtest never reads the wall clock for decisions, so the
same config and data give byte-identical trades, orders, fills and equity files.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

from workbench.book import Book
from workbench.brokers.fills import CostModel
from workbench.brokers.sim import SimBroker
from workbench.config import Config, load_config, timeframe_ms
from workbench.engine.journal import MemoryJournal
from workbench.engine.step import Step
from workbench.feeds.history import LoopData
from workbench.model import Bar
from workbench.strategy import Strategy, load_strategy_class

CHUNK = 1 << 16


@dataclass
class EquityRows:
    """The account after each distinct bar time: the loop's own books, marked at last closes."""

    ts: list[int] = field(default_factory=list)
    cash: list[float] = field(default_factory=list)
    position_value: list[float] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)


def run_loop(step: Step, data: LoopData, progress: Callable[[int], None] | None = None
             ) -> EquityRows:
    """Feed every bar to the step in order; record the account once per distinct bar time."""
    rows = EquityRows()
    n = len(data)
    if not n:
        return rows
    book = step.book
    on_bar = step.on_bar
    eq_ts, eq_cash, eq_pv, eq_eq = rows.ts, rows.cash, rows.position_value, rows.equity
    single = data.symbols is None
    name = data.symbol_names[0]
    for lo in range(0, n, CHUNK):
        hi = min(lo + CHUNK, n)
        symbols: Iterable[str] = repeat(name, hi - lo) if single else data.symbols[lo:hi]  # type: ignore[index]
        batch = zip(symbols, data.ts[lo:hi], data.open[lo:hi], data.high[lo:hi],
                    data.low[lo:hi], data.close[lo:hi], data.volume[lo:hi], strict=False)
        if single:
            for sym, ts, o, h, lo_, c, v in batch:
                on_bar(Bar(sym, ts, o, h, lo_, c, v))
                cash = book.cash
                pv = book.position_value() if book.units else 0.0
                eq_ts.append(ts)
                eq_cash.append(cash)
                eq_pv.append(pv)
                eq_eq.append(cash + pv)
        else:
            next_ts = data.ts
            for i, (sym, ts, o, h, lo_, c, v) in enumerate(batch, lo):
                on_bar(Bar(sym, ts, o, h, lo_, c, v))
                if i + 1 == n or next_ts[i + 1] != ts:
                    cash = book.cash
                    pv = book.position_value() if book.units else 0.0
                    eq_ts.append(ts)
                    eq_cash.append(cash)
                    eq_pv.append(pv)
                    eq_eq.append(cash + pv)
        if progress is not None:
            progress(hi - lo)
    return rows


def cost_model(cfg: Config) -> CostModel:
    costs = cfg.costs
    if not costs.enabled:
        return CostModel.free(costs.fill_at)
    return CostModel(costs.fee_bps, costs.spread_bps, costs.slippage_bps, costs.min_notional,
                     costs.fill_at)


def build_strategy(cfg: Config) -> Strategy:
    cls = load_strategy_class(cfg.strategy.class_path)
    return cls(**cls.validate_params(dict(cfg.strategy.params)))


def build_step(cfg: Config, strategy: Strategy, run_id: str) -> Step:
    """The backtest's wiring: SimBroker, fresh books, an in-memory journal."""
    return Step(strategy, SimBroker(cost_model(cfg)), Book(cfg.portfolio.initial_cash),
                MemoryJournal(), run_id=run_id, timeframe_ms=timeframe_ms(cfg.data.timeframe),
                seed=cfg.run.seed)


def as_config(config: Config | str | Path | Mapping[str, Any] | None, overrides: Iterable[str],
              env_prefix: str, env: Mapping[str, str] | None = None) -> Config:
    if isinstance(config, Config):
        if overrides:
            return load_config(None, overrides, base=config.to_dict(), env={},
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
) -> RunResult:
    """Run one backtest end to end and return its id, directory, headline metrics and manifest.

    ``start`` (inclusive), ``end`` (exclusive) and ``gaps`` override the config's ``data``
    section, as ``--from``, ``--to`` and ``--gaps`` do on the command line.
    """
    from workbench.engine.run import execute

    extra = list(overrides)
    for key, value in (("data.start", start), ("data.end", end), ("data.gaps", gaps)):
        if value is not None:
            extra.append(f"{key}={value}")
    cfg = as_config(config, extra, env_prefix, env)
    show = sys.stderr.isatty() if progress is None else progress
    return execute(cfg, warehouse=warehouse, out=out, progress=show)
