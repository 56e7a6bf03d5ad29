"""The suite's outputs: a line per check, a summary, JUnit XML and the JSON summary.

JUnit: one ``<testsuite>`` per port per adapter (``fake-binance.order_router``), one
``<testcase>`` per check, ``<failure>`` or ``<skipped>`` with the message. JSON::

    {"<adapter>": {"passed", "failed", "skipped", "ok", "skip_reason", "checks": [...]},
     "git_sha": ..., "code_fingerprint": ..., "version": ...}
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from workbench.contract.runner import PORTS, AdapterReport, Result, Status

MARK = {Status.PASSED: "PASS", Status.FAILED: "FAIL", Status.SKIPPED: "SKIP"}


def line(adapter: str, result: Result) -> str:
    """One readable line for a check."""
    text = f"{MARK[result.status]:4}  {adapter:15}  {result.check_id}"
    return f"{text}  ({result.message})" if result.message else text


def summary_line(report: AdapterReport) -> str:
    """The adapter's totals, and why it was skipped when it was."""
    text = (f"{report.adapter}: {report.count(Status.PASSED)} passed, {report.failed} failed, "
            f"{report.count(Status.SKIPPED)} skipped")
    return f"{text} (skipped: {report.skip_reason})" if report.skip_reason else text


def summary(reports: list[AdapterReport], *, git_sha: str, fingerprint: str,
            version: str) -> dict[str, Any]:
    """The JSON summary of a run."""
    out: dict[str, Any] = {r.adapter: r.to_dict() for r in reports}
    out.update(git_sha=git_sha, code_fingerprint=fingerprint, version=version)
    return out


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def junit(reports: list[AdapterReport]) -> ET.ElementTree:
    """JUnit XML: a testsuite per port per adapter."""
    root = ET.Element("testsuites", name="workbench contract-tests")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for report in reports:
        for port in PORTS:
            results = [r for r in report.results if r.port == port]
            if not results:
                continue
            name = f"{report.adapter}.{port}"
            counts = {"tests": len(results),
                      "failures": sum(r.status is Status.FAILED for r in results),
                      "skipped": sum(r.status is Status.SKIPPED for r in results)}
            suite = ET.SubElement(root, "testsuite", {
                "name": name, "tests": str(counts["tests"]), "failures": str(counts["failures"]),
                "errors": "0", "skipped": str(counts["skipped"]),
                "time": f"{sum(r.duration_s for r in results):.6f}"})
            for k, v in counts.items():
                totals[k] += v
            for r in results:
                case = ET.SubElement(suite, "testcase", classname=name, name=r.check_id,
                                     time=f"{r.duration_s:.6f}")
                if r.status is Status.FAILED:
                    ET.SubElement(case, "failure", message=r.message).text = r.message
                elif r.status is Status.SKIPPED:
                    ET.SubElement(case, "skipped", message=r.message)
    root.attrib.update({k: str(v) for k, v in totals.items()}, errors="0")
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(path: Path, reports: list[AdapterReport]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    junit(reports).write(path, encoding="utf-8", xml_declaration=True)
