"""``workbench backtest`` for a newcomer: a strategy of one's own found in the working directory
or on ``--strategy-path``, a coarser timeframe resampled from 1-minute bars, and an end-of-run
summary that warns about a clipped range, a strategy still warming up, and refused orders."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_process import CliResult, run_subprocess
from small_config import sma_config

pytestmark = pytest.mark.e2e

CONFIG = sma_config('newcomer')

MINE = """\
from workbench import OrderIntent, Side, Strategy


class Mine(Strategy):
    every: int = 50

    def on_start(self, ctx):
        self.n = 0

    def on_bar(self, ctx, bar):
        self.n += 1
        if self.n % self.every == 0:
            side = Side.SELL if ctx.position(bar.symbol) > 0 else Side.BUY
            return [OrderIntent(bar.symbol, side, 0.01)]
        return None
"""


def console(*args: str, cwd: Path) -> CliResult:
    """The ``workbench`` console script (unlike ``python -m``, it does not put the working
    directory on sys.path by itself)."""
    return run_subprocess(*args, cwd=cwd, timeout=120, console=True)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def _manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "run_manifest.json").read_text())


def test_backtest_strategy_module_in_working_directory_imported(ingested: Path, config: Path,
                                                                tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "wbnew_mine_cwd.py").write_text(MINE, encoding="utf-8")
    out = tmp_path / "run"
    proc = console("--warehouse", str(ingested), "backtest", "--config", str(config),
                   "--set", "strategy.class=wbnew_mine_cwd:Mine", "--set",
                   "strategy.params={}", "--set", "strategy.params.every=60", "--out", str(out),
                   cwd=work)
    assert proc.code == 0, proc.err
    manifest = _manifest(out)
    assert manifest["config"]["strategy"]["class"] == "wbnew_mine_cwd:Mine"
    assert "path" not in manifest["config"]["strategy"]
    assert manifest["summary"]["orders"]["total"] == 10


def test_backtest_strategy_path_option_repeatable_and_pathsep_separated(
        ingested: Path, config: Path, tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in ("a", "b", "c"))
    for d in (a, b, c):
        d.mkdir()
    (c / "wbnew_mine_path.py").write_text(MINE, encoding="utf-8")
    out = tmp_path / "run"
    proc = console("--warehouse", str(ingested), "backtest", "--config", str(config),
                   "--set", "strategy.class=wbnew_mine_path:Mine", "--set",
                   "strategy.params={}", "--strategy-path", str(a),
                   "--strategy-path", f"{b}{os.pathsep}{c}", "--out", str(out), cwd=tmp_path)
    assert proc.code == 0, proc.err
    manifest = _manifest(out)
    assert manifest["config"]["strategy"]["path"] == [str(a), str(b), str(c)]
    assert manifest["summary"]["orders"]["total"] == 12


def test_backtest_strategy_module_not_found_error_names_module_paths_and_fix(
        ingested: Path, config: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    proc = console("--warehouse", str(ingested), "backtest", "--config", str(config),
                   "--set", "strategy.class=wbnew_nowhere:Mine", "--strategy-path", str(extra),
                   cwd=tmp_path)
    assert proc.code == 2
    assert proc.err.startswith("error: strategy.class: cannot import strategy module "
                               "'wbnew_nowhere'"), proc.err
    assert str(extra.resolve()) in proc.err
    assert str(tmp_path.resolve()) in proc.err  # the working directory is searched too
    assert "--strategy-path DIR" in proc.err
    assert "strategy=MyStrategy" in proc.err
    assert "Traceback" not in proc.err


def test_backtest_timeframe_15m_over_1m_bars_resampled_and_recorded(
        ingested: Path, config: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = console("--warehouse", str(ingested), "backtest", "--config", str(config),
                   "--set", "data.timeframe=15m", "--set", "strategy.params.fast=2",
                   "--set", "strategy.params.slow=5", "--out", str(out), cwd=tmp_path)
    assert proc.code == 0, proc.err
    manifest = _manifest(out)
    assert manifest["resampled_from"] == {"BTCUSDT": "1m"}
    assert manifest["timeframe"] == "15m"
    assert manifest["bars"] == 40  # 600 minutes
    assert "BTCUSDT 15m bars resampled from the stored 1m bars" in proc.out
    with (out / "equity.csv").open() as fh:
        rows = fh.read().splitlines()[1:]
    assert len(rows) == 40
    assert rows[1].startswith("2024-01-01T00:15:00.000Z,")


def test_backtest_summary_warns_clipped_range_and_warmup_longer_than_bars(
        ingested: Path, config: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = console("--warehouse", str(ingested), "backtest", "--config", str(config),
                   "--from", "2023-12-31", "--to", "2024-01-02", "--set",
                   "strategy.params.slow=900", "--out", str(out), cwd=tmp_path)
    assert proc.code == 0, proc.err
    warnings = [ln for ln in proc.out.splitlines() if ln.startswith("warning: ")]
    assert len(warnings) == 3, proc.out
    assert re.search(r"requested start 2023-12-31T00:00:00\.000Z .* first bar there is, "
                     r"2024-01-01T00:00:00\.000Z", warnings[0])
    assert re.search(r"requested end 2024-01-02T00:00:00\.000Z .* last bar there is, "
                     r"2024-01-01T09:59:00\.000Z", warnings[1])
    assert "SmaCross needs more than 900 bars to warm up" in warnings[2]
    assert "has 600 bars" in warnings[2]
    assert re.fullmatch(r"run_id=\S+ dir=.+", proc.out.splitlines()[-1])
    assert _manifest(out)["summary"]["warnings"] == [w.removeprefix("warning: ")
                                                     for w in warnings]


def test_backtest_sma_fast_not_below_slow_config_error(ingested: Path, config: Path,
                                                       tmp_path: Path) -> None:
    proc = console("--warehouse", str(ingested), "backtest", "--config", str(config),
                   "--set", "strategy.params.fast=20", cwd=tmp_path)
    assert proc.code == 2
    assert proc.err.startswith("error: strategy.params.fast/slow: fast (20) must be shorter "
                               "than slow (20)"), proc.err
    assert "Traceback" not in proc.err


def test_backtest_json_carries_the_summary_warnings(ingested: Path, config: Path,
                                                    tmp_path: Path) -> None:
    proc = console("--warehouse", str(ingested), "backtest", "--config", str(config),
                   "--to", "2024-01-02", "--json", "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert proc.code == 0, proc.err
    doc = json.loads(proc.out)
    [warning] = doc["warnings"]
    assert "the requested end 2024-01-02T00:00:00.000Z" in warning


def test_backtest_15m_over_1m_with_missing_minute_gap_policy_applies(
        cli: Callable[..., Any], synth_csv: Callable[..., Path], warehouse: Path,
        config: Path, tmp_path: Path) -> None:
    path = synth_csv(count=120)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:21] + lines[22:]))  # drop 00:20, inside the 00:15 bucket
    assert cli("ingest", str(path), "--symbol", "BTCUSDT", "--gaps", "none").code == 0
    base = ("--warehouse", str(warehouse), "backtest", "--config", str(config), "--set",
            "data.timeframe=15m", "--set", "strategy.params.fast=2", "--set",
            "strategy.params.slow=3")
    failed = console(*base, cwd=tmp_path)
    assert failed.code == 1
    assert "1 missing bar at 2024-01-01T00:15:00.000Z (resampled from stored 1m bars" in (
        failed.err)
    out = tmp_path / "run"
    filled = console(*base, "--gaps", "forward", "--out", str(out), cwd=tmp_path)
    assert filled.code == 0, filled.err
    manifest = _manifest(out)
    assert manifest["bars"] == 8
    assert manifest["qc"] == {"gaps": 1, "filled_bars": 1, "findings": 1}
