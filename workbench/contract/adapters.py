"""What each adapter trades through: a step wired to its broker, and its market data feed.

* ``paper``: ``PaperBroker`` (the sim fill model) through the step; bars from an in-process
  ``FakeBinance`` on 127.0.0.1 read by ``RestKlineFeed`` (as a live paper run reads them).
* ``fake-binance``: ``BinanceBroker`` and ``RestKlineFeed`` against an in-process
  ``FakeBinance`` with the real python-binance client; venue time is a ``ManualClock`` the
  checks step, so nothing sleeps.
* ``binance-testnet``: the same against https://testnet.binance.vision, only when
  ``WB_VENUE__API_KEY``/``WB_VENUE__API_SECRET`` are set and the host answers ``/api/v3/ping``
  within 3 s; otherwise every check is skipped with the reason.

A check asks its adapter for a fresh ``Rig`` (``adapter.rig()``) and drives it; the adapter
stops every fake exchange it started when it is closed.
"""

from __future__ import annotations

import os
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.book import Book
from workbench.brokers.fills import CostModel
from workbench.brokers.paper import PaperBroker
from workbench.engine.journal import Journal, MemoryJournal
from workbench.engine.step import Step
from workbench.feeds.binance_rest import RestKlineFeed
from workbench.model import Bar, Order, OrderIntent, OrderType, Side
from workbench.risk.engine import RiskEngine
from workbench.strategy import Context, Strategy
from workbench.venue_client import RetryPolicy, VenueClient

ADAPTERS = ("paper", "fake-binance", "binance-testnet")
DEFAULT_ADAPTERS = ("paper", "fake-binance")
TESTNET_URL = "https://testnet.binance.vision"
SYMBOL = "BTCUSDT"
T0 = 1_704_067_200_000  # 2024-01-01T00:00Z, the first bar of the fake's data
MIN = 60_000
BARS = 40
START_BARS = 10  # bars closed when a rig starts
KEY, SECRET = "contract-key", "contract-secret"
CASH = 10_000.0
PAPER_COSTS = CostModel(fee_bps=10.0, min_notional=1.0)


class Idle(Strategy):
    """Decides nothing: the checks submit through the step themselves."""

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        return None


def write_bars(path: Path, count: int = BARS) -> Path:
    """Deterministic 1-minute BTCUSDT bars from ``T0`` (a CSV the fake exchange serves)."""
    lines = ["ts,open,high,low,close,volume"]
    for i in range(count):
        o = 42_000 + i
        lines.append(f"{T0 + i * MIN},{o:.2f},{o + 5.25:.2f},{o - 3.5:.2f},{o + 1.75:.2f},"
                     f"{0.004 + i / 10_000:.4f}")
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Rig:
    """One step wired to one adapter's broker, the feed its bars come from, and the hooks a
    check steps time with. ``submitted``: the order seqs that reached the broker."""

    step: Step
    broker: Any
    feed: RestKlineFeed
    venue: VenueClient
    fx: Any = None  # the FakeBinance, when there is one
    clock: Any = None  # the venue's ManualClock, when time can be stepped
    mono: list[float] = field(default_factory=lambda: [1000.0])
    sleeps: list[float] = field(default_factory=list)
    submitted: list[int] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)

    def order(self, side: Side, qty: float, limit: float | None = None) -> Order:
        """Submit through the step, on the last closed bar."""
        kind = OrderType.MARKET if limit is None else OrderType.LIMIT
        return self.step.submit(OrderIntent(SYMBOL, side, qty, kind, limit))

    def cancel(self, order: Order) -> bool:
        return self.step.cancel(order)

    def feed_bars(self) -> list[Bar]:
        """The bars closed since the last call, through the step (then a poll)."""
        after = self.bars[-1].ts if self.bars else None
        new, _ = self.feed.closed_bars(after, self.venue.now_ms())
        for bar in new:
            self.step.on_bar(bar)
            self.bars.append(bar)
        self.step.poll()
        return new

    def advance(self, minutes: int = 1, mono_s: float = 0.0) -> list[Bar]:
        """Venue minutes pass (bars close, resting orders work); the broker's clock moves."""
        if self.clock is None:
            raise RuntimeError("this venue's time cannot be stepped")
        self.clock.advance(minutes * MIN)
        self.mono[0] += mono_s
        self.venue.sync_time()
        return self.feed_bars()

    def venue_orders(self) -> int | None:
        """Orders the venue holds (None: no venue, a simulated broker)."""
        return None if self.fx is None else len(self.fx.matcher.orders)


class Adapter:
    """Base: capabilities and the fake exchanges it started (stopped by ``close``)."""

    name = ""
    simulated = False  # fills come from the sim fill model (no venue takes the order)
    faults = False  # faults can be injected (a fake venue)
    steps_time = False  # venue time can be stepped

    def __init__(self) -> None:
        self._fakes: list[Any] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def unavailable(self) -> str | None:
        """Why this adapter cannot run here (None: it can)."""
        return None

    def tmp(self) -> Path:
        """A scratch directory, removed by ``close``."""
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="wb-contract-")
        return Path(self._tmp.name)

    def scratch(self, name: str) -> Path:
        """A fresh directory under ``tmp``."""
        path = self.tmp() / name
        n = 0
        while path.exists():
            n += 1
            path = self.tmp() / f"{name}-{n}"
        path.mkdir(parents=True)
        return path

    def rig(self, *, journal: Journal | None = None, risk: RiskEngine | None = None,
            **venue_options: Any) -> Rig:
        """A fresh rig; ``venue_options`` go to the fake exchange (e.g. ``participation``)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop every fake exchange started; remove the scratch directory."""
        for fx in self._fakes:
            fx.stop()
        self._fakes.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # --- a fake venue on 127.0.0.1 ---------------------------------------------------------
    def _fake_venue(self, **venue_options: Any) -> tuple[Any, Any, VenueClient, list[float],
                                                           list[float]]:
        from workbench.venues.bar_book import BarBook
        from workbench.venues.fake_binance import FakeBinance
        from workbench.venues.venue_clock import ManualClock

        path = self.tmp() / "bars.csv"
        if not path.exists():
            write_bars(path)
        clock = ManualClock(T0 + START_BARS * MIN)
        wall = ManualClock(1_800_000_000_000)
        fx = FakeBinance(BarBook.from_file(path, SYMBOL), clock=clock, api_key=KEY,
                         api_secret=SECRET, wall_ms=wall.now_ms, **venue_options).start()
        self._fakes.append(fx)
        mono = [1000.0]
        sleeps: list[float] = []
        venue = VenueClient(fx.url, api_key=KEY, api_secret=SECRET,
                            policy=RetryPolicy(attempts=4, base_s=0.25, cap_s=8.0),
                            sleep=sleeps.append, monotonic=lambda: mono[0])
        venue.sync_time()
        return fx, clock, venue, mono, sleeps

    def _fake_rig(self, make_broker: Callable[[VenueClient, list[float]], Any], run_id: str,
                  journal: Journal | None, risk: RiskEngine | None,
                  venue_options: dict[str, Any], *, expose_venue: bool) -> Rig:
        """A rig on a fresh fake venue: ``make_broker(venue client, monotonic cell)``; the
        fake itself is handed to the checks (to inject faults) only with ``expose_venue``."""
        fx, clock, venue, mono, sleeps = self._fake_venue(**venue_options)
        broker = make_broker(venue, mono)
        step, submitted = self._wire(broker, venue, journal, risk, run_id)
        rig = Rig(step, broker, RestKlineFeed(venue, SYMBOL, MIN), venue,
                  fx if expose_venue else None, clock, mono, sleeps, submitted)
        rig.feed_bars()
        return rig

    @staticmethod
    def _wire(broker: Any, venue: VenueClient, journal: Journal | None,
              risk: RiskEngine | None, run_id: str) -> tuple[Step, list[int]]:
        submitted: list[int] = []
        submit: Callable[[Order], None] = broker.submit

        def counted(order: Order) -> None:
            submitted.append(order.order_seq)
            submit(order)

        setattr(broker, "submit", counted)  # noqa: B010 (an instance hook, on purpose)
        step = Step(Idle(), broker, Book(CASH), journal or MemoryJournal(), run_id=run_id,
                    timeframe_ms=MIN, risk=risk)
        step.start(T0)
        return step, submitted


class PaperAdapter(Adapter):
    name = "paper"
    simulated = True
    steps_time = True

    def rig(self, *, journal: Journal | None = None, risk: RiskEngine | None = None,
            **venue_options: Any) -> Rig:
        return self._fake_rig(lambda venue, mono: PaperBroker(PAPER_COSTS, timeframe_ms=MIN),
                              "contract-paper", journal, risk, venue_options,
                              expose_venue=False)


class FakeBinanceAdapter(Adapter):
    name = "fake-binance"
    faults = True
    steps_time = True

    def rig(self, *, journal: Journal | None = None, risk: RiskEngine | None = None,
            **venue_options: Any) -> Rig:
        from workbench.brokers.binance import BinanceBroker

        return self._fake_rig(
            lambda venue, mono: BinanceBroker(venue, _filters(venue), quote_asset="USDT",
                                              base_assets={SYMBOL: "BTC"},
                                              run_id="contract-fake",
                                              monotonic=lambda: mono[0]),
            "contract-fake", journal, risk, venue_options, expose_venue=True)


class TestnetAdapter(Adapter):
    """Binance Spot testnet: real orders on play money. Runs only with keys and network."""

    __test__ = False  # not a pytest class
    name = "binance-testnet"

    def __init__(self, base_url: str = TESTNET_URL, env: dict[str, str] | None = None) -> None:
        super().__init__()
        self.base_url = base_url
        self.env = dict(os.environ) if env is None else env

    def unavailable(self) -> str | None:
        missing = [k for k in ("WB_VENUE__API_KEY", "WB_VENUE__API_SECRET")
                   if not self.env.get(k)]
        if missing:
            return (f"{' and '.join(missing)} not set: binance-testnet needs testnet API keys "
                    f"(make them at {TESTNET_URL}, then export both)")
        try:
            with urllib.request.urlopen(f"{self.base_url}/api/v3/ping", timeout=3) as answer:
                if answer.status != 200:
                    return f"{self.base_url}/api/v3/ping answered HTTP {answer.status}"
        except OSError as exc:
            return (f"{self.base_url} did not answer /api/v3/ping within 3 s ({exc}): no "
                    "network, or the testnet is down")
        return None

    def rig(self, *, journal: Journal | None = None, risk: RiskEngine | None = None,
            **venue_options: Any) -> Rig:
        from workbench.brokers.binance import BinanceBroker
        from workbench.manifest import new_id

        venue = VenueClient(self.base_url, api_key=self.env["WB_VENUE__API_KEY"],
                            api_secret=self.env["WB_VENUE__API_SECRET"])
        venue.sync_time()
        run_id = new_id("ct")
        broker = BinanceBroker(venue, _filters(venue), quote_asset="USDT",
                               base_assets={SYMBOL: "BTC"}, run_id=run_id)
        step, submitted = self._wire(broker, venue, journal, risk, run_id)
        feed = RestKlineFeed(venue, SYMBOL, MIN)
        rig = Rig(step, broker, feed, venue, submitted=submitted)
        for bar in feed.warmup(5, venue.now_ms()):
            step.on_bar(bar)
            rig.bars.append(bar)
        return rig


def _filters(venue: VenueClient) -> dict[str, Any]:
    from workbench.brokers.venue_rules import SymbolFilters

    info = venue.call("exchangeInfo", venue.client.get_exchange_info)
    return {s["symbol"]: SymbolFilters.from_exchange_info(s) for s in info["symbols"]
            if s["symbol"] == SYMBOL}


FACTORIES: dict[str, Callable[[], Adapter]] = {
    "paper": PaperAdapter,
    "fake-binance": FakeBinanceAdapter,
    "binance-testnet": TestnetAdapter,
}


def make(name: str) -> Adapter:
    """The adapter called ``name`` (one of ``ADAPTERS``)."""
    try:
        return FACTORIES[name]()
    except KeyError:
        raise ValueError(f"no contract adapter {name!r}; use one of {', '.join(ADAPTERS)}"
                         ) from None
