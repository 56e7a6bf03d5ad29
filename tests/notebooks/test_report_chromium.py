"""The exported HTML report opened in headless Chromium with every host name unresolvable:
plotly.js is embedded, so each figure renders (its ``main-svg`` layers appear in the DOM) with no
network at all. A screenshot is kept in test-artifacts/ for a human to look at.

Chromium is required: ``make test`` installs it (the Makefile's ``chromium`` target).
"""

from __future__ import annotations

import importlib.util
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from workbench.report.notebooks import run_report
import report_warehouse as wh

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ARTIFACTS = wh.ROOT / "test-artifacts"
SCREENSHOT = ARTIFACTS / "report-chromium.png"
WINDOW = (1300, 2000)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").is_file():
        found = "/usr/bin/chromium"
    if found is None:
        pytest.fail("headless Chromium is not installed: `make test` installs it (its "
                    "`chromium` target installs Debian's chromium package)", pytrace=False)
    return found


@pytest.fixture(scope="module")
def browser() -> str:
    return chromium()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """The HTML report of the two-symbol run (five figures)."""
    built = wh.build(tmp_path_factory.mktemp("chromium-wh"))
    html = run_report(built.multi, warehouse=built.db,
                      out=tmp_path_factory.mktemp("chromium-report") / "report.html")
    return built, html


@pytest.fixture(scope="module")
def rendered(browser: str, report: tuple[Any, Path],
             tmp_path_factory: pytest.TempPathFactory) -> str:
    """The DOM after Chromium ran the page's scripts; the screenshot is written meanwhile.
    (``browser`` comes first: a missing Chromium fails at once, and never skips.)"""
    _, html = report
    profile = tmp_path_factory.mktemp("chromium-profile")
    ARTIFACTS.mkdir(exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--no-first-run", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}",
         "--host-resolver-rules=MAP * ~NOTFOUND",  # any network fetch would fail
         "--virtual-time-budget=15000", f"--window-size={WINDOW[0]},{WINDOW[1]}",
         f"--screenshot={SCREENSHOT}", "--dump-dom", html.resolve().as_uri()],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def figure_count(html: Path) -> int:
    return html.read_text(encoding="utf-8").count("Plotly.newPlot(")


def test_chromium_is_installed():
    assert Path(chromium()).is_file()


def test_report_html_has_figures_and_no_rendered_svg_before_a_browser_runs_it(report):
    _, html = report
    page = html.read_text(encoding="utf-8")

    assert figure_count(html) == 5  # equity, BTCUSDT and ETHUSDT candles, returns, heatmap
    assert 'class="main-svg"' not in page


def test_report_in_chromium_renders_every_plotly_figure(report, rendered):
    _, html = report
    figures = figure_count(html)

    assert rendered.count('class="main-svg"') >= figures
    assert rendered.count('class="plotly-graph-div js-plotly-plot"') == figures


def test_report_in_chromium_shows_the_tables(report, rendered):
    built, _ = report

    assert f"Headline: multi ({built.multi})" in rendered
    assert "RISK_SYMBOL_NOT_ALLOWED" in rendered


def test_report_in_chromium_screenshot_saved_as_artifact(rendered):
    data = SCREENSHOT.read_bytes()

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == WINDOW
    pixels = zlib.decompress(b"".join(_chunks(data, b"IDAT")))
    assert len(set(pixels)) > 16  # not a blank page


def _chunks(png: bytes, kind: bytes) -> list[bytes]:
    out, pos = [], 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        if png[pos + 4:pos + 8] == kind:
            out.append(png[pos + 8:pos + 8 + length])
        pos += 12 + length
    return out
