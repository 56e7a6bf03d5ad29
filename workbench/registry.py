"""The experiment registry, read side: runs side by side, and cohorts of runs by tag.

Every run's ``runs`` row is its immutable record: config (secrets masked) and config hash,
data hash (the exact bars it saw), git SHA, package versions, seed and tags. ``compare``
reads those rows and each run's headline numbers (``rpt.performance``, as the run stored them
in ``metrics``), and shows what differs: the config keys, the package versions, the data and
the code. ``workbench runs compare`` prints it.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.secrets import redact
from workbench.tags import as_tags
from workbench.warehouse.connect import reading
from workbench.warehouse.results import HEADLINE

TAGS_MIGRATION = 11  # sql/schema/011_add_runs_tags.sql
SHOWN_METRICS = ("trades", "total_return_pct", "cagr_pct", "max_drawdown_pct", "sharpe",
                 "win_rate_pct", "fees_quote", "exposure_pct")
"""The headline columns the text comparison shows (``--json`` has every column)."""

_RUN = """
select run_id, name, mode, status, started_at, config_json, config_hash, data_hash, git_sha,
       versions, seed, run_dir, {tags} as tags
from runs where run_id = ?
"""


@dataclass
class RunRecord:
    """One run as the registry holds it (config masked) and its headline numbers."""

    run_id: str
    name: str | None
    mode: str
    status: str
    started_at: Any
    config: dict[str, Any]
    config_hash: str | None
    data_hash: str | None
    git_sha: str | None
    versions: dict[str, Any]
    seed: int | None
    run_dir: str | None
    tags: dict[str, str]
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Comparison:
    """Runs side by side: their records, the config keys and package versions whose values
    differ between them (``{key: [value per run]}``), and, for a cohort, its tags."""

    runs: list[RunRecord]
    cohort: dict[str, str]
    config_diff: dict[str, list[Any]]
    version_diff: dict[str, list[Any]]

    def summary(self) -> dict[str, dict[str, float]]:
        """``{"mean": {metric: value}, "median": {...}}`` over the runs that have the metric."""
        keys = list(dict.fromkeys(k for r in self.runs for k in r.metrics))
        out: dict[str, dict[str, float]] = {"mean": {}, "median": {}}
        for key in keys:
            values = [float(v) for r in self.runs
                      if isinstance(v := r.metrics.get(key), int | float)
                      and not isinstance(v, bool)]
            if values:
                out["mean"][key] = statistics.fmean(values)
                out["median"][key] = statistics.median(values)
        return out

    def to_dict(self) -> dict[str, Any]:
        ids = [r.run_id for r in self.runs]
        return {
            "cohort": self.cohort,
            "runs": [{"run_id": r.run_id, "name": r.name, "mode": r.mode, "status": r.status,
                      "tags": r.tags, "config_hash": r.config_hash, "data_hash": r.data_hash,
                      "git_sha": r.git_sha, "seed": r.seed, "metrics": r.metrics}
                     for r in self.runs],
            "config_differences": {k: dict(zip(ids, v, strict=True))
                                   for k, v in self.config_diff.items()},
            "version_differences": {k: dict(zip(ids, v, strict=True))
                                    for k, v in self.version_diff.items()},
            "same": self.same(),
            **({"summary": self.summary()} if len(self.runs) > 1 else {}),
        }

    def same(self) -> dict[str, Any]:
        """The data hash, git SHA and config hash when every run shares it."""
        out = {}
        for key in ("data_hash", "git_sha", "config_hash"):
            values = {getattr(r, key) for r in self.runs}
            if len(values) == 1:
                out[key] = values.pop()
        return out

    def sections(self) -> list[tuple[str, list[str], list[tuple[Any, ...]]]]:
        """(title, columns, rows) tables for the terminal: headline numbers per run (with the
        mean and median of two runs or more), config keys that differ, data and code."""
        shown = [m for m in SHOWN_METRICS if any(m in r.metrics for r in self.runs)]
        rows: list[tuple[Any, ...]] = [
            (r.run_id, r.name, *(_round(r.metrics.get(m)) for m in shown)) for r in self.runs]
        if len(self.runs) > 1:
            summary = self.summary()
            rows += [(label, "", *(_round(summary[label].get(m)) for m in shown))
                     for label in ("mean", "median")]
        title = "headline numbers (rpt.performance)" + (
            f", cohort {_tag_text(self.cohort)}" if self.cohort else "")
        out = [(title, ["run_id", "name", *shown], rows)]
        ids = [r.run_id for r in self.runs]
        if self.config_diff:
            out.append(_diff_table("config keys that differ (secrets masked)", "key",
                                   self.config_diff, ids))
        else:
            out.append(("config: no key differs", [], []))
        out.append(("data and code", ["run_id", "data_hash", "git_sha", "config_hash", "seed",
                                      "tags"],
                    [(r.run_id, _short(r.data_hash), _short(r.git_sha), _short(r.config_hash),
                      r.seed, _tag_text(r.tags)) for r in self.runs]))
        if self.version_diff:
            out.append(_diff_table("package versions that differ", "package",
                                   self.version_diff, ids))
        return out


def compare(run_ids: Sequence[str] = (), *, tags: Mapping[str, str] | Iterable[str] | None = None,
            warehouse: str | Path | None = None) -> Comparison:
    """The runs ``run_ids`` and those carrying every tag of ``tags`` (the cohort), side by side.
    An unknown id is an error naming it (and the closest ids); so is a comparison of fewer
    than two runs without tags, and a cohort no run belongs to."""
    from workbench.report.data import resolve_run_id

    cohort = as_tags(tags)
    few = WorkbenchError("a comparison needs two runs or more",
                         fix="pass two different run ids or more (`workbench runs list` lists "
                             "them), or select a cohort with --tag KEY=VALUE")
    if not cohort and len(run_ids) < 2:
        raise few
    with reading(warehouse) as con:
        ids = [resolve_run_id(con, run_id) for run_id in run_ids]
        if not cohort and len(set(ids)) < 2:  # one run named twice (or by two prefixes)
            raise few
        if cohort:
            members = cohort_ids(con, cohort) if has_tags(con) else []
            if not members:
                raise WorkbenchError(
                    f"no run carries the tag{'s' if len(cohort) > 1 else ''} "
                    f"{_tag_text(cohort)}",
                    fix="tag runs with `workbench backtest --tag KEY=VALUE`; `workbench runs "
                        "list --tag KEY=VALUE` lists a cohort")
            ids += members
        ids = list(dict.fromkeys(ids))
        records = [read_record(con, run_id) for run_id in ids]
        _add_metrics(con, records)
    return Comparison(records, cohort, _differences([r.config for r in records]),
                      _differences([r.versions for r in records]))


def cohort_ids(con: Any, tags: Mapping[str, str]) -> list[str]:
    """The runs (oldest first) carrying every one of ``tags``; the caller checked that the
    warehouse has ``runs.tags`` (``has_tags``)."""
    rows = con.sql("select run_id, tags from runs where tags is not null "
                   "order by started_at, run_id").fetchall()
    out = []
    for run_id, text in rows:
        have = json.loads(text) if isinstance(text, str) else (text or {})
        if all(have.get(k) == v for k, v in tags.items()):
            out.append(run_id)
    return out


def has_tags(con: Any) -> bool:
    """Whether migration 011 has been applied (a warehouse only read since has none)."""
    return bool(con.execute("select count(*) from schema_migrations where version = ?",
                            [TAGS_MIGRATION]).fetchall()[0][0])


def read_record(con: Any, run_id: str) -> RunRecord:
    """The run's record (without metrics) from its ``runs`` row; the id must exist."""
    rel = con.sql(_RUN.format(tags="tags" if has_tags(con) else "null"), params=[run_id])
    row = dict(zip(rel.columns, rel.fetchall()[0], strict=True))
    loaded = {k: json.loads(v) if isinstance(v, str) else v
              for k, v in row.items() if k in ("config_json", "versions", "tags")}
    return RunRecord(run_id, row["name"], row["mode"], row["status"], row["started_at"],
                     redact(loaded["config_json"] or {}), row["config_hash"], row["data_hash"],
                     row["git_sha"], loaded["versions"] or {}, row["seed"], row["run_dir"],
                     loaded["tags"] or {})


def _add_metrics(con: Any, records: list[RunRecord]) -> None:
    """Each run's ``rpt.performance`` row as it stored it (``headline.*`` metrics); a run
    stored before those existed is computed through the view, one run at a time."""
    by_id = {r.run_id: r for r in records}
    rows = con.sql("select run_id, name, value from metrics where run_id in "
                   "(select unnest(?::varchar[])) and name like 'headline.%' "
                   "order by run_id, name", params=[list(by_id)]).fetchall()
    for run_id, name, value in rows:
        metric = name[len(HEADLINE):]
        by_id[run_id].metrics[metric] = int(value) if metric in _COUNTS else value
    deployed = con.execute("select count(*) from duckdb_views() where schema_name = 'rpt' "
                           "and view_name = 'performance'").fetchall()[0][0]
    for record in records:
        if record.metrics or not deployed:
            continue
        rel = con.sql("select * from rpt.performance where run_id = ?", params=[record.run_id])
        for perf in rel.fetchall():
            record.metrics = {k: v for k, v in zip(rel.columns, perf, strict=True)
                              if k != "run_id" and isinstance(v, int | float)}


_COUNTS = frozenset({"bars", "trades", "fills", "orders", "blocked_orders"})


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and scalars are leaves."""
    if isinstance(tree, Mapping) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree} if prefix else {}


_ABSENT = "(absent)"


def _differences(trees: list[Any]) -> dict[str, list[Any]]:
    """``{dotted key: [value per tree]}`` for the keys whose values are not all equal."""
    flat = [flatten(t) for t in trees]
    keys = sorted({k for f in flat for k in f})
    out = {}
    for key in keys:
        values = [f.get(key, _ABSENT) for f in flat]
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1:
            out[key] = values
    return out


WIDE = 4
"""Up to this many runs a difference table has a column per run; more (a cohort), a row."""


def _diff_table(title: str, what: str, diff: dict[str, list[Any]], ids: list[str]
                ) -> tuple[str, list[str], list[tuple[Any, ...]]]:
    """``{key: [value per run]}`` as a table: a row per key and a column per run, or, past
    WIDE runs, a row per run and a column per key."""
    if len(ids) <= WIDE:
        return title, [what, *ids], [(k, *(_cell(v) for v in vals)) for k, vals in diff.items()]
    return title, ["run_id", *diff], [(run_id, *(_cell(vals[i]) for vals in diff.values()))
                                      for i, run_id in enumerate(ids)]


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _cell(value: Any) -> Any:
    return json.dumps(value, default=str) if isinstance(value, list | dict) else value


def _short(value: str | None) -> str | None:
    """A hash or SHA cut to 12 characters, keeping a ``-dirty`` mark."""
    if not value:
        return value
    return value[:12] + ("-dirty" if value.endswith("-dirty") else "")


def _tag_text(tags: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in tags.items())
