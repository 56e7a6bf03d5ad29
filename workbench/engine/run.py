"""One backtest job, end to end: config -> bars -> QC -> loop -> run directory -> warehouse.

The warehouse is opened read-write for the length of the job. The ``runs`` row is written first
(status ``running``); a completed run's rows land in one transaction with status ``completed``;
a failed run leaves only its ``runs`` row (status ``failed``, with the error) and its QC
findings, and a run directory with its manifest and logs but no result files.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import traceback
from pathlib import Path
from typing import Any

from workbench import manifest as mf
from workbench import rundir
from workbench.config import Config, parse_when, timeframe_ms
from workbench.engine import summary
from workbench.engine.backtest import RunResult, build_step, build_strategy, simulate
from workbench.engine.journal import MemoryJournal
from workbench.errors import ConfigError, DataError, WarehouseError, WorkbenchError
from workbench.feeds.history import check_series, load_series, merge
from workbench.feeds.qc import Finding, log_findings, summarize
from workbench.model import ms_to_iso
from workbench.telemetry.log import JsonlLog
from workbench.telemetry.metrics import Stopwatch
from workbench.warehouse import results, views
from workbench.warehouse.connect import open_rw, resolve_path

RUN_FILES = ("trades.csv", "orders.csv", "fills.csv", "equity.csv")


def _prepare_dir(out: str | Path | None, run_id: str, runs_dir: str | Path = "runs") -> Path:
    run_dir = Path(out) if out else Path(runs_dir) / run_id
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(
            "the run directory already holds files", where=str(run_dir),
            fix="pass an empty or new --out DIR (each run writes its own directory)",
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def execute(cfg: Config, *, warehouse: str | Path | None = None, out: str | Path | None = None,
            progress: bool = False, env_prefix: str = "WB_",
            runs_dir: str | Path = "runs") -> RunResult:
    """Run a validated config; see ``workbench.run_backtest``."""
    collecting = gc.isenabled()
    gc.disable()  # the job holds millions of small objects; see feed
    try:
        return _execute(cfg, warehouse=warehouse, out=out, progress=progress,
                        env_prefix=env_prefix, runs_dir=runs_dir)
    finally:
        if collecting:
            gc.enable()


def _execute(cfg: Config, *, warehouse: str | Path | None, out: str | Path | None,
             progress: bool, env_prefix: str, runs_dir: str | Path) -> RunResult:
    watch = Stopwatch()
    start, end = parse_when(cfg.data.start, "data.start"), parse_when(cfg.data.end, "data.end")
    if start is not None and end is not None and start >= end:
        raise ConfigError(
            f"empty date range: from {ms_to_iso(start)} is not before to {ms_to_iso(end)}",
            where="data.start/data.end (--from/--to)",
            fix="--from is inclusive and --to exclusive: choose a later --to",
        )
    strategy = build_strategy(cfg)  # fails fast on a bad class or params
    view_list = views.check()
    watch.lap("prepare")
    run_id = mf.new_id()
    warehouse = resolve_path(warehouse, env_prefix)
    con = open_rw(warehouse)  # a busy warehouse stops the run before anything is written
    try:
        run_dir = _prepare_dir(out, run_id, runs_dir)
    except BaseException:
        con.close()
        raise
    log = JsonlLog(run_dir / "logs.jsonl")
    manifest: dict[str, Any] = {
        "run_id": run_id,
        "mode": "backtest",
        "name": cfg.run.name,
        "status": "running",
        "config": cfg.to_dict(),
        "config_hash": cfg.hash(),
        "data_hash": None,
        "git_sha": mf.git_sha(),
        "versions": mf.versions(),
        "seed": cfg.run.seed,
        "view_versions": views.versions(view_list),
        "sqlglot_version": (views.read_lock() or {}).get("sqlglot_version"),
        "gap_policy": cfg.data.gaps,
        "symbols": list(cfg.data.symbols),
        "timeframe": cfg.data.timeframe,
        "warehouse": str(warehouse),
        "started_at": mf.utc_now_iso(),
        "ended_at": None,
    }
    findings: list[Finding] = []
    try:
        results.insert_run(con, {
            "run_id": run_id, "mode": "backtest", "name": cfg.run.name, "status": "running",
            "config_json": manifest["config"], "config_hash": manifest["config_hash"],
            "git_sha": manifest["git_sha"], "started_at": manifest["started_at"],
            "versions": manifest["versions"], "view_versions": manifest["view_versions"],
            "gap_policy": cfg.data.gaps, "symbols": list(cfg.data.symbols),
            "timeframe": cfg.data.timeframe, "timeframe_ms": timeframe_ms(cfg.data.timeframe),
            "initial_cash": cfg.portfolio.initial_cash, "quote": cfg.portfolio.quote,
            "seed": cfg.run.seed, "run_dir": str(run_dir),
        })
        views.deploy(con, view_list)
        watch.lap("open_warehouse")
        log.info("run", f"backtest {run_id} started", config_hash=manifest["config_hash"],
                 strategy=cfg.strategy.class_path)
        return _run(cfg, con, strategy, run_id, run_dir, start, end, findings, manifest, log,
                    progress, watch)
    except AfterCommit as late:
        # The run is complete in the warehouse and its files are written; only its manifest or
        # closing log record failed. Say so; do not turn a completed run into a failed one.
        log.error("run", f"backtest {run_id} completed, then: {late.cause!r}")
        raise WarehouseError(
            f"run {run_id} completed (its rows are committed and its CSVs written), but "
            f"writing {run_dir / 'run_manifest.json'} failed: {late.cause}",
            fix="free disk space or fix permissions; `workbench runs show RUN_ID` has the "
                "run's record") from late.cause
    except BaseException as exc:
        _rollback_quietly(con)  # a transaction the failure left open must not hold the rows
        message = exc.render() if isinstance(exc, WorkbenchError) else (
            f"{type(exc).__name__}: {exc}")
        log.error("run", f"backtest {run_id} failed: {message}",
                  traceback="".join(traceback.format_exception(exc)))
        manifest.update(status="failed", error=message, ended_at=mf.utc_now_iso())
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        try:
            results.record_failure(con, run_id, message, manifest["ended_at"], findings,
                                   cfg.data.timeframe, cfg.data.gaps)
        except Exception as inner:  # the warehouse itself failed: say so, keep the first error
            log.error("run", f"could not record the failure in the warehouse: {inner}")
        mf.write(run_dir / "run_manifest.json", manifest)
        if isinstance(exc, WorkbenchError):
            exc.what = f"run {run_id} failed: {exc.what}"
        raise
    finally:
        log.close()
        con.close()


class AfterCommit(Exception):
    """An error after the run's transaction committed (the run itself is complete)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _rollback_quietly(con: Any) -> None:
    import duckdb

    with contextlib.suppress(duckdb.Error):  # no transaction was open
        con.execute("rollback")


def _run(cfg: Config, con: Any, strategy: Any, run_id: str, run_dir: Path, start: int | None,
         end: int | None, findings: list[Finding], manifest: dict[str, Any], log: JsonlLog,
         progress: bool, watch: Stopwatch) -> RunResult:
    tf = cfg.data.timeframe
    tf_ms = timeframe_ms(tf)
    reports = []
    for symbol in cfg.data.symbols:
        report = check_series(load_series(con, symbol, tf, tf_ms, start, end), cfg.data.gaps)
        reports.append(report)
        findings += report.findings
    log_findings(log, findings)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        gaps = sum(1 for f in errors if f.rule == "gap")
        raise DataError(
            f"the bars fail QC under gap policy {cfg.data.gaps!r} ({len(errors)} findings, "
            f"{gaps} gaps):\n       {summarize(errors)}",
            fix="run with --gaps forward (fill flat bars) or --gaps none (keep the gaps), or "
                "ingest the missing bars; every finding is in qc_events",
        )
    watch.lap("read_and_qc")
    data = merge([r.series for r in reports])
    seen = sorted((r.series for r in reports), key=lambda s: s.symbol)
    manifest["data_hash"] = mf.data_hash(
        [a for s in seen for a in (s.ts, s.open, s.high, s.low, s.close, s.volume)],
        [s.symbol for s in seen])
    manifest["qc"] = {
        "gaps": sum(len(r.gaps) for r in reports),
        "filled_bars": sum(r.filled_bars for r in reports),
        "findings": len(findings),
    }
    watch.lap("merge")
    # The run's transaction opens now: DuckDB inserts the bars it sees (releasing the GIL)
    # while the loop runs; the loop's rows join them afterwards, then it commits or rolls back.
    threads = con.execute("select current_setting('threads')").fetchall()[0][0]
    con.execute("set threads = 1")  # leave the other core to the loop
    early = Background(results.start_results, con, run_id, data, findings, tf, cfg.data.gaps)
    try:
        step = build_step(cfg, strategy, run_id, log)
        bar = _progress_bar(len(data), progress)
        equity = simulate(step, data, bar.update if bar is not None else None)
        if bar is not None:
            bar.close()
    finally:
        early.wait()  # the transaction is the main thread's again; errors roll it back
    early.result()
    con.execute(f"set threads = {int(threads)}")
    watch.lap("loop")
    journal = step.journal
    assert isinstance(journal, MemoryJournal)
    manifest.update(bars=len(data), first_bar_ts=ms_to_iso(data.ts[0]),
                    last_bar_ts=ms_to_iso(data.ts[-1]))
    risk = step.risk
    risk_summary = risk.summary() if risk is not None else None
    manifest["risk"] = risk_summary or {"enabled": False}
    summary.record(manifest, strategy, reports, journal.orders, start, end)
    metrics: dict[str, Any] = {}
    files: Background | None = None

    def finish() -> dict[str, Any]:
        # The rows are in. The CSVs are formatted on a thread while DuckDB (which releases the
        # GIL) computes the headline; the run commits as completed only when both succeeded.
        nonlocal files
        watch.lap("write_warehouse")
        files = Background(rundir.write_all, run_dir, step.book.round_trips, journal.orders,
                           journal.fills, equity)
        metrics.update(headline(con, run_id))
        watch.lap("metrics")
        files.result()
        watch.lap("write_csv_wait")
        manifest.update(status="completed", ended_at=mf.utc_now_iso())
        return {"status": "completed", "ended_at": manifest["ended_at"]}

    try:
        results.finish_results(con, run_id, journal, {
            "data_hash": manifest["data_hash"], "start_ts": manifest["first_bar_ts"],
            "end_ts": manifest["last_bar_ts"], "bar_count": len(data),
        }, risk.events_table() if risk is not None else None, before_commit=finish,
            metrics=results.risk_metrics(risk_summary, step.now) if risk_summary else None)
    finally:
        if files is not None:
            files.wait()
    watch.lap("commit")
    manifest["metrics"] = metrics
    manifest["timings_s"] = watch.laps
    try:
        mf.write(run_dir / "run_manifest.json", manifest)
        log.info("run", f"backtest {run_id} completed", bars=len(data),
                 orders=len(journal.orders), fills=len(journal.fills), metrics=metrics)
    except Exception as exc:
        raise AfterCommit(exc) from exc
    return RunResult(run_id, run_dir, metrics, manifest)


class Background:
    """Run ``fn(*args)`` on a thread; ``result()`` waits and re-raises what it raised."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, *args), daemon=True)
        self._thread.start()

    def _run(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # handed to the caller by result()
            self.error = exc

    def wait(self) -> None:
        self._thread.join()

    def result(self) -> None:
        self._thread.join()
        if self.error is not None:
            raise self.error


def headline(con: Any, run_id: str) -> dict[str, Any]:
    """The run's row of ``rpt.performance`` as a dict (timestamps as ISO strings)."""
    rel = con.sql("select * from rpt.performance where run_id = ?", params=[run_id])
    rows = rel.fetchall()
    if not rows:
        return {}
    out = dict(zip(rel.columns, rows[0], strict=True))
    for key in ("first_ts", "last_ts"):
        if out.get(key) is not None:
            out[key] = out[key].isoformat(timespec="milliseconds").replace("+00:00", "Z")
    out.pop("run_id", None)
    return out


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm  # a widget in notebooks, a text bar on a terminal

    return tqdm(total=total, unit="bar", unit_scale=True, desc="backtest", leave=False)



