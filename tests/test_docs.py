"""The docs run: the README's strategy example backtests, and every bundled config is valid."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from workbench.config import load_config
from workbench.engine.kernel import build_strategy
from workbench.engine.run import run_backtest
from workbench.warehouse.connect import open_rw
from workbench.warehouse.ingest import ingest

ROOT = Path(__file__).resolve().parent.parent


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_strategy_example_runs_in_a_backtest(tmp_path, warehouse, synth_csv,
                                                    monkeypatch):
    (block,) = [b for b in _python_blocks((ROOT / "README.md").read_text())
                if "class Breakout" in b]
    (tmp_path / "readme_breakout.py").write_text(block)
    monkeypatch.syspath_prepend(str(tmp_path))
    con = open_rw(warehouse)
    ingest(con, [synth_csv(count=3_000)], "BTCUSDT")
    con.close()
    result = run_backtest(
        {"strategy": {"class": "readme_breakout:Breakout", "params": {"lookback": 30}}},
        warehouse=warehouse, out=tmp_path / "run", env={})
    assert result.metrics["bars"] == 3_000
    assert result.metrics["fills"] > 0  # the example really trades
    sys.modules.pop("readme_breakout", None)


def test_readme_declared_breakout_trades_exactly_as_the_plain_one(tmp_path, warehouse,
                                                                 synth_csv, monkeypatch):
    blocks = _python_blocks((ROOT / "README.md").read_text())
    (plain,) = [b for b in blocks if "class Breakout" in b]
    (declared,) = [b for b in blocks if "class FastBreakout" in b]
    (tmp_path / "readme_plain.py").write_text(plain)
    (tmp_path / "readme_declared.py").write_text(declared)
    monkeypatch.syspath_prepend(str(tmp_path))
    con = open_rw(warehouse)
    ingest(con, [synth_csv(count=3_000)], "BTCUSDT")
    con.close()
    fills = []
    for cls in ("readme_plain:Breakout", "readme_declared:FastBreakout"):
        result = run_backtest({"strategy": {"class": cls, "params": {"lookback": 30}}},
                              warehouse=warehouse, out=tmp_path / cls.split(":")[1], env={})
        fills.append((result.run_dir / "fills.csv").read_text())
    assert fills[0] == fills[1] and fills[0].count("\n") > 10
    for name in ("readme_plain", "readme_declared"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_bundled_config_is_valid_and_names_a_real_strategy(config):
    cfg = load_config(config, env={})
    build_strategy(cfg)  # imports the class and validates its params


def test_readme_notebook_example_runs_class_from_main_resampled_and_plots(
        tmp_path, warehouse, synth_csv, monkeypatch):
    blocks = _python_blocks((ROOT / "README.md").read_text())
    (strategy,) = [b for b in blocks if "class Breakout" in b]
    (notebook,) = [b for b in blocks if "strategy=Breakout" in b]
    con = open_rw(warehouse)
    ingest(con, [synth_csv(count=8 * 1_440)], "BTCUSDT")  # eight days of 1m bars
    con.close()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WB_WAREHOUSE", str(warehouse))
    cell: dict[str, object] = {"__name__": "__main__"}  # a notebook's namespace
    exec(compile(strategy, "README.md", "exec"), cell)
    exec(compile(notebook, "README.md", "exec"), cell)
    result = cell["result"]
    manifest = result.manifest  # type: ignore[attr-defined]
    assert manifest["config"]["strategy"]["class"] == "__main__:Breakout"
    assert manifest["resampled_from"] == {"BTCUSDT": "1m"}
    assert manifest["bars"] == 4 * 96  # 2024-01-05 to the end of the eighth day
    assert result.metrics["fills"] > 0  # type: ignore[attr-defined]
