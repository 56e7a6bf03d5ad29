"""The operator's side of a live run: controls (halt, flatten, resume) and status.

A control reaches the loop through the run directory: ``request`` writes
``<run_dir>/control/<ns>-<action>.json`` (atomically) and waits for the loop's answer in
``control/done/``. The loop takes requests between bars and at least every ``idle_s`` while it
waits (``engine/live.py``), journals each as a ``control`` record before acting on it, and
answers. When no process runs the run (its journal is not locked), the control is journaled
directly: it takes effect where it stands in the journal when the run is resumed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, NamedTuple

from workbench.engine.live import (
    ACTIONS,
    CONTROL_DIR,
    DONE_DIR,
    STATUS_FILE,
    wall_ms,
    write_atomic,
)
from workbench.errors import ConfigError, WorkbenchError
from workbench.model import ms_to_iso, units_to_qty
from workbench.recovery.records import control_record
from workbench.recovery.replay import compare, fold, rebuild, recover
from workbench.recovery.wal import WAL_FILE, Wal, WalError, WalReader
from workbench.warehouse.connect import reading


def run_dir_of(runs_dir: str | Path, run_id: str) -> Path:
    path = Path(runs_dir) / run_id
    if not (path / STATUS_FILE).is_file():
        raise ConfigError(f"no live run {run_id!r} in {runs_dir}", where="--run",
                          fix="pass the id a shadow or paper run printed when it started "
                              "(`workbench status` lists them), and the same --runs-dir")
    return path


def request(run_dir: Path, journal: Path, action: str, *, reason: str | None = None,
            dry_run: bool = False, confirm: bool = False, wait_s: float = 5.0
            ) -> dict[str, Any]:
    """Ask the run to ``action`` and return its answer (``ok``, ``halted``...); journaled
    straight away when no process runs it (``queued``)."""
    if action not in ACTIONS:
        raise ConfigError(f"unknown control {action!r}", fix=f"use one of {', '.join(ACTIONS)}")
    if action == "resume" and not confirm:
        raise ConfigError("resume lifts the halt and lets the strategy trade again; it needs "
                          "--confirm", where="workbench resume",
                          fix="check `workbench status --run ID` first, then run it again with "
                              "--confirm")
    if not (journal / WAL_FILE).is_file():  # else a halt would go to a journal no run reads
        raise ConfigError(f"no journal for run {run_dir.name!r} at {journal}",
                          where="--warehouse",
                          fix="pass the --warehouse (or WB_WAREHOUSE) the run was started with: "
                              "its journal is beside it, in live/<run_id>/")
    body = {"action": action, "reason": reason or "operator", "dry_run": dry_run,
            "confirm": confirm, "requested_at": ms_to_iso(wall_ms())}
    folder = run_dir / CONTROL_DIR
    (folder / DONE_DIR).mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns()}-{action}.json"
    write_atomic(folder / name, json.dumps(body, sort_keys=True))  # the loop reads *.json
    done = folder / DONE_DIR / name
    deadline = time.monotonic() + wait_s
    while True:
        if done.is_file():
            return dict(json.loads(done.read_text(encoding="utf-8")))
        pending = folder / name
        if not _running(journal) and pending.exists():
            return _journal_directly(journal, pending, body)
        # running, or the loop took the request as it stopped: its answer is on the way
        if time.monotonic() >= deadline:
            return {"ok": False, "pending": True,
                    "error": f"the run did not answer within {wait_s:g} s; the request stays "
                             f"in {folder} and is taken when the loop next looks"}
        time.sleep(0.02)


def _running(journal: Path) -> bool:
    """Whether a process runs the run: it holds the journal's writer lock (a live run opens
    its journal waiting a moment for the lock, so this look never stops one starting)."""
    if not (journal / WAL_FILE).is_file():
        return False
    try:
        wal = Wal.open(journal)
    except WalError:
        return True
    wal.close()
    return False


def _journal_directly(journal: Path, pending: Path, body: dict[str, Any]) -> dict[str, Any]:
    try:
        wal = Wal.open(journal)
    except WalError:
        return {"ok": False, "pending": True, "error": "the run started meanwhile; the request "
                                                       "waits for it in its control folder"}
    try:
        pending.unlink(missing_ok=True)
        if body["dry_run"]:
            return {"ok": True, "dry_run": True, "would": f"{body['action']} when the run "
                                                          "resumes (it is not running)"}
        state = rebuild(journal)
        ts = max(state.last_bar_ts.values(), default=0)
        wal.append("control", control_record(body["action"], ts=ts, reason=body["reason"],
                                             source="operator", queued=True,
                                             wall_ts=wall_ms()))
    finally:
        wal.close()
    return {"ok": True, "queued": True, "action": body["action"],
            "note": "the run is not running: journaled, it takes effect when the run resumes"}


def status(run_dir: Path, journal: Path) -> dict[str, Any]:
    """The run's ``status.json`` as the loop last wrote it, with ``running`` checked (the
    journal's lock) and the halt read from the journal when no process runs it."""
    try:
        found: dict[str, Any] = json.loads((run_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WorkbenchError(f"cannot read the run's status: {exc}", where=str(run_dir),
                             fix="the run directory may be damaged; `workbench replay --run "
                                 "ID` rebuilds the state from its journal") from None
    found["running"] = _running(journal)
    if not found["running"] and (journal / WAL_FILE).is_file():
        state = rebuild(journal)
        found["halted"] = state.halt_reason if state.halted else None
    return found


def live_runs(runs_dir: str | Path) -> list[dict[str, Any]]:
    """Every live run with a status in ``runs_dir``, newest first."""
    rows = []
    for path in Path(runs_dir).glob(f"*/{STATUS_FILE}"):
        try:
            rows.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return sorted(rows, key=lambda r: str(r.get("updated_at")), reverse=True)


class ReplayReport(NamedTuple):
    lines: list[str]
    difference: str | None


def replay_check(journal: Path, warehouse: Path, run_id: str) -> ReplayReport:
    """``workbench replay``: the state from the last snapshot plus the WAL tail, checked
    against a fold of the whole journal (every record from the first), then against the
    warehouse's rows for the run when it holds them (the flusher's last write)."""
    if not (journal / WAL_FILE).is_file():
        raise ConfigError(f"no journal for run {run_id!r}", where=str(journal),
                          fix="pass the id of a shadow or paper run, and the --warehouse it "
                              "ran with (its journal is warehouse/live/<run_id>/)")
    recovered = recover(journal)
    state = recovered.state
    whole = fold(WalReader(journal))
    snap = recovered.snapshot
    lines = [
        f"journal: {journal} ({state.seq} records"
        + (f", torn tail dropped: {recovered.torn}" if recovered.torn else "") + ")",
        f"snapshot: {snap.source} at WAL seq {snap.snapshot.wal_seq}" if snap.snapshot
        else "snapshot: none (folded from the first record)",
        f"cash {state.cash!r}, positions "
        + (", ".join(f"{s} {units_to_qty(u)!r}" for s, u in sorted(state.units.items())) or "flat")
        + f", {len(state.orders)} orders ({len(state.open_orders())} open), "
          f"{len(state.fills)} fills, halted: {state.halt_reason if state.halted else 'no'}",
    ]
    found = compare(state, whole)
    if found is not None:
        return ReplayReport(lines, f"snapshot + tail vs the whole journal: {found}")
    lines.append("snapshot + tail == the whole journal")
    if not Path(warehouse).is_file():
        lines.append(f"warehouse: none at {warehouse}; not checked")
        return ReplayReport(lines, None)
    with reading(warehouse, wait_s=10.0) as con:
        fills = con.execute(
            "select fill_seq, client_order_id, qty, price, fee from fills where run_id = ? "
            "order by fill_seq", [run_id]).fetchall()
        orders = con.execute("select client_order_id, status from orders where run_id = ? "
                             "order by order_seq", [run_id]).fetchall()
    if not fills and not orders:
        lines.append("warehouse: no rows for the run yet (not flushed); not checked")
        return ReplayReport(lines, None)
    want_fills = [(f["fill_seq"], f["client_order_id"], f["qty"], f["price"], f["fee"])
                  for f in state.fills]
    got_fills = [tuple(row) for row in fills]
    for i, (want, got) in enumerate(zip(want_fills, got_fills, strict=False)):
        if want != got:
            return ReplayReport(lines, f"warehouse fill {i + 1}: journal {want!r} != "
                                       f"warehouse {got!r}")
    if len(want_fills) != len(got_fills):
        return ReplayReport(lines, f"fills: journal {len(want_fills)} != warehouse "
                                   f"{len(got_fills)} (the flusher may be behind: flush, then "
                                   "check again)")
    want_orders = [(coid, o["status"]) for coid, o in
                   sorted(state.orders.items(), key=lambda kv: kv[1]["order_seq"])]
    for a, b in zip(want_orders, [tuple(r) for r in orders], strict=False):
        if a != b:
            return ReplayReport(lines, f"warehouse order {a[0]}: journal status {a[1]!r} != "
                                       f"warehouse {b[1]!r}")
    if len(want_orders) != len(orders):
        return ReplayReport(lines, f"orders: journal {len(want_orders)} != warehouse "
                                   f"{len(orders)}")
    lines.append(f"warehouse: {len(fills)} fills and {len(orders)} orders equal the journal's")
    return ReplayReport(lines, None)
