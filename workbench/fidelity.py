"""``workbench fidelity``: one strategy under each execution assumption, side by side.

The same config is backtested under INSTANT (as configured: the baseline) and each latency
profile (FAST, NORMAL, SLOW), each alone, then with a participation cap, then with the cap and
the full cost model (the configured costs, with a half spread and a square-root impact where
the config has none). Every variant is a real run (a ``runs`` row and a run directory, named
``<run.name>.fidelity.<variant>``, e.g. ``sma-demo.fidelity.slow-cap-costs``). The table says
how much of the baseline's edge survives: return, Sharpe, trades, total costs and costs per
trade (``rpt.performance`` and ``rpt.cost_breakdown``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from workbench.config import Config
from workbench.engine.run import WRITE_WAIT_S, as_config, run_backtest
from workbench.manifest import new_id
from workbench.strategy import Strategy
from workbench.warehouse import results
from workbench.warehouse.connect import reading, resolve_path

PROFILES = ("INSTANT", "FAST", "NORMAL", "SLOW")
DEFAULT_CAP_PCT = 10.0
DEFAULT_SPREAD_BPS = 2.0
DEFAULT_IMPACT_K = 0.1


@dataclass(frozen=True)
class Variant:
    """One execution assumption: a name and the config overrides that make it."""

    name: str
    latency: str
    cap_pct: float | None
    full_costs: bool
    overrides: tuple[str, ...]

    @property
    def slug(self) -> str:
        """The variant in a run name: ``slow-cap-costs``."""
        return "-".join([self.latency.lower(), *(["cap"] if self.cap_pct else []),
                         *(["costs"] if self.full_costs else [])])


@dataclass
class Row:
    variant: str
    latency: str
    cap_pct: float | None
    full_costs: bool
    run_id: str
    total_return_pct: float | None
    sharpe: float | None
    trades: int | None
    total_costs: float | None
    cost_per_trade: float | None
    edge_kept_pct: float | None = None


@dataclass
class FidelityResult:
    fidelity_id: str
    rows: list[Row] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"fidelity_id": self.fidelity_id, "rows": [asdict(r) for r in self.rows]}

    def table(self) -> str:
        head = ("variant", "return %", "Sharpe", "trades", "costs", "cost/trade", "edge kept %")
        body = [(r.variant, _num(r.total_return_pct), _num(r.sharpe), _num(r.trades),
                 _num(r.total_costs), _num(r.cost_per_trade), _num(r.edge_kept_pct))
                for r in self.rows]
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
        lines = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                           for i, (c, w) in enumerate(zip(line, widths, strict=True)))
                 for line in (head, *body)]
        note = (f"fidelity {self.fidelity_id}. Edge kept: the variant's return as a share of "
                "the baseline's (INSTANT, as configured; '-' when the baseline lost); costs: "
                "all of a run's costs, cost/trade over its round trips; every variant is a "
                "run in the warehouse, the comparison rows of fidelity_results")
        return "\n".join([*lines, note])


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.4g}"


def variants(cfg: Config, cap_pct: float = DEFAULT_CAP_PCT,
             spread_bps: float = DEFAULT_SPREAD_BPS, impact_k: float = DEFAULT_IMPACT_K
             ) -> list[Variant]:
    """The variants ``workbench fidelity`` runs for ``cfg``: each profile alone, with the cap,
    and with the cap and the full cost model (which keeps what the config sets)."""
    costs = ["costs.enabled=true",  # a config with costs off gets the model too
             f"costs.spread_bps={cfg.costs.spread_bps or spread_bps}",
             f"costs.impact_k={cfg.costs.impact_k or impact_k}"]
    out = []
    for profile in PROFILES:
        latency = f"execution.latency={profile}"
        cap = f"execution.participation_pct={cap_pct}"
        out += [Variant(profile, profile, None, False, (latency,)),
                Variant(f"{profile} + cap {cap_pct:g}%", profile, cap_pct, False,
                        (latency, cap)),
                Variant(f"{profile} + cap + costs", profile, cap_pct, True,
                        (latency, cap, *costs))]
    return out


def run_fidelity(config: Config | str | Path | Mapping[str, Any], *,
                 overrides: Iterable[str] = (), warehouse: str | Path | None = None,
                 env_prefix: str = "WB_", env: Mapping[str, str] | None = None,
                 cap_pct: float = DEFAULT_CAP_PCT, spread_bps: float = DEFAULT_SPREAD_BPS,
                 impact_k: float = DEFAULT_IMPACT_K, runs_dir: str | Path | None = None,
                 strategy: type[Strategy] | str | None = None,
                 progress: Callable[[str], None] | None = None) -> FidelityResult:
    """Backtest ``config`` under every variant (see the module) and compare them."""
    overrides = list(overrides)
    cfg = as_config(config, overrides, env_prefix, env)
    path = resolve_path(warehouse, env_prefix)
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    result = FidelityResult(new_id("fid"))
    plan = variants(cfg, cap_pct, spread_bps, impact_k)
    for n, variant in enumerate(plan, start=1):
        name = f"run.name={cfg.run.name}.fidelity.{variant.slug}"
        run = run_backtest(config, overrides=[*overrides, *variant.overrides, name],
                           warehouse=path, env_prefix=env_prefix, env=env, progress=False,
                           runs_dir=runs_dir, strategy=strategy)
        with reading(path) as con:
            got = con.sql("select total_costs from rpt.cost_breakdown where run_id = ?",
                          params=[run.run_id]).fetchall()
        m = run.metrics
        trades = m.get("trades")
        costs = got[0][0] if got else None
        result.rows.append(Row(
            variant.name, variant.latency, variant.cap_pct, variant.full_costs, run.run_id,
            m.get("total_return_pct"), m.get("sharpe"), trades, costs,
            costs / trades if costs is not None and trades else None))
        say(f"fidelity: {n}/{len(plan)} {variant.name}: return "
            f"{_num(m.get('total_return_pct'))} %, run {run.run_id}")
    base = result.rows[0].total_return_pct if result.rows else None
    for row in result.rows:  # a share of an edge only where the baseline has one
        if base is not None and base > 0 and row.total_return_pct is not None:
            row.edge_kept_pct = row.total_return_pct / base * 100.0
    record(path, result)
    return result


def record(warehouse: Path, result: FidelityResult) -> None:
    """The comparison's rows into ``fidelity_results``, in one short transaction."""
    rows = result.rows
    n = len(rows)
    table = pa.table({
        "fidelity_id": [result.fidelity_id] * n,
        "created_at": pa.array([datetime.now(UTC)] * n, pa.timestamp("ms", tz="UTC")),
        "variant_seq": pa.array(range(1, n + 1), pa.int32()),
        "variant": [r.variant for r in rows],
        "latency": [r.latency for r in rows],
        "cap_pct": pa.array([r.cap_pct for r in rows], pa.float64()),
        "full_costs": [r.full_costs for r in rows],
        "run_id": [r.run_id for r in rows],
        "total_return_pct": pa.array([r.total_return_pct for r in rows], pa.float64()),
        "sharpe": pa.array([r.sharpe for r in rows], pa.float64()),
        "trades": pa.array([r.trades for r in rows], pa.int64()),
        "total_costs": pa.array([r.total_costs for r in rows], pa.float64()),
        "cost_per_trade": pa.array([r.cost_per_trade for r in rows], pa.float64()),
        "edge_kept_pct": pa.array([r.edge_kept_pct for r in rows], pa.float64()),
    })
    with results.write_transaction(warehouse, WRITE_WAIT_S) as (con, _):
        results.insert_arrow(con, "fidelity_results", table)
