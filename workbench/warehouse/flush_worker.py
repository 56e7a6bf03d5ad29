"""The live run's warehouse flusher in a process of its own, beside the decision loop.

DuckDB holds Python's interpreter lock for long stretches (opening the file, applying
migrations, checkpointing: 0.2-0.4 s measured), so a flusher *thread* made the decision loop
wait, whatever it did between bars. ``FlusherProcess`` runs the same :class:`Flusher` logic in a
child process (``python -m workbench.warehouse.flush_worker``): the loop only writes a line to
its stdin now and then. The child

* reads the run's journal (read-only, as the thread did) and the ``runs`` row the parent sends
  (one JSON line on stdin whenever the status moves), and replaces the run's rows in short
  transactions, retrying with backoff while another process holds the file;
* also builds the run's backtest twin itself (``<run_id>.backtest``): the same config on the
  journaled bars, warm-up bars as warm-up, fed to a backtest kernel as they appear; so the
  decision loop no longer pays for the twin either;
* answers each flush with one JSON line on stdout (``flushed_seq``, ``error``);
* exits when its stdin closes: the parent ended or was killed (kill -9 included), so it is
  never left behind.

Protocol (JSON lines): parent -> child ``{"row": {...}}``, ``{"flush": true}``,
``{"stop": true, "timeout_s": 10}``; child -> parent ``{"flushed_seq": N, "hold_s": x}``,
``{"error": "..."}``, ``{"stopped": true, "ok": bool}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from workbench.errors import WorkbenchError


class FlusherProcess:
    """``Flusher``'s interface (``flush_now``, ``start``, ``request``, ``stop``,
    ``last_flushed_seq``, ``last_error``, ``flushes``, ``failures``) over a child process.
    ``run_row_fn`` is called on the caller's thread (each ``request`` and ``stop`` sends the
    row as it is then)."""

    def __init__(self, warehouse: str | Path, journal_dir: str | Path,
                 run_row_fn: Any, *, every_s: float = 5.0, wait_s: float = 0.5,
                 log: Any = None, twin: bool = True) -> None:
        self.warehouse, self.journal_dir = Path(warehouse), Path(journal_dir)
        self.run_row_fn = run_row_fn
        self.every_s, self.wait_s, self.log, self.twin = every_s, wait_s, log, twin
        self.last_flushed_seq = 0
        self.last_error: str | None = None
        self.flushes = 0
        self.failures = 0
        self.last_hold_s: float | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._answers: list[dict[str, Any]] = []
        self._answered = threading.Condition()

    # --- the parent's side --------------------------------------------------------------------
    def start(self) -> None:
        if self._proc is not None:
            return
        # the child imports what this process can (a strategy's module on a test's or the
        # user's path included)
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        cmd = [sys.executable, "-m", "workbench.warehouse.flush_worker", str(self.warehouse),
               str(self.journal_dir), str(self.every_s), str(self.wait_s),
               "twin" if self.twin else "no-twin"]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=None, text=True, env=env, close_fds=True,
                                      start_new_session=True)  # a Ctrl-C is the parent's
        self._reader = threading.Thread(target=self._read, name="flusher-answers",
                                        daemon=True)
        self._reader.start()
        self._send({"row": plain(self.run_row_fn())})

    def flush_now(self, timeout_s: float = 30.0) -> bool:
        """Start the child if needed and wait for one flush (a run's first: schema, views,
        runs row), so that work is done before bars arrive. True when it went in."""
        self.start()
        return self._flush_and_wait(timeout_s)

    def request(self) -> None:
        """Send the row as it is now and ask for a flush soon."""
        if self._proc is None:
            return
        self._send({"row": plain(self.run_row_fn())})
        self._send({"flush": True})

    def stop(self, final: bool = True, timeout_s: float = 30.0) -> bool:
        """With ``final``: send the row, wait (up to ``timeout_s``) for a last flush, then end
        the child. True when the final flush went in (True without ``final``)."""
        proc = self._proc
        if proc is None:
            return not final
        ok = True
        try:
            if final:
                self._send({"row": plain(self.run_row_fn())})
                self._send({"stop": True, "timeout_s": timeout_s})
                ok = self._wait_for("stopped", timeout_s + 5.0)
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.close()
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        finally:
            self._proc = None
        return ok

    def _flush_and_wait(self, timeout_s: float) -> bool:
        with self._answered:
            seen = len(self._answers)
        self._send({"flush": True})
        deadline = time.monotonic() + timeout_s
        with self._answered:
            while True:
                for answer in self._answers[seen:]:
                    if "flushed_seq" in answer:
                        return True
                    if "error" in answer:
                        return False
                left = deadline - time.monotonic()
                if left <= 0 or self._proc is None or self._proc.poll() is not None:
                    return False
                self._answered.wait(left)

    def _wait_for(self, key: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._answered:
            while True:
                for answer in self._answers:
                    if key in answer:
                        return bool(answer.get("ok", True))
                left = deadline - time.monotonic()
                if left <= 0 or self._proc is None or self._proc.poll() is not None:
                    return False
                self._answered.wait(min(left, 0.5))

    def _send(self, message: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            return
        try:
            proc.stdin.write(json.dumps(message, default=str) + "\n")
            proc.stdin.flush()
        except (OSError, ValueError):  # the child ended: its last answer says why
            self.last_error = self.last_error or "the warehouse flusher process ended"

    def _read(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:
            try:
                answer = json.loads(line)
            except ValueError:
                continue
            if "flushed_seq" in answer:
                self.last_flushed_seq = int(answer["flushed_seq"])
                self.last_hold_s = answer.get("hold_s")
                self.last_error = None
                self.flushes += 1
            elif "error" in answer:
                self.failures += 1
                self.last_error = str(answer["error"])
                if self.log is not None:
                    self.log.warning("warehouse", f"could not flush to the warehouse: "
                                     f"{self.last_error}; the journal keeps everything, "
                                     "retrying")
            with self._answered:
                self._answers.append(answer)
                del self._answers[:-100]
                self._answered.notify_all()
        with self._answered:
            self._answered.notify_all()


def plain(value: Any) -> Any:
    """``value`` as plain JSON data (what JSON cannot hold written as text)."""
    return json.loads(json.dumps(value, default=str))


# --- the child's side ---------------------------------------------------------------------------
class _Twin:
    """The run's backtest twin, fed from the journal's bar records as they appear."""

    def __init__(self, journal_dir: Path) -> None:
        self.journal_dir = journal_dir
        self.kernel: Any = None
        self.failed: str | None = None
        self.seq = 0
        self.after: Any = None
        self.bars: list[tuple[str, int, float, float, float, float, float]] = []

    def rows(self, run_row: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, pa.Table]]]:
        from workbench.config import load_config
        from workbench.engine import kernel
        from workbench.engine.journal import contents, order_states
        from workbench.feeds.history import loop_data
        from workbench.model import Mode, ms_to_dt
        from workbench.recovery.records import bar_from_record
        from workbench.recovery.wal import WalReader
        from workbench.warehouse import results

        if self.failed is not None:
            return []
        try:
            if self.kernel is None:
                cfg = load_config(None, base=run_row["config_json"], env={})
                self.kernel = kernel.build(cfg, Mode.BACKTEST,
                                           strategy=kernel.build_strategy(cfg),
                                           run_id=f"{run_row['run_id']}.backtest")
                self.symbols = list(cfg.data.symbols)
                self.started = False
            reader = WalReader(self.journal_dir, self.seq + 1, after=self.after, warn=False)
            step = self.kernel.step
            for record in reader:
                self.seq = record.seq
                p = record.payload
                if record.kind == "control" and p.get("action") == "start" \
                        and not self.started:
                    step.start(int(p["start_ts"]))
                    self.started = True
                elif record.kind == "bar":
                    bar = bar_from_record(p)
                    self.bars.append(tuple(bar))  # type: ignore[arg-type]
                    if p.get("phase") == "warmup":
                        step.warm(bar)
                    else:
                        step.on_bar(bar)
            self.after = reader.result
        except Exception as exc:  # the twin stops; the run's own rows still go in
            self.failed = f"{type(exc).__name__}: {exc}"
            return []
        if not self.bars:
            return []
        data = loop_data(self.bars, self.symbols)
        records = contents(self.kernel.journal)
        row = {**run_row, "run_id": f"{run_row['run_id']}.backtest", "mode": "backtest",
               "name": f"backtest twin of {run_row['run_id']}", "status": "completed",
               "error": None, "run_dir": None, "pid": None, "host": None,
               "bar_count": len(data), "start_ts": ms_to_dt(int(data.ts[0])),
               "end_ts": ms_to_dt(int(data.ts[-1])), "ended_at": run_row.get("ended_at")
               or run_row.get("started_at")}
        return [(row, {"run_bars": results.run_bars_table(data),
                       "orders": results.orders_table(order_states(records)),
                       "order_events": results.events_table(records),
                       "fills": results.fills_table(records),
                       "costs": results.costs_table(records)})]


def _say(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message, default=str) + "\n")
    out.flush()


def main(argv: list[str]) -> int:
    from workbench.warehouse import views
    from workbench.warehouse.flush import Flusher

    warehouse, journal, every_s, wait_s, twin_flag = argv
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)  # on a busy machine the decision loop comes first
    row: dict[str, Any] = {}
    twin = _Twin(Path(journal)) if twin_flag == "twin" else None
    try:
        view_list: list[Any] | None = views.check()
    except WorkbenchError as exc:
        _say(sys.stdout, {"error": f"the SQL views do not check out: {exc.what}"})
        view_list = None
    flusher = Flusher(warehouse, journal, lambda: row, wait_s=float(wait_s),
                      also_fn=(lambda: twin.rows(row)) if twin is not None else None,
                      views=view_list)
    every = float(every_s)
    selector = selectors.DefaultSelector()
    selector.register(sys.stdin, selectors.EVENT_READ)
    pending = ""
    next_at = time.monotonic() + every
    force = False
    while True:
        timeout = max(0.0, next_at - time.monotonic()) if not force else 0.0
        events = selector.select(timeout)
        if events:
            chunk = os.read(sys.stdin.fileno(), 1 << 16).decode()
            if not chunk:  # the parent is gone: one last flush, then leave
                flusher._flush(force=True, wait_s=float(wait_s))
                return 0
            pending += chunk
            while "\n" in pending:
                line, pending = pending.split("\n", 1)
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if "row" in message:
                    row = message["row"]
                if message.get("flush"):
                    force = True
                if message.get("stop"):
                    deadline = time.monotonic() + float(message.get("timeout_s", 10.0))
                    ok = False
                    while not ok and time.monotonic() < deadline:
                        ok = flusher._flush(force=True, wait_s=float(wait_s))
                        if not ok:
                            _say(sys.stdout, {"error": flusher.last_error})
                            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                    _say(sys.stdout, {"stopped": True, "ok": ok})
                    return 0
            if not force:
                continue
        if not row:
            next_at = time.monotonic() + every
            continue
        if flusher._flush(force=force, wait_s=float(wait_s)):
            _say(sys.stdout, {"flushed_seq": flusher.last_flushed_seq,
                              "hold_s": flusher.last_hold_s})
            next_at = time.monotonic() + every
        else:
            _say(sys.stdout, {"error": flusher.last_error})
            next_at = time.monotonic() + flusher._backoff()
        force = False


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
