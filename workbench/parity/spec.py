"""The tolerance spec: what must agree between our backtest and a peer's run of the same
strategy, and by how much. Never loosened silently: a quantity a peer cannot hold is listed
under ``NOT_HELD`` with the reason, and shows up so in every result (docs/parity.md).
"""

from __future__ import annotations

from dataclasses import dataclass

# headline metric (a column of rpt.performance) -> absolute tolerance, in its own units
METRICS: dict[str, float] = {
    "total_return_pct": 0.1,   # percentage points
    "cagr_pct": 0.05,
    "max_drawdown_pct": 0.5,
    "sharpe": 0.02,
}
TRADE_COUNT = "trade_count"  # exact
TRADES = "trades"  # every round trip: symbol, side, qty, entry and exit time exact; prices
PRICE_RTOL = 1e-9  # relative, for trade prices (the peers' own float arithmetic)

# (engine, quantity) -> why the spec does not hold it for that engine
NOT_HELD: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Rule:
    quantity: str
    tolerance: float | None  # None: exact (trade count, trades)
    held: bool
    why: str | None


def rules(engine: str) -> list[Rule]:
    """The spec for ``engine``: each metric, the trade count and the trades."""
    out = []
    for quantity, tolerance in [*METRICS.items(), (TRADE_COUNT, 0.0), (TRADES, None)]:
        why = NOT_HELD.get((engine, quantity))
        out.append(Rule(quantity, tolerance, why is None, why))
    return out
