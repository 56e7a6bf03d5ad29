"""The experiment registry: run tags (``--tag``), ``workbench runs compare`` and cohorts by tag,
run in-process against a test warehouse of 600 one-minute bars."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_runs import last_line, query
from small_config import sma_config

from workbench.errors import ConfigError
from workbench.tags import as_tags, parse_tag
from workbench.warehouse.connect import reading

Cli = Callable[..., Any]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(sma_config("registry", seed=1), encoding="utf-8")
    return path


def run(cli: Cli, config: Path, *args: str) -> tuple[str, Path]:
    result = cli("backtest", "--config", str(config), *args)
    assert result.code == 0, result.err
    return last_line(result.out)



# --- tags ---------------------------------------------------------------------------------------
def test_parse_tag_without_equals_refuses_naming_the_item() -> None:
    with pytest.raises(ConfigError, match="--tag expects KEY=VALUE, got 'experiment'"):
        parse_tag("experiment")


def test_as_tags_secret_key_is_refused_as_stored_in_the_clear() -> None:
    with pytest.raises(ConfigError, match="'api_key' names a secret"):
        as_tags(["api_key=abc"])


def test_as_tags_key_given_twice_with_two_values_is_refused() -> None:
    with pytest.raises(ConfigError, match="tag 'exp' is given twice \\('a' and 'b'\\)"):
        as_tags(["exp=a", "exp=b"])


def test_as_tags_value_with_newline_is_refused() -> None:
    with pytest.raises(ConfigError, match="holds a control character"):
        as_tags({"exp": "a\nrun_id=forged"})


def test_as_tags_items_come_back_sorted_by_key() -> None:
    assert as_tags(["who=me", "exp=a=b"]) == {"exp": "a=b", "who": "me"}


def test_backtest_tags_are_stored_and_change_neither_config_hash_nor_files(
        cli: Cli, ingested: Path, config: Path) -> None:
    tagged, tagged_dir = run(cli, config, "--tag", "exp=a", "--tag", "who=me")
    plain, plain_dir = run(cli, config)

    rows = dict(query(ingested, "select run_id, tags from runs"))
    assert json.loads(rows[tagged]) == {"exp": "a", "who": "me"}
    assert rows[plain] is None
    hashes = dict(query(ingested, "select run_id, config_hash from runs"))
    assert hashes[tagged] == hashes[plain]
    for name in ("trades.csv", "orders.csv", "fills.csv", "equity.csv"):
        assert (tagged_dir / name).read_bytes() == (plain_dir / name).read_bytes(), name
    manifest = json.loads((tagged_dir / "run_manifest.json").read_text())
    assert manifest["tags"] == {"exp": "a", "who": "me"}
    assert "tags" not in manifest["config"]["run"]
    shown = cli("runs", "show", tagged)
    assert shown.code == 0, shown.err
    assert json.loads(shown.out)["tags"] == {"exp": "a", "who": "me"}


def test_backtest_bad_tag_exits_2_before_any_run(cli: Cli, ingested: Path, config: Path) -> None:
    result = cli("backtest", "--config", str(config), "--tag", "1exp=a")
    assert result.code == 2
    assert "tag key '1exp' is not a name" in result.err
    assert query(ingested, "select count(*) from runs") == [(0,)]


# --- runs list --tag, runs compare --------------------------------------------------------------
@pytest.fixture
def three_runs(cli: Cli, ingested: Path, config: Path) -> tuple[str, str, str]:
    """fast=5 and fast=7 tagged exp=a, and fee_bps=1 tagged exp=b."""
    a = run(cli, config, "--tag", "exp=a")[0]
    b = run(cli, config, "--tag", "exp=a", "--set", "strategy.params.fast=7")[0]
    c = run(cli, config, "--tag", "exp=b", "--set", "costs.fee_bps=1")[0]
    return a, b, c


def performance(warehouse: Path, run_id: str) -> dict[str, Any]:
    with reading(warehouse) as con:
        rel = con.sql("select * from rpt.performance where run_id = ?", params=[run_id])
        return dict(zip(rel.columns, rel.fetchall()[0], strict=True))


def test_runs_list_tag_lists_only_the_cohort(cli: Cli, three_runs: tuple[str, str, str]
                                              ) -> None:
    a, b, _ = three_runs
    result = cli("runs", "list", "--tag", "exp=a", "--format", "json")
    assert result.code == 0, result.err
    assert [r["run_id"] for r in json.loads(result.out)] == [b, a]


def test_runs_compare_two_runs_shows_metrics_and_only_the_config_keys_that_differ(
        cli: Cli, ingested: Path, three_runs: tuple[str, str, str]) -> None:
    a, _, c = three_runs
    result = cli("runs", "compare", a, c, "--json")
    assert result.code == 0, result.err
    found = json.loads(result.out)

    assert found["config_differences"] == {"costs.fee_bps": {a: 10.0, c: 1.0}}
    assert found["version_differences"] == {}
    (data_hash,) = query(ingested, "select distinct data_hash from runs")[0]
    assert found["same"]["data_hash"] == data_hash
    for record in found["runs"]:
        perf = performance(ingested, record["run_id"])
        # as the run stored it: the view over the run's own curve, to the last bits or so
        assert record["metrics"]["total_return_pct"] == pytest.approx(perf["total_return_pct"],
                                                                      rel=1e-12)
        assert record["metrics"]["trades"] == perf["trades"]
    assert [r["tags"] for r in found["runs"]] == [{"exp": "a"}, {"exp": "b"}]


def test_runs_compare_tag_shows_the_cohort_with_mean_and_median(
        cli: Cli, ingested: Path, three_runs: tuple[str, str, str]) -> None:
    a, b, _ = three_runs
    found = json.loads(cli("runs", "compare", "--tag", "exp=a", "--json").out)
    assert [r["run_id"] for r in found["runs"]] == [a, b]
    assert found["config_differences"] == {"strategy.params.fast": {a: 5, b: 7}}
    returns = [performance(ingested, r)["total_return_pct"] for r in (a, b)]
    assert found["summary"]["mean"]["total_return_pct"] == pytest.approx(
        statistics.fmean(returns), rel=1e-12)
    assert found["summary"]["median"]["total_return_pct"] == pytest.approx(
        statistics.median(returns), rel=1e-12)

    text = cli("runs", "compare", "--tag", "exp=a")
    assert text.code == 0, text.err
    assert "cohort exp=a" in text.out
    lines = text.out.splitlines()
    assert any(line.startswith(a) for line in lines) and any(line.startswith(b) for line in lines)
    assert any(line.startswith("mean ") for line in lines)
    assert any(line.startswith("median ") for line in lines)
    assert any(line.startswith("strategy.params.fast") and line.split()[1:] == ["5", "7"]
               for line in lines)


def test_runs_compare_unknown_run_names_it_and_how_to_list_runs(
        cli: Cli, three_runs: tuple[str, str, str]) -> None:
    result = cli("runs", "compare", three_runs[0], "no-such-run")
    assert result.code == 1
    assert "error: no such run: no-such-run" in result.err
    assert "workbench runs list" in result.err


def test_runs_compare_one_run_without_tag_is_refused(cli: Cli, three_runs: tuple[str, str, str]
                                                      ) -> None:
    result = cli("runs", "compare", three_runs[0])
    assert result.code == 1
    assert "a comparison needs two runs or more" in result.err


def test_runs_compare_the_same_run_twice_without_tag_is_refused(
        cli: Cli, three_runs: tuple[str, str, str]) -> None:
    result = cli("runs", "compare", three_runs[0], three_runs[0])
    assert result.code == 1
    assert "a comparison needs two runs or more" in result.err


def test_runs_compare_tag_no_run_carries_is_refused(cli: Cli, three_runs: tuple[str, str, str]
                                                    ) -> None:
    result = cli("runs", "compare", "--tag", "exp=zzz")
    assert result.code == 1
    assert "no run carries the tag exp=zzz" in result.err


def test_comparison_of_many_runs_puts_a_row_per_run_in_the_difference_tables() -> None:
    from workbench.registry import Comparison, RunRecord

    def record(n: int) -> RunRecord:
        return RunRecord(f"r{n}", "t", "backtest", "completed", None, {}, "c", "d", "g", {}, 0,
                         None, {})

    few = Comparison([record(1), record(2)], {}, {"strategy.params.fast": [5, 7]}, {})
    assert few.sections()[1] == ("config keys that differ (secrets masked)",
                                 ["key", "r1", "r2"], [("strategy.params.fast", 5, 7)])
    many = Comparison([record(n) for n in range(1, 6)], {"exp": "a"},
                      {"strategy.params.fast": [1, 2, 3, 4, 5]}, {"duckdb": ["2"] * 4 + ["3"]})
    sections = many.sections()
    config, versions = sections[1], sections[3]
    assert config[1:] == (["run_id", "strategy.params.fast"],
                          [("r1", 1), ("r2", 2), ("r3", 3), ("r4", 4), ("r5", 5)])
    assert versions[0] == "package versions that differ"
    assert versions[2][-1] == ("r5", "3")
