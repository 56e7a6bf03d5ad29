"""Corporate actions in a backtest: a split scales the position, its lots and resting orders,
a dividend credits cash, each an ``action_events`` row the accounting views read (adr/0025)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from scripted import Scripted

import workbench
from workbench.warehouse.actions import ingest_actions
from workbench.warehouse.connect import open_rw, reading
from workbench.warehouse.ingest import ingest

MIDNIGHT = 1_704_153_600_000  # 2024-01-02T00:00Z, the ex-date's start
MIN = 60_000
BEFORE = 10  # bars before midnight
FLAT = [100.0] * BEFORE + [50.0] * 10  # a 2:1 split's prices as stored (not adjusted)
SPLIT = "AAPL,2024-01-02,split,2,\n"


@pytest.fixture
def stored(warehouse: Path, tmp_path: Path) -> Callable[..., Path]:
    """``stored(closes, actions, lows=None)``: AAPL 1m bars from 23:50Z (open = high = close,
    low as given) and an actions file's rows, ingested into the test warehouse."""

    def store(closes: list[float], actions: str, lows: dict[int, float] | None = None) -> Path:
        lows = lows or {}
        rows = ["ts,open,high,low,close,volume"] + [
            f"{MIDNIGHT + (i - BEFORE) * MIN},{c},{c},{lows.get(i, c)},{c},10"
            for i, c in enumerate(closes)]
        bars = tmp_path / "bars.csv"
        bars.write_text("\n".join(rows) + "\n")
        con = open_rw(warehouse)
        try:
            ingest(con, [bars], "AAPL")
        finally:
            con.close()
        if actions:
            path = tmp_path / "actions.csv"
            path.write_text("symbol,ex_date,kind,ratio,amount\n" + actions)
            ingest_actions(warehouse, path)
        return warehouse

    return store


def run(warehouse: Path, out: Path, plan: list[list[Any]],
        execution: dict[str, Any] | None = None, **data: Any) -> workbench.RunResult:
    config = {"data": {"symbols": ["AAPL"], **data}, "portfolio": {"initial_cash": 1000.0},
              "costs": {"fee_bps": 0, "slippage_bps": 0},
              "strategy": {"params": {"plan": plan}}, "execution": execution or {}}
    return workbench.run_backtest(config, strategy=Scripted, warehouse=warehouse, out=out,
                                  env={})


def rows(warehouse: Path, query: str, run_id: str) -> list[tuple[Any, ...]]:
    with reading(warehouse) as con:
        return con.execute(query, [run_id]).fetchall()


def test_backtest_holding_through_2_for_1_split_ends_with_twice_the_units_same_equity(
        stored: Callable[..., Path], tmp_path: Path) -> None:
    wh = stored(FLAT, SPLIT)
    result = run(wh, tmp_path / "r", [[0, "BUY", 1.0, None]])
    rid = result.run_id
    assert rows(wh, "select symbol, qty, avg_entry_price, cost_quote, last_close, "
                "market_value_quote from acct.positions where run_id = ?", rid) == [
        ("AAPL", 2.0, 50.0, 100.0, 50.0, 100.0)]
    assert rows(wh, "select kind, ratio, units_before, units_after, cash_quote, "
                "epoch_ms(ts) from action_events where run_id = ?", rid) == [
        ("SPLIT", 2.0, 100_000_000, 200_000_000, 0.0, MIDNIGHT)]
    assert {e for (e,) in rows(wh, "select distinct equity from acct.equity_curve "
                                   "where run_id = ?", rid)} == {1000.0}
    assert result.metrics["total_return_pct"] == 0.0
    assert result.manifest["corporate_actions"] == {"adjusted": False, "applied": [
        {"symbol": "AAPL", "ex_date": "2024-01-02", "kind": "SPLIT", "ratio": 2.0,
         "amount": None}]}


def test_backtest_sells_before_and_after_split_round_trips_agree_in_pnl(
        stored: Callable[..., Path], tmp_path: Path) -> None:
    closes = list(FLAT)
    closes[3], closes[15] = 110.0, 60.0
    wh = stored(closes, SPLIT)
    result = run(wh, tmp_path / "r", [[0, "BUY", 1.0, None], [3, "SELL", 0.5, None],
                                      [15, "SELL", 1.0, None]])
    rid = result.run_id
    # SQL reports the trip closed before the split in the units and prices after it
    assert rows(wh, "select qty, entry_price, exit_price, pnl from rpt.round_trips "
                "where run_id = ? order by exit_fill_seq", rid) == [
        (1.0, 50.0, 55.0, 5.0), (1.0, 50.0, 60.0, 10.0)]
    # the books. own trips (trades.csv): the first as it was traded
    csv = (result.run_dir / "trades.csv").read_text().splitlines()
    header = csv[0].split(",")
    trips = [dict(zip(header, line.split(","), strict=True)) for line in csv[1:]]
    assert [(float(t["qty"]), float(t["entry_price"]), float(t["exit_price"]),
             float(t["pnl"])) for t in trips] == [(0.5, 100.0, 110.0, 5.0),
                                                   (1.0, 50.0, 60.0, 10.0)]
    assert rows(wh, "select count(*) from acct.positions where run_id = ?", rid) == [(0,)]
    assert result.metrics["trades"] == 2
    assert rows(wh, "select equity from acct.equity_curve where run_id = ? order by ts desc "
                "limit 1", rid) == [(1015.0,)]


def test_backtest_dividend_credits_amount_times_units_at_ex_date(
        stored: Callable[..., Path], tmp_path: Path) -> None:
    wh = stored([100.0] * 20, "AAPL,2024-01-02,dividend,,0.25\n")
    result = run(wh, tmp_path / "r", [[0, "BUY", 2.0, None]])
    rid = result.run_id
    assert rows(wh, "select kind, amount, units_before, units_after, cash_quote from "
                "action_events where run_id = ?", rid) == [
        ("DIVIDEND", 0.25, 200_000_000, 200_000_000, 0.5)]
    with reading(wh) as con:
        curve = con.execute("select epoch_ms(ts), cash from acct.equity_curve where run_id = ? "
                            "and epoch_ms(ts) in (?, ?) order by ts",
                            [rid, MIDNIGHT - MIN, MIDNIGHT]).fetchall()
    assert curve == [(MIDNIGHT - MIN, 800.0), (MIDNIGHT, 800.5)]
    assert result.metrics["total_return_pct"] == pytest.approx(0.05)


def test_backtest_resting_limit_across_split_doubles_qty_halves_price(
        stored: Callable[..., Path], tmp_path: Path) -> None:
    # a buy limit at 60 rests before the split (the price is 100); after it the order is 2 at
    # 30: the bars at 50 do not fill it, the bar whose low is 29 does, at 30
    wh = stored(FLAT, SPLIT, lows={15: 29.0})
    result = run(wh, tmp_path / "r", [[0, "BUY", 1.0, 60.0]])
    rid = result.run_id
    assert rows(wh, "select status, reason from order_events where run_id = ? and reason "
                "like 'SPLIT%'", rid) == [
        ("SUBMITTED", "SPLIT 2.0 qty 1.0 -> 2.0 limit 60.0 -> 30.0")]
    assert rows(wh, "select qty, price, epoch_ms(bar_ts) from fills where run_id = ?",
                rid) == [(2.0, 30.0, MIDNIGHT + 5 * MIN)]
    assert rows(wh, "select qty from acct.positions where run_id = ?", rid) == [(2.0,)]


def test_backtest_with_split_rerun_writes_byte_identical_files(
        stored: Callable[..., Path], tmp_path: Path) -> None:
    wh = stored(FLAT, SPLIT + "AAPL,2024-01-02,dividend,,0.1\n", lows={15: 29.0})
    plan = [[0, "BUY", 1.0, None], [1, "BUY", 1.0, 60.0], [17, "SELL", 1.0, None]]
    first, second = run(wh, tmp_path / "a", plan), run(wh, tmp_path / "b", plan)
    names = sorted(p.name for p in first.run_dir.glob("*.csv"))
    assert names
    for name in names:
        assert (first.run_dir / name).read_bytes() == (second.run_dir / name).read_bytes()
    query = ("select action_seq, kind, units_before, units_after, cash_quote from "
             "action_events where run_id = ? order by action_seq")
    assert rows(wh, query, first.run_id) == rows(wh, query, second.run_id) != []


def test_backtest_adjusted_data_skips_actions_and_warns(
        stored: Callable[..., Path], tmp_path: Path) -> None:
    wh = stored([100.0] * 20, SPLIT)
    result = run(wh, tmp_path / "r", [[0, "BUY", 1.0, None]], adjusted=True)
    assert rows(wh, "select qty from acct.positions where run_id = ?", result.run_id) == [
        (1.0,)]
    assert rows(wh, "select count(*) from action_events where run_id = ?",
                result.run_id) == [(0,)]
    assert result.manifest["corporate_actions"]["skipped"][0]["kind"] == "SPLIT"
    assert any("not applied: data.adjusted is true" in w for w in result.warnings)


def test_backtest_actions_outside_window_are_not_applied(
        stored: Callable[..., Path], tmp_path: Path) -> None:
    wh = stored(FLAT, SPLIT)
    result = run(wh, tmp_path / "r", [[0, "BUY", 1.0, None]], end="2024-01-02")
    assert result.manifest["corporate_actions"] == {"adjusted": False, "applied": []}
    assert rows(wh, "select qty from acct.positions where run_id = ?", result.run_id) == [
        (1.0,)]


def test_backtest_split_under_participation_cap_scales_the_rest_of_a_partly_filled_order(
        stored: Callable[..., Path], tmp_path: Path) -> None:
    # 10% of each bar's 10 units: the buy of 5 fills 1 a bar; 3 before midnight, then the
    # 2:1 split makes the order 10 with 6 filled, and the 4 left fill 1 a bar at 50
    wh = stored(FLAT, SPLIT)
    result = run(wh, tmp_path / "r", [[7, "BUY", 5.0, None]],
                 execution={"participation_pct": 10})
    rid = result.run_id
    assert rows(wh, "select status, reason from order_events where run_id = ? and reason "
                "like 'SPLIT%'", rid) == [("PARTIALLY_FILLED", "SPLIT 2.0 qty 5.0 -> 10.0")]
    assert rows(wh, "select qty, price from fills where run_id = ? order by fill_seq",
                rid) == [(1.0, 100.0)] * 3 + [(1.0, 50.0)] * 4
    assert rows(wh, "select status from order_events where run_id = ? order by ts desc, "
                "rowid desc limit 1", rid) == [("FILLED",)]
    assert rows(wh, "select qty, avg_entry_price from acct.positions where run_id = ?",
                rid) == [(10.0, 50.0)]
    assert {e for (e,) in rows(wh, "select distinct equity from acct.equity_curve "
                                   "where run_id = ?", rid)} == {1000.0}


def test_backtest_split_while_an_order_is_on_its_way_lands_in_its_new_size(
        stored: Callable[..., Path], tmp_path: Path) -> None:
    # the sell of the 1 held is sent at 23:59's close and reaches the venue 100 ms after
    # midnight (latency SLOW), after the 2:1 split: it arrives as a sell of 2 and closes all
    wh = stored(FLAT, SPLIT)
    result = run(wh, tmp_path / "r", [[0, "BUY", 1.0, None], [9, "SELL", 1.0, None]],
                 execution={"latency": "SLOW"})
    rid = result.run_id
    assert rows(wh, "select status, reason from order_events where run_id = ? and reason "
                "like 'SPLIT%'", rid) == [("NEW", "SPLIT 2.0 qty 1.0 -> 2.0")]
    assert rows(wh, "select side, qty, price from fills where run_id = ? order by fill_seq",
                rid) == [("BUY", 1.0, 100.0), ("SELL", 2.0, 50.0)]
    assert rows(wh, "select count(*) from acct.positions where run_id = ?", rid) == [(0,)]
    assert result.metrics["trades"] == 1


def test_step_with_actions_scheduled_hands_every_bar_over() -> None:
    from workbench.config import load_config
    from workbench.engine import actions as corporate
    from workbench.engine import kernel
    from workbench.model import ActionKind, CorporateAction

    wired = kernel.build(load_config(None, env={}), "backtest", strategy=Scripted(),
                         run_id="r")
    step, manifest = wired.step, {}
    assert not step.needs_every_bar  # nothing scheduled: wake_on may skip bars
    split = CorporateAction("BTCUSDT", "2024-01-02", ActionKind.SPLIT, 2.0, None, MIDNIGHT)
    corporate.schedule(step, [split], False, manifest)
    assert step.needs_every_bar  # an action is never applied late
    assert manifest["corporate_actions"]["applied"][0]["ratio"] == 2.0


def test_schedule_with_a_broker_that_cannot_split_orders_is_refused_naming_the_fix() -> None:
    from types import SimpleNamespace

    from workbench.engine import actions as corporate
    from workbench.errors import ConfigError
    from workbench.model import ActionKind, CorporateAction

    split = CorporateAction("AAPL", "2024-01-02", ActionKind.SPLIT, 2.0, None, MIDNIGHT)
    live = SimpleNamespace(broker=object())  # a venue's broker: the venue adjusts its orders
    with pytest.raises(ConfigError, match="only by the simulated broker") as err:
        corporate.schedule(live, [split], False, {})  # type: ignore[arg-type]
    assert "data.adjusted" in str(err.value)


@pytest.mark.parametrize("spread_column", [None, "spread_bps"])
def test_backtest_on_a_warehouse_older_than_the_actions_table_runs_and_migrates_it(
        warehouse: Path, tmp_path: Path, spread_column: str | None):
    import shutil

    import duckdb

    from workbench.warehouse import migrations

    older = tmp_path / "schema"  # the migrations a version before corporate actions had
    older.mkdir()
    for path in sorted((migrations.sql_dir() / "schema").glob("*.sql"))[:13]:
        shutil.copy(path, older)
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(warehouse))
    migrations.apply(con, older)
    con.execute("insert into bars select 'AAPL', '1m', make_timestamptz(ms * 1000), 100, 100, "
                "100, 100, 10, null, 'old', null from range(?, ?, ?) as t(ms)",
                [MIDNIGHT, MIDNIGHT + 20 * MIN, MIN])
    con.close()
    config = {"data": {"symbols": ["AAPL"]}, "portfolio": {"initial_cash": 1000.0},
              "costs": {"fee_bps": 0, "slippage_bps": 0, "spread_bps": 2,
                        "spread_column": spread_column},
              "strategy": {"params": {"plan": [[1, "BUY", 1.0, None]]}}}

    result = workbench.run_backtest(config, strategy=Scripted, warehouse=warehouse,
                                    out=tmp_path / "run", env={})

    assert result.metrics["fills"] == 1  # read as a warehouse with no actions, no bar spreads
    with reading(warehouse) as con:  # the run's write migrated the file
        assert con.execute("select max(version) from schema_migrations").fetchall()[0][0] == max(
            m.version for m in migrations.discover())


def test_backtest_1_for_3_reverse_split_of_3_units_keeps_1_whole_unit_books_and_views_agree(
        stored: Callable[..., Path], tmp_path: Path) -> None:
    # 1:3 is the float 0.333...; read as its decimal digits it would floor 3 to 0.99999999
    wh = stored([100.0] * BEFORE + [300.0] * 10, "AAPL,2024-01-02,split,1:3,\n")
    result = run(wh, tmp_path / "r", [[0, "BUY", 3.0, None]])
    rid = result.run_id
    assert rows(wh, "select units_before, units_after, cash_quote from action_events "
                "where run_id = ?", rid) == [(300_000_000, 100_000_000, 0.0)]
    assert rows(wh, "select qty from acct.positions where run_id = ?", rid) == [(1.0,)]


def test_backtest_resting_sell_of_odd_lots_across_3_for_2_split_fills_the_whole_position(
        stored: Callable[..., Path], tmp_path: Path) -> None:
    # two lots of 100000001 units become 150000001 each (the halves paid in cash) while the
    # resting sell of 200000002 would become 300000003, one more unit than is held: the
    # order follows the position, as a broker's would, and fills instead of being rejected
    closes = [100.0] * BEFORE + [66.0] * 5 + [100.0] * 5
    wh = stored(closes, "AAPL,2024-01-02,split,3:2,\n")
    result = run(wh, tmp_path / "r", [[0, "BUY", 1.00000001, None],
                                      [1, "BUY", 1.00000001, None],
                                      [2, "SELL", 2.00000002, 140.0]])
    rid = result.run_id
    assert rows(wh, "select units_after from action_events where run_id = ?", rid) == [
        (300_000_002,)]
    assert rows(wh, "select side, qty from fills where run_id = ? and side = 'SELL'", rid) == [
        ("SELL", 3.00000002)]
    assert rows(wh, "select count(*) from acct.positions where run_id = ?", rid) == [(0,)]


def test_backtest_resting_order_floored_to_nothing_by_reverse_split_is_canceled_not_filled(
        stored: Callable[..., Path], tmp_path: Path) -> None:
    # a sell of 5 units across 1:10 is half a unit: nothing to trade (it filled 0.0 before)
    wh = stored([100.0] * BEFORE + [1000.0] * 5 + [2500.0] * 5, "AAPL,2024-01-02,split,1:10,\n")
    result = run(wh, tmp_path / "r", [[0, "BUY", 1.0, None], [1, "SELL", 0.00000005, 200.0]])
    rid = result.run_id
    assert rows(wh, "select status, reason from order_events where run_id = ? and "
                "order_seq = 2 order by event_seq desc limit 2", rid) == [
        ("CANCELED", "SPLIT"), ("SUBMITTED", "SPLIT 0.1 qty 5e-08 -> 0.0 limit 200.0 -> 2000.0")]
    assert rows(wh, "select side from fills where run_id = ?", rid) == [("BUY",)]
