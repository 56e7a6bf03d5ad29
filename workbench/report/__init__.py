"""Reports and exploration: what the notebooks call (they hold no logic of their own).

    import workbench.report as wr
    wr.setup()                      # plotly renders offline, tables as HTML
    r = wr.load_run(run_id)         # one read-only pass over the warehouse
    wr.headline_table(r); wr.equity_figure(r); ...
    m = wr.load_live(run_id)        # the live monitor (live.py): lag, latency, book, alerts

``workbench report RUN_ID`` executes ``notebooks/report.ipynb`` with papermill and exports a
self-contained HTML file (``notebooks.py``). Relative paths in notebooks resolve against the
project directory, not the kernel's cwd (``project.py``).
"""

from workbench.report.data import RunReport, latest_run_id, load_run, load_runs, resolve_run_id
from workbench.report.explore import Explorer, sql
from workbench.report.fidelity import (
    FidelityReport,
    fidelity_figure,
    fidelity_table,
    load_fidelity,
)
from workbench.report.figures import (
    candles_figure,
    compare_equity_figure,
    equity_figure,
    heatmap_figure,
    plot,
    returns_figure,
    run_figure,
)
from workbench.report.live import (
    LiveMonitor,
    live_alerts_table,
    live_book_table,
    live_divergence_table,
    live_fills_table,
    live_headline_table,
    live_lag_figure,
    live_orders_table,
    load_live,
)
from workbench.report.offline import setup
from workbench.report.parity import (
    ParityReport,
    load_parity,
    parity_figure,
    parity_history_table,
    parity_table,
)
from workbench.report.project import project_dir, project_path, runs_dir_path, warehouse_path
from workbench.report.sweep import SweepReport, load_sweep, sweep_heatmap, top_runs_table
from workbench.report.tables import (
    compare_table,
    costs_table,
    fees_table,
    headline_table,
    manifest_table,
    qc_table,
    regime_table,
    risk_table,
    trades_table,
)
from workbench.report.walkforward import (
    WalkForwardReport,
    load_walkforward,
    walkforward_figure,
    walkforward_table,
)

__all__ = [
    "Explorer",
    "FidelityReport",
    "LiveMonitor",
    "ParityReport",
    "RunReport",
    "SweepReport",
    "WalkForwardReport",
    "candles_figure",
    "compare_equity_figure",
    "compare_table",
    "costs_table",
    "equity_figure",
    "fees_table",
    "fidelity_figure",
    "fidelity_table",
    "headline_table",
    "heatmap_figure",
    "latest_run_id",
    "live_alerts_table",
    "live_book_table",
    "live_divergence_table",
    "live_fills_table",
    "live_headline_table",
    "live_lag_figure",
    "live_orders_table",
    "load_fidelity",
    "load_live",
    "load_parity",
    "load_run",
    "load_runs",
    "load_sweep",
    "load_walkforward",
    "manifest_table",
    "parity_figure",
    "parity_history_table",
    "parity_table",
    "plot",
    "project_dir",
    "project_path",
    "qc_table",
    "regime_table",
    "resolve_run_id",
    "returns_figure",
    "risk_table",
    "run_figure",
    "runs_dir_path",
    "setup",
    "sql",
    "sweep_heatmap",
    "top_runs_table",
    "trades_table",
    "walkforward_figure",
    "walkforward_table",
    "warehouse_path",
]
