"""The port contract suites (DESIGN 9): every implementation of a port passes the same tests.

To hold a new implementation to a contract, add one line to ``BROKERS`` or ``JOURNALS``: a
name and a factory. A broker factory takes nothing and returns an unbound broker; a journal
factory takes pytest's ``tmp_path`` (a WAL journal needs a directory) and returns an open
journal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from workbench.brokers.fills import CostModel
from workbench.brokers.null import NullBroker
from workbench.brokers.paper import PaperBroker
from workbench.brokers.sim import SimBroker
from workbench.engine.journal import MemoryJournal
from workbench.recovery.journal import WalJournal

BROKERS: dict[str, Callable[[], Any]] = {
    "sim": lambda: SimBroker(CostModel(fee_bps=10.0, slippage_bps=5.0, min_notional=1.0)),
    "sim_next_open": lambda: SimBroker(CostModel(fee_bps=10.0, fill_at="next_open")),
    "paper": lambda: PaperBroker(CostModel(fee_bps=10.0, slippage_bps=5.0, min_notional=1.0),
                                 timeframe_ms=60_000),
    "null": NullBroker,
}

JOURNALS: dict[str, Callable[[Path], Any]] = {
    "memory": lambda tmp_path: MemoryJournal(),
    "wal": lambda tmp_path: WalJournal(tmp_path / "journal"),
}


@pytest.fixture(params=sorted(BROKERS))
def make_broker(request: pytest.FixtureRequest) -> Callable[[], Any]:
    return BROKERS[request.param]


@pytest.fixture(params=sorted(JOURNALS))
def make_journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    factory = JOURNALS[request.param]
    made: list[Any] = []

    def make() -> Any:
        made.append(factory(tmp_path))
        return made[-1]

    yield make
    for journal in made:  # a WAL journal holds a file and its lock until closed
        journal.close()
