"""The grid of a sweep: ``--grid KEY=V1,V2,...`` items, read as ``--set`` reads them, and
their cartesian product as points (``workbench sweep``, ``sweeps.py``)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from workbench.config import override_value
from workbench.errors import ConfigError
from workbench.secrets import MASK, is_secret_path, remember


@dataclass(frozen=True)
class Point:
    """One grid point: its place, its ``{key: value}`` and the overrides that make it."""

    seq: int
    params: dict[str, Any]
    overrides: tuple[str, ...]

    @property
    def label(self) -> str:
        """``fast=5,slow=20``: the keys without ``strategy.params.``."""
        return label(self.params)


def label(params: Mapping[str, Any]) -> str:
    """``fast=5,slow=20``: a point's ``{key: value}`` with the keys without
    ``strategy.params.``."""
    return ",".join(f"{key.removeprefix('strategy.params.')}="
                    f"{value if isinstance(value, str) else json.dumps(value)}"
                    for key, value in params.items())


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
    if "run.name" in keys:
        raise ConfigError("--grid run.name: a sweep names its runs itself (<name>/<point>)",
                          where="--grid run.name",
                          fix="name the sweep with --name (or --set run.name=...) instead")
    columns = []
    for key in keys:
        texts = [v if isinstance(v, str) else json.dumps(v) for v in grid[key]]
        if not texts:
            raise ConfigError(f"--grid {key} has no values", where=f"--grid {key}",
                              fix="give at least one value: KEY=V1,V2")
        columns.append([(f"{key}={t}", _param(t, override_value(f"{key}={t}")))
                        for t in texts])
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


def _param(text: str, value: Any) -> Any:
    """A grid value as ``experiments.params`` records it: the value ``--set`` reads, or the
    text as given where that is not JSON (a time: YAML reads ``2024-01-01T00:00:00Z`` as a
    datetime)."""
    return text if isinstance(value, date) else value
