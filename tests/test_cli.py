"""``workbench backtest | sql | views | runs``, run in-process against a test warehouse.

Process-boundary behaviour (exit codes of a real process, stderr without tracebacks,
determinism across processes) is in tests/e2e/.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from small_config import sma_config

from workbench.warehouse.connect import reading

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
LAST_LINE = re.compile(r"^run_id=(\S+) dir=(.+)$")

CONFIG = sma_config('cli-test', seed=1, costs='fee_bps: 10, slippage_bps: 4, spread_bps: 1')

BUY_FIRST = """\
from workbench.model import OrderIntent, Side
from workbench.strategy import Strategy


class BuyFirst(Strategy):
    qty: float = 0.01

    def on_start(self, ctx):
        self.done = False

    def on_bar(self, ctx, bar):
        if self.done:
            return None
        self.done = True
        return [OrderIntent(bar.symbol, Side.BUY, self.qty)]
"""

Cli = Callable[..., Any]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default run directories (runs/<run_id>) land in the test's own directory."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bars_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse holding 600 one-minute BTCUSDT bars from 2024-01-01T00:00Z, built once."""
    from workbench.cli import main
    from workbench.feeds.synthetic import write_csv

    root = tmp_path_factory.mktemp("template")
    source = root / "bars.csv"
    write_csv(source, 1_704_067_200_000, 600, seed=7)
    path = root / "template.duckdb"
    assert main(["--warehouse", str(path), "ingest", str(source), "--symbol", "BTCUSDT"]) == 0
    return path


@pytest.fixture
def bars(warehouse: Path, bars_template: Path) -> Path:
    """The test's warehouse, starting as a copy of the ingested template."""
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(bars_template, warehouse)
    return warehouse


def backtest(cli: Cli, config: Path, out: Path, *args: str) -> Any:
    return cli("backtest", "--config", str(config), "--out", str(out), *args)


def query(warehouse: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with reading(warehouse) as con:
        return list(con.sql(sql, params=params).fetchall())


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def last_line(out: str) -> re.Match[str]:
    match = LAST_LINE.match(out.rstrip("\n").splitlines()[-1])
    assert match, out
    return match


def drop_rows(path: Path, stamps: list[str]) -> Path:
    lines = [ln for ln in path.read_text().splitlines(keepends=True)
             if not any(ln.startswith(s) for s in stamps)]
    path.write_text("".join(lines))
    return path


# --- backtest: output and run directory ---------------------------------------------------------
def test_backtest_prints_run_id_and_out_dir_as_last_line(
        cli: Cli, bars: Path, config: Path, tmp_path: Path, warehouse: Path) -> None:
    out = tmp_path / "run1"
    result = backtest(cli, config, out)
    assert result.code == 0, result.err
    match = last_line(result.out)
    run_id, run_dir = match.groups()
    assert Path(run_dir) == out
    assert query(warehouse, "select status, run_dir from runs where run_id = ?", [run_id]) == [
        ("completed", str(out))]
    assert json.loads((out / "run_manifest.json").read_text())["run_id"] == run_id


def test_backtest_without_out_writes_runs_slash_run_id(
        cli: Cli, bars: Path, config: Path, tmp_path: Path) -> None:
    result = cli("backtest", "--config", str(config))
    assert result.code == 0, result.err
    run_id, run_dir = last_line(result.out).groups()
    assert Path(run_dir) == Path("runs") / run_id
    assert (tmp_path / "runs" / run_id / "run_manifest.json").is_file()


def test_backtest_relative_out_is_stored_absolute_in_runs(
        cli: Cli, bars: Path, config: Path, tmp_path: Path, warehouse: Path) -> None:
    """runs.run_dir is read from anywhere (notebooks, another shell): a path relative to the
    directory the backtest ran in would point nowhere."""
    result = cli("backtest", "--config", str(config), "--out", "./rel/../mine")
    assert result.code == 0, result.err
    run_id, run_dir = last_line(result.out).groups()
    assert run_dir == "rel/../mine"  # printed as the user wrote it
    assert query(warehouse, "select run_dir from runs where run_id = ?", [run_id]) == [
        (str(tmp_path / "mine"),)]
    default = cli("backtest", "--config", str(config))
    default_id = last_line(default.out).groups()[0]
    assert query(warehouse, "select run_dir from runs where run_id = ?", [default_id]) == [
        (str(tmp_path / "runs" / default_id),)]


def test_backtest_summary_line_counts_every_symbols_bars(
        cli: Cli, bars: Path, config: Path, tmp_path: Path, synth_csv: Any) -> None:
    """Two symbols of 600 bars said "600 bars" (the distinct bar times of the equity curve)
    while the run read 1,200 (runs.bar_count, the manifest)."""
    eth = synth_csv(count=600, seed=3, name="eth.csv", price=3_000.0)
    assert cli("ingest", str(eth), "--symbol", "ETHUSDT").code == 0
    result = cli("backtest", "--config", str(config), "--out", str(tmp_path / "two"),
                 "--set", "data.symbols=[BTCUSDT, ETHUSDT]")
    assert result.code == 0, result.err
    assert ": 1200 bars (2 symbols), trades" in result.out


def test_backtest_json_prints_one_object_with_run_id_dir_and_headline_metrics(
        cli: Cli, bars: Path, config: Path, tmp_path: Path) -> None:
    out = tmp_path / "run1"
    result = backtest(cli, config, out, "--json")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    for key in ("run_id", "dir", "trades", "total_return_pct", "max_drawdown_pct", "sharpe"):
        assert key in doc
    assert doc["dir"] == str(out)
    assert doc["run_id"] == json.loads((out / "run_manifest.json").read_text())["run_id"]
    assert doc["trades"] == len(read_csv(out / "trades.csv"))


def test_backtest_json_metrics_agree_with_equity_csv(
        cli: Cli, bars: Path, config: Path, tmp_path: Path) -> None:
    """The warehouse views' headline numbers describe the same run as the engine's files."""
    out = tmp_path / "run1"
    doc = json.loads(backtest(cli, config, out, "--json").out)
    equity = [float(r["equity"]) for r in read_csv(out / "equity.csv")]
    assert doc["bars"] == len(equity) == 600
    assert doc["final_equity"] == pytest.approx(equity[-1], rel=1e-12)
    assert doc["total_return_pct"] == pytest.approx((equity[-1] / 10_000 - 1) * 100, rel=1e-9)
    peak, worst = 10_000.0, 0.0
    for e in equity:
        peak = max(peak, e)
        worst = min(worst, (e / peak - 1) * 100)
    assert doc["max_drawdown_pct"] == pytest.approx(worst, rel=1e-9)


def test_backtest_json_timestamps_are_iso_utc_with_milliseconds(
        cli: Cli, bars: Path, config: Path, tmp_path: Path) -> None:
    doc = json.loads(backtest(cli, config, tmp_path / "run1", "--json").out)
    assert ISO_MS.match(doc["first_ts"]), doc["first_ts"]
    assert ISO_MS.match(doc["last_ts"]), doc["last_ts"]


def test_backtest_run_dir_holds_manifest_four_csvs_and_logs(
        cli: Cli, bars: Path, config: Path, tmp_path: Path) -> None:
    out = tmp_path / "run1"
    assert backtest(cli, config, out).code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "equity.csv", "fills.csv", "logs.jsonl", "orders.csv", "run_manifest.json", "trades.csv"]
    headers = {name: (out / name).read_text().splitlines()[0] for name in
               ("trades.csv", "orders.csv", "fills.csv", "equity.csv")}
    assert headers == {
        "trades.csv": "symbol,side,qty,entry_ts,entry_price,exit_ts,exit_price,fees,pnl,"
                      "return_pct",
        "orders.csv": "order_seq,ts,symbol,side,type,qty,limit_price,status,reason",
        "fills.csv": "order_seq,ts,symbol,side,qty,price,fee",
        "equity.csv": "ts,cash,position_value,equity",
    }


def test_backtest_manifest_records_provenance(
        cli: Cli, bars: Path, config: Path, tmp_path: Path, warehouse: Path) -> None:
    out = tmp_path / "run1"
    run_id = last_line(backtest(cli, config, out).out).group(1)
    m = json.loads((out / "run_manifest.json").read_text())
    assert m["run_id"] == run_id
    assert m["status"] == "completed"
    assert m["config"]["strategy"]["params"] == {"fast": 5, "slow": 20, "qty": 0.1}
    assert m["config_hash"] == hashlib.sha256(json.dumps(
        m["config"], sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", m["data_hash"])
    assert m["git_sha"] == "unknown" or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", m["git_sha"])
    for package in ("workbench", "duckdb", "sqlglot", "pyarrow", "numpy", "pydantic", "python",
                    "os"):
        assert m["versions"][package], package
    assert m["seed"] == 1
    assert m["gap_policy"] == "fail"
    assert set(m["view_versions"]) >= {"rpt.performance", "acct.equity_curve"}
    assert all(v["version"] >= 1 for v in m["view_versions"].values())
    assert ISO_MS.match(m["started_at"]) and ISO_MS.match(m["ended_at"])
    assert m["started_at"] <= m["ended_at"]
    row = query(warehouse, "select config_hash, data_hash, git_sha from runs where run_id = ?",
                [run_id])
    assert row == [(m["config_hash"], m["data_hash"], m["git_sha"])]


def test_backtest_csv_timestamps_are_iso_utc_with_milliseconds(
        cli: Cli, bars: Path, config: Path, tmp_path: Path) -> None:
    out = tmp_path / "run1"
    assert backtest(cli, config, out).code == 0
    columns = {"trades.csv": ("entry_ts", "exit_ts"), "orders.csv": ("ts",),
               "fills.csv": ("ts",), "equity.csv": ("ts",)}
    for name, cols in columns.items():
        rows = read_csv(out / name)
        assert rows, name
        for row in rows:
            for col in cols:
                assert ISO_MS.match(row[col]), (name, col, row[col])


def test_backtest_csv_floats_are_shortest_round_trip_repr(
        cli: Cli, bars: Path, config: Path, tmp_path: Path) -> None:
    out = tmp_path / "run1"
    assert backtest(cli, config, out).code == 0
    floats = {"trades.csv": ("qty", "entry_price", "exit_price", "fees", "pnl", "return_pct"),
              "fills.csv": ("qty", "price", "fee"),
              "equity.csv": ("cash", "position_value", "equity")}
    for name, cols in floats.items():
        for row in read_csv(out / name):
            for col in cols:
                assert repr(float(row[col])) == row[col], (name, col, row[col])


def test_backtest_trades_return_pct_is_percent_of_entry_notional(
        cli: Cli, bars: Path, config: Path, tmp_path: Path) -> None:
    out = tmp_path / "run1"
    assert backtest(cli, config, out).code == 0
    trades = read_csv(out / "trades.csv")
    assert trades
    for t in trades:
        notional = float(t["qty"]) * float(t["entry_price"])
        assert float(t["return_pct"]) == pytest.approx(float(t["pnl"]) / notional * 100,
                                                       rel=1e-9)


def test_backtest_equity_is_cash_plus_position_value(
        cli: Cli, bars: Path, config: Path, tmp_path: Path) -> None:
    out = tmp_path / "run1"
    assert backtest(cli, config, out).code == 0
    rows = read_csv(out / "equity.csv")
    assert len(rows) == 600
    assert float(rows[0]["cash"]) == 10_000.0
    for r in rows:
        assert float(r["equity"]) == float(r["cash"]) + float(r["position_value"])


def test_backtest_logs_jsonl_records_have_the_five_fields(
        cli: Cli, bars: Path, config: Path, tmp_path: Path) -> None:
    out = tmp_path / "run1"
    assert backtest(cli, config, out).code == 0
    records = [json.loads(ln) for ln in (out / "logs.jsonl").read_text().splitlines()]
    assert records
    for r in records:
        assert set(r) == {"ts", "level", "component", "msg", "context"}
        assert ISO_MS.match(r["ts"])
        assert isinstance(r["context"], dict)
    assert any("completed" in r["msg"] for r in records)


def test_backtest_order_and_fill_ts_is_bar_ts_plus_timeframe(
        cli: Cli, bars: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        warehouse: Path) -> None:
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "wbtest_buy_first.py").write_text(BUY_FIRST)
    monkeypatch.syspath_prepend(str(mods))
    cfg = tmp_path / "buy.yaml"
    cfg.write_text('strategy: {class: "wbtest_buy_first:BuyFirst", params: {qty: 0.01}}\n')
    out = tmp_path / "run1"
    result = backtest(cli, cfg, out)
    assert result.code == 0, result.err
    first_bar = read_csv(out / "equity.csv")[0]["ts"]
    assert first_bar == "2024-01-01T00:00:00.000Z"
    orders, fills = read_csv(out / "orders.csv"), read_csv(out / "fills.csv")
    assert [(o["order_seq"], o["ts"], o["side"], o["status"]) for o in orders] == [
        ("1", "2024-01-01T00:01:00.000Z", "BUY", "FILLED")]
    assert [(f["order_seq"], f["ts"]) for f in fills] == [("1", "2024-01-01T00:01:00.000Z")]
    run_id = last_line(result.out).group(1)
    assert query(warehouse, "select strftime(bar_ts, '%H:%M'), strftime(ts, '%H:%M') "
                            "from orders where run_id = ?", [run_id]) == [("00:00", "00:01")]


# --- backtest: flags and layers ------------------------------------------------------------------
def test_backtest_from_to_window_first_equity_is_from_last_before_to(
        cli: Cli, bars: Path, config: Path, tmp_path: Path, warehouse: Path) -> None:
    out = tmp_path / "run1"
    result = backtest(cli, config, out, "--from", "2024-01-01T01:00:00Z",
                      "--to", "2024-01-01T03:00:00Z")
    assert result.code == 0, result.err
    stamps = [r["ts"] for r in read_csv(out / "equity.csv")]
    assert stamps[0] == "2024-01-01T01:00:00.000Z"   # --from is inclusive
    assert stamps[-1] == "2024-01-01T02:59:00.000Z"  # --to is exclusive
    assert len(stamps) == 120
    m = json.loads((out / "run_manifest.json").read_text())
    assert (m["first_bar_ts"], m["last_bar_ts"], m["bars"]) == (stamps[0], stamps[-1], 120)
    run_id = last_line(result.out).group(1)
    assert query(warehouse, "select bar_count from runs where run_id = ?", [run_id]) == [(120,)]


def test_backtest_from_to_flags_override_config_start_end(
        cli: Cli, bars: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "window.yaml"
    cfg.write_text(CONFIG.replace("gaps: fail}", "gaps: fail, start: 2024-01-01T00:00:00Z, "
                                                 "end: 2024-01-01T09:00:00Z}"))
    out = tmp_path / "run1"
    assert backtest(cli, cfg, out, "--from", "2024-01-01T02:00", "--to", "2024-01-01T02:30"
                    ).code == 0
    stamps = [r["ts"] for r in read_csv(out / "equity.csv")]
    assert (stamps[0], stamps[-1], len(stamps)) == (
        "2024-01-01T02:00:00.000Z", "2024-01-01T02:29:00.000Z", 30)


def test_backtest_layers_yaml_then_env_then_set_reach_the_run(
        cli: Cli, bars: Path, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        warehouse: Path) -> None:
    monkeypatch.setenv("WB_COSTS__FEE_BPS", "7")
    monkeypatch.setenv("WB_COSTS__SLIPPAGE_BPS", "3")
    out = tmp_path / "run1"
    result = backtest(cli, config, out, "--set", "costs.fee_bps=2")
    assert result.code == 0, result.err
    costs = json.loads((out / "run_manifest.json").read_text())["config"]["costs"]
    assert (costs["fee_bps"], costs["slippage_bps"], costs["spread_bps"]) == (2.0, 3.0, 1.0)
    run_id = last_line(result.out).group(1)
    [(stored,)] = query(warehouse, "select config_json from runs where run_id = ?", [run_id])
    assert json.loads(stored)["costs"] == costs
    fills = read_csv(out / "fills.csv")
    assert fills
    for f in fills:  # the effective fee rate, not just the recorded one
        notional = float(f["qty"]) * float(f["price"])
        assert float(f["fee"]) == pytest.approx(notional * 2 / 10_000, rel=1e-9)


def test_backtest_env_prefix_flag_selects_environment_overrides(
        cli: Cli, bars: Path, config: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WB_COSTS__FEE_BPS", "9")
    monkeypatch.setenv("XY_COSTS__FEE_BPS", "6")
    out = tmp_path / "run1"
    assert backtest(cli, config, out, "--env-prefix", "XY_").code == 0
    assert json.loads((out / "run_manifest.json").read_text())["config"]["costs"]["fee_bps"] == 6


def test_backtest_env_prefix_flag_selects_warehouse_variable(
        bars: Path, config: Path, tmp_path: Path, warehouse: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.cli import main

    monkeypatch.setenv("XY_WAREHOUSE", str(warehouse))  # holds the ingested bars
    code = main(["--env-prefix", "XY_", "backtest", "--config", str(config),
                 "--out", str(tmp_path / "run1")])
    assert code == 0, capsys.readouterr().err
    assert not (tmp_path / "warehouse").exists()


def test_sql_env_prefix_flag_selects_warehouse_variable(
        bars: Path, warehouse: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.cli import main

    monkeypatch.setenv("XY_WAREHOUSE", str(warehouse))
    capsys.readouterr()
    assert main(["--env-prefix", "XY_", "sql", "select count(*) as n from bars",
                 "--format", "csv"]) == 0
    assert capsys.readouterr().out == "n\n600\n"


def test_backtest_out_dir_with_files_refused_and_left_alone(
        cli: Cli, bars: Path, config: Path, tmp_path: Path, warehouse: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = backtest(cli, config, out)
    assert result.code != 0
    assert result.err.startswith("error: ")
    assert "--out" in result.err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert query(warehouse, "select count(*) from runs") == [(0,)]


def test_backtest_unknown_strategy_param_fails_fast_without_run_row_or_dir(
        cli: Cli, bars: Path, config: Path, tmp_path: Path, warehouse: Path) -> None:
    out = tmp_path / "run1"
    result = backtest(cli, config, out, "--set", "strategy.params.slwo=30")
    assert result.code == 2
    assert "strategy.params.slwo" in result.err
    assert "did you mean `slow`" in result.err
    assert not out.exists()
    assert query(warehouse, "select count(*) from runs") == [(0,)]


# --- backtest: QC on the read --------------------------------------------------------------------
@pytest.fixture
def gappy_bars(cli: Cli, synth_csv: Callable[..., Path]) -> Path:
    """300 bars with 00:10 and 00:11 (one gap) and 02:00 (another) missing, kept by --gaps none."""
    path = drop_rows(synth_csv(count=300, name="gappy.csv"),
                     ["2024-01-01T00:10:", "2024-01-01T00:11:", "2024-01-01T02:00:"])
    result = cli("ingest", str(path), "--symbol", "BTCUSDT", "--gaps", "none")
    assert result.code == 0, result.err
    return path


def test_backtest_gaps_fail_on_gappy_bars_refused_naming_first_gaps(
        cli: Cli, gappy_bars: Path, config: Path, tmp_path: Path, warehouse: Path) -> None:
    out = tmp_path / "run1"
    result = backtest(cli, config, out)
    assert result.code == 1
    assert result.err.startswith("error: run ")
    assert "gap policy 'fail'" in result.err
    assert "2 missing bars from 2024-01-01T00:10:00.000Z to 2024-01-01T00:11:00.000Z" in result.err
    assert "--gaps forward" in result.err
    [(run_id, status, error)] = query(warehouse, "select run_id, status, error from runs")
    assert status == "failed"
    assert "2024-01-01T00:10:00.000Z" in error
    assert query(warehouse, "select rule, severity, action, strftime(ts, '%H:%M') from qc_events "
                            "where run_id = ? order by ts", [run_id]) == [
        ("gap", "error", "refused", "00:10"), ("gap", "error", "refused", "02:00")]
    for table in ("orders", "order_events", "fills", "run_bars"):
        assert query(warehouse, f"select count(*) from {table}") == [(0,)], table
    assert json.loads((out / "run_manifest.json").read_text())["status"] == "failed"
    assert not list(out.glob("*.csv"))


def test_backtest_gaps_forward_flag_overrides_config_and_fills_the_gaps(
        cli: Cli, gappy_bars: Path, config: Path, tmp_path: Path, warehouse: Path) -> None:
    out = tmp_path / "run1"
    result = backtest(cli, config, out, "--gaps", "forward")
    assert result.code == 0, result.err
    m = json.loads((out / "run_manifest.json").read_text())
    assert m["gap_policy"] == "forward"
    assert m["config"]["data"]["gaps"] == "forward"
    assert m["qc"] == {"gaps": 2, "filled_bars": 3, "findings": 2}
    equity = read_csv(out / "equity.csv")
    assert len(equity) == 300
    assert "2024-01-01T00:10:00.000Z" in {r["ts"] for r in equity}
    run_id = last_line(result.out).group(1)
    assert query(warehouse, "select status, gap_policy from runs where run_id = ?", [run_id]) == [
        ("completed", "forward")]


def test_backtest_gaps_none_keeps_the_gaps(
        cli: Cli, gappy_bars: Path, config: Path, tmp_path: Path) -> None:
    out = tmp_path / "run1"
    assert backtest(cli, config, out, "--gaps", "none").code == 0
    stamps = {r["ts"] for r in read_csv(out / "equity.csv")}
    assert len(stamps) == 297
    assert "2024-01-01T00:10:00.000Z" not in stamps


# --- sql ----------------------------------------------------------------------------------------
def test_sql_csv_format_header_then_rows_with_newlines(cli: Cli, bars: Path) -> None:
    result = cli("sql", "select symbol, ts, close from bars order by ts limit 2",
                 "--format", "csv")
    assert result.code == 0, result.err
    assert "\r" not in result.out
    lines = result.out.split("\n")
    assert lines[0] == "symbol,ts,close"
    assert lines[1].startswith("BTCUSDT,2024-01-01T00:00:00.000Z,")
    assert lines[2].startswith("BTCUSDT,2024-01-01T00:01:00.000Z,")
    assert lines[3:] == [""]


def test_sql_json_format_is_a_list_of_objects(cli: Cli, bars: Path) -> None:
    result = cli("sql", "select symbol, count(*) as n, min(ts) as first from bars group by 1",
                 "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out) == [
        {"symbol": "BTCUSDT", "n": 600, "first": "2024-01-01T00:00:00.000Z"}]


def test_sql_table_format_has_header_rule_rows_and_count(cli: Cli, bars: Path) -> None:
    result = cli("sql", "select symbol, count(*) as n from bars group by 1")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["symbol", "n"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == ["BTCUSDT", "600"]
    assert lines[-1] == "(1 row)"


@pytest.mark.parametrize(("statement", "verb"), [
    ("DELETE FROM bars", "DELETE"),
    ("update bars set close = 0", "UPDATE"),
    ("insert into bars select * from bars", "INSERT"),
    ("drop table bars", "DROP"),
    ("attach 'other.duckdb' as other", "ATTACH"),
    ("copy bars to 'leak.csv'", "COPY"),
    ("pragma database_size", "PRAGMA"),
    ("set threads = 1", "SET"),
    ("select 1; delete from bars", "DELETE"),
])
def test_sql_write_refused_and_warehouse_unchanged(
        cli: Cli, bars: Path, warehouse: Path, tmp_path: Path, statement: str,
        verb: str) -> None:
    before = warehouse.read_bytes()
    result = cli("sql", statement)
    assert result.code == 2
    assert result.out == ""
    assert result.err.startswith(f"error: refused: {verb} is not a read")
    assert warehouse.read_bytes() == before
    assert query(warehouse, "select count(*), sum(close) > 0 from bars") == [(600, True)]
    assert not (tmp_path / "leak.csv").exists()
    assert not (tmp_path / "other.duckdb").exists()


def test_sql_write_refused_before_the_warehouse_is_opened(
        cli: Cli, warehouse: Path) -> None:
    result = cli("sql", "drop table bars")
    assert result.code == 2
    assert "refused: DROP" in result.err
    assert "no warehouse" not in result.err
    assert not warehouse.exists()


def test_sql_opens_read_only_so_a_write_past_the_guard_still_fails(
        cli: Cli, bars: Path, warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import workbench.warehouse.audit as audit

    monkeypatch.setattr(audit, "check_read_only", lambda q: q)
    result = cli("sql", "delete from bars")
    assert result.code != 0
    assert result.err.startswith("error: the query failed")
    assert "read-only" in result.err
    assert query(warehouse, "select count(*) from bars") == [(600,)]


def test_sql_bad_column_reports_query_failure_with_fix(cli: Cli, bars: Path) -> None:
    result = cli("sql", "select no_such_column from bars")
    assert result.code == 1
    assert result.err.startswith("error: the query failed")
    assert "describe <table>" in result.err  # a binder error: the hint names describe


def test_sql_missing_warehouse_says_how_to_create_one(cli: Cli, warehouse: Path) -> None:
    result = cli("sql", "select 1")
    assert result.code == 1
    assert "no warehouse here yet" in result.err
    assert "workbench ingest" in result.err
    assert not warehouse.exists()


# --- views --------------------------------------------------------------------------------------
VIEW_NAMES = {"acct.adjusted_fills",
              "acct.equity_curve", "acct.fifo_lots", "acct.fifo_matches", "acct.positions",
              "rpt.bar_regimes", "rpt.cost_breakdown", "rpt.drawdown", "rpt.live_vs_backtest",
              "rpt.performance", "rpt.performance_by_regime", "rpt.risk_blocks",
              "rpt.round_trips", "rpt.sweep_results", "rpt.walkforward"}


def test_views_list_shows_every_view_locked_ok(cli: Cli) -> None:
    result = cli("views", "list")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split()[:4] == ["name", "version", "fingerprint", "lock"]
    rows = {ln.split()[0]: ln.split() for ln in lines[2:-1]}
    assert set(rows) == VIEW_NAMES
    assert {r[3] for r in rows.values()} == {"ok"}
    assert lines[-1] == f"({len(VIEW_NAMES)} rows)"


def test_views_check_matching_lock_exits_zero(cli: Cli) -> None:
    result = cli("views", "check")
    assert result.code == 0, result.err
    assert result.out == f"{len(VIEW_NAMES)} views match sql/views.lock\n"


@pytest.fixture
def tmp_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of sql/views.lock that the views commands read and write instead of the real one."""
    from workbench.warehouse import views

    real = views.lock_path()
    copy = tmp_path / "views.lock"
    copy.write_bytes(real.read_bytes())
    monkeypatch.setattr(views, "lock_path", lambda: copy)
    return copy


def test_views_check_changed_fingerprint_without_bump_exits_one_naming_view(
        cli: Cli, tmp_lock: Path) -> None:
    doc = json.loads(tmp_lock.read_text())
    doc["views"]["rpt.drawdown"]["fingerprint"] = "0" * 64
    tmp_lock.write_text(json.dumps(doc))
    result = cli("views", "check")
    assert result.code == 1
    assert "rpt.drawdown changed" in result.err
    assert "bump" in result.err
    listed = cli("views", "list").out
    assert re.search(r"^rpt\.drawdown\s+3\s+\w+\s+changed\b", listed, re.M)


def test_views_lock_adds_a_missing_view_then_check_passes(
        cli: Cli, tmp_lock: Path) -> None:
    real = Path(__file__).resolve().parent.parent / "sql" / "views.lock"
    real_before = real.read_bytes()
    doc = json.loads(tmp_lock.read_text())
    del doc["views"]["rpt.performance"]
    tmp_lock.write_text(json.dumps(doc))
    assert cli("views", "check").code == 1
    result = cli("views", "lock")
    assert result.code == 0, result.err
    assert result.out == f"locked {len(VIEW_NAMES)} views in {tmp_lock}\n"
    assert tmp_lock.read_bytes() == real_before
    assert cli("views", "check").code == 0
    assert real.read_bytes() == real_before


def test_views_deploy_creates_views_and_records_versions(cli: Cli, warehouse: Path) -> None:
    result = cli("views", "deploy")
    assert result.code == 0, result.err
    assert result.out == f"deployed {len(VIEW_NAMES)} views to {warehouse}\n"
    deployed = {r[0] for r in query(warehouse, "select name from view_versions")}
    assert deployed == VIEW_NAMES
    assert query(warehouse, "select count(*) from rpt.performance") == [(0,)]


# --- runs ---------------------------------------------------------------------------------------
@pytest.fixture
def two_runs(cli: Cli, bars: Path, config: Path, tmp_path: Path) -> tuple[str, str]:
    """A completed run and a failed one (a symbol without bars)."""
    ok = last_line(backtest(cli, config, tmp_path / "ok").out).group(1)
    bad = backtest(cli, config, tmp_path / "bad", "--set", "data.symbols=[ETHUSDT]")
    assert bad.code == 1
    failed = re.search(r"run (\S+) failed", bad.err)
    assert failed, bad.err
    return ok, failed.group(1)


def test_runs_list_shows_both_runs_with_status_and_headline(
        cli: Cli, two_runs: tuple[str, str]) -> None:
    ok, failed = two_runs
    result = cli("runs", "list", "--format", "csv")
    assert result.code == 0, result.err
    rows = {r["run_id"]: r for r in csv.DictReader(io.StringIO(result.out))}
    assert set(rows) == {ok, failed}
    assert rows[ok]["status"] == "completed"
    assert rows[ok]["bars"] == "600"
    assert int(rows[ok]["trades"]) > 0
    assert rows[failed]["status"] == "failed"
    assert rows[failed]["trades"] == ""
    assert list(rows[ok]) == ["run_id", "mode", "name", "status", "started_at", "bars", "trades",
                              "total_return_pct", "max_drawdown_pct", "sharpe"]


def test_runs_on_a_warehouse_before_migration_002_show_a_pidless_running_row_abandoned(
        cli: Cli, tmp_path: Path, warehouse: Path) -> None:
    """A `running` row without pid/host was left by a job that held the file read-write for
    its whole length; a reader could not open the file while that job lived, so it is a
    ghost: shown as abandoned, and the old warehouse is not touched by reading it."""
    import duckdb

    from workbench.warehouse import migrations

    old_schema = tmp_path / "schema-001"
    old_schema.mkdir()
    for path in migrations.discover():
        if path.version == 1:
            shutil.copy(path.path, old_schema)
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(warehouse))
    try:
        migrations.apply(con, old_schema)
        con.execute("insert into runs (run_id, mode, name, status, started_at) values "
                    "('old-run', 'backtest', 'old', 'running', now())")
    finally:
        con.close()
    listed = cli("runs", "list", "--format", "json")
    assert listed.code == 0, listed.err
    assert [(r["run_id"], r["status"]) for r in json.loads(listed.out)] == [
        ("old-run", "abandoned")]
    shown = cli("runs", "show", "old-run")
    assert shown.code == 0, shown.err
    assert json.loads(shown.out)["status"] == "abandoned"
    assert query(warehouse, "select version from schema_migrations") == [(1,)]
    assert query(warehouse, "select status from runs") == [("running",)]  # read, not written


def test_runs_list_limit_keeps_the_newest(cli: Cli, two_runs: tuple[str, str]) -> None:
    result = cli("runs", "list", "--limit", "1", "--format", "json")
    assert [r["run_id"] for r in json.loads(result.out)] == [two_runs[1]]


def test_runs_show_prints_record_config_and_performance(
        cli: Cli, two_runs: tuple[str, str], tmp_path: Path) -> None:
    ok, _ = two_runs
    result = cli("runs", "show", ok)
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc["run_id"] == ok
    assert doc["status"] == "completed"
    assert doc["config_json"]["strategy"]["params"]["fast"] == 5
    assert doc["run_dir"] == str(tmp_path / "ok")
    perf = doc["performance"]
    assert perf["trades"] == len(read_csv(tmp_path / "ok" / "trades.csv"))
    assert ISO_MS.match(doc["started_at"]) and ISO_MS.match(perf["first_ts"])


def test_runs_show_failed_run_has_error_and_no_performance(
        cli: Cli, two_runs: tuple[str, str]) -> None:
    doc = json.loads(cli("runs", "show", two_runs[1]).out)
    assert doc["status"] == "failed"
    assert "no bars for ETHUSDT" in doc["error"]
    assert "performance" not in doc


def test_runs_show_unknown_id_names_the_closest_ids(
        cli: Cli, two_runs: tuple[str, str]) -> None:
    ok, _ = two_runs
    typo = ok[:-1] + ("0" if ok[-1] != "0" else "1")
    result = cli("runs", "show", typo)
    assert result.code == 1
    assert result.out == ""
    assert result.err.startswith(f"error: no such run: {typo}")
    assert f"closest: {ok}" in result.err
    assert "workbench runs list" in result.err


# --- hostile arguments ---------------------------------------------------------------------------
@pytest.mark.parametrize("char", ["\n", "\r", "\x1b", "\x00", "\u2028", "\u202e"],
                         ids=["newline", "cr", "escape", "nul", "line-separator", "rtl-override"])
def test_backtest_out_with_control_character_refused_exit_2_nothing_written(
        cli: Cli, bars: Path, config: Path, tmp_path: Path, warehouse: Path, char: str) -> None:
    out = f"{tmp_path}/run{char}run_id=forged dir=/tmp/forged"
    result = cli("backtest", "--config", str(config), "--out", out)
    assert result.code == 2
    assert result.out == ""
    assert result.err.startswith("error: --out: --out ")
    assert f"holds the control character U+{ord(char):04X}" in result.err
    assert list(tmp_path.glob("run*")) == []
    assert query(warehouse, "select count(*) from runs") == [(0,)]


def test_backtest_out_naming_existing_file_refused_exit_2_file_untouched(
        cli: Cli, bars: Path, config: Path, tmp_path: Path, warehouse: Path) -> None:
    out = tmp_path / "notes.txt"
    out.write_text("mine")
    result = backtest(cli, config, out)
    assert result.code == 2
    assert f"error: {out}: --out names a file, not a directory" in result.err
    assert out.read_text() == "mine"
    assert query(warehouse, "select count(*) from runs") == [(0,)]


def test_backtest_out_under_a_file_refused_exit_2(
        cli: Cli, bars: Path, config: Path, tmp_path: Path, warehouse: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = backtest(cli, config, tmp_path / "notes.txt" / "run")
    assert result.code == 2
    assert "cannot create the run directory" in result.err
    assert query(warehouse, "select count(*) from runs") == [(0,)]


@pytest.mark.parametrize("out", [".", "sub/..", "deeper/.."])
def test_backtest_out_naming_the_working_directory_refused_exit_2_not_internal(
        cli: Cli, bars: Path, config: Path, tmp_path: Path, warehouse: Path,
        monkeypatch: pytest.MonkeyPatch, out: str) -> None:
    empty = tmp_path / "empty"  # an empty working directory: `--out .` was an internal error
    (empty / "sub").mkdir(parents=True)
    (empty / "deeper").mkdir()
    monkeypatch.chdir(empty / ("sub" if out == "deeper/.." else "."))
    if out == "deeper/..":
        (empty / "sub" / "deeper").mkdir()
    result = cli("backtest", "--config", str(config), "--out", out)
    assert result.code == 2, result.err
    assert "--out names the working directory" in result.err
    assert not list(tmp_path.glob("*.partial")) and not list(empty.rglob("*.partial"))
    assert query(warehouse, "select count(*) from runs") == [(0,)]


def test_backtest_out_naming_a_link_to_an_empty_directory_fills_that_directory(
        cli: Cli, bars: Path, config: Path, tmp_path: Path) -> None:
    """The run used to commit, then fail to rename its .partial over the link, leaving its
    files in `link.partial` and an error saying the run directory could not be written."""
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    result = backtest(cli, config, tmp_path / "link")
    assert result.code == 0, result.err
    assert (tmp_path / "link").is_symlink()
    assert (tmp_path / "link" / "run_manifest.json").is_file()
    assert not list(tmp_path.glob("*.partial"))


def test_backtest_on_a_missing_warehouse_fails_without_creating_one(
        cli: Cli, config: Path, tmp_path: Path) -> None:
    """Recording the failure created the mistyped file (then `no bars` on the next run)."""
    missing = tmp_path / "typo" / "wh.duckb"
    result = cli("--warehouse", str(missing), "backtest", "--config", str(config),
                 "--out", str(tmp_path / "run"))
    assert result.code == 1, result.err
    assert "no warehouse here yet" in result.err
    assert not missing.exists()
    manifest = json.loads((tmp_path / "run" / "run_manifest.json").read_text())
    assert manifest["status"] == "failed" and "no warehouse here yet" in manifest["error"]


def test_backtest_staging_name_taken_by_a_file_refused_exit_2(
        cli: Cli, bars: Path, config: Path, tmp_path: Path) -> None:
    (tmp_path / "run.partial").write_text("mine")
    result = backtest(cli, config, tmp_path / "run")
    assert result.code == 2, result.err
    assert "cannot create the run directory" in result.err
    assert (tmp_path / "run.partial").read_text() == "mine"


def test_backtest_out_being_built_by_another_run_refused_and_left_alone(
        cli: Cli, bars: Path, config: Path, tmp_path: Path, warehouse: Path) -> None:
    import fcntl
    import os

    out = tmp_path / "same"
    partial = tmp_path / "same.partial"  # what a run building `same` right now holds
    partial.mkdir()
    (partial / "logs.jsonl").write_text("the other run's story\n")
    fd = os.open(partial, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = backtest(cli, config, out)
    finally:
        os.close(fd)
    assert result.code == 2, result.err
    assert "another run is writing to this run directory" in result.err
    assert (partial / "logs.jsonl").read_text() == "the other run's story\n"
    assert not out.exists()
    assert query(warehouse, "select count(*) from runs") == [(0,)]
    again = backtest(cli, config, out)  # once that run is gone, its leftovers are taken over
    assert again.code == 0, again.err
    assert not partial.exists()
    assert "the other run's story" not in (out / "logs.jsonl").read_text()


def test_ingest_path_with_control_character_refused_exit_2_nothing_loaded(
        cli: Cli, tmp_path: Path, warehouse: Path) -> None:
    result = cli("ingest", f"{tmp_path}/bars\n.csv", "--symbol", "BTCUSDT")
    assert result.code == 2
    assert "PATH" in result.err and "U+000A" in result.err
    assert not warehouse.exists()


@pytest.mark.parametrize("sql", ["select 'abc", 'select "abc', "select 1 /* open"],
                         ids=["single-quote", "double-quote", "comment"])
def test_sql_unterminated_quote_refused_exit_2_as_parse_error(
        cli: Cli, bars: Path, sql: str) -> None:
    result = cli("sql", sql)
    assert result.code == 2
    assert result.err.startswith("error: cannot parse the query: ")
    assert "unterminated quote or comment" in result.err
    assert "internal error" not in result.err


def test_sql_limit_prints_at_most_limit_rows_and_says_it_cut(cli: Cli, bars: Path) -> None:
    result = cli("sql", "select range as n from range(25)", "--limit", "10", "--format", "csv")
    assert result.code == 0, result.err
    assert result.out.splitlines() == ["n", *[str(i) for i in range(10)]]
    assert "cut at --limit 10 rows" in result.err


def test_sql_limit_not_reached_says_nothing(cli: Cli, bars: Path) -> None:
    result = cli("sql", "select range as n from range(10)", "--limit", "10", "--format", "csv")
    assert result.code == 0 and len(result.out.splitlines()) == 11
    assert "cut" not in result.err


def test_sql_default_limit_is_ten_thousand_rows(cli: Cli, bars: Path) -> None:
    result = cli("sql", "select range as n from range(10005)", "--format", "csv")
    assert result.code == 0
    assert len(result.out.splitlines()) == 10_001 and "cut at --limit 10000" in result.err


def test_sql_runaway_query_is_interrupted_at_timeout_and_releases_the_file(
        cli: Cli, bars: Path) -> None:
    result = cli("sql", "select count(*) from range(1000000000000)", "--timeout", "0.5")
    assert result.code == 1
    assert "longer than 0.5 s and was stopped" in result.err and "--timeout" in result.err
    from workbench.warehouse.connect import open_rw

    open_rw(bars, wait_s=0).close()  # nobody holds the file any more


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_sql_bad_timeout_is_a_usage_error(cli: Cli, bars: Path, value: str) -> None:
    with pytest.raises(SystemExit) as raised:
        cli("sql", "select 1", "--timeout", value)
    assert raised.value.code == 2


def test_runs_list_reads_the_headline_each_run_stored_not_the_views(
        cli: Cli, bars: Path, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = cli("backtest", "--config", str(config), "--json")
    assert done.code == 0, done.err
    metrics = json.loads(done.out)
    from workbench import cli as cli_module

    monkeypatch.setattr(cli_module, "_PERFORMANCE", "select 1 / 0")  # must not be needed
    result = cli("runs", "list", "--format", "json")
    assert result.code == 0, result.err
    (row,) = json.loads(result.out)
    assert row["trades"] == metrics["trades"]
    assert row["total_return_pct"] == round(metrics["total_return_pct"], 4)
    assert row["sharpe"] == (None if metrics["sharpe"] is None else round(metrics["sharpe"], 3))


def test_runs_list_computes_the_headline_of_runs_stored_without_one(
        cli: Cli, bars: Path, config: Path) -> None:
    done = cli("backtest", "--config", str(config), "--json")
    assert done.code == 0, done.err
    from workbench.warehouse.connect import open_rw

    con = open_rw(bars)
    con.execute("delete from metrics where name like 'headline.%'")  # as older versions wrote
    con.close()
    result = cli("runs", "list", "--format", "json")
    (row,) = json.loads(result.out)
    assert row["trades"] == json.loads(done.out)["trades"]
