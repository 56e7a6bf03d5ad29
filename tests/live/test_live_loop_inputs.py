"""Bad input to a live run (one clear error naming the key or URL, nothing half-written), a
resume refused (another configuration or mode: the run is left as it was), a strategy that does
not repeat itself on restart, and the venue key and secret kept out of every file.

In-process on simulated time against the fake exchange (``live_loop_support``); the venue's
key and secret come through ``with_venue_credentials`` as ``run_live`` takes them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from live_loop_strategies import Drifting
from live_loop_support import (
    MIN,
    closed_port,
    config,
    exchange_info,
    garbage_venue,
    make_run,
    payloads,
    tree,
    venue,
)
from venue_bars import T0, write_bars

from workbench import secrets
from workbench.config import Config, with_venue_credentials
from workbench.engine.live import LiveOptions, run_live
from workbench.errors import ConfigError, DataError
from workbench.model import Mode
from workbench.recovery.replay import ReplayError
from workbench.venue_client import VenueRejected, VenueUnavailable
from workbench.venues.bar_book import BarBook
from workbench.venues.fake_binance import FakeBinance
from workbench.venues.venue_clock import AcceleratedClock, ManualClock

START = T0 + 30 * MIN + 7_000
KEY, SECRET = "live-test-key-5d1f0a", "live-test-secret-9c2e7b"


@pytest.fixture
def bars(tmp_path: Path) -> Path:
    return write_bars(tmp_path / "bars.csv", 300)


def _keyed(cfg: Config, tmp: Path, **env: str) -> Config:
    """``cfg`` with the venue key and secret from ``WB_VENUE__*`` variables, as run_live
    takes them (no secrets file)."""
    env = {f"WB_VENUE__{k.upper()}": v for k, v in env.items()}
    env["WB_SECRETS_FILE"] = str(tmp / "no-secrets.env")
    return with_venue_credentials(cfg, secrets.SecretsProvider(env=env))


def _nothing_written(tmp: Path) -> None:
    assert not (tmp / "runs").exists() and not (tmp / "wh").exists()


# --- bad input ------------------------------------------------------------------------------
def test_bad_input_symbol_the_venue_does_not_list_refused_naming_the_key_nothing_written(
        tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        run = make_run(fx.url, clock, tmp_path, config(fx.url, data={"symbols": ["ETHUSDT"]}))
        with pytest.raises(ConfigError) as raised:
            run.run()
    assert raised.value.where == "data.symbols"
    assert "does not trade ETHUSDT" in raised.value.what and "BTCUSDT" in str(raised.value)
    _nothing_written(tmp_path)


def test_bad_input_unreachable_base_url_gives_up_naming_the_url_nothing_written(
        tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    run = make_run(url, ManualClock(START), tmp_path, config(url))
    with pytest.raises(VenueUnavailable) as raised:
        run.run()
    assert raised.value.where == url
    assert "exchangeInfo failed 6 times in a row" in raised.value.what
    assert "venue.base_url" in (raised.value.fix or "")
    _nothing_written(tmp_path)


def test_bad_input_venue_answering_non_json_gives_up_naming_the_url_nothing_written(
        tmp_path: Path) -> None:
    with garbage_venue({}) as url:
        run = make_run(url, ManualClock(START), tmp_path, config(url))
        with pytest.raises(VenueUnavailable) as raised:
            run.run()
    assert raised.value.where == url and "garbage" in raised.value.what
    _nothing_written(tmp_path)


@pytest.mark.parametrize(("answers", "says"), [
    ({}, "exchangeInfo without a symbol list"),  # every answer: {"hello": "world"}
    ({"exchangeInfo": '[1, 2, 3]'}, "exchangeInfo without a symbol list"),
    ({"exchangeInfo": '{"symbols": "BTCUSDT"}'}, "exchangeInfo without a symbol list"),
    ({"exchangeInfo": exchange_info(), "time": '{"time": 1}'}, "without a serverTime"),
    ({"exchangeInfo": exchange_info(), "time": '{"serverTime": "soon"}'},
     "without a serverTime"),
    ({"exchangeInfo": exchange_info(), "time": f'{{"serverTime": {START}}}',
      "klines": '[["x", "1", "2"]]'}, "klines that are not klines"),  # the warm-up's
])
def test_bad_input_venue_answering_wrong_json_refused_naming_the_url_nothing_written(
        tmp_path: Path, answers: dict[str, str], says: str) -> None:
    with garbage_venue(answers, default='{"hello": "world"}') as url:
        run = make_run(url, ManualClock(START), tmp_path, config(url))
        with pytest.raises(DataError) as raised:
            run.run()
    assert raised.value.where == url and says in raised.value.what
    _nothing_written(tmp_path)


def test_bad_input_venue_failing_the_warmup_gives_up_nothing_written_same_id_starts_later(
        tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        fx.inject("klines:500x6")  # every try of the first klines call: the warm-up's
        with pytest.raises(VenueUnavailable, match="klines failed 6 times in a row"):
            make_run(fx.url, clock, tmp_path, config(fx.url)).run()
        _nothing_written(tmp_path)  # no journal without its start record
        again = make_run(fx.url, clock, tmp_path, config(fx.url),
                         options=LiveOptions(max_bars=3)).run()
    assert again.status == "completed" and not again.resumed and again.bars == 3


@pytest.mark.parametrize("only", ["api_key", "api_secret"])
def test_bad_input_only_one_of_key_and_secret_refused_naming_both_keys_nothing_written(
        tmp_path: Path, bars: Path, only: str) -> None:
    with venue(bars, START) as (fx, clock):
        cfg = _keyed(config(fx.url), tmp_path, **{only: KEY})
        with pytest.raises(ConfigError) as raised:
            make_run(fx.url, clock, tmp_path, cfg).run()
    assert raised.value.where == "venue.api_key / venue.api_secret"
    assert "WB_VENUE__API_KEY" in (raised.value.fix or "")
    assert KEY not in str(raised.value)
    _nothing_written(tmp_path)


def test_bad_input_wrong_api_secret_refused_by_the_signed_call_secret_not_shown(
        tmp_path: Path, bars: Path) -> None:
    with venue(bars, START, api_key=KEY, api_secret=SECRET) as (fx, clock):
        cfg = _keyed(config(fx.url), tmp_path, api_key=KEY, api_secret="not-" + SECRET)
        with pytest.raises(VenueRejected) as raised:
            make_run(fx.url, clock, tmp_path, cfg).run()
        url = fx.url
    message = str(raised.value)
    assert raised.value.where == url and "account" in raised.value.what
    assert "-1022" in message and "WB_VENUE__API_SECRET" in message
    assert SECRET not in message and KEY not in message
    _nothing_written(tmp_path)


def test_bad_input_wrong_api_key_refused_by_the_signed_call(tmp_path: Path, bars: Path
                                                             ) -> None:
    with venue(bars, START, api_key=KEY, api_secret=SECRET) as (fx, clock):
        cfg = _keyed(config(fx.url), tmp_path, api_key="other-key", api_secret=SECRET)
        with pytest.raises(VenueRejected, match="-2015"):
            make_run(fx.url, clock, tmp_path, cfg).run()
    _nothing_written(tmp_path)


# --- a resume refused -----------------------------------------------------------------------
def test_resume_with_another_strategy_param_refused_run_left_as_it_was(
        tmp_path: Path, bars: Path) -> None:
    with venue(bars, START) as (fx, clock):
        make_run(fx.url, clock, tmp_path, config(fx.url), options=LiveOptions(max_bars=10)).run()
        before = tree(tmp_path)
        clock.advance(5 * MIN)
        other = config(fx.url, params={"every": 7})
        with pytest.raises(ConfigError) as raised:
            make_run(fx.url, clock, tmp_path, other, options=LiveOptions(max_bars=20)).run()
        assert "run-1 was started with another configuration" in raised.value.what
        assert raised.value.where == "--config / --set"
        assert tree(tmp_path) == before  # no stop record, no manifest or CSV rewritten
        # venue and live settings may change on a resume
        same = config(fx.url, live={"warmup_bars": 3, "snapshot_every_bars": 7})
        again = make_run(fx.url, clock, tmp_path, same, options=LiveOptions(max_bars=20)).run()
    assert again.resumed and again.status == "completed" and again.bars == 20


def test_resume_in_the_other_mode_refused_run_left_as_it_was(tmp_path: Path, bars: Path
                                                              ) -> None:
    with venue(bars, START) as (fx, clock):
        cfg = config(fx.url)
        make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=10)).run()
        before = tree(tmp_path)
        with pytest.raises(ConfigError) as raised:
            make_run(fx.url, clock, tmp_path, cfg, mode=Mode.SHADOW,
                     options=LiveOptions(max_bars=20)).run()
    assert raised.value.what == "run run-1 is a paper run" and raised.value.where == "--mode"
    assert "workbench paper --run-id run-1" in (raised.value.fix or "")
    assert tree(tmp_path) == before


# --- restart determinism guard --------------------------------------------------------------
def test_restart_strategy_not_repeating_itself_raises_replay_error_nothing_new_journaled(
        tmp_path: Path, bars: Path) -> None:
    Drifting.calls = 0
    with venue(bars, START) as (fx, clock):
        cfg = config(fx.url, strategy="live_loop_strategies:Drifting")
        first = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=20)).run()
        orders = payloads(first.journal_dir, "order")
        assert len(orders) >= 2
        with pytest.raises(ReplayError) as raised:
            make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=30)).run()
    error = raised.value
    assert "did not repeat itself on restart" in error.what
    assert error.where == str(first.journal_dir)
    assert "no unseeded randomness, no outside state" in (error.fix or "")
    assert payloads(first.journal_dir, "order") == orders  # nothing of the replay appended
    status = json.loads((first.run_dir / "status.json").read_text())
    assert status["status"] == "failed" and "did not repeat itself" in status["last_error"]


# --- secrets --------------------------------------------------------------------------------
def test_secrets_venue_key_and_secret_appear_in_no_file_of_the_run(
        tmp_path: Path, bars: Path) -> None:
    with venue(bars, START, api_key=KEY, api_secret=SECRET) as (fx, clock):
        cfg = _keyed(config(fx.url), tmp_path, api_key=KEY, api_secret=SECRET)
        first = make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=12)).run()
        fx.inject("klines:500x*")  # an error path too: alert, halt, status "halted"
        with pytest.raises(VenueUnavailable):
            make_run(fx.url, clock, tmp_path, cfg, options=LiveOptions(max_bars=30)).run()
        assert fx.faults.calls("account") == 2  # the key was used, by both runs
    assert len(payloads(first.journal_dir, "fill")) >= 2
    files = tree(tmp_path / "runs") | tree(tmp_path / "wh")
    for name in ("wal.log", "snapshot.json", "status.json", "run_manifest.json", "logs.jsonl",
                 "orders.csv", "fills.csv", "trades.csv", "equity.csv"):
        assert any(f.endswith(name) for f in files), name
    for name, data in files.items():
        assert KEY.encode() not in data and SECRET.encode() not in data, name
    manifest = json.loads((first.run_dir / "run_manifest.json").read_text())
    assert manifest["config"]["venue"]["api_secret"] != SECRET


def test_secrets_run_live_key_from_the_environment_used_and_written_nowhere(
        tmp_path: Path, bars: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``run_live`` itself (real time, so the venue runs x600 on its own clock): the key and
    secret come from WB_VENUE__API_KEY / WB_VENUE__API_SECRET."""
    monkeypatch.setenv("WB_VENUE__API_KEY", KEY)
    monkeypatch.setenv("WB_VENUE__API_SECRET", SECRET)
    monkeypatch.setenv("WB_SECRETS_FILE", str(tmp_path / "no-secrets.env"))
    book = BarBook.from_file(bars, "BTCUSDT")
    with FakeBinance(book, clock=AcceleratedClock(START, 600.0), api_key=KEY,
                     api_secret=SECRET) as fx:
        result = run_live(config(fx.url), "paper", run_id="env-run",
                          warehouse=tmp_path / "wh" / "w.duckdb", runs_dir=tmp_path / "runs",
                          options=LiveOptions(max_bars=4))
        assert fx.faults.calls("account") == 1
    assert result.status == "completed" and result.bars == 4
    files = tree(tmp_path / "runs") | tree(tmp_path / "wh")
    assert any(f.endswith("wal.log") for f in files)
    for name, data in files.items():
        assert KEY.encode() not in data and SECRET.encode() not in data, name
