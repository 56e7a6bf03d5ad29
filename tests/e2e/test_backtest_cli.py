"""``workbench backtest`` as a user runs it: a separate process, its exit code, stdout, stderr.

Every failure ends with one clear message on stderr (``error: what`` then the fix), a non-zero
exit status and no traceback; a failed run leaves only its ``runs`` row and its manifest.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from cli_process import CliResult, run_subprocess
from small_config import sma_config

from workbench.warehouse.connect import reading

pytestmark = pytest.mark.e2e

CONFIG = sma_config('e2e')

BOOM = """\
from workbench.model import OrderIntent, Side
from workbench.strategy import Strategy


class Boom(Strategy):
    at: int = 50

    def on_start(self, ctx):
        self.n = 0

    def on_bar(self, ctx, bar):
        self.n += 1
        if self.n == 10:
            return [OrderIntent(bar.symbol, Side.BUY, 0.01)]
        if self.n == self.at:
            raise RuntimeError("kaboom")
        return None
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def wb(warehouse: Path, *args: str, cwd: Path, env: dict[str, str] | None = None) -> CliResult:
    return run_subprocess("--warehouse", str(warehouse), *args, cwd=cwd, env=env)


def query(warehouse: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with reading(warehouse) as con:
        return list(con.sql(sql, params=params).fetchall())


def assert_clean_error(proc: CliResult, code: int) -> None:
    """One message: ``error: ...`` first, an indented fix line, no traceback, nothing on stdout."""
    assert proc.code == code, proc.err
    assert proc.err.startswith("error: "), proc.err
    assert "Traceback" not in proc.err
    assert "internal error" not in proc.err
    assert proc.out == ""
    lines = proc.err.rstrip("\n").splitlines()
    assert len(lines) >= 2 and lines[-1].startswith("       ") and lines[-1].strip(), proc.err


# --- fail-fast errors, one per case, each in its own process -------------------------------------
# Each case: (extra backtest args, env, code, substrings that stderr must contain: what/where/fix)
CASES: dict[str, tuple[list[str], dict[str, str], int, list[str]]] = {
    "missing_config_file": (
        ["--config", "{tmp}/nope.yaml"], {}, 2,
        ["{tmp}/nope.yaml", "not found", "configs/sma_demo.yaml"]),
    "unknown_key_in_yaml": (
        ["--config", "{tmp}/typo.yaml"], {}, 2,
        ["{tmp}/typo.yaml", "unknown key `costs.fee_bsp`", "did you mean `fee_bps`?"]),
    "wrong_type_in_yaml": (
        ["--config", "{tmp}/wrongtype.yaml"], {}, 2,
        ["{tmp}/wrongtype.yaml", "`portfolio.initial_cash`", "'lots'",
         "set `portfolio.initial_cash` to a valid value"]),
    "wrong_type_from_env": (
        ["--config", "{cfg}"], {"WB_COSTS__FEE_BPS": "abc"}, 2,
        ["env WB_COSTS__FEE_BPS", "`costs.fee_bps`", "set `costs.fee_bps` to a valid value"]),
    "wrong_type_from_set": (
        ["--config", "{cfg}", "--set", "run.seed=abc"], {}, 2,
        ["--set run.seed=abc", "`run.seed`", "set `run.seed` to a valid value"]),
    "unknown_strategy_param": (
        ["--config", "{cfg}", "--set", "strategy.params.fsat=5"], {}, 2,
        ["strategy.params.fsat", "unknown parameter `fsat`", "did you mean `fast`?",
         "fast, slow, qty"]),
    "unimportable_strategy": (
        ["--config", "{cfg}", "--set", "strategy.class=no_such_module:Nope"], {}, 2,
        ["strategy.class", "cannot import strategy module 'no_such_module'",
         "workbench.strategies.sma_cross:SmaCross"]),
    "empty_date_range": (
        ["--config", "{cfg}", "--from", "2024-01-02", "--to", "2024-01-01"], {}, 2,
        ["empty date range", "--from/--to", "2024-01-02T00:00:00.000Z",
         "--to exclusive: choose a later --to"]),
    "unparsable_from": (
        ["--config", "{cfg}", "--from", "yesterday"], {}, 2,
        ["--from 'yesterday'", "2024-01-31T12:00:00Z"]),
    "window_without_bars": (
        ["--config", "{cfg}", "--from", "2024-02-01"], {}, 1,
        ["no BTCUSDT 1m bars in [2024-02-01T00:00:00.000Z, +inf)",
         "from 2024-01-01T00:00:00.000Z to 2024-01-01T09:59:00.000Z", "choose --from/--to"]),
    "symbol_without_bars": (
        ["--config", "{cfg}", "--set", "data.symbols=[ETHUSDT]"], {}, 1,
        ["no bars for ETHUSDT 1m", "workbench ingest FILE --symbol ETHUSDT", "BTCUSDT 1m"]),
}

FILES = {
    "typo.yaml": CONFIG.replace("fee_bps: 10", "fee_bsp: 10"),
    "wrongtype.yaml": CONFIG.replace("initial_cash: 10000", "initial_cash: lots"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_backtest_config_or_data_error_exits_nonzero_with_one_clear_message(
        case: str, ingested: Path, config: Path, tmp_path: Path) -> None:
    args, env, code, expected = CASES[case]
    for name, text in FILES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    fill = lambda s: s.replace("{tmp}", str(tmp_path)).replace("{cfg}", str(config))  # noqa: E731
    out = tmp_path / "run"
    proc = wb(ingested, "backtest", *map(fill, args), "--out", str(out), cwd=tmp_path, env=env)
    assert_clean_error(proc, code)
    for text in map(fill, expected):
        assert text in proc.err, (text, proc.err)
    if code == 2:  # refused before the run starts: no run row, no run directory
        assert not out.exists()
        assert query(ingested, "select count(*) from runs") == [(0,)]


def test_backtest_unreadable_warehouse_reported_without_traceback(
        config: Path, tmp_path: Path) -> None:
    """A warehouse file that is not DuckDB: a clear message and a non-zero exit."""
    bogus = tmp_path / "not_a_db.duckdb"
    bogus.write_text("this is not a database\n")
    proc = run_subprocess("--warehouse", str(bogus), "backtest", "--config", str(config),
                          "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert proc.code != 0
    assert proc.err.startswith("error: ")
    assert "Traceback" not in proc.err
    assert str(bogus) in proc.err


# --- a strategy that raises ----------------------------------------------------------------------
def test_backtest_strategy_raises_marks_run_failed_and_leaves_no_rows_or_csvs(
        ingested: Path, tmp_path: Path) -> None:
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "wbtest_boom.py").write_text(BOOM, encoding="utf-8")
    cfg = tmp_path / "boom.yaml"
    cfg.write_text(CONFIG.replace("workbench.strategies.sma_cross:SmaCross", "wbtest_boom:Boom")
                   .replace("{fast: 5, slow: 20, qty: 0.1}", "{at: 50}"), encoding="utf-8")
    out = tmp_path / "run"
    pythonpath = os.pathsep.join(p for p in (str(mods), os.environ.get("PYTHONPATH")) if p)
    proc = wb(ingested, "backtest", "--config", str(cfg), "--out", str(out), cwd=tmp_path,
              env={"PYTHONPATH": pythonpath})

    assert_clean_error(proc, 1)
    match = re.match(r"error: run (\S+) failed: strategy Boom raised RuntimeError in on_bar at "
                     r"BTCUSDT 2024-01-01T00:49:00\.000Z: kaboom", proc.err)
    assert match, proc.err
    assert "wbtest_boom.py" in proc.err
    assert "fix the strategy" in proc.err
    run_id = match.group(1)

    [(status, error, ended)] = query(
        ingested, "select status, error, ended_at is not null from runs where run_id = ?",
        [run_id])
    assert (status, ended) == ("failed", True)
    assert "kaboom" in error
    for table in ("orders", "order_events", "fills", "run_bars", "risk_events", "snapshots"):
        assert query(ingested, f"select count(*) from {table} where run_id = ?",
                     [run_id]) == [(0,)], table

    assert sorted(p.name for p in out.iterdir()) == ["logs.jsonl", "run_manifest.json"]
    manifest = json.loads((out / "run_manifest.json").read_text())
    assert manifest["run_id"] == run_id
    assert manifest["status"] == "failed"
    assert "kaboom" in manifest["error"]
    assert manifest["ended_at"]
    logs = [json.loads(ln) for ln in (out / "logs.jsonl").read_text().splitlines()]
    assert any(r["level"] == "error" and "kaboom" in r["msg"] for r in logs)


# --- success output ------------------------------------------------------------------------------
def test_backtest_success_last_stdout_line_is_run_id_and_default_dir_stderr_quiet(
        ingested: Path, config: Path, tmp_path: Path) -> None:
    proc = wb(ingested, "backtest", "--config", str(config), cwd=tmp_path)
    assert proc.code == 0, proc.err
    assert proc.err == ""
    assert proc.out.endswith("\n")
    match = re.fullmatch(r"run_id=(\S+) dir=(.+)", proc.out.splitlines()[-1])
    assert match, proc.out
    run_id, run_dir = match.groups()
    assert run_dir == os.path.join("runs", run_id)  # default: runs/<run_id> under the cwd
    assert (tmp_path / run_dir / "trades.csv").is_file()
    assert query(ingested, "select status from runs where run_id = ?", [run_id]) == [
        ("completed",)]


def test_backtest_json_stdout_is_exactly_one_json_object(
        ingested: Path, config: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = wb(ingested, "backtest", "--config", str(config), "--out", str(out), "--json",
              cwd=tmp_path)
    assert proc.code == 0, proc.err
    assert proc.out.count("\n") == 1
    doc = json.loads(proc.out)
    assert {"run_id", "dir", "trades", "total_return_pct", "max_drawdown_pct", "sharpe"} <= set(doc)
    assert doc["dir"] == str(out)
    assert isinstance(doc["trades"], int)
    for key in ("total_return_pct", "max_drawdown_pct", "sharpe"):
        assert isinstance(doc[key], float), key


def test_backtest_env_prefix_flag_reads_that_prefix_in_a_real_process(
        ingested: Path, config: Path, tmp_path: Path) -> None:
    env = {"WB_COSTS__FEE_BPS": "7", "XY_COSTS__FEE_BPS": "3", "XY_COSTS__SLIPPAGE_BPS": "1"}
    out = tmp_path / "run"
    proc = wb(ingested, "--env-prefix", "XY_", "backtest", "--config", str(config), "--out",
              str(out), cwd=tmp_path, env=env)
    assert proc.code == 0, proc.err
    costs = json.loads((out / "run_manifest.json").read_text())["config"]["costs"]
    assert (costs["fee_bps"], costs["slippage_bps"]) == (3.0, 1.0)
