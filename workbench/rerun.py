"""``workbench rerun RUN_ID``: a backtest run again from its record, checked byte for byte.

The config is rebuilt from the run's ``runs`` row (``config_json``); a secret it held was
stored masked, so its value is read from the secrets provider as a backtest reads it
(``WB_STRATEGY__PARAMS__API_KEY``, or the 0600 secrets file), and the rebuilt config must hash
to the run's ``config_hash``. The bars are read from the warehouse as the run read them and
must hash to its ``data_hash``; when they do not, the rerun is refused and says which symbol
and bar changed (against the run's own ``run_bars``); likewise the corporate actions stored for
its window must be the ones it applied (``action_events``). Then the config runs as an ordinary
backtest tagged ``rerun_of=<RUN_ID>`` into a fresh directory, and its four CSVs are compared
with the original run directory's, byte for byte: the first differing file and line is the
answer. A different git SHA or package version is reported first, as the likely cause.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench import manifest as mf
from workbench import rundir
from workbench.config import Config, load_config, override_value, parse_when
from workbench.engine.run import RunResult, bars_hash, check_qc, execute, read_bars
from workbench.errors import ConfigError, DataError, WorkbenchError
from workbench.feeds.qc import QcReport
from workbench.model import Mode, ms_to_iso
from workbench.registry import RunRecord, read_record
from workbench.secrets import MASK, SecretsProvider
from workbench.tags import RERUN_OF
from workbench.warehouse.connect import reading, resolve_path

MAX_LINE = 160  # characters of a differing line shown


@dataclass
class RerunResult:
    """The rerun's own run, what was compared, the first difference (None: identical) and
    the warnings (code or package versions that differ from the original's)."""

    original: str
    original_dir: Path
    run: RunResult
    difference: str | None
    warnings: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.difference is None


def rerun(run_id: str, *, warehouse: str | Path | None = None, out: str | Path | None = None,
          env_prefix: str = "WB_", runs_dir: str | Path = "runs",
          env: Mapping[str, str] | None = None) -> RerunResult:
    """Rerun the backtest ``run_id`` from its record and the warehouse's bars and compare its
    files with the original's. Refuses (an error saying why) a run that is not a completed
    backtest with a run directory, a masked secret it cannot read, and bars that changed."""
    path = resolve_path(warehouse, env_prefix)
    original = _read(path, run_id)
    cfg = rebuild_config(original, env_prefix=env_prefix, env=env)
    warnings = _code_warnings(original)
    if cfg.hash() != original.config_hash:  # no secret involved (rebuild_config refused)
        warnings.append(
            f"the config rebuilt from run {run_id}'s record hashes to {cfg.hash()[:12]}, not "
            f"{str(original.config_hash)[:12]}: this code reads its config differently")
    span = run_span(cfg, path, original)
    check_bars(cfg, path, original, span)
    check_actions(cfg, path, original)
    result = execute(cfg, warehouse=path, out=out, env_prefix=env_prefix, runs_dir=runs_dir,
                     mode=Mode.BACKTEST, tags={RERUN_OF: run_id}, span=span)
    if result.manifest.get("data_hash") != original.data_hash:  # changed while it ran
        raise DataError(f"the bars of run {run_id} changed while it was rerun "
                        f"(rerun {result.run_id} saw other bars)",
                        fix="rerun when no ingest is writing those bars")
    original_dir = Path(original.run_dir or "")
    return RerunResult(run_id, original_dir, result,
                       first_difference(original_dir, result.run_dir), warnings)


def _read(warehouse: Path, run_id: str) -> RunRecord:
    from workbench.report.data import resolve_run_id

    with reading(warehouse) as con:
        original = read_record(con, resolve_run_id(con, run_id))
    if original.mode != Mode.BACKTEST.value:
        raise WorkbenchError(
            f"run {run_id} is a {original.mode} run: only backtests can be rerun (its bars "
            "came from the venue as they arrived)",
            fix=f"`workbench replay --run {run_id}` checks a live run against its journal")
    if original.status != "completed":
        raise WorkbenchError(f"run {run_id} is {original.status}, not completed: there are no "
                             "results to compare a rerun with",
                             fix="rerun a completed backtest (`workbench runs list`)")
    if not original.run_dir:
        raise WorkbenchError(
            f"run {run_id} has no run directory (a sweep point keeps its rows in the "
            "warehouse only): there are no files to compare a rerun with",
            fix="backtest the point's config with `workbench backtest` to get one")
    missing = [n for n in rundir.FILES if not (Path(original.run_dir) / n).is_file()]
    if missing:
        raise WorkbenchError(
            f"run {run_id}'s directory {original.run_dir} lacks {', '.join(missing)}",
            fix="restore the run directory (it was moved or deleted), then rerun")
    return original


def rebuild_config(original: RunRecord, *, env_prefix: str = "WB_",
                   env: Mapping[str, str] | None = None) -> Config:
    """The run's config from its record: the masked secrets read from the secrets provider
    (``<prefix><PATH>`` in the environment, then the 0600 secrets file), checked against the
    run's config hash."""
    class_path = str((original.config.get("strategy") or {}).get("class") or "")
    if class_path.startswith("__main__:"):
        raise ConfigError(
            f"run {original.run_id}'s strategy {class_path} was defined in a notebook or "
            "script, which a rerun cannot import", where="strategy.class",
            fix="rerun it from that notebook with run_backtest(...), or move the class into a "
                "module")
    masked = list(_masked_paths(original.config))
    tree = json.loads(json.dumps(original.config))
    if masked:
        provider = SecretsProvider(env=env, prefix=env_prefix)
        for where in masked:
            name = "__".join(where).upper()
            found = provider.get(name)
            if found is None:
                raise ConfigError(
                    f"run {original.run_id}'s config held the secret {'.'.join(where)}, which "
                    "the warehouse stores masked", where=".".join(where),
                    fix=f"set {env_prefix}{name} (or {name}=... in the secrets file) to the "
                        "value the run used, then rerun")
            _put(tree, where, override_value(f"{'.'.join(where)}={found.get_secret_value()}"))
    cfg = load_config(None, (), base=tree, env={}, env_prefix=env_prefix)
    if masked and cfg.hash() != original.config_hash:
        raise ConfigError(
            f"the secret values given are not the ones run {original.run_id} used (the "
            "config hash differs)", where=", ".join(".".join(w) for w in masked),
            fix="set them to the run's values; a rerun must run the same config")
    return cfg


def _masked_paths(tree: Any, prefix: tuple[str, ...] = ()) -> Any:
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from _masked_paths(value, (*prefix, str(key)))
    elif tree == MASK and prefix:
        yield prefix


def _put(tree: dict[str, Any], where: tuple[str, ...], value: Any) -> None:
    node = tree
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value


def _code_warnings(original: RunRecord) -> list[str]:
    out = []
    sha = mf.git_sha()
    if original.git_sha != sha:
        out.append(f"the code differs: run {original.run_id} ran at git {original.git_sha}, "
                   f"this is {sha} (a likely cause of any difference)")
    now = mf.versions()
    changed = [f"{k} {original.versions.get(k)} -> {now.get(k)}"
               for k in sorted(set(now) | set(original.versions))
               if original.versions.get(k) != now.get(k)]
    if changed:
        out.append(f"package versions differ from run {original.run_id}'s: "
                   + "; ".join(changed) + " (a likely cause of any difference)")
    return out


def run_span(cfg: Config, warehouse: Path, original: RunRecord) -> tuple[int | None, int | None]:
    """``[start, end)`` in ms the rerun reads: the run's own first bar to the end of its last
    (``runs.start_ts``, ``end_ts``; inside ``data.start``/``data.end`` by construction), so
    bars ingested since outside what it saw (after an open or a distant ``data.end``) are not
    read; ``data.start``/``data.end`` for a run recorded without them."""
    start, end = parse_when(cfg.data.start, "data.start"), parse_when(cfg.data.end, "data.end")
    with reading(warehouse) as con:
        rows = con.execute("select epoch_ms(start_ts), epoch_ms(end_ts), timeframe_ms "
                           "from runs where run_id = ?", [original.run_id]).fetchall()
    first, last, tf_ms = rows[0] if rows else (None, None, None)
    if first is not None:
        start = int(first) if start is None else max(start, int(first))
    if last is not None and tf_ms is not None:
        end = int(last) + int(tf_ms) if end is None else min(end, int(last) + int(tf_ms))
    return start, end


def check_bars(cfg: Config, warehouse: Path, original: RunRecord,
               span: tuple[int | None, int | None] | None = None) -> None:
    """DataError unless the warehouse's bars, read and checked as the run read them (in
    ``span``, default ``data.start``/``data.end``), hash to the run's ``data_hash``; it names
    the first changed bar it can find."""
    start, end = span or (parse_when(cfg.data.start, "data.start"),
                          parse_when(cfg.data.end, "data.end"))
    what = f"the bars run {original.run_id} saw changed since it ran"
    fix = ("ingest the bars the run saw again (its closes are in run_bars), or backtest the "
           "config anew with `workbench backtest`")
    try:
        reports = read_bars(cfg, warehouse, start, end)
        check_qc(cfg, [f for r in reports for f in r.findings])
    except DataError as exc:
        raise DataError(f"{what}: {exc.what}", fix=fix) from None
    if bars_hash(reports) == original.data_hash:
        return
    raise DataError(f"{what}: {_changes(warehouse, original.run_id, reports)}", fix=fix)



def check_actions(cfg: Config, warehouse: Path, original: RunRecord) -> None:
    """DataError unless the corporate actions stored for the run's window are the ones it
    applied (its ``action_events``): a rerun would apply the stored ones. Nothing to check
    when the data were ``adjusted`` (none applied) or the warehouse predates the tables."""
    from workbench.engine.actions import in_window
    from workbench.warehouse.actions import read_actions
    from workbench.warehouse.migrations import has_table

    if cfg.data.adjusted:
        return
    with reading(warehouse) as con:
        if not has_table(con, "action_events"):
            return
        then = con.execute(
            "select symbol, strftime(ex_date, '%Y-%m-%d'), kind, ratio, amount from "
            "action_events where run_id = ?", [original.run_id]).fetchall()
        first, last = con.execute("select epoch_ms(min(ts)), epoch_ms(max(ts)) from run_bars "
                                  "where run_id = ?", [original.run_id]).fetchone()
        stored = read_actions(con, list(cfg.data.symbols)) if first is not None else []
    now = [(a.symbol, a.ex_date, a.kind.value, a.ratio, a.amount)
           for a in in_window(stored, first, last)] if first is not None else []
    if sorted(then) == sorted(now):
        return
    was = {(s, d, k): (r, a) for s, d, k, r, a in then}
    is_ = {(s, d, k): (r, a) for s, d, k, r, a in now}
    changes = []
    for key in sorted(set(was) | set(is_)):
        symbol, day, kind = key
        what = f"{symbol} {kind} of {day}"
        if key not in is_:
            changes.append(f"{what} was applied, now is not stored")
        elif key not in was:
            changes.append(f"{what} was not applied, now is stored")
        elif was[key] != is_[key]:
            field_ = "ratio" if kind == "SPLIT" else "amount"
            i = 0 if kind == "SPLIT" else 1
            changes.append(f"{what} applied with {field_} {was[key][i]!r}, now {is_[key][i]!r}")
    raise DataError(
        f"the corporate actions run {original.run_id} applied changed since it ran: "
        + "; ".join(changes),
        fix="ingest the actions the run applied again (`workbench ingest-actions FILE "
            "--replace`; they are in its action_events), or backtest the config anew")

def _changes(warehouse: Path, run_id: str, reports: list[QcReport]) -> str:
    """Where the bars differ from the run's ``run_bars`` (times and closes), symbol by
    symbol; when those all match, an open, high, low or volume changed."""
    with reading(warehouse) as con:
        seen = con.sql("select symbol, epoch_ms(ts) as ts, close from run_bars "
                       "where run_id = ? order by symbol, ts", params=[run_id]).fetchnumpy()
    now = {r.series.symbol: r.series for r in reports}
    found = []
    for symbol in sorted(set(now) | {str(s) for s in seen["symbol"]}):
        mine = seen["symbol"] == symbol
        then_ts, then_close = seen["ts"][mine].astype(np.int64), seen["close"][mine]
        series = now.get(symbol)
        now_ts = series.ts if series is not None else np.zeros(0, np.int64)
        now_close = series.close if series is not None else np.zeros(0)
        text = _series_change(then_ts, then_close, now_ts, now_close)
        if text:
            found.append(f"{symbol}: {text}")
    if found:
        return "; ".join(found)
    symbols = ", ".join(sorted(now))
    return (f"{symbols}: the bar times and closes are the run's, so an open, high, low or "
            "volume changed")


def _series_change(then_ts: np.ndarray, then_close: np.ndarray, now_ts: np.ndarray,
                   now_close: np.ndarray) -> str | None:
    if len(then_ts) != len(now_ts) or not np.array_equal(then_ts, now_ts):
        n = min(len(then_ts), len(now_ts))
        differ = np.flatnonzero(then_ts[:n] != now_ts[:n])
        i = int(differ[0]) if len(differ) else n
        if i < len(then_ts) and (i >= len(now_ts) or now_ts[i] > then_ts[i]):
            first = f"the bar at {ms_to_iso(int(then_ts[i]))} is gone"
        else:
            first = f"a bar at {ms_to_iso(int(now_ts[i]))} is new"
        return f"{first} ({len(now_ts)} bars now, {len(then_ts)} when it ran)"
    changed = np.flatnonzero(then_close != now_close)
    if not len(changed):
        return None
    i, j = int(changed[0]), int(changed[-1])
    span = (f"{len(changed)} closes changed, from {ms_to_iso(int(then_ts[i]))} to "
            f"{ms_to_iso(int(then_ts[j]))}" if len(changed) > 1 else "1 close changed")
    return (f"{span}; the first, at {ms_to_iso(int(then_ts[i]))}, was "
            f"{float(then_close[i])!r}, now {float(now_close[i])!r}")


def first_difference(original: Path, rerun_dir: Path) -> str | None:
    """The first file (in ``rundir.FILES`` order) and line where two run directories differ,
    both lines shown; None when the four files are byte-identical."""
    for name in rundir.FILES:
        a, b = original / name, rerun_dir / name
        left, right = a.read_bytes(), b.read_bytes()
        if left == right:
            continue
        lines_a, lines_b = left.splitlines(keepends=True), right.splitlines(keepends=True)
        for n, (x, y) in enumerate(zip(lines_a, lines_b, strict=False), 1):
            if x != y:
                return (f"{name} line {n}:\n  original: {_line(x)}\n  rerun:    {_line(y)}")
        n = min(len(lines_a), len(lines_b)) + 1
        longer = "original" if len(lines_a) > len(lines_b) else "rerun"
        extra = (lines_a if longer == "original" else lines_b)[n - 1]
        return (f"{name} line {n}: only the {longer} has it ({len(lines_a)} lines in the "
                f"original, {len(lines_b)} in the rerun):\n  {longer}: {_line(extra)}")
    return None


def _line(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").removesuffix("\n")
    if text.endswith("\r"):  # a line ending that changed shows
        text = text[:-1] + "\\r"
    return text if len(text) <= MAX_LINE else text[:MAX_LINE - 3] + "..."
