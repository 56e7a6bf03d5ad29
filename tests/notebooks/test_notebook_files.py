"""The committed notebooks: valid, without outputs or execution counts, one ``parameters`` cell
of plain assignments each, and no logic of their own (they call workbench functions)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PARAMETERS = {
    "backtest.ipynb": ["config", "overrides", "start", "end", "warehouse", "runs_dir"],
    "report.ipynb": ["run_id", "warehouse"],
    "explore.ipynb": ["warehouse"],
    "compare.ipynb": ["run_ids", "warehouse"],
    "live_monitor.ipynb": ["run_id", "warehouse"],
    "parity.ipynb": ["parity_id", "warehouse"],
    "fidelity.ipynb": ["fidelity_id", "warehouse"],
    "sweep.ipynb": ["sweep_id", "metric", "warehouse"],
    "walkforward.ipynb": ["wf_id", "warehouse"],
}
NAMES = sorted(PARAMETERS)


def _read(name: str) -> Any:
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def _code(nb: Any) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _parameters(nb: Any) -> list[Any]:
    return [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]


def test_notebooks_folder_holds_exactly_the_six_notebooks():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_valid_nbformat_with_the_projects_kernel(name):
    """The kernel ``make lab`` (and the dev setup) installs: ``workbench``."""
    nb = _read(name)

    nbformat.validate(nb)
    assert nb.metadata.kernelspec == {"display_name": "workbench (.venv)", "language": "python",
                                      "name": "workbench"}


@pytest.mark.parametrize("name", NAMES)
def test_notebook_committed_in_the_form_jupyter_saves(name):
    """Byte for byte what Jupyter's contents manager writes (nbformat 4.5, indent 1, sorted keys,
    a trailing newline), so opening and saving one unchanged leaves git clean."""
    text = (NOTEBOOKS / name).read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)

    assert (nb.nbformat, nb.nbformat_minor) == (4, nbformat.current_nbformat_minor)
    assert text == nbformat.writes(nb) + "\n"
    assert all(cell.get("id") for cell in nb.cells)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_committed_without_outputs_or_execution_counts(name):
    nb = _read(name)

    for cell in _code(nb):
        assert cell.outputs == [], (name, cell.source)
        assert cell.execution_count is None, (name, cell.source)
    assert "papermill" not in nb.metadata
    assert "widgets" not in nb.metadata  # no saved widget state


@pytest.mark.parametrize("name", NAMES)
def test_notebook_has_one_parameters_cell_first_among_code_cells(name):
    nb = _read(name)

    params = _parameters(nb)
    assert len(params) == 1
    assert params[0] is _code(nb)[0]
    assert params[0].cell_type == "code"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_parameters_cell_assigns_the_documented_names_only(name):
    (cell,) = _parameters(_read(name))

    tree = ast.parse(cell.source)

    assert all(isinstance(node, ast.Assign) for node in tree.body), cell.source
    targets = [t.id for node in tree.body for t in node.targets if isinstance(t, ast.Name)]
    assert targets == PARAMETERS[name]
    for node in tree.body:  # literals only: papermill replaces them
        ast.literal_eval(node.value)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_code_imports_only_workbench_and_defines_nothing(name):
    for cell in _code(_read(name)):
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            assert not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
                                  | ast.Lambda), (name, cell.source)
            if isinstance(node, ast.Import):
                assert all(a.name.split(".")[0] == "workbench" for a in node.names), cell.source
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] == "workbench", cell.source


def _root(node: ast.expr) -> str:
    """The name a call chain starts from: ``wr`` for ``wr.candles_figure(r, s).show()``."""
    while True:
        if isinstance(node, ast.Attribute):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Name):
            return node.id
        else:
            return type(node).__name__


@pytest.mark.parametrize("name", NAMES)
def test_notebook_calls_only_workbench_functions_and_display(name):
    source = "\n".join(c.source for c in _code(_read(name)))
    calls = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)]

    assert calls
    assert {_root(c.func) for c in calls} <= {"wr", "workbench", "display", "print"}
    assert "wr.setup()" in source


def test_report_notebook_shows_every_section_of_the_report():
    source = "\n".join(c.source for c in _code(_read("report.ipynb")))

    for call in ("wr.load_run(run_id, warehouse=warehouse)", "wr.headline_table(r)",
                 "wr.equity_figure(r)", "wr.candles_figure(r, symbol)", "wr.returns_figure(r)",
                 "wr.heatmap_figure(r)", "wr.trades_table(r)", "wr.fees_table(r)",
                 "wr.costs_table(r)", "wr.regime_table(r)", "wr.qc_table(r)", "wr.risk_table(r)",
                 "wr.manifest_table(r)"):
        assert call in source, call


def test_live_monitor_notebook_shows_every_part_of_the_monitor():
    source = "\n".join(c.source for c in _code(_read("live_monitor.ipynb")))

    for call in ("wr.load_live(run_id, warehouse=warehouse)", "wr.live_headline_table(m)",
                 "wr.live_lag_figure(m)", "wr.live_book_table(m)", "wr.live_orders_table(m)",
                 "wr.live_fills_table(m)", "wr.live_alerts_table(m)",
                 "wr.live_divergence_table(m)"):
        assert call in source, call


def test_backtest_notebook_runs_through_package_api_with_its_parameters():
    source = "\n".join(c.source for c in _code(_read("backtest.ipynb")))
    (call,) = [n for n in ast.walk(ast.parse(source))
               if isinstance(n, ast.Call) and ast.unparse(n.func) == "workbench.run_backtest"]

    assert [ast.unparse(a) for a in call.args] == ["wr.project_path(config)"]
    keywords = {k.arg: ast.unparse(k.value) for k in call.keywords}
    assert keywords.items() >= {
        "overrides": "overrides", "start": "start", "end": "end",
        "warehouse": "wr.warehouse_path(warehouse)", "runs_dir": "wr.runs_dir_path(runs_dir)",
    }.items()


def _make_target(name: str) -> str:
    """The recipe of one Makefile target (its lines up to the next blank line)."""
    text = (NOTEBOOKS.parent / "Makefile").read_text(encoding="utf-8")
    start = text.index(f"\n{name}:") + 1
    end = text.find("\n\n", start)
    return text[start:end if end != -1 else None]


def test_dev_and_lab_setups_install_the_workbench_kernel_the_notebooks_name():
    makefile = (NOTEBOOKS.parent / "Makefile").read_text(encoding="utf-8")

    assert "ipykernel install --sys-prefix --name workbench" in makefile
    for target in ("$(VENV)/.dev", "$(VENV)/.lab"):
        assert "$(KERNEL)" in _make_target(target), target
    assert "$(VENV)/.lab" in _make_target("test").splitlines()[0]  # the browser test


def test_make_lab_serves_ignored_copies_so_tracked_notebooks_stay_clean():
    recipe = _make_target("lab")

    assert "--notebook-dir lab" in recipe and "--notebook-dir notebooks" not in recipe
    assert 'cp "$$nb" "lab/' in recipe and '[ -e "lab/' in recipe  # never overwrites a copy
    ignored = (NOTEBOOKS.parent / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "/lab/" in ignored and ".ipynb_checkpoints/" in ignored
