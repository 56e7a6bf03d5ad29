"""Each notebook executed with papermill and real parameters (its own kernel ``workbench``, cwd the
notebooks folder, output in tmp_path), then its outputs checked.

* report.ipynb: the run's headline, figures and tables; it only reads (it runs while another
  process holds the warehouse open read-only, which would block any read-write open).
* backtest.ipynb: its run lands in the warehouse with the overrides and the window applied.
* compare.ipynb: both runs side by side.  * explore.ipynb: the widget and the SQL helper.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
import pytest

from workbench.warehouse import views
import report_warehouse as wh

pytestmark = pytest.mark.slow

PLOTLY = "application/vnd.plotly.v1+json"
WIDGET = "application/vnd.jupyter.widget-view+json"
REMOTE = re.compile(r'<(?:script|link)[^>]+(?:src|href)="https?://')
READ_ONLY_HOLDER = """\
import sys, time
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("holding", flush=True)
time.sleep(600)
"""



def execute(name: str, out_dir: Path, parameters: dict[str, Any]) -> Any:
    import papermill as pm

    out = out_dir / name
    pm.execute_notebook(str(wh.NOTEBOOKS / name), str(out), parameters=parameters,
                        cwd=str(wh.NOTEBOOKS), execution_timeout=300,
                        progress_bar=False, log_output=False)
    return nbformat.read(out, as_version=4)


def outputs(nb: Any) -> list[Any]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def html(nb: Any) -> str:
    return "\n".join(o.get("data", {}).get("text/html", "") for o in outputs(nb))


def text(nb: Any) -> str:
    parts = []
    for o in outputs(nb):
        parts.append(o.get("text", ""))
        parts.append(o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def figures(nb: Any) -> list[dict[str, Any]]:
    return [o["data"][PLOTLY] for o in outputs(nb) if PLOTLY in o.get("data", {})]


def assert_no_errors(nb: Any) -> None:
    errors = [o for o in outputs(nb) if o.output_type == "error"]
    assert errors == [], errors


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return wh.build(tmp_path_factory.mktemp("papermill-wh"))


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("papermill-out")


@pytest.fixture(scope="module")
def report_nb(built: Any, out_dir: Path) -> Any:
    holder = subprocess.Popen([sys.executable, "-c", READ_ONLY_HOLDER, str(built.db)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        return execute("report.ipynb", out_dir,
                       {"run_id": built.multi, "warehouse": str(built.db)})
    finally:
        holder.kill()
        holder.communicate(timeout=30)


@pytest.fixture(scope="module")
def backtest_nb(built: Any, out_dir: Path) -> tuple[Any, list[str]]:
    """The executed notebook and the run ids the warehouse held before it ran."""
    before = [r for (r,) in wh.query(built.db, "select run_id from runs")]
    nb = execute("backtest.ipynb", out_dir, {
        "config": "configs/sma_demo.yaml",  # relative to the project, whatever the cwd
        "overrides": ["run.name=from-notebook", "strategy.params.fast=15",
                      "strategy.params.slow=45"],
        "start": "2024-01-02", "end": "2024-01-03",
        "warehouse": str(built.db), "runs_dir": str(out_dir / "nb-runs")})
    return nb, before


@pytest.fixture(scope="module")
def compare_nb(built: Any, out_dir: Path) -> Any:
    return execute("compare.ipynb", out_dir,
                   {"run_ids": [built.multi, built.single], "warehouse": str(built.db)})


@pytest.fixture(scope="module")
def explore_nb(built: Any, out_dir: Path) -> Any:
    return execute("explore.ipynb", out_dir, {"warehouse": str(built.db)})


# --- report.ipynb ------------------------------------------------------------------------------
def test_report_notebook_runs_without_errors_with_the_run_id_injected(report_nb, built):
    assert_no_errors(report_nb)
    assert report_nb.metadata.papermill.parameters["run_id"] == built.multi
    injected = [c for c in report_nb.cells
                if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and repr(built.multi)[1:-1] in injected[0].source


def test_report_notebook_shows_headline_table_of_the_run(report_nb, built):
    assert f'<div class="wb-table"><h4>Headline: multi ({built.multi})</h4>' in html(report_nb)
    assert "from rpt.performance" in html(report_nb)


def test_report_notebook_shows_equity_candles_returns_and_heatmap_figures(report_nb):
    titles = [f["layout"]["title"]["text"] for f in figures(report_nb)]

    assert len(titles) == 5, titles
    assert titles[0].startswith("Equity and drawdown")
    assert titles[1].startswith("BTCUSDT: ") and "fills and round trips" in titles[1]
    assert titles[2].startswith("ETHUSDT: ")
    assert titles[3] == "Returns distribution"
    assert titles[4].startswith("Daily returns %")  # a three-day run: by week and weekday


def test_report_notebook_buy_sell_markers_and_round_trips_on_candles(report_nb):
    btc = figures(report_nb)[1]

    assert [t.get("name") for t in btc["data"]] == ["BTCUSDT", "buy", "sell", "round trips"]


def test_report_notebook_shows_trades_fees_qc_risk_and_manifest(report_nb, built):
    page = html(report_nb)
    row = wh.query(built.db, "select config_hash, data_hash, git_sha from runs where run_id = ?",
                   [built.multi])[0]

    for title in ("Trades (FIFO round trips)", "Fees and exposure",
                  "Costs: what each assumption took", "Performance by regime",
                  "Data quality (QC of the bars the run read)", "Risk blocks", "Manifest"):
        assert f"<h4>{title}</h4>" in page, title
    assert "gap policy: forward." in page and "10 missing bars" in page
    assert "RISK_SYMBOL_NOT_ALLOWED" in page
    for value in row:
        assert f"<td>{value}</td>" in page
    assert f"rpt.performance v{views.versions(views.check())['rpt.performance']['version']}" in page


def test_report_notebook_embeds_plotly_js_once_and_loads_nothing_remote(report_nb):
    outs = [o["data"]["text/html"] for o in outputs(report_nb)
            if "text/html" in o.get("data", {})]

    assert sum("* plotly.js v" in h for h in outs) == 1
    assert not any(REMOTE.search(h) for h in outs)


# --- backtest.ipynb ----------------------------------------------------------------------------
def test_backtest_notebook_writes_one_new_run_with_overrides_applied(backtest_nb, built):
    nb, before = backtest_nb
    assert_no_errors(nb)

    rows = wh.query(built.db, "select run_id, name, status, config_json from runs "
                              "where not list_contains(?, run_id)", [before])

    assert len(rows) == 1
    run_id, name, status, config_json = rows[0]
    config = json.loads(config_json)
    assert (name, status) == ("from-notebook", "completed")
    assert config["strategy"]["params"] == {"fast": 15, "slow": 45, "qty": 0.1}
    assert f"run_id={run_id} " in text(nb)


def test_backtest_notebook_run_covers_the_start_end_window(backtest_nb, built):
    nb, before = backtest_nb

    ((config_json, first, last, bars, run_dir),) = wh.query(
        built.db, "select config_json, epoch_ms(start_ts), epoch_ms(end_ts), bar_count, run_dir "
                  "from runs where not list_contains(?, run_id)", [before])

    config = json.loads(config_json)
    assert (config["data"]["start"], config["data"]["end"]) == ("2024-01-02T00:00:00Z",
                                                                "2024-01-03T00:00:00Z")
    day = 1_440 * wh.MINUTE_MS
    assert first == wh.JAN_2024_MS + day
    assert last == wh.JAN_2024_MS + 2 * day - wh.MINUTE_MS  # end is exclusive
    assert bars == 1_440
    assert Path(run_dir).parent == Path(nb.metadata.papermill.parameters["runs_dir"])
    assert (Path(run_dir) / "run_manifest.json").is_file()


def test_backtest_notebook_shows_the_new_runs_report(backtest_nb):
    nb, _ = backtest_nb

    page = html(nb)
    assert "<h4>Headline: from-notebook (" in page
    assert "<h4>Trades (FIFO round trips)</h4>" in page and "<h4>Risk blocks</h4>" in page
    assert len(figures(nb)) == 2  # equity and drawdown; BTCUSDT candles


# --- compare.ipynb -----------------------------------------------------------------------------
def test_compare_notebook_shows_both_runs_side_by_side(compare_nb, built):
    assert_no_errors(compare_nb)
    page = html(compare_nb)

    assert "<h4>Runs side by side</h4>" in page
    for run_id, name in ((built.multi, "multi"), (built.single, "single")):
        assert f"<td>{run_id}</td>" in page
        assert f"<h4>Headline: {name} ({run_id})</h4>" in page
    (fig,) = figures(compare_nb)
    assert [t["name"] for t in fig["data"]] == [f"multi {built.multi}",
                                                f"single {built.single}"]


# --- explore.ipynb -----------------------------------------------------------------------------
def test_explore_notebook_shows_the_explorer_widget(explore_nb):
    assert_no_errors(explore_nb)

    views = [o for o in outputs(explore_nb) if WIDGET in o.get("data", {})]

    assert len(views) == 1
    assert views[0]["data"][WIDGET]["model_id"]


def test_explore_notebook_free_sql_cell_shows_a_table_of_runs(explore_nb, built):
    page = html(explore_nb)

    assert f"<td>{built.single}</td>" in page and f"<td>{built.multi}</td>" in page
    shown = re.search(r'<p class="wb-note">(\d+) rows</p>', page)
    assert shown and int(shown.group(1)) >= 2  # completed runs (this module adds one)
    assert built.failed not in page  # rpt.performance holds completed runs only
