"""Live runs against the fake exchange on simulated time: deterministic, no sleeping.

``SimTime`` is the process's monotonic clock and ``sleep`` for a ``LiveRun``, and moves the fake
exchange's ``ManualClock`` with it at ``speed`` venue ms per wall ms: a run of thousands of bars
takes as long as its HTTP calls, whatever the machine's load, and the same run gives the same
journal. ``live_run(...)`` starts a ``FakeBinance`` on 127.0.0.1 over a bar file and runs a
shadow or paper ``LiveRun`` in it; ``paper_config`` is a small SMA-cross config.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workbench.config import Config, load_config
from workbench.engine.live import LiveOptions, LiveResult, LiveRun
from workbench.model import Mode
from workbench.venue_client import RetryPolicy, VenueClient
from workbench.venues.bar_book import BarBook
from workbench.venues.fake_binance import FakeBinance
from workbench.venues.venue_clock import ManualClock

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "btcusdt_1m_2024-01_synthetic.csv"
MIN = 60_000


class SimTime:
    """Monotonic seconds and a sleep that advance the venue's ManualClock too."""

    def __init__(self, clock: ManualClock, speed: float = 600.0) -> None:
        self.clock, self.speed = clock, speed
        self.t = 1000.0
        self.lock = threading.Lock()

    def monotonic(self) -> float:
        with self.lock:
            return self.t

    def sleep(self, seconds: float) -> None:
        seconds = max(seconds, 0.0005)  # a zero sleep still lets venue time pass
        with self.lock:
            self.t += seconds
        self.clock.advance(int(seconds * 1000 * self.speed))


def paper_config(url: str, **sections: Any) -> Config:
    tree: dict[str, Any] = {
        "run": {"name": "live-test"},
        "data": {"symbols": ["BTCUSDT"], "timeframe": "1m"},
        "strategy": {"class": "workbench.strategies.sma_cross:SmaCross",
                     "params": {"fast": 5, "slow": 20, "qty": 0.01}},
        "portfolio": {"initial_cash": 10_000, "quote": "USDT"},
        "costs": {"fee_bps": 10, "slippage_bps": 5},
        "venue": {"base_url": url},
        "live": {"warmup_bars": 30, "snapshot_every_bars": 60, "gap_tolerance_bars": 1},
    }
    for name, values in sections.items():
        tree[name] = {**tree.get(name, {}), **values}
    return load_config(None, base=tree, env={})


def without_minutes(path: Path, holes: tuple[int, ...], data: Path = SAMPLE) -> Path:
    """``data`` written to ``path`` without the bars of ``holes`` (minutes from its first bar):
    gaps the venue then does not have."""
    lines = data.read_text().splitlines(keepends=True)
    skip = {h + 1 for h in holes}  # + the header line
    path.write_text("".join(line for i, line in enumerate(lines) if i not in skip))
    return path


@contextmanager
def fake_venue(start_ms: int, data: Path = SAMPLE, symbol: str = "BTCUSDT",
               faults: str | None = None, weight_limit: int = 10**9
               ) -> Iterator[tuple[FakeBinance, ManualClock]]:
    """The fake exchange on a ManualClock. Its request weight is counted per wall-clock minute,
    and simulated time packs hours of venue traffic into seconds: the limit is lifted unless
    a test sets one."""
    clock = ManualClock(start_ms)
    with FakeBinance(BarBook.from_file(data, symbol), clock=clock, faults=faults,
                     weight_limit=weight_limit) as fx:
        yield fx, clock


def live_run(fx: FakeBinance, clock: ManualClock, tmp: Path, *, run_id: str = "run-1",
             mode: Mode = Mode.PAPER, cfg: Config | None = None, speed: float = 600.0,
             options: LiveOptions | None = None, **sections: Any) -> LiveResult:
    """One LiveRun on simulated time (warehouse ``tmp/wh/w.duckdb``, runs in ``tmp/runs``)."""
    sim = SimTime(clock, speed)
    venue = VenueClient(fx.url, policy=RetryPolicy(base_s=0.01, cap_s=0.05),
                        sleep=sim.sleep, monotonic=sim.monotonic)
    run = LiveRun(cfg or paper_config(fx.url, **sections), mode, run_id=run_id,
                  warehouse=tmp / "wh" / "w.duckdb", run_dir=tmp / "runs" / run_id,
                  venue=venue, options=options or LiveOptions(max_bars=100),
                  sleep=sim.sleep, monotonic=sim.monotonic)
    return run.run()
