"""The live loop on simulated time against the fake exchange (real python-binance over
127.0.0.1): shadow, the daily-loss stop, warm-up, venue gaps, back-fill after a restart,
--max-bars and --until, snapshot cadence, venue faults (transient, timeouts, clock skew, an
outage that halts the run).

Bars come from ``venue_bars.write_bars`` (one a minute from ``T0``, minutes left out on request)
and the strategies of ``live_loop_strategies`` trade on a bar count, so each test knows where
orders come. Nothing sleeps: ``SimTime`` moves the venue's ``ManualClock``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from live_loop_support import MIN, blocks, config, make_run, payloads, records, venue
from venue_bars import T0, write_bars

from workbench.engine.live import LiveOptions
from workbench.model import Mode
from workbench.venue_client import VenueUnavailable

START = T0 + 30 * MIN + 7_000  # the venue clock when a run starts: 30 bars closed


@pytest.fixture
def bars(tmp_path: Path) -> Path:
    return write_bars(tmp_path / "bars.csv", 400)


def _status(run_dir: Path) -> dict:
    return dict(json.loads((run_dir / "status.json").read_text()))


def _decided(journal: Path) -> list[dict]:
    return [p for p in payloads(journal, "bar") if p["phase"] != "warmup"]


def _events(journal: Path) -> dict[str, list[tuple[str, str | None]]]:
    out: dict[str, list[tuple[str, str | None]]] = {}
    for p in payloads(journal, "order_event"):
        out.setdefault(p["client_order_id"], []).append((p["status"], p["reason"]))
    return out


# --- shadow ---------------------------------------------------------------------------------
def test_shadow_proposed_orders_journaled_new_submitted_canceled_no_fill_book_flat(
        tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        result = make_run(fx.url, clock, tmp_path, config(fx.url), mode=Mode.SHADOW,
                          options=LiveOptions(max_bars=20)).run()
    assert result.status == "completed" and result.mode == "shadow"
    orders = payloads(result.journal_dir, "order")
    assert len(orders) >= 3  # Ticker proposes a buy every 6 bars (flat: it never sells)
    events = _events(result.journal_dir)
    assert set(events) == {o["client_order_id"] for o in orders}
    for coid, seen in events.items():
        assert seen == [("NEW", None), ("SUBMITTED", None), ("CANCELED", "SHADOW")], coid
    assert records(result.journal_dir, "fill") == []
    status = _status(result.run_dir)
    assert status["positions"] == {} and status["cash"] == 10_000 and status["fills"] == 0
    assert status["orders"] == len(orders)
    assert (result.run_dir / "fills.csv").read_text().count("\n") == 1  # the header only
    decided = [o for d in payloads(result.journal_dir, "decision") for o in d["orders"]]
    assert decided == [o["client_order_id"] for o in orders]


def test_shadow_blocking_risk_config_journals_blocked_orders_and_risk_events(
        tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        cfg = config(fx.url, risk={"max_order_notional": 1.0})
        result = make_run(fx.url, clock, tmp_path, cfg, mode=Mode.SHADOW,
                          options=LiveOptions(max_bars=20)).run()
    journal = result.journal_dir
    orders = payloads(journal, "order")
    assert len(orders) >= 3
    events = _events(journal)
    for seen in events.values():
        assert [s for s, _ in seen] == ["NEW", "BLOCKED"]
        assert seen[-1][1] is not None and "NOTIONAL" in seen[-1][1]
    risk = blocks(journal)
    assert [r["client_order_id"] for r in risk] == [o["client_order_id"] for o in orders]
    assert {r["rule"] for r in risk} == {"order_notional"}
    assert sum(d["blocked"] for d in payloads(journal, "decision")) == len(orders)
    assert records(journal, "fill") == []


def test_shadow_restarted_blocks_and_proposals_journaled_once(tmp_path: Path, bars: Path
                                                               ) -> None:
    with venue(bars, START) as (fx, clock):
        cfg = config(fx.url, risk={"max_order_notional": 1.0})
        make_run(fx.url, clock, tmp_path, cfg, mode=Mode.SHADOW,
                 options=LiveOptions(max_bars=10)).run()
        clock.advance(7 * MIN)
        result = make_run(fx.url, clock, tmp_path, cfg, mode=Mode.SHADOW,
                          options=LiveOptions(max_bars=25)).run()
    journal = result.journal_dir
    coids = [o["client_order_id"] for o in payloads(journal, "order")]
    assert len(coids) >= 4 and len(coids) == len(set(coids))
    assert [r["client_order_id"] for r in blocks(journal)] == coids
    decided = [(b["symbol"], b["ts"]) for b in _decided(journal)]
    assert len(decided) == len(set(decided)) == 25


def test_daily_loss_stop_alerted_once_across_a_restart_later_buys_blocked(
        tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        cfg = config(fx.url, risk={"daily_loss_limit": 0.5})  # one round trip's costs
        make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=15)).run()
        result = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=30)).run()
    journal = result.journal_dir
    alerts = [a for a in payloads(journal, "alert") if a["kind"] == "daily_loss_halt"]
    assert len(alerts) == 1 and alerts[0]["severity"] == "error"
    stop = [r for r in blocks(journal) if r["client_order_id"] is None]
    assert [r["reason"] for r in stop] == ["RISK_DAILY_LOSS"]
    blocked = [r["client_order_id"] for r in blocks(journal)
               if r["client_order_id"] is not None]
    buys = [o["client_order_id"] for o in payloads(journal, "order")
            if o["side"] == "BUY" and o["bar_ts"] > stop[0]["ts"]]
    assert buys and blocked == buys
    assert _status(result.run_dir)["pnl_today"] < -0.5


# --- warm-up --------------------------------------------------------------------------------
@pytest.mark.parametrize(("live_warm", "strategy_warm"), [(4, 11), (9, 3)])
def test_warmup_longest_of_live_and_strategy_bars_journaled_before_first_decision(
        tmp_path: Path, bars: Path, live_warm: int, strategy_warm: int) -> None:
    want = max(live_warm, strategy_warm)
    with venue(bars, START) as (fx, clock):
        cfg = config(fx.url, strategy="live_loop_strategies:EagerSubmitter",
                     params={"warm": strategy_warm}, live={"warmup_bars": live_warm})
        run = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=6))
        result = run.run()
    recs = records(result.journal_dir)
    assert recs[0].payload["action"] == "start" and recs[0].payload["warmup_bars"] == want
    bar_recs = [r for r in recs if r.kind == "bar"]
    warm = bar_recs[:want]
    assert [r.payload["phase"] for r in warm] == ["warmup"] * want
    assert [r.payload["ts"] for r in warm] == [warm[0].payload["ts"] + i * MIN
                                               for i in range(want)]
    assert all(r.payload["phase"] != "warmup" for r in bar_recs[want:])
    first_decided = bar_recs[want].seq
    assert next(r.seq for r in recs if r.kind == "decision") > first_decided
    assert not [r for r in recs if r.kind in ("order", "order_event", "fill", "risk_event")
                and r.seq < first_decided]  # nothing before the first decided bar
    assert bar_recs[want].payload["ts"] == warm[-1].payload["ts"] + MIN  # no bar skipped


def test_warmup_strategy_submitting_through_ctx_gets_nothing_journaled(
        tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        cfg = config(fx.url, strategy="live_loop_strategies:EagerSubmitter",
                     params={"warm": 8}, live={"warmup_bars": 8})
        run = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=5))
        result = run.run()
    assert run.strategy.warmup_rejects == 8  # type: ignore[attr-defined]
    orders = payloads(result.journal_dir, "order")
    decided = _decided(result.journal_dir)
    assert [o["order_seq"] for o in orders] == [1, 2, 3, 4, 5]  # one a decided bar, from 1
    assert [o["bar_ts"] for o in orders] == [b["ts"] for b in decided]
    assert len(payloads(result.journal_dir, "fill")) == 5


# --- gaps -----------------------------------------------------------------------------------
def test_gaps_missing_minutes_recorded_alerted_and_every_venue_bar_decided_once(
        tmp_path: Path) -> None:
    missing = (40, 41, 42, 55)
    data = write_bars(tmp_path / "gappy.csv", 200, missing=missing)
    with venue(data, START) as (fx, clock):
        result = make_run(fx.url, clock, tmp_path, config(fx.url),
                          options=LiveOptions(max_bars=40)).run()
    assert result.status == "completed" and result.bars == 40
    journal = result.journal_dir
    gaps = [(g["first_ts"], g["count"]) for g in payloads(journal, "gap")]
    assert gaps == [(T0 + 40 * MIN, 3), (T0 + 55 * MIN, 1)]
    alerts = payloads(journal, "alert")
    assert any(a["kind"] == "bar_late" for a in alerts)  # while the 3 bars did not come
    bar_gaps = [a for a in alerts if a["kind"] == "bar_gap"]
    assert [(a["data"]["first_ts"], a["data"]["count"]) for a in bar_gaps] == [
        (T0 + 40 * MIN, 3)]  # 1 missing bar is within live.gap_tolerance_bars=1
    decided = [(b["symbol"], b["ts"]) for b in _decided(journal)]
    assert len(decided) == len(set(decided)) == 40
    first, last = decided[0][1], decided[-1][1]
    on_venue = [T0 + i * MIN for i in range(200) if i not in missing]
    assert [ts for _, ts in decided] == [ts for ts in on_venue if first <= ts <= last]


def test_gaps_missing_minutes_in_warmup_recorded_never_invented(tmp_path: Path) -> None:
    data = write_bars(tmp_path / "gappy.csv", 200, missing=(26, 27, 29))
    with venue(data, START) as (fx, clock):
        result = make_run(fx.url, clock, tmp_path, config(fx.url, live={"warmup_bars": 8}),
                          options=LiveOptions(max_bars=3)).run()
    journal = result.journal_dir
    warm = [(b["ts"] - T0) // MIN for b in payloads(journal, "bar") if b["phase"] == "warmup"]
    assert warm == [24, 25, 28, 30, 31]  # the 8 minutes to the last closed one, as they are
    assert [(g["first_ts"], g["count"]) for g in payloads(journal, "gap")] == [
        (T0 + 26 * MIN, 2), (T0 + 29 * MIN, 1)]
    assert [a["data"]["count"] for a in payloads(journal, "alert")
            if a["kind"] == "bar_gap"] == [2]
    first = records(journal)[0]
    assert first.kind == "control" and first.payload["action"] == "start"


# --- back-fill ------------------------------------------------------------------------------
def test_backfill_bars_missed_while_stopped_decided_as_backfill_max_bars_across_restarts(
        tmp_path: Path, bars: Path) -> None:
    down = 12  # venue minutes between the two runs
    with venue(bars, START) as (fx, clock):
        cfg = config(fx.url)
        first = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=15)).run()
        stopped_at = _decided(first.journal_dir)[-1]["ts"]
        clock.advance(down * MIN)
        second = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=40)).run()
    assert first.bars == 15 and second.resumed and second.bars == 40
    decided = _decided(second.journal_dir)
    assert len(decided) == 40
    assert [b["ts"] for b in decided] == [decided[0]["ts"] + i * MIN for i in range(40)]
    after = [b for b in decided if b["ts"] > stopped_at]
    backfilled = [b for b in after if b["phase"] == "backfill"]
    assert backfilled == after[:len(backfilled)]  # the missed bars first, then live ones
    assert len(backfilled) >= down and second.backfill_bars == len(backfilled)
    # back-filled: every bar that had closed a bar time before the venue clock of its fetch
    fetched_at = backfilled[0]["ts"] + MIN + backfilled[0]["lag_ms"]
    assert [b["ts"] for b in backfilled] == list(range(stopped_at + MIN, fetched_at - MIN,
                                                       MIN))[:len(backfilled)]
    assert all(b["lag_ms"] >= MIN for b in backfilled)
    assert all(b["phase"] == "live" and b["lag_ms"] < MIN for b in after[len(backfilled):])


def test_max_bars_already_reached_resume_completes_without_a_new_bar(
        tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        first = make_run(fx.url, clock, tmp_path, config(fx.url),
                         options=LiveOptions(max_bars=8)).run()
        before = payloads(first.journal_dir, "bar")
        clock.advance(5 * MIN)
        again = make_run(fx.url, clock, tmp_path, config(fx.url),
                         options=LiveOptions(max_bars=8)).run()
    assert again.resumed and again.status == "completed" and again.bars == 8
    assert payloads(first.journal_dir, "bar") == before


def test_backfill_minutes_missing_while_stopped_recorded_as_gaps_not_invented(
        tmp_path: Path) -> None:
    data = write_bars(tmp_path / "gappy.csv", 200, missing=(47, 48, 49))
    with venue(data, START) as (fx, clock):
        cfg = config(fx.url)
        first = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=10)).run()
        stopped = _decided(first.journal_dir)[-1]["ts"]
        assert stopped < T0 + 47 * MIN
        clock.advance(15 * MIN)
        second = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=30)).run()
    journal = second.journal_dir
    assert [(g["first_ts"], g["count"]) for g in payloads(journal, "gap")] == [
        (T0 + 47 * MIN, 3)]
    decided = [b["ts"] for b in _decided(journal)]
    assert len(decided) == len(set(decided)) == 30
    assert [ts for ts in decided if ts > stopped] == [
        T0 + i * MIN for i in range(200) if i not in (47, 48, 49)
        and stopped < T0 + i * MIN <= decided[-1]]
    assert second.backfill_bars > 0


# --- snapshots ------------------------------------------------------------------------------
def test_snapshots_on_every_position_change_and_every_snapshot_every_bars(
        tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        cfg = config(fx.url, live={"warmup_bars": 5, "snapshot_every_bars": 7})
        result = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=20)).run()
    recs = records(result.journal_dir)
    snapped_after: list[int] = []  # the decided bar (1-based) each snapshot follows
    filled: list[int] = []
    decided = 0
    for r in recs:
        if r.kind == "bar" and r.payload["phase"] != "warmup":
            decided += 1
        elif r.kind == "fill":
            filled.append(decided)
        elif r.kind == "snapshot_ref" and decided not in snapped_after:
            snapped_after.append(decided)
    assert len(filled) >= 4
    want = sorted(set(filled) | {7, 14, 20})  # the last: the run's end
    assert snapped_after == want
    assert recs[-1].kind == "snapshot_ref"  # the end's snapshot covers the whole journal


# --- --until --------------------------------------------------------------------------------
def test_until_run_ends_after_the_bar_closing_at_or_before_it_completed(
        tmp_path: Path, bars: Path) -> None:
    until = T0 + 52 * MIN + 30_000  # mid-bar: the bar opening at :51 closes at :52
    with venue(bars, START) as (fx, clock):
        result = make_run(fx.url, clock, tmp_path, config(fx.url),
                          options=LiveOptions(until=until)).run()
    assert result.status == "completed"
    decided = _decided(result.journal_dir)
    assert decided[-1]["ts"] == T0 + 51 * MIN
    assert _status(result.run_dir)["status"] == "completed"
    stop = payloads(result.journal_dir, "control")[-1]
    assert stop["action"] == "stop" and stop["status"] == "completed"


# --- faults ---------------------------------------------------------------------------------
def test_faults_transient_klines_errors_retried_no_missed_bar_error_rate_alerted(
        tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        # after warm-up: three 5xx in one poll, later a 429 (Retry-After 1 s: ten venue
        # minutes at x600), a 418 ban, and a slow answer
        fx.inject("klines:500@3x3, klines:429@12, klines:503@16x2, klines:slow=50ms@19, "
                  "klines:418=1@22")
        result = make_run(fx.url, clock, tmp_path, config(fx.url),
                          options=LiveOptions(max_bars=40)).run()
        assert fx.faults.calls("klines") > 22  # every rule was reached
    assert result.status == "completed" and result.bars == 40
    decided = _decided(result.journal_dir)
    assert [b["ts"] for b in decided] == [decided[0]["ts"] + i * MIN for i in range(40)]
    alerts = [a for a in payloads(result.journal_dir, "alert") if a["kind"] == "error_rate"]
    assert len(alerts) == 1 and "3 venue errors in one poll" in alerts[0]["message"]
    assert any(b["phase"] == "backfill" for b in decided)  # the 429 and the ban cost bars
    assert payloads(result.journal_dir, "decision")[-1]["venue_errors"] == 3 + 1 + 2 + 1


def test_faults_klines_timeout_retried_run_completes(tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        fx.inject("klines:timeout=3s@3")  # held without an answer; the client gives up first
        run = make_run(fx.url, clock, tmp_path, config(fx.url), timeout_s=0.5,
                       options=LiveOptions(max_bars=8))
        result = run.run()
    assert result.status == "completed" and result.bars == 8
    kinds = [e.kind for e in run.venue.events]
    assert kinds and set(kinds) == {"timeout"}
    decided = _decided(result.journal_dir)
    assert [b["ts"] for b in decided] == [decided[0]["ts"] + i * MIN for i in range(8)]


@pytest.mark.parametrize("skew", ["+120000", "-120000"])
def test_faults_venue_clock_skewed_every_bar_still_decided_once(
        tmp_path: Path, bars: Path, skew: str) -> None:
    """/api/v3/time two minutes off (klines keep the true clock): the loop polls early or
    late, never decides a bar twice or skips one."""
    with venue(bars, START) as (fx, clock):
        fx.inject(f"time:skew={skew}")
        result = make_run(fx.url, clock, tmp_path, config(fx.url),
                          options=LiveOptions(max_bars=10)).run()
    assert result.status == "completed"
    decided = _decided(result.journal_dir)
    assert [b["ts"] for b in decided] == [decided[0]["ts"] + i * MIN for i in range(10)]


def test_faults_persistent_klines_5xx_halt_run_then_resume_continues_without_duplicates(
        tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        cfg = config(fx.url)
        fx.inject("klines:500@12x*")  # warm-up and a few bars, then the venue fails for good
        run = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=40))
        with pytest.raises(VenueUnavailable, match="klines failed 6 times in a row"):
            run.run()
        journal, run_dir = run.dir, run.run_dir
        alerts = [a for a in payloads(journal, "alert") if a["kind"] == "venue_unavailable"]
        assert len(alerts) == 1 and alerts[0]["severity"] == "error"
        halts = [c for c in payloads(journal, "control") if c["action"] == "halt"]
        assert halts and halts[-1]["reason"] == "venue unavailable"
        status = _status(run_dir)
        assert status["status"] == "halted" and "klines failed" in status["last_error"]
        assert status["halted"].startswith("venue unavailable at ")
        done_before = len(_decided(journal))
        assert 0 < done_before < 40
        fx.clear_faults()
        result = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=40)).run()
    assert result.resumed and result.status == "completed" and result.bars == 40
    decided = _decided(journal)
    assert [b["ts"] for b in decided] == [decided[0]["ts"] + i * MIN for i in range(40)]
    coids = [o["client_order_id"] for o in payloads(journal, "order")]
    assert len(coids) == len(set(coids))
    # the halt holds across the restart: what the strategy proposes after it is blocked
    halted_at = decided[done_before - 1]["ts"]
    after_halt = [o for o in payloads(journal, "order") if o["bar_ts"] > halted_at]
    assert after_halt
    events = _events(journal)
    assert all(("BLOCKED", "RISK_HALTED") in events[o["client_order_id"]] for o in after_halt)
    assert _status(result.run_dir)["halted"]
