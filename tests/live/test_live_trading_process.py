"""Live trading killed with SIGKILL at the points where real orders can be lost or doubled, then
restarted, against ``workbench fake-exchange`` in a process of its own (it outlives the kills:
its order book is the witness). After each restart: no client order id twice at the venue, the
journal's fills are the venue's trades, and the restart's reconciliation finds nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from binance.client import Client

from workbench.model import ms_to_iso
from workbench.recovery.wal import WalReader
from workbench.venues.bar_book import BarBook

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data" / "btcusdt_1m_2024-01_synthetic.csv"
DRIVER = ROOT / "tests" / "support" / "live_trading_driver.py"
START = BarBook.from_file(SAMPLE, "BTCUSDT").first_open_ms + 300 * 60_000
KEY, SECRET = "crash-key", "crash-secret"
RUN_ID = "live-crash"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    env |= {"WB_VENUE__API_KEY": KEY, "WB_VENUE__API_SECRET": SECRET}
    return env


@contextmanager
def fake_exchange(faults: str | None = None) -> Iterator[str]:
    """``workbench fake-exchange`` in its own process: 300 venue seconds a wall second (a bar
    every 0.2 s), fees in BNB."""
    args = [sys.executable, "-m", "workbench", "fake-exchange", "--data", str(SAMPLE),
            "--symbol", "BTCUSDT", "--port", "0", "--speed", "300", "--start",
            ms_to_iso(START), "--balances", "USDT=10000,BTC=0,BNB=5", "--fee-asset", "BNB",
            "--fee-asset-price", "300"]
    if faults:
        args += ["--faults", faults]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(), stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line + (proc.stderr.read() if proc.stderr else "")
    try:
        yield line.split()[-1]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def _drive(root: Path, url: str, max_bars: int, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(DRIVER), str(root), url, RUN_ID, str(max_bars),
                           *extra], capture_output=True, text=True, env=_env(), timeout=180,
                          stdin=subprocess.DEVNULL, cwd=root)


def _venue(url: str) -> dict[str, Any]:
    """The venue's own record: every order and trade of the account."""
    class Venue(Client):
        API_URL = url + "/api"

    client = Venue(KEY, SECRET, ping=False)
    client.timestamp_offset = client.get_server_time()["serverTime"] - int(time.time() * 1000)
    orders = client.get_all_orders(symbol="BTCUSDT", recvWindow=60_000)
    trades = client.get_my_trades(symbol="BTCUSDT", recvWindow=60_000)
    client.session.close()
    return {"orders": orders, "trades": trades}


def _journal(root: Path) -> list[Any]:
    return list(WalReader(root / "wh" / "live" / RUN_ID))


def _check_restarted(root: Path, url: str) -> list[Any]:
    venue = _venue(url)
    ids = [o["clientOrderId"] for o in venue["orders"]]
    assert len(ids) == len(set(ids)), f"a client order id twice at the venue: {ids}"
    records = _journal(root)
    fills = [r.payload for r in records if r.kind == "fill"]
    venue_fills = [r.payload for r in records if r.kind == "venue_fill"]
    assert sorted(int(v["trade_id"]) for v in venue_fills) == sorted(
        int(t["id"]) for t in venue["trades"])
    assert sum(f["qty"] for f in fills) == pytest.approx(
        sum(float(t["qty"]) for t in venue["trades"]), abs=1e-12)
    checks = [r.payload for r in records if r.kind == "reconciliation"]
    restart = [c for c in checks if c["trigger"] == "restart"]
    assert restart and all(not d["halts"] for c in restart for d in c["differences"])
    return records


@pytest.mark.parametrize("spec", ["before:2", "after:2", "after:3"])
def test_live_killed_around_an_order_request_restarts_without_a_duplicate(
        tmp_path: Path, spec: str) -> None:
    with fake_exchange() as url:
        crashed = _drive(tmp_path, url, 30, "--crash", spec)
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        resumed = _drive(tmp_path, url, 24)
        assert resumed.returncode == 0, resumed.stderr
        assert resumed.stdout.split()[-3:-1] == ["done", "completed"]
        records = _check_restarted(tmp_path, url)
    events = [(r.payload["client_order_id"], r.payload["status"], r.payload["reason"])
              for r in records if r.kind == "order_event"]
    n = spec.split(":")[1]
    assert (f"{RUN_ID}-{n}", "UNKNOWN", "RESTART") in events
    assert [e for e in events if e[0] == f"{RUN_ID}-{n}" and e[1] == "FILLED"]


def test_live_killed_while_an_order_is_invisible_waits_for_the_venue_not_a_resend(
        tmp_path: Path) -> None:
    # the 2nd order is taken, its answer lost, and queries say -2013 for 2 s; the process is
    # killed at its first query; restarted at once, it must wait the window out and find it
    with fake_exchange("order:lost@2,order:invisible=2s@2") as url:
        crashed = _drive(tmp_path, url, 30, "--crash", "resolve:1", "--invisible-s", "4")
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        resumed = _drive(tmp_path, url, 24, "--invisible-s", "4")
        assert resumed.returncode == 0, resumed.stderr
        records = _check_restarted(tmp_path, url)
    events = [(r.payload["client_order_id"], r.payload["status"])
              for r in records if r.kind == "order_event"]
    assert (f"{RUN_ID}-2", "UNKNOWN") in events and (f"{RUN_ID}-2", "FILLED") in events


def test_live_starts_only_once_the_contract_tests_passed_on_this_code(tmp_path: Path) -> None:
    config = tmp_path / "live.yaml"
    warehouse = tmp_path / "wh" / "w.duckdb"
    with fake_exchange() as url:
        config.write_text(
            "data: {symbols: [BTCUSDT], timeframe: 1m}\n"
            "strategy: {class: 'workbench.strategies.sma_cross:SmaCross', "
            "params: {fast: 3, slow: 8, qty: 0.00015}}\n"
            "risk: {allowed_symbols: [BTCUSDT], max_order_notional: 20}\n"
            f"venue: {{base_url: '{url}'}}\n"
            "live: {warmup_bars: 10, tiny_notional: 10}\n")
        live = [sys.executable, "-m", "workbench", "--warehouse", str(warehouse), "live",
                "--config", str(config), "--confirm-live", "--tiny", "--max-bars", "3",
                "--runs-dir", str(tmp_path / "runs")]
        refused = subprocess.run(live, capture_output=True, text=True, env=_env(), timeout=120,
                                 cwd=tmp_path, stdin=subprocess.DEVNULL)
        assert refused.returncode == 2, refused.stderr
        assert "needs the contract tests of adapter fake-binance" in refused.stderr
        assert "workbench contract-tests --adapter fake-binance" in refused.stderr
        assert not (tmp_path / "runs").exists()
        suite = subprocess.run(
            [sys.executable, "-m", "workbench", "--warehouse", str(warehouse), "contract-tests",
             "--adapter", "fake-binance", "--junit", str(tmp_path / "junit.xml")],
            capture_output=True, text=True, env=_env(), timeout=300, cwd=tmp_path,
            stdin=subprocess.DEVNULL)
        assert suite.returncode == 0, suite.stdout + suite.stderr
        ran = subprocess.run(live, capture_output=True, text=True, env=_env(), timeout=120,
                             cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert ran.returncode == 0, ran.stderr
    assert "completed: 3 bars decided" in ran.stdout
