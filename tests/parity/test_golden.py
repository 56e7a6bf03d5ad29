"""The parity gate: every golden strategy's bundled config, on the golden data in
sample_data/ (the real altcoin series with its gaps, the synthetic BTCUSDT and ETHUSDT month),
against every peer that can express it, within the tolerance spec. A few days of bars each, to
stay inside `make test`'s budget; `make bench` runs a year."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.parity.harness import run_parity
from workbench.warehouse.ingest import ingest

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
SAMPLE = ROOT / "sample_data"
DAYS = ["data.start=2024-01-02", "data.end=2024-01-04"]  # 2,880 bars a symbol
HOURLY = ["strategy.params.every_minutes=60", "strategy.params.min_trade_pct=0.5"]  # more trades

for engine in ("backtrader", "backtesting", "nautilus_trader"):
    pytest.importorskip(engine)

# (config, engine, overrides): each peer gets our config as is, except where docs/parity.md
# says it cannot express a part of it
CASES = [
    ("sma_demo", "backtesting", DAYS),
    ("sma_demo", "backtrader", DAYS),
    ("sma_demo", "nautilus", [*DAYS, "costs.slippage_bps=0"]),  # it slips by ticks, not bps
    ("pullback_demo", "backtesting", [*DAYS, "costs.slippage_bps=0"]),  # one commission rate
    ("pullback_demo", "backtrader", DAYS),  # slippage kept: no limit opens through these days
    ("pullback_demo", "nautilus", [*DAYS, "costs.slippage_bps=0"]),
    ("rebalance_demo", "backtrader", [*DAYS, *HOURLY]),
    ("rebalance_demo", "nautilus", [*DAYS, *HOURLY, "costs.slippage_bps=0"]),
    ("sma_real", "backtesting", ["data.end=2017-11-08"]),  # real bars, gaps filled forward
    ("sma_real", "backtrader", ["data.end=2017-11-08"]),
    ("sma_real", "nautilus", ["data.end=2017-11-08", "costs.slippage_bps=0"]),
]


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wh = tmp_path_factory.mktemp("golden") / "w.duckdb"
    ingest(wh, [SAMPLE / "btcusdt_1m_2024-01_synthetic.csv"], "BTCUSDT")
    ingest(wh, [SAMPLE / "ethusdt_1m_2024-01_synthetic.csv"], "ETHUSDT")
    ingest(wh, [SAMPLE / "UNITTEST_BTC-1m.json"], "UNITTESTBTC", gaps="none")
    return wh


@pytest.mark.parametrize(("config", "engine", "overrides"), CASES,
                         ids=[f"{c}-{e}" for c, e, _ in CASES])
def test_golden_strategy_within_tolerance_of_peer(golden: Path, tmp_path: Path, config: str,
                                                  engine: str, overrides: list[str]) -> None:
    result = run_parity(engine, CONFIGS / f"{config}.yaml", overrides=overrides,
                        warehouse=golden, out=tmp_path / "p")
    assert result.passed, result.table()
    trades = next(r for r in result.rows if r.quantity == "trade_count")
    assert trades.ours and trades.ours >= 4, result.table()  # it really traded
