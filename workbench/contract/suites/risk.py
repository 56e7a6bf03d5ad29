"""RiskEngine: each rule blocks with its stable reason code (docs/risk.md), through the step,
and a blocked order never reaches the adapter's router."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workbench.book import Book
from workbench.brokers.sim import SimBroker
from workbench.config import RiskConfig
from workbench.contract.adapters import PAPER_COSTS, Idle
from workbench.contract.runner import check, expect
from workbench.engine.journal import MemoryJournal
from workbench.engine.step import Step
from workbench.model import Bar, Order, OrderIntent, OrderStatus, OrderType, Side
from workbench.risk.engine import RiskEngine
from workbench.risk.rules import ReasonCode

T0 = 1_704_067_200_000
MIN = 60_000


class RiskRig:
    """A sim step with a risk engine; bars and orders by hand."""

    def __init__(self, **cfg: Any) -> None:
        self.risk = RiskEngine(RiskConfig.model_validate(cfg), PAPER_COSTS)
        self.step = Step(Idle(), SimBroker(PAPER_COSTS), Book(10_000.0), MemoryJournal(),
                         run_id="contract-risk", timeframe_ms=MIN, risk=self.risk)
        self.step.start(T0)
        self.ts = T0

    def bar(self, close: float, symbol: str = "BTCUSDT") -> None:
        self.step.on_bar(Bar(symbol, self.ts, close, close, close, close, 1.0))
        self.ts += MIN

    def buy(self, qty: float, symbol: str = "BTCUSDT") -> Order:
        return self.step.submit(OrderIntent(symbol, Side.BUY, qty, OrderType.MARKET))

    def sell(self, qty: float, reduce_only: bool = False) -> Order:
        return self.step.submit(OrderIntent("BTCUSDT", Side.SELL, qty, OrderType.MARKET,
                                            reduce_only=reduce_only))


def _halted() -> tuple[RiskRig, Order]:
    rig = RiskRig()
    rig.bar(100.0)
    rig.risk.halt("contract")
    return rig, rig.buy(1.0)


def _reduce_only() -> tuple[RiskRig, Order]:
    rig = RiskRig()
    rig.bar(100.0)
    return rig, rig.sell(1.0, reduce_only=True)  # nothing held: it would open a short


def _allowed_symbols() -> tuple[RiskRig, Order]:
    rig = RiskRig(allowed_symbols=["ETHUSDT"])
    rig.bar(100.0)
    return rig, rig.buy(1.0)


def _daily_loss() -> tuple[RiskRig, Order]:
    rig = RiskRig(daily_loss_limit=10.0)
    rig.bar(100.0)
    rig.buy(1.0)
    rig.bar(50.0)
    rig.sell(1.0)  # realized about -50
    return rig, rig.buy(0.1)


def _drawdown() -> tuple[RiskRig, Order]:
    rig = RiskRig(max_drawdown_pct=10.0)
    rig.bar(100.0)
    rig.buy(50.0)
    rig.bar(50.0)  # equity about 7,500 of a 10,000 peak
    return rig, rig.buy(1.0)


def _order_notional() -> tuple[RiskRig, Order]:
    rig = RiskRig(max_order_notional=50.0)
    rig.bar(100.0)
    return rig, rig.buy(1.0)


def _position_limit() -> tuple[RiskRig, Order]:
    rig = RiskRig(position_limits={"BTCUSDT": {"max_qty": 0.5}})
    rig.bar(100.0)
    return rig, rig.buy(1.0)


def _max_open_positions() -> tuple[RiskRig, Order]:
    rig = RiskRig(max_open_positions=1)
    rig.bar(10.0, "ETHUSDT")
    rig.buy(1.0, "ETHUSDT")
    rig.bar(100.0)
    return rig, rig.buy(1.0)


def _exposure() -> tuple[RiskRig, Order]:
    rig = RiskRig(max_gross_exposure_pct=50.0)
    rig.bar(100.0)
    return rig, rig.buy(60.0)


RULES: dict[str, tuple[ReasonCode, Callable[[], tuple[RiskRig, Order]]]] = {
    "halted": (ReasonCode.HALTED, _halted),
    "reduce_only": (ReasonCode.REDUCE_ONLY, _reduce_only),
    "allowed_symbols": (ReasonCode.SYMBOL_NOT_ALLOWED, _allowed_symbols),
    "daily_loss": (ReasonCode.DAILY_LOSS, _daily_loss),
    "drawdown": (ReasonCode.DRAWDOWN, _drawdown),
    "order_notional": (ReasonCode.ORDER_NOTIONAL, _order_notional),
    "position_limit": (ReasonCode.POSITION_LIMIT, _position_limit),
    "max_open_positions": (ReasonCode.MAX_POSITIONS, _max_open_positions),
    "exposure": (ReasonCode.EXPOSURE, _exposure),
}


def _rule_check(rule: str, code: ReasonCode, scene: Callable[[], tuple[RiskRig, Order]]
                ) -> Callable[[Any], str]:
    def run(a: Any) -> str:
        rig, order = scene()
        expect((order.status, order.reason) == (OrderStatus.BLOCKED, code.value),
               f"rule {rule}: the order is {order.status} ({order.reason}), expected BLOCKED "
               f"({code.value})")
        events = [e for e in rig.step.journal.contents().events
                  if e.order_seq == order.order_seq]
        expect([e.status for e in events] == [OrderStatus.NEW, OrderStatus.BLOCKED],
               f"rule {rule}: journaled {[e.status.value for e in events]}")
        expect(any(ev[5] == code.value for ev in rig.risk.events),
               f"rule {rule}: no risk_events row for the block")
        return code.value

    run.__doc__ = f"Rule {rule} blocks with {code.value}."
    return run


for _rule, (_code, _scene) in RULES.items():
    check(f"risk.{_rule}_blocks_with_its_code")(_rule_check(_rule, _code, _scene))


@check("risk.blocked_order_never_reaches_router")
def blocked_order_never_reaches_router(a: Any) -> str:
    """An order risk blocks is journaled BLOCKED and never handed to the adapter's broker."""
    risk = RiskEngine(RiskConfig(max_order_notional=1.0), PAPER_COSTS)
    rig = a.rig(risk=risk)
    order = rig.order(Side.BUY, 0.001)
    expect((order.status, order.reason) == (OrderStatus.BLOCKED, "RISK_ORDER_NOTIONAL"),
           f"the order is {order.status} ({order.reason})")
    expect(rig.submitted == [], f"the broker was handed orders {rig.submitted}")
    expect(rig.venue_orders() in (None, 0), "the venue holds a blocked order")
    return "blocked before the router"
