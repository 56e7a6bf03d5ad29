"""``workbench fidelity``: the same strategy under each latency profile, a participation cap
and the full cost model, each a real run, side by side."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from every_n import EveryN

from workbench.engine.run import run_backtest
from workbench.fidelity import run_fidelity
from workbench.warehouse.connect import reading

CONFIG = {"run": {"name": "fid"}, "data": {"symbols": ["BTCUSDT"], "timeframe": "1m"},
          "strategy": {"params": {"n": 30, "qty": 0.5}},
          "portfolio": {"initial_cash": 1_000_000.0}}


@pytest.fixture
def bars(load_bars: Callable[[int], Path]) -> Path:
    return load_bars(600)


def test_fidelity_runs_every_variant_as_a_run_and_compares_with_instant(
        bars: Path, tmp_path: Path) -> None:
    said: list[str] = []
    result = run_fidelity(CONFIG, warehouse=bars, env={}, strategy=EveryN,
                          runs_dir=tmp_path / "runs", progress=said.append)
    names = [r.variant for r in result.rows]
    assert names == [f"{p}{s}" for p in ("INSTANT", "FAST", "NORMAL", "SLOW")
                     for s in ("", " + cap 10%", " + cap + costs")]
    assert len(said) == 12 and said[0].startswith("fidelity: 1/12 INSTANT")
    base = result.rows[0]
    assert base.total_return_pct is not None
    if base.total_return_pct > 0:
        assert base.edge_kept_pct == pytest.approx(100.0)
    else:  # a share of an edge the baseline does not have would mislead
        assert all(r.edge_kept_pct is None for r in result.rows)
    with reading(bars) as con:
        runs = dict(con.sql("select run_id, name from runs").fetchall())
    assert {r.run_id for r in result.rows} <= set(runs)
    assert runs[result.rows[-1].run_id] == "fid.fidelity.slow-cap-costs"
    full = result.rows[2]  # INSTANT + cap + costs: a spread and an impact on every fill
    assert full.total_costs is not None and base.total_costs is not None
    assert full.total_costs > base.total_costs
    assert "edge kept" in result.table() and result.table().count("\n") == 13
    # the INSTANT variant is the plain backtest, to the byte
    plain = run_backtest(CONFIG, warehouse=bars, env={}, strategy=EveryN, progress=False,
                         out=tmp_path / "plain")
    instant = tmp_path / "runs" / base.run_id
    for name in ("trades.csv", "equity.csv", "fills.csv", "orders.csv"):
        assert (instant / name).read_bytes() == (plain.run_dir / name).read_bytes(), name


def test_fidelity_cli_prints_the_table_or_json_and_refuses_a_bad_cap(
        cli: Any, bars: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({**CONFIG, "strategy": {
        "class": "workbench.strategies.sma_cross:SmaCross",
        "params": {"fast": 5, "slow": 20, "qty": 0.5}}}))
    done = cli("fidelity", "--config", str(config), "--json", "--cap", "5")
    assert done.code == 0, done.err
    rows = json.loads(done.out)["rows"]
    assert len(rows) == 12 and rows[1]["cap_pct"] == 5.0 and rows[1]["latency"] == "INSTANT"
    with pytest.raises(SystemExit) as raised:  # argparse's usage error, in-process
        cli("fidelity", "--config", str(config), "--cap", "0")
    assert raised.value.code == 2
    assert "percentage" in capsys.readouterr().err
