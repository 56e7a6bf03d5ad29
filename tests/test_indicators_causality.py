"""The declared indicators' causality check catches what a sampled check once let through:
values that differ bar by bar from the whole series, subclasses of built-ins, whole-series
statistics; and refuses names a row cannot hold."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

from workbench.errors import ConfigError
from workbench.indicators import FIELDS, Computed, IndicatorSet, Sma

Bar = namedtuple("Bar", FIELDS)


def _bars(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    close = np.round(40_000 + np.cumsum(rng.normal(0, 10, n)), 2)
    return {f: close.copy() for f in FIELDS}


def test_series_computed_live_value_differs_config_error() -> None:
    """pandas' rolling mean keeps a running sum, so its value at bar i depends on bars before
    its window by the last bits: live (``update``, the last lookback + 1 bars) differs from the
    backtest's series at hundreds of bars. The check samples four bars and accepts it (on 5,000
    bars it happens to reject it), so the backtest and a live run of it do not agree."""
    pd = pytest.importorskip("pandas")

    def mean10(b):  # a legitimate-looking Computed
        return pd.Series(b["close"]).rolling(10).mean().to_numpy()

    bars = _bars(2_000)
    try:
        full = IndicatorSet({"m": Computed(mean10, lookback=9)}).series(bars)[0]
    except ConfigError:
        return  # refused: what the docs promise for a value live would not reproduce
    live = IndicatorSet({"m": Computed(mean10, lookback=9)})
    rows = np.array([live.update("S", Bar(*(bars[f][i] for f in FIELDS)))[0]
                     for i in range(len(full))])
    differ = np.flatnonzero(~np.isnan(full) & (rows != full))
    assert not len(differ), f"accepted, but live differs from the backtest at {len(differ)} bars"


def test_series_subclass_of_built_in_reading_later_bars_config_error() -> None:
    """A subclass of a built-in inherits ``checked`` (set from its source in ``__init__``), so
    its own ``compute`` is never checked: a look-ahead passes silently."""

    class NextClose(Sma):
        def compute(self, bars):
            x = bars["close"]
            out = np.full(len(x), np.nan)
            out[:-1] = x[1:]  # the next bar's close
            return out

    with pytest.raises(ConfigError, match="look-ahead"):
        IndicatorSet({"peek": NextClose(3)}).series(_bars(200))


@pytest.mark.parametrize("name", ["in", "from", "True", "lambda"])
def test_indicator_set_keyword_name_config_error(name: str) -> None:
    """A Python keyword passes ``isidentifier`` but cannot be a field of ``ctx.ind``: it was a
    bare ValueError from NamedTuple, with no where and no fix."""
    with pytest.raises(ConfigError, match="not a plain identifier"):
        IndicatorSet({name: Sma(3)})


def test_series_whole_series_normalisation_extremes_early_config_error() -> None:
    """A whole-series min-max normalisation reads later bars at every bar before the series'
    extremes; with both extremes before bar n // 2, the four sampled bars (n // 2, 3n // 4,
    n - 1 and min(lookback, n - 1)) all see the same extremes, so the look-ahead passes."""
    bars = _bars(2_000)
    c = bars["close"]
    c[100], c[300] = c.max() + 50, c.min() - 50
    for f in FIELDS:
        bars[f] = c.copy()
    norm = Computed(lambda b: (b["close"] - b["close"].min())
                    / (b["close"].max() - b["close"].min()), lookback=100_000, name="minmax")
    with pytest.raises(ConfigError, match="look-ahead"):
        IndicatorSet({"x": norm}).series(bars)


def test_series_computed_no_bars_empty_not_config_error() -> None:
    """A symbol without bars: nothing to check (it was a shape error for 1 bar)."""
    empty = {f: np.array([], dtype=np.float64) for f in FIELDS}
    (got,) = IndicatorSet({"x": Computed(lambda b: b["close"] * 2, lookback=0)}).series(empty)
    assert got.shape == (0,)
