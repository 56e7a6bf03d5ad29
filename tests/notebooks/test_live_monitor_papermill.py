"""live_monitor.ipynb executed with papermill (its own kernel ``workbench``, cwd the notebooks
folder, output in tmp_path) against a recorded 200-bar paper run (tests/support/paper_recording.py:
a bar gap and its alert, a dozen orders, a backtest twin that agrees), then its outputs checked:
the latency percentiles as the warehouse computes them, the lag figure, the book, orders,
alerts, "no divergence", nothing remote and no venue key or secret anywhere."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import duckdb
import nbformat
import pytest
from paper_recording import FAKE_KEY, FAKE_SECRET, record_paper_run
from report_warehouse import NOTEBOOKS

from workbench.report.tables import round_for_display

pytestmark = pytest.mark.slow

PLOTLY = "application/vnd.plotly.v1+json"
REMOTE = re.compile(r'<(?:script|link)[^>]+(?:src|href)="https?://')


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return record_paper_run(tmp_path_factory.mktemp("monitor-run"))


def _execute(out: Path, parameters: dict[str, Any]) -> Any:
    import papermill as pm

    pm.execute_notebook(str(NOTEBOOKS / "live_monitor.ipynb"), str(out), parameters=parameters,
                        cwd=str(NOTEBOOKS), execution_timeout=300, progress_bar=False,
                        log_output=False)
    return nbformat.read(out, as_version=4)


@pytest.fixture(scope="module")
def monitor_nb(recorded: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("monitor-out") / "live_monitor.ipynb"
    return _execute(out, {"run_id": recorded.run_id, "warehouse": str(recorded.db)})


def outputs(nb: Any) -> list[Any]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def page(nb: Any) -> str:
    return "\n".join(o.get("data", {}).get("text/html", "") for o in outputs(nb))


def percentiles(db: Path, run_id: str) -> list[float]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute("select quantile_cont(value, 0.5), quantile_cont(value, 0.95), "
                          "quantile_cont(value, 0.99) from metrics where run_id = ? "
                          "and name = 'strategy_tick_latency'", [run_id]).fetchone()
    finally:
        con.close()
    assert row is not None and None not in row
    return [float(v) for v in row]


def test_live_monitor_notebook_runs_without_errors_with_the_run_id_injected(monitor_nb,
                                                                            recorded):
    errors = [o for o in outputs(monitor_nb) if o.output_type == "error"]
    assert errors == [], errors
    assert monitor_nb.metadata.papermill.parameters["run_id"] == recorded.run_id


def test_live_monitor_notebook_headline_shows_the_latency_percentiles(monitor_nb, recorded):
    html = page(monitor_nb)
    p50, p95, p99 = (round_for_display(v) for v in percentiles(recorded.db, recorded.run_id))

    assert f"<h4>Live run {recorded.run_id}</h4>" in html
    assert (f"<td>p50 {p50} ms, p95 {p95} ms, p99 {p99} ms (over {recorded.bars} decisions)"
            "</td>") in html
    for label, value in (("mode", "paper"), ("status", "completed"),
                         ("bars decided", str(recorded.bars))):
        assert f"<td>{label}</td><td>{value}</td>" in html, label
    assert "from status.json (" in html  # the run directory was found through runs.run_dir


def test_live_monitor_notebook_lag_figure_titled_with_percentiles(monitor_nb, recorded):
    figures = [o["data"][PLOTLY] for o in outputs(monitor_nb) if PLOTLY in o.get("data", {})]
    p50 = round_for_display(percentiles(recorded.db, recorded.run_id)[0])

    (fig,) = figures
    assert fig["layout"]["title"]["text"].startswith(f"Lag and latency: p50 {p50} ms, p95 ")
    assert [t["name"] for t in fig["data"]] == ["lag ms", "latency ms"]
    assert len(fig["data"][0]["x"]) == recorded.bars  # one point per decision: not downsampled


def test_live_monitor_notebook_shows_no_divergence_from_the_backtest_twin(monitor_nb,
                                                                          recorded):
    html = page(monitor_nb)

    assert "<h4>First divergence from the backtest twin</h4>" in html
    assert re.search(rf"no divergence: \d+ orders compared with {recorded.run_id}\.backtest, "
                     r"all agree", html)


def test_live_monitor_notebook_shows_book_orders_fills_and_the_gap_alert(monitor_nb):
    html = page(monitor_nb)

    for title in ("Book", "Orders", "Fills", "Alerts"):
        assert f"<h4>{title}</h4>" in html, title
    assert "<td>bar_gap</td><td>warning</td><td>BTCUSDT: 3 missing bar(s)" in html
    assert "<td>equity (USDT)</td>" in html


def test_live_monitor_notebook_outputs_hold_no_venue_key_or_secret(monitor_nb):
    everything = json.dumps([o for o in outputs(monitor_nb)])

    assert FAKE_KEY not in everything and FAKE_SECRET not in everything


def test_live_monitor_notebook_embeds_plotly_js_once_and_loads_nothing_remote(monitor_nb):
    outs = [o["data"]["text/html"] for o in outputs(monitor_nb)
            if "text/html" in o.get("data", {})]

    assert sum("* plotly.js v" in h for h in outs) == 1
    assert not any(REMOTE.search(h) for h in outs)


def test_live_monitor_notebook_without_run_id_shows_the_latest_live_run(recorded, tmp_path):
    nb = _execute(tmp_path / "latest.ipynb", {"warehouse": str(recorded.db)})

    assert f"<h4>Live run {recorded.run_id}</h4>" in page(nb)  # not its backtest twin
