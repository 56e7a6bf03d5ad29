"""``workbench sweep``: a grid of config overrides backtested on dask.distributed.

The grid is the cartesian product of ``KEY=V1,V2,...`` overrides (values read as ``--set``
reads them). Every point's config is validated, and its strategy built, before any work: a bad
key or value is a ConfigError naming the point. The driver reads the bars once (read-only,
short), ships them to every worker once (``scatter(broadcast=True)``), and each task runs one
backtest in memory through the same engine path as ``run_backtest`` (``engine.run.simulate``),
returning Arrow tables and headline numbers. The driver is the warehouse's only writer: it
writes the finished points in batches, each one short transaction (adr/0021).

Each point has a row in ``experiments`` (status, error kind, attempts, worker); a completed
point's run is an ordinary run named ``<name>/<point>``. A point that fails never sinks the
sweep; a lost worker's point is retried; Ctrl-C cancels what is left, keeps what finished and
marks the rest failed (cancelled).
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
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
from workbench.config import Config, override_value, parse_when
from workbench.engine.kernel import build_strategy
from workbench.engine.run import (
    WRITE_WAIT_S,
    RunBars,
    check_qc,
    effective_config,
    finish,
    new_run_row,
    progress_bar,
    read_bars,
    simulate,
)
from workbench.errors import ConfigError, EngineFault, StrategyError, WorkbenchError
from workbench.model import Mode
from workbench.secrets import MASK, is_secret_path, remember, scrub
from workbench.strategy import Strategy
from workbench.tags import as_tags
from workbench.warehouse import results, stale, views
from workbench.warehouse.connect import resolve_path

ERROR_KINDS = ("config_error", "strategy_error", "engine_fault", "worker_lost")
BATCH_POINTS = 16  # finished points written per transaction at most
BATCH_S = 2.0  # ... or whatever finished within this many seconds
DEFAULT_RETRIES = 2  # extra attempts of a point whose worker was lost
CANCELLED = "cancelled: the sweep was interrupted (Ctrl-C) before this point finished"


@dataclass(frozen=True)
class Point:
    """One grid point: its place, its ``{key: value}`` and the overrides that make it."""

    seq: int
    params: dict[str, Any]
    overrides: tuple[str, ...]

    @property
    def label(self) -> str:
        """``fast=5,slow=20``: the keys without ``strategy.params.``."""
        return params_label(self.params)


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


def params_label(params: Mapping[str, Any]) -> str:
    """``fast=5,slow=20``: a point's parameters, the keys without ``strategy.params.``."""
    return ",".join(f"{_short(k)}={_text(v)}" for k, v in params.items())


def error_kind(exc: BaseException) -> str:
    """The failure taxonomy's kind of what a run raised: ``config_error``,
    ``strategy_error``, else ``engine_fault``."""
    return ("config_error" if isinstance(exc, ConfigError) else
            "strategy_error" if isinstance(exc, StrategyError) else "engine_fault")


def _short(key: str) -> str:
    return key.removeprefix("strategy.params.")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


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


# --- the grid -----------------------------------------------------------------------------------
def parse_grid(items: Iterable[str]) -> dict[str, list[str]]:
    """``--grid KEY=V1,V2,...`` (repeatable) as ``{key: [value text, ...]}``."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        texts = [v.strip() for v in values.split(",")]
        if not sep or not key or not all(texts):
            raise ConfigError(f"--grid expects KEY=V1,V2,... got {item[:100]!r}",
                              where="--grid", fix="for example: --grid strategy.params.fast=5,10")
        if key in grid:
            raise ConfigError(f"--grid names {key} twice", where="--grid",
                              fix="give each key once, with all its values: KEY=V1,V2")
        grid[key] = texts
    return grid


def points(grid: Mapping[str, Iterable[Any]]) -> list[Point]:
    """The cartesian product of the grid, in the order of its keys (the last varies fastest).
    Text values are read as ``--set`` reads them; other values are passed as JSON. A key
    that names a secret shows ``***`` in ``params`` (its value is only in ``overrides``)."""
    if not grid:
        raise ConfigError("a sweep needs a grid", where="--grid",
                          fix="add --grid KEY=V1,V2,... (repeatable), e.g. "
                              "--grid strategy.params.fast=5,10")
    keys = list(grid)
    for key in keys:
        if key.split(".")[0] == "data" or key == "run.name":
            raise ConfigError(
                f"--grid {key}: a sweep reads its bars once and names its runs itself",
                where=f"--grid {key}",
                fix="vary strategy, costs, risk or portfolio keys; for other data run one "
                    "sweep per data window (--set data.start=...)")
    columns = []
    for key in keys:
        texts = [v if isinstance(v, str) else json.dumps(v) for v in grid[key]]
        if not texts:
            raise ConfigError(f"--grid {key} has no values", where=f"--grid {key}",
                              fix="give at least one value: KEY=V1,V2")
        columns.append([(f"{key}={t}", override_value(f"{key}={t}")) for t in texts])
    secret = {k for k in keys if is_secret_path(k.split("."))}
    for key in secret:  # the values reach the config through the overrides only
        for text in grid[key]:
            remember(text if isinstance(text, str) else json.dumps(text))
    out = []
    for seq, combo in enumerate(itertools.product(*columns), start=1):
        out.append(Point(seq, {k: MASK if k in secret else value
                               for k, (_, value) in zip(keys, combo, strict=True)},
                         tuple(text for text, _ in combo)))
    return out


# --- the task (runs on a worker) ----------------------------------------------------------------
def run_point(cfg: Config, bars: RunBars, run_row: dict[str, Any], manifest: dict[str, Any],
              view_list: list[Any], start: int | None, end: int | None) -> dict[str, Any]:
    """One point's backtest in memory, on a worker: ``{"ok": True, run_row, tables,
    metrics}`` or ``{"ok": False, "error_kind", "error"}``; never raises for the strategy's
    or the engine's errors (a retry would only repeat them)."""
    begun = mf.utc_now_iso()
    worker = _worker_address()
    try:
        strategy = build_strategy(cfg)
        outcome = simulate(cfg, Mode.BACKTEST, strategy, bars, run_row, manifest, view_list,
                           start, end)
        tables, metrics = finish(outcome, manifest, run_row)
    except Exception as exc:
        kind = error_kind(exc)
        text = exc.render() if isinstance(exc, WorkbenchError) else (
            str(exc) if isinstance(exc, EngineFault) else f"{type(exc).__name__}: {exc}")
        return {"ok": False, "error_kind": kind, "error": scrub(text), "worker": worker,
                "started_at": begun, "ended_at": mf.utc_now_iso()}
    return {"ok": True, "run_row": run_row, "tables": tables, "metrics": metrics,
            "worker": worker, "started_at": begun, "ended_at": run_row["ended_at"]}


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return None


# --- the driver ---------------------------------------------------------------------------------
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
    start = parse_when(cfg0.data.start, "data.start")
    end = parse_when(cfg0.data.end, "data.end")
    reports = read_bars(cfg0, path, start, end)
    check_qc(cfg0, [f for r in reports for f in r.findings])
    bars = RunBars.of(reports)
    say = announce or (lambda line: print(line, file=sys.stderr, flush=True))
    show = sys.stderr.isatty() if progress is None else progress
    result = SweepResult(sweep_id, sweep_name, [p.result for p in planned])
    with dask_client(scheduler, workers, processes, client) as (client, cluster):
        # the scheduler is asked before the pending rows are written: a Ctrl-C while it
        # answers must not leave points pending that _drive would never mark
        result.dashboard = _dashboard(client, cluster)
        line = (f"sweep {sweep_id}: {len(planned)} points on "
                f"{len(client.scheduler_info().get('workers', {}))} workers"
                + (f"; dashboard {result.dashboard}" if result.dashboard else ""))
        _write_pending(path, sweep_id, sweep_name, planned, view_list)
        _drive(client, planned, bars, view_list, start, end, path, retries, show, on_point,
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
        raise ConfigError("a sweep runs on dask.distributed, which is not installed",
                          where="workbench sweep",
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


def _drive(client: Any, planned: list[_Planned], bars: RunBars, view_list: list[Any],
           start: int | None, end: int | None, warehouse: Path, retries: int, show: bool,
           on_point: Callable[[PointResult], None] | None, started: Callable[[], None]
           ) -> None:
    from distributed import as_completed

    shared: list[Any] = []
    by_key: dict[str, _Planned] = {}
    submitted: list[Any] = []

    def submit(item: _Planned) -> Any:
        item.result.attempts += 1
        item.result.status = "running"
        future = client.submit(run_point, item.cfg, shared[-1], item.run_row, item.manifest,
                               view_list, start, end, pure=False,
                               key=f"point-{item.point.seq}-{item.result.attempts}-"
                                   f"{item.run_row['run_id']}")
        by_key[future.key] = item
        submitted.append(future)
        return future

    bar = progress_bar(len(planned), show, unit="point", desc="sweep")
    done: list[tuple[_Planned, dict[str, Any]]] = []
    flushed_at = time.monotonic()
    try:  # from here on, a stop marks every point not written yet
        started()
        shared.append(client.scatter(bars, broadcast=True))  # once per worker, not per task
        # results are gathered as each task ends: a result left on a worker dies with it
        queue = as_completed([submit(item) for item in planned], with_results=True,
                             raise_errors=False)
        for future, value in queue:
            item = by_key[future.key]
            if future.status == "finished":
                answer = value
            else:
                lost, error = _task_error(value)
                if lost and item.result.attempts <= retries:
                    # the bars may have died with the worker (a scatter is not replicated to
                    # the worker the nanny starts in its place): ship them again
                    shared.append(client.scatter(bars, broadcast=True))
                    queue.add(submit(item))
                    continue
                answer = {"ok": False, "error_kind": "worker_lost" if lost else "engine_fault",
                          "error": error}
            done.append((item, answer))
            if bar is not None:
                bar.update(1)
            if len(done) >= BATCH_POINTS or time.monotonic() - flushed_at >= BATCH_S:
                batch, done = done, []
                _flush(warehouse, batch, view_list, on_point)
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
           on_point: Callable[[PointResult], None] | None) -> None:
    """Finished points into the warehouse in one short transaction: each completed point's
    run (its ``runs`` row and tables) and every point's ``experiments`` row."""
    if not done:
        return
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
    rs = [item.result for item, _ in done]
    ts = pa.timestamp("ms", tz="UTC")
    states = pa.table({
        "sweep_id": pa.array([item.manifest["sweep_id"] for item, _ in done], pa.string()),
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
    })
    with results.write_transaction(warehouse, WRITE_WAIT_S,
                                   before=lambda con: views.deploy(con, view_list)) as (con, _):
        results.insert_arrow(con, "experiments", table)
