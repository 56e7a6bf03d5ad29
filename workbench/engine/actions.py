"""Corporate actions in a backtest: which of the stored ones a run applies, and their table.

A run applies the splits and dividends of its symbols whose ex-date starts (00:00 UTC) after
its first bar and at or before its last, each at the first bar time at or after that moment
(``Step.schedule_actions``). When the config says the stored prices are already adjusted
(``data.adjusted: true``) none is applied: the prices include them, and applying them again
would count them twice; the manifest and the run's warnings say how many were left out
(adr/0025).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from workbench.engine.step import Step
from workbench.errors import ConfigError
from workbench.model import ActionEvent, CorporateAction

_TS = pa.timestamp("ms", tz="UTC")


def in_window(actions: Sequence[CorporateAction], first_ts: int, last_ts: int
              ) -> list[CorporateAction]:
    """The actions a run over bars from ``first_ts`` to ``last_ts`` (open times) meets."""
    return [a for a in actions if first_ts < a.ts <= last_ts]


def schedule(step: Step, actions: Sequence[CorporateAction], adjusted: bool,
             manifest: dict[str, Any]) -> None:
    """Hand the run's actions to the step (none when the data are ``adjusted``) and record
    in ``manifest['corporate_actions']`` what was applied or left out."""
    listed = [{"symbol": a.symbol, "ex_date": a.ex_date, "kind": a.kind.value,
               "ratio": a.ratio, "amount": a.amount} for a in actions]
    manifest["corporate_actions"] = {"adjusted": adjusted,
                                     "skipped" if adjusted else "applied": listed}
    if adjusted or not actions:
        return
    split_orders = getattr(step.broker, "split_orders", None)
    if split_orders is None:
        raise ConfigError(
            f"{len(actions)} corporate action(s) fall in the run's window, and they are applied "
            "only by the simulated broker (a backtest)",
            where="mode",
            fix="narrow --from/--to to leave the ex-dates out, or set data.adjusted=true if "
                "the prices already include them")
    step.schedule_actions(list(actions), split_orders)


def skipped_warning(manifest: dict[str, Any]) -> str | None:
    """The run's warning when actions were left out because the data are adjusted."""
    skipped = (manifest.get("corporate_actions") or {}).get("skipped") or []
    if not skipped:
        return None
    return (f"{len(skipped)} corporate action(s) in the window were not applied: data.adjusted "
            "is true, so the prices already include them")


def events_table(events: Sequence[ActionEvent]) -> pa.Table:
    """The ``action_events`` rows of a run (``Book.actions``)."""
    return pa.table({
        "action_seq": pa.array([e.action_seq for e in events], pa.int64()),
        "symbol": pa.array([e.symbol for e in events], pa.string()),
        "ts": pa.array([e.ts for e in events], _TS),
        "kind": pa.array([e.kind.value for e in events], pa.string()),
        "ex_date": pa.array([e.ex_date for e in events], pa.string()).cast(pa.date32()),
        "ratio": pa.array([e.ratio for e in events], pa.float64()),
        "amount": pa.array([e.amount for e in events], pa.float64()),
        "units_before": pa.array([e.units_before for e in events], pa.int64()),
        "units_after": pa.array([e.units_after for e in events], pa.int64()),
        "cash_quote": pa.array([e.cash_quote for e in events], pa.float64()),
    })
