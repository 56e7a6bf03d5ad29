"""The run directory's writers: exact float text and ISO times for long columns."""

from __future__ import annotations

import math
import struct

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.model import ms_to_iso
from workbench.rundir import iso_column, repr_column

EDGES = [0.0, -0.0, 1e-4, 9.999999999999999e-05, 1e16, 9999999999999998.0, 1e15, 0.1, 2.5,
         100.0, 5e-324, -5e-324, 1.7976931348623157e308, math.nan, math.inf, -math.inf,
         123456789012345.6, 0.30000000000000004]


def test_repr_column_edge_values_equal_python_repr():
    assert repr_column(EDGES).to_pylist() == [repr(v) for v in EDGES]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=200))
def test_repr_column_any_floats_equal_python_repr(values):
    assert repr_column(values).to_pylist() == [repr(float(v)) for v in values]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=300))
def test_repr_column_any_bit_patterns_equal_python_repr(patterns):
    values = [struct.unpack("<d", struct.pack("<Q", p))[0] for p in patterns]
    assert repr_column(values).to_pylist() == [repr(v) for v in values]


def test_repr_column_many_random_magnitudes_equal_python_repr():
    rng = np.random.default_rng(11)
    values = np.concatenate([rng.random(20_000) * 1e9, 10.0 ** rng.uniform(-30, 30, 20_000),
                             rng.standard_normal(20_000)])
    assert repr_column(values).to_pylist() == [repr(v) for v in values.tolist()]


def test_repr_column_runs_of_equal_values_and_signed_zeros_kept_apart():
    values = [1.5, 1.5, 0.0, -0.0, -0.0, 0.0, 2.0]
    assert repr_column(values).to_pylist() == ["1.5", "1.5", "0.0", "-0.0", "-0.0", "0.0", "2.0"]


def test_repr_column_empty_is_empty():
    assert repr_column([]).to_pylist() == []


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-(2**40), 2**44), min_size=1, max_size=300))
def test_iso_column_any_times_equal_ms_to_iso(stamps):
    assert iso_column(stamps).to_pylist() == [ms_to_iso(t) for t in stamps]


def test_iso_column_a_year_of_minutes_equal_ms_to_iso():
    stamps = np.arange(0, 525_600, 7, dtype=np.int64) * 60_000 + 1_704_067_200_000
    assert iso_column(stamps).to_pylist() == [ms_to_iso(int(t)) for t in stamps]


def test_write_equity_across_chunks_equals_a_plain_python_writer(tmp_path, monkeypatch):
    from workbench import rundir

    monkeypatch.setattr(rundir, "_CHUNK", 7)  # lines are assembled per chunk: cross several
    rng = np.random.default_rng(5)
    n = 40
    ts = np.arange(n, dtype=np.int64) * 60_000 + 1_704_067_200_000
    cash = np.repeat(rng.random(n // 4) * 1e6, 4)
    value = np.array(EDGES + [0.0] * (n - len(EDGES)))
    equity = cash + np.nan_to_num(value)
    path = tmp_path / "equity.csv"
    rundir.write_equity(path, ts, cash, value, equity)
    expected = "ts,cash,position_value,equity\n" + "".join(
        f"{ms_to_iso(int(t))},{c!r},{v!r},{e!r}\n"
        for t, c, v, e in zip(ts.tolist(), cash.tolist(), value.tolist(), equity.tolist(),
                              strict=True))
    assert path.read_text() == expected


def test_write_equity_no_rows_is_the_header_alone(tmp_path):
    from workbench import rundir

    path = tmp_path / "equity.csv"
    rundir.write_equity(path, [], [], [], [])
    assert path.read_text() == "ts,cash,position_value,equity\n"


def _reference(header: str, rows: list[list[object]]) -> str:
    """The files' format, written the plain way: floats as repr, None empty, CSV quoting."""
    def cell(v: object) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return repr(v)
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        text = str(v)
        return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text
    return header + "\n" + "".join(",".join(cell(v) for v in r) + "\n" for r in rows)


def test_write_orders_fills_trades_across_chunks_equal_the_plain_format(tmp_path, monkeypatch):
    from workbench import rundir
    from workbench.book import RoundTrip
    from workbench.engine.journal import OrderState
    from workbench.model import Fill, OrderStatus, OrderType, Side

    monkeypatch.setattr(rundir, "_CHUNK", 3)
    t0 = 1_704_067_200_000
    orders = [OrderState(i, f"r-{i}", "BTCUSDT", Side.BUY if i % 2 else Side.SELL,
                         OrderType.LIMIT if i % 3 else OrderType.MARKET, EDGES[i % 13] or 0.5,
                         5, None if i % 3 == 0 else 42_000.5 + i, t0 + i * 60_000, t0, None,
                         False, None, OrderStatus.REJECTED if i == 4 else OrderStatus.FILLED,
                         'a "quoted", reason' if i == 4 else None, 5, t0)
              for i in range(1, 9)]
    rundir.write_orders(tmp_path / "o.csv", orders)
    assert (tmp_path / "o.csv").read_text() == _reference(",".join(rundir.ORDERS), [
        [o.order_seq, ms_to_iso(o.ts), o.symbol, str(o.side), str(o.type), o.qty, o.limit_price,
         str(o.status), o.reason] for o in orders])
    fills = [Fill(i, i, f"r-{i}", "BTCUSDT", Side.BUY, EDGES[i % 13] or 1.0, 7, 42_000.0 + i,
                  EDGES[(i + 5) % 13], t0 + i * 61_234, t0) for i in range(1, 8)]
    rundir.write_fills(tmp_path / "f.csv", fills)
    assert (tmp_path / "f.csv").read_text() == _reference(",".join(rundir.FILLS), [
        [f.order_seq, ms_to_iso(f.ts), f.symbol, str(f.side), f.qty, f.price, f.fee]
        for f in fills])
    trips = [RoundTrip("BTCUSDT", "long", 0.01 * i, t0 + i, 42_000.1, t0 + 99_999 * i, 42_001.0,
                       EDGES[i % 13], -0.0 if i == 2 else 1.5e-5 * i, 1e20 if i == 3 else 0.1,
                       i, i + 1)
             for i in range(1, 8)]
    rundir.write_trades(tmp_path / "t.csv", trips)
    assert (tmp_path / "t.csv").read_text() == _reference(",".join(rundir.TRADES), [
        [t.symbol, t.side, t.qty, ms_to_iso(t.entry_ts), t.entry_price, ms_to_iso(t.exit_ts),
         t.exit_price, t.fees, t.pnl, t.return_pct] for t in trips])


def test_write_orders_with_no_rows_is_the_header_alone(tmp_path):
    from workbench import rundir

    rundir.write_orders(tmp_path / "o.csv", [])
    assert (tmp_path / "o.csv").read_text() == ",".join(rundir.ORDERS) + "\n"
