"""The parity tests' warehouse: 3,000 synthetic bars of BTCUSDT and of ETHUSDT."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from workbench.warehouse.ingest import ingest


@pytest.fixture
def bars(warehouse: Path, synth_csv: Callable[..., Path]) -> Path:
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    ingest(warehouse, [synth_csv(count=3_000)], "BTCUSDT")
    ingest(warehouse, [synth_csv(count=3_000, seed=11, price=2_300.0, name="eth.csv")],
           "ETHUSDT")
    return warehouse
