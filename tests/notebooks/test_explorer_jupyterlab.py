"""explore.ipynb in a real JupyterLab, driven by headless Chromium over the Chrome DevTools
Protocol (Debian's ``chromium`` and ``websocket-client``; no browser download).

JupyterLab runs on 127.0.0.1 (a free port, a token, no browser) over a temporary copy of the
notebook and a test warehouse with two completed runs. The test runs every cell, waits for the
explorer's widgets and plotly chart, selects a second run in the run picker and waits for the
chart to draw that run's equity too. It also checks the picker shows several rows with whole run
ids, and that the chart fills the cell's width. A screenshot is kept in test-artifacts/.

Chromium is required: ``make test`` installs it (the Makefile's ``chromium`` target), and
JupyterLab (``make test`` installs the lab extra).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import report_warehouse as wh

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ARTIFACTS = wh.ROOT / "test-artifacts"
SCREENSHOT = ARTIFACTS / "explorer-jupyterlab.png"
WINDOW = (1400, 1300)
TIMEOUT_S = 90.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _poll(what: str, check: Callable[[], Any], timeout: float = TIMEOUT_S,
          every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, ValueError) as exc:  # not up yet
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End a process this test started (its own process group), politely then firmly."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


class Page:
    """A Chrome DevTools Protocol session on one page."""

    def __init__(self, ws_url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))

    def js(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression (promises awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise ValueError(f"{expression[:60]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self) -> None:
        self.ws.close()


@pytest.fixture(scope="module")
def browser() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("headless Chromium is not installed: `make test` installs it (its "
                    "`chromium` target installs Debian's chromium package)", pytrace=False)
    return found


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """JupyterLab on 127.0.0.1 over a copy of explore.ipynb; yields (warehouse, base URL)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("workbench")
    except NoSuchKernel:
        pytest.fail("the `workbench` kernel is not installed: `make .venv/.dev` installs it",
                    pytrace=False)
    jupyter = Path(sys.executable).parent / "jupyter-lab"
    if not jupyter.is_file():
        pytest.fail("JupyterLab is not installed: `make test` installs the lab extra "
                    "(`make .venv/.lab`)", pytrace=False)
    tmp = tmp_path_factory.mktemp("jupyterlab")
    built = wh.build(tmp / "wh")
    work = tmp / "notebooks"
    work.mkdir()
    shutil.copy(wh.NOTEBOOKS / "explore.ipynb", work / "explore.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    env.update(WB_WAREHOUSE=str(built.db), JUPYTER_CONFIG_DIR=str(tmp / "config"),
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"))
    argv = [str(jupyter), "--ip=127.0.0.1", f"--port={port}", "--no-browser",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
            "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.getuid() == 0:
        argv.append("--allow-root")
    log = (tmp / "jupyterlab.log").open("wb")
    proc = subprocess.Popen(argv, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _poll("JupyterLab to answer", lambda: proc.poll() is None and urllib.request.urlopen(
            f"{base}/api/status?token={token}", timeout=5).status == 200)
        yield built, f"{base}/lab/tree/explore.ipynb?token={token}"
    except AssertionError:
        log.flush()
        print((tmp / "jupyterlab.log").read_text(errors="replace")[-4000:])
        raise
    finally:
        _stop(proc)
        log.close()


@pytest.fixture(scope="module")
def page(browser: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    profile = tmp_path_factory.mktemp("chromium-cdp")
    proc = subprocess.Popen(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "--remote-allow-origins=*", f"--window-size={WINDOW[0]},{WINDOW[1]}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        start_new_session=True)
    try:
        active = profile / "DevToolsActivePort"
        port = _poll("Chromium's DevTools port", lambda: active.is_file()
                     and active.read_text().split("\n")[0].strip())
        targets = _poll("a page target", lambda: [t for t in json.load(urllib.request.urlopen(
            f"http://127.0.0.1:{port}/json/list", timeout=5)) if t["type"] == "page"])
        cdp = Page(targets[0]["webSocketDebuggerUrl"])
        cdp.call("Page.enable")
        cdp.call("Runtime.enable")
        try:
            yield cdp
        finally:
            cdp.close()
    finally:
        _stop(proc)


LEGEND = ("[...document.querySelectorAll('.jp-OutputArea .js-plotly-plot .legendtext')]"
          ".map(e => e.textContent)")


@pytest.fixture(scope="module")
def explorer(lab: tuple[Any, str], page: Page) -> dict[str, Any]:
    """The notebook opened, every cell run, the explorer drawn; what the page showed then."""
    built, url = lab
    page.call("Page.navigate", url=url)
    _poll("the notebook and its kernel", lambda: page.js(
        "(() => { const a = window.jupyterapp;"
        " const w = a && [...a.shell.widgets('main')].find(x => x.sessionContext);"
        " const k = w && w.sessionContext && w.sessionContext.session"
        " && w.sessionContext.session.kernel;"
        " return !!(k && k.status === 'idle' && w.content && w.content.widgets.length); })()"))
    page.js("(() => { const app = window.jupyterapp;"
            " const nb = [...app.shell.widgets('main')].find(w => w.sessionContext);"
            " app.shell.activateById(nb.id);"
            " return app.commands.execute('notebook:run-all-cells').then(() => true); })()")
    legend = _poll("the explorer's chart", lambda: page.js(LEGEND))
    shown = page.js("""(() => {
        const select = document.querySelector('.widget-select-multiple select');
        const plot = document.querySelector('.jp-OutputArea .js-plotly-plot');
        const boxes = [...document.querySelectorAll('.jp-OutputArea .widget-vbox')];
        const cell = boxes.find(b => b.contains(plot));  // the explorer, outermost
        return {options: [...select.options].map(o => o.textContent.replace(/\u00a0/g, ' ')),
                rows: select.size, selectHeight: select.getBoundingClientRect().height,
                optionHeight: select.options[0].getBoundingClientRect().height,
                plotWidth: plot.getBoundingClientRect().width,
                cellWidth: cell.getBoundingClientRect().width};
    })()""")
    return {"built": built, "legend": legend, **shown}


def test_explorer_in_jupyterlab_draws_the_latest_run(explorer):
    built = explorer["built"]

    assert f"single {built.single}" in explorer["legend"]
    assert f"multi {built.multi}" not in explorer["legend"]


def test_explorer_in_jupyterlab_picker_shows_rows_with_whole_ids(explorer):
    built = explorer["built"]

    assert explorer["rows"] >= 4
    assert explorer["selectHeight"] >= 3 * explorer["optionHeight"]  # not one row
    assert any(f"single · {built.single} · " in o for o in explorer["options"])
    assert any(f"multi · {built.multi} · " in o for o in explorer["options"])


def test_explorer_in_jupyterlab_chart_fills_the_cell_width(explorer):
    assert explorer["plotWidth"] >= 0.9 * explorer["cellWidth"], explorer
    assert explorer["plotWidth"] > 720  # wider than plotly's 700 px default


def test_explorer_in_jupyterlab_selecting_a_second_run_updates_the_chart(explorer, page):
    built = explorer["built"]

    page.js("""(() => {
        const select = document.querySelector('.widget-select-multiple select');
        for (const o of select.options) { o.selected = true; }
        select.dispatchEvent(new Event('change', {bubbles: true}));
        return true;
    })()""")

    legend = _poll("the second run's curve", lambda: (
        (names := page.js(LEGEND)) and f"multi {built.multi}" in names and names))
    assert f"single {built.single}" in legend
    ARTIFACTS.mkdir(exist_ok=True)
    shot = page.call("Page.captureScreenshot", format="png")
    SCREENSHOT.write_bytes(base64.b64decode(shot["data"]))
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_explorer_in_jupyterlab_sql_box_runs_a_query_and_frees_its_button(explorer, page):
    page.js("""(() => {
        const box = document.querySelector('.jp-OutputArea .widget-textarea textarea');
        box.value = "select count(*) as completed_runs from runs where status = 'completed'";
        box.dispatchEvent(new Event('input', {bubbles: true}));
        box.dispatchEvent(new Event('change', {bubbles: true}));
        return true;
    })()""")
    page.js("""(() => {
        const button = [...document.querySelectorAll('.jp-OutputArea button')]
            .find(b => b.textContent.trim() === 'run query');
        button.click();
        return true;
    })()""")

    table = _poll("the query's table", lambda: page.js("""(() => {
        const t = [...document.querySelectorAll('.jp-OutputArea .wb-table')]
            .find(t => t.textContent.includes('completed_runs'));
        return t && t.textContent;
    })()"""))
    assert "completed_runs" in table and "1 rows" in table
    enabled = _poll("the button enabled again", lambda: page.js("""(() => {
        const button = [...document.querySelectorAll('.jp-OutputArea button')]
            .find(b => b.textContent.trim() === 'run query');
        return !button.disabled;
    })()"""))
    assert enabled
