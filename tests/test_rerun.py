"""``workbench rerun RUN_ID``: a backtest run again from its record and the warehouse's bars,
its files compared byte for byte with the original's; refusals say why."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_runs import last_line, query
from small_config import sma_config

from workbench.warehouse.connect import open_rw

Cli = Callable[..., Any]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(sma_config("rerun", seed=1), encoding="utf-8")
    return path



@pytest.fixture
def original(cli: Cli, ingested: Path, config: Path) -> tuple[str, Path]:
    result = cli("backtest", "--config", str(config), "--tag", "exp=a")
    assert result.code == 0, result.err
    return last_line(result.out)



def test_rerun_identical_exits_0_and_is_a_run_tagged_rerun_of(
        cli: Cli, ingested: Path, original: tuple[str, Path]) -> None:
    run_id, run_dir = original
    result = cli("rerun", run_id)
    assert result.code == 0, result.err
    assert "identical: rerun " in result.out
    new_id, new_dir = last_line(result.out)
    assert new_dir == Path("runs") / new_id
    for name in ("trades.csv", "orders.csv", "fills.csv", "equity.csv"):
        assert (new_dir / name).read_bytes() == (run_dir / name).read_bytes()
    rows = dict(query(ingested, "select run_id, tags from runs"))
    assert json.loads(rows[new_id]) == {"rerun_of": run_id}  # the original's tags stay its own
    assert query(ingested, "select count(distinct config_hash), count(distinct data_hash) "
                           "from runs") == [(1, 1)]


def test_rerun_tampered_csv_exits_1_naming_the_first_differing_line(
        cli: Cli, original: tuple[str, Path]) -> None:
    run_id, run_dir = original
    fills = run_dir / "fills.csv"
    lines = fills.read_text().splitlines(keepends=True)
    honest = lines[3].rstrip("\n")
    lines[3] = honest.replace(",BTCUSDT,", ",ETHUSDT,") + "\n"
    fills.write_text("".join(lines))

    result = cli("rerun", run_id, "--out", "again")
    assert result.code == 1
    assert f"DIFFERENT from {run_id}" in result.out
    assert "fills.csv line 4:" in result.out  # trades.csv and orders.csv are the same
    assert f"  original: {lines[3].rstrip()}" in result.out
    assert f"  rerun:    {honest}" in result.out
    assert last_line(result.out)[1] == Path("again")


def test_rerun_after_bars_changed_is_refused_naming_the_changed_close(
        cli: Cli, ingested: Path, original: tuple[str, Path], synth_csv: Callable[..., Path]
        ) -> None:
    run_id, _ = original
    source = synth_csv(count=600, name="changed.csv")
    lines = source.read_text().splitlines(keepends=True)
    ts, o, h, lo, c, v = lines[201].rstrip("\n").split(",")  # the bar of 03:20
    assert c != o
    lines[201] = ",".join((ts, o, h, lo, o, v)) + "\n"  # close = open: still a sane bar
    source.write_text("".join(lines))
    assert cli("ingest", str(source), "--symbol", "BTCUSDT", "--replace").code == 0
    runs_before = query(ingested, "select count(*) from runs")

    result = cli("rerun", run_id)
    assert result.code == 2
    assert (f"error: the bars run {run_id} saw changed since it ran: BTCUSDT: 1 close "
            f"changed; the first, at 2024-01-01T03:20:00.000Z, was {float(c)!r}, now "
            f"{float(o)!r}") in result.err
    assert "ingest the bars the run saw again" in result.err
    assert query(ingested, "select count(*) from runs") == runs_before  # no run was made


@pytest.mark.parametrize("to", [None, "2024-03-01"])
def test_rerun_of_an_open_ended_run_after_later_bars_are_ingested_is_identical(
        cli: Cli, ingested: Path, config: Path, synth_csv: Callable[..., Path],
        to: str | None) -> None:
    made = cli("backtest", "--config", str(config), *(["--to", to] if to else []))
    assert made.code == 0, made.err
    run_id, run_dir = last_line(made.out)  # every stored bar (data.end null, or far off)
    longer = synth_csv(count=900, name="longer.csv")  # the same 600 bars, then 300 more
    assert cli("ingest", str(longer), "--symbol", "BTCUSDT").code == 0
    assert query(ingested, "select count(*) from bars") == [(900,)]

    result = cli("rerun", run_id)
    assert result.code == 0, result.err
    _, new_dir = last_line(result.out)
    assert (new_dir / "equity.csv").read_bytes() == (run_dir / "equity.csv").read_bytes()
    assert query(ingested, "select count(distinct config_hash), count(distinct data_hash) "
                           "from runs") == [(1, 1)]


def test_rerun_after_bars_removed_says_which_bar_is_gone(
        cli: Cli, ingested: Path, original: tuple[str, Path]) -> None:
    run_id, _ = original
    con = open_rw(ingested)
    try:
        con.execute("delete from bars where ts = '2024-01-01T05:00:00Z'")
    finally:
        con.close()
    result = cli("rerun", run_id)
    assert result.code == 2
    # under the run's gap policy (fail) the hole is now a gap
    assert f"the bars run {run_id} saw changed since it ran" in result.err
    assert "2024-01-01T05:00:00.000Z" in result.err


def test_rerun_of_a_paper_run_is_refused(cli: Cli, ingested: Path) -> None:
    con = open_rw(ingested)
    try:
        con.execute("insert into runs (run_id, mode, status, started_at) values "
                    "('paper-1', 'paper', 'completed', now())")
    finally:
        con.close()
    result = cli("rerun", "paper-1")
    assert result.code == 2
    assert "run paper-1 is a paper run: only backtests can be rerun" in result.err
    assert "workbench replay --run paper-1" in result.err


def test_rerun_of_an_unknown_run_names_it(cli: Cli, original: tuple[str, Path]) -> None:
    result = cli("rerun", "no-such-run")
    assert result.code == 2
    assert "error: no such run: no-such-run" in result.err
    assert "workbench runs list" in result.err


def test_rerun_of_a_run_whose_directory_is_gone_is_refused(
        cli: Cli, original: tuple[str, Path]) -> None:
    run_id, run_dir = original
    (run_dir / "equity.csv").unlink()
    result = cli("rerun", run_id)
    assert result.code == 2
    assert "lacks equity.csv" in result.err


SECRET = "sk-test-0123456789"


@pytest.fixture
def secret_run(cli: Cli, ingested: Path, config: Path) -> str:
    result = cli("backtest", "--config", str(config), "--set", f"venue.api_key={SECRET}")
    assert result.code == 0, result.err
    return last_line(result.out)[0]


def test_rerun_of_a_run_with_a_secret_needs_its_value(cli: Cli, secret_run: str) -> None:
    result = cli("rerun", secret_run)
    assert result.code == 2
    assert "held the secret venue.api_key, which the warehouse stores masked" in result.err
    assert "set WB_VENUE__API_KEY" in result.err


def test_rerun_with_a_wrong_secret_is_refused(cli: Cli, secret_run: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WB_VENUE__API_KEY", "sk-test-wrong-value")
    result = cli("rerun", secret_run)
    assert result.code == 2
    assert "the secret values given are not the ones run" in result.err
    assert "sk-test-wrong-value" not in result.err + result.out


def test_rerun_with_the_secret_from_the_environment_is_identical(
        cli: Cli, secret_run: str, ingested: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WB_VENUE__API_KEY", SECRET)
    result = cli("rerun", secret_run)
    assert result.code == 0, result.err
    new_id = last_line(result.out)[0]
    hashes = dict(query(ingested, "select run_id, config_hash from runs"))
    assert hashes[new_id] == hashes[secret_run]
    assert SECRET not in json.dumps(query(ingested, "select config_json from runs"))


def test_first_difference_names_a_line_only_the_rerun_has(tmp_path: Path) -> None:
    from workbench.rerun import first_difference

    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        for name in ("trades.csv", "orders.csv", "fills.csv", "equity.csv"):
            (d / name).write_text("h\n1\n")
    (b / "orders.csv").write_text("h\n1\n2\n")
    assert first_difference(a, b) == (
        "orders.csv line 3: only the rerun has it (2 lines in the original, 3 in the "
        "rerun):\n  rerun: 2")
    assert first_difference(a, a) is None


def test_data_hash_of_a_gaps_forward_run_covers_the_filled_bars(
        cli: Cli, warehouse: Path, config: Path, synth_csv: Callable[..., Path]) -> None:
    """The run's data_hash is over the bars its loop saw: the stored ones plus the flat bar
    the gap policy filled (the previous close, volume 0); a rerun finds the same."""
    import numpy as np

    from workbench.manifest import data_hash

    source = synth_csv(count=600)
    lines = source.read_text().splitlines(keepends=True)
    del lines[101]  # the bar of 01:40
    source.write_text("".join(lines))
    assert cli("ingest", str(source), "--symbol", "BTCUSDT", "--gaps", "none").code == 0
    result = cli("backtest", "--config", str(config), "--gaps", "forward")
    assert result.code == 0, result.err
    run_id, _ = last_line(result.out)

    rows = [line.rstrip("\n").split(",") for line in lines[1:]]
    ts = [np.datetime64(r[0].rstrip("Z"), "ms").astype(np.int64) for r in rows]
    cols = [[float(r[k]) for r in rows] for k in range(1, 6)]
    stored = [np.array(ts, np.int64), *(np.array(c) for c in cols)]
    prev_close = cols[3][99]
    filled = [np.insert(stored[0], 100, ts[99] + 60_000),
              *(np.insert(c, 100, prev_close) for c in stored[1:5]),
              np.insert(stored[5], 100, 0.0)]
    (recorded,) = query(warehouse, "select data_hash from runs where run_id = ?", [run_id])[0]
    assert recorded == data_hash(filled, ["BTCUSDT"])
    assert recorded != data_hash(stored, ["BTCUSDT"])
    assert cli("rerun", run_id).code == 0


def test_rerun_warns_when_git_sha_or_package_versions_differ_from_the_run() -> None:
    from workbench import manifest as mf
    from workbench.registry import RunRecord
    from workbench.rerun import _code_warnings

    def record(git_sha: str, versions: dict[str, Any]) -> RunRecord:
        return RunRecord("r1", "t", "backtest", "completed", None, {}, "h", "d", git_sha,
                         versions, 0, "/x", {})

    now = mf.versions()
    first, second = _code_warnings(record("abc123", {**now, "duckdb": "0.0.1"}))
    assert first.startswith(f"the code differs: run r1 ran at git abc123, this is {mf.git_sha()}")
    assert second == (f"package versions differ from run r1's: duckdb 0.0.1 -> {now['duckdb']} "
                      "(a likely cause of any difference)")
    assert _code_warnings(record(mf.git_sha(), now)) == []


def test_rerun_of_a_run_made_by_other_code_warns_first_and_still_compares(
        cli: Cli, ingested: Path, original: tuple[str, Path]) -> None:
    run_id, _ = original
    con = open_rw(ingested)
    try:
        con.execute("update runs set git_sha = 'feedbeef' where run_id = ?", [run_id])
    finally:
        con.close()
    result = cli("rerun", run_id)
    assert result.code == 0, result.err
    assert result.err.startswith(f"warning: the code differs: run {run_id} ran at git feedbeef")
    assert "identical: rerun" in result.out


def test_rerun_after_a_corporate_action_changed_is_refused_naming_it(
        cli: Cli, ingested: Path, config: Path, synth_csv: Callable[..., Path],
        tmp_path: Path) -> None:
    # 600 bars before the stored ones: the run crosses 2024-01-01T00:00Z, the ex-date
    before = synth_csv(count=600, start_ms=1_704_067_200_000 - 600 * 60_000, name="before.csv")
    assert cli("ingest", str(before), "--symbol", "BTCUSDT").code == 0
    actions = tmp_path / "actions.csv"
    actions.write_text("symbol,ex_date,kind,ratio,amount\nBTCUSDT,2024-01-01,dividend,,0.5\n")
    assert cli("ingest-actions", str(actions)).code == 0
    run = cli("backtest", "--config", str(config))
    assert run.code == 0, run.err
    run_id, _ = last_line(run.out)
    actions.write_text("symbol,ex_date,kind,ratio,amount\nBTCUSDT,2024-01-01,dividend,,0.75\n")
    assert cli("ingest-actions", str(actions), "--replace").code == 0
    runs_before = query(ingested, "select count(*) from runs")

    result = cli("rerun", run_id)
    assert result.code == 2, result.out
    assert (f"error: the corporate actions run {run_id} applied changed since it ran: "
            "BTCUSDT DIVIDEND of 2024-01-01 applied with amount 0.5, now 0.75") in result.err
    assert "ingest-actions" in result.err
    assert query(ingested, "select count(*) from runs") == runs_before  # no run was made
