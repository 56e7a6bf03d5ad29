"""PaperBroker: paper trading, the backtest's fill model on live bars."""

from __future__ import annotations

from workbench.brokers.execution import Execution
from workbench.brokers.fills import CostModel
from workbench.brokers.sim import SimBroker
from workbench.model import Order


class PaperBroker(SimBroker):
    """``SimBroker`` itself (the same fill model and costs, ``brokers/fills.py``, the same
    order state machine, spot checks and reservations) with the fields a venue puts on fills.

    Nothing of the fill logic is written here: a paper run and a backtest of the same bars
    through the same step give the same orders, fills and trades, field by field, but for
    what a backtest leaves None on each fill:

    * ``venue_trade_id``: a deterministic synthetic id, ``P-<client_order_id>-<n>`` for the
      order's n-th fill (1 unless a participation cap splits it; the step derives
      ``client_order_id`` from the run id and a per-run sequence), so a restart that replays
      the same decisions makes the same ids;
    * ``venue_ts``: the model time of the execution, the close time of the bar it executed on
      (the signal bar for a market order filled at its close; the bar that reached a resting
      order otherwise). The fill's ``ts`` is the step's clock: the same close time in a
      backtest-style run on a ``BarClock``, the wall time in a live paper loop.

    ``timeframe_ms`` is the bars' timeframe (a bar's ``ts`` is its open time).
    """

    TRADE_ID_PREFIX = "P-"

    def __init__(self, costs: CostModel, timeframe_ms: int,
                 execution: Execution | None = None) -> None:
        super().__init__(costs, execution)
        self.timeframe_ms = timeframe_ms

    def _venue_fields(self, order: Order, bar_ts: int, part: int = 1
                      ) -> tuple[str | None, int | None]:
        return (f"{self.TRADE_ID_PREFIX}{order.client_order_id}-{part}",
                bar_ts + self.timeframe_ms)
