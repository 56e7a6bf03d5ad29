"""Every accounting and report view does work linear in its input, whatever the plan.

The first backtest on a fresh warehouse once took 15 GB: inside the run's transaction the
optimizer estimated an empty ``fills`` table and ``acct.fifo_matches`` joined every buy to every
sell of a symbol. Here each view is profiled on runs with thousands of fills, with the rows
inserted inside an open transaction (the estimates of a first run) and after a commit; no
operator may produce more rows than a small multiple of the input rows. A quadratic join on
these inputs would produce over a million.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from workbench.warehouse import views
from workbench.warehouse.connect import open_memory
from workbench.warehouse.io import insert_arrow

T0 = 1_704_067_200_000
MINUTE = 60_000
BARS = 4_000
ROUND_TRIPS = 1_000  # 2,000 fills per symbol
_TS = pa.timestamp("ms", tz="UTC")


def _load(con: Any, run_id: str, symbols: list[str]) -> int:
    con.execute(
        "insert into runs (run_id, mode, status, started_at, initial_cash, timeframe_ms, symbols)"
        " values (?, 'backtest', 'completed', now(), 1e9, ?, ?)", [run_id, MINUTE, symbols])
    n_bars = BARS * len(symbols)
    sym = [s for _ in range(BARS) for s in symbols]
    ts = [T0 + i * MINUTE for i in range(BARS) for _ in symbols]
    insert_arrow(con, "run_bars", pa.table({
        "symbol": pa.array(sym, pa.string()), "ts": pa.array(ts, _TS),
        "close": pa.array([100.0 + (i % 50) for i in range(n_bars)], pa.float64()),
        "filled": pa.array([False] * n_bars, pa.bool_())}), run_id=run_id)
    rows: dict[str, list[Any]] = {k: [] for k in (
        "fill_seq", "order_seq", "client_order_id", "symbol", "side", "qty", "price", "fee",
        "ts", "bar_ts")}
    seq = 0
    for k, symbol in enumerate(symbols):
        for i in range(ROUND_TRIPS):
            for side, bar in (("BUY", 2 * i), ("SELL", 2 * i + 1)):
                seq += 1
                # sells of a different size than buys: every sell spans lots
                qty = 0.3 if side == "BUY" else (0.2 if i % 2 else 0.4)
                for key, value in (
                        ("fill_seq", seq), ("order_seq", seq),
                        ("client_order_id", f"{run_id}-{seq}"), ("symbol", symbol),
                        ("side", side), ("qty", qty), ("price", 100.0 + k + i % 7),
                        ("fee", 0.01), ("ts", T0 + (bar + 1) * MINUTE),
                        ("bar_ts", T0 + bar * MINUTE)):
                    rows[key].append(value)
    insert_arrow(con, "fills", pa.table({
        **{k: rows[k] for k in ("fill_seq", "order_seq", "client_order_id", "symbol", "side",
                                "qty", "price", "fee")},
        "ts": pa.array(rows["ts"], _TS), "bar_ts": pa.array(rows["bar_ts"], _TS)}),
        run_id=run_id)
    return n_bars + seq


def _max_operator_rows(con: Any, query: str, tmp: Path) -> tuple[int, str]:
    out = tmp / "profile.json"
    con.execute("pragma enable_profiling = 'json'")
    con.execute(f"pragma profiling_output = '{out}'")
    try:
        con.sql(query).fetchall()
    finally:
        con.execute("pragma disable_profiling")
    worst = (0, "")

    def walk(node: dict[str, Any]) -> None:
        nonlocal worst
        rows = int(node.get("intermediate_rows") or 0)
        if rows > worst[0]:
            worst = (rows, str(node.get("name")))
        for child in node.get("children", []):
            walk(child)

    for node in json.loads(out.read_text())["operator"]:
        walk(node)
    return worst


@pytest.mark.parametrize("in_transaction", [True, False], ids=["first-run", "committed"])
@pytest.mark.parametrize("view", [v.name for v in views.check()])
def test_views_any_plan_operator_rows_linear_in_input(view: str, in_transaction: bool,
                                                       tmp_path: Path) -> None:
    con = open_memory()
    try:
        if in_transaction:
            con.execute("begin transaction")
        rows = _load(con, "one", ["AAA"]) + _load(con, "two", ["AAA", "BBB", "CCC"])
        worst, operator = _max_operator_rows(con, f"select * from {view}", tmp_path)
        assert worst <= 8 * rows, (
            f"{view}: operator {operator} produced {worst:,} rows from {rows:,} input rows")
    finally:
        con.close()


def test_runs_list_headline_reads_only_the_listed_runs(tmp_path: Path) -> None:
    """`runs list` joined the latest runs to rpt.performance, which computed every run in the
    warehouse (7 s for `--limit 1` on 23 runs, holding the file); filtered by the listed ids,
    the work follows the runs shown."""
    from workbench.cli import _PERFORMANCE

    con = open_memory()
    try:
        listed = _load(con, "one", ["AAA"])
        others = sum(_load(con, f"other{i}", ["AAA", "BBB", "CCC"]) for i in range(3))
        worst, operator = _max_operator_rows(con, _PERFORMANCE.replace("?", "'one'"),
                                             tmp_path)
        assert worst <= 2 * listed < others, (operator, worst, listed)
        joined = ("select p.* from (select * from runs order by run_id limit 1) as r "
                  "left join rpt.performance as p on p.run_id = r.run_id")  # the latest runs
        assert _max_operator_rows(con, joined, tmp_path)[0] > 2 * listed  # the old way
    finally:
        con.close()


@pytest.mark.parametrize("view", ["rpt.bar_regimes", "rpt.performance_by_regime"])
def test_regime_views_filtered_by_run_read_only_that_run(view: str, tmp_path: Path) -> None:
    """The report reads one run's regimes: the run filter must reach the scans of run_bars
    (through the windows partitioned by run), not follow every run in the warehouse."""
    con = open_memory()
    try:
        listed = _load(con, "one", ["AAA"])
        others = sum(_load(con, f"other{i}", ["AAA", "BBB", "CCC"]) for i in range(3))
        worst, operator = _max_operator_rows(
            con, f"select * from {view} where run_id = 'one'", tmp_path)
        assert worst <= 2 * listed < others, (operator, worst, listed)
    finally:
        con.close()
