"""A config with a latency or a participation cap is refused for every peer, before any run:
the peers execute at once and in whole (no peer engine needs to be installed to check)."""

from __future__ import annotations

import pytest
import step_harness as harness

from workbench.config import load_config
from workbench.parity.harness import check
from workbench.parity.peer import Unsupported


@pytest.mark.parametrize("override", ["execution.latency=FAST",
                                      "execution.participation_pct=5"])
@pytest.mark.parametrize("engine", ["backtesting", "backtrader", "nautilus"])
def test_parity_check_execution_settings_unsupported_by_every_peer(engine: str,
                                                                   override: str) -> None:
    cfg = load_config(None, [override], env={})
    with pytest.raises(Unsupported, match="leave `execution` out"):
        check(engine, cfg, harness.closes([1.0, 2.0]))
