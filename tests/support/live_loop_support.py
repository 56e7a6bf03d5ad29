"""Helpers for the live-loop tests: a ``LiveRun`` on simulated time (``live_harness.SimTime``)
against a ``FakeBinance`` over any bar file, with the venue client's knobs (key, secret,
timeout, retries) exposed; WAL readers; a port nothing listens on; a venue answering garbage."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from live_harness import SimTime, paper_config

from workbench.config import Config
from workbench.engine.live import LiveOptions, LiveRun
from workbench.model import Mode
from workbench.recovery.wal import Record, WalReader
from workbench.venue_client import RetryPolicy, VenueClient
from workbench.venues.bar_book import BarBook
from workbench.venues.fake_binance import FakeBinance
from workbench.venues.venue_clock import ManualClock

MIN = 60_000


@contextmanager
def venue(data: Path, start_ms: int, symbol: str = "BTCUSDT", **kwargs: Any
          ) -> Iterator[tuple[FakeBinance, ManualClock]]:
    clock = ManualClock(start_ms)
    kwargs.setdefault("weight_limit", 10**9)  # counted per wall minute: see live_harness
    with FakeBinance(BarBook.from_file(data, symbol), clock=clock, **kwargs) as fx:
        yield fx, clock


def config(url: str, *, strategy: str = "live_loop_strategies:Ticker",
           params: dict[str, Any] | None = None, **sections: Any) -> Config:
    """``live_harness.paper_config`` running a strategy of ``live_loop_strategies``, with
    5 warm-up bars unless ``live`` says otherwise."""
    sections.setdefault("live", {"warmup_bars": 5})
    return paper_config(url, strategy={"class": strategy, "params": params or {}}, **sections)


def make_run(url: str, clock: ManualClock, tmp: Path, cfg: Config, *,
             mode: Mode = Mode.PAPER, run_id: str = "run-1",
             options: LiveOptions | None = None, timeout_s: float = 10.0,
             attempts: int = 6, speed: float = 600.0,
             on_sleep: Callable[[int], None] | None = None) -> LiveRun:
    """A ``LiveRun`` (not started) on simulated time; the venue client takes the key and
    secret from ``cfg.venue`` as ``run_live`` does. Warehouse ``tmp/wh/w.duckdb``, run
    directory ``tmp/runs/<run_id>``. ``on_sleep(venue_ms)`` is called at each of the loop's
    sleeps with the venue time (to act on a run while it runs)."""
    sim = SimTime(clock, speed)
    sleep = sim.sleep
    if on_sleep is not None:
        def sleep(seconds: float) -> None:
            sim.sleep(seconds)
            on_sleep(clock.now_ms())

    v = cfg.venue
    client = VenueClient(
        url, api_key=None if v.api_key is None else v.api_key.get_secret_value(),
        api_secret=None if v.api_secret is None else v.api_secret.get_secret_value(),
        recv_window_ms=v.recv_window_ms, timeout_s=timeout_s,
        policy=RetryPolicy(attempts=attempts, base_s=0.01, cap_s=0.05),
        sleep=sim.sleep, monotonic=sim.monotonic)
    return LiveRun(cfg, mode, run_id=run_id, warehouse=tmp / "wh" / "w.duckdb",
                   run_dir=tmp / "runs" / run_id, venue=client,
                   options=options or LiveOptions(max_bars=30),
                   sleep=sleep, monotonic=sim.monotonic)


def records(journal: Path, *kinds: str) -> list[Record]:
    return [r for r in WalReader(journal) if not kinds or r.kind in kinds]


def payloads(journal: Path, kind: str) -> list[dict[str, Any]]:
    return [r.payload for r in records(journal, kind)]


def blocks(journal: Path) -> list[dict[str, Any]]:
    """The ``risk_event`` records of risk blocks and stops (not the snapshots' risk state)."""
    return [p for p in payloads(journal, "risk_event") if p.get("reason") != "state"]


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def garbage_venue(answers: dict[str, str], default: str = "hello, not json"
                  ) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 answering 200 to every GET: the body given for the first
    key of ``answers`` the path contains, else ``default``. Yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = next((b for k, b in answers.items() if k in self.path), default).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def exchange_info(symbol: str = "BTCUSDT") -> str:
    return json.dumps({"timezone": "UTC", "serverTime": 0, "symbols": [{"symbol": symbol}]})


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` (relative name -> bytes); {} when it does not exist."""
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file()}
