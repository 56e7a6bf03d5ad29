"""``workbench sweep``: a grid of config overrides backtested on dask.distributed.

The grid is the cartesian product of ``KEY=V1,V2,...`` overrides (values read as ``--set``
reads them). Every point's config is validated, and its strategy built, before any work: a bad
key or value is a ConfigError naming the point. The driver reads the bars of each data window
once (read-only, short: one window unless the grid varies ``data.*`` keys), ships each to every
worker once (``scatter(broadcast=True)``), and each task runs one backtest in memory through
the same engine path as ``run_backtest`` (``engine.run.simulate``), returning Arrow tables and
headline numbers. The driver is the warehouse's only writer: it writes the finished points in
batches, each one short transaction (adr/0021).

Each point has a row in ``experiments`` (status, error kind, attempts, worker; a task
announces its start as a dask event and the driver marks it ``running`` within a batch
interval); a completed point's run is an ordinary run named ``<name>/<point>``. A point that
fails never sinks the sweep; a lost worker's point is retried; Ctrl-C cancels what is left,
keeps what finished and marks the rest failed (cancelled).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from workbench import manifest as mf
from workbench.config import Config, parse_when
from workbench.engine.kernel import build_strategy
from workbench.engine.run import (
    WRITE_WAIT_S,
    HeadlineDb,
    RunBars,
    check_qc,
    effective_config,
    finish,
    new_run_row,
    progress_bar,
    read_bars,
    read_extras,
    simulate,
)
from workbench.errors import ConfigError, EngineFault, StrategyError, WorkbenchError
from workbench.grid import Point, points
from workbench.grid import label as params_label
from workbench.model import Mode
from workbench.secrets import scrub
from workbench.strategy import Strategy
from workbench.tags import as_tags
from workbench.warehouse import results, stale, views
from workbench.warehouse.connect import resolve_path

ERROR_KINDS = ("config_error", "strategy_error", "engine_fault", "worker_lost")
BATCH_POINTS = 16  # finished points written per transaction at most
BATCH_S = 2.0  # ... or whatever finished (or started) within this many seconds
POLL_S = 0.05  # the driver's wait between looks at the finished and started points
STARTED = "workbench-sweep-point-started"  # the dask event topic a task announces itself on
DEFAULT_RETRIES = 2  # extra attempts of a point whose worker was lost
CANCELLED = "cancelled: the sweep was interrupted (Ctrl-C) before this point finished"


@dataclass
class PointResult:
    """What became of one point: its run and numbers, or why it failed."""

    point_seq: int
    params: dict[str, Any]
    status: str
    run_id: str | None = None
    error_kind: str | None = None
    error: str | None = None
    attempts: int = 0
    worker: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class SweepResult:
    """A sweep's id, name, dashboard address and every point's result, in grid order."""

    sweep_id: str
    name: str
    points: list[PointResult]
    dashboard: str | None = None

    @property
    def completed(self) -> int:
        return sum(1 for p in self.points if p.status == "completed")

    @property
    def failed(self) -> int:
        return sum(1 for p in self.points if p.status == "failed")

    def to_dict(self) -> dict[str, Any]:
        return {"sweep_id": self.sweep_id, "name": self.name, "dashboard": self.dashboard,
                "completed": self.completed, "failed": self.failed,
                "points": [asdict(p) for p in self.points]}

    def table(self) -> str:
        """One line per point: parameters, status, return, Sharpe, trades, run or error."""
        head = ("point", "params", "status", "return %", "Sharpe", "trades", "run / error")
        body = [(str(p.point_seq), params_label(p.params), p.status,
                 number_text(p.metrics.get("total_return_pct")),
                 number_text(p.metrics.get("sharpe")), number_text(p.metrics.get("trades")),
                 p.run_id or f"{p.error_kind or 'cancelled'}: {first_line(p.error)}")
                for p in self.points]
        lines = text_table(head, body)
        lines.append(f"sweep {self.sweep_id} ({self.name}): {self.completed} completed, "
                     f"{self.failed} failed; rows in experiments and rpt.sweep_results")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.table()


def error_kind(exc: BaseException) -> str:
    """The failure taxonomy's kind of what a run raised: ``config_error``,
    ``strategy_error``, else ``engine_fault``."""
    return ("config_error" if isinstance(exc, ConfigError) else
            "strategy_error" if isinstance(exc, StrategyError) else "engine_fault")


def number_text(value: Any) -> str:
    """``-`` for None, an int as it is, a float to four significant digits."""
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def first_line(text: str | None, width: int = 80) -> str:
    """The first line of an error, cut to ``width`` characters, for a table cell."""
    return (text or "").partition("\n")[0][:width]


def text_table(head: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
    """Cells padded to their column's widest, two spaces apart: a table for a terminal."""
    rows = [tuple(head), *(tuple(r) for r in body)]
    widths = [max(len(c) for c in col) for col in zip(*rows, strict=True)]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]


# --- the task (runs on a worker) ----------------------------------------------------------------
def run_point(cfg: Config, bars: RunBars, run_row: dict[str, Any], manifest: dict[str, Any],
              view_list: list[Any], start: int | None, end: int | None) -> dict[str, Any]:
    """One point's backtest in memory, on a worker: ``{"ok": True, run_row, tables,
    metrics}`` or ``{"ok": False, "error_kind", "error"}``; never raises for the strategy's
    or the engine's errors (a retry would only repeat them)."""
    begun = mf.utc_now_iso()
    worker = _announce_start(run_row["run_id"], begun)
    try:
        strategy = build_strategy(cfg)
        outcome = simulate(cfg, Mode.BACKTEST, strategy, bars, run_row, manifest, view_list,
                           start, end, headline_db=HeadlineDb.for_this_thread(
                               view_list, cfg.run.memory_limit))
        tables, metrics = finish(outcome, manifest, run_row)
    except Exception as exc:
        kind = error_kind(exc)
        text = exc.render() if isinstance(exc, WorkbenchError) else (
            str(exc) if isinstance(exc, EngineFault) else f"{type(exc).__name__}: {exc}")
        return {"ok": False, "error_kind": kind, "error": scrub(text), "worker": worker,
                "started_at": begun, "ended_at": mf.utc_now_iso()}
    return {"ok": True, "run_row": run_row, "tables": tables, "metrics": metrics,
            "worker": worker, "started_at": begun, "ended_at": run_row["ended_at"]}


def _announce_start(run_id: str, begun: str) -> str | None:
    """The worker's address, after telling the driver (a dask event on topic ``STARTED``)
    that the point of ``run_id`` started; None outside a dask worker."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    address = str(worker.address)
    worker.log_event(STARTED, {"run_id": run_id, "worker": address, "started_at": begun})
    return address


# --- the driver ---------------------------------------------------------------------------------
@dataclass
class _Window:
    """One data window of a sweep (a distinct ``data`` section of the points' configs): its
    bars, read and checked once, and their copies scattered to the workers (the newest last)."""

    start: int | None
    end: int | None
    bars: RunBars
    shipped: list[Any] = field(default_factory=list)


@dataclass
class _Planned:
    point: Point
    cfg: Config
    run_row: dict[str, Any]
    manifest: dict[str, Any]
    result: PointResult


def sweep(
    config: Config | str | Path | Mapping[str, Any] | None,
    grid: Mapping[str, Iterable[Any]],
    *,
    overrides: Iterable[str] = (),
    name: str | None = None,
    warehouse: str | Path | None = None,
    scheduler: str | None = None,
    workers: int = 2,
    processes: bool = True,
    retries: int = DEFAULT_RETRIES,
    progress: bool | None = None,
    env_prefix: str = "WB_",
    env: Mapping[str, str] | None = None,
    strategy: type[Strategy] | str | None = None,
    strategy_path: str | Path | Iterable[str | Path] | None = None,
    on_point: Callable[[PointResult], None] | None = None,
    announce: Callable[[str], None] | None = None,
    tags: Mapping[str, str] | Iterable[str] | None = None,
    client: Any = None,
) -> SweepResult:
    """Backtest every point of ``grid`` on dask.distributed and record each in the warehouse.

    ``grid`` maps config keys to their values (``{"strategy.params.fast": [5, 10]}``; text is
    read as ``--set`` reads it); ``overrides`` apply to every point. Runs on a ``LocalCluster``
    of ``workers`` processes on 127.0.0.1 (``processes=False``: threads in this process, for
    small sweeps), or on the cluster at ``scheduler``. Points are runs named
    ``<name>/<point>`` (``name`` defaults to the config's ``run.name``); ``experiments`` and
    ``rpt.sweep_results`` hold one row per point. ``on_point`` is called with each point's
    result as it is written; ``announce`` receives the dashboard line (default: stderr).
    ``tags`` go to every point's run, as ``run_backtest``'s do (``workbench.tags``).
    Ctrl-C cancels what is left, keeps what finished and raises KeyboardInterrupt. In a
    script, call it under ``if __name__ == "__main__":`` (the worker processes are spawned
    and import the script's module). ``client``: a ``distributed.Client`` to run on instead
    (``scheduler``, ``workers`` and ``processes`` are then unused); it is left open.
    """
    base = list(overrides)
    options: dict[str, Any] = {"env_prefix": env_prefix, "env": env, "strategy": strategy,
                               "strategy_path": strategy_path}
    cfg0 = effective_config(config, base, **options)
    sweep_name = name or cfg0.run.name
    check_workers(workers)
    sweep_id = mf.new_id("sweep")
    view_list = views.check()
    planned = _plan(config, base, points(grid), sweep_id, sweep_name, view_list, options,
                    as_tags(tags))
    path = resolve_path(warehouse, env_prefix)
    windows = _read_windows(planned, path)
    say = announce or (lambda line: print(line, file=sys.stderr, flush=True))
    show = sys.stderr.isatty() if progress is None else progress
    result = SweepResult(sweep_id, sweep_name, [p.result for p in planned])
    with dask_client(scheduler, workers, processes, client) as (client, cluster):
        # the scheduler is asked before the pending rows are written: a Ctrl-C while it
        # answers must not leave points pending that _drive would never mark
        result.dashboard = _dashboard(client, cluster)
        n_windows = len({id(w) for w in windows.values()})
        line = (f"sweep {sweep_id}: {len(planned)} points"
                + (f" over {n_windows} data windows" if n_windows > 1 else "")
                + f" on {len(client.scheduler_info().get('workers', {}))} workers"
                + (f"; dashboard {result.dashboard}" if result.dashboard else ""))
        _write_pending(path, sweep_id, sweep_name, planned, view_list)
        _drive(client, planned, windows, view_list, path, retries, show, on_point,
               lambda: say(line))
    return result


def _plan(config: Any, base: list[str], grid_points: list[Point], sweep_id: str,
          sweep_name: str, view_list: list[Any], options: dict[str, Any],
          tags: dict[str, str] | None = None) -> list[_Planned]:
    """Every point's config, validated and its strategy built, before any work."""
    out = []
    versions, sha = mf.versions(), mf.git_sha()
    for point in grid_points:
        where = f"sweep point {point.seq} ({point.label})"
        try:
            cfg = effective_config(config, [*base, *point.overrides,
                                            f"run.name={sweep_name}/{point.label}"],
                                   **options)
            build_strategy(cfg)
        except WorkbenchError as exc:
            raise ConfigError(exc.what, where=f"{where}: {exc.where or 'config'}",
                              fix=exc.fix) from None
        run_id = mf.new_id()
        manifest = {"run_id": run_id, "sweep_id": sweep_id, "config": cfg.to_dict(),
                    "config_hash": cfg.hash(), "tags": tags or {},
                    "git_sha": sha, "versions": versions, "started_at": mf.utc_now_iso(),
                    "view_versions": views.versions(view_list)}
        run_row = new_run_row(cfg, Mode.BACKTEST, manifest, Path("."))
        run_row.update(run_dir=None, pid=os.getpid(), host=stale.HOST)
        # a backtest never uses the venue's key: it does not travel to the workers
        shipped = cfg.model_copy(update={"venue": cfg.venue.model_copy(
            update={"api_key": None, "api_secret": None})})
        out.append(_Planned(point, shipped, run_row, manifest,
                            PointResult(point.seq, point.params, "pending")))
    return out


def _read_windows(planned: list[_Planned], warehouse: Path) -> dict[int, _Window]:
    """Each point's data window, by point: the bars of every distinct ``data`` section of the
    points' configs, read (read-only, short) and checked under its gap policy once."""
    by_data: dict[str, _Window] = {}
    out: dict[int, _Window] = {}
    for item in planned:
        data = item.cfg.data
        key = json.dumps([data.model_dump(mode="json"), item.cfg.costs.spread_column],
                         sort_keys=True, default=str)  # what the window's read depends on
        if key not in by_data:
            try:
                start = parse_when(data.start, "data.start")
                end = parse_when(data.end, "data.end")
                reports = read_bars(item.cfg, warehouse, start, end)
                check_qc(item.cfg, [f for r in reports for f in r.findings])
                extras = read_extras(item.cfg, warehouse, start, end)
            except WorkbenchError as exc:
                where = f"sweep point {item.point.seq} ({item.point.label})"
                raise type(exc)(exc.what, where=f"{where}: {exc.where or 'its bars'}",
                                fix=exc.fix) from None
            by_data[key] = _Window(start, end, RunBars.of(reports, *extras))
        out[item.point.seq] = by_data[key]
    return out


CONNECT_TIMEOUT = "5s"
"""How long ``--scheduler ADDR`` is waited for before the sweep is refused."""


def check_workers(workers: int) -> None:
    """ConfigError unless a local cluster gets at least one worker."""
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}", where="--workers",
                          fix="pass --workers 2 (or more)")


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int, processes: bool, client: Any = None
                ) -> Iterator[tuple[Any, Any]]:
    """``(client, cluster)``: ``client`` itself when given (left open), else a client of the
    scheduler at ``scheduler`` or of a local cluster it starts (``cluster``; None otherwise),
    closed at the end. On Ctrl-C, dask's logs of what the stop cut short are silenced."""
    owned = client is None
    client, cluster = (connect_cluster(scheduler, workers, processes) if owned
                       else (client, None))
    dask_log = logging.getLogger("distributed")
    level = dask_log.level
    try:
        yield client, cluster
    except KeyboardInterrupt:
        # dask logs, with tracebacks, each operation the stop cut short: expected here
        dask_log.setLevel(logging.CRITICAL)
        raise
    finally:
        if owned:
            client.close()
        if cluster is not None:
            cluster.close()
        dask_log.setLevel(level)


def connect_cluster(scheduler: str | None, workers: int, processes: bool) -> tuple[Any, Any]:
    """A dask client and the local cluster it runs (None: the scheduler at ``scheduler``);
    the caller closes both."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("sweeps and walk-forward run on dask.distributed, which is not "
                          "installed", where="workbench sweep / walkforward",
                          fix="pip install 'workbench[sweep]' (dask and distributed)") from None
    if scheduler is not None:
        try:
            return Client(scheduler, timeout=CONNECT_TIMEOUT), None
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach the dask scheduler at {scheduler}: {exc}",
                              where="--scheduler",
                              fix="check the address (tcp://HOST:8786) and that the "
                                  "scheduler runs, or leave --scheduler out for a local "
                                  "cluster") from None
    # TCP on the loopback only, also for threads in this process (inproc:// would serve
    # its HTTP routes on the machine's address); the scheduler's HTTP server (the dashboard
    # when bokeh is installed) on a free port of the loopback
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                           host="127.0.0.1", protocol="tcp://", dashboard_address="127.0.0.1:0",
                           silence_logs=logging.ERROR)
    client = Client(cluster)
    client.register_plugin(_ctrl_c_for_the_driver())
    return client, cluster


def _ctrl_c_for_the_driver() -> Any:
    """A worker plugin: the local workers ignore SIGINT. Ctrl-C at a terminal reaches every
    process of its group; the driver alone handles it (cancels, writes what finished, closes
    the cluster), and the workers end when it closes them."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class IgnoreCtrlC(WorkerPlugin):
        name = "workbench-ignore-ctrl-c"

        def setup(self, worker: Any) -> None:
            import signal
            import threading

            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreCtrlC()


def _dashboard(client: Any, cluster: Any) -> str | None:
    """The dashboard's address; None when there is none (a local cluster without bokeh)."""
    if cluster is not None and importlib.util.find_spec("bokeh") is None:
        return None
    try:
        return str(client.dashboard_link)
    except Exception:  # no dashboard on this scheduler
        return None


def _drive(client: Any, planned: list[_Planned], windows: dict[int, _Window],
           view_list: list[Any], warehouse: Path, retries: int, show: bool,
           on_point: Callable[[PointResult], None] | None, started: Callable[[], None]
           ) -> None:
    from distributed import as_completed

    by_key: dict[str, _Planned] = {}
    by_run = {item.run_row["run_id"]: item for item in planned}
    submitted: set[Any] = set()  # not gathered yet: what a stop cancels
    starts: list[dict[str, Any]] = []  # appended by the client's thread as tasks start

    def started_points() -> list[_Planned]:
        """The points whose start was announced since the last call, their worker and start
        time noted (a finished point's row is written as finished instead)."""
        out = []
        while starts:
            msg = starts.pop(0)
            item = by_run.get(msg.get("run_id", ""))  # another sweep's events: not ours
            if item is not None:
                item.result.worker, item.result.started_at = msg["worker"], msg["started_at"]
                out.append(item)
        return out

    def ship(window: _Window) -> None:  # once per worker, not per task
        window.shipped.append(client.scatter(window.bars, broadcast=True))

    def submit(item: _Planned) -> Any:
        window = windows[item.point.seq]
        item.result.attempts += 1
        item.result.status = "running"
        future = client.submit(run_point, item.cfg, window.shipped[-1], item.run_row,
                               item.manifest, view_list, window.start, window.end, pure=False,
                               key=f"point-{item.point.seq}-{item.result.attempts}-"
                                   f"{item.run_row['run_id']}")
        by_key[future.key] = item
        submitted.add(future)
        return future

    bar = progress_bar(len(planned), show, unit="point", desc="sweep")
    done: list[tuple[_Planned, dict[str, Any]]] = []
    running: list[_Planned] = []
    flushed_at = time.monotonic()
    client.subscribe_topic(STARTED, lambda event: starts.append(event[1]))
    try:  # from here on, a stop marks every point not written yet
        started()
        for window in {id(w): w for w in windows.values()}.values():
            ship(window)
        # results are gathered as each task ends: a result left on a worker dies with it
        queue = as_completed([submit(item) for item in planned], with_results=True,
                             raise_errors=False)
        while not queue.is_empty():
            running += started_points()
            if not queue.has_ready():  # idle: write what waited long enough, then look again
                if (done or running) and time.monotonic() - flushed_at >= BATCH_S:
                    batch, done, marks, running = done, [], running, []
                    _flush(warehouse, batch, view_list, on_point, marks)
                    flushed_at = time.monotonic()
                time.sleep(POLL_S)
                continue
            future, value = next(queue)
            # gathered: let the worker drop the result (held to the sweep's end, a month's
            # 50 points held ~80 MB of a worker's memory)
            finished = future.status == "finished"
            submitted.discard(future)
            future.release()
            item = by_key[future.key]
            if finished:
                answer = value
            else:
                lost, error = _task_error(value)
                if lost and item.result.attempts <= retries:
                    # the bars may have died with the worker (a scatter is not replicated to
                    # the worker the nanny starts in its place): ship them again
                    ship(windows[item.point.seq])
                    queue.add(submit(item))
                    continue
                answer = {"ok": False, "error_kind": "worker_lost" if lost else "engine_fault",
                          "error": error}
            done.append((item, answer))
            if bar is not None:
                bar.update(1)
            if len(done) >= BATCH_POINTS or time.monotonic() - flushed_at >= BATCH_S:
                batch, done, marks, running = done, [], running, []
                _flush(warehouse, batch, view_list, on_point, marks)
                flushed_at = time.monotonic()
        batch, done = done, []
        _flush(warehouse, batch, view_list, on_point)
    except BaseException:
        client.cancel([f for f in submitted if not f.done()], force=True)
        unfinished = [p for p in planned if p.result.status in ("pending", "running")
                      and all(p is not d for d, _ in done)]
        for item in unfinished:
            done.append((item, {"ok": False, "error_kind": None, "error": CANCELLED}))
        _flush(warehouse, done, view_list, None)
        raise
    finally:
        client.unsubscribe_topic(STARTED)
        if bar is not None:
            bar.close()


def _task_error(value: Any) -> tuple[bool, str]:
    """Whether a task that raised (rather than returned) lost its worker, and what it said.
    Anything else (the task could not be unpacked on the worker: a strategy module the
    worker cannot import) is the engine's fault, and not retried."""
    from concurrent.futures import CancelledError

    from distributed import KilledWorker
    from distributed.comm import CommClosedError

    exc = value[1] if isinstance(value, tuple) and len(value) == 3 else value
    if isinstance(exc, KilledWorker | CommClosedError | CancelledError):
        return True, scrub(f"the worker running this point was lost: {type(exc).__name__}: "
                           f"{exc}")
    return False, scrub(f"the task failed on its worker: {type(exc).__name__}: {exc}; is the "
                        "strategy's module importable there?")


def _flush(warehouse: Path, done: list[tuple[_Planned, dict[str, Any]]], view_list: list[Any],
           on_point: Callable[[PointResult], None] | None,
           started: Iterable[_Planned] = ()) -> None:
    """Finished points into the warehouse in one short transaction: each completed point's
    run (its ``runs`` row and tables) and every point's ``experiments`` row; points
    ``started`` and not finished since are marked ``running`` in the same transaction."""
    for item, answer in done:
        r = item.result
        r.worker = answer.get("worker") or r.worker
        r.started_at = answer.get("started_at") or r.started_at
        r.ended_at = answer.get("ended_at") or mf.utc_now_iso()
        if answer["ok"]:
            r.status, r.run_id, r.metrics = "completed", item.run_row["run_id"], answer["metrics"]
        else:  # scrubbed here too: a worker process has not seen the driver's secrets
            r.status, r.error_kind, r.error = ("failed", answer["error_kind"],
                                               scrub(answer["error"]))
    finished = {id(item) for item, _ in done}
    marked = list({id(item): item for item in started  # a retried point starts twice
                   if item.result.status == "running" and id(item) not in finished}.values())
    items = [item for item, _ in done] + marked
    if not items:
        return
    rs = [item.result for item in items]
    ts = pa.timestamp("ms", tz="UTC")
    states = pa.table({
        "sweep_id": pa.array([item.manifest["sweep_id"] for item in items], pa.string()),
        "point_seq": pa.array([r.point_seq for r in rs], pa.int32()),
        "run_id": pa.array([r.run_id for r in rs], pa.string()),
        "status": pa.array([r.status for r in rs], pa.string()),
        "error_kind": pa.array([r.error_kind for r in rs], pa.string()),
        "error": pa.array([r.error for r in rs], pa.string()),
        "attempts": pa.array([r.attempts for r in rs], pa.int32()),
        "worker": pa.array([r.worker for r in rs], pa.string()),
        "started_at": pa.array([utc_ts(r.started_at) for r in rs], ts),
        "ended_at": pa.array([utc_ts(r.ended_at) for r in rs], ts),
    })
    with results.write_transaction(warehouse, WRITE_WAIT_S) as (con, _):
        for _, answer in done:
            if answer["ok"]:
                results.insert_results(con, answer["run_row"], answer["tables"])
        con.register("__wb_points", states)
        try:
            con.execute(_UPDATE_POINTS)
        finally:
            con.unregister("__wb_points")
    if on_point is not None:
        for item, _ in done:
            on_point(item.result)


_UPDATE_POINTS = """
update experiments as e
set run_id = p.run_id, status = p.status, error_kind = p.error_kind, error = p.error,
    attempts = p.attempts, worker = p.worker, started_at = p.started_at, ended_at = p.ended_at
from __wb_points as p
where e.sweep_id = p.sweep_id and e.point_seq = p.point_seq
"""


def utc_ts(text: str | None) -> datetime | None:
    """An ISO-8601 text (``...Z``) as an aware datetime; None stays None."""
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def _write_pending(warehouse: Path, sweep_id: str, name: str, planned: list[_Planned],
                   view_list: list[Any]) -> None:
    """Every point as ``pending``, the views deployed, in one short transaction."""
    n = len(planned)
    table = pa.table({
        "sweep_id": [sweep_id] * n,
        "point_seq": pa.array([p.point.seq for p in planned], pa.int32()),
        "name": [name] * n,
        "params": [json.dumps(p.point.params, sort_keys=False, default=str) for p in planned],
        "config_hash": [p.run_row["config_hash"] for p in planned],
        "run_id": pa.array([None] * n, pa.string()),
        "status": ["pending"] * n,
        "attempts": pa.array([0] * n, pa.int32()),
        "started_at": pa.array([None] * n, pa.timestamp("ms", tz="UTC")),
        "pid": pa.array([os.getpid()] * n, pa.int64()),
        "host": [stale.HOST] * n,
    })
    with results.write_transaction(warehouse, WRITE_WAIT_S,
                                   before=lambda con: views.deploy(con, view_list)) as (con, _):
        results.insert_arrow(con, "experiments", table)
