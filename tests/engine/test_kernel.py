"""The kernel: one place wires clock, feed, broker and journal for a mode."""

from __future__ import annotations

import gc
import random
from pathlib import Path

import numpy as np
import pytest

from workbench.brokers.fills import CostModel
from workbench.brokers.null import NullBroker
from workbench.brokers.paper import PaperBroker
from workbench.brokers.sim import SimBroker
from workbench.config import Config, RiskConfig, RiskModes
from workbench.engine import kernel
from workbench.engine.clock import BarClock
from workbench.engine.journal import MemoryJournal
from workbench.feeds.history import merge
from workbench.feeds.qc import BarSeries
from workbench.model import Mode
from workbench.recovery.journal import WalJournal
from workbench.strategies.sma_cross import SmaCross
from workbench.strategy import Strategy


def test_build_backtest_wires_costs_cash_timeframe_seed_from_config() -> None:
    cfg = Config.model_validate({
        "run": {"seed": 5},
        "data": {"timeframe": "5m"},
        "portfolio": {"initial_cash": 1234.5},
        "costs": {"fee_bps": 3, "slippage_bps": 4, "spread_bps": 2, "min_notional": 10,
                  "fill_at": "next_open"},
    })
    k = kernel.build(cfg, Mode.BACKTEST, strategy=SmaCross(), run_id="run-1")
    step = k.step
    assert isinstance(step.broker, SimBroker) and k.broker is step.broker
    assert isinstance(k.journal, MemoryJournal) and k.journal is step.journal
    assert isinstance(k.clock, BarClock) and k.clock is step.clock
    assert k.clock.timeframe_ms == 300_000
    assert step.broker.costs == CostModel(3.0, 2.0, 4.0, 10.0, "next_open")
    assert step.book.cash == step.book.initial_cash == 1234.5
    assert step.timeframe_ms == 300_000
    assert step.run_id == "run-1"
    assert step.ctx.random.random() == random.Random(5).random()


def test_build_backtest_costs_disabled_free_but_keeps_fill_at() -> None:
    cfg = Config.model_validate({"costs": {"enabled": False, "fee_bps": 30,
                                           "fill_at": "next_open"}})
    step = kernel.build(cfg, "backtest", strategy=SmaCross(), run_id="r").step
    assert isinstance(step.broker, SimBroker)
    assert step.broker.costs == CostModel.free("next_open")


def test_build_backtest_risk_engine_resumes_next_day_or_none_when_mode_switched_off() -> None:
    on = kernel.build(Config.model_validate({"risk": {"daily_loss_limit": 5}}), Mode.BACKTEST,
                      strategy=SmaCross(), run_id="r").step.risk
    assert on is not None and on.resume_next_day is True
    off = Config.model_validate({"risk": RiskConfig(
        daily_loss_limit=5, modes=RiskModes(backtest=False)).model_dump()})
    assert kernel.build(off, Mode.BACKTEST, strategy=SmaCross(), run_id="r").step.risk is None


def test_build_live_sends_orders_only_through_a_venue_handed_in(tmp_path: Path) -> None:
    wiring = kernel.wiring(Mode.LIVE)
    assert wiring.live and wiring.sends_orders and not wiring.group_commit
    assert not any(w.sends_orders for m, w in kernel.WIRINGS.items() if m is not Mode.LIVE)
    with WalJournal(tmp_path) as journal, pytest.raises(ValueError, match="needs the venue"):
        kernel.build(Config(), Mode.LIVE, strategy=SmaCross(), run_id="r", journal=journal)


@pytest.mark.parametrize(("mode", "broker"), [(Mode.SHADOW, NullBroker),
                                              (Mode.PAPER, PaperBroker)])
def test_build_live_modes_wire_their_broker_and_the_journal_handed_in(
        mode: Mode, broker: type, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="journal="):
        kernel.build(Config(), mode, strategy=SmaCross(), run_id="r")
    with WalJournal(tmp_path) as journal:
        wired = kernel.build(Config(), mode, strategy=SmaCross(), run_id="r", journal=journal)
        assert type(wired.broker) is broker and wired.journal is journal
        assert isinstance(wired.clock, BarClock) and wired.wiring.live
        assert not wired.wiring.pause_gc and not wired.wiring.resume_next_day


def test_only_the_backtest_wiring_pauses_the_garbage_collector() -> None:
    assert kernel.wiring(Mode.BACKTEST).pause_gc is True
    assert all(not w.pause_gc for m, w in kernel.WIRINGS.items() if m is not Mode.BACKTEST)


class GcProbe(Strategy):
    def __init__(self) -> None:
        super().__init__()
        self.enabled: list[bool] = []

    def on_bar(self, ctx, bar):  # type: ignore[no-untyped-def]
        self.enabled.append(gc.isenabled())


def test_kernel_run_pauses_gc_for_the_loop_and_restores_it() -> None:
    probe = GcProbe()
    k = kernel.build(Config(), Mode.BACKTEST, strategy=probe, run_id="r")
    ts = 1_704_067_200_000 + np.arange(3, dtype=np.int64) * 60_000
    one = np.ones(3)
    data = merge([BarSeries("X", 60_000, ts, one, one, one, one, one)])
    assert gc.isenabled()
    k.run(data)
    assert probe.enabled == [False, False, False]
    assert gc.isenabled()


def test_paused_gc_off_leaves_the_collector_running() -> None:
    with kernel.paused_gc(False):
        assert gc.isenabled()


def test_build_execution_settings_reach_sim_and_paper_brokers(tmp_path: Path) -> None:
    from workbench.brokers.execution import PROFILES
    from workbench.config import load_config

    cfg = load_config(None, ["execution.latency=SLOW", "execution.participation_pct=5",
                             "execution.remainder=cancel", "run.seed=9"], env={})
    sim = kernel.build(cfg, Mode.BACKTEST, strategy=SmaCross(), run_id="b").broker
    paper = kernel.build(cfg, Mode.PAPER, strategy=SmaCross(), run_id="p",
                         journal=MemoryJournal()).broker
    for broker in (sim, paper):
        assert isinstance(broker, SimBroker)
        ex = broker.execution
        assert (ex.latency, ex.participation_pct, ex.cancel_remainder, ex.seed) == (
            PROFILES["SLOW"], 5.0, True, 9)


def test_build_live_with_execution_settings_refused_naming_the_key() -> None:
    from workbench.config import load_config
    from workbench.errors import ConfigError

    cfg = load_config(None, ["execution.latency=FAST"], env={})
    with pytest.raises(ConfigError, match="a live run meets the venue's own") as err:
        kernel.build(cfg, Mode.LIVE, strategy=SmaCross(), run_id="l", journal=MemoryJournal())
    assert err.value.where == "execution"
