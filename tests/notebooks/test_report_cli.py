"""``workbench report``, ``workbench compare`` and ``workbench backtest --report`` as a user runs
them (a separate process), plus the pieces of workbench.report.notebooks they rest on.

``report RUN_ID`` executes report.ipynb with papermill into reports/<run_id>/report.ipynb, exports
reports/<run_id>/report.html (code hidden, plotly.js embedded, nothing remote) and prints the
HTML path. An unknown run id ends at once with "no such run" and the closest ids, before any
notebook runs; a failing cell ends with one message naming the cell and the run, and the
executed notebook keeps the traceback. ``--out`` is a directory or an .html file.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
import pytest
import report_warehouse as wh

from workbench.errors import WorkbenchError
from workbench.report import notebooks
from workbench.report.notebooks import ReportError, export_html, run_compare, run_report


# `workbench ARGS` with report.ipynb taken from argv[1] instead of the checkout's notebooks/.
PATCHED_CLI = """\
import sys
from pathlib import Path
import workbench.report.notebooks as nb
nb.NOTEBOOKS = Path(sys.argv[1])
from workbench.cli import main
sys.exit(main(sys.argv[2:]))
"""
FAILING_SOURCE = "ratio = 1 / 0  # a cell that fails"


class Resources(HTMLParser):
    """The src/href of every script and link tag (script bodies are not parsed as markup)."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts += 1
        if tag in ("script", "link"):
            for key, value in attrs:
                if key in ("src", "href") and value is not None:
                    self.refs.append((tag, value))


def resources(page: str) -> Resources:
    parser = Resources()
    parser.feed(page)
    parser.close()
    return parser


def remote(refs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(t, v) for t, v in refs if v.startswith(("http:", "https:", "//"))]


def notebook_files() -> set[Path]:
    return {p.relative_to(wh.NOTEBOOKS) for p in wh.NOTEBOOKS.rglob("*")}


def assert_one_error(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return wh.build(tmp_path_factory.mktemp("cli-wh"))


@pytest.fixture(scope="module")
def reported(built: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``workbench report MULTI`` run from an empty folder; (process, folder, notebooks/ before)."""
    cwd = tmp_path_factory.mktemp("cli-report")
    before = notebook_files()
    proc = wh.run_cli("--warehouse", str(built.db), "report", built.multi, cwd=cwd)
    return proc, cwd, before


# --- workbench report ----------------------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.slow
def test_report_cli_prints_html_path_under_reports_run_id(reported, built):
    proc, cwd, _ = reported

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"reports/{built.multi}/report.html\n"
    assert proc.stderr == ""
    assert (cwd / "reports" / built.multi / "report.html").is_file()


@pytest.mark.e2e
@pytest.mark.slow
def test_report_cli_keeps_executed_notebook_with_parameters_and_outputs(reported, built):
    _, cwd, _ = reported

    nb = nbformat.read(cwd / "reports" / built.multi / "report.ipynb", as_version=4)

    params = nb.metadata.papermill.parameters
    assert params == {"run_id": built.multi, "warehouse": str(built.db.resolve())}
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
                if o.output_type == "error"]


@pytest.mark.e2e
@pytest.mark.slow
def test_report_cli_html_loads_no_remote_script_or_stylesheet(reported, built):
    _, cwd, _ = reported
    page = (cwd / "reports" / built.multi / "report.html").read_text(encoding="utf-8")

    found = resources(page)

    assert found.scripts > 0
    assert remote(found.refs) == []
    assert 'src="http' not in "".join(f'{t}="{v}"' for t, v in found.refs)


@pytest.mark.e2e
@pytest.mark.slow
def test_report_cli_html_embeds_plotly_js_and_every_figure(reported, built):
    _, cwd, _ = reported
    page = (cwd / "reports" / built.multi / "report.html").read_text(encoding="utf-8")

    assert "window.Plotly" in page
    assert page.count("* plotly.js v") == 1
    assert page.count("Plotly.newPlot(") == 5  # equity, two candles, returns, heatmap


@pytest.mark.e2e
@pytest.mark.slow
def test_report_cli_html_shows_outputs_with_code_hidden(reported, built):
    _, cwd, _ = reported
    page = (cwd / "reports" / built.multi / "report.html").read_text(encoding="utf-8")

    assert f"<h4>Headline: multi ({built.multi})</h4>" in page
    assert "<h4>Manifest</h4>" in page and "<h2" in page  # markdown headings kept
    for code in ("import workbench.report as wr", "wr.load_run(", "wr.manifest_table(r)",
                 "# Parameters"):
        assert code not in page, code


@pytest.mark.e2e
@pytest.mark.slow
def test_report_cli_writes_nothing_into_notebooks_folder(reported):
    _, _, before = reported

    assert notebook_files() == before


@pytest.mark.e2e
def test_report_cli_unknown_run_id_says_no_such_run_with_closest_and_runs_nothing(built,
                                                                                 tmp_path):
    near_miss = built.multi[:-2] + ("00" if built.multi[-2:] != "00" else "11")

    proc = wh.run_cli("--warehouse", str(built.db), "report", near_miss, cwd=tmp_path)

    assert_one_error(proc)
    assert proc.stderr.startswith(f"error: no such run: {near_miss}\n")
    assert f"closest: {built.multi}" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no reports/ folder: no notebook ran


@pytest.mark.e2e
def test_report_cli_run_id_with_quote_is_just_no_such_run(built, tmp_path):
    runs = wh.query(built.db, "select count(*) from runs")
    injection = "x' or '1'='1"

    proc = wh.run_cli("--warehouse", str(built.db), "report", injection, cwd=tmp_path)

    assert_one_error(proc)
    assert proc.stderr.startswith(f"error: no such run: {injection}\n")
    assert list(tmp_path.iterdir()) == []
    assert wh.query(built.db, "select count(*) from runs") == runs


@pytest.mark.e2e
@pytest.mark.slow
def test_report_cli_failing_cell_names_cell_and_run_without_traceback(built, tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = nbformat.read(wh.NOTEBOOKS / "report.ipynb", as_version=4)
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and c.source == "wr.headline_table(r)"]
    cell.source = FAILING_SOURCE
    nbformat.write(nb, folder / "report.ipynb")
    out = tmp_path / "out"

    proc = subprocess.run(
        [sys.executable, "-c", PATCHED_CLI, str(folder), "--warehouse", str(built.db), "report",
         built.single, "--out", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        check=False)

    assert_one_error(proc)
    executed = nbformat.read(out / "report.ipynb", as_version=4)
    (failed,) = [c for c in executed.cells if c.source == FAILING_SOURCE]
    first = proc.stderr.splitlines()[0]
    assert first == (f"error: report.ipynb failed for run {built.single} in cell "
                     f"{failed.execution_count} ({FAILING_SOURCE}): ZeroDivisionError: "
                     "division by zero")
    assert f"the executed notebook with the full traceback is {out / 'report.ipynb'}" \
        in proc.stderr
    (error,) = [o for o in failed.outputs if o.output_type == "error"]
    assert error.ename == "ZeroDivisionError" and error.traceback
    assert not (out / "report.html").exists()


# --- workbench compare ---------------------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.slow
def test_compare_cli_out_html_file_writes_it_and_notebook_beside_it(built, tmp_path):
    target = tmp_path / "cmp" / "side.html"

    proc = wh.run_cli("--warehouse", str(built.db), "compare", built.multi, built.single,
                      "--out", str(target), cwd=tmp_path)

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{target}\n"
    page = target.read_text(encoding="utf-8")
    assert "<h4>Runs side by side</h4>" in page
    for run_id in (built.multi, built.single):
        assert f"<td>{run_id}</td>" in page
    assert remote(resources(page).refs) == []
    params = nbformat.read(target.with_suffix(".ipynb"), as_version=4).metadata.papermill
    assert params.parameters["run_ids"] == [built.multi, built.single]


@pytest.mark.e2e
def test_compare_cli_one_run_id_refused_before_any_notebook_runs(built, tmp_path):
    proc = wh.run_cli("--warehouse", str(built.db), "compare", built.multi, cwd=tmp_path)

    assert_one_error(proc)
    assert "compare needs two or more run ids" in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.e2e
def test_compare_cli_unknown_run_id_says_no_such_run(built, tmp_path):
    proc = wh.run_cli("--warehouse", str(built.db), "compare", built.multi, "nope",
                      cwd=tmp_path)

    assert_one_error(proc)
    assert proc.stderr.startswith("error: no such run: nope\n")
    assert list(tmp_path.iterdir()) == []


# --- workbench backtest --report -----------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.slow
def test_backtest_cli_with_report_writes_the_new_runs_report(built, tmp_path):
    proc = wh.run_cli("--warehouse", str(built.db), "backtest", "--config", str(wh.SMA_DEMO),
                      "--set", "run.name=cli-report", "--from", "2024-01-02", "--to",
                      "2024-01-03", "--out", str(tmp_path / "run"), "--report", "--json",
                      cwd=tmp_path)

    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    run_id = result["run_id"]
    assert result["report"] == f"reports/{run_id}/report.html"
    page = (tmp_path / result["report"]).read_text(encoding="utf-8")
    assert f"<h4>Headline: cli-report ({run_id})</h4>" in page
    assert wh.query(built.db, "select status from runs where run_id = ?", [run_id]) == [
        ("completed",)]


# --- the pieces, in-process ----------------------------------------------------------------------
def test_targets_default_is_stem_files_in_default_folder():
    nb, html = notebooks._targets(None, Path("reports") / "r1", "report")

    assert (nb, html) == (Path("reports/r1/report.ipynb"), Path("reports/r1/report.html"))


def test_targets_out_directory_holds_stem_files(tmp_path):
    nb, html = notebooks._targets(tmp_path / "dir", Path("reports"), "compare")

    assert (nb, html) == (tmp_path / "dir" / "compare.ipynb", tmp_path / "dir" / "compare.html")


def test_targets_out_html_file_is_used_with_notebook_beside_it(tmp_path):
    nb, html = notebooks._targets(str(tmp_path / "a" / "mine.html"), Path("reports"), "report")

    assert (nb, html) == (tmp_path / "a" / "mine.ipynb", tmp_path / "a" / "mine.html")


def test_run_report_unknown_run_raises_before_executing_any_notebook(built, tmp_path,
                                                                    monkeypatch):
    def never(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a notebook ran")

    monkeypatch.setattr(notebooks, "_execute", never)

    with pytest.raises(WorkbenchError, match="no such run: x' or '1'='1"):
        run_report("x' or '1'='1", warehouse=built.db, out=tmp_path)
    with pytest.raises(WorkbenchError, match="no such run: nope"):
        run_compare([built.multi, "nope"], warehouse=built.db, out=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_run_report_passes_resolved_run_and_absolute_warehouse_to_the_notebook(
        built, tmp_path, monkeypatch):
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(notebooks, "_execute", lambda *args: calls.append(args))
    monkeypatch.chdir(built.db.parent)

    html = run_report(built.single, warehouse=Path(built.db.name), out=tmp_path / "r.html")

    assert html == tmp_path / "r.html"
    ((name, nb_out, html_out, params, what, _),) = calls
    assert (name, nb_out, html_out) == ("report.ipynb", tmp_path / "r.ipynb", html)
    assert params == {"run_id": built.single, "warehouse": str(built.db.resolve())}
    assert what == f"run {built.single}"


def test_execute_runs_papermill_with_explicit_cwd_timeout_and_python3_kernel(tmp_path,
                                                                             monkeypatch):
    import papermill as pm

    seen: dict[str, Any] = {}

    def fake_execute(source: str, output: str, **kwargs: Any) -> None:
        seen.update(kwargs, source=source, output=output)
        nbformat.write(nbformat.v4.new_notebook(), output)

    monkeypatch.setattr(pm, "execute_notebook", fake_execute)

    notebooks._execute("report.ipynb", tmp_path / "r.ipynb", tmp_path / "r.html",
                       {"run_id": "x"}, "run x", False)

    assert seen["source"] == str(wh.NOTEBOOKS / "report.ipynb")
    assert seen["output"] == str(tmp_path / "r.ipynb")
    assert seen["cwd"] == str(wh.NOTEBOOKS)
    assert seen["execution_timeout"] == notebooks.CELL_TIMEOUT_S > 0
    assert seen["km"].kernel_name == "python3"
    assert seen["parameters"] == {"run_id": "x"}
    assert (tmp_path / "r.html").is_file()


def test_execute_missing_notebook_raises_report_error(tmp_path, monkeypatch):
    monkeypatch.setattr(notebooks, "NOTEBOOKS", tmp_path)

    with pytest.raises(ReportError, match=r"report\.ipynb is missing"):
        notebooks._execute("report.ipynb", tmp_path / "r.ipynb", tmp_path / "r.html", {},
                           "run x", False)
    assert not (tmp_path / "r.ipynb").exists()


def test_export_html_refuses_notebook_output_loading_a_remote_script(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output(
        "display_data", data={"text/html": '<script src="https://cdn.example/x.js"></script>'})]))
    source = tmp_path / "in.ipynb"
    nbformat.write(nb, source)

    with pytest.raises(ReportError, match=r"cdn\.example"):
        export_html(source, tmp_path / "out.html")
    assert not (tmp_path / "out.html").exists()


def test_export_html_hides_code_and_keeps_outputs(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("secret_code_line = 1", outputs=[
        nbformat.v4.new_output("display_data", data={"text/html": "<b>shown output</b>"})]))
    source = tmp_path / "in.ipynb"
    nbformat.write(nb, source)

    page = export_html(source, tmp_path / "out.html").read_text(encoding="utf-8")

    assert "<b>shown output</b>" in page
    assert "secret_code_line" not in page
    assert remote(resources(page).refs) == []


def test_report_commands_execute_the_checkouts_notebooks():
    assert notebooks.NOTEBOOKS == wh.NOTEBOOKS


# --- refusing to overwrite -------------------------------------------------------------------------
@pytest.mark.parametrize("out", ["r.html", "folder"])
def test_run_report_existing_report_refused_unless_force(built, tmp_path, monkeypatch, out):
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(notebooks, "_execute", lambda *args: calls.append(args))
    target = tmp_path / out
    html = target if out.endswith(".html") else target / "report.html"
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text("the old report")

    with pytest.raises(WorkbenchError, match=r"a report is already there\n.*--force") as info:
        run_report(built.single, warehouse=built.db, out=target)
    assert str(html) in str(info.value)
    assert calls == [] and html.read_text() == "the old report"

    assert run_report(built.single, warehouse=built.db, out=target, force=True) == html
    assert len(calls) == 1


def test_run_report_out_naming_a_plain_file_refused(built, tmp_path, monkeypatch):
    monkeypatch.setattr(notebooks, "_execute", lambda *args: None)
    plain = tmp_path / "notes.txt"
    plain.write_text("mine")
    with pytest.raises(WorkbenchError, match="--out names a file, not a folder"):
        run_report(built.single, warehouse=built.db, out=plain, force=True)
    assert plain.read_text() == "mine"


def test_report_cli_force_flag_reaches_run_report_and_exit_codes(built, tmp_path, monkeypatch,
                                                                 capsys):
    from workbench.cli import main

    monkeypatch.setattr(notebooks, "_execute", lambda *args: None)
    html = tmp_path / "r.html"
    html.write_text("old")
    argv = ["--warehouse", str(built.db), "report", built.single, "--out", str(html)]
    assert main(argv) == 1
    assert "a report is already there" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0
    assert capsys.readouterr().out == f"{html}\n"
    assert main(["--warehouse", str(built.db), "report", built.single, "--out",
                 f"{tmp_path}/x\n.html"]) == 2
    assert "U+000A" in capsys.readouterr().err
