"""Live trading (``Mode.LIVE``: BinanceBroker, real orders) through the live loop, against the fake
exchange with the real python-binance client, on simulated time.

The fake's own record of orders and trades is the witness of what reached the venue. Fees are
taken in BNB (as Binance accounts holding BNB pay them), so the books hold what the venue holds
and a paper run of the same bars is the yardstick.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from live_harness import SAMPLE
from live_loop_support import config, make_run, payloads, records, venue

from workbench import secrets
from workbench.config import Config, with_venue_credentials
from workbench.engine.live import LiveOptions, run_live
from workbench.errors import ConfigError
from workbench.model import Mode
from workbench.recovery.replay import recover

START = 1_704_067_200_000 + 40 * 60_000
KEY, SECRET = "live-key", "live-secret"
LIVE_VENUE = {"api_key": KEY, "api_secret": SECRET, "balances": {
    "USDT": "10000", "BTC": "0", "BNB": "5"}, "fee_asset": "BNB", "fee_asset_price": "300"}
RISK = {"allowed_symbols": ["BTCUSDT"], "max_order_notional": 1000.0}


def _live_config(url: str, tmp: Path, **sections: Any) -> Config:
    """Ticker (buy 0.01 every 6 bars, sell 3 bars later) without slippage and with the
    venue's 10 bps as its fee, the key and secret as run_live takes them."""
    sections.setdefault("costs", {"fee_bps": 10, "slippage_bps": 0})
    sections.setdefault("risk", RISK)
    # simulated time runs 600 venue ms per process ms: 10 s would be 100 venue minutes
    sections.setdefault("live", {"warmup_bars": 5, "invisible_s": 0.05})
    cfg = config(url, **sections)
    env = {"WB_VENUE__API_KEY": KEY, "WB_VENUE__API_SECRET": SECRET,
           "WB_SECRETS_FILE": str(tmp / "no-secrets.env")}
    return with_venue_credentials(cfg, secrets.SecretsProvider(env=env))


def _fills(journal: Path) -> list[tuple[str, float, float, float]]:
    return [(p["side"], p["qty"], p["price"], round(p["fee"], 6))
            for p in payloads(journal, "fill")]


def test_live_run_sends_each_order_once_and_books_what_the_venue_holds(tmp_path: Path
                                                                        ) -> None:
    with venue(SAMPLE, START, **LIVE_VENUE) as (fx, clock):
        cfg = _live_config(fx.url, tmp_path)
        result = make_run(fx.url, clock, tmp_path / "live", cfg, mode=Mode.LIVE,
                          options=LiveOptions(max_bars=30)).run()
        venue_orders = list(fx.matcher.orders)
        venue_trades = list(fx.matcher.trades)
        held = {b["asset"]: float(b["free"]) + float(b["locked"])
                for b in fx.matcher.balances(clock.now_ms())}
    assert result.status == "completed" and result.bars == 30
    journal = result.journal_dir
    orders = payloads(journal, "order")
    assert len(orders) >= 6
    assert [o.client_order_id for o in venue_orders] == [o["client_order_id"] for o in orders]
    fills = payloads(journal, "fill")
    assert [(float(t.qty), float(t.price)) for t in venue_trades] == [
        (f["qty"], f["price"]) for f in fills]
    state = recover(journal).state
    assert state.units.get("BTCUSDT", 0) / 1e8 == pytest.approx(held["BTC"], abs=1e-12)
    fees = sum(f["fee"] for f in fills)  # in quote; the venue took them in BNB at 300
    assert state.cash + fees == pytest.approx(held["USDT"], abs=1e-6)
    assert held["BNB"] == pytest.approx(5 - fees / 300, abs=1e-7)
    assert {p["status"] for p in payloads(journal, "order_event")} <= {
        "NEW", "SUBMITTED", "FILLED"}
    assert not any(r.kind == "alert" for r in records(journal))


def test_live_books_equal_a_paper_run_of_the_same_bars(tmp_path: Path) -> None:
    with venue(SAMPLE, START, **LIVE_VENUE) as (fx, clock):
        live = make_run(fx.url, clock, tmp_path / "live", _live_config(fx.url, tmp_path),
                        mode=Mode.LIVE, options=LiveOptions(max_bars=30)).run()
    with venue(SAMPLE, START, **LIVE_VENUE) as (fx, clock):
        paper = make_run(fx.url, clock, tmp_path / "paper", _live_config(fx.url, tmp_path),
                         mode=Mode.PAPER, options=LiveOptions(max_bars=30)).run()
    live_fills, paper_fills = _fills(live.journal_dir), _fills(paper.journal_dir)
    assert [f[:3] for f in live_fills] == [f[:3] for f in paper_fills]
    assert [f[3] for f in live_fills] == pytest.approx([f[3] for f in paper_fills], abs=1e-5)
    live_state, paper_state = recover(live.journal_dir).state, recover(paper.journal_dir).state
    assert live_state.units == paper_state.units
    assert live_state.cash == pytest.approx(paper_state.cash, abs=1e-4)


def test_live_filter_breach_is_rejected_before_sending_with_the_filter_named(
        tmp_path: Path) -> None:
    with venue(SAMPLE, START, **LIVE_VENUE) as (fx, clock):
        cfg = _live_config(fx.url, tmp_path, params={"qty": 0.0000123})  # off the 1e-5 step
        result = make_run(fx.url, clock, tmp_path, cfg, mode=Mode.LIVE,
                          options=LiveOptions(max_bars=12)).run()
        sent = fx.faults.calls("order")
    events = payloads(result.journal_dir, "order_event")
    rejected = [e for e in events if e["status"] == "REJECTED"]
    assert rejected and {e["reason"] for e in rejected} == {"VENUE_FILTER_LOT_SIZE"}
    assert sent == 0


def test_live_order_whose_answer_is_lost_is_found_not_sent_twice(tmp_path: Path) -> None:
    with venue(SAMPLE, START, faults="order:lost@1", **LIVE_VENUE) as (fx, clock):
        result = make_run(fx.url, clock, tmp_path, _live_config(fx.url, tmp_path),
                          mode=Mode.LIVE, options=LiveOptions(max_bars=12), timeout_s=3).run()
        venue_ids = [o.client_order_id for o in fx.matcher.orders]
    statuses = [(e["client_order_id"], e["status"])
                for e in payloads(result.journal_dir, "order_event")]
    assert ("run-1-1", "UNKNOWN") in statuses and ("run-1-1", "FILLED") in statuses
    assert len(venue_ids) == len(set(venue_ids))  # no client order id twice at the venue


def test_live_without_the_api_key_is_refused_before_anything_is_written(tmp_path: Path
                                                                         ) -> None:
    with venue(SAMPLE, START, **LIVE_VENUE) as (fx, clock):
        cfg = config(fx.url, risk=RISK)
        with pytest.raises(ConfigError, match="needs the venue's API key"):
            make_run(fx.url, clock, tmp_path, cfg, mode=Mode.LIVE).run()
    assert not (tmp_path / "runs").exists() and not (tmp_path / "wh").exists()


@pytest.mark.parametrize(("change", "says", "where"), [
    ({}, "needs --confirm-live", "--confirm-live"),
    ({"risk": {"allowed_symbols": ["BTCUSDT"]}}, "order size limit",
     "risk.max_order_notional / risk.modes.live"),
    ({"risk": {"max_order_notional": 100.0}}, "symbol allow-list", "risk.allowed_symbols"),
    ({"venue": {"base_url": "https://api.binance.com"}}, "is not enabled yet",
     "venue.base_url"),
])
def test_run_live_safety_gates_refuse_before_the_venue_is_asked(
        tmp_path: Path, change: dict[str, Any], says: str, where: str) -> None:
    tree = {"data": {"symbols": ["BTCUSDT"], "timeframe": "1m"},
            "strategy": {"class": "workbench.strategies.sma_cross:SmaCross",
                         "params": {"fast": 5, "slow": 20, "qty": 0.001}},
            "venue": {"base_url": "http://127.0.0.1:9"}, "risk": RISK}
    for section, values in change.items():
        tree[section] = values
    path = tmp_path / "live.yaml"
    path.write_text(yaml.safe_dump(tree))
    with pytest.raises(ConfigError) as raised:
        run_live(path, "live", warehouse=tmp_path / "w.duckdb", runs_dir=tmp_path / "runs",
                 confirm_live=bool(change), env_prefix="WBTEST_")
    assert says in raised.value.what and raised.value.where == where
    assert not (tmp_path / "runs").exists() and not (tmp_path / "w.duckdb").exists()


# --- restart: the journal re-executed, the venue asked, never a duplicate --------------------
class Died(BaseException):
    """The process dies here (nothing of the run's own error handling runs)."""


def _venue_ids(fx: Any) -> list[str]:
    return [o.client_order_id for o in fx.matcher.orders]


def test_live_restart_after_a_stop_continues_as_the_uninterrupted_run(tmp_path: Path) -> None:
    with venue(SAMPLE, START, **LIVE_VENUE) as (fx, clock):
        cfg = _live_config(fx.url, tmp_path)
        whole = make_run(fx.url, clock, tmp_path / "whole", cfg, mode=Mode.LIVE,
                         options=LiveOptions(max_bars=30)).run()
        whole_ids = _venue_ids(fx)
    with venue(SAMPLE, START, **LIVE_VENUE) as (fx, clock):
        cfg = _live_config(fx.url, tmp_path)
        make_run(fx.url, clock, tmp_path / "parts", cfg, mode=Mode.LIVE,
                 options=LiveOptions(max_bars=14)).run()
        resumed = make_run(fx.url, clock, tmp_path / "parts", cfg, mode=Mode.LIVE,
                           options=LiveOptions(max_bars=30)).run()
        parts_ids = _venue_ids(fx)
    assert resumed.resumed and resumed.status == "completed"
    assert parts_ids == whole_ids and len(set(parts_ids)) == len(parts_ids)
    assert _fills(resumed.journal_dir) == _fills(whole.journal_dir)
    assert recover(resumed.journal_dir).state.units == recover(whole.journal_dir).state.units


@pytest.mark.parametrize("where", ["before the request", "after the request"])
def test_live_death_mid_submit_then_restart_sends_no_duplicate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    from binance.client import Client

    real = Client.create_order
    calls = {"n": 0}

    def dying(self: Any, **params: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # the second order: journaled (order record and NEW), then death
            if where == "after the request":
                real(self, **params)
            raise Died()
        return real(self, **params)

    with venue(SAMPLE, START, **LIVE_VENUE) as (fx, clock):
        cfg = _live_config(fx.url, tmp_path)
        monkeypatch.setattr(Client, "create_order", dying)
        with pytest.raises(Died):
            make_run(fx.url, clock, tmp_path, cfg, mode=Mode.LIVE,
                     options=LiveOptions(max_bars=30)).run()
        monkeypatch.setattr(Client, "create_order", real)
        before = _venue_ids(fx)
        assert len(before) == (2 if where == "after the request" else 1)
        resumed = make_run(fx.url, clock, tmp_path, cfg, mode=Mode.LIVE,
                           options=LiveOptions(max_bars=30)).run()
        after = _venue_ids(fx)
    assert resumed.resumed and resumed.status == "completed"
    assert len(after) == len(set(after))  # no client order id twice at the venue
    events = [(e["client_order_id"], e["status"], e["reason"])
              for e in payloads(resumed.journal_dir, "order_event")]
    assert ("run-1-2", "UNKNOWN", "RESTART") in events
    assert ("run-1-2", "FILLED", None) in events
    fills = payloads(resumed.journal_dir, "fill")
    assert [f["client_order_id"] for f in fills].count("run-1-2") == 1
