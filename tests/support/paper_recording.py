"""A short paper run recorded into a warehouse, for the live monitor (notebooks/live_monitor.ipynb
under nbval, its papermill test, the API's tests).

``record_paper_run(folder, warehouse)`` runs a ``LiveRun`` in paper mode on simulated time
against the fake exchange (``live_harness``) over the first 600 sample bars with three minutes
missing (a ``bar_gap`` alert, beyond ``live.gap_tolerance_bars=1``): 30 warm-up bars, then
``bars`` decided ones, a dozen SMA-cross orders and fills; the backtest twin is flushed with it,
so ``rpt.live_vs_backtest`` has rows (and they agree). The run directory is
``<runs_dir>/<run_id>``, its status.json included. A few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from live_harness import MIN, SAMPLE, SimTime, fake_venue, paper_config

from workbench.engine.live import LiveOptions, LiveRun
from workbench.model import Mode
from workbench.venue_client import RetryPolicy, VenueClient
from workbench.venues.bar_book import BarBook
from workbench.venues.fake_binance import DEFAULT_API_KEY, DEFAULT_API_SECRET

MISSING = (351, 352, 353)  # data rows left out of the bar file: a gap of three bars
# the fake exchange's credentials, set in the run's config: no output may show them
FAKE_KEY, FAKE_SECRET = DEFAULT_API_KEY, DEFAULT_API_SECRET


@dataclass(frozen=True)
class Recorded:
    db: Path
    run_id: str
    run_dir: Path
    bars: int


def gapped_bars(path: Path, rows: int = 600, missing: tuple[int, ...] = MISSING) -> Path:
    """The first ``rows`` bars of the sample with the rows ``missing`` (1-based) left out."""
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()[:1 + rows]
    path.write_text("\n".join(ln for i, ln in enumerate(lines) if i not in missing) + "\n",
                    encoding="utf-8")
    return path


def record_paper_run(folder: Path, warehouse: Path | None = None, *,
                     runs_dir: Path | None = None, run_id: str = "paper-monitor",
                     bars: int = 200) -> Recorded:
    """Record the run (see the module docstring) into ``warehouse`` (default
    ``folder/wh/w.duckdb``); its run directory under ``runs_dir`` (default ``folder/runs``)."""
    folder.mkdir(parents=True, exist_ok=True)
    db = warehouse or folder / "wh" / "w.duckdb"
    run_dir = (runs_dir or folder / "runs") / run_id
    data = gapped_bars(folder / "monitor_bars.csv")
    start = BarBook.from_file(data, "BTCUSDT").first_open_ms + 200 * MIN + 7_000
    with fake_venue(start, data=data) as (fx, clock):
        sim = SimTime(clock)
        venue = VenueClient(fx.url, api_key=FAKE_KEY, api_secret=FAKE_SECRET,
                            policy=RetryPolicy(base_s=0.01, cap_s=0.05), sleep=sim.sleep,
                            monotonic=sim.monotonic)
        cfg = paper_config(fx.url, run={"name": "monitor-demo"},
                           venue={"api_key": FAKE_KEY, "api_secret": FAKE_SECRET})
        result = LiveRun(cfg, Mode.PAPER, run_id=run_id, warehouse=db, run_dir=run_dir,
                         venue=venue, options=LiveOptions(max_bars=bars), sleep=sim.sleep,
                         monotonic=sim.monotonic).run()
    if result.status != "completed" or result.bars != bars:
        raise AssertionError(f"the monitor's paper run did not complete: {result}")
    return Recorded(db, run_id, run_dir, bars)
