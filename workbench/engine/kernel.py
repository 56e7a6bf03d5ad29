"""The kernel: the one place that wires a run for its mode (DESIGN 3, STYLE "one step, two loops").

``build(cfg, mode, strategy=..., run_id=...)`` chooses the clock, the feed (the loop that hands
bars to the step), the broker and the journal for ``mode``, builds the books and the risk engine
from the config, and returns them around one ``Step``. Nothing else in the engine asks which
mode it runs in: what differs between modes is data in a ``Wiring`` (``WIRINGS``), read here.

Backtest: ``BarClock``, ``SimBroker``, ``MemoryJournal``, the bar loop (``backtest.simulate``).
Shadow and paper: ``BarClock`` (model time: a decision and its paper fill carry the signal bar's
close time, so a paper run and a backtest of the same bars write the same files; the wall time
is journaled beside it), ``NullBroker`` or ``PaperBroker``, the journal the live runtime hands
in (its write-ahead log), and the live loop (``engine/live.py``) as the feed. Live: the same,
with ``BinanceBroker`` sending real orders to the venue the live runtime hands in
(``BrokerInputs.venue`` and its ``exchangeInfo``), each order record synced before it leaves.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from workbench.book import Book, ShortBook
from workbench.brokers.base import Broker
from workbench.brokers.execution import Execution, Latency
from workbench.brokers.fills import CostModel
from workbench.brokers.null import NullBroker
from workbench.brokers.paper import PaperBroker
from workbench.brokers.sim import SimBroker
from workbench.config import Config, timeframe_ms
from workbench.engine import backtest
from workbench.engine.carry import Borrow, Funding
from workbench.engine.clock import BarClock, Clock
from workbench.engine.journal import Journal, MemoryJournal
from workbench.engine.step import Step
from workbench.errors import ConfigError, StrategyError, WorkbenchError
from workbench.feeds.history import LoopData
from workbench.model import Mode
from workbench.risk.engine import RiskEngine
from workbench.strategy import Strategy, check_strategy_class, load_strategy_class
from workbench.telemetry.log import JsonlLog


@dataclass(frozen=True)
class BrokerInputs:
    """What a wiring's broker is made from: the costs, timeframe and execution settings
    (sim, paper), and for a broker that sends orders the venue client, its ``exchangeInfo``
    and the run's limits."""

    costs: CostModel
    timeframe_ms: int
    execution: Execution = field(default_factory=Execution)
    run_id: str = ""
    quote_asset: str = "USDT"
    venue: Any = None  # a VenueClient
    exchange_info: dict[str, Any] | None = None
    symbols: tuple[str, ...] = ()
    tiny: bool = False
    tiny_notional: float | None = None
    monotonic: Callable[[], float] = time.monotonic  # the live runtime's own clock
    invisible_s: float = 10.0
    short_margin: float | None = None  # shorts allowed (backtest only): SimBroker's margin


def binance_broker(inputs: BrokerInputs) -> Broker:
    """``BinanceBroker`` on the venue the live runtime checked (its symbols' filters), inside
    the ``ReplayingBroker`` a restart re-executes the journal through."""
    from workbench.brokers.binance import BinanceBroker
    from workbench.brokers.replaying import ReplayingBroker
    from workbench.brokers.venue_rules import SymbolFilters

    if inputs.venue is None or inputs.exchange_info is None:
        raise ValueError("a broker that sends orders needs the venue and its exchangeInfo")
    entries = {e["symbol"]: e for e in inputs.exchange_info.get("symbols", [])}
    for symbol in inputs.symbols:
        quote = entries[symbol].get("quoteAsset")
        if quote != inputs.quote_asset:
            raise ConfigError(f"{symbol} is quoted in {quote}, the portfolio in "
                              f"{inputs.quote_asset}", where="portfolio.quote",
                              fix=f"set portfolio.quote to {quote}, or trade symbols quoted in "
                                  f"{inputs.quote_asset}")
    return ReplayingBroker(BinanceBroker(
        inputs.venue, {s: SymbolFilters.from_exchange_info(entries[s]) for s in inputs.symbols},
        quote_asset=inputs.quote_asset,
        base_assets={s: str(entries[s].get("baseAsset", "")) for s in inputs.symbols},
        run_id=inputs.run_id, tiny=inputs.tiny, tiny_notional=inputs.tiny_notional,
        monotonic=inputs.monotonic, invisible_s=inputs.invisible_s))


@dataclass(frozen=True)
class Wiring:
    """What differs between modes, as data.

    ``pause_gc``: the job pauses Python's cyclic garbage collector for its whole length. A
    backtest holds millions of small objects that the collector would traverse again and again
    (~15 % of the loop, DESIGN 10) and ends within minutes; a long-running live process must
    keep collecting, so only the backtest wiring sets it.
    ``resume_next_day``: a daily-loss stop lifts by itself on the next UTC day (the backtest
    has no operator); in live modes it also needs an explicit resume.
    ``broker``: makes the mode's broker (``BrokerInputs``).
    ``sends_orders``: the broker sends real orders to the venue: the run needs the API key,
    every order record is synced before the order leaves (no group commit), and the loop asks
    the venue between bars (``Step.poll``).
    ``live``: the run is fed by the live loop (``engine/live.py``: venue bars, a write-ahead
    journal, restart) rather than by stored bars.
    ``group_commit``: the journal's records of one decision are written at once and synced
    together after it, by a syncer thread (``Wal.batch(background=True)``), not one by one on
    the decision path: no order of the mode leaves the process, and a restart re-derives the
    decisions a power loss took. A mode whose broker sends orders syncs each order
    record before the broker sees it.
    """

    mode: Mode
    pause_gc: bool
    resume_next_day: bool
    broker: Callable[[BrokerInputs], Broker]
    live: bool = False
    group_commit: bool = False
    sends_orders: bool = False


WIRINGS: dict[Mode, Wiring] = {
    Mode.BACKTEST: Wiring(Mode.BACKTEST, pause_gc=True, resume_next_day=True,
                          broker=lambda b: SimBroker(b.costs, b.execution, b.short_margin)),
    Mode.SHADOW: Wiring(Mode.SHADOW, pause_gc=False, resume_next_day=False,
                        broker=lambda b: NullBroker(), live=True, group_commit=True),
    Mode.PAPER: Wiring(Mode.PAPER, pause_gc=False, resume_next_day=False,
                       broker=lambda b: PaperBroker(b.costs, b.timeframe_ms, b.execution),
                       live=True,
                       group_commit=True),
    Mode.LIVE: Wiring(Mode.LIVE, pause_gc=False, resume_next_day=False, broker=binance_broker,
                      live=True, sends_orders=True),
}


def wiring(mode: Mode | str) -> Wiring:
    """The wiring of ``mode``; a mode without one is refused with what to run instead."""
    found = WIRINGS.get(Mode(mode))
    if found is None:
        raise ConfigError(f"mode {Mode(mode).value!r} is not wired yet",
                          fix="run a backtest, or shadow, paper or live "
                              "(`workbench shadow|paper|live`)")
    return found


@contextlib.contextmanager
def paused_gc(pause: bool = True) -> Iterator[None]:
    """Pause the cyclic garbage collector while the block runs (when ``pause``), then restore
    it as it was. Nothing in the step makes reference cycles, so nothing is leaked."""
    collecting = pause and gc.isenabled()
    if collecting:
        gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


@dataclass
class Kernel:
    """One wired run: the step (which holds the clock, broker and journal chosen for its mode)
    and the mode's feed."""

    wiring: Wiring
    step: Step
    feed: Callable[..., backtest.EquityRows]

    @property
    def clock(self) -> Clock:
        return self.step.clock

    @property
    def broker(self) -> Broker:
        return self.step.broker

    @property
    def journal(self) -> Journal:
        return self.step.journal

    def run(self, data: LoopData, progress: Callable[[int], None] | None = None
            ) -> backtest.EquityRows:
        """Start the strategy, hand it every bar through the mode's feed, stop it, and return
        the account per bar time; the garbage collector pauses as the wiring says."""
        with paused_gc(self.wiring.pause_gc):
            return self.feed(self.step, data, progress)


def cost_model(cfg: Config, bar_spreads: Mapping[str, Mapping[int, float]] | None = None
               ) -> CostModel:
    """The config's cost model; ``bar_spreads`` (per symbol, bar time -> bps) when
    ``costs.spread_column`` names a bars column, read by the run."""
    costs = cfg.costs
    if not costs.enabled:
        return CostModel.free(costs.fill_at)
    return CostModel(costs.fee_bps, costs.spread_bps, costs.slippage_bps, costs.min_notional,
                     costs.fill_at, fee_per_unit=costs.fee_per_unit, min_fee=costs.min_fee,
                     impact_k=costs.impact_k, impact_cap_bps=costs.impact_cap_bps,
                     impact_tiers=tuple((t.from_notional, t.bps) for t in costs.impact_tiers),
                     bar_spreads=bar_spreads if costs.spread_column else None)


def execution(cfg: Config) -> Execution:
    """The simulated venue's execution settings (``execution``; sim and paper only: a real
    venue has its own latency and liquidity)."""
    ex = cfg.execution
    lat = ex.latency
    return Execution(Latency(lat.submit_ms, lat.fill_ms[0], lat.fill_ms[1], lat.cancel_ms),
                     ex.participation_pct, ex.remainder == "cancel", cfg.run.seed,
                     timeframe_ms(cfg.data.timeframe))


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


def risk_engine(cfg: Config, costs: CostModel, wired: Wiring, log: JsonlLog | None = None
                ) -> RiskEngine | None:
    """The risk engine for the wiring's mode, or None when ``risk.modes`` switches it off."""
    if not getattr(cfg.risk.modes, wired.mode.value):
        return None
    return RiskEngine(cfg.risk, costs, resume_next_day=wired.resume_next_day, log=log)


def build(cfg: Config, mode: Mode | str, *, strategy: Strategy, run_id: str,
          log: JsonlLog | None = None, journal: Journal | None = None, venue: Any = None,
          exchange_info: dict[str, Any] | None = None, tiny: bool = False,
          monotonic: Callable[[], float] = time.monotonic,
          bar_spreads: Mapping[str, Mapping[int, float]] | None = None) -> Kernel:
    """Wire ``strategy`` for ``mode``: books from ``portfolio``, costs, the risk engine, and
    the mode's clock, broker, journal and feed (backtest: BarClock, SimBroker, MemoryJournal,
    the bar loop; shadow, paper and live: BarClock, NullBroker, PaperBroker or BinanceBroker,
    ``journal``, which the live runtime must pass: its write-ahead log; live also ``venue``
    and its ``exchange_info``, and ``tiny``; ``bar_spreads``: see ``cost_model``)."""
    wired = wiring(mode)
    if wired.sends_orders and not cfg.execution.default:
        raise ConfigError(
            "`execution` (a latency, a participation cap) shapes the simulated venue of "
            "backtest and paper runs; a live run meets the venue's own", where="execution",
            fix="leave `execution` out of a live run's config")
    shorts = cfg.portfolio.allow_short
    if shorts and wired.live:
        raise ConfigError(
            f"portfolio.allow_short: a {wired.mode.value} run trades Binance spot, which "
            "cannot sell beyond what the account holds", where="portfolio.allow_short",
            fix="set portfolio.allow_short: false for shadow, paper and live runs (shorts are "
                "for backtests)")
    if cfg.costs.funding_bps and wired.live:
        raise ConfigError(
            f"costs.funding_bps: a {wired.mode.value} run trades Binance spot, which pays no "
            "funding", where="costs.funding_bps",
            fix="set costs.funding_bps: 0 for shadow, paper and live runs (funding is for "
                "backtests of perpetual-style data)")
    if journal is None:
        if wired.live:
            raise ValueError(f"a {wired.mode.value} run journals to its write-ahead log: "
                             "pass journal=")
        journal = MemoryJournal()
    costs = cost_model(cfg, bar_spreads)
    tf_ms = timeframe_ms(cfg.data.timeframe)
    broker = wired.broker(BrokerInputs(
        costs, tf_ms, execution(cfg), run_id=run_id, quote_asset=cfg.portfolio.quote, venue=venue,
        exchange_info=exchange_info, symbols=tuple(cfg.data.symbols), tiny=tiny,
        tiny_notional=cfg.live.tiny_notional, monotonic=monotonic,
        invisible_s=cfg.live.invisible_s,
        short_margin=cfg.portfolio.short_margin if shorts else None))
    step = Step(strategy, broker, (ShortBook if shorts else Book)(cfg.portfolio.initial_cash),
                journal, run_id=run_id, timeframe_ms=tf_ms, seed=cfg.run.seed,
                risk=risk_engine(cfg, costs, wired, log), clock=BarClock(tf_ms),
                symbols=tuple(cfg.data.symbols))
    if shorts and cfg.costs.enabled and cfg.costs.borrow_bps_per_year:
        step.before_each_bar(Borrow(step.book, cfg.costs.borrow_bps_per_year, tf_ms))
    if cfg.costs.enabled and cfg.costs.funding_bps:
        step.before_each_bar(Funding(step.book, cfg.costs.funding_bps,
                                     timeframe_ms(cfg.costs.funding_every)))
    return Kernel(wired, step, backtest.simulate)
