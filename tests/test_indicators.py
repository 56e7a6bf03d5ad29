"""Declared indicators: exact against their definition, the same bar by bar as vectorised, no
look-ahead, and clear errors for a bad declaration."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import step_harness as harness
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.engine.backtest import simulate
from workbench.errors import ConfigError, StrategyError
from workbench.feeds.history import merge
from workbench.feeds.qc import BarSeries
from workbench.indicators import (
    Computed,
    Cross,
    Field,
    Highest,
    IndicatorSet,
    Lowest,
    Previous,
    Sma,
    rolling_fsum,
)
from workbench.model import Bar
from workbench.strategy import Context, Strategy

T0, TF = harness.T0, harness.TF


def fsum_windows(x: list[float], n: int) -> list[float]:
    return [math.nan] * min(n - 1, len(x)) + [math.fsum(x[i - n + 1:i + 1])
                                               for i in range(n - 1, len(x))]


def same(a: Any, b: Any) -> bool:
    return bool(np.array_equal(np.asarray(a, float), np.asarray(b, float), equal_nan=True))


# --- rolling_fsum is math.fsum, bit for bit --------------------------------------------------
prices = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)
anything = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)


@settings(max_examples=300, deadline=None)
@given(st.lists(prices, max_size=80), st.integers(1, 40))
def test_rolling_fsum_prices_equal_fsum_of_each_window(x: list[float], n: int) -> None:
    assert same(rolling_fsum(np.array(x), n), fsum_windows(x, n))


@settings(max_examples=200, deadline=None)
@given(st.lists(anything, max_size=40), st.integers(1, 12))
def test_rolling_fsum_any_finite_values_equal_fsum(x: list[float], n: int) -> None:
    assert same(rolling_fsum(np.array(x), n), fsum_windows(x, n))


@pytest.mark.parametrize("x", [
    [1.0, 2.0**-53, 2.0**-53, 1.0],  # ties to even in the one rounding
    [1.0 + 2.0**-52, 2.0**-53, -1.0, 2.0**-53],
    [0.1] * 10 + [0.2] * 10 + [0.3] * 10,
    [42_000.01, 42_000.02, 41_999.99, 42_000.0] * 8,
    [0.0, -0.0, 0.0, 5e-324, -5e-324, 1e-310],  # zeros and subnormals
    [1e-300, 1e300, -1e300, 1e-300],  # wider than the integer path: summed window by window
    [3.0, math.inf, 1.0, 2.0, 4.0],  # non-finite: the window-by-window path
])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_rolling_fsum_hard_cases_equal_fsum(x: list[float], n: int) -> None:
    if any(math.isinf(v) for v in x):
        expect = [math.nan] * (n - 1) + [
            math.fsum(x[i - n + 1:i + 1]) if not any(map(math.isinf, x[i - n + 1:i + 1]))
            else math.inf for i in range(n - 1, len(x))]
    else:
        expect = fsum_windows(x, n)
    assert same(rolling_fsum(np.array(x), n), expect)


def test_rolling_fsum_long_series_wraps_cumsum_and_stays_exact() -> None:
    rng = np.random.default_rng(7)
    x = np.round(rng.uniform(60_000.0, 70_000.0, 300_000), 2)  # cumsums pass 2**63 / 2**31
    got = rolling_fsum(x, 30)
    values = x.tolist()
    for i in [29, 30, 1_000, 150_000, 299_999]:
        assert got[i] == math.fsum(values[i - 29:i + 1])


def test_rolling_fsum_window_longer_than_series_all_nan() -> None:
    assert np.isnan(rolling_fsum(np.array([1.0, 2.0]), 3)).all()


# --- bar by bar (live) equals vectorised (backtest) --------------------------------------------
def walk(rng: np.random.Generator, n: int, start: float = 100.0) -> np.ndarray:
    return np.round(start * np.exp(np.cumsum(rng.normal(0, 0.002, n))), 2)


def columns(close: np.ndarray) -> dict[str, np.ndarray]:
    return {"open": close, "high": close + 0.5, "low": close - 0.5, "close": close,
            "volume": np.arange(1.0, len(close) + 1.0)}


BUILT_INS = {
    "sma": Sma(7),
    "sma_of_high": Sma(3, "high"),
    "highest": Highest(5),
    "lowest": Lowest(4, "close"),
    "previous": Previous("close", 2),
    "cross": Cross(Sma(3), Sma(8)),
    "cross_nested": Cross(Previous(Sma(2)), Highest(3, Field("close"))),
    "volume": Field("volume"),
    "computed": Computed(lambda b: b["close"] - b["open"], lookback=0),
}


def test_update_bar_by_bar_equals_series_for_every_built_in() -> None:
    close = walk(np.random.default_rng(3), 200)
    cols = columns(close)
    declared = IndicatorSet(BUILT_INS)
    whole = declared.series(cols)
    live = IndicatorSet(BUILT_INS)
    for i in range(len(close)):
        bar = Bar("X", T0 + i * TF, *(float(cols[f][i]) for f in
                                      ("open", "high", "low", "close", "volume")))
        row = live.update("X", bar)
        for name, values in zip(declared.names, whole, strict=True):
            assert same(getattr(row, name), values[i]), (name, i)


def test_series_sma_cross_values_match_their_definition() -> None:
    close = walk(np.random.default_rng(5), 120)
    fast, slow = Sma(3).compute(columns(close)), Sma(8).compute(columns(close))
    values = close.tolist()
    for i in range(7, 120):
        assert fast[i] == math.fsum(values[i - 2:i + 1]) / 3
        assert slow[i] == math.fsum(values[i - 7:i + 1]) / 8
    cross = Cross(Sma(3), Sma(8)).compute(columns(close))
    for i in range(120):
        up = i > 0 and fast[i - 1] <= slow[i - 1] and fast[i] > slow[i]
        down = i > 0 and fast[i - 1] >= slow[i - 1] and fast[i] < slow[i]
        assert cross[i] == (1.0 if up else -1.0 if down else 0.0)
    assert (cross[:8] == 0).all()  # slow undefined until bar 7: no cross at 7 either


# --- in a run: ctx.ind at each bar, per symbol, both loops ------------------------------------
class Recorder(Strategy):
    """Records ctx.ind at every bar."""

    def indicators(self) -> dict[str, Any]:
        return {"fast": Sma(2), "slow": Sma(4), "cross": Cross(Sma(2), Sma(4))}

    def on_start(self, ctx: Context) -> None:
        self.seen: list[tuple[str, int, tuple]] = []

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        self.seen.append((bar.symbol, bar.ts, tuple(ctx.ind)))


def two_symbols() -> Any:
    rng = np.random.default_rng(11)
    out = []
    for symbol, start, skip in (("AAA", 100.0, {3, 4}), ("BBB", 5.0, {0, 9})):
        c = walk(rng, 30, start)
        idx = [i for i in range(30) if i not in skip]
        ts = np.array([T0 + i * TF for i in idx], dtype=np.int64)
        cc = c[idx]
        out.append(BarSeries(symbol, TF, ts, cc, cc, cc, cc, np.ones(len(idx))))
    return merge(out)


def test_backtest_each_symbol_reads_its_own_indicators_same_as_bar_by_bar() -> None:
    data = two_symbols()
    vectorised = Recorder()
    simulate(harness.make_step(vectorised), data, start=T0)
    bar_by_bar = Recorder()
    step = harness.make_step(bar_by_bar)
    step.start(T0)
    names = data.symbol_names
    for i in range(len(data)):
        step.on_bar(Bar(names[data.symbol_index[i]], int(data.ts[i]), float(data.open[i]),
                        float(data.high[i]), float(data.low[i]), float(data.close[i]),
                        float(data.volume[i])))
    assert len(vectorised.seen) == len(data) == len(bar_by_bar.seen)
    for a, b in zip(vectorised.seen, bar_by_bar.seen, strict=True):
        assert a[:2] == b[:2] and same(a[2], b[2]), (a, b)
    aaa = [closes for s, _, closes in vectorised.seen if s == "AAA"]
    closes_aaa = data.close[data.symbol_index == names.index("AAA")].tolist()
    assert aaa[3][0] == math.fsum(closes_aaa[2:4]) / 2  # AAA's own 3rd and 4th bars
    assert math.isnan(aaa[2][1]) and not math.isnan(aaa[3][1])


def test_ctx_ind_is_none_without_declared_indicators() -> None:
    class Plain(Strategy):
        def on_bar(self, ctx: Context, bar: Bar) -> None:
            assert ctx.ind is None

    harness.run(Plain(), harness.closes([1.0, 2.0]))


# --- look-ahead and bad declarations ----------------------------------------------------------
def centred(b: Any) -> np.ndarray:
    c = b["close"]
    out = np.full(len(c), np.nan)
    out[1:-1] = (c[:-2] + c[1:-1] + c[2:]) / 3  # reads the next bar
    return out


@pytest.mark.parametrize(("indicator", "says"), [
    (Computed(centred, lookback=2), "look-ahead"),
    (Computed(lambda b: b["close"] / b["close"].max(), lookback=5), "look-ahead"),
    (Computed(lambda b: Sma(10).compute(b), lookback=3), "lookback=3"),
    (Sma(3, Computed(lambda b: np.cumsum(b["close"]), lookback=0)), "its lookback=2"),
])
def test_series_computed_reading_beyond_its_window_is_a_config_error(indicator: Any,
                                                                      says: str) -> None:
    with pytest.raises(ConfigError) as err:
        IndicatorSet({"bad": indicator}, "Mine").series(columns(walk(np.random.default_rng(1),
                                                                        50)), "BTCUSDT")
    assert says in str(err.value) and "Mine.indicators.bad" in str(err.value)
    assert "BTCUSDT" in str(err.value)


@pytest.mark.parametrize(("declared", "says"), [
    ({"bad name": Sma(3)}, "not a plain identifier"),
    ({"_hidden": Sma(3)}, "not a plain identifier"),
    ({"x": 3}, "not an Indicator"),
])
def test_indicator_set_bad_declaration_names_it(declared: dict, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        IndicatorSet(declared)


@pytest.mark.parametrize("make", [lambda: Sma(0), lambda: Highest(-1), lambda: Sma(2.5),
                                  lambda: Previous("close", 0), lambda: Field("vwap"),
                                  lambda: Computed(lambda b: b, lookback=-1),
                                  lambda: Computed("close", lookback=0)])
def test_indicator_bad_arguments_are_config_errors(make: Any) -> None:
    with pytest.raises(ConfigError):
        make()


@pytest.mark.parametrize(("fn", "says"), [
    (lambda b: b["close"][:-1], "returned shape"),
    (lambda b: 1 / 0, "ZeroDivisionError"),
])
def test_series_computed_failing_or_misshapen_is_a_config_error(fn: Any, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        IndicatorSet({"f": Computed(fn, lookback=0)}).series(columns(np.arange(1.0, 9.0)))


def test_step_indicators_not_a_dict_is_a_strategy_error() -> None:
    class Wrong(Strategy):
        def indicators(self) -> Any:
            return [Sma(3)]

    with pytest.raises(StrategyError, match="not a dict"):
        harness.make_step(Wrong())


def test_step_indicators_raising_is_a_strategy_error_naming_the_hook() -> None:
    class Broken(Strategy):
        def indicators(self) -> Any:
            raise KeyError("fast")

    with pytest.raises(StrategyError, match="in indicators"):
        harness.make_step(Broken())
