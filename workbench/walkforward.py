"""``workbench walkforward``: parameters chosen on a train window, judged on the next one.

The bars of the config's range are cut into windows (``windows``): a train window of
``--train`` followed by a test window of ``--test``; rolling windows move both forward by the
test length, anchored ones keep the train window's start at the first bar and grow it. Each
train window is a sweep of the grid (``workbench.sweeps``: the same grid, dask driver,
warehouse writer and failure taxonomy) restricted to its dates through ``data.start`` and
``data.end``; the point with the highest ``--metric`` (a column of ``rpt.performance``) wins,
ties going to the first point in grid order. The winner's parameters are then backtested on
the test window as an ordinary ``run_backtest`` run (with its run directory), so each test run
is exactly the backtest a user would run by hand. One row per window goes to
``walkforward_windows`` as the window ends; ``rpt.walkforward`` adds the out-of-sample metric
and the gap (adr/0023).
"""

from __future__ import annotations

import bisect
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from workbench import manifest as mf
from workbench.config import Config, parse_when, read_config_file, timeframe_ms
from workbench.engine.run import (
    WRITE_WAIT_S,
    RunBars,
    check_qc,
    effective_config,
    read_bars,
    run_backtest,
)
from workbench.errors import ConfigError, WorkbenchError
from workbench.model import ms_to_iso
from workbench.secrets import scrub
from workbench.strategy import Strategy
from workbench.sweeps import (
    DEFAULT_RETRIES,
    PointResult,
    check_workers,
    dask_client,
    error_kind,
    first_line,
    number_text,
    params_label,
    points,
    sweep,
    text_table,
    utc_ts,
)
from workbench.warehouse import results, views
from workbench.warehouse.connect import resolve_path

DEFAULT_METRIC = "sharpe"
_NOT_METRICS = ("run_id", "first_ts", "last_ts")
_NUMERIC = ("DOUBLE", "FLOAT", "BIGINT", "INTEGER", "HUGEINT", "SMALLINT", "DECIMAL")


@dataclass(frozen=True)
class Window:
    """One window: ``[train_start, train_end)`` then ``[test_start, test_end)``, in ms UTC."""

    seq: int
    train_start: int
    train_end: int
    test_start: int
    test_end: int


_DURATION = re.compile(r"([0-9]{1,9})([mhd])")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}
MAX_DURATION_MS = 100 * 366 * 86_400_000  # a century: more is a typo


def parse_duration(text: str, flag: str) -> int:
    """``30d``, ``12h``, ``90m`` as milliseconds; a ConfigError naming ``flag`` otherwise.
    Unlike a timeframe, a window may be longer than a year (``--train 730d``)."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ConfigError(f"{flag} {str(text)[:40]!r} is not a duration",
                          where=flag, fix="write whole minutes, hours or days: 90m, 12h, 30d")
    ms = int(match.group(1)) * _UNIT_MS[match.group(2)]
    if not 0 < ms <= MAX_DURATION_MS:
        raise ConfigError(f"{flag} {text.strip()!r} must be longer than zero and at most a "
                          "century", where=flag,
                          fix="write whole minutes, hours or days: 90m, 12h, 30d")
    return ms


def windows(first_ms: int, end_ms: int, train_ms: int, test_ms: int, anchored: bool
            ) -> list[Window]:
    """Every window whose test span ends by ``end_ms`` (exclusive), from ``first_ms``.
    Rolling: the train window slides by ``test_ms`` each time; anchored: it starts at
    ``first_ms`` and grows by ``test_ms``. The test windows follow each other without gap or
    overlap; a last test window shorter than ``test_ms`` is left out."""
    if train_ms <= 0 or test_ms <= 0:
        raise ValueError("train_ms and test_ms must be positive")
    out: list[Window] = []
    k = 0
    while True:
        train_end = first_ms + train_ms + k * test_ms
        test_end = train_end + test_ms
        if test_end > end_ms:
            return out
        train_start = first_ms if anchored else first_ms + k * test_ms
        out.append(Window(k + 1, train_start, train_end, train_end, test_end))
        k += 1


def _days(ms: int) -> str:
    return f"{ms / 86_400_000:.4g} days"


def fitted_windows(bar_ts: list[int], tf_ms: int, train_ms: int, test_ms: int,
                   anchored: bool) -> list[Window]:
    """``windows`` over the bars at ``bar_ts`` (sorted open times), refused with what to
    change when none fits or a window would hold no bar."""
    for flag, ms in (("--train", train_ms), ("--test", test_ms)):
        if ms < tf_ms:
            raise ConfigError(f"{flag} ({ms // 60_000} minutes) is shorter than one bar "
                              f"({tf_ms // 60_000} minutes)", where=flag,
                              fix=f"give {flag} at least one bar of the timeframe")
    if not bar_ts:
        raise ConfigError("no bars in the configured range", where="data.start/data.end",
                          fix="ingest bars (`workbench ingest`) or widen data.start/data.end")
    first, end = bar_ts[0], bar_ts[-1] + tf_ms
    found = windows(first, end, train_ms, test_ms, anchored)
    if not found:
        raise ConfigError(
            f"the bars hold {len(bar_ts)} bars from {ms_to_iso(first)} to {ms_to_iso(end)} "
            f"({_days(end - first)}); one window needs --train + --test = "
            f"{_days(train_ms + test_ms)}", where="--train/--test",
            fix="shorten --train or --test, or widen data.start/data.end (or ingest more "
                "bars)")
    for w in found:
        for part, lo, hi in (("train", w.train_start, w.train_end),
                             ("test", w.test_start, w.test_end)):
            if bisect.bisect_left(bar_ts, hi) == bisect.bisect_left(bar_ts, lo):
                raise ConfigError(
                    f"window {w.seq}'s {part} span {ms_to_iso(lo)} to {ms_to_iso(hi)} holds "
                    f"no bar (of {len(bar_ts)} bars in the range)", where=f"--{part}",
                    fix="lengthen --train/--test past the gap, or narrow "
                        "data.start/data.end to bars without it")
    return found


def performance_metrics() -> list[str]:
    """The numeric columns of ``rpt.performance``: what ``--metric`` may name."""
    from workbench.warehouse.connect import open_memory

    con = open_memory()
    try:
        rel = con.sql("select * from rpt.performance limit 0")
        return [name for name, kind in zip(rel.columns, rel.types, strict=True)
                if name not in _NOT_METRICS and str(kind).split("(")[0] in _NUMERIC]
    finally:
        con.close()


def check_metric(metric: str) -> None:
    """ConfigError listing the valid names when ``metric`` is not a column of
    ``rpt.performance``."""
    valid = performance_metrics()
    if metric not in valid:
        raise ConfigError(f"{metric[:60]!r} is not a column of rpt.performance",
                          where="--metric", fix=f"choose one of: {', '.join(valid)}")


def choose(candidates: Iterable[PointResult], metric: str) -> PointResult | None:
    """The completed point with the highest ``metric``; among equal values the first in grid
    order (lowest ``point_seq``). Points whose metric is null or NaN never win; None when no
    point has one."""
    best: PointResult | None = None
    for p in sorted(candidates, key=lambda p: p.point_seq):
        value = p.metrics.get(metric) if p.status == "completed" else None
        if value is None or value != value:
            continue
        if best is None or value > best.metrics[metric]:
            best = p
    return best


@dataclass
class WindowResult:
    """What became of one window: the choice on its train span and the test run."""

    window_seq: int
    train_start: str
    train_end: str
    test_start: str
    test_end: str
    status: str = "pending"
    sweep_id: str | None = None
    point_seq: int | None = None
    params: dict[str, Any] | None = None
    train_run_id: str | None = None
    in_sample: float | None = None
    test_run_id: str | None = None
    out_of_sample: float | None = None
    test_return_pct: float | None = None
    error_kind: str | None = None
    error: str | None = None
    ended_at: str | None = None

    @property
    def gap(self) -> float | None:
        """In-sample less out-of-sample metric: how much of the fit did not carry over."""
        if self.in_sample is None or self.out_of_sample is None:
            return None
        return self.in_sample - self.out_of_sample


@dataclass
class WalkForwardResult:
    """A walk-forward analysis: its id, name, metric and every window in time order."""

    wf_id: str
    name: str
    metric: str
    anchored: bool
    windows: list[WindowResult] = field(default_factory=list)

    @property
    def oos_return_pct(self) -> float:
        """The test windows' returns compounded (a window without a test run holds cash)."""
        growth = 1.0
        for w in self.windows:
            if w.test_return_pct is not None:
                growth *= 1 + w.test_return_pct / 100
        return (growth - 1) * 100

    def to_dict(self) -> dict[str, Any]:
        """The result as plain data (``--json``), each window with its gap."""
        return {"wf_id": self.wf_id, "name": self.name, "metric": self.metric,
                "anchored": self.anchored, "oos_return_pct": self.oos_return_pct,
                "windows": [{**asdict(w), "gap": w.gap} for w in self.windows]}

    def table(self) -> str:
        """One line per window: spans, chosen parameters, in- and out-of-sample metric."""
        head = ("window", "train", "test", "chosen", f"in-sample {self.metric}",
                f"out-of-sample {self.metric}", "gap", "test return %", "test run / error")
        body = [(str(w.window_seq), f"{w.train_start[:16]}..{w.train_end[:16]}",
                 f"{w.test_start[:16]}..{w.test_end[:16]}", _label(w.params),
                 number_text(w.in_sample), number_text(w.out_of_sample), number_text(w.gap),
                 number_text(w.test_return_pct),
                 w.test_run_id or f"{w.status}: {first_line(w.error)}")
                for w in self.windows]
        lines = text_table(head, body)
        lines.append(f"walk-forward {self.wf_id} ({self.name}): {len(self.windows)} windows, "
                     f"{'anchored' if self.anchored else 'rolling'}; out-of-sample return "
                     f"{self.oos_return_pct:.4f} % compounded; rows in rpt.walkforward")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.table()


def _label(params: Mapping[str, Any] | None) -> str:
    return "-" if params is None else params_label(params)


def walkforward(
    config: Config | str | Path | Mapping[str, Any] | None,
    grid: Mapping[str, Iterable[Any]],
    *,
    train: str,
    test: str,
    anchored: bool = False,
    metric: str = DEFAULT_METRIC,
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
    runs_dir: str | Path | None = None,
    on_window: Callable[[WindowResult], None] | None = None,
    announce: Callable[[str], None] | None = None,
) -> WalkForwardResult:
    """Walk-forward analysis of ``grid`` over the config's bars, recorded in the warehouse.

    ``train`` and ``test`` are durations (``30d``, ``12h``, ``90m``); ``anchored`` keeps
    every train window's start at the first bar. Each train window is a ``workbench.sweep``
    of ``grid`` on its dates (one dask cluster serves them all; ``scheduler``, ``workers``,
    ``processes``, ``retries`` as for ``sweep``); the point with the highest ``metric`` (a
    column of ``rpt.performance``; ties: the first in grid order) is backtested on the
    following test window with ``run_backtest`` (its run directory under ``runs_dir``).
    Runs are named ``<name>/w<window>/<point>`` and ``<name>/w<window>/test``;
    ``walkforward_windows`` and ``rpt.walkforward`` hold one row per window, written as
    each window ends. ``on_window`` is called with each window's result; ``announce``
    receives one line per window and the cluster's (default: stderr).
    """
    train_ms, test_ms = parse_duration(train, "--train"), parse_duration(test, "--test")
    check_metric(metric)
    check_workers(workers)
    base = list(overrides)
    options: dict[str, Any] = {"env_prefix": env_prefix, "env": env, "strategy": strategy,
                               "strategy_path": strategy_path}
    tree = read_config_file(config) if isinstance(config, str | Path) else None
    cfg0 = effective_config(config, base, **options)  # errors name the file
    if tree is not None:  # every window's config from this one read: an edit of the file
        config = tree     # during the analysis must not reach only the later windows
    wf_name = name or cfg0.run.name
    by_seq = {p.seq: p for p in points(grid)}  # the grid's shape refused before any work
    views.check()
    path = resolve_path(warehouse, env_prefix)
    reports = read_bars(cfg0, path, parse_when(cfg0.data.start, "data.start"),
                        parse_when(cfg0.data.end, "data.end"))
    check_qc(cfg0, [f for r in reports for f in r.findings])
    bar_ts = [int(t) for t in RunBars.of(reports).data.ts]
    plan = fitted_windows(bar_ts, timeframe_ms(cfg0.data.timeframe), train_ms, test_ms,
                          anchored)
    say = announce or (lambda line: print(line, file=sys.stderr, flush=True))
    result = WalkForwardResult(mf.new_id("wf"), wf_name, metric, anchored)
    say(f"walk-forward {result.wf_id}: {len(plan)} {'anchored' if anchored else 'rolling'} "
        f"windows, train {train.strip()}, test {test.strip()}, {len(by_seq)} points each, "
        f"chosen by the highest {metric}")
    with dask_client(scheduler, workers, processes) as (client, _):
        for w in plan:
            spans = [ms_to_iso(t) for t in (w.train_start, w.train_end, w.test_start,
                                             w.test_end)]
            out = WindowResult(w.seq, spans[0], spans[1], spans[2], spans[3])
            trained = sweep(config, grid, overrides=[*base, f"data.start={spans[0]}",
                                                     f"data.end={spans[1]}"],
                            name=f"{wf_name}/w{w.seq}", warehouse=path, client=client,
                            retries=retries, progress=progress, announce=(
                                say if w.seq == 1 else lambda line: None), **options)
            out.sweep_id = trained.sweep_id
            best = choose(trained.points, metric)
            if best is None:
                out.status = "no_choice"
                out.error = (f"no point of sweep {trained.sweep_id} has a {metric} "
                             f"({trained.failed} failed, {trained.completed} completed with "
                             f"a null {metric}: no trades, or a flat equity curve)")
            else:
                out.point_seq, out.params = best.point_seq, dict(best.params)
                out.train_run_id, out.in_sample = best.run_id, best.metrics[metric]
                _test(out, config, [*base, *by_seq[best.point_seq].overrides,
                                    f"data.start={spans[2]}", f"data.end={spans[3]}",
                                    f"run.name={wf_name}/w{w.seq}/test"],
                      metric, path, runs_dir, options)
            out.ended_at = mf.utc_now_iso()
            _write_window(path, result, out)
            result.windows.append(out)
            say(f"window {w.seq}/{len(plan)}: train {spans[0][:16]}..{spans[1][:16]} -> "
                f"{_label(out.params)} ({metric} {number_text(out.in_sample)}); test "
                f"{spans[2][:16]}..{spans[3][:16]}: {metric} {number_text(out.out_of_sample)}"
                + (f" [{out.status}]" if out.status != "completed" else ""))
            if on_window is not None:
                on_window(out)
    return result


def _test(out: WindowResult, config: Any, overrides: list[str], metric: str, path: Path,
          runs_dir: str | Path | None, options: dict[str, Any]) -> None:
    """The chosen parameters backtested on the test window, as ``run_backtest`` runs them; a
    failure is the window's (``failed``, with the sweep's error kinds), not the analysis'."""
    try:
        run = run_backtest(config, overrides=overrides, warehouse=path, progress=False,
                           runs_dir=runs_dir, **options)
    except WorkbenchError as exc:
        out.status, out.error_kind = "failed", error_kind(exc)
        out.error = scrub(exc.render())
        return
    out.status, out.test_run_id = "completed", run.run_id
    out.out_of_sample = run.metrics.get(metric)
    out.test_return_pct = run.metrics.get("total_return_pct")


def _write_window(warehouse: Path, result: WalkForwardResult, w: WindowResult) -> None:
    """One window's row, in one short transaction."""
    ts = pa.timestamp("ms", tz="UTC")
    table = pa.table({
        "wf_id": [result.wf_id], "window_seq": pa.array([w.window_seq], pa.int32()),
        "name": [result.name], "metric": [result.metric], "anchored": [result.anchored],
        "train_start": pa.array([utc_ts(w.train_start)], ts),
        "train_end": pa.array([utc_ts(w.train_end)], ts),
        "test_start": pa.array([utc_ts(w.test_start)], ts),
        "test_end": pa.array([utc_ts(w.test_end)], ts),
        "sweep_id": pa.array([w.sweep_id], pa.string()),
        "point_seq": pa.array([w.point_seq], pa.int32()),
        "params": pa.array([None if w.params is None else json.dumps(w.params, default=str)],
                           pa.string()),
        "train_run_id": pa.array([w.train_run_id], pa.string()),
        "in_sample": pa.array([w.in_sample], pa.float64()),
        "test_run_id": pa.array([w.test_run_id], pa.string()),
        "status": [w.status],
        "error_kind": pa.array([w.error_kind], pa.string()),
        "error": pa.array([w.error], pa.string()),
        "ended_at": pa.array([utc_ts(w.ended_at or mf.utc_now_iso())], ts),
    })
    with results.write_transaction(warehouse, WRITE_WAIT_S) as (con, _):
        results.insert_arrow(con, "walkforward_windows", table)
