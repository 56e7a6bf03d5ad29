"""A paper run on the fake exchange against a backtest of the same bars, and a restart against an
uninterrupted run: the same orders, fills, trades and equity, byte for byte."""

from __future__ import annotations

import filecmp
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from live_harness import MIN, SAMPLE, fake_venue, live_run, paper_config

from workbench import rundir
from workbench.engine import kernel
from workbench.engine.journal import contents, order_states
from workbench.engine.live import LiveOptions
from workbench.feeds.history import loop_data
from workbench.model import Fill, Mode
from workbench.recovery.wal import WalReader
from workbench.venues.bar_book import BarBook

START = BarBook.from_file(SAMPLE, "BTCUSDT").first_open_ms + 200 * MIN + 7_000


def _journaled_bars(journal: Path) -> list[tuple[str, int, float, float, float, float, float]]:
    return [(p["symbol"], p["ts"], p["open"], p["high"], p["low"], p["close"], p["volume"])
            for r in WalReader(journal) if r.kind == "bar" for p in [r.payload]]


def test_paper_run_writes_the_files_a_backtest_of_its_bars_writes(tmp_path: Path) -> None:
    _paper_against_backtest(tmp_path, {})


def test_paper_run_with_latency_and_cap_writes_the_files_a_backtest_writes(
        tmp_path: Path) -> None:
    # ~3 BTC a minute: 0.2 % of it is below the strategy's 0.01, so orders fill in parts
    execution = {"latency": "NORMAL", "participation_pct": 0.2}
    fills = _paper_against_backtest(tmp_path, {"execution": execution})
    assert len({f.order_seq for f in fills}) < len(fills)


def _paper_against_backtest(tmp_path: Path, sections: dict[str, Any]) -> list[Fill]:
    """A paper run of 400 bars and a backtest of the bars it journaled write the same files;
    the backtest's fills."""
    with fake_venue(START) as (fx, clock):
        result = live_run(fx, clock, tmp_path, options=LiveOptions(max_bars=400), **sections)
        cfg = paper_config(fx.url, **sections)
    assert result.status == "completed" and result.bars == 400
    bars = _journaled_bars(result.journal_dir)
    assert len(bars) == 400 + 30  # warm-up bars, then every decided bar once
    wired = kernel.build(cfg, Mode.BACKTEST, strategy=kernel.build_strategy(cfg), run_id="bt")
    data = loop_data(bars, ["BTCUSDT"])
    equity = wired.run(data)
    records = contents(wired.journal)
    assert len(records.fills) >= 4  # the test needs trades to mean anything
    out = tmp_path / "backtest"
    out.mkdir()
    rundir.write_all(out, wired.step.book.round_trips, order_states(records), records.fills,
                     equity)
    for name in rundir.FILES:
        assert filecmp.cmp(out / name, result.run_dir / name, shallow=False), name
    manifest = json.loads((result.run_dir / "run_manifest.json").read_text())
    assert manifest["execution"] == cfg.execution.manifest()
    return records.fills


@pytest.mark.parametrize("sections", [
    {}, {"execution": {"latency": "SLOW", "participation_pct": 0.2}}], ids=["instant", "slow"])
def test_paper_run_restarted_twice_equals_the_uninterrupted_run(
        tmp_path: Path, sections: dict[str, Any]) -> None:
    with fake_venue(START) as (fx, clock):
        whole = live_run(fx, clock, tmp_path / "a", options=LiveOptions(max_bars=300),
                         **sections)
    with fake_venue(START) as (fx, clock):
        live_run(fx, clock, tmp_path / "b", options=LiveOptions(max_bars=90), **sections)
        live_run(fx, clock, tmp_path / "b", options=LiveOptions(max_bars=170), **sections)
        again = live_run(fx, clock, tmp_path / "b", options=LiveOptions(max_bars=300),
                         **sections)
    assert again.resumed and again.bars == 300
    for name in rundir.FILES:
        assert filecmp.cmp(whole.run_dir / name, again.run_dir / name, shallow=False), name
    coids = [r.payload["client_order_id"] for r in WalReader(again.journal_dir)
             if r.kind == "order"]
    assert coids and len(coids) == len(set(coids))


def test_paper_run_across_midnight_rolls_up_the_finished_day(tmp_path: Path) -> None:
    first = BarBook.from_file(SAMPLE, "BTCUSDT").first_open_ms
    with fake_venue(first + 1_380 * MIN + 5_000) as (fx, clock):  # 23:00 on the first day
        live_run(fx, clock, tmp_path, options=LiveOptions(max_bars=40))
        result = live_run(fx, clock, tmp_path, options=LiveOptions(max_bars=120))
    days = result.run_dir / "days"
    manifest = json.loads((days / "2024-01-01.json").read_text())
    with gzip.open(days / "2024-01-01.jsonl.gz", "rt") as fh:
        lines = [json.loads(line) for line in fh]
    decided = [x for x in lines if x["kind"] == "bar" and x["payload"]["phase"] != "warmup"]
    assert manifest["bars"] == len(decided) > 40 and manifest["log"] == "2024-01-01.jsonl.gz"
    assert decided[-1]["payload"]["ts"] == first + 1_439 * MIN  # 23:59, the day's last bar
    assert [x["seq"] for x in lines] == list(range(manifest["first_seq"],
                                                   manifest["last_seq"] + 1))
    assert {x["payload"]["ts"] // 86_400_000 for x in lines if x["kind"] == "bar"} == {
        first // 86_400_000}
    assert not (days / "2024-01-02.json").exists()  # the second day is not over
