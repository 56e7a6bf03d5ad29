"""Adversarial review of live trading's restart (adr/0015): partial fills, lost answers and
restarts in a row, in-process against the fake exchange on simulated time."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from live_harness import SAMPLE
from live_loop_support import config, payloads, venue
from live_loop_support import make_run as _make_run

from workbench import secrets
from workbench.config import Config, with_venue_credentials
from workbench.engine.live import LiveOptions
from workbench.model import Mode
from workbench.recovery.replay import recover

START = 1_704_067_200_000 + 40 * 60_000
KEY, SECRET = "live-key", "live-secret"
LIVE_VENUE = {"api_key": KEY, "api_secret": SECRET, "balances": {
    "USDT": "10000", "BTC": "0", "BNB": "5"}, "fee_asset": "BNB", "fee_asset_price": "300"}
RISK = {"allowed_symbols": ["BTCUSDT"], "max_order_notional": 1000.0}
PARTIAL = {**LIVE_VENUE, "participation": 0.00002}
RESTING = "live_loop_strategies:RestingBuyer"


def _live_config(url: str, tmp: Path, *, strategy: str = "live_loop_strategies:Ticker",
                 params: dict[str, Any] | None = None, **sections: Any) -> Config:
    """As tests/live/test_live_trading.py's."""
    sections.setdefault("costs", {"fee_bps": 10, "slippage_bps": 0})
    sections.setdefault("risk", RISK)
    sections.setdefault("live", {"warmup_bars": 5, "invisible_s": 0.05})
    cfg = config(url, strategy=strategy, params=params, **sections)
    env = {"WB_VENUE__API_KEY": KEY, "WB_VENUE__API_SECRET": SECRET,
           "WB_SECRETS_FILE": str(tmp / "no-secrets.env")}
    return with_venue_credentials(cfg, secrets.SecretsProvider(env=env))


def make_run(*args: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("mode", Mode.LIVE)
    return _make_run(*args, **kwargs)


def _held(fx: Any, clock: Any) -> dict[str, Decimal]:
    return {b["asset"]: Decimal(b["free"]) + Decimal(b["locked"])
            for b in fx.matcher.balances(clock.now_ms())}


def _check_books_equal_venue(journal: Path, fx: Any, clock: Any) -> None:
    fills = payloads(journal, "fill")
    ids = [t for f in fills for t in str(f.get("venue_trade_id") or "").split(",") if t]
    assert len(ids) == len(set(ids)), f"a venue trade reported twice: {ids}"
    assert sorted(int(t) for t in ids) == [t.id for t in fx.matcher.trades]
    state = recover(journal).state
    held = _held(fx, clock)
    assert Decimal(state.units.get("BTCUSDT", 0)) / Decimal(10**8) == held["BTC"]


def test_live_restart_with_a_partly_filled_resting_order_reports_each_trade_once(
        tmp_path: Path) -> None:
    with venue(SAMPLE, START, **PARTIAL) as (fx, clock):
        cfg = _live_config(fx.url, tmp_path, strategy=RESTING)
        first = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=9)).run()
        assert first.status == "completed"
        open_at_stop = [o.status for o in fx.matcher.orders]
        trades_at_stop = len(fx.matcher.trades)
        clock.advance(4 * 60_000)  # the venue fills more while the process is down
        resumed = make_run(fx.url, clock, tmp_path, cfg,
                           options=LiveOptions(max_bars=12)).run()
        assert resumed.resumed and resumed.status == "completed"
        assert open_at_stop == ["PARTIALLY_FILLED"] and trades_at_stop >= 1
        assert len(fx.matcher.trades) > trades_at_stop
        ids = [f["venue_trade_id"] for f in payloads(resumed.journal_dir, "fill")]
        assert any("," in i for i in ids)  # the trades made while down: one logical fill
        clock.advance(4 * 60_000)
        resumed = make_run(fx.url, clock, tmp_path, cfg,  # that fill is replayed now
                           options=LiveOptions(max_bars=25)).run()
        assert resumed.resumed and resumed.status == "completed"
        _check_books_equal_venue(resumed.journal_dir, fx, clock)
        assert not [a for a in payloads(resumed.journal_dir, "alert")
                    if a["kind"] == "reconciliation"]


def test_live_restart_with_a_resting_order_holds_the_same_free_cash(tmp_path: Path) -> None:
    with venue(SAMPLE, START, **PARTIAL) as (fx, clock):
        cfg = _live_config(fx.url, tmp_path, strategy=RESTING)
        first = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=9))
        assert first.run().status == "completed"
        before = (first.step.book.free_cash, first.step.book.free_units("BTCUSDT"))
        trades = len(fx.matcher.trades)
        again = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=9))
        assert again.run().resumed
        assert len(fx.matcher.trades) == trades  # nothing filled meanwhile
        after = (again.step.book.free_cash, again.step.book.free_units("BTCUSDT"))
    assert fx.matcher.orders[0].status == "PARTIALLY_FILLED"
    assert after[1] == before[1]
    assert after[0] == pytest.approx(before[0], abs=1e-6)


class Died(BaseException):
    """The process dies here (nothing of the run's own error handling runs)."""


def _live_bars(journal: Path) -> int:
    return sum(1 for p in payloads(journal, "bar") if p.get("phase") == "live")


def test_live_two_restarts_with_the_order_still_unknown_send_it_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from binance.client import Client

    real = Client.create_order
    calls = {"n": 0}

    def dying(self: Any, **params: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # the second order: journaled, then death before the request
            raise Died()
        return real(self, **params)

    slow = {"warmup_bars": 5, "invisible_s": 600.0}  # the venue's "no such order" is
    with venue(SAMPLE, START, **LIVE_VENUE) as (fx, clock):  # not believed yet
        cfg = _live_config(fx.url, tmp_path)
        monkeypatch.setattr(Client, "create_order", dying)
        with pytest.raises(Died):
            make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=30)).run()
        monkeypatch.setattr(Client, "create_order", real)
        journal = tmp_path / "wh" / "live" / "run-1"
        assert journal.exists()
        done = _live_bars(journal)
        patient = _live_config(fx.url, tmp_path, live=slow)
        one = make_run(fx.url, clock, tmp_path, patient,
                       options=LiveOptions(max_bars=done + 2)).run()
        assert one.resumed and _venue_ids(fx) == ["run-1-1"]
        events = [(e["client_order_id"], e["status"], e["reason"])
                  for e in payloads(journal, "order_event")]
        assert events[-1][:2] == ("run-1-2", "UNKNOWN")
        two = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=30)).run()
        after = _venue_ids(fx)
    assert two.resumed and two.status == "completed"
    assert len(after) == len(set(after))
    events = [(e["client_order_id"], e["status"], e["reason"])
              for e in payloads(journal, "order_event")]
    assert events.count(("run-1-2", "UNKNOWN", "RESTART")) == 1
    assert ("run-1-2", "FILLED", None) in events
    _check_books_equal_venue(journal, fx, clock)


def _venue_ids(fx: Any) -> list[str]:
    return [o.client_order_id for o in fx.matcher.orders]


@pytest.mark.parametrize("fault", ["cancelOrder:503@1", "cancelOrder:timeout=2s@1"])
def test_live_cancel_whose_answer_is_lost_then_restart_ends_as_the_venue_says(
        tmp_path: Path, fault: str) -> None:
    params = {"above": 0.99, "cancel_at": 9}  # rests below the market; cancelled on bar 9
    with venue(SAMPLE, START, faults=fault, **PARTIAL) as (fx, clock):
        cfg = _live_config(fx.url, tmp_path, strategy=RESTING, params=params)
        first = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=5),
                         timeout_s=1).run()
        journal = first.journal_dir
        statuses = [e["status"] for e in payloads(journal, "order_event")]
        assert "UNKNOWN" in statuses  # the cancel's answer was lost
        again = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=14),
                         timeout_s=1)
        resumed = again.run()
        venue_status = [o.status for o in fx.matcher.orders]
        locked = fx.matcher.locked["USDT"]
    assert resumed.resumed and resumed.status == "completed"
    last = [e["status"] for e in payloads(journal, "order_event")][-1]
    assert {"NEW": "SUBMITTED", "CANCELED": "CANCELED"}[venue_status[0]] == last
    assert not [a for a in payloads(journal, "alert") if a["kind"] == "reconciliation"]
    assert again.step.book.reserved_cash == pytest.approx(float(locked), abs=1e-6)
    _check_books_equal_venue(journal, fx, clock)


NO_BNB = {"api_key": KEY, "api_secret": SECRET, "balances": {"USDT": "10000", "BTC": "0"}}


def test_live_base_asset_commission_restart_reconciles_without_differences(
        tmp_path: Path) -> None:
    with venue(SAMPLE, START, **NO_BNB, participation=0.00002) as (fx, clock):
        cfg = _live_config(fx.url, tmp_path, strategy=RESTING,
                           live={"warmup_bars": 5, "invisible_s": 0.05,
                                 "reconcile_every_bars": 2})
        make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=8)).run()
        clock.advance(3 * 60_000)
        resumed = make_run(fx.url, clock, tmp_path, cfg,
                           options=LiveOptions(max_bars=20)).run()
        btc = _held(fx, clock)["BTC"]
    journal = resumed.journal_dir
    assert resumed.resumed and resumed.status == "completed"
    checks = payloads(journal, "reconciliation")
    assert [c["trigger"] for c in checks].count("restart") == 1
    assert all(c["ok"] for c in checks), [c for c in checks if not c["ok"]]
    venue_fills = payloads(journal, "venue_fill")
    assert {v["commission_asset"] for v in venue_fills} == {"BTC"}
    commission = sum(Decimal(v["commission"]) for v in venue_fills)
    units = recover(journal).state.units["BTCUSDT"]
    assert commission > 0 and Decimal(units) / Decimal(10**8) == btc  # the fee kept in kind
    fills = payloads(journal, "fill")
    assert sum(f.get("fee_units", 0) for f in fills) == commission * 10**8


@pytest.mark.parametrize("qty", [0.01, 0.001])  # 0.001 less 0.1 % is off the 0.00001 grid
def test_live_base_asset_commission_sell_of_the_whole_position_is_not_refused(
        tmp_path: Path, qty: float) -> None:
    with venue(SAMPLE, START, **NO_BNB) as (fx, clock):
        cfg = _live_config(fx.url, tmp_path, params={"qty": qty})
        result = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=12)).run()
        held = _held(fx, clock)["BTC"]
    events = [(e["client_order_id"], e["status"], e["reason"])
              for e in payloads(result.journal_dir, "order_event")]
    refused = [e for e in events if e[1] == "REJECTED"]
    if qty == 0.01:  # 0.00999 is on the grid: every sell of everything goes through
        assert not refused, events
    else:  # a sell of everything is rounded down to the grid: 0.000009 BTC of dust stays,
        # and the strategy's later sell of that dust alone is refused by the lot filter
        assert ("run-1-2", "NEW", "CAPPED 0.000999 -> 0.00099") in events
        assert ("run-1-2", "FILLED", None) in events
        assert refused and {e[2] for e in refused} == {"VENUE_FILTER_LOT_SIZE"}
    units = recover(result.journal_dir).state.units.get("BTCUSDT", 0)
    assert Decimal(units) / Decimal(10**8) == held  # the books hold what the venue holds
