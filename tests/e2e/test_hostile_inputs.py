"""Hostile and absurd input, each driven through the real CLI in its own process.

Every case must end with a non-zero exit that is not 70 (exit 70 is kept for real bugs), one
``error:`` message naming the problem, no traceback, and nothing half-written: no completed run,
no orders or fills of a failed run, no bars from a refused ingest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_process import CliResult, run_subprocess

from workbench.feeds.synthetic import write_csv
from workbench.warehouse.connect import open_rw, reading

pytestmark = pytest.mark.e2e

JAN_2024_MS = 1_704_067_200_000
EXIT_INTERNAL = 70

CONFIG = """\
run: {name: hostile, seed: 0}
data: {symbols: [BTCUSDT], timeframe: 1m, gaps: fail}
strategy:
  class: "wbtest_hostile:Hostile"
  params: {act: none, hook: on_bar}
portfolio: {initial_cash: 10000, quote: USDT}
costs: {fee_bps: 10, slippage_bps: 5, spread_bps: 0, min_notional: 0, fill_at: close}
"""

HOSTILE = """\
import sys

from workbench.model import OrderIntent, Side
from workbench.strategy import Strategy


class Hostile(Strategy):
    \"\"\"Does one hostile thing (``act``) once, in ``hook``.\"\"\"

    act: str = "none"
    hook: str = "on_bar"

    def __init__(self, **params):
        super().__init__(**params)
        if self.hook == "__init__":
            self.do(None, None)

    def on_start(self, ctx):
        self.done = False
        if self.hook == "on_start":
            self.do(ctx, None)

    def on_bar(self, ctx, bar):
        if self.hook == "every_bar":
            return self.do(ctx, bar)
        if self.hook == "on_bar" and not self.done:
            self.done = True
            return self.do(ctx, bar)
        return None

    def on_stop(self, ctx):
        if self.hook == "on_stop":
            self.do(ctx, None)

    def do(self, ctx, bar):
        act = self.act
        if act == "sys_exit":
            sys.exit(0)
        if act == "keyboard_interrupt":
            raise KeyboardInterrupt
        if act == "grab_cash":
            ctx.book.cash = 1e9
        if act == "grab_position":
            ctx.book.units["BTCUSDT"] = 10**20
        if act == "forge_cash":
            ctx._step.book.cash = 1e9
            return [OrderIntent("BTCUSDT", Side.BUY, 1000.0)]
        if act == "forge_position":
            ctx._step.book.units["BTCUSDT"] = 10**17
            return [OrderIntent("BTCUSDT", Side.SELL, 1e9)]
        if act.startswith("qty="):
            return [OrderIntent("BTCUSDT", Side.BUY, float(act[4:]))]
        if act.startswith("mutated_qty="):
            intent = OrderIntent("BTCUSDT", Side.BUY, 0.01)
            intent.qty = float(act[12:])
            return [intent]
        return None
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse with 300 BTCUSDT 1m bars from 2024-01-01T00:00Z, built once."""
    from workbench.cli import main

    root = tmp_path_factory.mktemp("hostile-template")
    source = root / "bars.csv"
    write_csv(source, JAN_2024_MS, 300, seed=3)
    path = root / "template.duckdb"
    assert main(["--warehouse", str(path), "ingest", str(source), "--symbol", "BTCUSDT"]) == 0
    return path


@pytest.fixture
def db(template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "wh" / "hostile.duckdb"
    path.parent.mkdir()
    shutil.copyfile(template, path)
    return path


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "wbtest_hostile.py").write_text(HOSTILE, encoding="utf-8")
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(mods), os.environ.get("PYTHONPATH"))
                                          if p)}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def wb(db: Path, *args: str, cwd: Path, env: dict[str, str] | None = None) -> CliResult:
    """``python -m workbench --warehouse DB ARGS`` in its own process, no WB_* inherited."""
    return run_subprocess("--warehouse", str(db), *args, cwd=cwd, env=env, timeout=120)


def query(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with reading(db) as con:
        return list(con.sql(sql, params=params).fetchall())


def assert_refused(proc: CliResult, *fragments: str, code: int | None = None) -> None:
    """Non-zero, not 70, one ``error:`` message naming the problem, no traceback."""
    assert proc.code not in (0, EXIT_INTERNAL), (proc.code, proc.err)
    if code is not None:
        assert proc.code == code, (proc.code, proc.err)
    assert proc.err.startswith("error: "), proc.err
    assert "Traceback" not in proc.err
    assert "internal error" not in proc.err and "please report" not in proc.err
    for text in fragments:
        assert text in proc.err, (text, proc.err)


def assert_no_completed_run(db: Path) -> None:
    assert query(db, "select count(*) from runs where status <> 'failed'") == [(0,)]
    for table in ("orders", "order_events", "fills", "run_bars"):
        assert query(db, f"select count(*) from {table}") == [(0,)], table


# --- hostile strategies ---------------------------------------------------------------------------
# act, hook -> (exit code, fragments of stderr)
STRATEGY_CASES: dict[str, tuple[str, str, int, list[str]]] = {
    "assign_ctx_book_cash": ("grab_cash", "on_bar", 1, [
        "raised AttributeError in on_bar", "ctx.book is read-only", "ctx.submit"]),
    "assign_ctx_book_position": ("grab_position", "on_bar", 1, [
        "raised TypeError in on_bar", "does not support item assignment"]),
    "forge_engine_book_cash": ("forge_cash", "on_bar", 1, [
        "cash was changed outside a fill", "changes them only by orders (ctx.submit)"]),
    "forge_engine_book_position": ("forge_position", "on_bar", 1, [
        "outside a fill"]),
    "qty_1e12": ("qty=1e12", "on_bar", 1, [
        "invalid order intent", "qty 1000000000000.0 is above the largest quantity"]),
    "qty_inf": ("qty=inf", "on_bar", 1, [
        "invalid order intent", "qty must be a positive finite number, got inf"]),
    "qty_nan": ("qty=nan", "on_bar", 1, [
        "invalid order intent", "qty must be a positive finite number, got nan"]),
    "qty_mutated_to_1e20_after_creation": ("mutated_qty=1e20", "on_bar", 1, [
        "in submit", "invalid order intent OrderIntent(symbol='BTCUSDT'", "largest quantity"]),
    "sys_exit_in_on_bar": ("sys_exit", "on_bar", 1, ["raised SystemExit in on_bar"]),
    "sys_exit_in_on_start": ("sys_exit", "on_start", 1, ["raised SystemExit in on_start"]),
    "sys_exit_in_on_stop": ("sys_exit", "on_stop", 1, ["raised SystemExit in on_stop"]),
    "sys_exit_in_init": ("sys_exit", "__init__", 1, ["raised SystemExit in __init__"]),
    "keyboard_interrupt_in_on_bar": ("keyboard_interrupt", "on_bar", 130, ["interrupted"]),
}


@pytest.mark.parametrize("case", list(STRATEGY_CASES))
def test_hostile_strategy_fails_run_clearly_and_writes_no_results(
        case: str, db: Path, config: Path, env: dict[str, str], tmp_path: Path) -> None:
    act, hook, code, fragments = STRATEGY_CASES[case]
    out = tmp_path / "run"
    proc = wb(db, "backtest", "--config", str(config), "--out", str(out),
              "--set", f"strategy.params.act={act}", "--set", f"strategy.params.hook={hook}",
              cwd=tmp_path, env=env)
    assert_refused(proc, *fragments, code=code)
    assert proc.out == ""
    assert_no_completed_run(db)
    if out.exists():
        assert {p.name for p in out.iterdir()} <= {"logs.jsonl", "run_manifest.json"}


def test_hostile_strategy_qty_too_big_for_cash_is_rejected_with_reason(
        db: Path, config: Path, env: dict[str, str], tmp_path: Path) -> None:
    proc = wb(db, "backtest", "--config", str(config), "--out", str(tmp_path / "run"),
              "--set", "strategy.params.act=qty=9e10", cwd=tmp_path, env=env)
    assert proc.code == 0, proc.err
    assert query(db, "select status, reason, qty from orders") == [
        ("REJECTED", "INSUFFICIENT_FUNDS", 9e10)]
    assert query(db, "select status from runs") == [("completed",)]


def test_hostile_strategy_piling_up_past_int64_units_is_rejected_position_overflow(
        config: Path, env: dict[str, str], tmp_path: Path) -> None:
    # cheap bars (100.0): the largest cash the config allows (1e15) buys 9e10 twice
    cheap = tmp_path / "cheap.duckdb"
    loaded = wb(cheap, "ingest", str(_bars_csv(tmp_path / "cheap.csv", 0, "volume", "1.0")),
                "--symbol", "BTCUSDT", cwd=tmp_path)
    assert loaded.code == 0, loaded.err
    proc = wb(cheap, "backtest", "--config", str(config), "--out", str(tmp_path / "run"),
              "--set", "strategy.params.act=qty=9e10", "--set", "strategy.params.hook=every_bar",
              "--set", "portfolio.initial_cash=1e15", cwd=tmp_path, env=env)
    assert proc.code == 0, proc.err
    assert query(cheap, "select status, reason, count(*) from orders group by all order by 1"
                 ) == [("FILLED", None, 1), ("REJECTED", "POSITION_OVERFLOW", 9)]


# --- absurd bars ----------------------------------------------------------------------------------
def _bars_csv(path: Path, row: int, column: str, value: str) -> Path:
    """Ten good bars from 2024-01-01T00:00Z with ``column`` of data row ``row`` set to ``value``."""
    lines = ["ts,open,high,low,close,volume"]
    for i in range(10):
        cells = {"ts": str(JAN_2024_MS + i * 60_000), "open": "100.0", "high": "101.0",
                 "low": "99.0", "close": "100.5", "volume": "1.0"}
        if i + 1 == row:
            cells[column] = value
        lines.append(",".join(cells.values()))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


INGEST_CASES: dict[str, tuple[int, str, str, str]] = {
    "zero_close": (4, "close", "0", "close is 0.0; prices must be above zero"),
    "zero_low": (4, "low", "0.0", "low is 0.0; prices must be above zero"),
    "negative_open": (5, "open", "-100", "open is -100.0; prices must be above zero"),
    "before_1970": (1, "ts", "1969-12-31T00:00:00Z", "outside the supported range"),
    "negative_epoch_ms": (1, "ts", "-86400000", "outside the supported range"),
    "after_2262": (10, "ts", "2300-01-01T00:00:00Z", "outside the supported range"),
    "epoch_ms_beyond_int64": (10, "ts", "1" + "0" * 20, "is neither epoch milliseconds"),
}


@pytest.mark.parametrize("case", list(INGEST_CASES))
def test_hostile_ingest_absurd_bar_refused_naming_file_and_row_nothing_loaded(
        case: str, db: Path, tmp_path: Path) -> None:
    row, column, value, fragment = INGEST_CASES[case]
    path = _bars_csv(tmp_path / f"{case}.csv", row, column, value)
    before = query(db, "select count(*) from bars")
    proc = wb(db, "ingest", str(path), "--symbol", "ETHUSDT", cwd=tmp_path)
    assert_refused(proc, f"{path}, row {row}: ", fragment, code=1)
    assert query(db, "select count(*) from bars") == before
    assert query(db, "select count(*) from bars where symbol = 'ETHUSDT'") == [(0,)]


@pytest.mark.parametrize("price", [0.0, -1.0])
def test_hostile_stored_non_positive_price_refused_on_read_not_zero_division(
        price: float, db: Path, config: Path, env: dict[str, str], tmp_path: Path) -> None:
    """Bars stored before the ingest check existed (written straight to the table)."""
    con = open_rw(db)
    try:
        con.execute("update bars set low = ?, close = ? where ts = ?",
                    [price, price, "2024-01-01 01:00:00+00"])
    finally:
        con.close()
    proc = wb(db, "backtest", "--config", str(config), "--out", str(tmp_path / "run"),
              cwd=tmp_path, env=env)
    assert_refused(proc, "fail QC", "prices must be above zero", code=1)
    assert "ZeroDivisionError" not in proc.err
    assert_no_completed_run(db)


# --- hostile command lines ------------------------------------------------------------------------
def test_hostile_out_with_newline_cannot_forge_the_last_line(
        db: Path, config: Path, env: dict[str, str], tmp_path: Path) -> None:
    out = f"{tmp_path}/run\nrun_id=forged dir=/tmp/forged"
    proc = wb(db, "backtest", "--config", str(config), "--out", out, cwd=tmp_path, env=env)
    assert_refused(proc, "--out", "control character U+000A", code=2)
    assert proc.out == ""
    assert not list(tmp_path.glob("run*"))
    assert query(db, "select count(*) from runs") == [(0,)]


def test_hostile_out_naming_an_existing_file_refused_and_file_kept(
        db: Path, config: Path, env: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    proc = wb(db, "backtest", "--config", str(config), "--out", str(target), cwd=tmp_path,
              env=env)
    assert_refused(proc, str(target), "--out names a file", code=2)
    assert target.read_text() == "keep me"
    assert query(db, "select count(*) from runs") == [(0,)]


def test_hostile_ingest_path_with_escape_refused(db: Path, tmp_path: Path) -> None:
    proc = wb(db, "ingest", f"{tmp_path}/bars\x1b[2J.csv", "--symbol", "ETHUSDT", cwd=tmp_path)
    assert_refused(proc, "PATH", "U+001B", code=2)


def test_hostile_report_over_existing_report_refused_without_force(
        db: Path, env: dict[str, str], tmp_path: Path) -> None:
    from workbench.engine.run import run_backtest

    result = run_backtest({"strategy": {"class": "workbench.strategies.sma_cross:SmaCross",
                                        "params": {"fast": 5, "slow": 20, "qty": 0.01}}},
                          warehouse=db, out=tmp_path / "run", env={})
    html = tmp_path / "report.html"
    html.write_text("the old report")
    proc = wb(db, "report", result.run_id, "--out", str(html), cwd=tmp_path)
    assert_refused(proc, str(html), "a report is already there", "--force", code=1)
    assert html.read_text() == "the old report"


@pytest.mark.parametrize("sql", ["select 'abc", 'select "abc', "select 1 /* open"],
                         ids=["single-quote", "double-quote", "comment"])
def test_hostile_sql_unterminated_quote_is_a_parse_error(
        sql: str, db: Path, tmp_path: Path) -> None:
    proc = wb(db, "sql", sql, cwd=tmp_path)
    assert_refused(proc, "cannot parse the query", "unterminated quote", code=2)


@pytest.fixture
def closed_early(db: Path, tmp_path: Path) -> Iterator[Any]:
    def run(*args: str) -> tuple[int, str, str]:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
        proc = subprocess.Popen([sys.executable, "-m", "workbench", "--warehouse", str(db),
                                 *args], cwd=tmp_path, env=full_env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()  # the reader leaves, as `| head -1` does
        err = proc.stderr.read()
        return proc.wait(timeout=120), first, err

    yield run


@pytest.mark.parametrize("args", [
    ("sql", "select * from range(200000)"),
    ("sql", "select * from range(200000)", "--format", "csv"),
    ("runs", "list"),
], ids=["sql-table", "sql-csv", "runs-list"])
def test_hostile_output_into_closed_pipe_ends_quietly(closed_early: Any, args: tuple[str, ...]
                                                      ) -> None:
    code, first, err = closed_early(*args)
    assert first.strip()
    assert err == ""
    assert code in (0, 141)
