"""Secrets never leave the process, and hostile configs end as config errors (exit 2), as a user
runs the CLI: a separate process, its exit code, stdout, stderr, and every file it wrote.

A strategy parameter named like a credential (``api_key`` from ``WB_STRATEGY__PARAMS__API_KEY``,
``password`` from ``--set``) reaches the strategy but no file (run directory, logs, the DuckDB
file and its tables, the HTML report and the executed notebook) nor any output; the config hash
still changes with the secret's value.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from cli_process import CliResult, run_subprocess
from small_config import sma_config

from workbench.warehouse.connect import reading

pytestmark = pytest.mark.e2e

SUPPORT = Path(__file__).resolve().parents[1] / "support"

CONFIG = sma_config('secrets-e2e', strategy='keyed_strategies:KeyedSma')


def wb(*args: str, cwd: Path, env: dict[str, str] | None = None,
       timeout: float = 300) -> CliResult:
    """``python -m workbench ARGS`` in its own process, tests/support importable, no WB_* from
    the caller's shell."""
    importable = os.pathsep.join(p for p in (str(SUPPORT), os.environ.get("PYTHONPATH")) if p)
    return run_subprocess(*args, cwd=cwd, env={"PYTHONPATH": importable, **(env or {})},
                          timeout=timeout)


def secret() -> str:
    return f"wbsecret-{uuid.uuid4().hex}"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def leaks(root: Path, values: list[str]) -> list[str]:
    """Every file under ``root`` (bytes, so the DuckDB file too) that holds one of ``values``."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{path}: {v}" for v in values if v.encode() in data]
    return found


def table_leaks(warehouse: Path, values: list[str]) -> list[str]:
    """Every table row of the warehouse (read through SQL) whose text holds one of ``values``."""
    found = []
    with reading(warehouse) as con:
        tables = [r[0] for r in con.sql(
            "select table_schema || '.' || table_name from information_schema.tables "
            "where table_type = 'BASE TABLE'").fetchall()]
        assert "main.runs" in tables, tables
        for table in tables:
            for row in con.sql(f"select * from {table}").fetchall():
                text = repr(row)
                found += [f"{table}: {v}" for v in values if v in text]
    return found


def run_id_of(proc: CliResult) -> str:
    last = proc.out.rstrip("\n").splitlines()[-1]
    assert last.startswith("run_id="), proc.out
    return last.split()[0].removeprefix("run_id=")


@pytest.mark.slow
def test_backtest_cli_secret_params_never_written_anywhere_hash_still_covers_them(
        ingested: Path, config: Path, tmp_path: Path) -> None:
    api_key, password, other_key = secret(), secret(), secret()
    values = [api_key, password]
    proc = wb("--warehouse", str(ingested), "backtest", "--config", str(config), "--set",
              f"strategy.params.password={password}", "--out", str(tmp_path / "run1"),
              cwd=tmp_path, env={"WB_STRATEGY__PARAMS__API_KEY": api_key})
    assert proc.code == 0, proc.err
    run_id = run_id_of(proc)
    outputs = [proc.out, proc.err]

    manifest = json.loads((tmp_path / "run1" / "run_manifest.json").read_text())
    assert manifest["config"]["strategy"]["params"]["api_key"] == "***"
    assert manifest["config"]["strategy"]["params"]["password"] == "***"
    assert manifest["metrics"]["trades"] > 0  # the strategy ran with its params

    show = wb("--warehouse", str(ingested), "runs", "show", run_id, cwd=tmp_path)
    assert show.code == 0, show.err
    assert json.loads(show.out)["config_json"]["strategy"]["params"]["api_key"] == "***"
    sql = wb("--warehouse", str(ingested), "sql", "select config_json from runs", cwd=tmp_path)
    assert sql.code == 0, sql.err
    report = wb("--warehouse", str(ingested), "report", run_id, cwd=tmp_path, timeout=600)
    assert report.code == 0, report.err
    html = tmp_path / report.out.strip()
    assert html.is_file() and html.with_suffix(".ipynb").is_file()
    assert "***" in html.read_text(encoding="utf-8")  # the manifest table shows the mask
    outputs += [show.out, show.err, sql.out, sql.err, report.out, report.err]

    # The same config with another key: same stored config, another hash.
    again = wb("--warehouse", str(ingested), "backtest", "--config", str(config), "--set",
               f"strategy.params.password={password}", "--out", str(tmp_path / "run2"),
               cwd=tmp_path, env={"WB_STRATEGY__PARAMS__API_KEY": other_key})
    assert again.code == 0, again.err
    outputs += [again.out, again.err]
    values.append(other_key)
    second = json.loads((tmp_path / "run2" / "run_manifest.json").read_text())
    assert second["config"] == manifest["config"]
    assert second["config_hash"] != manifest["config_hash"]
    with reading(ingested) as con:
        hashes = dict(con.sql("select run_id, config_hash from runs").fetchall())
    assert hashes[run_id] == manifest["config_hash"]

    assert [o for o in outputs for v in values if v in o] == []
    assert leaks(tmp_path, values) == []  # run dirs, logs, reports, the .duckdb file itself
    assert table_leaks(ingested, values) == []


def test_backtest_cli_strategy_error_quoting_its_key_is_scrubbed(
        ingested: Path, config: Path, tmp_path: Path) -> None:
    api_key, password = secret(), secret()
    config.write_text(CONFIG.replace("KeyedSma", "LeakySma"), encoding="utf-8")
    proc = wb("--warehouse", str(ingested), "backtest", "--config", str(config), "--set",
              f"strategy.params.password={password}", "--out", str(tmp_path / "run"),
              cwd=tmp_path, env={"WB_STRATEGY__PARAMS__API_KEY": api_key})
    assert proc.code == 1, proc.err
    assert "venue refused key *** / ***" in proc.err
    with reading(ingested) as con:
        [(error,)] = con.sql("select error from runs").fetchall()
    assert "venue refused key ***" in error
    for value in (api_key, password):
        assert value not in proc.out + proc.err
    assert leaks(tmp_path, [api_key, password]) == []
    assert table_leaks(ingested, [api_key, password]) == []


@pytest.mark.parametrize(("args", "env"), [
    (["--set", "strategy.params.api_key={value}"], {}),
    ([], {"WB_STRATEGY__PARAMS__API_KEY": "{value}"}),
])
def test_backtest_cli_badly_typed_secret_param_exits_2_without_echoing_it(
        config: Path, tmp_path: Path, args: list[str], env: dict[str, str]) -> None:
    value = secret()
    config.write_text(CONFIG.replace("KeyedSma", "IntKeySma"), encoding="utf-8")
    proc = wb("--warehouse", str(tmp_path / "wh.duckdb"), "backtest", "--config", str(config),
              *[a.format(value=value) for a in args], cwd=tmp_path,
              env={k: v.format(value=value) for k, v in env.items()})
    assert proc.code == 2, proc.err
    assert "strategy.params.api_key" in proc.err
    assert value not in proc.out + proc.err


@pytest.mark.parametrize("setting", ["costs.api_key={value}", "run.password={value}",
                                     "strategy.params.secret={value}"])
def test_backtest_cli_unknown_secret_named_key_exits_2_without_echoing_it(
        config: Path, tmp_path: Path, setting: str) -> None:
    value = secret()
    proc = wb("--warehouse", str(tmp_path / "wh.duckdb"), "backtest", "--config", str(config),
              "--set", setting.format(value=value), cwd=tmp_path)
    assert proc.code == 2, proc.err
    assert "unknown" in proc.err
    assert value not in proc.out + proc.err


# --- hostile configs: each a config error (exit 2), never an internal error (70) or a hang ------
def _bomb_flow() -> str:
    levels = ["&a [l,l,l,l,l,l,l,l,l]"] + [
        f"&{n} [{','.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi", strict=True)]
    return "[" + ", ".join(levels) + "]"


def _bomb_file() -> str:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + [
        f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi",
                                                                   strict=True)]
    return "strategy:\n  params:\n" + "".join(f"    {line}\n" for line in lines)


DEEP = "[" * 50_000 + "]" * 50_000
HOSTILE: dict[str, tuple[str | None, list[str], dict[str, str], str]] = {
    # name: (config file text or None for the base config, --set items, env, stderr must hold)
    "alias_bomb_file": (_bomb_file(), [], {}, "aliases"),
    "alias_bomb_set": (None, [f"strategy.params.x={_bomb_flow()}"], {}, "aliases"),
    "alias_bomb_env": (None, [], {"WB_STRATEGY__PARAMS__X": _bomb_flow()}, "aliases"),
    "deep_file": (f"strategy: {{params: {{x: {DEEP}}}}}\n", [], {}, "nests deeper"),
    "deep_set": (None, [f"strategy.params.x={DEEP}"], {}, "nests deeper"),
    "deep_env": (None, [], {"WB_STRATEGY__PARAMS__X": DEEP}, "nests deeper"),
    "cash_inf": (None, ["portfolio.initial_cash=.inf"], {}, "portfolio.initial_cash"),
    "cash_nan": (None, [], {"WB_PORTFOLIO__INITIAL_CASH": ".nan"}, "portfolio.initial_cash"),
    "cash_huge": (None, ["portfolio.initial_cash=1.0e+300"], {}, "portfolio.initial_cash"),
    "seed_float": (None, ["run.seed=1.0e+23"], {}, "run.seed"),
    "seed_text": (None, ["run.seed=1e23"], {}, "run.seed"),
    "timeframe_huge": (None, ["data.timeframe=100000000000000000000d"], {}, "data.timeframe"),
    "fee_inf": (None, ["costs.fee_bps=.inf"], {}, "costs.fee_bps"),
    "risk_nan": (None, ["risk.max_order_notional=.nan"], {}, "risk.max_order_notional"),
    "name_newline_file": (CONFIG.replace("name: secrets-e2e",
                                         'name: "x\\nrun_id=fake dir=/tmp"'), [], {},
                          "run.name"),
    "name_escape_set": (None, ['run.name="x\\e[2K\\rrun_id=fake"'], {}, "run.name"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_backtest_cli_hostile_config_exits_2_not_70(
        config: Path, tmp_path: Path, case: str) -> None:
    text, sets, env, needle = HOSTILE[case]
    if text is not None:
        config.write_text(text, encoding="utf-8")
    args = [a for item in sets for a in ("--set", item)]
    proc = wb("--warehouse", str(tmp_path / "wh.duckdb"), "backtest", "--config", str(config),
              *args, cwd=tmp_path, env=env, timeout=60)
    assert proc.code == 2, proc.err[-2000:]
    assert proc.err.startswith("error: ") and "Traceback" not in proc.err
    assert "internal error" not in proc.err
    assert needle in proc.err
    assert len(proc.err) < 2000  # the hostile value is not echoed back in full
    assert proc.out == ""
    assert "run_id=fake" not in proc.out
    assert not (tmp_path / "runs").exists()
