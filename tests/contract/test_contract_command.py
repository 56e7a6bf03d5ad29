"""``workbench contract-tests``: the suites as a product command, its reports and the live gate.

Every venue here is an in-process fake on 127.0.0.1; binance-testnet runs without keys, so it
is skipped before any request leaves.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_process import CliResult

from workbench.brokers.sim import SimBroker
from workbench.contract import gate
from workbench.contract.runner import PORTS, checks
from workbench.warehouse.connect import open_rw, reading

Cli = Callable[..., CliResult]


def run(cli: Cli, tmp_path: Path, *adapters: str) -> tuple[CliResult, Any, dict[str, Any]]:
    artifacts = tmp_path / "test-artifacts"  # where CI keeps them
    junit, summary = artifacts / "contract.xml", artifacts / "contract.json"
    args = [arg for name in adapters for arg in ("--adapter", name)]
    result = cli("contract-tests", *args, "--junit", str(junit), "--json", str(summary))
    return result, ET.parse(junit).getroot(), json.loads(summary.read_text())


def cases(root: Any, suite: str) -> dict[str, Any]:
    found = root.find(f"testsuite[@name='{suite}']")
    assert found is not None, f"no testsuite {suite}"
    return {case.get("name"): case for case in found.findall("testcase")}


def test_contract_tests_on_paper_and_fake_binance_pass_and_write_junit_and_json(
        cli: Cli, tmp_path: Path, warehouse: Path) -> None:
    result, root, summary = run(cli, tmp_path)
    assert result.code == 0, result.out + result.err
    ids = [c.id for c in checks()]
    assert len(ids) == len(set(ids)) and {c.port for c in checks()} == set(PORTS)
    # JUnit: a testsuite per port per adapter, every check a testcase, no failure
    names = {s.get("name") for s in root.findall("testsuite")}
    assert names == {f"{a}.{p}" for a in ("paper", "fake-binance") for p in PORTS}
    assert root.get("tests") == str(2 * len(ids)) and root.get("failures") == "0"
    assert root.findall(".//failure") == []
    fake = cases(root, "fake-binance.order_router")
    assert fake["order_router.partial_fills_aggregated"].find("skipped") is None
    paper = cases(root, "paper.order_router")
    skipped = paper["order_router.partial_fills_aggregated"].find("skipped")
    assert skipped is not None and "no partial fills" in skipped.get("message", "")
    # JSON: per adapter counts and checks, the code's identity
    assert {"paper", "fake-binance", "git_sha", "version", "code_fingerprint"} <= set(summary)
    for adapter in ("paper", "fake-binance"):
        part = summary[adapter]
        assert part["failed"] == 0 and part["passed"] > 0 and part["ok"] is True
        assert part["passed"] + part["skipped"] == len(ids) == len(part["checks"])
        assert all(c["message"] for c in part["checks"] if c["status"] == "skipped")
    assert summary["fake-binance"]["skipped"] == 0
    assert summary["code_fingerprint"] == gate.code_fingerprint()
    assert ("PASS  fake-binance     order_router.duplicate_client_order_id_idempotent"
            in result.out)
    assert f"fake-binance: {len(ids)} passed, 0 failed, 0 skipped" in result.out
    with reading(warehouse) as con:
        rows = con.execute("select adapter, ok, failed from contract_runs order by adapter"
                           ).fetchall()
    assert rows == [("fake-binance", True, 0), ("paper", True, 0)]


def test_contract_tests_broken_cancel_fails_its_check_and_exits_1(
        cli: Cli, tmp_path: Path, warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def says_yes_does_nothing(self: SimBroker, order: Any, reason: str = "USER") -> bool:
        return True

    monkeypatch.setattr(SimBroker, "cancel", says_yes_does_nothing)
    result, root, summary = run(cli, tmp_path, "paper")
    assert result.code == 1
    status = {c["id"]: c for c in summary["paper"]["checks"]}
    failed = status["order_router.cancel_transitions"]
    assert failed["status"] == "failed"
    assert "after cancel: SUBMITTED (None), expected CANCELED (USER)" in failed["message"]
    assert status["order_router.market_order_acknowledged"]["status"] == "passed"
    failure = cases(root, "paper.order_router")["order_router.cancel_transitions"].find(
        "failure")
    assert failure is not None and "expected CANCELED" in failure.get("message", "")
    assert "FAIL  paper            order_router.cancel_transitions" in result.out
    ok, message = gate.contract_passed(warehouse, "paper")
    assert not ok and "failed" in message


def test_contract_tests_testnet_without_keys_is_skipped_with_the_reason(
        cli: Cli, tmp_path: Path, warehouse: Path) -> None:
    result, root, summary = run(cli, tmp_path, "binance-testnet")
    assert result.code == 0, result.err
    part = summary["binance-testnet"]
    assert part["passed"] == part["failed"] == 0 and part["skipped"] == len(checks())
    assert "WB_VENUE__API_KEY and WB_VENUE__API_SECRET not set" in part["skip_reason"]
    assert all(c["message"] == part["skip_reason"] for c in part["checks"])
    assert "SKIP  binance-testnet  all" in result.out and "not set" in result.out
    assert len(root.findall(".//skipped")) == len(checks())
    ok, message = gate.contract_passed(warehouse, "binance-testnet")
    assert not ok and "no check passed" in message


def test_gate_says_no_before_a_run_yes_after_a_passing_run_no_after_a_code_change(
        cli: Cli, tmp_path: Path, warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = gate.contract_passed(warehouse, "paper")
    assert not ok and "no warehouse" in message
    open_rw(warehouse).close()
    ok, message = gate.contract_passed(warehouse, "paper")
    assert not ok and "never ran for paper" in message
    assert "workbench contract-tests --adapter paper" in message
    result = cli("contract-tests", "--adapter", "paper")
    assert result.code == 0, result.out + result.err
    ok, message = gate.contract_passed(warehouse, "paper")
    assert ok, message
    assert not gate.contract_passed(warehouse, "fake-binance")[0]  # per adapter
    monkeypatch.setattr(gate, "code_fingerprint", lambda package_dir=None: "f" * 64)
    ok, message = gate.contract_passed(warehouse, "paper")
    assert not ok and "other code" in message and "--adapter paper" in message


def test_code_fingerprint_changes_when_a_source_changes(tmp_path: Path) -> None:
    package = tmp_path / "workbench"
    (package / "brokers").mkdir(parents=True)
    (package / "brokers" / "sim.py").write_text("x = 1\n")
    before = gate.code_fingerprint(package)
    assert gate.code_fingerprint(package) == before
    (package / "brokers" / "sim.py").write_text("x = 2\n")
    assert gate.code_fingerprint(package) != before
