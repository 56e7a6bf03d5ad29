"""One backtest job, end to end: config -> bars -> QC -> loop -> run directory -> warehouse.

``run_backtest`` is the public entry; ``execute`` runs a validated config. The loop's parts
(clock, feed, broker, journal) come from ``engine/kernel.py`` for the run's mode.

Nobody holds the warehouse across computation (adr/0008). The job opens it read-only to read
its bars and closes it; runs the loop and computes its headline numbers in memory (a private
in-memory DuckDB with the same versioned views); then writes the whole run, with status
``completed``, in one short transaction. A failed run writes only its ``runs`` row (status
``failed``, with the error) and its QC findings; a killed one writes nothing.

The run directory is built beside its final name (``<name>.partial``) and renamed into place
when the run has ended, completed or failed, so a directory under the final name is always a
whole one. ``logs.jsonl`` is written line by line as the run goes: a killed run's ``.partial``
directory keeps its story.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import shutil
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from workbench import manifest as mf
from workbench import rundir
from workbench.calendars import calendar_for
from workbench.config import Config, StrategyConfig, load_config, parse_when, timeframe_ms
from workbench.engine import actions as corporate
from workbench.engine import kernel, summary
from workbench.engine.backtest import EquityRows
from workbench.engine.journal import JournalContents, OrderState, contents, order_states
from workbench.engine.kernel import build_strategy, with_strategy
from workbench.errors import (
    ConfigError,
    DataError,
    ResourceError,
    WarehouseError,
    WorkbenchError,
    as_interruption,
    raise_if_signalled,
)
from workbench.feeds.history import LoopData, check_series, load_series, merge
from workbench.feeds.qc import Finding, QcReport, log_findings, summarize
from workbench.model import CorporateAction, Mode, ms_to_iso
from workbench.secrets import scrub
from workbench.strategy import Strategy, check_strategy_class, strategy_identity
from workbench.tags import as_tags
from workbench.telemetry.log import JsonlLog
from workbench.telemetry.metrics import Stopwatch
from workbench.warehouse import migrations, results, stale, views
from workbench.warehouse.connect import reading, resolve_path

READ_WAIT_S = 30.0  # how long a job waits for another process to release the file
WRITE_WAIT_S = 120.0


def _strategy_in(config: Any) -> Any:
    """A class object given as ``strategy.class`` in a config mapping, else None."""
    if isinstance(config, Config):
        return config.strategy._class
    if isinstance(config, Mapping):
        section = config.get("strategy")
        if isinstance(section, Mapping) and isinstance(section.get("class"), type):
            return section["class"]
    return None


def _without_class(config: Any) -> Any:
    if isinstance(config, Mapping) and isinstance(config.get("strategy"), Mapping):
        section = {k: v for k, v in config["strategy"].items() if k != "class"}
        return {**config, "strategy": section}
    return config


def as_config(config: Config | str | Path | Mapping[str, Any] | None, overrides: Iterable[str],
              env_prefix: str, env: Mapping[str, str] | None = None) -> Config:
    if isinstance(config, Config):
        if overrides:
            return load_config(None, overrides, base=config.to_dict(reveal=True), env={},
                               env_prefix=env_prefix)
        return config
    if isinstance(config, Mapping):
        return load_config(None, overrides, base=config, env=env, env_prefix=env_prefix)
    return load_config(config, overrides, env=env, env_prefix=env_prefix)


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    metrics: dict[str, Any]
    manifest: dict[str, Any]

    @property
    def headline(self) -> str:
        m = self.metrics
        fmt = lambda v, spec: "n/a" if v is None else format(v, spec)  # noqa: E731
        return (f"trades {m.get('trades', 0)}, total return {fmt(m.get('total_return_pct'), '.4f')}"
                f" %, max drawdown {fmt(m.get('max_drawdown_pct'), '.4f')} %, "
                f"Sharpe {fmt(m.get('sharpe'), '.3f')}")

    def __repr__(self) -> str:
        """Short enough for a notebook cell: the id, the headline, then any warnings."""
        lines = [f"RunResult {self.run_id} ({self.run_dir}): {self.headline}"]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    @property
    def summary(self) -> dict[str, Any]:
        """Warnings, order counts (rejected and risk-blocked by reason), bars per symbol."""
        return dict(self.manifest.get("summary") or {})

    @property
    def warnings(self) -> list[str]:
        """What the run should tell you: the range clipped to the data, a strategy that never
        finished its warm-up, rejected and risk-blocked orders (see engine/summary.py)."""
        return list(self.summary.get("warnings") or [])

    def plot(self, symbol: str | None = None) -> Any:
        """Equity, drawdown and the trades on the price, as one plotly figure
        (``workbench.plot(run_id)``); it reads the warehouse read-only."""
        from workbench.report.figures import plot

        return plot(self.run_id, warehouse=self.manifest.get("warehouse"), symbol=symbol)


def effective_config(
    config: Config | str | Path | Mapping[str, Any] | None, overrides: Iterable[str] = (), *,
    start: str | None = None, end: str | None = None, gaps: str | None = None,
    env_prefix: str = "WB_", env: Mapping[str, str] | None = None,
    strategy: type[Strategy] | str | None = None,
    strategy_path: str | Path | Iterable[str | Path] | None = None,
) -> Config:
    """The validated config ``run_backtest`` runs, from the same arguments (the strategy
    class, the data window and the strategy path folded in)."""
    cls = _strategy_in(config) if strategy is None else (
        strategy if isinstance(strategy, type) else None)
    if cls is not None:
        check_strategy_class(cls, "strategy" if strategy is not None else "strategy.class")
    if cls is not None or strategy is not None:  # the argument wins over the config's class
        config = _without_class(config)
    extra = list(overrides)
    if isinstance(strategy, str):
        extra.append(f"strategy.class={strategy}")
    elif cls is not None:
        extra.append(f"strategy.class={strategy_identity(cls)}")
    for key, value in (("data.start", start), ("data.end", end), ("data.gaps", gaps)):
        if value is not None:
            extra.append(f"{key}={value}")
    cfg = as_config(config, extra, env_prefix, env)
    if strategy_path is not None:
        dirs = ([strategy_path] if isinstance(strategy_path, str | Path)
                else list(strategy_path))
        paths = [str(p) for p in dirs] + list(cfg.strategy.path)
        cfg = cfg.model_copy(update={"strategy": StrategyConfig.model_validate(
            {**cfg.strategy.model_dump(by_alias=True), "path": paths})})
    if cls is not None:
        cfg = with_strategy(cfg, cls)
    return cfg


def run_backtest(
    config: Config | str | Path | Mapping[str, Any] | None = None,
    *,
    overrides: Iterable[str] = (),
    warehouse: str | Path | None = None,
    start: str | None = None,
    end: str | None = None,
    gaps: str | None = None,
    out: str | Path | None = None,
    env_prefix: str = "WB_",
    env: Mapping[str, str] | None = None,
    progress: bool | None = None,
    runs_dir: str | Path | None = None,
    strategy: type[Strategy] | str | None = None,
    strategy_path: str | Path | Iterable[str | Path] | None = None,
    tags: Mapping[str, str] | Iterable[str] | None = None,
) -> RunResult:
    """Run one backtest end to end and return its id, directory, headline metrics and manifest.

    ``config`` is a YAML path, a dict of sections (``{"data": {...}, "strategy": {"params":
    {...}}}``), a ``Config``, or None (the defaults). ``strategy`` is the strategy: a Strategy
    subclass (defined anywhere, a notebook included) or a ``"module:Class"`` string; a class
    may also be given as ``strategy.class`` in a dict. The config records a class as
    ``module:qualname``. ``strategy_path`` adds directories to search for ``module``
    (``--strategy-path``; the working directory is always searched).

    ``start`` (inclusive), ``end`` (exclusive) and ``gaps`` override the config's ``data``
    section, as ``--from``, ``--to`` and ``--gaps`` do on the command line. The run directory
    is ``out``, or ``runs_dir/<run_id>`` (``runs_dir`` defaults to ``$WB_RUNS_DIR``, else
    ``runs``). ``progress`` shows a bar (default: on a terminal). ``tags`` (``{"key":
    "value"}`` or ``["key=value"]``) are stored with the run (``runs.tags``, the manifest) and
    change neither its config hash nor its files (``workbench.tags``).
    """
    checked = as_tags(tags)
    cfg = effective_config(config, overrides, start=start, end=end, gaps=gaps,
                           env_prefix=env_prefix, env=env, strategy=strategy,
                           strategy_path=strategy_path)
    show = sys.stderr.isatty() if progress is None else progress
    if runs_dir is None:
        runs_dir = os.environ.get(f"{env_prefix}RUNS_DIR") or "runs"
    return execute(cfg, warehouse=warehouse, out=out, progress=show, env_prefix=env_prefix,
                   runs_dir=runs_dir, tags=checked)


def _final_dir(out: str | Path | None, run_id: str, runs_dir: str | Path = "runs") -> Path:
    run_dir = Path(out) if out else Path(runs_dir) / run_id
    if run_dir.name in ("", ".", ".."):  # `--out .`, `--out ..`, `--out /`: name it
        run_dir = Path(os.path.abspath(run_dir))
        if run_dir == Path(os.path.abspath(Path.cwd())) or not run_dir.name:
            raise ConfigError(
                "--out names the working directory (or the root), which a run cannot be "
                "built beside and renamed into", where=str(out),
                fix="pass a new directory, e.g. --out runs/my-run")
    if (run_dir.exists() or run_dir.is_symlink()) and not run_dir.is_dir():
        raise ConfigError("--out names a file, not a directory", where=str(run_dir),
                          fix="pass an empty or new --out DIR (each run writes its own directory)")
    if run_dir.is_symlink():  # a link to an empty directory: build beside the target, so the
        run_dir = Path(os.path.realpath(run_dir))  # rename lands in it and the link still works
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ConfigError(
            "the run directory already holds files", where=str(run_dir),
            fix="pass an empty or new --out DIR (each run writes its own directory)",
        )
    return run_dir


def _staging_dir(final: Path) -> tuple[Path, int]:
    """``<final>.partial``, empty, and a descriptor holding an exclusive lock on it: two runs
    given the same --out at once must not build in (or empty) each other's directory. The
    lock goes with the process, so a directory left by a killed run is taken over."""
    staging = final.with_name(final.name + ".partial")
    try:
        staging.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            staging.mkdir()
        fd = os.open(staging, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:  # a parent is a file, no permission, ...
        raise ConfigError(f"cannot create the run directory: {exc.strerror or exc}",
                          where=str(final), fix="pass an --out DIR that can be created") from None
    try:
        _lock(fd)
    except OSError:
        os.close(fd)
        raise ConfigError(
            "another run is writing to this run directory right now", where=str(final),
            fix="give each run its own --out DIR (or none: runs/<run_id>)") from None
    try:
        for entry in staging.iterdir():  # left by a killed run that wrote to the same --out
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        if _final_dir_taken(final):  # published while we waited for the lock
            raise ConfigError("the run directory already holds files", where=str(final),
                              fix="pass an empty or new --out DIR (each run writes its own "
                                  "directory)")
    except BaseException:
        os.close(fd)
        raise
    return staging, fd


def _final_dir_taken(final: Path) -> bool:
    return final.is_dir() and any(final.iterdir())


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (one run per --out is then the user's care)
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _publish(staging: Path, final: Path) -> None:
    if final.exists():  # an empty directory the user made for --out
        final.rmdir()
    staging.rename(final)


class _Stages:
    """The stage the job is in, for errors that come from the machine, not the user."""

    def __init__(self) -> None:
        self.name = "prepare"

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.name = name
        yield


def execute(cfg: Config, *, warehouse: str | Path | None = None, out: str | Path | None = None,
            progress: bool = False, env_prefix: str = "WB_", runs_dir: str | Path = "runs",
            mode: Mode = Mode.BACKTEST, tags: Mapping[str, str] | None = None,
            span: tuple[int | None, int | None] | None = None) -> RunResult:
    """Run a validated config in ``mode``; see ``workbench.run_backtest``. The mode's wiring
    (``kernel.wiring``) says whether the job pauses the garbage collector for its length.
    ``span`` (ms, ``[start, end)``) replaces ``data.start``/``data.end`` for reading the bars
    (``workbench rerun`` bounds an open-ended run to the bars it saw); the config is kept."""
    wired = kernel.wiring(mode)
    checked = as_tags(tags)
    with kernel.paused_gc(wired.pause_gc):
        return _execute(cfg, warehouse=warehouse, out=out, progress=progress,
                        env_prefix=env_prefix, runs_dir=runs_dir, mode=wired.mode,
                        tags=checked, span=span)


def _execute(cfg: Config, *, warehouse: str | Path | None, out: str | Path | None,
             progress: bool, env_prefix: str, runs_dir: str | Path, mode: Mode,
             tags: dict[str, str], span: tuple[int | None, int | None] | None = None
             ) -> RunResult:
    watch = Stopwatch()
    start, end = span or (parse_when(cfg.data.start, "data.start"),
                          parse_when(cfg.data.end, "data.end"))
    if start is not None and end is not None and start >= end:
        raise ConfigError(
            f"empty date range: from {ms_to_iso(start)} is not before to {ms_to_iso(end)}",
            where="data.start/data.end (--from/--to)",
            fix="--from is inclusive and --to exclusive: choose a later --to",
        )
    strategy = build_strategy(cfg)  # fails fast on a bad class or params
    view_list = views.check()
    run_id = mf.new_id()
    warehouse = resolve_path(warehouse, env_prefix)
    final_dir = _final_dir(out, run_id, runs_dir)
    staging, lock_fd = _staging_dir(final_dir)
    try:
        return _execute_in(cfg, mode, warehouse, strategy, view_list, run_id, final_dir,
                           staging, watch, start, end, progress, tags)
    finally:
        os.close(lock_fd)


def _execute_in(cfg: Config, mode: Mode, warehouse: Path, strategy: Any, view_list: list[Any],
                run_id: str, final_dir: Path, staging: Path, watch: Stopwatch,
                start: int | None, end: int | None, progress: bool, tags: dict[str, str]
                ) -> RunResult:
    log = JsonlLog(staging / "logs.jsonl")
    manifest: dict[str, Any] = {
        "run_id": run_id,
        "mode": mode.value,
        "name": cfg.run.name,
        "status": "running",
        "config": cfg.to_dict(),
        "config_hash": cfg.hash(),
        "data_hash": None,
        "git_sha": mf.git_sha(),
        "versions": mf.versions(),
        "seed": cfg.run.seed,
        "tags": tags,
        "execution": cfg.execution.manifest(),
        "view_versions": views.versions(view_list),
        "sqlglot_version": (views.read_lock() or {}).get("sqlglot_version"),
        "gap_policy": cfg.data.gaps,
        "symbols": list(cfg.data.symbols),
        "timeframe": cfg.data.timeframe,
        "warehouse": str(warehouse),
        "pid": os.getpid(),
        "host": stale.HOST,
        "started_at": mf.utc_now_iso(),
        "ended_at": None,
    }
    run_row = new_run_row(cfg, mode, manifest, final_dir)
    findings: list[Finding] = []
    stages = _Stages()
    watch.lap("prepare")
    try:
        log.info("run", f"{mode.value} {run_id} started", config_hash=manifest["config_hash"],
                 strategy=cfg.strategy.class_path)
        try:
            result = _run(cfg, mode, warehouse, strategy, view_list, run_row, staging,
                          final_dir, start, end, findings, manifest, log, progress, watch,
                          stages)
        except Exception as exc:
            if not _out_of_memory(exc):
                raise
            raise ResourceError(
                f"out of memory while {_STAGE_WORDS.get(stages.name, stages.name)} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'})",
                where=f"stage {stages.name}",
                fix=(f"run.memory_limit is {cfg.run.memory_limit}: raise it (e.g. --set "
                     "run.memory_limit=2GB) or unset it" if cfg.run.memory_limit and
                     stages.name == "metrics" else
                     "run a shorter range (--from/--to) or fewer symbols, close other programs, "
                     "or cap DuckDB's share with --set run.memory_limit=2GB (it then spills to "
                     "disk)")) from None
    except BaseException as raised:
        stop = as_interruption(raised)  # a signal that DuckDB reported as "Query interrupted"
        message = scrub(stop.render() if isinstance(stop, WorkbenchError) else _describe(stop))
        if manifest.get("warehouse_written") and isinstance(stop, KeyboardInterrupt):
            # Stopped after the commit: the run is complete; finish its directory (a few
            # small writes), then let the signal end the process.
            log.info("run", f"{mode.value} {run_id} completed (committed), then {message}")
            manifest.setdefault("timings_s", watch.laps)
            with contextlib.suppress(OSError):
                mf.write(staging / "run_manifest.json", manifest)
            log.close()
            with contextlib.suppress(OSError):
                _publish(staging, final_dir)
            if stop is raised:
                raise
            raise stop from None
        log.error("run", f"{mode.value} {run_id} failed: {message}",
                  traceback="".join(traceback.format_exception(raised)))
        if manifest.get("warehouse_written"):
            # The run is complete in the warehouse; only its directory failed afterwards.
            # Say so; do not turn a completed run into a failed one.
            log.close()
            with contextlib.suppress(OSError):
                _publish(staging, final_dir)
            raise WarehouseError(
                f"run {run_id} completed (its rows are committed), but writing its run "
                f"directory {final_dir} failed: {message}",
                fix="free disk space or fix permissions; `workbench runs show RUN_ID` has the "
                    "run's record") from stop
        manifest.update(status="failed", error=message, ended_at=mf.utc_now_iso())
        _record_failure(warehouse, run_row, manifest, findings, cfg, log)
        for name in rundir.FILES:
            (staging / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            mf.write(staging / "run_manifest.json", manifest)
        log.close()
        with contextlib.suppress(OSError):
            _publish(staging, final_dir)
        if isinstance(stop, WorkbenchError):
            stop.what = f"run {run_id} failed: {stop.what}"
        if stop is raised:
            raise
        raise stop from None
    log.close()
    return result


_STAGE_WORDS = {
    "read": "reading the bars", "loop": "running the strategy over the bars",
    "metrics": "computing the headline numbers", "write_warehouse": "writing the warehouse",
    "write_files": "writing the run directory",
}


_NO_MEMORY = re.compile(r"out of memory|could not allocate", re.IGNORECASE)


def _out_of_memory(exc: BaseException) -> bool:
    """MemoryError, DuckDB's OutOfMemoryException, or another DuckDB error that says it ran
    out (under a low memory_limit a failed allocation at commit is a TransactionException)."""
    import duckdb

    if isinstance(exc, MemoryError | duckdb.OutOfMemoryException):
        return True
    return isinstance(exc, duckdb.Error) and bool(_NO_MEMORY.search(str(exc)))


def _describe(exc: BaseException) -> str:
    from workbench.errors import Terminated

    if isinstance(exc, Terminated):
        return f"terminated by {exc.signal_name}"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    return f"{type(exc).__name__}: {exc}"


def _record_failure(warehouse: Path, run_row: dict[str, Any], manifest: dict[str, Any],
                    findings: list[Finding], cfg: Config, log: JsonlLog) -> None:
    row = {**run_row, "status": "failed", "error": manifest["error"],
           "ended_at": manifest["ended_at"], "data_hash": manifest.get("data_hash")}
    if not Path(warehouse).is_file():  # a mistyped --warehouse: do not create one to say so
        log.error("run", f"no warehouse at {warehouse} to record the failure in")
        return
    try:
        results.record_failure(warehouse, row, findings, cfg.data.timeframe, cfg.data.gaps,
                               wait_s=5.0)
    except BaseException as inner:  # the warehouse itself failed: say so, keep the first error
        log.error("run", f"could not record the failure in the warehouse: {inner}")


def _run(cfg: Config, mode: Mode, warehouse: Path, strategy: Any, view_list: list[Any],
         run_row: dict[str, Any], staging: Path, final_dir: Path, start: int | None,
         end: int | None, findings: list[Finding], manifest: dict[str, Any], log: JsonlLog,
         progress: bool, watch: Stopwatch, stages: _Stages) -> RunResult:
    with stages("read"):
        reports = read_bars(cfg, warehouse, start, end)
    for report in reports:
        findings += report.findings
    raise_if_signalled()  # one whose exception a finaliser or DuckDB swallowed
    log_findings(log, findings)
    check_qc(cfg, findings)
    actions, spreads = read_extras(cfg, warehouse, start, end)
    watch.lap("read_and_qc")
    bars = RunBars.of(reports, actions, spreads)
    watch.lap("merge")
    files: list[Background] = []

    def write_files(outcome: Outcome) -> None:  # the CSVs, on a thread beside the tables
        files.append(Background(rundir.write_all, staging, outcome.round_trips, outcome.orders,
                                outcome.records.fills, outcome.equity))

    with _thawed_at_end():
        try:
            outcome = simulate(cfg, mode, strategy, bars, run_row, manifest, view_list, start,
                               end, log=log, progress=progress, watch=watch, stages=stages,
                               beside=write_files, freeze=True)
        finally:  # a failure must not leave the thread writing into the directory
            for background in files:
                background.wait()
        run_id = manifest["run_id"]
        with stages("write_files"):
            for background in files:
                background.result()
        watch.lap("write_csv_wait")
        raise_if_signalled()
        tables, metrics = finish(outcome, manifest, run_row)
        with stages("write_warehouse"):
            held, waited = results.write_run(
                warehouse, run_row, tables, view_list, wait_s=WRITE_WAIT_S,
                on_commit=lambda: manifest.__setitem__("warehouse_written", True))
        watch.lap("write_warehouse")
        manifest["warehouse_hold_s"] = round(held, 4)
        manifest["warehouse_wait_s"] = round(waited, 4)
        manifest["timings_s"] = watch.laps
        with stages("write_files"):
            mf.write(staging / "run_manifest.json", manifest)
            log.info("run", f"{mode.value} {run_id} completed", bars=len(bars.data),
                     orders=len(outcome.orders), fills=len(outcome.records.fills),
                     metrics=metrics, warehouse_hold_s=manifest["warehouse_hold_s"])
            log.close()
            _publish(staging, final_dir)
        return RunResult(run_id, final_dir, metrics, manifest)


def check_qc(cfg: Config, findings: list[Finding]) -> None:
    """DataError when the bars fail QC under the config's gap policy."""
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        gaps = sum(1 for f in errors if f.rule == "gap")
        raise DataError(
            f"the bars fail QC under gap policy {cfg.data.gaps!r} ({len(errors)} findings, "
            f"{gaps} gaps):\n       {summarize(errors)}",
            fix="run with --gaps forward (fill flat bars) or --gaps none (keep the gaps) "
                "(`workbench sweep`/`walkforward`: --set data.gaps=forward or none), or "
                "ingest the missing bars; every finding is in qc_events",
        )


@dataclass
class RunBars:
    """The bars a run saw, read and checked once: the QC reports (each symbol's series and
    findings), the loop's merged columns, their hash and the QC counts. A sweep ships one
    to each worker and runs every point on it."""

    reports: list[QcReport]
    data: LoopData
    data_hash: str
    qc: dict[str, int]
    actions: list[CorporateAction] = field(default_factory=list)
    """The stored corporate actions of the run's symbols (``read_extras``)."""
    spreads: dict[str, dict[int, float]] | None = None
    """Per symbol, bar time -> the bar's stored spread (bps), when ``costs.spread_column``."""

    @classmethod
    def of(cls, reports: list[QcReport], actions: list[CorporateAction] | None = None,
           spreads: dict[str, dict[int, float]] | None = None) -> RunBars:
        return cls(reports, merge([r.series for r in reports]), bars_hash(reports), {
            "gaps": sum(len(r.gaps) for r in reports),
            "filled_bars": sum(r.filled_bars for r in reports),
            "findings": sum(len(r.findings) for r in reports),
        }, list(actions or ()), spreads)

    @property
    def findings(self) -> list[Finding]:
        return [f for r in self.reports for f in r.findings]


@dataclass
class Outcome:
    """A run computed in memory: its warehouse tables (``results.run_tables``), headline
    metrics (``rpt.performance``) and what the run directory is written from."""

    tables: dict[str, pa.Table]
    metrics: dict[str, Any]
    equity: EquityRows
    orders: list[OrderState]
    records: JournalContents
    round_trips: Any
    now: int


def simulate(cfg: Config, mode: Mode, strategy: Any, bars: RunBars, run_row: dict[str, Any],
             manifest: dict[str, Any], view_list: list[Any], start: int | None,
             end: int | None, *, log: JsonlLog | None = None, progress: bool = False,
             watch: Stopwatch | None = None, stages: _Stages | None = None,
             beside: Callable[[Outcome], None] | None = None, freeze: bool = False,
             headline_db: HeadlineDb | None = None) -> Outcome:
    """Run ``strategy`` over ``bars`` in memory, as ``run_backtest`` does, without touching
    the warehouse or a run directory: the loop, the journal's orders and fills, the run's
    tables and its headline numbers (a private in-memory DuckDB). ``run_row`` and
    ``manifest`` are updated as the run completes (``finish`` ends both). ``beside`` is
    called after the loop, before the tables are built (the run directory's CSVs start
    there); ``freeze`` freezes the loop's objects for the garbage collector (the caller
    unfreezes). ``headline_db``: the database that computes the headline (default: one of
    its own, closed after)."""
    stage = stages or _Stages()
    lap = watch.lap if watch is not None else (lambda name: None)
    data = bars.data
    if len(data):
        run_row["bars_per_year"] = bars_per_year(cfg, int(data.ts[-1]))
    calendar = calendar_for(cfg.data.calendar)
    if calendar is not None:  # what the config's name stood for when the run read its bars
        manifest["calendar"] = calendar.fingerprint()
    manifest["data_hash"] = bars.data_hash
    manifest["qc"] = dict(bars.qc)
    with stage("loop"):
        wired = kernel.build(cfg, mode, strategy=strategy, run_id=manifest["run_id"], log=log,
                             bar_spreads=bars.spreads)
        if bars.spreads is not None:
            manifest["bar_spreads"] = {s: len(v) for s, v in sorted(bars.spreads.items())}
        step = wired.step
        if len(data):
            corporate.schedule(step, corporate.in_window(bars.actions, int(data.ts[0]),
                                                         int(data.ts[-1])),
                               cfg.data.adjusted, manifest)
        bar = progress_bar(len(data), progress)
        equity = wired.run(data, bar.update if bar is not None else None)
        if freeze:  # what the loop made lives to the end of the run: later collections need
            gc.freeze()  # not walk it (the first one after a long loop took a tenth of a second)
        if bar is not None:
            bar.close()
    lap("loop")
    raise_if_signalled()
    journal = wired.journal
    journal.close()
    records = contents(journal)  # read back through the port, whatever the journal
    orders = order_states(records)
    first_ts, last_ts = ms_to_iso(int(data.ts[0])), ms_to_iso(int(data.ts[-1]))
    manifest.update(bars=len(data), first_bar_ts=first_ts, last_bar_ts=last_ts)
    risk = step.risk
    risk_summary = risk.summary() if risk is not None else None
    manifest["risk"] = risk_summary or {"enabled": False}
    summary.record(manifest, strategy, bars.reports, orders, start, end)
    skipped = corporate.skipped_warning(manifest)
    if skipped:
        manifest["summary"]["warnings"].append(skipped)
    manifest["summary"]["warnings"].extend(
        f"costs.spread_column is set but {symbol} has no stored spread in the run's bars: its "
        f"fills paid costs.spread_bps ({cfg.costs.spread_bps!r})"
        for symbol, count in (manifest.get("bar_spreads") or {}).items() if not count)
    outcome = Outcome({}, {}, equity, orders, records, step.book.round_trips, step.now)
    if beside is not None:
        beside(outcome)
    outcome.tables = results.run_tables(
        data, records, bars.findings, cfg.data.timeframe, cfg.data.gaps, manifest["run_id"],
        risk.events_table() if risk is not None else None,
        results.risk_metrics(risk_summary, step.now) if risk_summary else None,
        orders=orders, charges=step.book.charges)
    if step.book.actions:
        outcome.tables["action_events"] = corporate.events_table(step.book.actions)
    run_row.update(status="completed", data_hash=manifest["data_hash"], start_ts=first_ts,
                   end_ts=last_ts, bar_count=len(data))
    with stage("metrics"):
        outcome.metrics = (
            headline_db.headline(run_row, outcome.tables, equity) if headline_db is not None
            else headline_in_memory(run_row, outcome.tables, equity, view_list,
                                    cfg.run.memory_limit))
    lap("metrics")
    return outcome


def finish(outcome: Outcome, manifest: dict[str, Any], run_row: dict[str, Any]
           ) -> tuple[dict[str, pa.Table], dict[str, Any]]:
    """The run completed now: its end time in ``manifest`` and ``run_row``, and every table
    it writes, the stored headline numbers (``metrics`` rows) included."""
    metrics = outcome.metrics
    manifest.update(status="completed", ended_at=mf.utc_now_iso(), metrics=metrics)
    run_row["ended_at"] = manifest["ended_at"]
    tables = dict(outcome.tables)
    stored = results.headline_metrics(metrics, outcome.now)
    tables["metrics"] = (pa.concat_tables([tables["metrics"], stored]) if "metrics" in tables
                         else stored)
    return tables, metrics


def new_run_row(cfg: Config, mode: Mode, manifest: dict[str, Any], run_dir: Path
                ) -> dict[str, Any]:
    """A run's ``runs`` row as it starts, from its config and manifest."""
    return {
        "run_id": manifest["run_id"], "mode": mode.value, "name": cfg.run.name,
        "config_json": manifest["config"], "config_hash": manifest["config_hash"],
        "git_sha": manifest["git_sha"], "started_at": manifest["started_at"],
        "versions": manifest["versions"], "view_versions": manifest["view_versions"],
        "gap_policy": cfg.data.gaps, "symbols": list(cfg.data.symbols),
        "timeframe": cfg.data.timeframe, "timeframe_ms": timeframe_ms(cfg.data.timeframe),
        "initial_cash": cfg.portfolio.initial_cash, "quote": cfg.portfolio.quote,
        "seed": cfg.run.seed, "run_dir": os.path.abspath(run_dir), "pid": os.getpid(),
        "host": stale.HOST,
        **({"tags": manifest["tags"]} if manifest.get("tags") else {}),
    }


def read_bars(cfg: Config, warehouse: Path, start: int | None, end: int | None
              ) -> list[QcReport]:
    """Each configured symbol's stored bars in ``[start, end)``, checked under the config's
    gap policy (read-only: the warehouse is held for the read alone)."""
    tf = cfg.data.timeframe
    tf_ms = timeframe_ms(tf)
    calendar = calendar_for(cfg.data.calendar)
    with reading(warehouse, wait_s=READ_WAIT_S) as con:
        migrations.check_known(con)  # the write at the end would refuse it, hours later
        return [check_series(load_series(con, symbol, tf, tf_ms, start, end, calendar),
                             cfg.data.gaps, calendar) for symbol in cfg.data.symbols]


def read_extras(cfg: Config, warehouse: Path, start: int | None, end: int | None
                ) -> tuple[list[CorporateAction], dict[str, dict[int, float]] | None]:
    """What a run reads beside its bars (read-only, a short hold): the stored corporate
    actions of its symbols, and with ``costs.spread_column`` each bar's stored spread in
    ``[start, end)`` (bars at the run's own timeframe; a resampled run has none)."""
    from workbench.warehouse.actions import read_actions

    symbols = list(cfg.data.symbols)
    with reading(warehouse, wait_s=READ_WAIT_S) as con:
        actions = read_actions(con, symbols)
        if not cfg.costs.spread_column:
            return actions, None
        if not migrations.has_column(con, "bars", "spread_bps"):  # older than the column
            return actions, {s: {} for s in symbols}
        rows = con.execute(
            "select symbol, epoch_ms(ts), spread_bps from bars where list_contains(?, symbol) "
            "and timeframe = ? and spread_bps is not null and epoch_ms(ts) >= ? "
            "and epoch_ms(ts) < ? order by symbol, ts",
            [symbols, cfg.data.timeframe, start if start is not None else -(2**62),
             end if end is not None else 2**62]).fetchall()
    spreads: dict[str, dict[int, float]] = {s: {} for s in symbols}
    for symbol, ts, bps in rows:
        spreads[symbol][ts] = bps
    return actions, spreads


def bars_per_year(cfg: Config, last_ts: int) -> float | None:
    """The bars a year of the config's calendar holds (the 365 days to ``last_ts``), for
    annualising per-bar statistics; None for 24x7 (365 days of bars, as the views assume)."""
    calendar = calendar_for(cfg.data.calendar)
    if calendar is None:
        return None
    tf = timeframe_ms(cfg.data.timeframe)
    return float(len(calendar.bar_opens(last_ts - 365 * 86_400_000, last_ts, tf)))


def bars_hash(reports: list[QcReport]) -> str:
    """The manifest's ``data_hash`` of the bars a run saw (``manifest.data_hash``)."""
    seen = sorted((r.series for r in reports), key=lambda s: s.symbol)
    return mf.data_hash([a for s in seen for a in (s.ts, s.open, s.high, s.low, s.close,
                                                   s.volume)], [s.symbol for s in seen])


@contextlib.contextmanager
def _thawed_at_end() -> Iterator[None]:
    try:
        yield
    finally:
        gc.unfreeze()


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


_PRIVATE_ID = "run"


class HeadlineDb:
    """A private in-memory DuckDB that computes runs' ``rpt.performance`` rows, one run at a
    time, holding only that run while it does (the warehouse is not touched): the versioned
    views over the run's fills and orders, with the equity curve the loop already holds
    standing in for ``acct.equity_curve`` (the two agree bar by bar;
    tests/sql/test_accounting_property.py). A sweep's worker keeps one for its points
    (``for_this_thread``): opening the database, its tables and views costs more than a
    month's headline."""

    _STAND_IN = "__wb_stand_in_0"  # what open_memory names the first stand-in

    def __init__(self, view_list: list[Any], memory_limit: str | None = None,
                 threads: int | None = None) -> None:
        from workbench.warehouse.connect import open_memory

        self.con = open_memory(view_list, memory_limit=memory_limit,
                               stand_ins={"acct.equity_curve": _curve(EquityRows.empty())},
                               needs=("rpt.performance",), threads=threads)

    def headline(self, run_row: dict[str, Any], tables: dict[str, Any], equity: EquityRows
                 ) -> dict[str, Any]:
        """The run's ``rpt.performance`` row (``headline``); the database is empty after."""
        con = self.con
        con.register(self._STAND_IN, _curve(equity))
        written = [name for name in ("orders", "fills", "action_events") if name in tables]
        try:
            # A short id (DuckDB keeps strings of up to 12 bytes inline) keeps sorts lean.
            results.insert_results(con, {**run_row, "run_id": _PRIVATE_ID},
                                   {name: tables[name] for name in written})
            return headline(con, _PRIVATE_ID)
        finally:
            for name in ("runs", *written):
                con.execute(f"delete from {name}")
            con.register(self._STAND_IN, _curve(EquityRows.empty()))

    def close(self) -> None:
        self.con.close()

    @classmethod
    def for_this_thread(cls, view_list: list[Any], memory_limit: str | None = None
                        ) -> HeadlineDb:
        """This thread's database for these views and memory limit, made at the first ask,
        with one DuckDB thread (a sweep's worker runs one point at a time per thread; a
        second DuckDB thread would hold its own buffers, ~10 MB, for little)."""
        key = (tuple((v.name, v.fingerprint) for v in view_list), memory_limit)
        held = getattr(_THREAD, "headline_db", None)
        if held is None or held[0] != key:
            if held is not None:
                held[1].close()
            held = (key, cls(view_list, memory_limit, threads=1))
            _THREAD.headline_db = held
        db: HeadlineDb = held[1]
        return db


_THREAD = threading.local()


def _curve(equity: EquityRows) -> pa.Table:
    return pa.table({
        "run_id": pa.array([_PRIVATE_ID] * len(equity.ts), pa.string()),
        "ts": pa.array(equity.ts, pa.timestamp("ms", tz="UTC")),
        "cash": pa.array(equity.cash, pa.float64()),
        "position_value": pa.array(equity.position_value, pa.float64()),
        "equity": pa.array(equity.equity, pa.float64()),
        "in_market": pa.array(equity.in_market, pa.bool_())})


def headline_in_memory(run_row: dict[str, Any], tables: dict[str, Any], equity: EquityRows,
                       view_list: list[Any], memory_limit: str | None = None
                       ) -> dict[str, Any]:
    """The run's ``rpt.performance`` row, computed in a ``HeadlineDb`` of its own, closed
    after. Made after the loop: a database opened before it holds its memory under the
    loop's heap (+100 MB at 5 years)."""
    db = HeadlineDb(view_list, memory_limit)
    try:
        return db.headline(run_row, tables, equity)
    finally:
        db.close()


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


def progress_bar(total: int, enabled: bool, *, unit: str = "bar", desc: str = "backtest"
                 ) -> Any:
    """A tqdm bar on stderr (a widget in notebooks), or None when not ``enabled``."""
    if not enabled:
        return None
    from tqdm.auto import tqdm  # a widget in notebooks, a text bar on a terminal

    return tqdm(total=total, unit=unit, unit_scale=True, desc=desc, leave=False)


