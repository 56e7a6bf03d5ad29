"""The live loop: venue bars through the shared step, journaled ahead, restartable by replay.

``LiveRun(...).run()`` runs a shadow or paper strategy on the venue's closed bars:

* Time: the loop schedules by the venue's clock (``VenueTime``: ``/api/v3/time``, read once a
  bar and extrapolated at the rate the venue's clock is seen to run), so the same code runs
  against Binance and against ``workbench fake-exchange --speed 600``. A bar is asked for just
  after its close (``poll_after_ms``) and counts once closed.
* Feed: ``RestKlineFeed`` per symbol. Warm-up bars (``max(live.warmup_bars,
  strategy.warmup_bars)``) are handed to ``Step.warm`` before the first decision; bars missed
  (a restart, an outage) are back-filled from klines (phase ``backfill``); bars the venue does
  not have are ``gap`` records (and an alert beyond ``live.gap_tolerance_bars``).
* Journal: every bar (``bar``), every decision (``decision``: latency, lag, orders), every order,
  order event and fill (through the kernel's step, synced before the broker sees the order),
  every risk block (``risk_event``), operator control (``control``), gap and alert go to the run's
  write-ahead log in ``warehouse/live/<run_id>/`` (``recovery/wal.py``); live, also each venue
  execution (``venue_fill``), reconciliation and change of the venue's order failures in a row
  (``order_failures``, which a restart counts on from).
* Restart (the same command, ``--run-id``): the log is the truth. The journaled bars are handed
  again to a fresh step in the order they were journaled, with the operator controls at the
  points they were taken; each order, event and fill the step makes is checked against the one
  journaled (``ResumingJournal``) instead of written, and the first one past the end of the log
  is written (a kill between the order record and the broker call is finished, never sent
  twice). The strategy, the books, the risk engine and the sequences come back exactly as an
  uninterrupted run had them; then the bars missed while down are back-filled. The books are
  checked against ``recovery.rebuild`` (snapshot + WAL tail). See adr/0014.
* Snapshots (``recovery.take_snapshot``) on every position change and every
  ``live.snapshot_every_bars``; the run directory (manifest, CSVs, ``status.json``) is refreshed
  with them; operator controls arrive through ``<run_dir>/control/`` (``workbench halt`` ...).

``--max-bars N`` (live and back-filled bars, counted across restarts) and ``--until TS`` (the last
bar processed closes at or before TS) end a run cleanly; a restart may continue it.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import hashlib
import json
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from workbench import manifest as mf
from workbench import rundir
from workbench.brokers.binance import BinanceBroker
from workbench.brokers.replaying import ReplayingBroker, ReplaySource
from workbench.config import Config, timeframe_ms
from workbench.engine import kernel
from workbench.engine.backtest import equity_rows
from workbench.engine.journal import (
    JournalContents,
    OrderEvent,
    OrderRecord,
    contents,
    order_states,
    split,
)
from workbench.errors import ConfigError, DataError, EngineFault, WorkbenchError
from workbench.feeds.binance_rest import Gap, RestKlineFeed
from workbench.feeds.history import loop_data
from workbench.model import (
    Bar,
    Fill,
    Mode,
    Order,
    OrderIntent,
    OrderStatus,
    Side,
    ms_to_iso,
    units_to_qty,
)
from workbench.recovery.journal import WalJournal
from workbench.recovery.records import (
    bar_from_record,
    bar_record,
    book_from_state,
    control_record,
    fill_from_record,
    order_event_from_record,
    order_from_record,
    start_record,
)
from workbench.recovery.replay import ReplayError, State, apply_record, recover
from workbench.recovery.snapshot import take_snapshot
from workbench.recovery.wal import Record, WalReader, WalScan
from workbench.risk.engine import DAY_MS, FLATTEN_TAG
from workbench.telemetry.log import JsonlLog
from workbench.venue_client import VenueClient, VenueUnavailable
from workbench.warehouse import views
from workbench.warehouse.flush_worker import FlusherProcess, plain
from workbench.warehouse.stale import HOST

CONTROL_DIR = "control"
DONE_DIR = "done"
STATUS_FILE = "status.json"
FINAL_FLUSH_S = 10.0  # how long a run that ends waits for the warehouse to take its last rows
STATUS_EVERY_S = 0.25  # status.json is rewritten at most this often between snapshots
ACTIONS = ("halt", "flatten", "resume")
_PORT_KINDS: dict[str, Callable[[dict[str, Any]], OrderRecord | OrderEvent | Fill]] = {
    "order": order_from_record, "order_event": order_event_from_record,
               "fill": fill_from_record}


def decision_hash(cfg: Config) -> str:
    """The hash of what decides a run's orders: every section but ``venue`` (a restart may
    point at another endpoint or rotate the key) and ``live`` (how the loop runs)."""
    plain = {k: v for k, v in cfg.to_dict().items() if k not in ("venue", "live")}
    return hashlib.sha256(json.dumps(plain, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def journal_dir(warehouse: Path, run_id: str) -> Path:
    """``warehouse/live/<run_id>/``: beside the DuckDB file, never inside it."""
    return Path(warehouse).parent / "live" / run_id


@dataclass(frozen=True)
class LiveOptions:
    max_bars: int | None = None
    """End cleanly once this many live and back-filled bars are processed (across restarts)."""
    until: int | None = None
    """End cleanly once every bar closing at or before this time (ms UTC) is processed."""
    poll_after_ms: int = 250
    """Venue milliseconds after a bar's close before it is asked for."""
    idle_s: float = 0.2
    """The longest wall-clock sleep: operator controls are taken within it."""
    error_burst: int = 3
    """Venue errors within one poll that raise an ``error_rate`` alert."""
    tiny: bool = False
    """Live: every order is sized down to the venue's minimum notional (or
    ``live.tiny_notional``) before it is journaled (``BinanceBroker.cap_qty``)."""


class VenueTime:
    """The venue's clock as this process sees it: read (``sync``) from ``/api/v3/time``,
    extrapolated in between at the rate it is seen to run since the first read (1 for a real
    venue, whatever the network jitter; the speed of an accelerated fake exchange). ``now``
    never goes backwards; ``stale`` says a re-read is due."""

    def __init__(self, read: Callable[[], int], monotonic: Callable[[], float] = time.monotonic,
                 resync_s: float = 1.0) -> None:
        self._read, self._monotonic, self.resync_s = read, monotonic, resync_s
        self.rate = 1.0  # venue ms per wall ms
        self._first: tuple[float, int] | None = None
        self._at: tuple[float, int] | None = None
        self._last = 0

    def sync(self) -> int:
        t = self._monotonic()
        venue = int(self._read())
        if self._first is None:
            self._first = (t, venue)
        else:
            dt_ms = (t - self._first[0]) * 1000.0
            dv = venue - self._first[1]
            if dt_ms > 100 and dv > 0:
                rate = dv / dt_ms
                self.rate = 1.0 if 0.8 < rate < 1.25 else rate  # jitter is not speed
        self._at = (t, venue)
        self._last = max(self._last, venue)
        return self._last

    def calibrate(self, sleep: Callable[[float], None], wall_s: float = 0.25) -> int:
        """Two reads ``wall_s`` apart, so the rate is known before the first wait."""
        self.sync()
        sleep(wall_s)
        return self.sync()

    def now(self) -> int:
        if self._at is None:
            return self.sync()
        t, venue = self._at
        self._last = max(self._last, venue + int((self._monotonic() - t) * 1000.0 * self.rate))
        return self._last

    @property
    def stale(self) -> bool:
        return self._at is None or self._monotonic() - self._at[0] >= self.resync_s

    @property
    def synced(self) -> bool:
        return self._at is not None

    def wall_s(self, venue_ms: float) -> float:
        """Wall seconds that ``venue_ms`` of venue time take."""
        return max(0.0, venue_ms / self.rate / 1000.0)


class ResumingJournal:
    """The Journal port of a live run: a ``WalJournal`` that, while a restart hands the
    journaled bars to the step again, checks each record the step makes against the next one
    journaled (``expected``) instead of appending it; past the end of those, it appends.

    It keeps the records in memory as well (each is the one on disk, checked or written), so
    ``contents`` costs no read of the log however long the run."""

    def __init__(self, inner: WalJournal, expected: Iterable[OrderRecord | OrderEvent | Fill]
                 ) -> None:
        self.inner = inner
        self.expected: deque[OrderRecord | OrderEvent | Fill] = deque(expected)
        self.appended = 0
        self.records: list[OrderRecord | OrderEvent | Fill] = []

    def _check(self, made: OrderRecord | OrderEvent | Fill) -> bool:
        if not self.expected:
            self.appended += 1
            return False
        want = self.expected.popleft()
        if want != made:
            raise ReplayError(
                f"the strategy did not repeat itself on restart: it made {made!r} where the "
                f"journal holds {want!r}",
                where=str(self.inner.directory),
                fix="a live strategy must decide from its bars, fills and seed only (no wall "
                    "clock, no unseeded randomness, no outside state); start a new run")
        self.records.append(made)
        return True

    def order(self, record: OrderRecord) -> None:
        if not self._check(record):
            self.inner.order(record)
            self.records.append(record)

    def event(self, order: Order, status: OrderStatus, reason: str | None, ts: int) -> None:
        made = OrderEvent(order.order_seq, order.client_order_id, ts, status, reason)
        if not self._check(made):
            self.inner.event(order, status, reason, ts)
            self.records.append(made)

    def fill(self, fill: Fill) -> None:
        if not self._check(fill):
            self.inner.fill(fill)
            self.records.append(fill)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()

    def replay(self) -> Iterator[OrderRecord | OrderEvent | Fill]:
        """The records as written, read back from the log on disk."""
        return self.inner.replay()

    def contents(self) -> JournalContents:
        """The records checked or written in this process (every one of the run's, once a
        restart has handed the journaled bars again)."""
        return split(self.records)


@dataclass
class LiveResult:
    run_id: str
    mode: str
    run_dir: Path
    journal_dir: Path
    status: str
    bars: int
    """Live and back-filled bars processed, across restarts."""
    resumed: bool
    latency_us: list[int] = field(default_factory=list)
    """Bar arrival to decision, this process's bars decided as they closed (not back-filled)."""
    backfill_bars: int = 0
    """Of ``bars``, those this process back-filled (a restart, an outage)."""

    def latency_summary(self) -> dict[str, float | None]:
        return latency_summary(self.latency_us)


def latency_summary(latency_us: list[int]) -> dict[str, float | None]:
    """p50, p95, p99 and max of bar-arrival-to-decision latencies (µs in, ms out)."""
    if not latency_us:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    a = np.asarray(latency_us, dtype=np.float64) / 1000.0
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"p50_ms": round(float(p50), 3), "p95_ms": round(float(p95), 3),
            "p99_ms": round(float(p99), 3), "max_ms": round(float(a.max()), 3)}


class LiveRun:
    """One shadow or paper run (see the module docstring). ``venue`` is the client pointed at
    the venue; ``sleep``, ``monotonic`` and ``wall`` are injectable for tests."""

    def __init__(self, cfg: Config, mode: Mode, *, run_id: str, warehouse: Path,
                 run_dir: Path, venue: VenueClient, options: LiveOptions | None = None,
                 echo: Any = None, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], int] = wall_ms,
                 announce: Callable[[str], None] | None = None) -> None:
        self.cfg, self.run_id = cfg, run_id
        self._announce = announce
        self.wired = kernel.wiring(mode)
        if not self.wired.live:
            raise ConfigError(f"{mode} is not a live mode", fix="use shadow or paper")
        self.mode = self.wired.mode
        self.options = options or LiveOptions()
        self.warehouse = Path(warehouse)
        self.dir = journal_dir(self.warehouse, run_id)
        self.run_dir = Path(run_dir)
        self.venue = venue
        self.tf = timeframe_ms(cfg.data.timeframe)
        self.symbols = list(cfg.data.symbols)
        self._sleep, self._wall, self._monotonic = sleep, wall, monotonic
        self._status_at = -1e9
        self.git_sha = mf.git_sha()
        self.vt = VenueTime(self._server_time, monotonic)
        self.feeds = {s: RestKlineFeed(venue, s, self.tf) for s in self.symbols}
        self._echo = echo
        self.log = JsonlLog(echo=echo)  # the run directory's log once the venue checks out
        self.last_ts: dict[str, int] = {}
        self.bars: list[tuple[str, int, float, float, float, float, float]] = []
        self.live_bars = 0
        self.latency_us: list[int] = []
        self.backfilled = 0  # bars this process decided late (a restart, an outage)
        self.state = State()
        self.resumed = False
        self.halted_no_risk: str | None = None
        self.last_error: str | None = None
        self.alerts = 0
        self.status = "running"
        self.started_at = mf.utc_now_iso()
        self._errors_seen = 0
        self._late_alerted: int | None = None
        self._control_mtime = -1
        self._daily_stop_seen = False
        self._risk_events_written = 0
        self._pending_snapshot: str | None = None  # "full" or "books", taken after a fetch
        self._roll_pending: int | None = None  # a finished UTC day to roll up after a fetch
        self._day_first_seq: dict[int, int] = {}  # WAL seq of each day's first decided bar
        self._day: int | None = None  # UTC day of the last bar decided
        self._retry_at = 0  # venue time before which an empty poll is not repeated
        self._scanned: WalScan | None = None  # where the last fold of the log stopped
        self._empty_polls = 0
        self._prefetched: tuple[int, int, list[Bar], list[Gap]] | None = None
        self.baseline: dict[str, Decimal] = {}  # a live run's venue balances at its start
        self._started_ms: int | None = None  # and the venue's time then
        self._reconciled_at = 0  # live bars decided at the last reconciliation

    # --- the run ----------------------------------------------------------------------------
    def run(self) -> LiveResult:
        """Check the strategy and the venue (nothing is written before they check out), then
        start or resume the run and loop until it ends."""
        self.strategy = kernel.build_strategy(self.cfg)
        self.view_list = views.check()
        self._preflight()  # the venue, a run to resume, a new run's warm-up bars
        self.log = JsonlLog(self.run_dir / "logs.jsonl", echo=self._echo)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / CONTROL_DIR / DONE_DIR).mkdir(parents=True, exist_ok=True)
        # one process per run (the journal's lock); an operator's look at it lasts a moment
        inner = WalJournal(self.dir, wall_ms=self._wall, wait_s=2.0)
        try:
            return self._run(inner)
        finally:
            gc.unfreeze()  # the run is over: what it froze may be collected again
            with contextlib.suppress(Exception):
                inner.close()
            self.log.close()

    def _run(self, inner: WalJournal) -> LiveResult:
        journaled = list(WalReader(self.dir))
        expected = [_PORT_KINDS[r.kind](r.payload) for r in journaled if r.kind in _PORT_KINDS]
        self.journal = ResumingJournal(inner, expected)
        self.wal = inner.wal
        self.kernel = kernel.build(self.cfg, self.mode, strategy=self.strategy,
                                   run_id=self.run_id, log=self.log, journal=self.journal,
                                   venue=self.venue, exchange_info=self.exchange_info,
                                   tiny=self.options.tiny, monotonic=self._monotonic)
        self.step = self.kernel.step
        self.risk = self.step.risk
        if self.wired.sends_orders:  # each venue execution in the journal, before its fill
            broker = self._venue_broker()
            broker.on_venue_fill = self._journal_venue_fill
            broker.on_failures = self._journal_failures
            broker.halted = lambda: self._halted() is not None  # no resend once halted
        # the warehouse's copy of the journal, and the backtest twin (the same config on the
        # same bars, for rpt.live_vs_backtest), are kept by a process of their own
        self.flusher = FlusherProcess(self.warehouse, self.dir, self._run_row, log=self.log)
        try:
            if journaled:
                self._resume(journaled)
            else:
                self._start()
            self._write_manifest()
            self._refresh()
            self.flusher.flush_now()  # the schema, views and runs row before bars arrive
            # what start-up made (modules, the venue's answers, a resumed run's history) stays:
            # keep it out of the collector's full passes, which would otherwise walk all of
            # it between two bars (tens of ms)
            gc.freeze()
            if self._announce is not None:
                self._announce(
                    f"{self.mode.value} run {self.run_id} "
                    f"{'resumed' if self.resumed else 'started'} on {self.venue.base_url}; "
                    f"dir={self.run_dir}; halt with `workbench halt --run {self.run_id}`")
            while self._cycle():
                pass
            self._finish("completed", "the run reached --max-bars or --until")
        except KeyboardInterrupt as stop:
            self._finish("stopped", f"stopped by {getattr(stop, 'signal_name', 'Ctrl-C')}")
            raise
        except VenueUnavailable as exc:
            self._alert("venue_unavailable", "error", exc.what)
            self._apply_control(self._control("halt", reason="venue unavailable",
                                              source="runtime"))
            self._finish("halted", exc.what)
            raise
        except WorkbenchError as exc:
            self._finish("failed", exc.what)
            raise
        except Exception as exc:
            self._finish("failed", f"{type(exc).__name__}: {exc}")
            raise
        return LiveResult(self.run_id, self.mode.value, self.run_dir, self.dir, self.status,
                          self.live_bars, self.resumed, self.latency_us,
                          self.backfilled)

    # --- start, resume ----------------------------------------------------------------------
    def _server_time(self) -> int:
        """The venue's time; the signing offset of the venue client is kept to it."""
        try:
            return self.venue.sync_time()
        except (TypeError, KeyError, ValueError):
            raise DataError("the venue answered /api/v3/time without a serverTime",
                            where=self.venue.base_url,
                            fix="check venue.base_url points at a Binance-compatible venue"
                            ) from None

    def _preflight(self) -> None:
        """What can refuse the run, checked before anything is written (no run directory, no
        journal): the venue answers, lists every symbol, takes the key and tells its time; a
        journaled run to resume is of this mode and configuration; a new run's warm-up bars
        come."""
        self._check_venue()
        first = next(iter(WalReader(self.dir, warn=False)), None)
        if first is not None:
            self._check_resumable(first)
        else:
            self._prefetched = self._fetch_warmup()

    def _check_venue(self) -> None:
        """The venue answers, knows every symbol, tells its time, and takes the key when one
        is given."""
        info = self.venue.call("exchangeInfo", self.venue.client.get_exchange_info)
        self.exchange_info = info
        self.venue.set_limits(info)
        try:
            known = {s["symbol"] for s in info["symbols"]}
        except (TypeError, KeyError):
            raise DataError("the venue answered exchangeInfo without a symbol list",
                            where=self.venue.base_url,
                            fix="check venue.base_url points at a Binance-compatible venue"
                            ) from None
        missing = [s for s in self.symbols if s not in known]
        if missing:
            raise ConfigError(f"the venue does not trade {', '.join(missing)}",
                              where="data.symbols",
                              fix=f"use symbols the venue lists (it has {len(known)}, e.g. "
                                  f"{', '.join(sorted(known)[:5])})")
        venue = self.cfg.venue
        if self.wired.sends_orders and venue.api_key is None:
            raise ConfigError(f"a {self.mode.value} run sends orders: it needs the venue's API "
                              "key and secret", where="venue.api_key / venue.api_secret",
                              fix="set WB_VENUE__API_KEY and WB_VENUE__API_SECRET (or the 0600 "
                                  "secrets file)")
        if (venue.api_key is None) != (venue.api_secret is None):
            raise ConfigError("the venue API key is set but not its secret (or the other way)",
                              where="venue.api_key / venue.api_secret",
                              fix="set both WB_VENUE__API_KEY and WB_VENUE__API_SECRET (or "
                                  "both lines of the secrets file), or neither for market data "
                                  "only")
        self.vt.sync()  # the venue's clock answers (a garbage answer is refused here)
        if venue.api_key is not None:
            self.venue.sync_time()
            self.venue.call("account", self.venue.client.get_account)

    def _fetch_warmup(self) -> tuple[int, int, list[Bar], list[Gap]]:
        """A new run's warm-up bars (and the gaps among them), read before its journal is
        written: a venue that fails them leaves no run behind, never a journal without its
        start record. Returns the venue time, the bars wanted, the bars, the gaps."""
        venue_now = self.vt.calibrate(self._sleep)
        return (venue_now, *self._warmup_bars(venue_now))

    def _warmup_bars(self, venue_now: int) -> tuple[int, list[Bar], list[Gap]]:
        """The warm-up bars closed by ``venue_now`` (the same whenever asked: the venue's
        history does not change), how many were wanted per symbol, the gaps among them."""
        want = max(self.cfg.live.warmup_bars, int(getattr(self.strategy, "warmup_bars", 0) or 0))
        warm: list[Bar] = []
        gaps: list[Gap] = []
        for symbol, feed in self.feeds.items():
            bars = feed.warmup(want, venue_now)
            warm += bars
            gaps += feed.gaps(bars)  # minutes the venue lacks inside the warm-up window
            last_closed = (venue_now // self.tf) * self.tf - self.tf
            self.last_ts[symbol] = bars[-1].ts if bars else last_closed
        warm.sort(key=lambda b: (b.ts, b.symbol))
        return want, warm, gaps

    def _start(self) -> None:
        fetched, self._prefetched = self._prefetched, None
        venue_now, want, warm, gaps = fetched or self._fetch_warmup()
        start_ts = warm[0].ts if warm else min(self.last_ts.values()) + self.tf
        extra: dict[str, Any] = {}
        if self.wired.sends_orders:  # what the account held: reconciliation's baseline
            self.baseline = self._venue_broker().balances()
            self._started_ms = venue_now
            extra["venue_balances"] = {a: f"{v:f}" for a, v in self.baseline.items()}
            extra["tiny"] = self._tiny()
        self.wal.append("control", start_record(
            self.cfg.portfolio.initial_cash, run_id=self.run_id, mode=self.mode.value,
            config_hash=decision_hash(self.cfg), symbols=self.symbols,
            timeframe=self.cfg.data.timeframe, ts=venue_now, start_ts=start_ts, warmup_bars=want,
            warmup_count=len(warm), **extra))
        for gap in gaps:
            self._gap(gap, venue_now)
        self.step.start(start_ts)
        self._warm(warm)
        self.log.info("live", f"{self.mode.value} run {self.run_id} started: {len(warm)} "
                      f"warm-up bars, venue time {ms_to_iso(venue_now)}",
                      symbols=self.symbols, venue=self.venue.base_url)
        if self.wired.sends_orders:
            if not self.baseline.get("BNB"):
                self._alert("fee_asset", "warning",
                            "the account holds no BNB: the venue keeps each buy's commission out "
                            "of the asset bought (booked as a fee in kind: a position holds the "
                            "fee less than the quantity ordered); hold BNB for fees to receive "
                            "whole quantities",
                            assets=sorted(self.baseline))
            self._reconcile("start")

    def _warm(self, warm: list[Bar]) -> None:
        for bar in warm:
            self.wal.append("bar", bar_record(bar) | {"phase": "warmup", "lag_ms": None},
                            sync=False)
            self._remember(bar)
            self.step.warm(bar)

    def _check_resumable(self, first: Record) -> None:
        if first.kind != "control" or first.payload.get("action") != "start":
            raise ReplayError("the journal does not begin with the run's start record",
                              where=f"{self.dir} (WAL seq {first.seq})",
                              fix="this directory is not a live run's journal; start a new run")
        begun = first.payload
        if begun.get("mode") != self.mode.value:
            raise ConfigError(f"run {self.run_id} is a {begun.get('mode')} run",
                              where="--mode", fix=f"resume it with `workbench {begun.get('mode')}"
                                                  f" --run-id {self.run_id}`")
        if begun.get("config_hash") != decision_hash(self.cfg):
            raise ConfigError(f"run {self.run_id} was started with another configuration",
                              where="--config / --set",
                              fix="resume with the same data, strategy, portfolio, costs and "
                                  "risk settings (venue and live may change), or start a new "
                                  "run (without --run-id)")
        if self.wired.sends_orders and "tiny" in begun and begun["tiny"] != self._tiny():
            was = begun["tiny"]
            raise ConfigError(
                f"run {self.run_id} was started "
                + (f"with --tiny (live.tiny_notional: {was.get('notional')})" if was
                   else "without --tiny") + ", and is resumed "
                + (f"with --tiny (live.tiny_notional: {self.cfg.live.tiny_notional})"
                   if self.options.tiny else "without it"),
                where="--tiny / live.tiny_notional",
                fix="resume with the --tiny and live.tiny_notional it was started with: they "
                    "sized the orders its journal holds")

    def _resume(self, journaled: list[Record]) -> None:
        self._check_resumable(journaled[0])  # again, now that the journal's lock is held
        begun = journaled[0].payload
        self.resumed = True
        self.step.start(int(begun["start_ts"]))
        bar_positions = [i for i, r in enumerate(journaled) if r.kind == "bar"]
        last_bar = bar_positions[-1] if bar_positions else -1
        bars_done = 0
        if self.wired.sends_orders:  # the venue's journaled answers, not the venue (adr/0015)
            segments, seen = [], 0
            for r in journaled:
                seen += r.kind == "bar"
                if r.kind in _PORT_KINDS:
                    segments.append(seen)
            self._replaying().replay_from(
                ReplaySource(self.journal.expected, segments, lambda: bars_done))
        try:
            for i, record in enumerate(journaled):
                if record.kind == "bar":
                    p = record.payload
                    bar = bar_from_record(p)
                    self._remember(bar)
                    bars_done += 1
                    if p.get("phase") == "warmup":
                        self.step.warm(bar)
                    else:
                        self.live_bars += 1
                        with self._group_commit():
                            self._decide(bar)
                        if self.journal.appended and i != last_bar:
                            raise ReplayError(
                                f"on restart the strategy made {self.journal.appended} "
                                f"record(s) at {bar.symbol} {ms_to_iso(bar.ts)} that the journal "
                                "does not hold although later bars are journaled",
                                where=str(self.dir),
                                fix="a live strategy must decide from its bars, fills and seed "
                                    "only; start a new run")
                    self.step.poll()  # what the venue answered before the next bar
                elif record.kind == "control":
                    self._apply_control(record.payload)
        except EngineFault as fault:
            # the journal's check refused a record the strategy's submit made: say so as
            # the ReplayError it is, not as a defect of the engine
            if isinstance(fault.__cause__, ReplayError):
                raise fault.__cause__ from None
            raise
        self._finish_warmup(begun, journaled)
        if self.journal.expected:
            raise ReplayError(
                f"on restart the strategy did not make {len(self.journal.expected)} journaled "
                f"record(s), the first {self.journal.expected[0]!r}", where=str(self.dir),
                fix="a live strategy must decide from its bars, fills and seed only; start a "
                    "new run")
        # the books the bars rebuilt must be the books the journal folds to (checked before
        # the venue is asked what it did meanwhile: that goes to both alike)
        recovered = recover(self.dir)
        self.state = recovered.state
        if recovered.torn is not None:
            self.log.warning("live", f"dropped a torn last journal record: {recovered.torn}")
        books = book_from_state(self.state)
        replayed = (self.step.book.cash, self.step.book.units)
        # the state's own cash and positions too: a snapshot carries them beside its fills
        for cash, units in ((books.cash, books.units), (self.state.cash, self.state.units)):
            if (cash, units) != replayed:
                raise ReplayError(
                    f"the journal folds to cash {cash!r} and positions {units!r}, but the bars "
                    f"replayed give {replayed[0]!r} and {replayed[1]!r}",
                    where=str(recovered.snapshot.source or self.dir),
                    fix="the journal or its snapshot was changed by hand (`workbench replay "
                        "--run ID` names the difference; without snapshot files the state is "
                        "folded from the first record), or the strategy does not repeat "
                        "itself; start a new run")
        if self.wired.sends_orders:
            # the venue's broker takes over the orders still open and asks what became of
            # them, counting the venue's order failures on from where the journal left them
            broker = self._venue_broker()
            broker.restore_commissions(r.payload for r in journaled if r.kind == "venue_fill")
            broker.failures = self.state.order_failures
            self._replaying().go_live(self.step.open_orders(), self.journal.contents().fills)
            self.baseline = {a: Decimal(v) for a, v in begun.get("venue_balances", {}).items()}
            self._started_ms = int(begun["ts"])
            self.step.poll()  # what the venue did while the process was down
            self._reconcile("restart")
        self._risk_events_written = len(self.risk.events) if self.risk is not None else 0
        decided = [r.payload["ts"] for r in journaled
                   if r.kind == "bar" and r.payload.get("phase") != "warmup"]
        self._day = decided[-1] // DAY_MS if decided else None
        self.vt.calibrate(self._sleep)
        self._daily_stop_seen = bool(self.risk is not None and self.risk.daily_stop)
        self.log.info("live", f"{self.mode.value} run {self.run_id} resumed from its journal: "
                      f"{len(journaled)} records, {self.live_bars} bars decided, last bar "
                      + ", ".join(f"{s} {ms_to_iso(t)}" for s, t in sorted(self.last_ts.items())))

    def _tiny(self) -> dict[str, float | None] | None:
        """How ``--tiny`` sizes this run's orders (None: not at all), as its start record keeps
        it; a restart must size them alike to re-make its journaled orders."""
        if not self.options.tiny:
            return None
        return {"notional": self.cfg.live.tiny_notional}

    def _venue_broker(self) -> BinanceBroker:
        inner = self._replaying().inner
        assert isinstance(inner, BinanceBroker), "a broker that sends orders is BinanceBroker"
        return inner

    def _journal_venue_fill(self, payload: dict[str, Any]) -> None:
        self.wal.append("venue_fill", payload | {"ts": self.step.now, "wall_ts": self._wall()},
                        sync=False)

    def _journal_failures(self, failures: int, cause: str) -> None:
        """The venue's order failures in a row changed: journaled, so a restart counts on
        (``State.order_failures``). Unsynced, as a venue fill: written at once (a kill keeps
        it), made durable by the next synced record, mostly the order event that follows."""
        self.wal.append("order_failures", {"ts": self.step.now, "wall_ts": self._wall(),
                                           "failures": failures, "cause": cause}, sync=False)

    def _reconcile(self, trigger: str) -> None:
        """The venue's open orders and balances against the journal: a ``reconciliation``
        record, an alert per difference, and a halt when a position differs."""
        found = self._venue_broker().reconcile(
            self.step.open_orders(), [o.order_seq for o in self.journal.contents().orders],
            self.step.book.units, self.baseline, since_ms=self._started_ms)
        self._reconciled_at = self.live_bars
        self.wal.append("reconciliation", {
            "ts": self.step.now, "wall_ts": self._wall(), "trigger": trigger, "ok": not found,
            "differences": [d.payload() for d in found]}, sync=False)
        for d in found:
            self._alert("reconciliation", "error" if d.halts else "warning", d.detail,
                        difference=d.kind, symbol=d.symbol, client_order_id=d.client_order_id)
        if any(d.halts for d in found):
            self._apply_control(self._control(
                "halt", reason="reconciliation: a position differs from the venue's",
                source="reconciliation"))

    def _replaying(self) -> ReplayingBroker:
        broker = self.step.broker
        assert isinstance(broker, ReplayingBroker), "a broker that sends orders is replayable"
        return broker

    def _finish_warmup(self, begun: dict[str, Any], journaled: list[Record]) -> None:
        """A kill during the warm-up leaves part of it journaled: ask the venue again for the
        warm-up bars of the start (closed by the start's venue time) and warm the step with the
        rest, so the first decided bar is the one an uninterrupted run decides first."""
        bars = [r.payload for r in journaled if r.kind == "bar"]
        count = begun.get("warmup_count")
        if count is None or len(bars) >= count or any(p.get("phase") != "warmup" for p in bars):
            return
        _, warm, _ = self._warmup_bars(int(begun["ts"]))
        if [(b.symbol, b.ts) for b in warm[:len(bars)]] != [(p["symbol"], p["ts"]) for p in bars]:
            raise ReplayError("the venue's warm-up bars are not the ones the run journaled",
                              where=str(self.dir), fix="resume against the venue the run was "
                                                       "started on, or start a new run")
        self.log.warning("live", f"finishing a warm-up cut short: {len(warm) - len(bars)} "
                                 "bar(s) left to journal")
        self._warm(warm[len(bars):])

    def _remember(self, bar: Bar) -> None:
        self.bars.append(tuple(bar))  # type: ignore[arg-type]
        self.last_ts[bar.symbol] = bar.ts

    # --- the cycle --------------------------------------------------------------------------
    def _cycle(self) -> bool:
        """One turn: controls, the stop conditions, then wait for or fetch the next bars.
        False once the run should end."""
        if self._controls_changed():
            self._take_controls()
        if self._finished():
            return False
        due = max(self._next_close() + self.options.poll_after_ms, self._retry_at)
        synced = self.vt.stale
        estimate = self.vt.sync() if synced else self.vt.now()
        if estimate < due:
            self._poll_broker()  # what the venue did with our orders meanwhile
            if self._monotonic() - self._status_at >= 1.0:
                self._write_status()  # the lag and the heartbeat stay fresh while waiting
            self._sleep(min(self.vt.wall_s(due - estimate), self.options.idle_s))
            return True
        venue_now = estimate if synced else self.vt.sync()  # the venue's word, not a guess
        if venue_now < due:
            return True
        errors_before = self.venue.errors
        fetched, gaps = self._fetch(venue_now)
        arrived = time.perf_counter_ns()
        if self.venue.errors - errors_before >= self.options.error_burst:
            self._alert("error_rate", "warning",
                        f"{self.venue.errors - errors_before} venue errors in one poll",
                        errors=self.venue.errors)
        for gap in gaps:
            self._gap(gap, venue_now)
        if not fetched:  # not published yet: ask again after a growing pause (at most tf / 4)
            self._late(venue_now)
            self._retry_at = venue_now + min(self.tf // 4, 500 << min(self._empty_polls, 10))
            self._empty_polls += 1
            return True
        self._empty_polls = 0
        for bar in fetched:
            if self._finished(bar):
                break
            self._process(bar, venue_now, arrived)
            if self._controls_changed():
                self._take_controls()
        self._poll_broker()
        if (self.wired.sends_orders and self.live_bars - self._reconciled_at
                >= self.cfg.live.reconcile_every_bars):
            self._reconcile("periodic")
        self._snapshot_due()  # (a run that stops meanwhile snapshots as it finishes)
        self._late_alerted = None
        return True

    def _poll_broker(self) -> None:
        """Between bars, the broker reports what the venue did (a broker that sends nothing
        has nothing to say); a fill it reports is snapshotted like a decision's."""
        fills_before = self.step.fill_seq
        self.step.poll()
        if self.step.fill_seq != fills_before and self._pending_snapshot is None:
            self._pending_snapshot = "books"

    def _snapshot_due(self) -> None:
        due, self._pending_snapshot = self._pending_snapshot, None
        if due is not None:
            self._snapshot(refresh=due == "full")
        day, self._roll_pending = self._roll_pending, None
        if day is not None:
            self._roll_up(day)

    def _next_close(self) -> int:
        return min(self.last_ts.values()) + 2 * self.tf

    def _finished(self, bar: Bar | None = None) -> bool:
        o = self.options
        if o.max_bars is not None and self.live_bars >= o.max_bars:
            return True
        if o.until is not None:
            close = (bar.ts if bar is not None else min(self.last_ts.values()) + self.tf) \
                + self.tf
            return close > o.until
        return False

    def _fetch(self, venue_now: int) -> tuple[list[Bar], list[Gap]]:
        bars: list[Bar] = []
        gaps: list[Gap] = []
        for symbol, feed in self.feeds.items():
            got, missing = feed.closed_bars(self.last_ts[symbol], venue_now)
            bars += got
            gaps += missing
        bars.sort(key=lambda b: (b.ts, b.symbol))
        return bars, gaps

    def _process(self, bar: Bar, venue_now: int, arrived_ns: int) -> None:
        lag_ms = venue_now - (bar.ts + self.tf)
        phase = "live" if lag_ms < self.tf else "backfill"
        day = bar.ts // DAY_MS
        seq = self.wal.append("bar", bar_record(bar) | {"phase": phase, "lag_ms": lag_ms},
                              sync=False)
        if self._day is not None and day > self._day:
            self._roll_pending = self._day  # rolled up once this fetch's bars are decided
        if day != self._day:
            self._day_first_seq[day] = seq
        self._day = day
        self._remember(bar)
        fills_before = self.step.fill_seq
        orders_before = self.step.order_seq
        with self._group_commit():
            self._decide(bar)
            blocked = self._write_risk_events()
        latency_us = (time.perf_counter_ns() - arrived_ns) // 1000
        self.live_bars += 1
        # bar arrival to decision of bars decided as they closed; a back-filled batch waits
        # for the bars before it, so its latency says how long catching up took instead
        if phase == "live":
            self.latency_us.append(latency_us)
        else:
            self.backfilled += 1
        decision: dict[str, Any] = {
            "symbol": bar.symbol, "ts": bar.ts, "decided_at": self.vt.now(),
            "latency_us": latency_us, "lag_ms": lag_ms, "bars_lag": lag_ms // self.tf,
            "orders": [f"{self.run_id}-{k}" for k in range(orders_before + 1,
                                                          self.step.order_seq + 1)],
            "blocked": blocked, "venue_errors": self.venue.errors, "phase": phase}
        get_state = getattr(self.strategy, "get_state", None)
        if callable(get_state):
            decision["strategy_state"] = get_state()
        self.wal.append("decision", decision, sync=False)
        self._watch_risk(bar)
        if self.wired.sends_orders:
            self._watch_order_failures()
        # Snapshots wait until the bars of this fetch are decided (``_snapshot_due``), so a
        # bar never waits behind the snapshot of the bar before it: every position change and
        # every live.snapshot_every_bars; the run directory's CSVs (a pass over every bar)
        # only with the periodic ones, a control or the end.
        if self.live_bars % self.cfg.live.snapshot_every_bars == 0:
            self._pending_snapshot = "full"
        elif self.step.fill_seq != fills_before and self._pending_snapshot is None:
            self._pending_snapshot = "books"
        elif self._monotonic() - self._status_at >= STATUS_EVERY_S:
            self._write_status()  # a catching-up batch does not rewrite it every bar

    def _group_commit(self) -> contextlib.AbstractContextManager[None]:
        """Where the wiring says so, a decision's records are written at once and synced
        together, off the decision path (``Wal.batch(background=True)``)."""
        return (self.wal.batch(background=True) if self.wired.group_commit
                else contextlib.nullcontext())

    def _decide(self, bar: Bar) -> None:
        if self.halted_no_risk is not None:
            self.step.warm(bar)  # halted without risk: the strategy sees, nothing acts
        else:
            self.step.on_bar(bar)

    def _write_risk_events(self) -> int:
        risk = self.risk
        if risk is None:
            return 0
        new = risk.events[self._risk_events_written:]
        for ts, coid, seq, symbol, rule, code, detail in new:
            self.wal.append("risk_event", {"ts": ts, "client_order_id": coid, "order_seq": seq,
                                           "symbol": symbol, "rule": rule, "reason_code": code,
                                           "detail": detail, "reason": code})
        self._risk_events_written = len(risk.events)
        return sum(1 for e in new if e[1] is not None)

    def _watch_risk(self, bar: Bar) -> None:
        risk = self.risk
        if risk is not None and risk.daily_stop and not self._daily_stop_seen:
            self._alert("daily_loss_halt", "error",
                        f"daily loss stop: realized {risk.realized_today!r} today; orders that "
                        "add risk are blocked until the next UTC day and `workbench resume`",
                        symbol=bar.symbol)
        self._daily_stop_seen = bool(risk is not None and risk.daily_stop)

    def _gap(self, gap: Gap, venue_now: int) -> None:
        self.wal.append("gap", {"symbol": gap.symbol, "first_ts": gap.first_ts,
                                "count": gap.count, "detected_at": venue_now}, sync=False)
        self.log.warning("live", f"venue gap: {gap}", symbol=gap.symbol)
        if gap.count > self.cfg.live.gap_tolerance_bars:
            self._alert("bar_gap", "warning",
                        f"{gap} (beyond live.gap_tolerance_bars="
                        f"{self.cfg.live.gap_tolerance_bars})",
                        symbol=gap.symbol, first_ts=gap.first_ts, count=gap.count)

    def _late(self, venue_now: int) -> None:
        """No new bar although one is due: alert once the wait passes the gap tolerance."""
        due_close = self._next_close()
        late = (venue_now - due_close) // self.tf
        if late > self.cfg.live.gap_tolerance_bars and self._late_alerted != due_close:
            self._late_alerted = due_close
            self._alert("bar_late", "warning",
                        f"no bar from the venue since {ms_to_iso(due_close - self.tf)} "
                        f"({late} bar times late)", due_close=due_close)

    def _alert(self, kind: str, severity: str, message: str, **data: Any) -> None:
        self.alerts += 1
        self.wal.append("alert", {"ts": self.vt.now() if self.vt.synced else self._wall(),
                                  "kind": kind, "severity": severity, "message": message,
                                  "data": data}, sync=False)
        self.log.log(severity, "alert", message, kind=kind, **data)
        if severity == "error":
            self.last_error = message

    # --- operator controls ------------------------------------------------------------------
    def _controls_changed(self) -> bool:
        try:
            mtime = os.stat(self.run_dir / CONTROL_DIR).st_mtime_ns
        except OSError:
            return False
        return mtime != self._control_mtime

    def _take_controls(self) -> None:
        folder = self.run_dir / CONTROL_DIR
        with contextlib.suppress(OSError):
            self._control_mtime = os.stat(folder).st_mtime_ns
        try:
            requests = sorted(p for p in folder.iterdir() if p.suffix == ".json")
        except OSError:
            return
        for path in requests:
            try:
                request = json.loads(path.read_text(encoding="utf-8"))
                action = request["action"]
            except (OSError, ValueError, KeyError, TypeError):
                self._answer(path, {"ok": False, "error": "not a control request"})
                continue
            if action not in ACTIONS:
                self._answer(path, {"ok": False, "error": f"unknown action {action!r}"})
                continue
            if action == "resume" and not request.get("confirm"):
                self._answer(path, {"ok": False, "error": "resume needs --confirm"})
                continue
            dry = bool(request.get("dry_run"))
            reason = str(request.get("reason") or "operator")[:200]
            if dry:
                would = self._would(action)
                self._control("dry_run", reason=f"{action} would {would}", source="operator",
                              of=action)
                self._answer(path, {"ok": True, "dry_run": True, "would": would})
                continue
            payload = self._control(action, reason=reason, source="operator")
            self._apply_control(payload)
            self._snapshot()
            self.flusher.request()  # the warehouse shows the halt (or its end) soon
            self._answer(path, {"ok": True, "action": action, "halted": self._halted()})

    def _would(self, action: str) -> str:
        if action == "halt":
            return "block every new order"
        if action == "resume":
            return "lift the halt"
        closes = [f"{'SELL' if u > 0 else 'BUY'} {units_to_qty(abs(u))!r} {s}"
                  for s, u in sorted(self.step.book.units.items()) if u]
        return "halt and " + ("; ".join(closes) if closes else "close nothing (flat)")

    def _control(self, action: str, *, reason: str | None, source: str, **extra: Any
                 ) -> dict[str, Any]:
        payload = control_record(action, ts=self.step.now, reason=reason, source=source,
                                 wall_ts=self._wall(), **extra)
        self.wal.append("control", payload)
        self.log.warning("control", f"{action}: {reason}", source=source)
        return payload

    def _apply_control(self, payload: dict[str, Any]) -> None:
        action = payload.get("action")
        reason = payload.get("reason") or "operator"
        if action == "halt":
            self._halt(reason)
        elif action == "resume":
            self.halted_no_risk = None
            if self.risk is not None:
                self.risk.resume()
            if self.wired.sends_orders:  # the operator vouches for the venue: count afresh
                self._venue_broker().failures = 0  # (the journal's fold does the same)
        elif action == "flatten":
            self._halt("flatten")
            for order in list(self.step.open_orders()):
                self.step.cancel(order)
            for symbol, units in sorted(self.step.book.units.items()):
                if units:
                    side = Side.SELL if units > 0 else Side.BUY
                    self.step.submit(OrderIntent(symbol, side, units_to_qty(abs(units)),
                                                 reduce_only=True, tag=FLATTEN_TAG))

    def _watch_order_failures(self) -> None:
        """Orders the venue keeps failing halt the run (once) with an alert."""
        failures = self._venue_broker().failures
        if failures >= self.cfg.live.order_failures_halt and not self._halted():
            message = (f"the venue failed {failures} orders in a row (unknown outcomes, "
                       "throttles or a ban): trading halts")
            self._alert("order_failures", "error", message, failures=failures)
            self._apply_control(self._control("halt", reason="repeated order failures",
                                              source="runtime"))

    def _halt(self, reason: str) -> None:
        if self.risk is not None:
            self.risk.halt(reason)
        else:
            self.halted_no_risk = reason

    def _halted(self) -> str | None:
        if self.risk is not None:
            return self.risk.halted_since
        return self.halted_no_risk

    def _answer(self, path: Path, answer: dict[str, Any]) -> None:
        answer["answered_at"] = ms_to_iso(self._wall())
        done = path.parent / DONE_DIR / path.name
        write_atomic(done, json.dumps(answer, sort_keys=True))
        path.unlink(missing_ok=True)

    # --- the warehouse -------------------------------------------------------------------------
    def _run_row(self) -> dict[str, Any]:
        """The ``runs`` row as this process sees the run now (the flusher adds the bars)."""
        cfg = self.cfg
        return {
            "run_id": self.run_id, "mode": self.mode.value, "name": cfg.run.name,
            "status": self.status, "error": self.last_error if self.status != "running"
            else None, "config_json": cfg.to_dict(), "config_hash": cfg.hash(),
            "git_sha": self.git_sha, "started_at": self.started_at,
            "ended_at": None if self.status == "running" else mf.utc_now_iso(),
            "versions": mf.versions(), "view_versions": views.versions(self.view_list),
            "gap_policy": None, "symbols": self.symbols, "timeframe": cfg.data.timeframe,
            "timeframe_ms": self.tf, "initial_cash": cfg.portfolio.initial_cash,
            "quote": cfg.portfolio.quote, "seed": cfg.run.seed,
            "run_dir": os.path.abspath(self.run_dir)}

    # --- daily rollups -----------------------------------------------------------------------
    def _roll_up(self, day: int) -> None:
        """``days/<YYYY-MM-DD>.json`` (a manifest of the UTC day: its records' seq range,
        bars, orders, fills, blocks, alerts) and ``days/<YYYY-MM-DD>.jsonl.gz`` (every journal
        record of the day, one JSON object a line), written once the next day's first bar has
        come. A day is the records from its first bar to the next day's first bar."""
        name = ms_to_iso(day * DAY_MS)[:10]
        folder = self.run_dir / "days"
        folder.mkdir(exist_ok=True)
        if (folder / f"{name}.json").exists():
            return  # rolled up before a restart
        counts: dict[str, int] = {}
        first = last = None
        inside = False
        tmp = folder / f"{name}.jsonl.gz.tmp"
        with gzip.open(tmp, "wt", encoding="utf-8") as out:
            # from the day's first bar when this process saw it (else, after a restart, the start)
            for record in WalReader(self.dir, self._day_first_seq.pop(day, 1)):
                if record.kind == "bar":
                    bar_day = record.payload["ts"] // DAY_MS
                    if bar_day > day:
                        break
                    inside = bar_day == day
                if not inside:
                    continue
                first = record.seq if first is None else first
                last = record.seq
                counts[record.kind] = counts.get(record.kind, 0) + 1
                if record.kind == "bar" and record.payload.get("phase") == "warmup":
                    counts["warmup"] = counts.get("warmup", 0) + 1
                out.write(json.dumps({"seq": record.seq, "kind": record.kind,
                                      "payload": record.payload}, sort_keys=True) + "\n")
        os.replace(tmp, folder / f"{name}.jsonl.gz")
        write_atomic(folder / f"{name}.json", json.dumps({
            "run_id": self.run_id, "mode": self.mode.value, "day": name,
            "first_seq": first, "last_seq": last, "records": counts,
            "bars": counts.get("bar", 0) - counts.get("warmup", 0),
            "warmup_bars": counts.get("warmup", 0), "orders": counts.get("order", 0),
            "fills": counts.get("fill", 0), "risk_events": counts.get("risk_event", 0),
            "alerts": counts.get("alert", 0), "gaps": counts.get("gap", 0),
            "log": f"{name}.jsonl.gz"}, sort_keys=True, indent=1))

    # --- snapshots, run directory, status ---------------------------------------------------
    def _snapshot(self, *, refresh: bool = True) -> None:
        if self.risk is not None:  # the risk engine's state rides in the snapshot (replay.State)
            self.wal.append("risk_event", {"reason": "state", "ts": self.step.now,
                                           "risk_state": plain(self.risk.summary())})
        self.wal.sync()
        # fold what was appended since the last look, reading only that part of the log
        reader = WalReader(self.dir, self.state.seq + 1, after=self._scanned)
        for record in reader:
            apply_record(self.state, record)
        self._scanned = reader.result
        take_snapshot(self.wal, self.state.to_dict())
        if refresh:
            self._refresh()
        else:
            self._write_status()

    def _refresh(self) -> None:
        """The run directory's CSVs (as a backtest writes them), manifest and status. (The
        warehouse follows the journal on its own, every few seconds.)"""
        records = contents(self.journal)
        data = loop_data(self.bars, self.symbols)
        equity = equity_rows(self.step.book, data)
        tmp = self.run_dir / ".refresh"
        tmp.mkdir(exist_ok=True)
        rundir.write_all(tmp, self.step.book.round_trips, order_states(records), records.fills,
                         equity)
        for name in rundir.FILES:
            os.replace(tmp / name, self.run_dir / name)
        self._write_status()

    def _write_status(self) -> None:
        self._status_at = self._monotonic()
        book = self.step.book
        last = max(self.last_ts.values()) if self.last_ts else None
        risk = self.risk
        status = {
            "run_id": self.run_id, "mode": self.mode.value, "status": self.status,
            "pid": os.getpid(), "host": HOST,
            "updated_at": ms_to_iso(self._wall()),
            "last_bar_ts": ms_to_iso(last) if last is not None else None,
            "bars": self.live_bars,
            "lag_ms": (self.vt.now() - (last + self.tf)) if last is not None and self.vt.synced
            else None,
            "positions": {s: units_to_qty(u) for s, u in sorted(book.units.items()) if u},
            "cash": book.cash, "equity": book.equity(),
            "pnl_today": risk.realized_today if risk is not None else None,
            "halted": self._halted(), "last_error": self.last_error, "alerts": self.alerts,
            "orders": self.step.order_seq, "fills": self.step.fill_seq,
            "latency": latency_summary(self.latency_us[-1000:]),
        }
        write_atomic(self.run_dir / STATUS_FILE, json.dumps(status, sort_keys=True, indent=1))

    def _write_manifest(self) -> None:
        manifest = {
            "run_id": self.run_id, "mode": self.mode.value, "name": self.cfg.run.name,
            "status": self.status, "config": self.cfg.to_dict(), "config_hash": self.cfg.hash(),
            "git_sha": self.git_sha, "versions": mf.versions(), "seed": self.cfg.run.seed,
            "execution": self.cfg.execution.manifest(),
            "symbols": self.symbols, "timeframe": self.cfg.data.timeframe,
            "venue": self.venue.base_url, "journal": str(self.dir),
            "warehouse": str(self.warehouse), "pid": os.getpid(),
            "host": HOST, "started_at": self.started_at,
            "resumed": self.resumed, "bars": self.live_bars, "ended_at": None,
        }
        if self.status != "running":
            manifest.update(ended_at=mf.utc_now_iso(), error=self.last_error,
                            latency=latency_summary(self.latency_us))
        mf.write(self.run_dir / "run_manifest.json", manifest)

    def _finish(self, status: str, why: str) -> None:
        self.status = status
        if status in ("failed", "halted"):
            self.last_error = why
        with contextlib.suppress(Exception):
            self.wal.append("control", control_record(
                "stop", ts=self.step.now, reason=why, source="runtime", status=status,
                wall_ts=self._wall()))
        with contextlib.suppress(Exception):
            self.step.book.check(contents(self.journal).fills)
        with contextlib.suppress(Exception):
            self._snapshot()
        flusher = getattr(self, "flusher", None)
        if flusher is not None and not flusher.stop(final=True, timeout_s=FINAL_FLUSH_S):
            self.log.warning("warehouse", "the final flush did not go in "
                             f"({flusher.last_error}); the journal holds everything and the "
                             "next run of this id flushes it", run_id=self.run_id)
        with contextlib.suppress(Exception):
            self._write_manifest()
            self._write_status()
        self.log.info("live", f"{self.mode.value} run {self.run_id} {status}: {why}",
                      bars=self.live_bars)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` at once (a reader sees the old file or the new one)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


__all__ = ["LiveOptions", "LiveResult", "LiveRun", "ResumingJournal", "VenueTime",
           "journal_dir", "latency_summary"]


def run_live(config: str | Path | Config | None, mode: Mode | str, *,
             overrides: Iterable[str] = (), run_id: str | None = None,
             warehouse: str | Path | None = None, runs_dir: str | Path = "runs",
             options: LiveOptions | None = None, env_prefix: str = "WB_",
             echo: Any = None, announce: Callable[[str], None] | None = None,
             confirm_live: bool = False) -> LiveResult:
    """``workbench shadow|paper|live`` and ``python -m workbench.live``: load the config (the
    venue key and secret from the environment or the 0600 secrets file), point python-binance
    at ``venue.base_url``, and run (a new run, or the journaled run ``run_id`` resumed). Live
    trading (real orders) needs ``confirm_live`` and passes ``check_live_safety`` first."""
    from workbench import secrets
    from workbench.config import with_venue_credentials
    from workbench.engine.run import as_config
    from workbench.warehouse.connect import resolve_path

    wired = kernel.wiring(mode)
    if not wired.live:
        raise ConfigError(f"{wired.mode.value} is not a live mode", where="--mode",
                          fix="use shadow, paper or live (a backtest: `workbench backtest`)")
    cfg = as_config(config, overrides, env_prefix)
    if wired.sends_orders:
        check_live_safety(cfg, confirm_live)
    cfg = with_venue_credentials(cfg, secrets.SecretsProvider(prefix=env_prefix))
    kernel.build_strategy(cfg)  # a bad class or params fail before the venue is asked
    path = resolve_path(warehouse, env_prefix)
    if wired.sends_orders:
        check_contract_gate(cfg, path)
    if run_id is None:
        run_id = mf.new_id(wired.mode.value)
    elif not _RUN_ID.fullmatch(run_id):
        raise ConfigError(f"--run-id {run_id!r} is not a run id", where="--run-id",
                          fix="use the id a run printed when it started (letters, digits, "
                              "'-', '_', '.')")
    v = cfg.venue
    venue = VenueClient(v.base_url, api_key=_reveal(v.api_key), api_secret=_reveal(v.api_secret),
                        recv_window_ms=v.recv_window_ms, timeout_s=v.timeout_s)
    run = LiveRun(cfg, wired.mode, run_id=run_id, warehouse=path,
                  run_dir=Path(runs_dir) / run_id, venue=venue, options=options, echo=echo,
                  announce=announce)
    return run.run()


def check_live_safety(cfg: Config, confirm_live: bool) -> None:
    """What a run that sends real orders needs before anything is asked of the venue: the
    operator's ``--confirm-live``; a risk section in force in live mode with an order-size
    limit and a symbol allow-list holding every traded symbol (then ``check_contract_gate``)."""
    if not confirm_live:
        raise ConfigError("live trading sends real orders: it needs --confirm-live",
                          where="--confirm-live",
                          fix="rehearse with `workbench paper` first; add --confirm-live (and "
                              "--tiny for the smallest orders the venue takes)")
    risk = cfg.risk
    if not risk.modes.live or risk.max_order_notional is None:
        raise ConfigError("live trading needs the risk engine on in live mode with an order "
                          "size limit", where="risk.max_order_notional / risk.modes.live",
                          fix="set risk.max_order_notional (quote currency) and keep "
                              "risk.modes.live true; see docs/risk.md")
    missing = [s for s in cfg.data.symbols if s not in (risk.allowed_symbols or [])]
    if missing:
        raise ConfigError(f"live trading needs a symbol allow-list holding every traded "
                          f"symbol; {', '.join(missing)} is not on it",
                          where="risk.allowed_symbols",
                          fix=f"add {', '.join(missing)} to risk.allowed_symbols")


def contract_adapter(base_url: str) -> str:
    """The contract-test adapter that vouches for a venue: ``fake-binance`` for one on this
    machine, ``binance-testnet`` for the testnet and for Binance itself (the suite cannot
    trade on mainnet; the testnet speaks its API)."""
    from urllib.parse import urlsplit

    host = urlsplit(base_url).hostname or ""
    return "fake-binance" if host in ("127.0.0.1", "localhost", "::1") else "binance-testnet"


def check_contract_gate(cfg: Config, warehouse: Path) -> None:
    """Live trading starts only when ``workbench contract-tests`` passed for the venue's adapter
    on this version of the code, as recorded in the warehouse."""
    from workbench.contract.gate import contract_passed

    adapter = contract_adapter(cfg.venue.base_url)
    ok, message = contract_passed(warehouse, adapter)
    if not ok:
        raise ConfigError(f"live trading on {cfg.venue.base_url} needs the contract tests of "
                          f"adapter {adapter} to pass on this code first: {message}",
                          where="workbench contract-tests",
                          fix=f"run `workbench contract-tests --adapter {adapter} --warehouse "
                              f"{warehouse}`, then start the live run again")


_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def _reveal(secret: Any) -> str | None:
    return None if secret is None else secret.get_secret_value()
