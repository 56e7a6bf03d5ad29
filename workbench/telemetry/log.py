"""Structured JSONL logs: one object per line with ts, level, component, msg, context.

Lines are written as they happen (line-buffered), so a killed process leaves its story.
``ts`` is wall-clock time (logs are not part of a run's deterministic outputs). Records at or
above ``echo_level`` are also written, readably, to ``echo`` (stderr for the CLI). Secrets never
land here: context keys that name a secret are masked and every secret value the process has
seen (``workbench.secrets.scrub``) is replaced by ``***``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, TextIO

from workbench import secrets
from workbench.model import ms_to_iso

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class JsonlLog:
    def __init__(self, path: Path | None = None, *, echo: TextIO | None = None,
                 echo_level: str = "warning") -> None:
        self.path = path
        self._fh = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = path.open("a", encoding="utf-8", buffering=1)  # a line at a time
        self._echo = echo
        self._echo_level = LEVELS[echo_level]
        self.counts: dict[str, int] = {}

    def log(self, level: str, component: str, msg: str, **context: Any) -> None:
        self.counts[level] = self.counts.get(level, 0) + 1
        msg = secrets.scrub(msg)
        if self._fh is not None:
            if context:  # secret-named keys masked, remembered secret values scrubbed
                context = secrets.clean(context)
            record = {"ts": ms_to_iso(time.time_ns() // 1_000_000), "level": level,
                      "component": component, "msg": msg, "context": context}
            self._fh.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")
        if self._echo is not None and LEVELS[level] >= self._echo_level:
            self._echo.write(f"{level}: {msg}\n")

    def info(self, component: str, msg: str, **context: Any) -> None:
        self.log("info", component, msg, **context)

    def warning(self, component: str, msg: str, **context: Any) -> None:
        self.log("warning", component, msg, **context)

    def error(self, component: str, msg: str, **context: Any) -> None:
        self.log("error", component, msg, **context)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> JsonlLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
