"""Short selling end to end (``portfolio.allow_short``, adr/0026): a long/short strategy run
through ``run_backtest``, its trades.csv against the warehouse's views; the default refuses the
short; live modes and parity refuse the key."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
import step_harness as harness

import workbench
from workbench.config import load_config
from workbench.engine import kernel
from workbench.engine.journal import MemoryJournal
from workbench.errors import ConfigError
from workbench.model import Mode
from workbench.parity.harness import check
from workbench.parity.peer import Unsupported
from workbench.strategies.sma_long_short import SmaLongShort

CONFIG = {
    "data": {"symbols": ["BTCUSDT"], "timeframe": "1m"},
    "strategy": {"class": "workbench.strategies.sma_long_short:SmaLongShort",
                 "params": {"fast": 5, "slow": 20, "qty": 0.1}},
    "portfolio": {"initial_cash": 10_000.0, "allow_short": True},
    "costs": {"borrow_bps_per_year": 50_000.0},  # 500 % a year: visible in 600 minutes
}


@pytest.fixture
def bars(load_bars: Callable[[int], Path]) -> Path:
    return load_bars(600)


def test_run_backtest_long_short_trades_csv_and_views_agree_on_short_round_trips(
        bars: Path, tmp_path: Path) -> None:
    result = workbench.run_backtest(CONFIG, warehouse=bars, out=tmp_path / "r", env={})
    with (result.run_dir / "trades.csv").open(newline="") as fh:
        trades = list(csv.DictReader(fh))
    sides = {t["side"] for t in trades}
    assert sides == {"LONG", "SHORT"}
    con = duckdb.connect(str(bars), read_only=True)
    try:
        rows = con.execute(
            "select side, qty, entry_price, exit_price, pnl "
            "from rpt.round_trips where run_id = ? order by exit_fill_seq, entry_fill_seq",
            [result.run_id]).fetchall()
        curve = [e for (e,) in con.execute(
            "select equity from acct.equity_curve where run_id = ? order by ts",
            [result.run_id]).fetchall()]
        borrow, borrow_rows = con.execute(
            "select sum(amount), count(*) from main.costs where run_id = ? and kind = 'borrow'",
            [result.run_id]).fetchone()
        funding = con.execute("select funding from rpt.cost_breakdown where run_id = ?",
                              [result.run_id]).fetchone()[0]
    finally:
        con.close()
    # the same trips in the same order, the same doubles: the arithmetic is mirrored
    assert [r[:5] for r in rows] == [
        (t["side"], float(t["qty"]), float(t["entry_price"]), float(t["exit_price"]),
         float(t["pnl"])) for t in trades]
    with (result.run_dir / "equity.csv").open(newline="") as fh:
        books = [float(r["equity"]) for r in csv.DictReader(fh)]
    assert len(curve) == len(books) == 600
    for bar, (sql, loop) in enumerate(zip(curve, books, strict=True)):
        assert math.isclose(sql, loop, rel_tol=1e-12), f"bar {bar}: {sql!r} != {loop!r}"
    assert borrow_rows > 100 and borrow > 0  # a row per bar held short
    assert math.isclose(funding, borrow, rel_tol=1e-12)


def test_run_backtest_long_short_without_allow_short_rejects_the_short_sales(
        bars: Path, tmp_path: Path) -> None:
    spot = {**CONFIG, "portfolio": {"initial_cash": 10_000.0}}
    result = workbench.run_backtest(spot, warehouse=bars, out=tmp_path / "r", env={})
    with (result.run_dir / "trades.csv").open(newline="") as fh:
        assert list(csv.DictReader(fh)) == []  # the first long is never closed
    assert result.summary["orders"]["rejected"]["INSUFFICIENT_POSITION"] > 0


def test_config_allow_short_at_its_defaults_is_left_out_of_the_dict_and_hash() -> None:
    plain = load_config(None, env={})
    explicit = load_config(None, ["portfolio.allow_short=false",
                                  "portfolio.short_margin=1.0"], env={})
    assert "allow_short" not in plain.to_dict()["portfolio"]
    assert explicit.hash() == plain.hash()
    shorts = load_config(None, ["portfolio.allow_short=true"], env={})
    assert shorts.to_dict()["portfolio"]["allow_short"] is True
    assert shorts.hash() != plain.hash()


def test_build_backtest_with_allow_short_wires_a_short_book_and_the_margin() -> None:
    from workbench.book import ShortBook
    from workbench.brokers.sim import SimBroker

    cfg = load_config(None, ["portfolio.allow_short=true", "portfolio.short_margin=0.5"],
                      env={})
    built = kernel.build(cfg, Mode.BACKTEST, strategy=SmaLongShort(), run_id="b")
    assert isinstance(built.step.book, ShortBook)
    assert isinstance(built.broker, SimBroker) and built.broker.short_margin == 0.5
    plain = kernel.build(load_config(None, env={}), Mode.BACKTEST, strategy=SmaLongShort(),
                         run_id="p")
    assert type(plain.step.book) is workbench.book.Book and plain.broker.short_margin is None


@pytest.mark.parametrize("mode", [Mode.SHADOW, Mode.PAPER, Mode.LIVE])
def test_build_live_modes_with_allow_short_refused_naming_the_key(mode: Mode) -> None:
    cfg = load_config(None, ["portfolio.allow_short=true"], env={})
    with pytest.raises(ConfigError, match="cannot sell beyond what the account holds") as err:
        kernel.build(cfg, mode, strategy=SmaLongShort(), run_id="l", journal=MemoryJournal())
    assert err.value.where == "portfolio.allow_short"


@pytest.mark.parametrize("key", ["portfolio.allow_short=true", "costs.funding_bps=1"])
@pytest.mark.parametrize("engine", ["backtesting", "backtrader", "nautilus"])
def test_parity_check_shorts_or_funding_unsupported_by_every_peer(engine: str,
                                                                   key: str) -> None:
    cfg = load_config(None, [key], env={})
    with pytest.raises(Unsupported, match=key.split("=")[0].replace(".", r"\.")):
        check(engine, cfg, harness.closes([1.0, 2.0]))
