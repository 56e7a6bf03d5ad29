"""Risk in a whole backtest: a run with forced breaches leaves BLOCKED orders, risk_events rows,
a manifest section, metrics rows, log records, rpt.risk_blocks rows and a non-zero block rate in
rpt.performance, all agreeing; ``risk.modes.backtest: false`` switches every check off; bad risk
configuration fails fast through load_config.

Two runs share one warehouse (built once for the module): the same SMA strategy on two
synthetic symbols over two UTC days, once with tight rails and once with the same rails switched
off for backtests.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from workbench.config import load_config
from workbench.engine.run import RunResult, run_backtest
from workbench.errors import ConfigError
from workbench.feeds.synthetic import write_csv
from workbench.warehouse.connect import open_ro, open_rw
from workbench.warehouse.ingest import ingest

JAN = 1_704_067_200_000  # 2024-01-01T00:00:00Z
DAY = 86_400_000
MINUTE = 60_000
SYMBOLS = ("BTCUSDT", "ETHUSDT")
RISK = {"max_open_positions": 1, "daily_loss_limit": 60.0, "max_order_notional": 4200.0}
CONFIG: dict[str, Any] = {
    "run": {"name": "risk-e2e"},
    "data": {"symbols": list(SYMBOLS)},
    "strategy": {"class": "workbench.strategies.sma_cross:SmaCross",
                 "params": {"fast": 5, "slow": 20, "qty": 0.1}},
    "costs": {"fee_bps": 10, "slippage_bps": 5, "spread_bps": 0},
    "risk": RISK,
}
SLIPPAGE = 1 + 5 / 1e4


@dataclass
class Runs:
    warehouse: Path
    tight: RunResult
    off: RunResult

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        con = open_ro(self.warehouse)
        try:
            return con.execute(sql, list(params)).fetchall()
        finally:
            con.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("risk_backtest")
    warehouse = root / "wh.duckdb"
    con = open_rw(warehouse)
    try:
        for symbol, seed, price in (("BTCUSDT", 3, 42_000.0), ("ETHUSDT", 4, 40_000.0)):
            path = root / f"{symbol}.csv"
            write_csv(path, JAN, 2 * 1440, seed=seed, price=price)
            ingest(con, [path], symbol)
    finally:
        con.close()
    tight = run_backtest(CONFIG, warehouse=warehouse, out=root / "tight", env={},
                         progress=False)
    off_cfg = {**CONFIG, "risk": {**RISK, "modes": {"backtest": False}}}
    off = run_backtest(off_cfg, warehouse=warehouse, out=root / "off", env={}, progress=False)
    return Runs(warehouse, tight, off)


def blocks(runs: Runs, run_id: str) -> list[tuple[Any, ...]]:
    """(client_order_id, epoch ms, rule, reason_code, detail) of a run's blocks of orders."""
    return runs.query(
        "select client_order_id, epoch_ms(ts), rule, reason_code, detail from risk_events "
        "where run_id = ? and client_order_id is not null order by ts, order_seq", run_id)


# --- the block rate -------------------------------------------------------------------------
def test_backtest_forced_breaches_block_rate_nonzero_equals_blocked_over_orders(
        runs: Runs) -> None:
    rid = runs.tight.run_id
    ((orders, blocked, rate),) = runs.query(
        "select orders, blocked_orders, block_rate_pct from rpt.performance where run_id = ?",
        rid)
    ((counted_orders, counted_blocked),) = runs.query(
        "select count(*), count(*) filter (where status = 'BLOCKED') from orders "
        "where run_id = ?", rid)
    assert (orders, blocked) == (counted_orders, counted_blocked)
    assert 0 < blocked < orders
    assert rate == pytest.approx(blocked / orders * 100, rel=1e-12)
    assert runs.tight.metrics["block_rate_pct"] == rate


def test_backtest_risk_blocks_view_rows_per_rule_match_events_and_manifest(runs: Runs) -> None:
    rid = runs.tight.run_id
    view = runs.query("select rule, reason_code, blocks, epoch_ms(first_ts), epoch_ms(last_ts), "
                      "share_of_orders_pct from rpt.risk_blocks where run_id = ? order by rule",
                      rid)
    ((orders,),) = runs.query("select count(*) from orders where run_id = ?", rid)
    rows = blocks(runs, rid)
    by_rule = Counter(r[2] for r in rows)
    assert len(by_rule) >= 3  # several rules really tripped
    assert [(v[0], v[2]) for v in view] == sorted(by_rule.items())
    assert {v[1] for v in view} == {r[3] for r in rows}
    for rule, _, n, first, last, share in view:
        times = [r[1] for r in rows if r[2] == rule]
        assert (first, last) == (min(times), max(times))
        assert share == pytest.approx(n / orders * 100, rel=1e-12)
    assert runs.tight.manifest["risk"]["blocks_by_rule"] == dict(sorted(by_rule.items()))


# --- what each block leaves behind ----------------------------------------------------------
def test_backtest_every_block_is_a_blocked_order_with_its_code_and_never_filled(
        runs: Runs) -> None:
    rid = runs.tight.run_id
    orders = {r[0]: r[1:] for r in runs.query(
        "select client_order_id, status, reason, filled_qty, epoch_ms(ts) from orders "
        "where run_id = ?", rid)}
    filled = {r[0] for r in runs.query("select client_order_id from fills where run_id = ?",
                                       rid)}
    rows = blocks(runs, rid)
    assert len(rows) == sum(1 for o in orders.values() if o[0] == "BLOCKED")
    for coid, ts, _, code, _ in rows:
        status, reason, filled_qty, order_ts = orders[coid]
        assert (status, reason, filled_qty, order_ts) == ("BLOCKED", code, 0.0, ts)
        assert coid not in filled


def test_backtest_block_details_carry_the_numbers_that_tripped(runs: Runs) -> None:
    rid = runs.tight.run_id
    closes = {(s, t): c for s, t, c in runs.query(
        "select symbol, epoch_ms(ts), close from run_bars where run_id = ?", rid)}
    bar_of = {coid: (s, t) for coid, s, t in runs.query(
        "select client_order_id, symbol, epoch_ms(bar_ts) from orders where run_id = ?", rid)}
    seen = set()
    for coid, _, rule, _, raw in blocks(runs, rid):
        detail = json.loads(raw)
        seen.add(rule)
        if rule == "order_notional":
            # checked at the expected fill price: the signal bar's close plus 5 bps slippage
            assert detail["price"] == closes[bar_of[coid]] * SLIPPAGE
            assert detail["notional"] == pytest.approx(0.1 * detail["price"], rel=1e-12)
            assert detail["notional"] > detail["limit"] == RISK["max_order_notional"]
        elif rule == "max_open_positions":
            assert detail == {"open_positions_after": 2, "limit": 1}
        elif rule == "daily_loss":
            assert set(detail) == {"realized_today", "limit"}
            assert detail["limit"] == RISK["daily_loss_limit"]
    assert {"order_notional", "max_open_positions", "daily_loss"} <= seen


def test_backtest_daily_loss_stop_recorded_without_order_and_not_counted_as_block(
        runs: Runs) -> None:
    rid = runs.tight.run_id
    stops = runs.query("select order_seq, reason_code, detail from risk_events "
                       "where run_id = ? and client_order_id is null", rid)
    assert stops
    for seq, code, raw in stops:
        detail = json.loads(raw)
        assert (seq, code, detail["event"], detail["until"]) == (None, "RISK_DAILY_LOSS",
                                                                 "stop", "next UTC day")
        assert -detail["realized_today"] > detail["limit"] == RISK["daily_loss_limit"]
    ((in_view,),) = runs.query(
        "select coalesce(sum(blocks), 0) from rpt.risk_blocks where run_id = ?", rid)
    ((all_events,),) = runs.query("select count(*) from risk_events where run_id = ?", rid)
    assert in_view == all_events - len(stops)


def test_backtest_daily_loss_blocks_follow_that_days_stop_and_lift_next_day(runs: Runs) -> None:
    rid = runs.tight.run_id
    stop_ts = [t for (t,) in runs.query(
        "select epoch_ms(ts) from risk_events where run_id = ? and client_order_id is null",
        rid)]
    # a fill's and a decision's ts are a bar's close: the bar opened a minute earlier
    stop_day = {(t - MINUTE) // DAY: t for t in sorted(stop_ts, reverse=True)}
    loss_blocks = [t for _, t, rule, _, _ in blocks(runs, rid) if rule == "daily_loss"]
    assert loss_blocks
    for t in loss_blocks:
        day = (t - MINUTE) // DAY
        assert day in stop_day and stop_day[day] <= t
    # the first day's stop does not outlive it: orders fill on the second day
    ((fills_day2,),) = runs.query(
        "select count(*) from fills where run_id = ? and epoch_ms(bar_ts) >= ?", rid, JAN + DAY)
    assert (JAN // DAY) in stop_day and fills_day2 > 0


# --- the run's reports ----------------------------------------------------------------------
def test_backtest_manifest_risk_section_checked_blocked_and_last_block(runs: Runs) -> None:
    rid = runs.tight.run_id
    manifest = json.loads((runs.tight.run_dir / "run_manifest.json").read_text())
    risk = manifest["risk"]
    ((orders, blocked),) = runs.query(
        "select count(*), count(*) filter (where status = 'BLOCKED') from orders "
        "where run_id = ?", rid)
    assert (risk["checked"], risk["blocked"]) == (orders, blocked)
    assert sum(risk["blocks_by_rule"].values()) == blocked
    coid, _, rule, code, raw = blocks(runs, rid)[-1]
    ((seq, ts),) = runs.query("select order_seq, strftime(ts, '%Y-%m-%dT%H:%M:%S.%gZ') "
                              "from orders where run_id = ? and client_order_id = ?", rid, coid)
    assert risk["last_block"] == {"ts": ts, "order_seq": seq, "rule": rule, "reason_code": code,
                                  **json.loads(raw)}
    assert risk["halted"] is None
    assert set(risk["daily_realized_pnl"]) == {"2024-01-01", "2024-01-02"}


def test_backtest_metrics_rows_checked_blocked_per_rule_and_daily_pnl(runs: Runs) -> None:
    rid = runs.tight.run_id
    rows = runs.query("select name, value, labels from metrics where run_id = ?", rid)
    risk = runs.tight.manifest["risk"]
    named = {(n, json.dumps(json.loads(lab), sort_keys=True)): v for n, v, lab in rows}
    assert named[("risk.orders_checked", "{}")] == risk["checked"]
    assert named[("risk.orders_blocked", "{}")] == risk["blocked"]
    per_rule = {json.loads(lab)["rule"]: v for n, v, lab in rows if n == "risk.blocks"}
    assert per_rule == {k: float(v) for k, v in risk["blocks_by_rule"].items()}
    per_day = {json.loads(lab)["day"]: v for n, v, lab in rows
               if n == "risk.daily_realized_pnl"}
    assert per_day == risk["daily_realized_pnl"]


def test_backtest_log_has_risk_warning_per_block_and_stop(runs: Runs) -> None:
    rid = runs.tight.run_id
    records = [json.loads(line) for line in
               (runs.tight.run_dir / "logs.jsonl").read_text().splitlines()]
    risk = [r for r in records if r["component"] == "risk"]
    assert {r["level"] for r in risk} == {"warning"}
    ((events,),) = runs.query("select count(*) from risk_events where run_id = ?", rid)
    assert len(risk) == events
    codes = Counter(r["context"]["reason_code"] for r in risk if "reason_code" in r["context"])
    assert codes == Counter(r[3] for r in blocks(runs, rid))


# --- switched off ---------------------------------------------------------------------------
def test_backtest_risk_modes_backtest_false_disables_every_check(runs: Runs) -> None:
    rid = runs.off.run_id
    assert runs.off.manifest["risk"] == {"enabled": False}
    ((orders, blocked, rate),) = runs.query(
        "select orders, blocked_orders, block_rate_pct from rpt.performance where run_id = ?",
        rid)
    assert orders > 0 and blocked == 0 and rate == 0.0
    assert runs.query("select * from risk_events where run_id = ?", rid) == []
    assert runs.query("select * from rpt.risk_blocks where run_id = ?", rid) == []
    assert runs.query("select * from metrics where run_id = ? and name like 'risk.%'",
                      rid) == []
    # the same strategy, unguarded, trades what the rails stopped
    ((tight_fills,),) = runs.query("select count(*) from fills where run_id = ?",
                                   runs.tight.run_id)
    ((off_fills,),) = runs.query("select count(*) from fills where run_id = ?", rid)
    assert off_fills > tight_fills


def test_backtest_two_runs_in_one_warehouse_kept_apart_in_risk_views(runs: Runs) -> None:
    run_ids = {r for (r,) in runs.query("select distinct run_id from rpt.risk_blocks")}
    assert run_ids == {runs.tight.run_id}


# --- configuration --------------------------------------------------------------------------
@pytest.mark.parametrize(("override", "key"), [
    ("risk.max_order_notional=-100", "risk.max_order_notional"),
    ("risk.max_order_notional=0", "risk.max_order_notional"),
    ("risk.max_open_positions=-1", "risk.max_open_positions"),
    ("risk.max_gross_exposure_pct=-5", "risk.max_gross_exposure_pct"),
    ("risk.max_net_exposure_pct=0", "risk.max_net_exposure_pct"),
    ("risk.daily_loss_limit=-50", "risk.daily_loss_limit"),
    ("risk.max_daily_drawdown_pct=-1", "risk.max_daily_drawdown_pct"),
    ("risk.max_drawdown_pct=0", "risk.max_drawdown_pct"),
    ("risk.position_limits.BTCUSDT.max_qty=-1", "risk.position_limits.BTCUSDT.max_qty"),
    ("risk.position_limits.BTCUSDT.max_value=0", "risk.position_limits.BTCUSDT.max_value"),
    ("risk.max_open_positions=lots", "risk.max_open_positions"),
    ("risk.modes.live=maybe", "risk.modes.live"),
])
def test_load_config_bad_risk_value_fails_naming_key_and_layer(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, [override], env={})
    assert err.value.what.startswith(f"`{key}`:")
    assert err.value.where == f"--set {override}"


@pytest.mark.parametrize(("key", "suggestion"), [
    ("risk.max_order_notionl", "max_order_notional"),
    ("risk.daily_loss_limt", "daily_loss_limit"),
    ("risk.max_drawdown", "max_drawdown_pct"),
    ("risk.modes.bakctest", "backtest"),
])
def test_load_config_unknown_risk_key_fails_with_did_you_mean(key: str, suggestion: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"{key}=1"], env={})
    assert err.value.what == f"unknown key `{key}`"
    assert err.value.fix is not None and f"did you mean `{suggestion}`?" in err.value.fix


def test_load_config_unknown_position_limit_key_fails_with_did_you_mean() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, ["risk.position_limits.BTCUSDT.max_quantity=1"], env={})
    assert err.value.what == "unknown key `risk.position_limits.BTCUSDT.max_quantity`"
    assert err.value.fix is not None and "did you mean `max_qty`?" in err.value.fix


def test_load_config_risk_from_yaml_file_typed_and_unset_rules_off(tmp_path: Path) -> None:
    path = tmp_path / "risk.yaml"
    path.write_text("risk:\n  allowed_symbols: [BTCUSDT]\n  max_open_positions: 2\n"
                    "  position_limits: {BTCUSDT: {max_qty: 0.5}}\n"
                    "  modes: {live: false}\n", encoding="utf-8")
    risk = load_config(path, env={}).risk
    assert risk.allowed_symbols == ["BTCUSDT"] and risk.max_open_positions == 2
    limit = risk.position_limits["BTCUSDT"] if risk.position_limits else None
    assert limit is not None and (limit.max_qty, limit.max_value) == (0.5, None)
    assert (risk.modes.backtest, risk.modes.live) == (True, False)
    assert (risk.max_order_notional, risk.daily_loss_limit, risk.max_drawdown_pct) == (
        None, None, None)
