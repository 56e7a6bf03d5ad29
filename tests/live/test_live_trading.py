"""Live trading (``Mode.LIVE``: BinanceBroker, real orders) through the live loop, against the fake
exchange with the real python-binance client, on simulated time.

The fake's own record of orders and trades is the witness of what reached the venue. Fees are
taken in BNB (as Binance accounts holding BNB pay them), so the books hold what the venue holds
and a paper run of the same bars is the yardstick.
"""

from __future__ import annotations

from decimal import Decimal
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


def test_live_tiny_run_sizes_all_in_orders_down_to_the_minimum_and_trades(tmp_path: Path
                                                                          ) -> None:
    with venue(SAMPLE, START, **LIVE_VENUE) as (fx, clock):
        cfg = _live_config(fx.url, tmp_path, params={"qty": 0.2})  # ~8,400 USDT: all in
        result = make_run(fx.url, clock, tmp_path, cfg, mode=Mode.LIVE,
                          options=LiveOptions(max_bars=14, tiny=True)).run()
        venue_orders = [(o.client_order_id, o.side, o.qty) for o in fx.matcher.orders]
    journal = result.journal_dir
    orders = payloads(journal, "order")
    assert [(o["client_order_id"], o["side"], Decimal(repr(o["qty"]))) for o in orders] == \
        venue_orders
    fills = {f["client_order_id"]: f for f in payloads(journal, "fill")}
    buys = [o for o in orders if o["side"] == "BUY"]
    assert len(buys) >= 2 and len(fills) == len(orders)  # each filled, none refused
    step = Decimal("0.00001")
    for buy in buys:  # the smallest lot over the 5 USDT minimum (max_order_notional 1000)
        notional = Decimal(repr(buy["qty"])) * Decimal(repr(fills[buy["client_order_id"]][
            "price"]))
        assert Decimal(5) <= notional < Decimal(5) + step * 50_000
    news = {e["client_order_id"]: e["reason"] for e in payloads(journal, "order_event")
            if e["status"] == "NEW"}
    assert all(news[b["client_order_id"]] == f"CAPPED 0.2 -> {b['qty']!r}" for b in buys)
    assert all(news[o["client_order_id"]] is None for o in orders if o["side"] == "SELL")


def test_live_tiny_run_resumes_only_with_the_sizing_it_was_started_with(tmp_path: Path
                                                                        ) -> None:
    with venue(SAMPLE, START, **LIVE_VENUE) as (fx, clock):
        cfg = _live_config(fx.url, tmp_path, params={"qty": 0.2})
        make_run(fx.url, clock, tmp_path, cfg, mode=Mode.LIVE,
                 options=LiveOptions(max_bars=8, tiny=True)).run()
        with pytest.raises(ConfigError) as refused:
            make_run(fx.url, clock, tmp_path, cfg, mode=Mode.LIVE,
                     options=LiveOptions(max_bars=20)).run()
        assert refused.value.where == "--tiny / live.tiny_notional"
        assert "started with --tiny" in refused.value.what
        resumed = make_run(fx.url, clock, tmp_path, cfg, mode=Mode.LIVE,
                           options=LiveOptions(max_bars=20, tiny=True)).run()
        ids = _venue_ids(fx)
    assert resumed.resumed and resumed.status == "completed"
    assert len(ids) == len(set(ids)) >= 3


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
    ({"venue": {"base_url": "https://api.binance.com"}},
     "needs the contract tests of adapter binance-testnet", "workbench contract-tests"),
    ({"risk": RISK}, "needs the contract tests of adapter fake-binance",
     "workbench contract-tests"),
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


# --- reconciliation ----------------------------------------------------------------------------
def test_live_reconciles_at_start_and_periodically_without_differences(tmp_path: Path
                                                                       ) -> None:
    with venue(SAMPLE, START, **LIVE_VENUE) as (fx, clock):
        cfg = _live_config(fx.url, tmp_path,
                           live={"warmup_bars": 5, "invisible_s": 0.05,
                                 "reconcile_every_bars": 10})
        result = make_run(fx.url, clock, tmp_path, cfg, mode=Mode.LIVE,
                          options=LiveOptions(max_bars=30)).run()
    checks = payloads(result.journal_dir, "reconciliation")
    assert [c["trigger"] for c in checks][:1] == ["start"]
    assert [c["trigger"] for c in checks].count("periodic") >= 2
    assert all(c["ok"] and c["differences"] == [] for c in checks)
    start = payloads(result.journal_dir, "control")[0]
    assert {k: float(v) for k, v in start["venue_balances"].items()} == {
        "USDT": 10000.0, "BTC": 0.0, "BNB": 5.0}
    venue_fills = payloads(result.journal_dir, "venue_fill")
    assert len(venue_fills) == len(payloads(result.journal_dir, "fill"))
    assert {v["commission_asset"] for v in venue_fills} == {"BNB"}


def test_live_order_it_did_not_send_is_reported_and_left_alone(tmp_path: Path) -> None:
    with venue(SAMPLE, START, **LIVE_VENUE) as (fx, clock):
        other = _other_client(fx.url)
        other.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                           quantity="0.001", price="30000", newClientOrderId="web_manual")
        cfg = _live_config(fx.url, tmp_path)
        result = make_run(fx.url, clock, tmp_path, cfg, mode=Mode.LIVE,
                          options=LiveOptions(max_bars=8)).run()
        still_open = [o.client_order_id for o in fx.matcher.orders if o.status == "NEW"]
    alerts = [a for a in payloads(result.journal_dir, "alert") if a["kind"] == "reconciliation"]
    assert alerts and alerts[0]["data"]["difference"] == "unknown_venue_order"
    assert alerts[0]["data"]["client_order_id"] == "web_manual"
    assert "web_manual" in still_open  # never adopted, never cancelled
    assert result.status == "completed"


def test_live_position_that_differs_from_the_venue_halts_the_run(tmp_path: Path) -> None:
    from decimal import Decimal as D

    def tamper(venue_ms: int) -> None:  # someone moves the account's BTC mid-run
        if venue_ms >= START + 15 * 60_000 and not tampered:
            fx.matcher.free["BTC"] += D("0.5")
            tampered.append(True)

    tampered: list[bool] = []
    with venue(SAMPLE, START, **LIVE_VENUE) as (fx, clock):
        result = _reconciling_run(fx, clock, tmp_path, tamper)
    assert tampered
    alerts = [a for a in payloads(result.journal_dir, "alert") if a["kind"] == "reconciliation"]
    assert alerts and alerts[0]["severity"] == "error"
    assert alerts[0]["data"]["difference"] == "position_mismatch"
    halts = [c for c in payloads(result.journal_dir, "control") if c.get("action") == "halt"]
    assert halts and halts[0]["source"] == "reconciliation"


def _other_client(url: str) -> Any:
    """Someone else's python-binance client on the same account."""
    import time

    from binance.client import Client

    class Other(Client):
        API_URL = url + "/api"

    other = Other(KEY, SECRET, ping=False)
    other.timestamp_offset = other.get_server_time()["serverTime"] - int(time.time() * 1000)
    return other


def _reconciling_run(fx: Any, clock: Any, tmp: Path, on_sleep: Any) -> Any:
    """30 live bars reconciled every 5, ``on_sleep(venue_ms)`` at each of the loop's sleeps."""
    cfg = _live_config(fx.url, tmp, live={"warmup_bars": 5, "invisible_s": 0.05,
                                          "reconcile_every_bars": 5})
    return make_run(fx.url, clock, tmp, cfg, mode=Mode.LIVE, on_sleep=on_sleep,
                    options=LiveOptions(max_bars=30)).run()


def test_live_venue_fills_and_reconciliations_reach_the_warehouse(tmp_path: Path) -> None:
    from workbench.warehouse.connect import reading

    with venue(SAMPLE, START, **LIVE_VENUE) as (fx, clock):
        cfg = _live_config(fx.url, tmp_path)
        result = make_run(fx.url, clock, tmp_path, cfg, mode=Mode.LIVE,
                          options=LiveOptions(max_bars=20)).run()
        trades = [(t.id, t.commission, t.commission_asset) for t in fx.matcher.trades]
    with reading(tmp_path / "wh" / "w.duckdb") as con:
        rows = con.sql("select trade_id, commission, commission_asset from venue_fills "
                       "where run_id = ? order by trade_id", params=[result.run_id]).fetchall()
        checks = con.sql("select trigger, ok, differences, halted from reconciliations "
                         "where run_id = ? order by ts", params=[result.run_id]).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == trades and trades
    assert checks[0] == ("start", True, 0, False)


def test_live_orders_the_venue_keeps_failing_halt_the_run_with_an_alert(tmp_path: Path
                                                                        ) -> None:
    with venue(SAMPLE, START, faults="order:429=1x*", **LIVE_VENUE) as (fx, clock):
        cfg = _live_config(fx.url, tmp_path)
        result = make_run(fx.url, clock, tmp_path, cfg, mode=Mode.LIVE,
                          options=LiveOptions(max_bars=30)).run()
        sent = fx.faults.calls("order")
    alerts = [a for a in payloads(result.journal_dir, "alert") if a["kind"] == "order_failures"]
    assert len(alerts) == 1 and alerts[0]["severity"] == "error"
    halts = [c for c in payloads(result.journal_dir, "control") if c.get("action") == "halt"]
    assert [h["reason"] for h in halts] == ["repeated order failures"]
    assert sent == 3  # halted: no order after the third failure reached the venue


def test_live_restart_counts_the_venues_order_failures_on_from_the_journal(tmp_path: Path
                                                                          ) -> None:
    # Ticker (flat, every order refused) sends at live bars 3, 9, 15, 21: the first three are
    # throttled; two before the stop, the third after the restart makes three in a row
    with venue(SAMPLE, START, faults="order:429=1x3", **LIVE_VENUE) as (fx, clock):
        cfg = _live_config(fx.url, tmp_path)
        first = make_run(fx.url, clock, tmp_path, cfg, mode=Mode.LIVE,
                         options=LiveOptions(max_bars=10)).run()
        assert first.status == "completed" and fx.faults.calls("order") == 2
        assert not payloads(first.journal_dir, "alert")
        resumed = make_run(fx.url, clock, tmp_path, cfg, mode=Mode.LIVE,
                           options=LiveOptions(max_bars=30)).run()
        sent = fx.faults.calls("order")
    journal = resumed.journal_dir
    assert [(p["failures"], p["cause"]) for p in payloads(journal, "order_failures")] == [
        (1, "VENUE_RATE_LIMITED"), (2, "VENUE_RATE_LIMITED"), (3, "VENUE_RATE_LIMITED")]
    alerts = [a for a in payloads(journal, "alert") if a["kind"] == "order_failures"]
    assert len(alerts) == 1 and alerts[0]["data"]["failures"] == 3
    halts = [c for c in payloads(journal, "control") if c.get("action") == "halt"]
    assert [h["reason"] for h in halts] == ["repeated order failures"]
    assert sent == 3  # halted at the third: the fourth order never reached the venue
    assert recover(journal).state.order_failures == 3


def test_live_resume_after_an_order_failures_halt_counts_afresh_then_and_after_a_restart(
        tmp_path: Path) -> None:
    import json
    import time

    placed: list[int] = []

    def operator(venue_ms: int) -> None:  # resumes the halted run once, a bar after the halt
        if venue_ms >= START + 18 * 60_000 + 30_000 and not placed:
            placed.append(venue_ms)
            folder = tmp_path / "runs" / "run-1" / "control"
            (folder / f"{time.time_ns()}-resume.json").write_text(json.dumps(
                {"action": "resume", "reason": "venue healthy", "confirm": True}))

    with venue(SAMPLE, START, faults="order:429=1x3", **LIVE_VENUE) as (fx, clock):
        cfg = _live_config(fx.url, tmp_path)
        first = make_run(fx.url, clock, tmp_path, cfg, mode=Mode.LIVE, on_sleep=operator,
                         options=LiveOptions(max_bars=20)).run()
        assert placed and recover(first.journal_dir).state.order_failures == 0
        resumed = make_run(fx.url, clock, tmp_path, cfg, mode=Mode.LIVE,
                           options=LiveOptions(max_bars=30)).run()
    journal = resumed.journal_dir
    # halted at the third failure, resumed, and not halted again (the count started over)
    assert [c["action"] for c in payloads(journal, "control")
            if c["action"] in ("halt", "resume")] == ["halt", "resume"]
    assert [a["kind"] for a in payloads(journal, "alert")] == ["order_failures"]
    assert payloads(journal, "fill")  # after the restart the next order went through


def test_live_account_without_bnb_is_warned_at_the_start(tmp_path: Path) -> None:
    no_bnb = {**LIVE_VENUE, "balances": {"USDT": "10000", "BTC": "0"}}
    with venue(SAMPLE, START, **no_bnb) as (fx, clock):
        result = make_run(fx.url, clock, tmp_path, _live_config(fx.url, tmp_path),
                          mode=Mode.LIVE, options=LiveOptions(max_bars=3)).run()
    alerts = [a for a in payloads(result.journal_dir, "alert") if a["kind"] == "fee_asset"]
    assert len(alerts) == 1 and "hold BNB" in alerts[0]["message"]


def test_live_trade_someone_else_made_on_the_account_is_named_and_halts(tmp_path: Path
                                                                        ) -> None:
    def trade_behind_its_back(venue_ms: int) -> None:
        if venue_ms >= START + 15 * 60_000 and not done:
            other = _other_client(fx.url)
            other.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.002",
                               newClientOrderId="web_manual_buy")
            other.session.close()
            done.append(True)

    done: list[bool] = []
    with venue(SAMPLE, START, **LIVE_VENUE) as (fx, clock):
        result = _reconciling_run(fx, clock, tmp_path, trade_behind_its_back)
    assert done
    kinds = {a["data"]["difference"] for a in payloads(result.journal_dir, "alert")
             if a["kind"] == "reconciliation"}
    assert {"foreign_trade", "position_mismatch"} <= kinds
    halts = [c for c in payloads(result.journal_dir, "control") if c.get("action") == "halt"]
    assert halts and halts[0]["source"] == "reconciliation"
