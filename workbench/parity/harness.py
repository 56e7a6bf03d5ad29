"""``workbench parity``: our backtest of a config, then a peer engine's run of the same
strategy on the same bars, folded by the same code and held to the tolerance spec.

Our side is a real backtest (a ``runs`` row, a run directory). The peer's side: the bars the run
saw (read before it, so that a config the peer cannot express is refused before our run, and
held to its ``data_hash``), our strategy in our step inside the peer's loop
(``peer.PeerStep``), then the peer's fills through the same views as ours
(``rpt.performance`` in a private DuckDB) and the Book's round trips, written as a run directory
of the same four files. Each comparison adds rows to ``parity_results`` in one short write.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa

from workbench import manifest as mf
from workbench import rundir
from workbench.config import Config, parse_when
from workbench.engine.backtest import equity_rows
from workbench.engine.journal import contents, order_states
from workbench.engine.kernel import build_strategy
from workbench.engine.run import (
    WRITE_WAIT_S,
    as_config,
    bars_hash,
    execute,
    headline_in_memory,
    new_run_row,
    read_bars,
)
from workbench.errors import ConfigError, DataError
from workbench.feeds.history import LoopData, merge
from workbench.model import QTY_SCALE, Mode
from workbench.parity import spec
from workbench.parity.peer import PeerStep, Unsupported, check_costs
from workbench.warehouse import results, views
from workbench.warehouse.connect import resolve_path

ENGINES = {
    "backtrader": "workbench.parity.engine_backtrader",
    "backtesting": "workbench.parity.engine_backtesting",
    "nautilus": "workbench.parity.engine_nautilus",
}


@dataclass
class Comparison:
    quantity: str
    ours: float | None
    peer: float | None
    tolerance: float | None
    held: bool
    within: bool
    detail: str | None = None

    @property
    def diff(self) -> float | None:
        if self.ours is None or self.peer is None:
            return None
        return self.peer - self.ours


@dataclass
class ParityResult:
    parity_id: str
    engine: str
    engine_version: str
    strategy: str
    config_hash: str
    data_hash: str
    run_id: str
    bars: int
    out_dir: str
    seconds: dict[str, float]
    rows: list[Comparison] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(row.within for row in self.rows)

    @property
    def first_difference(self) -> str | None:
        return next((r.detail for r in self.rows if r.quantity == spec.TRADES and r.detail),
                    None)

    def table(self) -> str:
        """The side-by-side table ``workbench parity`` prints."""
        head = (f"parity {self.parity_id}: {self.strategy} on {self.bars:,} bars, workbench "
                f"(run {self.run_id}) vs {self.engine} {self.engine_version}")
        lines = [head, "",
                 f"{'quantity':20}{'workbench':>16}{self.engine:>16}{'diff':>14}"
                 f"{'tolerance':>12}  verdict"]
        for r in self.rows:
            if r.quantity == spec.TRADES:
                continue
            tol = ("exact" if r.tolerance == 0 else f"±{r.tolerance:g}") if r.held else "not held"
            verdict = "ok" if r.within and r.held else "(not held)" if not r.held else "OUTSIDE"
            lines.append(f"{r.quantity:20}{_num(r.ours):>16}{_num(r.peer):>16}"
                         f"{_num(r.diff):>14}{tol:>12}  {verdict}")
        trades = next(r for r in self.rows if r.quantity == spec.TRADES)
        lines.append(f"{'trades':20}{'':>16}{'':>16}{'':>14}{'identical':>12}  "
                     f"{'ok' if trades.within else 'DIFFER'}")
        if trades.detail and trades.held:
            lines += ["", trades.detail]
        for r in self.rows:
            if not r.held and r.detail:
                lines.append(f"not held for {self.engine}: {r.quantity}: {r.detail}")
        lines += ["", f"time: workbench {self.seconds['workbench']:.2f} s, {self.engine} "
                      f"{self.seconds['peer']:.2f} s; files in {self.out_dir}",
                  "PASSED: within the tolerance spec" if self.passed
                  else "FAILED: outside the tolerance spec"]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["passed"] = self.passed
        for row, data in zip(self.rows, out["rows"], strict=True):
            data["diff"] = row.diff
        return out


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.0f}"


def adapter(engine: str) -> ModuleType:
    """The adapter module of ``engine``; a clear error when it or its engine is missing."""
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}", where="--engine",
                          fix=f"use one of {', '.join(ENGINES)}")
    module = importlib.import_module(ENGINES[engine])
    try:
        importlib.import_module(module.PACKAGE)
    except ImportError as exc:
        raise ConfigError(
            f"{engine} is not installed ({exc})", where="--engine",
            fix="install the parity extra at the pinned versions: pip install -c "
                "constraints.txt -e '.[parity]' (make test does)") from None
    return module


def run_parity(engine: str, config: Config | str | Path | Mapping[str, Any] | None, *,
               overrides: Iterable[str] = (), warehouse: str | Path | None = None,
               out: str | Path | None = None, env_prefix: str = "WB_",
               runs_dir: str | Path | None = None) -> ParityResult:
    """Run our backtest of ``config`` and ``engine``'s run of the same strategy; compare."""
    adapter(engine)  # fails fast: an unknown engine, or one not installed
    cfg = as_config(config, overrides, env_prefix)
    wh = resolve_path(warehouse, env_prefix)
    parity_id = mf.new_id("parity")
    if runs_dir is None:
        runs_dir = os.environ.get(f"{env_prefix}RUNS_DIR") or "runs"
    out_dir = Path(out) if out is not None else Path(runs_dir) / parity_id
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError(f"output directory {out_dir} exists and is not empty", where="--out",
                          fix="name a new directory, or leave --out out")
    # the peer's bars, read first: a config the peer cannot express is refused before our
    # backtest runs (and stays in the warehouse, and half fills the output directory)
    start, end = parse_when(cfg.data.start, "data.start"), parse_when(cfg.data.end, "data.end")
    reports = read_bars(cfg, wh, start, end)
    data = merge([r.series for r in reports])
    if not any(r.errors for r in reports):  # else our run refuses the bars, saying why
        try:
            check_costs(cfg)
            adapter(engine).check(cfg, data)
        except Unsupported as exc:
            raise _refused(engine, exc) from None
    started = time.perf_counter()
    ours = execute(cfg, warehouse=wh, out=out_dir / "workbench", progress=False,
                   env_prefix=env_prefix, runs_dir=runs_dir)
    ours_s = time.perf_counter() - started

    if bars_hash(reports) != ours.manifest["data_hash"]:
        raise DataError(f"the bars changed between the peer's read and our run {ours.run_id} "
                        "(another process ingested meanwhile)",
                        fix="run `workbench parity` again once the ingest is done")
    peer = run_peer(engine, cfg, data, f"{parity_id}-{engine}", out_dir / engine)
    result = ParityResult(
        parity_id=parity_id, engine=engine, engine_version=peer.version,
        strategy=cfg.strategy.class_path, config_hash=ours.manifest["config_hash"],
        data_hash=ours.manifest["data_hash"], run_id=ours.run_id, bars=len(data),
        out_dir=str(out_dir), seconds={"workbench": round(ours_s, 3),
                                       "peer": round(peer.seconds, 3)},
        rows=compare(engine, ours.metrics, peer.metrics, ours.run_dir / "trades.csv",
                     out_dir / engine / "trades.csv"))
    (out_dir / "parity.json").write_text(json.dumps(result.to_dict(), indent=2, default=str)
                                         + "\n")
    record(wh, result)
    return result


@dataclass
class PeerRun:
    """A peer's run of a config, folded as ours is."""

    version: str
    seconds: float  # the peer's run alone (its loop with our strategy), not the folding
    metrics: dict[str, Any]


def run_peer(engine: str, cfg: Config, data: LoopData, run_id: str, out_dir: Path) -> PeerRun:
    """Run ``cfg``'s strategy on ``data`` in ``engine``; fold its fills as a run of ours is
    folded (the headline through the versioned views, the four files of a run directory in
    ``out_dir``)."""
    module = adapter(engine)
    started = time.perf_counter()
    try:
        module.check(cfg, data)
        peer = module.run(cfg, build_strategy(cfg), data, run_id)
    except Exception as exc:
        unsupported = _cause(exc, Unsupported)
        if unsupported is None:
            raise
        raise _refused(engine, unsupported) from None
    seconds = time.perf_counter() - started
    return PeerRun(module.version(), seconds, _fold(cfg, peer, run_id, out_dir))


def _refused(engine: str, unsupported: Exception) -> ConfigError:
    return ConfigError(f"{engine} cannot run this config as workbench does: {unsupported}",
                       where=f"--engine {engine}",
                       fix="see docs/parity.md for what each peer can express; compare with "
                           "another engine")


def _cause(exc: BaseException | None, kind: type[Exception]) -> Exception | None:
    """``exc`` or the first exception of ``kind`` it was raised from (the step wraps what a
    broker raises in an EngineFault)."""
    while exc is not None:
        if isinstance(exc, kind):
            return exc
        exc = exc.__cause__
    return None


def _fold(cfg: Config, peer: PeerStep, run_id: str, out_dir: Path) -> dict[str, Any]:
    step, data = peer.step, peer.data
    records = contents(step.journal)
    orders = order_states(records)
    equity = equity_rows(step.book, data)
    tables = results.run_tables(data, records, [], cfg.data.timeframe, cfg.data.gaps, run_id,
                                orders=orders)
    view_list = views.check()
    manifest = {"run_id": run_id, "config": cfg.to_dict(), "config_hash": cfg.hash(),
                "git_sha": mf.git_sha(), "started_at": mf.utc_now_iso(),
                "versions": mf.versions(), "view_versions": views.versions(view_list)}
    run_row = new_run_row(cfg, Mode.BACKTEST, manifest, out_dir)
    run_row.update(status="completed", bar_count=len(data))
    metrics = headline_in_memory(run_row, tables, equity, view_list, cfg.run.memory_limit)
    out_dir.mkdir(parents=True, exist_ok=True)
    rundir.write_all(out_dir, step.book.round_trips, orders, records.fills, equity)
    return metrics


def compare(engine: str, ours: Mapping[str, Any], peer: Mapping[str, Any], our_trades: Path,
            peer_trades: Path) -> list[Comparison]:
    """Each quantity of the spec, ours against the peer's."""
    a, b = read_rows(our_trades), read_rows(peer_trades)
    rows = []
    for rule in spec.rules(engine):
        if rule.quantity == spec.TRADES:
            detail = first_difference(a, b, engine)
            fills = our_trades.with_name("fills.csv"), peer_trades.with_name("fills.csv")
            if detail is None and all(f.exists() for f in fills):  # the run directories'
                detail = open_difference(read_rows(fills[0]), read_rows(fills[1]), engine)
            rows.append(Comparison(rule.quantity, None, None, None, rule.held,
                                   detail is None or not rule.held,
                                   detail if rule.held else rule.why))
            continue
        x: float | None
        y: float | None
        if rule.quantity == spec.TRADE_COUNT:
            x, y = float(len(a)), float(len(b))
        else:
            x, y = _float(ours.get(rule.quantity)), _float(peer.get(rule.quantity))
        tol = rule.tolerance or 0.0
        within = (not rule.held) or (x is not None and y is not None and abs(y - x) <= tol) \
            or (x is None and y is None)
        rows.append(Comparison(rule.quantity, x, y, rule.tolerance if rule.held else None,
                               rule.held, within, None if rule.held else rule.why))
    return rows


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


_EXACT = ("symbol", "side", "qty", "entry_ts", "exit_ts")


def read_rows(path: Path) -> list[dict[str, str]]:
    """A run file's rows (``trades.csv``, ``fills.csv``, ...) as dicts of their texts."""
    import csv

    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def first_difference(ours: list[dict[str, str]], peer: list[dict[str, str]], engine: str
                     ) -> str | None:
    """The first round trip that differs (or the first one only one side has), else None."""
    for n, (a, b) in enumerate(zip(ours, peer, strict=False), start=1):
        bad = [k for k in _EXACT if a[k] != b[k]]
        bad += [k for k in ("entry_price", "exit_price")
                if abs(float(a[k]) - float(b[k])) > spec.PRICE_RTOL * abs(float(a[k]))]
        if bad:
            return (f"first differing trade: #{n} ({', '.join(bad)})\n"
                    f"  workbench: {_show(a)}\n  {engine:9}: {_show(b)}")
    if len(ours) != len(peer):
        n = min(len(ours), len(peer)) + 1
        extra, who = (ours, "workbench") if len(ours) > len(peer) else (peer, engine)
        return (f"first differing trade: #{n} only in {who} ({len(ours)} trades in workbench, "
                f"{len(peer)} in {engine})\n  {who}: {_show(extra[n - 1])}")
    return None


def open_difference(ours: list[dict[str, str]], peer: list[dict[str, str]], engine: str
                    ) -> str | None:
    """The positions left open at the end, when they differ (round trips alone miss a fill
    that opens a position one side never closes), else None."""
    def held(fills: list[dict[str, str]]) -> dict[str, int]:
        units: dict[str, int] = {}
        for f in fills:
            q = round(float(f["qty"]) * QTY_SCALE)
            units[f["symbol"]] = units.get(f["symbol"], 0) + (q if f["side"] == "BUY" else -q)
        return {k: v for k, v in units.items() if v}

    a, b = held(ours), held(peer)
    if a == b:
        return None

    def show(units: dict[str, int]) -> str:
        return ", ".join(f"{k} {v / QTY_SCALE!r}" for k, v in sorted(units.items())) or "none"

    return (f"open positions at the end differ (fills: {len(ours)} in workbench, {len(peer)} "
            f"in {engine})\n  workbench: {show(a)}\n  {engine:9}: {show(b)}")


def _show(t: Mapping[str, str]) -> str:
    return (f"{t['symbol']} {t['side']} {t['qty']} {t['entry_ts']} @ {t['entry_price']} -> "
            f"{t['exit_ts']} @ {t['exit_price']}")


def record(warehouse: Path, result: ParityResult) -> None:
    """The comparison's rows into ``parity_results``, in one short transaction."""
    n = len(result.rows)
    table = pa.table({
        "parity_id": [result.parity_id] * n,
        "created_at": pa.array([datetime.now(UTC)] * n, pa.timestamp("ms", tz="UTC")),
        "engine": [result.engine] * n,
        "engine_version": [result.engine_version] * n,
        "strategy": [result.strategy] * n,
        "config_hash": [result.config_hash] * n,
        "data_hash": [result.data_hash] * n,
        "run_id": [result.run_id] * n,
        "quantity": [r.quantity for r in result.rows],
        "ours": pa.array([r.ours for r in result.rows], pa.float64()),
        "peer": pa.array([r.peer for r in result.rows], pa.float64()),
        "diff": pa.array([r.diff for r in result.rows], pa.float64()),
        "tolerance": pa.array([r.tolerance for r in result.rows], pa.float64()),
        "held": [r.held for r in result.rows],
        "within": [r.within for r in result.rows],
        "passed": [result.passed] * n,
        "detail": pa.array([r.detail for r in result.rows], pa.string()),
    })
    with results.write_transaction(warehouse, WRITE_WAIT_S) as (con, _):
        results.insert_arrow(con, "parity_results", table)
