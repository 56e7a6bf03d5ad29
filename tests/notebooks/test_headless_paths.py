"""Notebooks run headless from the project directory, as the README shows, and their paths mean
the same wherever the kernel's cwd is (the project directory under papermill, ``notebooks/``
in JupyterLab, ``lab/`` under ``make lab``).

* ``papermill notebooks/report.ipynb out.ipynb -p run_id ID`` (the README's line) runs from the
  project directory on the ``workbench`` kernel with no warning on stderr.
* relative notebook paths resolve against the project directory; ``warehouse=None`` is
  ``$WB_WAREHOUSE``, else the project's ``warehouse/workbench.duckdb``.
* a read never creates a warehouse: a missing one is named, with a fix.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
import report_warehouse as wh

import workbench.report as wr
from workbench.errors import WarehouseError

README = wh.ROOT / "README.md"
TCP_NOTE = re.compile(r"\[IPKernelApp\] WARNING \| Kernel is running over TCP without encryption\."
                      r"[^\n]*")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return wh.build(tmp_path_factory.mktemp("headless-wh"))


def readme_papermill_line() -> str:
    lines = [ln.split("#")[0].strip() for ln in README.read_text(encoding="utf-8").splitlines()
             if ln.startswith("papermill ")]
    assert len(lines) == 1, lines
    return lines[0]


def test_readme_shows_the_headless_papermill_command():
    expected = "papermill notebooks/report.ipynb out.ipynb -p run_id <run_id>"
    assert readme_papermill_line() == expected


# --- the README command, in a subprocess from the project directory -----------------------------
@pytest.mark.slow
@pytest.mark.e2e
def test_readme_papermill_command_runs_from_project_root_without_warnings(built, tmp_path):
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("workbench")
    except NoSuchKernel:
        pytest.fail("the `workbench` kernel is not installed: `make .venv/.dev` installs it "
                    "(python -m ipykernel install --sys-prefix --name workbench)", pytrace=False)
    argv = shlex.split(readme_papermill_line().replace("<run_id>", built.multi))
    out = tmp_path / "out.ipynb"  # the README's out.ipynb, kept out of the checkout
    argv[argv.index("out.ipynb")] = str(out)
    argv[0] = str(Path(sys.executable).parent / "papermill")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WB_", "PYTHONWARN"))}
    env["WB_WAREHOUSE"] = str(built.db)  # the test warehouse instead of the project's

    proc = subprocess.run(argv, cwd=wh.ROOT, env=env, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL, check=False)

    assert proc.returncode == 0, proc.stderr[-3000:]
    # ipykernel >= 7.4 notes that papermill's default kernel manager talks to it over local TCP
    # without CurveZMQ; that is papermill's transport, not the notebook (`workbench report`
    # uses IPC sockets and has no such note). Every other warning fails the test.
    stderr = TCP_NOTE.sub("", proc.stderr.replace("\r", "\n"))
    assert "Executing notebook with kernel: workbench" in stderr
    assert not re.search(r"(?i)warn|unknown parameter|does not contain a cell|no kernel|"
                         r"kernelspec|traceback", stderr), stderr[-3000:]
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert errors == []
    page = "\n".join(o.get("data", {}).get("text/html", "")
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert f"<h4>Headline: multi ({built.multi})</h4>" in page
    assert nb.metadata.papermill.parameters == {"run_id": built.multi}


# --- paths resolve against the project ---------------------------------------------------------
@pytest.mark.parametrize("cwd", [".", "notebooks", "lab/sub"])
def test_project_dir_is_the_project_from_its_root_notebooks_or_a_subfolder(cwd, tmp_path,
                                                                            monkeypatch):
    project = tmp_path / "proj"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n", encoding="utf-8")
    (project / cwd).mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(project / cwd)

    assert wr.project_dir() == project
    assert wr.warehouse_path() == project / "warehouse" / "workbench.duckdb"
    assert wr.runs_dir_path() == project / "runs"
    assert wr.project_path("configs/sma_demo.yaml") == project / "configs" / "sma_demo.yaml"


def test_project_dir_of_this_checkout_from_its_notebooks_folder(monkeypatch):
    monkeypatch.chdir(wh.NOTEBOOKS)

    assert wr.project_dir() == wh.ROOT
    assert wr.warehouse_path() == wh.ROOT / "warehouse" / "workbench.duckdb"


def test_project_dir_outside_any_project_is_this_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    assert wr.project_dir() == wh.ROOT


def test_warehouse_path_takes_argument_then_env_and_keeps_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(wh.NOTEBOOKS)
    monkeypatch.setenv("WB_WAREHOUSE", "elsewhere/wh.duckdb")

    assert wr.warehouse_path() == wh.ROOT / "elsewhere" / "wh.duckdb"
    assert wr.warehouse_path(tmp_path / "a.duckdb") == tmp_path / "a.duckdb"
    monkeypatch.setenv("WB_RUNS_DIR", str(tmp_path / "runs"))
    assert wr.runs_dir_path() == tmp_path / "runs"
    assert wr.runs_dir_path("r") == wh.ROOT / "r"


def test_notebook_reads_from_notebooks_folder_find_the_project_warehouse(built, tmp_path,
                                                                        monkeypatch):
    """A relative warehouse given from JupyterLab's cwd (notebooks/) means the project's."""
    monkeypatch.chdir(wh.NOTEBOOKS)
    relative = os.path.relpath(built.db, wh.ROOT)

    assert wr.load_run(built.multi, warehouse=relative).run_id == built.multi
    assert wr.sql("select count(*) from runs", warehouse=relative).rows == [(3,)]


# --- a read never creates a warehouse -----------------------------------------------------------
@pytest.mark.parametrize("read", [
    lambda: wr.load_run(None), lambda: wr.latest_run_id(), lambda: wr.load_runs(None),
    lambda: wr.sql("select 1"), lambda: wr.Explorer()])
def test_reading_a_missing_warehouse_names_it_and_creates_nothing(read, tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "wb.duckdb"
    monkeypatch.setenv("WB_WAREHOUSE", str(missing))
    monkeypatch.chdir(wh.NOTEBOOKS)

    with pytest.raises(WarehouseError) as refused:
        read()

    assert refused.value.where == str(missing)
    assert "workbench ingest" in (refused.value.fix or "")
    assert not missing.exists() and not missing.parent.exists()
    assert not (wh.NOTEBOOKS / "warehouse").exists()
