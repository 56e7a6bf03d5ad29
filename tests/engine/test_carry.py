"""A short's borrow (``costs.borrow_bps_per_year``, adr/0026): charged on each of its symbol's
bars on the position held into the bar, at the bar's close; cash, ``Book.charges`` and the
``costs`` rows say the same, and ``Book.check`` folds them. Funding (``costs.funding_bps``):
paid by a long and received by a short at the funding times."""

from __future__ import annotations

import math

import pytest
import step_harness as harness

from workbench.book import BookInvariantError, Charge, ShortBook
from workbench.brokers.fills import CostModel
from workbench.brokers.sim import SimBroker
from workbench.config import load_config
from workbench.engine import kernel
from workbench.engine.backtest import simulate
from workbench.engine.carry import YEAR_MS, Borrow, Funding
from workbench.engine.journal import MemoryJournal
from workbench.engine.step import Step
from workbench.errors import ConfigError
from workbench.model import Bar, OrderIntent, Side
from workbench.strategies.sma_long_short import SmaLongShort
from workbench.strategy import Context, Strategy
from workbench.warehouse import results

T0, TF = harness.T0, harness.TF
FREE = CostModel(fee_bps=0.0, slippage_bps=0.0)


class ShortThenCover(Strategy):
    """Sell 2 short on the first bar, buy them back on the fourth."""

    def on_bar(self, ctx: Context, bar: Bar) -> list[OrderIntent] | None:
        if bar.ts == T0:
            return [OrderIntent("X", Side.SELL, 2.0)]
        if bar.ts == T0 + 3 * TF:
            return [OrderIntent("X", Side.BUY, 2.0)]
        return None


def run_short(bps: float) -> Step:
    book = ShortBook(1_000.0)
    step = harness.make_step(ShortThenCover(), broker=SimBroker(FREE, short_margin=1.0),
                             book=book)
    step.before_each_bar(Borrow(book, bps, TF))
    simulate(step, harness.closes([100.0, 110.0, 90.0, 95.0, 95.0]), start=T0)
    return step


def test_borrow_charges_each_bar_held_short_at_its_close_not_the_opening_bar() -> None:
    book = run_short(10_000.0).book  # 100 % a year
    per_bar = 10_000.0 / 10_000.0 * TF / YEAR_MS
    # short 2 from the first bar's close to the fourth's: bars 2, 3 and 4 pay, at their closes
    assert book.charges == [Charge(T0 + k * TF, "X", "borrow", 2.0 * close * per_bar)
                            for k, close in ((1, 110.0), (2, 90.0), (3, 95.0))]
    paid = sum(c.amount for c in book.charges)
    assert math.isclose(book.cash, 1_000.0 + 200.0 - 190.0 - paid, rel_tol=1e-15)
    assert book.units == {}


def test_borrow_charges_become_costs_rows_after_the_fills_with_no_fill_seq() -> None:
    book = run_short(10_000.0).book
    table = results.charges_table(book.charges)
    assert table.column("kind").to_pylist() == ["borrow"] * 3
    assert table.column("fill_seq").null_count == 3
    assert table.column("amount").to_pylist() == [c.amount for c in book.charges]


def test_borrow_at_zero_rate_or_long_only_is_not_installed() -> None:
    def hooked(*overrides: str) -> bool:
        cfg = load_config(None, list(overrides), env={})
        return kernel.build(cfg, "backtest", strategy=SmaLongShort(),
                            run_id="b").step.needs_every_bar

    assert hooked("portfolio.allow_short=true", "costs.borrow_bps_per_year=300")
    assert not hooked("portfolio.allow_short=true")
    assert not hooked("costs.borrow_bps_per_year=300")
    assert not hooked("portfolio.allow_short=true", "costs.borrow_bps_per_year=300",
                      "costs.enabled=false")


def test_book_check_folds_the_charges_and_refuses_cash_they_do_not_explain() -> None:
    step = run_short(10_000.0)  # stop() checked the books already
    step.book.charges.pop()
    with pytest.raises(BookInvariantError, match="cash was changed outside a fill"):
        step.book.check(harness.fills(step))


# --- funding ------------------------------------------------------------------------------------
class LongThenShort(Strategy):
    """Buy 1 on the first bar; on the third sell 3 (short 2); hold."""

    def on_bar(self, ctx: Context, bar: Bar) -> list[OrderIntent] | None:
        if bar.ts == T0:
            return [OrderIntent("X", Side.BUY, 1.0)]
        if bar.ts == T0 + 2 * TF:
            return [OrderIntent("X", Side.SELL, 3.0)]
        return None


def test_funding_long_pays_short_receives_at_funding_times_only() -> None:
    book = ShortBook(1_000.0)
    step = harness.make_step(LongThenShort(), broker=SimBroker(FREE, short_margin=1.0),
                             book=book)
    step.before_each_bar(Funding(book, 10.0, 2 * TF))  # 0.1 % every second bar
    simulate(step, harness.closes([100.0, 110.0, 120.0, 130.0, 140.0, 150.0]), start=T0)
    # bar 0: flat (the buy fills at its close); bar 2: long 1 pays; bar 4: short 2 receives
    assert book.charges == [Charge(T0 + 2 * TF, "X", "funding", 1.0 * 120.0 * 0.001),
                            Charge(T0 + 4 * TF, "X", "funding", -2.0 * 140.0 * 0.001)]
    assert math.isclose(book.cash, 1_000.0 - 100.0 + 360.0 - 0.12 + 0.28, rel_tol=1e-15)


def test_config_funding_every_not_a_whole_number_of_bars_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"not a whole number of data\.timeframe 1d bars"):
        load_config(None, ["data.timeframe=1d", "costs.funding_bps=1"], env={})
    assert load_config(None, ["data.timeframe=1d", "costs.funding_bps=1",
                              "costs.funding_every=1d"], env={}).costs.funding_bps == 1.0
    plain = load_config(None, env={})
    assert load_config(None, ["costs.funding_every=8h", "costs.funding_bps=0",
                              "costs.borrow_bps_per_year=0"], env={}).hash() == plain.hash()


@pytest.mark.parametrize("mode", ["shadow", "paper", "live"])
def test_build_live_modes_with_funding_refused_naming_the_key(mode: str) -> None:
    cfg = load_config(None, ["costs.funding_bps=1"], env={})
    with pytest.raises(ConfigError, match="pays no funding") as err:
        kernel.build(cfg, mode, strategy=SmaLongShort(), run_id="l", journal=MemoryJournal())
    assert err.value.where == "costs.funding_bps"
