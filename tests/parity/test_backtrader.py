"""The Backtrader adapter of ``workbench parity``: our strategies, unchanged, inside backtrader,
agree with our own backtests fill by fill (one symbol, two with a gap, limits, next open)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import Field
from two_symbols import JAN_2024_MS, ingest_btc_eth

from workbench.config import Config
from workbench.engine.kernel import with_strategy
from workbench.engine.run import as_config
from workbench.errors import ConfigError
from workbench.model import Bar, Order, OrderIntent, Side, ms_to_iso
from workbench.parity.harness import ParityResult, read_rows, run_parity
from workbench.strategy import Context, Strategy, strategy_identity

pytest.importorskip("backtrader")

BTC_BARS = 1212  # the last bar is a Rhythm sell bar (1212 % 20 == 12)
ETH_BARS = 900
ETH_GAP = range(5, 12)  # ETH rows left out: right after its 5th bar (a Rhythm buy bar)


class Rhythm(Strategy):
    """Per symbol, on its own bars counted from 1: buy ``qty`` on bar ``buy`` of every
    ``period`` when flat (at market, or a limit at the bar's high), sell all at market on bar
    ``sell``."""

    qty: Annotated[float, Field(gt=0)] = 0.01
    period: int = 20
    buy: int = 5
    sell: int = 12
    limit: bool = False

    def on_start(self, ctx: Context) -> None:
        self._count: dict[str, int] = {}

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        sym = bar.symbol
        n = self._count[sym] = self._count.get(sym, 0) + 1
        phase = n % self.period
        held = ctx.position(sym)
        if phase == self.buy and held == 0:
            ctx.submit(OrderIntent.limit(sym, Side.BUY, self.qty, bar.high) if self.limit
                       else OrderIntent(sym, Side.BUY, self.qty))
        elif phase == self.sell and held > 0:
            ctx.submit(OrderIntent(sym, Side.SELL, held))


class Overreach(Strategy):
    """Sells what it does not hold (bar 3), buys more than its cash (bar 4), then trades
    0.01 (bars 6 and 9)."""

    def on_start(self, ctx: Context) -> None:
        self._n = 0

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        self._n += 1
        side, qty = {3: (Side.SELL, 0.01), 4: (Side.BUY, 1.0), 6: (Side.BUY, 0.01),
                     9: (Side.SELL, 0.01)}.get(self._n, (None, 0.0))
        if side is not None:
            ctx.submit(OrderIntent(bar.symbol, side, qty))


class CancelOther(Strategy):
    """Bids at ETH's high on its 20th bar; cancels the bid on BTC's next bar if still open
    (backtrader has filled it on ETH's bar of that time already)."""

    def on_start(self, ctx: Context) -> None:
        self._n = 0
        self._bid: Order | None = None

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if bar.symbol == "ETHUSDT":
            self._n += 1
            if self._n == 20:
                self._bid = ctx.submit(OrderIntent.limit(bar.symbol, Side.BUY, 0.01, bar.high))
        elif self._bid is not None and self._bid.is_open:
            ctx.cancel(self._bid)
            self._bid = None


@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse with BTCUSDT (1212 bars) and ETHUSDT (900 less a gap of 7) 1m bars."""
    root = tmp_path_factory.mktemp("bt")
    path = root / "w.duckdb"
    ingest_btc_eth(path, root, btc_bars=BTC_BARS, eth_bars=ETH_BARS,
                   eth_start_ms=JAN_2024_MS + 3 * 60_000, eth_price=2_500.0, eth_gap=ETH_GAP)
    return path


def config(strategy: str | type[Strategy], params: dict[str, Any], *,
           symbols: tuple[str, ...] = ("BTCUSDT",), **costs: Any) -> Config:
    cls = strategy if isinstance(strategy, type) else None
    cfg = as_config({
        "run": {"name": "parity-bt"},
        "data": {"symbols": list(symbols), "timeframe": "1m",
                 "gaps": "none" if len(symbols) > 1 else "fail"},
        "strategy": {"class": strategy_identity(cls) if cls else strategy, "params": params},
        "portfolio": {"initial_cash": 10_000, "quote": "USDT"},
        "costs": {"fee_bps": 10, "slippage_bps": 5, "spread_bps": 0, "min_notional": 0,
                  "fill_at": "close", **costs}}, (), "WB_")
    return with_strategy(cfg, cls) if cls else cfg


def parity(cfg: Config, wh: Path, tmp_path: Path) -> ParityResult:
    return run_parity("backtrader", cfg, warehouse=wh, runs_dir=tmp_path / "runs")


def rows(result: ParityResult, side: str, name: str) -> list[dict[str, str]]:
    return read_rows(Path(result.out_dir) / side / name)


def assert_same_files(result: ParityResult) -> None:
    """The peer's four run files equal ours row by row: every value, numbers up to float
    noise (the fee's factors multiply in another order in backtrader)."""
    for name in ("trades.csv", "orders.csv", "fills.csv", "equity.csv"):
        ours, peer = rows(result, "workbench", name), rows(result, "backtrader", name)
        assert len(peer) == len(ours), name
        for n, (a, b) in enumerate(zip(ours, peer, strict=True)):
            assert a.keys() == b.keys()
            for key in a:
                if a[key] != b[key]:
                    assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-12, abs=1e-9), \
                        f"{name} row {n}: {key}: {a[key]} != {b[key]}"
    assert rows(result, "workbench", "fills.csv"), "no fills: the test exercises nothing"


SMA = {"fast": 10, "slow": 40, "qty": 0.1}
SMA_CROSS = "workbench.strategies.sma_cross:SmaCross"
PULLBACK = {"qty": 0.05, "dip_bps": 15.0, "take_profit_bps": 25.0, "stop_bps": 60.0,
            "expire_bars": 5}


def test_smacross_fill_at_close_passes_with_identical_trades(wh: Path, tmp_path: Path) -> None:
    result = parity(config(SMA_CROSS, SMA), wh, tmp_path)
    assert result.passed, result.table()
    assert len(rows(result, "workbench", "trades.csv")) > 10
    assert result.first_difference is None
    assert_same_files(result)


def test_smacross_next_open_passes(wh: Path, tmp_path: Path) -> None:
    result = parity(config(SMA_CROSS, SMA, fill_at="next_open"), wh, tmp_path)
    assert result.passed, result.table()
    assert_same_files(result)


def test_smacross_spread_and_slippage_sells_at_our_price_passes(wh: Path, tmp_path: Path
                                                                ) -> None:
    result = parity(config(SMA_CROSS, SMA, spread_bps=2), wh, tmp_path)
    assert result.passed, result.table()
    assert_same_files(result)


@pytest.mark.parametrize("fill_at", ["close", "next_open"])
def test_pullback_limits_expiry_stop_passes(wh: Path, tmp_path: Path, fill_at: str) -> None:
    result = parity(config("workbench.strategies.pullback_limit:PullbackLimit", PULLBACK,
                           slippage_bps=0, fill_at=fill_at), wh, tmp_path)
    assert result.passed, result.table()
    orders = rows(result, "backtrader", "orders.csv")
    seen = {(o["side"], o["type"], o["status"], o["reason"]) for o in orders}
    assert {("BUY", "LIMIT", "FILLED", ""), ("BUY", "LIMIT", "CANCELED", "EXPIRED"),  # bids
            ("SELL", "LIMIT", "FILLED", ""), ("SELL", "LIMIT", "CANCELED", "USER"),  # targets
            ("SELL", "MARKET", "FILLED", "")} <= seen, seen  # stops
    assert_same_files(result)


@pytest.mark.parametrize("fill_at", ["close", "next_open"])
@pytest.mark.parametrize("limit", [False, True])
def test_two_symbols_with_gap_passes(wh: Path, tmp_path: Path, fill_at: str, limit: bool
                                     ) -> None:
    """Each symbol's bars handed once, in loop order (ETH starts 3 bars late and has a gap);
    a limit is never tried on a bar its symbol does not have at that time."""
    cfg = config(Rhythm, {"limit": limit}, symbols=("BTCUSDT", "ETHUSDT"), fill_at=fill_at,
                 slippage_bps=0 if limit else 5)
    result = parity(cfg, wh, tmp_path)
    assert result.passed, result.table()
    fills = rows(result, "backtrader", "fills.csv")
    assert {f["symbol"] for f in fills} == {"BTCUSDT", "ETHUSDT"}
    assert_same_files(result)
    if limit:  # ETH's bid placed on its last bar before the gap is not tried on that bar again
        after_gap = JAN_2024_MS + (3 + ETH_GAP.stop) * 60_000  # open time of its next bar
        eth = next(f for f in fills if f["symbol"] == "ETHUSDT")
        assert eth["side"] == "BUY"
        assert eth["ts"] >= ms_to_iso(after_gap + 60_000)  # a fill's ts: its bar's close


def test_market_sell_on_last_bar_fills_at_its_close(wh: Path, tmp_path: Path) -> None:
    result = parity(config(Rhythm, {}), wh, tmp_path)
    assert result.passed, result.table()
    last = rows(result, "backtrader", "fills.csv")[-1]
    assert (last["symbol"], last["side"]) == ("BTCUSDT", "SELL")
    assert last["ts"] == ms_to_iso(JAN_2024_MS + BTC_BARS * 60_000)  # the last bar's close
    assert_same_files(result)


@pytest.mark.parametrize("fill_at", ["close", "next_open"])
def test_oversell_and_overbuy_rejected_as_ours(wh: Path, tmp_path: Path, fill_at: str) -> None:
    """A sell beyond the position (a short in backtrader) and a buy beyond the cash are
    rejected on both sides, with our reasons."""
    result = parity(config(Overreach, {}, fill_at=fill_at), wh, tmp_path)
    assert result.passed, result.table()
    orders = rows(result, "backtrader", "orders.csv")
    assert [(o["status"], o["reason"]) for o in orders] == [
        ("REJECTED", "INSUFFICIENT_POSITION"), ("REJECTED", "INSUFFICIENT_FUNDS"),
        ("FILLED", ""), ("FILLED", "")]
    assert_same_files(result)


def test_limit_filled_at_open_with_slippage_unsupported(wh: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="backtrader slips that fill"):
        parity(config(Rhythm, {"limit": True}, slippage_bps=5), wh, tmp_path)


def test_cancel_of_order_backtrader_filled_at_same_time_unsupported(wh: Path, tmp_path: Path
                                                                     ) -> None:
    cfg = config(CancelOther, {}, symbols=("BTCUSDT", "ETHUSDT"), slippage_bps=0)
    with pytest.raises(ConfigError, match="cancelled by the strategy after backtrader had"):
        parity(cfg, wh, tmp_path)


def test_min_notional_applied_on_our_side_same_rejections(wh: Path, tmp_path: Path) -> None:
    result = parity(config(SMA_CROSS, SMA, min_notional=4_200), wh, tmp_path)
    assert result.passed, result.table()
    assert_same_files(result)
    statuses = {(o["status"], o["reason"]) for o in rows(result, "backtrader", "orders.csv")}
    assert {("REJECTED", "MIN_NOTIONAL"), ("FILLED", "")} <= statuses
