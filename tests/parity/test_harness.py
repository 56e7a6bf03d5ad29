"""`workbench parity` against backtesting.py: the golden strategies agree, differences are
found and shown, what a peer cannot express is refused with the reason, results are stored."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from parity_configs import PULLBACK, SMA, rows

from workbench.errors import ConfigError
from workbench.parity import harness, spec
from workbench.parity.harness import compare, first_difference, run_parity

pytest.importorskip("backtesting")

def test_run_parity_sma_cross_backtesting_identical_trades_and_fills(bars: Path,
                                                                     tmp_path: Path) -> None:
    result = run_parity("backtesting", SMA, warehouse=bars, out=tmp_path / "p")
    assert result.passed, result.table()
    out = tmp_path / "p"
    ours, peer = rows(out / "workbench" / "trades.csv"), rows(out / "backtesting" / "trades.csv")
    assert len(ours) == len(peer) > 20
    our_fills, peer_fills = rows(out / "workbench" / "fills.csv"), rows(
        out / "backtesting" / "fills.csv")
    assert [(f["ts"], f["side"], f["qty"]) for f in our_fills] == [
        (f["ts"], f["side"], f["qty"]) for f in peer_fills]
    for a, b in zip(our_fills, peer_fills, strict=True):
        assert float(b["price"]) == pytest.approx(float(a["price"]), rel=1e-12)
    # backtesting.py's commission is fee + slippage on the unadjusted price: the cash agrees
    # to the fee on the slippage (5 bps x 10 bps of the notional)
    metrics = {r.quantity: r for r in result.rows}
    assert abs(metrics["total_return_pct"].diff or 0) < 1e-3
    assert metrics["trade_count"].ours == metrics["trade_count"].peer == len(ours)


def test_run_parity_pullback_limit_backtesting_limits_expiry_and_stops_agree(
        bars: Path, tmp_path: Path) -> None:
    result = run_parity("backtesting", PULLBACK, warehouse=bars, out=tmp_path / "p")
    assert result.passed, result.table()
    orders = rows(tmp_path / "p" / "backtesting" / "orders.csv")
    reasons = {(o["status"], o["reason"]) for o in orders}
    assert ("CANCELED", "EXPIRED") in reasons  # expiring bids were cancelled on the same bars
    assert rows(tmp_path / "p" / "workbench" / "orders.csv") == orders


def test_run_parity_next_open_backtesting_agrees(bars: Path, tmp_path: Path) -> None:
    cfg = {**SMA, "costs": {**SMA["costs"], "fill_at": "next_open"}}
    result = run_parity("backtesting", cfg, warehouse=bars, out=tmp_path / "p")
    assert result.passed, result.table()


def test_run_parity_records_rows_and_writes_parity_json(bars: Path, tmp_path: Path) -> None:
    result = run_parity("backtesting", SMA, warehouse=bars, out=tmp_path / "p")
    saved = json.loads((tmp_path / "p" / "parity.json").read_text())
    assert saved["passed"] is True and saved["run_id"] == result.run_id
    con = duckdb.connect(str(bars), read_only=True)
    try:
        got = con.execute(
            "select quantity, held, within, passed, engine, run_id from parity_results "
            "where parity_id = ? order by quantity", [result.parity_id]).fetchall()
        run = con.execute("select status from runs where run_id = ?",
                          [result.run_id]).fetchone()
    finally:
        con.close()
    assert [g[0] for g in got] == sorted([*spec.METRICS, spec.TRADE_COUNT, spec.TRADES])
    assert all(g[1] and g[2] and g[3] and g[4] == "backtesting" for g in got)
    assert run == ("completed",)


def test_run_parity_multi_symbol_backtesting_config_error_names_why(bars: Path,
                                                                     tmp_path: Path) -> None:
    cfg = {**SMA, "data": {**SMA["data"], "symbols": ["BTCUSDT", "ETHUSDT"]}}
    with pytest.raises(ConfigError) as err:
        run_parity("backtesting", cfg, warehouse=bars, out=tmp_path / "p")
    assert "one instrument per run" in str(err.value) and "ETHUSDT" in str(err.value)


def test_run_parity_limits_with_slippage_backtesting_config_error_says_set_zero(
        bars: Path, tmp_path: Path) -> None:
    cfg = {**PULLBACK, "costs": {"fee_bps": 2, "slippage_bps": 5}}
    with pytest.raises(ConfigError, match=r"slippage_bps=5\.0.*set both to 0"):
        run_parity("backtesting", cfg, warehouse=bars, out=tmp_path / "p")


def test_run_parity_unknown_engine_config_error_lists_engines(bars: Path) -> None:
    with pytest.raises(ConfigError, match="backtrader, backtesting, nautilus"):
        run_parity("zipline", SMA, warehouse=bars)


def test_run_parity_output_directory_not_empty_config_error(bars: Path, tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "x").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        run_parity("backtesting", SMA, warehouse=bars, out=tmp_path / "p")


def trade(**kw: Any) -> dict[str, str]:
    base = {"symbol": "BTCUSDT", "side": "LONG", "qty": "0.1",
            "entry_ts": "2024-01-01T00:10:00.000Z", "entry_price": "42000.5",
            "exit_ts": "2024-01-01T00:20:00.000Z", "exit_price": "42010.25"}
    return {**base, **{k: str(v) for k, v in kw.items()}}


def test_first_difference_price_beyond_tolerance_names_trade_and_field() -> None:
    ours = [trade(), trade(entry_ts="2024-01-01T01:00:00.000Z")]
    peer = [trade(), trade(entry_ts="2024-01-01T01:00:00.000Z", exit_price="42010.26")]
    got = first_difference(ours, peer, "backtrader")
    assert got is not None and got.startswith("first differing trade: #2 (exit_price)")
    assert "42010.25" in got and "42010.26" in got


def test_first_difference_float_noise_within_rtol_is_none() -> None:
    assert first_difference([trade()], [trade(entry_price="42000.500000000001")], "x") is None


def test_first_difference_extra_trade_names_who_has_it() -> None:
    got = first_difference([trade()], [trade(), trade(qty="0.2")], "nautilus")
    assert got is not None and "#2 only in nautilus" in got and "0.2" in got


def test_compare_metric_outside_tolerance_fails_and_not_held_is_shown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(trade()))
        w.writeheader()
        w.writerow(trade())
    ours = {"total_return_pct": 1.0, "cagr_pct": 2.0, "max_drawdown_pct": -3.0, "sharpe": 0.5}
    peer = {**ours, "total_return_pct": 1.2}
    got = {r.quantity: r for r in compare("backtrader", ours, peer, path, path)}
    assert not got["total_return_pct"].within and got["cagr_pct"].within
    monkeypatch.setitem(spec.NOT_HELD, ("backtrader", "total_return_pct"), "a reason")
    got = {r.quantity: r for r in compare("backtrader", ours, peer, path, path)}
    row = got["total_return_pct"]
    assert row.within and not row.held and row.detail == "a reason" and row.tolerance is None


def test_cli_parity_prints_table_and_exit_zero(bars: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from workbench.cli import main

    config = tmp_path / "sma.yaml"
    config.write_text(json.dumps(SMA))
    code = main(["--warehouse", str(bars), "parity", "--engine", "backtesting", "--config",
                 str(config), "--out", str(tmp_path / "p")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASSED: within the tolerance spec" in out and "trade_count" in out


def test_cli_parity_outside_tolerance_exit_one_json(bars: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.cli import main

    monkeypatch.setitem(spec.METRICS, "total_return_pct", -1.0)  # nothing can be within
    config = tmp_path / "sma.yaml"
    config.write_text(json.dumps(SMA))
    code = main(["--warehouse", str(bars), "parity", "--engine", "backtesting", "--config",
                 str(config), "--out", str(tmp_path / "p"), "--json"])
    got = json.loads(capsys.readouterr().out)
    assert code == 1 and got["passed"] is False


def test_adapter_missing_engine_package_config_error_says_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def fake(name: str, *args: Any) -> Any:
        if name == "backtesting":
            raise ImportError("No module named 'backtesting'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(ConfigError, match=r"\[parity\]"):
        harness.adapter("backtesting")


def test_run_parity_min_notional_backtesting_same_rejections(bars: Path, tmp_path: Path) -> None:
    cfg = {**SMA, "costs": {**SMA["costs"], "min_notional": 4_200}}
    result = run_parity("backtesting", cfg, warehouse=bars, out=tmp_path / "p")
    assert result.passed, result.table()
    ours = rows(tmp_path / "p" / "workbench" / "orders.csv")
    assert ours == rows(tmp_path / "p" / "backtesting" / "orders.csv")
    assert {("REJECTED", "MIN_NOTIONAL"), ("FILLED", "")} <= {(o["status"], o["reason"])
                                                            for o in ours}
