"""Pre-trade risk: pure rules (``rules.py``) and the engine that runs them in order
(``engine.py``). Reason codes are a stable contract: see docs/risk.md."""

from workbench.risk.engine import RiskEngine
from workbench.risk.rules import Block, ReasonCode

__all__ = ["Block", "ReasonCode", "RiskEngine"]
