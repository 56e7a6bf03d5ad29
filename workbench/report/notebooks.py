"""Executing the report notebooks with papermill and exporting self-contained HTML.

``workbench report RUN_ID`` -> ``reports/<run_id>/report.ipynb`` (the executed notebook, the
report of record, with every detail) and ``reports/<run_id>/report.html`` (code hidden, plotly.js
embedded, no CDN: it opens offline).
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.warehouse.connect import reading, resolve_path
from workbench.warehouse.paths import project_root


def _notebooks_dir() -> Path:
    for candidate in (project_root() / "notebooks", Path(__file__).resolve().parents[1]
                      / "notebooks"):
        if (candidate / "report.ipynb").is_file():
            return candidate
    return project_root() / "notebooks"


NOTEBOOKS = _notebooks_dir()
TEMPLATES = Path(__file__).resolve().parent / "templates"
CELL_TIMEOUT_S = 600
# a script or stylesheet fetched from anywhere but this file: http(s) or protocol-relative
_REMOTE = re.compile(r"""<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:https?:)?//""",
                     re.IGNORECASE)


class ReportError(WorkbenchError):
    """A report notebook failed; the executed notebook keeps the details."""


def _targets(out: str | Path | None, default_dir: Path, stem: str) -> tuple[Path, Path]:
    """(executed notebook, HTML) for ``--out``: an .html file, or a directory."""
    if out is None:
        folder = default_dir
    elif str(out).endswith(".html"):
        html = Path(out)
        return html.with_suffix(".ipynb"), html
    else:
        folder = Path(out)
    return folder / f"{stem}.ipynb", folder / f"{stem}.html"


def _refuse_overwrite(nb: Path, html: Path, force: bool) -> None:
    """A report already at the target is kept unless ``force``; a file is never a folder."""
    folder = nb.parent
    if folder.exists() and not folder.is_dir():
        raise WorkbenchError("--out names a file, not a folder or an .html file",
                             where=str(folder),
                             fix="pass a folder (new or existing) or a path ending in .html")
    if force:
        for target in (nb, html):
            if target.is_dir():
                raise WorkbenchError("the report would replace a folder", where=str(target),
                                     fix="pass another --out")
        return
    existing = [t for t in (html, nb) if t.exists()]
    if existing:
        raise WorkbenchError(
            "a report is already there", where=str(existing[0]),
            fix="pass --force to overwrite it, or another --out PATH")


def run_report(run_id: str, *, warehouse: str | Path | None = None,
               out: str | Path | None = None, progress: bool | None = None,
               env_prefix: str = "WB_", force: bool = False) -> Path:
    """Execute report.ipynb for one run; return the HTML path. An existing report at the
    target is refused unless ``force``."""
    db = resolve_path(warehouse, env_prefix).resolve()
    with reading(db) as con:
        from workbench.report.data import resolve_run_id

        run_id = resolve_run_id(con, run_id)  # "no such run" before any notebook starts
    nb, html = _targets(out, Path("reports") / run_id, "report")
    _refuse_overwrite(nb, html, force)
    _execute("report.ipynb", nb, html, {"run_id": run_id, "warehouse": str(db)},
             f"run {run_id}", progress)
    return html


def run_compare(run_ids: Sequence[str], *, warehouse: str | Path | None = None,
                out: str | Path | None = None, progress: bool | None = None,
                env_prefix: str = "WB_", force: bool = False) -> Path:
    """Execute compare.ipynb for two or more runs; return the HTML path. An existing
    comparison at the target is refused unless ``force``."""
    if len(run_ids) < 2:
        raise WorkbenchError("compare needs two or more run ids",
                             fix="workbench compare RUN_ID RUN_ID [RUN_ID ...]")
    db = resolve_path(warehouse, env_prefix).resolve()
    with reading(db) as con:
        from workbench.report.data import resolve_run_id

        ids = [resolve_run_id(con, r) for r in run_ids]
    nb, html = _targets(out, Path("reports") / ("compare-" + "-".join(i[-6:] for i in ids)),
                        "compare")
    _refuse_overwrite(nb, html, force)
    _execute("compare.ipynb", nb, html, {"run_ids": ids, "warehouse": str(db)},
             f"runs {', '.join(ids)}", progress)
    return html


def _execute(notebook: str, nb_out: Path, html_out: Path, parameters: dict[str, Any],
             what: str, progress: bool | None) -> None:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    source = NOTEBOOKS / notebook
    if not source.is_file():
        raise ReportError(f"the report notebook {source} is missing",
                          fix="reinstall workbench from a checkout (notebooks/ ships with it)")
    from jupyter_client.manager import KernelManager

    nb_out.parent.mkdir(parents=True, exist_ok=True)
    show = sys.stderr.isatty() if progress is None else progress
    # The kernel talks over local sockets in a private folder (no TCP port to warn about),
    # and is shut down here whatever happens.
    failure: PapermillExecutionError | None = None
    with tempfile.TemporaryDirectory(prefix="wb-kernel-") as sockets:
        km = KernelManager(kernel_name="python3", transport="ipc", ip=f"{sockets}/kernel")
        try:
            pm.execute_notebook(str(source), str(nb_out), parameters=parameters,
                                cwd=str(NOTEBOOKS), execution_timeout=CELL_TIMEOUT_S,
                                progress_bar=show, log_output=False, km=km)
        except PapermillExecutionError as exc:
            failure = exc
        finally:
            if km.has_kernel:
                km.shutdown_kernel(now=True)
    if failure is not None:
        cell = _cell_source(nb_out, failure.exec_count)
        raise ReportError(
            f"{notebook} failed for {what} in cell {failure.exec_count} ({cell}): "
            f"{failure.ename}: {failure.evalue}",
            fix=f"the executed notebook with the full traceback is {nb_out}",
        )
    export_html(nb_out, html_out)


def _cell_source(nb_path: Path, exec_count: int | None) -> str:
    import nbformat

    try:
        nb = nbformat.read(nb_path, as_version=4)
    except (OSError, ValueError):
        return "?"
    for cell in nb.cells:
        if cell.get("execution_count") == exec_count and cell.cell_type == "code":
            first = next((ln for ln in cell.source.splitlines() if ln.strip()), "")
            return first[:80]
    return "?"


def export_html(nb_path: Path, html_path: Path) -> Path:
    """The executed notebook as one HTML file: outputs only, nothing fetched from a network."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="offline", extra_template_basedirs=[str(TEMPLATES)],
                            exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(nb_path, as_version=4))
    remote = _REMOTE.search(body)
    if remote:  # a report must open offline: refuse rather than ship a half-working page
        raise ReportError(f"the exported HTML would load {body[remote.start():][:120]!r}",
                          fix="report figures and tables must not reference remote scripts")
    html_path.write_text(body, encoding="utf-8")
    return html_path
