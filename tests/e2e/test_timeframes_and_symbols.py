"""Whole backtests on a 5-minute timeframe and on two symbols, checked against the views."""

from __future__ import annotations

import csv
from pathlib import Path

from workbench.engine.run import run_backtest
from workbench.feeds.synthetic import bars
from workbench.model import ms_to_iso
from workbench.warehouse.connect import open_ro, open_rw
from workbench.warehouse.ingest import ingest

JAN = 1_704_067_200_000
FIVE_MIN = 300_000


def _csv(path: Path, start: int, count: int, tf_ms: int, seed: int, price: float) -> Path:
    with path.open("w") as fh:
        fh.write("ts,open,high,low,close,volume\n")
        for ts, o, h, lo, c, v in bars(start, count, seed=seed, price=price, tf_ms=tf_ms):
            fh.write(f"{ms_to_iso(ts)},{o},{h},{lo},{c},{v}\n")
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _equity_from_views(warehouse: Path, run_id: str) -> list[tuple[str, float]]:
    con = open_ro(warehouse)
    try:
        return [(ms_to_iso(ts), eq) for ts, eq in con.execute(
            "select epoch_ms(ts), equity from acct.equity_curve where run_id = ? order by ts",
            [run_id]).fetchall()]
    finally:
        con.close()


def test_backtest_on_5m_bars_times_orders_at_bar_close_and_agrees_with_views(tmp_path,
                                                                            warehouse):
    con = open_rw(warehouse)
    ingest(con, [_csv(tmp_path / "b5.csv", JAN, 2_000, FIVE_MIN, 3, 42_000.0)], "BTCUSDT",
           timeframe="5m")
    con.close()
    result = run_backtest(
        {"data": {"timeframe": "5m"},
         "strategy": {"params": {"fast": 5, "slow": 20, "qty": 0.01}}},
        warehouse=warehouse, out=tmp_path / "run", env={})
    equity = _rows(tmp_path / "run" / "equity.csv")
    assert len(equity) == 2_000
    assert equity[1]["ts"] == ms_to_iso(JAN + FIVE_MIN)
    fills = _rows(tmp_path / "run" / "fills.csv")
    assert fills, "the strategy should trade on 2,000 bars"
    bar_opens = {e["ts"] for e in equity}
    # decided on a bar, known at its close: every fill time is a bar open + 5 minutes
    for f in fills:
        opened = ms_to_iso(_ms(f["ts"]) - FIVE_MIN)
        assert opened in bar_opens
    views = _equity_from_views(warehouse, result.run_id)
    assert [t for t, _ in views] == [e["ts"] for e in equity]
    for (_, sql_eq), row in zip(views, equity, strict=True):
        assert abs(sql_eq - float(row["equity"])) <= 1e-9 * abs(sql_eq)


def test_backtest_on_two_symbols_has_one_equity_row_per_bar_time(tmp_path, warehouse):
    con = open_rw(warehouse)
    ingest(con, [_csv(tmp_path / "btc.csv", JAN, 1_500, 60_000, 3, 42_000.0)], "BTCUSDT")
    # ETH starts 10 minutes later: the account rows are the union of both symbols' times
    ingest(con, [_csv(tmp_path / "eth.csv", JAN + 600_000, 1_500, 60_000, 4, 2_500.0)],
           "ETHUSDT")
    con.close()
    result = run_backtest(
        {"data": {"symbols": ["BTCUSDT", "ETHUSDT"]},
         "strategy": {"params": {"fast": 5, "slow": 20, "qty": 0.01}}},
        warehouse=warehouse, out=tmp_path / "run", env={})
    equity = _rows(tmp_path / "run" / "equity.csv")
    assert len(equity) == 1_510
    assert len({e["ts"] for e in equity}) == 1_510
    traded = {f["symbol"] for f in _rows(tmp_path / "run" / "fills.csv")}
    assert traded == {"BTCUSDT", "ETHUSDT"}
    views = _equity_from_views(warehouse, result.run_id)
    assert [t for t, _ in views] == [e["ts"] for e in equity]
    for (_, sql_eq), row in zip(views, equity, strict=True):
        assert abs(sql_eq - float(row["equity"])) <= 1e-9 * abs(sql_eq)


def _ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso).timestamp() * 1000)
