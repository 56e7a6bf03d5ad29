"""The NautilusTrader adapter of ``workbench parity`` on the first bars of the January sample."""

from __future__ import annotations

import csv
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("nautilus_trader")

from workbench.errors import ConfigError
from workbench.parity import spec
from workbench.parity.harness import ParityResult, read_rows, run_parity
from workbench.warehouse.ingest import ingest

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "btcusdt_1m_2024-01_synthetic.csv"
BARS = 3000
SMA = {"class": "workbench.strategies.sma_cross:SmaCross",
       "params": {"fast": 10, "slow": 40, "qty": 0.1}}
PULLBACK = {"class": "workbench.strategies.pullback_limit:PullbackLimit", "params": {"qty": 0.1}}


@pytest.fixture(scope="module")
def bars_wh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse holding the sample's first ``BARS`` bars of BTCUSDT."""
    root = tmp_path_factory.mktemp("nautilus")
    sliced = root / "bars.csv"
    with SAMPLE.open(newline="") as src, sliced.open("w", newline="") as dst:
        dst.writelines(islice(src, BARS + 1))
    wh = root / "w.duckdb"
    ingest(wh, [sliced], "BTCUSDT")
    ingest(wh, [sliced], "ETHUSDT")  # the same bars: both symbols signal on the same bar
    return wh


def config(strategy: dict[str, Any], cash: float = 10000, symbols: tuple[str, ...] = ("BTCUSDT",),
           **costs: Any) -> dict[str, Any]:
    return {"data": {"symbols": list(symbols), "timeframe": "1m", "gaps": "fail"},
            "strategy": strategy,
            "portfolio": {"initial_cash": cash, "quote": "USDT"},
            "costs": {"fee_bps": 10, "slippage_bps": 0, **costs}}


def parity(wh: Path, tmp_path: Path, cfg: dict[str, Any]) -> ParityResult:
    return run_parity("nautilus", cfg, warehouse=wh, runs_dir=tmp_path / "runs")


def test_sma_cross_parity_passes_or_fails_only_on_not_held(bars_wh: Path, tmp_path: Path
                                                          ) -> None:
    result = parity(bars_wh, tmp_path, config(SMA))
    failing = {r.quantity for r in result.rows if not r.within}
    assert failing <= {q for (engine, q) in spec.NOT_HELD if engine == "nautilus"}
    count = next(r for r in result.rows if r.quantity == spec.TRADE_COUNT)
    assert count.ours == count.peer and count.ours and count.ours >= 10
    assert result.bars == BARS


def test_pullback_limit_parity_passes(bars_wh: Path, tmp_path: Path) -> None:
    result = parity(bars_wh, tmp_path, config(PULLBACK))
    assert result.passed, result.table()


@pytest.mark.parametrize("strategy", [SMA, PULLBACK], ids=["sma_cross", "pullback_limit"])
def test_fills_peer_rows_match_ours_row_by_row(bars_wh: Path, tmp_path: Path,
                                               strategy: dict[str, Any]) -> None:
    """Each fill on the same order, bar time, side and quantity, at the same price and fee
    (up to nautilus's rounding):
    a fill mapped to the wrong loop index shows up here as a different ``ts``."""
    result = parity(bars_wh, tmp_path, config(strategy))
    out = Path(result.out_dir)
    ours = read_rows(out / "workbench" / "fills.csv")
    peer = read_rows(out / "nautilus" / "fills.csv")
    assert len(ours) == len(peer) and len(ours) >= 20
    for a, b in zip(ours, peer, strict=True):
        assert (a["order_seq"], a["ts"], a["symbol"], a["side"], a["qty"]) == \
            (b["order_seq"], b["ts"], b["symbol"], b["side"], b["qty"])
        assert b["price"] == a["price"]  # price precision 16: our floats, bit for bit
        # nautilus rounds a commission to the quote currency's precision (1e-8 for USDT)
        assert abs(float(b["fee"]) - float(a["fee"])) <= 5e-9


def test_run_parity_next_open_raises_config_error_naming_reason(bars_wh: Path, tmp_path: Path
                                                                ) -> None:
    with pytest.raises(ConfigError, match="next_open has no NautilusTrader equivalent"):
        parity(bars_wh, tmp_path, config(SMA, fill_at="next_open"))


def test_run_parity_slippage_raises_config_error_naming_reason(bars_wh: Path, tmp_path: Path
                                                               ) -> None:
    with pytest.raises(ConfigError, match="slips a fill by one price increment"):
        parity(bars_wh, tmp_path, config(SMA, slippage_bps=5))


def test_run_parity_marketable_limit_raises_config_error_naming_order(
        bars_wh: Path, tmp_path: Path) -> None:
    tight = {**PULLBACK, "params": {"qty": 0.1, "take_profit_bps": 5, "dip_bps": 5}}
    with pytest.raises(ConfigError, match=r"order \d+ \(SELL LIMIT .* is marketable when sent"):
        parity(bars_wh, tmp_path, config(tight))


def test_sma_cross_order_above_quarter_volume_parity_passes(bars_wh: Path, tmp_path: Path
                                                            ) -> None:
    """qty 5 is above a quarter of most bars' volume: nautilus must still fill it whole."""
    big = {**SMA, "params": {"fast": 10, "slow": 40, "qty": 5.0}}
    result = parity(bars_wh, tmp_path, config(big, cash=10_000_000))
    assert result.passed, result.table()


def test_sma_cross_two_symbols_short_of_cash_parity_passes(bars_wh: Path, tmp_path: Path
                                                          ) -> None:
    """Both symbols buy on the same bar; the cash covers one: the second is rejected by both."""
    result = parity(bars_wh, tmp_path, config(SMA, cash=6000, symbols=("BTCUSDT", "ETHUSDT")))
    assert result.passed, result.table()
    orders = read_rows(Path(result.out_dir) / "nautilus" / "orders.csv")
    assert any(o["status"] == "REJECTED" and o["symbol"] == "ETHUSDT" for o in orders)


def test_run_parity_buy_short_only_of_fee_raises_config_error(bars_wh: Path, tmp_path: Path
                                                              ) -> None:
    first = parity(bars_wh, tmp_path / "first", config(SMA))
    buy = read_rows(Path(first.out_dir) / "workbench" / "fills.csv")[0]
    cash = 0.1 * float(buy["price"]) * 1.0005  # the notional plus half the 10 bps fee
    with pytest.raises(ConfigError, match="check and its locks leave fees out"):
        parity(bars_wh, tmp_path, config(SMA, cash=cash))


def test_run_parity_limit_gapped_through_raises_config_error_naming_order(
        tmp_path: Path) -> None:
    """Every 50th bar opens 1% below the previous close: a resting bid fills at the open in
    ours and at its limit in nautilus, so the comparison is refused."""
    with SAMPLE.open(newline="") as fh:
        bars = list(islice(csv.DictReader(fh), 600))
    shift = 0.0
    for k, bar in enumerate(bars):
        if k and k % 50 == 0:
            shift += float(bar["open"]) - shift - float(bars[k - 1]["close"]) * 0.99
        for column in ("open", "high", "low", "close"):
            bar[column] = f"{float(bar[column]) - shift:.2f}"
    gapped = tmp_path / "gapped.csv"
    with gapped.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(bars[0]))
        writer.writeheader()
        writer.writerows(bars)
    wh = tmp_path / "w.duckdb"
    ingest(wh, [gapped], "BTCUSDT")
    with pytest.raises(ConfigError, match=r"order \d+ \(BUY LIMIT .* opened through it"):
        parity(wh, tmp_path, config(PULLBACK))
