"""Operator controls of a live run, in-process on simulated time: requests placed in
``<run_dir>/control/`` before a run resumes (the loop takes them on its first turn), controls
journaled straight away while no process runs the run, and the run's status, manifest and
``replay_check``.

``operator.request`` waits in real time for a running loop's answer, so controls for a running
run are placed as files here; the subprocess tests (``test_live_cli.py``) cover the waiting.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from live_loop_support import MIN, blocks, config, make_run, payloads, records, venue
from venue_bars import T0, write_bars

from workbench.engine import operator
from workbench.engine.live import LiveOptions, LiveResult
from workbench.errors import ConfigError
from workbench.model import ms_to_iso
from workbench.recovery.replay import ReplayError, rebuild
from workbench.recovery.snapshot import PREVIOUS_FILE, SNAPSHOT_FILE, read_snapshot, save_snapshot

START = T0 + 30 * MIN + 7_000
# Ticker (every 6, hold 3) with 5 warm-up bars: buys on decided bars 2, 8, 14, ..., sells on
# 5, 11, 17, ...; after 9 decided bars it holds 0.01
LONG_AFTER = 9


@pytest.fixture
def bars(tmp_path: Path) -> Path:
    return write_bars(tmp_path / "bars.csv", 300)


def _place(run_dir: Path, action: str, **body: Any) -> Path:
    """A control request as ``operator.request`` writes it, left for the loop to take."""
    folder = run_dir / "control"
    path = folder / f"{time.time_ns()}-{action}.json"
    path.write_text(json.dumps({"action": action, "reason": "test", **body}))
    return path


def _answer(request: Path) -> dict[str, Any]:
    assert not request.exists()
    return dict(json.loads((request.parent / "done" / request.name).read_text()))


def _status(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "status.json").read_text()))


def _order_outcomes(journal: Path, after_ts: int) -> list[tuple[str, str, str | None]]:
    """(side, last status, its reason) of each order decided on a bar after ``after_ts``."""
    last: dict[str, tuple[str, str | None]] = {}
    for p in payloads(journal, "order_event"):
        last[p["client_order_id"]] = (p["status"], p["reason"])
    return [(o["side"], *last[o["client_order_id"]]) for o in payloads(journal, "order")
            if o["bar_ts"] > after_ts]


def _last_bar(result: LiveResult) -> int:
    return int(payloads(result.journal_dir, "bar")[-1]["ts"])


def test_controls_halt_request_journaled_answered_later_orders_blocked(
        tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        cfg = config(fx.url)
        first = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=10)).run()
        stopped = _last_bar(first)
        request = _place(first.run_dir, "halt")
        second = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=30)).run()
    answer = _answer(request)
    assert answer["ok"] is True and answer["action"] == "halt" and answer["halted"]
    journal = second.journal_dir
    halt = [r for r in records(journal, "control") if r.payload["action"] == "halt"]
    assert len(halt) == 1 and halt[0].payload["source"] == "operator"
    assert halt[0].payload["reason"] == "test"
    after = _order_outcomes(journal, stopped)
    assert after and all(o[1:] == ("BLOCKED", "RISK_HALTED") for o in after)
    assert not [f for f in payloads(journal, "fill") if f["bar_ts"] > stopped]
    assert len([r for r in blocks(journal) if r["rule"] == "halted"]) == len(
        after)
    assert _status(second.run_dir)["halted"].startswith("test at ")
    assert operator.status(second.run_dir, journal)["halted"] == "test"


def test_controls_halt_placed_while_the_loop_runs_taken_before_the_next_bar(
        tmp_path: Path, bars: Path) -> None:
    placed: list[tuple[int, Path]] = []
    at = START + 20 * MIN  # venue time: some ten bars into the run

    def halt_once(venue_ms: int) -> None:
        if venue_ms >= at and not placed:
            placed.append((venue_ms, _place(tmp_path / "runs" / "run-1", "halt")))

    with venue(bars, START) as (fx, clock):
        result = make_run(fx.url, clock, tmp_path, config(fx.url), on_sleep=halt_once,
                          options=LiveOptions(max_bars=40)).run()
    (placed_at, request), = placed
    assert _answer(request)["ok"] is True
    recs = records(result.journal_dir)
    halt = next(r for r in recs if r.kind == "control" and r.payload["action"] == "halt")
    bar_before = [r for r in recs if r.kind == "bar" and r.seq < halt.seq][-1]
    # taken on the loop's next turn: no bar is decided between the request and the halt
    # (a bar record's venue time: its close plus its lag)
    processed = lambda r: r.payload["ts"] + MIN + r.payload["lag_ms"]  # noqa: E731
    assert processed(bar_before) <= placed_at
    later = [r for r in recs if r.kind == "bar" and r.seq > halt.seq]
    assert later and processed(later[0]) >= placed_at
    outcomes = _order_outcomes(result.journal_dir, bar_before.payload["ts"])
    assert outcomes and all(o[1:] == ("BLOCKED", "RISK_HALTED") for o in outcomes)


def test_controls_flatten_closes_the_position_and_leaves_the_run_halted(
        tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        cfg = config(fx.url)
        first = make_run(fx.url, clock, tmp_path, cfg,
                         options=LiveOptions(max_bars=LONG_AFTER)).run()
        assert _status(first.run_dir)["positions"] == {"BTCUSDT": 0.01}
        stopped = _last_bar(first)
        request = _place(first.run_dir, "flatten")
        second = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=30)).run()
    assert _answer(request)["ok"] is True
    journal = second.journal_dir
    closing = [o for o in payloads(journal, "order") if o["tag"] == "flatten"]
    assert len(closing) == 1
    assert closing[0]["side"] == "SELL" and closing[0]["qty"] == 0.01
    assert closing[0]["reduce_only"] is True and closing[0]["bar_ts"] == stopped
    fills = [f for f in payloads(journal, "fill")
             if f["client_order_id"] == closing[0]["client_order_id"]]
    assert len(fills) == 1
    later = [o for o in _order_outcomes(journal, stopped) if o[0] == "BUY"]
    assert later and all(o[1:] == ("BLOCKED", "RISK_HALTED") for o in later)
    status = _status(second.run_dir)
    assert status["positions"] == {} and status["halted"].startswith("flatten at ")
    state = rebuild(journal)
    assert state.units == {} and state.halted  # the journal says halted too
    assert state.halt_reason == "flatten"
    assert operator.status(second.run_dir, journal)["halted"] == "flatten"


def test_controls_flatten_without_risk_engine_fills_on_the_next_bar_then_nothing_acts(
        tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        cfg = config(fx.url, costs={"fill_at": "next_open"}, risk={"modes": {"paper": False}})
        first = make_run(fx.url, clock, tmp_path, cfg,
                         options=LiveOptions(max_bars=LONG_AFTER + 1)).run()
        assert _status(first.run_dir)["positions"] == {"BTCUSDT": 0.01}
        stopped = _last_bar(first)
        _place(first.run_dir, "flatten")
        second = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=30)).run()
    journal = second.journal_dir
    outcomes = _order_outcomes(journal, stopped - MIN)
    assert outcomes == [("SELL", "FILLED", None)]  # the flatten's; the strategy's are dropped
    closing = [o for o in payloads(journal, "order") if o["tag"] == "flatten"]
    fill = [f for f in payloads(journal, "fill")
            if f["client_order_id"] == closing[0]["client_order_id"]]
    assert len(fill) == 1 and fill[0]["bar_ts"] == stopped + MIN  # the next bar's open
    status = _status(second.run_dir)
    assert status["positions"] == {} and status["halted"] == "flatten"


def test_controls_resume_without_confirm_refused_nothing_journaled(
        tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        cfg = config(fx.url)
        first = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=10)).run()
        with pytest.raises(ConfigError, match="--confirm"):
            operator.request(first.run_dir, first.journal_dir, "resume")
        before = records(first.journal_dir)
        request = _place(first.run_dir, "resume")  # a hand-written request, no confirm
        unknown = _place(first.run_dir, "explode")
        garbled = first.run_dir / "control" / "0-garbled.json"
        garbled.write_text("{not json")
        second = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=12)).run()
    assert _answer(request) | {"answered_at": None} == {
        "ok": False, "error": "resume needs --confirm", "answered_at": None}
    assert _answer(unknown)["error"] == "unknown action 'explode'"
    assert _answer(garbled)["error"] == "not a control request"
    new = records(second.journal_dir)[len(before):]
    assert not [r for r in new if r.kind == "control"
                and r.payload["action"] not in ("start", "stop")]


def test_controls_dry_run_journals_dry_run_and_changes_nothing(tmp_path: Path, bars: Path
                                                                ) -> None:
    with venue(bars, START) as (fx, clock):
        cfg = config(fx.url)
        first = make_run(fx.url, clock, tmp_path, cfg,
                         options=LiveOptions(max_bars=LONG_AFTER)).run()
        stopped = _last_bar(first)
        halt = _place(first.run_dir, "halt", dry_run=True)
        flatten = _place(first.run_dir, "flatten", dry_run=True)
        second = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=30)).run()
    assert _answer(halt) | {"answered_at": None} == {
        "ok": True, "dry_run": True, "would": "block every new order", "answered_at": None}
    assert _answer(flatten)["would"] == "halt and SELL 0.01 BTCUSDT"
    controls = [c for c in payloads(second.journal_dir, "control")
                if c["action"] not in ("start", "stop")]
    assert [(c["action"], c["of"], c["reason"]) for c in controls] == [
        ("dry_run", "halt", "halt would block every new order"),
        ("dry_run", "flatten", "flatten would halt and SELL 0.01 BTCUSDT")]
    after = _order_outcomes(second.journal_dir, stopped)
    assert after and all(status == "FILLED" for _, status, _ in after)
    assert not [o for o in payloads(second.journal_dir, "order") if o["tag"] == "flatten"]
    assert _status(second.run_dir)["halted"] is None


def test_controls_journaled_while_stopped_take_effect_on_resume(tmp_path: Path, bars: Path
                                                                 ) -> None:
    with venue(bars, START) as (fx, clock):
        cfg = config(fx.url)
        first = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=10)).run()
        run_dir, journal = first.run_dir, first.journal_dir
        queued = operator.request(run_dir, journal, "halt", reason="maintenance")
        assert queued["ok"] and queued["queued"]
        last = records(journal)[-1]
        assert last.kind == "control" and last.payload["action"] == "halt"
        assert last.payload["queued"] is True and last.payload["ts"] == _last_bar(first)
        assert not list((run_dir / "control").glob("*.json"))
        seen = operator.status(run_dir, journal)
        assert seen["running"] is False and seen["halted"] == "maintenance"

        stopped = _last_bar(first)
        halted = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=25)).run()
        blocked = _order_outcomes(journal, stopped)
        assert blocked and all(o[1:] == ("BLOCKED", "RISK_HALTED") for o in blocked)
        stopped = _last_bar(halted)

        resumed = operator.request(run_dir, journal, "resume", confirm=True)
        assert resumed["queued"]
        assert operator.status(run_dir, journal)["halted"] is None
        again = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=40)).run()
    assert again.resumed and again.bars == 40
    traded = _order_outcomes(journal, stopped)
    assert traded and all(status == "FILLED" for _, status, _ in traded)
    assert _status(again.run_dir)["halted"] is None


def test_controls_flatten_journaled_while_stopped_closes_the_position_on_resume(
        tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        cfg = config(fx.url)
        first = make_run(fx.url, clock, tmp_path, cfg,
                         options=LiveOptions(max_bars=LONG_AFTER)).run()
        stopped = _last_bar(first)
        queued = operator.request(first.run_dir, first.journal_dir, "flatten")
        assert queued["queued"]
        second = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=20)).run()
        # the flatten's order was made on the replay, at the flatten's place: a second
        # restart replays it as journaled
        third = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=30)).run()
    assert third.resumed and third.bars == 30
    journal = first.journal_dir
    closing = [o for o in payloads(journal, "order") if o["tag"] == "flatten"]
    assert len(closing) == 1 and closing[0]["bar_ts"] == stopped
    assert [f["client_order_id"] for f in payloads(journal, "fill")].count(
        closing[0]["client_order_id"]) == 1
    assert _status(second.run_dir)["positions"] == {}
    assert _status(third.run_dir)["halted"].startswith("flatten at ")
    coids = [o["client_order_id"] for o in payloads(journal, "order")]
    assert len(coids) == len(set(coids))


def test_controls_request_with_another_warehouse_refused_nothing_created(
        tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        first = make_run(fx.url, clock, tmp_path, config(fx.url),
                         options=LiveOptions(max_bars=5)).run()
    elsewhere = tmp_path / "other" / "live" / "run-1"  # the journal of another --warehouse
    with pytest.raises(ConfigError) as raised:
        operator.request(first.run_dir, elsewhere, "halt")
    assert raised.value.where == "--warehouse" and str(elsewhere) in raised.value.what
    assert not (tmp_path / "other").exists()
    assert not list((first.run_dir / "control").glob("*.json"))  # no request left behind


# --- status, manifest, replay ---------------------------------------------------------------
def test_status_and_manifest_have_the_documented_fields(tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        cfg = config(fx.url)
        first = make_run(fx.url, clock, tmp_path, cfg,
                         options=LiveOptions(max_bars=LONG_AFTER)).run()
        url = fx.url
    status = _status(first.run_dir)
    assert {"run_id", "mode", "status", "pid", "host", "updated_at", "last_bar_ts", "bars",
            "lag_ms", "positions", "cash", "equity", "pnl_today", "halted", "last_error",
            "alerts", "orders", "fills", "latency"} <= set(status)
    assert status["run_id"] == "run-1" and status["mode"] == "paper"
    assert status["status"] == "completed" and status["bars"] == LONG_AFTER
    assert status["last_bar_ts"] == ms_to_iso(_last_bar(first))
    assert status["lag_ms"] >= 0 and status["positions"] == {"BTCUSDT": 0.01}
    assert status["halted"] is None and status["last_error"] is None
    assert status["orders"] == len(payloads(first.journal_dir, "order"))
    assert status["fills"] == len(payloads(first.journal_dir, "fill"))
    assert set(status["latency"]) == {"p50_ms", "p95_ms", "p99_ms", "max_ms"}
    manifest = json.loads((first.run_dir / "run_manifest.json").read_text())
    assert {"run_id", "mode", "name", "status", "config", "config_hash", "git_sha", "versions",
            "seed", "symbols", "timeframe", "venue", "journal", "warehouse", "started_at",
            "ended_at", "resumed", "bars", "latency"} <= set(manifest)
    assert manifest["mode"] == "paper" and manifest["status"] == "completed"
    assert manifest["venue"] == url and manifest["journal"] == str(first.journal_dir)
    assert manifest["config"]["strategy"]["class"] == "live_loop_strategies:Ticker"
    assert manifest["config_hash"] == cfg.hash() and manifest["symbols"] == ["BTCUSDT"]
    assert manifest["ended_at"] is not None and manifest["resumed"] is False
    assert manifest["bars"] == LONG_AFTER


def test_replay_check_finished_run_equal(tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        first = make_run(fx.url, clock, tmp_path, config(fx.url),
                         options=LiveOptions(max_bars=20)).run()
    report = operator.replay_check(first.journal_dir, tmp_path / "wh" / "w.duckdb", "run-1")
    assert report.difference is None
    assert "snapshot + tail == the whole journal" in report.lines
    assert any(line.startswith(f"snapshot: {first.journal_dir / SNAPSHOT_FILE}")
               for line in report.lines)
    fills = len(payloads(first.journal_dir, "fill"))
    assert report.lines[-1].startswith(f"warehouse: {fills} fills and ")  # flushed at the end


def test_replay_check_corrupt_snapshot_falls_back_to_the_previous_one_equal(
        tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        first = make_run(fx.url, clock, tmp_path, config(fx.url),
                         options=LiveOptions(max_bars=20)).run()
    snap = first.journal_dir / SNAPSHOT_FILE
    snap.write_bytes(snap.read_bytes().replace(b'"cash"', b'"cass"', 1))  # checksum fails
    report = operator.replay_check(first.journal_dir, tmp_path / "wh" / "w.duckdb", "run-1")
    assert report.difference is None
    assert any(line.startswith(f"snapshot: {first.journal_dir / PREVIOUS_FILE}")
               for line in report.lines)
    (first.journal_dir / PREVIOUS_FILE).write_text("{}")
    report = operator.replay_check(first.journal_dir, tmp_path / "wh" / "w.duckdb", "run-1")
    assert report.difference is None
    assert "snapshot: none (folded from the first record)" in report.lines


def test_replay_check_tampered_snapshot_names_the_first_difference_resume_refused(
        tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        cfg = config(fx.url)
        first = make_run(fx.url, clock, tmp_path, cfg,
                         options=LiveOptions(max_bars=LONG_AFTER)).run()
        good = read_snapshot(first.journal_dir / SNAPSHOT_FILE)
        state = dict(good.state) | {"cash": good.state["cash"] + 1000.0}
        save_snapshot(first.journal_dir, state, good.wal_seq)  # re-signed: a valid checksum
        report = operator.replay_check(first.journal_dir, tmp_path / "wh" / "w.duckdb", "run-1")
        assert report.difference == (
            f"snapshot + tail vs the whole journal: state['cash']: "
            f"{good.state['cash'] + 1000.0!r} != {good.state['cash']!r}")
        with pytest.raises(ReplayError, match="the journal folds to cash"):
            make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=20)).run()
