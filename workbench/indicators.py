"""Declared indicators: computed vectorised before a backtest's loop, read by the strategy bar
by bar, the same values bar by bar in a live run.

A strategy declares them by name (``Strategy.indicators``); at each bar ``ctx.ind`` holds their
values at that bar of its symbol and nothing later (NaN where not yet defined, so a comparison
with an undefined value is simply false)::

    class SmaCross(Strategy):
        def indicators(self):
            return {"cross": Cross(Sma(10), Sma(30))}

        def on_bar(self, ctx, bar):
            if ctx.ind.cross > 0 and ctx.position(bar.symbol) == 0: ...

A backtest computes each indicator once over each symbol's whole series (``IndicatorSet.series``);
a live loop computes the value of the newest bar from the last ``lookback + 1`` bars of its
symbol (``IndicatorSet.update``), with the same function, so both agree to the bit. Built-in
indicators are exact where a decision may hinge on the last bit: ``Sma`` is ``math.fsum`` of the
window divided by n, computed as integer sums (``rolling_fsum``). An indicator made from a
function (``Computed``) is checked before the loop: a value that changes when later bars are
removed (look-ahead) or when bars older than its ``lookback`` are removed is a ConfigError.
"""

from __future__ import annotations

import keyword
import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from workbench.errors import ConfigError

FIELDS = ("open", "high", "low", "close", "volume")

# v = hi * 2**31 + lo with 0 <= lo < 2**31: window sums of hi and lo stay exact in float64 for
# windows shorter than 2**21 bars, and one float addition rounds their total exactly once.
_LIMB = 31
_MAX_WINDOW = 1 << 21
_MAX_SPREAD = 9  # binary orders of magnitude between a series' smallest and largest value
_WINDOW_CHECKS = 64  # bars whose value a Computed's check recomputes from their window alone


def rolling_fsum(x: np.ndarray, n: int) -> np.ndarray:
    """``math.fsum(x[i-n+1:i+1])`` for every i (NaN for the first n-1), vectorised, bit-exact.

    Each value is written as an integer times 2**k (k from the series' smallest exponent), the
    window sums are exact integer sums in two 31-bit limbs, and their total is rounded once,
    as ``fsum`` rounds, to nearest with ties to even. A series whose values span more than
    2**9 in magnitude, or holds a non-finite value, is summed window by window with ``fsum``.
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.full(len(x), np.nan)
    if n < 1:
        raise ValueError(f"window must be at least 1 (got {n})")
    if len(x) < n:
        return out
    size = np.abs(x)
    nonzero = size[size != 0]
    if n >= _MAX_WINDOW or not np.isfinite(size).all():
        return _rolling_fsum_slow(x, n, out)
    e_min = math.frexp(float(nonzero.min()))[1] if len(nonzero) else 0
    e_max = math.frexp(float(nonzero.max()))[1] if len(nonzero) else 0
    if e_max - e_min > _MAX_SPREAD or 53 - e_min > 1023:
        return _rolling_fsum_slow(x, n, out)
    # x = m * 2**(e - 53) with m a 53-bit integer, so x * 2**(53 - e_min) is the integer
    # m * 2**(e - e_min) < 2**62, exact in float64 and in int64
    scaled = (x * 2.0 ** (53 - e_min)).astype(np.int64)
    hi = scaled >> _LIMB
    lo = scaled & ((1 << _LIMB) - 1)
    sums = []
    for limb in (hi, lo):
        c = np.empty(len(limb) + 1, dtype=np.int64)
        c[0] = 0
        np.cumsum(limb, out=c[1:])  # wraps modulo 2**64 on long series; the differences don't
        sums.append((c[n:] - c[:-n]).astype(np.float64))
    total = sums[0] * float(1 << _LIMB) + sums[1]  # the one rounding
    scale = e_min - 53
    result = np.ldexp(total, scale)
    if scale < -1021 and result.size and np.abs(result[result != 0]).min(initial=1.0) < 2.0**-1021:
        return _rolling_fsum_slow(x, n, out)  # subnormal sums: ldexp would round a second time
    out[n - 1:] = result
    return out


def _rolling_fsum_slow(x: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:
    """Finite values of any magnitudes: a running exact sum in Python integers (each value an
    integer times 2**k, k the series' smallest exponent), rounded once per window as ``fsum``
    rounds (``int`` to ``float`` is correctly rounded). Non-finite values: ``fsum`` per
    window."""
    values = x.tolist()
    if not np.isfinite(x).all():
        fsum = math.fsum
        for i in range(n - 1, len(values)):
            out[i] = fsum(values[i - n + 1:i + 1])
        return out
    ratios = [v.as_integer_ratio() for v in values]
    shift = max((d.bit_length() - 1 for _, d in ratios), default=0)  # k = -shift
    scaled = [num << (shift - d.bit_length() + 1) for num, d in ratios]
    total = sum(scaled[:n - 1])
    for i in range(n - 1, len(scaled)):
        total += scaled[i]
        out[i] = _scaled_float(total, shift)
        total -= scaled[i - n + 1]
    return out


def _scaled_float(total: int, shift: int) -> float:
    """``total / 2**shift`` correctly rounded, to nearest with ties to even (as ``fsum``)."""
    try:
        return total / (1 << shift)  # int / int is correctly rounded in CPython
    except OverflowError:
        return math.copysign(math.inf, total)


class Indicator:
    """A value per bar of one symbol from that symbol's bars up to and including it.

    ``compute(bars)`` gets one symbol's columns (``open``, ``high``, ``low``, ``close``,
    ``volume`` as float64 arrays, oldest first) and returns one float per bar; the value at bar
    i may depend on bars ``i - lookback`` .. ``i`` only.
    """

    lookback: int = 0
    # built-ins made of built-ins are tested for causality once (tests/test_indicators.py);
    # anything with a Computed or a subclass (its own compute) inside is checked on every
    # run's data
    checked = False

    def compute(self, bars: Mapping[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return type(self).__name__


class Field(Indicator):
    """A bar field as an indicator (``Field("volume")``); an input of other indicators."""

    def __init__(self, name: str) -> None:
        self.checked = type(self) is Field  # a subclass's own compute is checked
        if name not in FIELDS:
            raise ConfigError(f"unknown bar field {name!r}", where="indicators",
                              fix=f"use one of {', '.join(FIELDS)}")
        self.name = name

    def compute(self, bars: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(bars[self.name], dtype=np.float64)

    def __repr__(self) -> str:
        return f"Field({self.name!r})"


def _source(source: Indicator | str) -> Indicator:
    return Field(source) if isinstance(source, str) else source


def _window(n: int, what: str) -> int:
    if not isinstance(n, int | np.integer) or isinstance(n, bool) or not 1 <= n < _MAX_WINDOW:
        raise ConfigError(f"{what} window must be a whole number of bars from 1 to "
                          f"{_MAX_WINDOW - 1} (got {n!r})", where="indicators",
                          fix=f"declare {what}(n) with n >= 1")
    return int(n)


class Sma(Indicator):
    """Simple moving average of ``n`` bars: ``math.fsum`` of the window / n, bit-exact."""

    def __init__(self, n: int, source: Indicator | str = "close") -> None:
        self.n = _window(n, "Sma")
        self.source = _source(source)
        self.lookback = self.n - 1 + self.source.lookback
        self.checked = type(self) is Sma and self.source.checked

    def compute(self, bars: Mapping[str, np.ndarray]) -> np.ndarray:
        return rolling_fsum(self.source.compute(bars), self.n) / self.n

    def __repr__(self) -> str:
        return f"Sma({self.n}, {self.source!r})"


class _Extreme(Indicator):
    _reduce: Callable[..., np.ndarray]

    def __init__(self, n: int, source: Indicator | str) -> None:
        self.n = _window(n, type(self).__name__)
        self.source = _source(source)
        self.lookback = self.n - 1 + self.source.lookback
        self.checked = type(self) in (Highest, Lowest) and self.source.checked

    def compute(self, bars: Mapping[str, np.ndarray]) -> np.ndarray:
        x = self.source.compute(bars)
        out = np.full(len(x), np.nan)
        if len(x) >= self.n:
            windows = np.lib.stride_tricks.sliding_window_view(x, self.n)
            out[self.n - 1:] = type(self)._reduce(windows, axis=1)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.n}, {self.source!r})"


class Highest(_Extreme):
    """The highest value of the last ``n`` bars (default source: ``high``)."""

    _reduce = np.max

    def __init__(self, n: int, source: Indicator | str = "high") -> None:
        super().__init__(n, source)


class Lowest(_Extreme):
    """The lowest value of the last ``n`` bars (default source: ``low``)."""

    _reduce = np.min

    def __init__(self, n: int, source: Indicator | str = "low") -> None:
        super().__init__(n, source)


class Previous(Indicator):
    """The source's value ``n`` bars earlier (NaN for the first n bars)."""

    def __init__(self, source: Indicator | str, n: int = 1) -> None:
        self.n = _window(n, "Previous")
        self.source = _source(source)
        self.lookback = self.n + self.source.lookback
        self.checked = type(self) is Previous and self.source.checked

    def compute(self, bars: Mapping[str, np.ndarray]) -> np.ndarray:
        x = self.source.compute(bars)
        out = np.full(len(x), np.nan)
        out[self.n:] = x[:-self.n]
        return out

    def __repr__(self) -> str:
        return f"Previous({self.source!r}, {self.n})"


class Cross(Indicator):
    """+1 where ``a`` crosses above ``b`` (``a[i-1] <= b[i-1] and a[i] > b[i]``), -1 where it
    crosses below (``a[i-1] >= b[i-1] and a[i] < b[i]``), else 0; 0 while either is undefined."""

    def __init__(self, a: Indicator | str, b: Indicator | str) -> None:
        self.a, self.b = _source(a), _source(b)
        self.lookback = 1 + max(self.a.lookback, self.b.lookback)
        self.checked = type(self) is Cross and self.a.checked and self.b.checked

    def compute(self, bars: Mapping[str, np.ndarray]) -> np.ndarray:
        a, b = self.a.compute(bars), self.b.compute(bars)
        out = np.zeros(len(a))
        if len(a) > 1:
            pa, pb, a, b = a[:-1], b[:-1], a[1:], b[1:]
            with np.errstate(invalid="ignore"):
                out[1:] = np.where((pa <= pb) & (a > b), 1.0,
                                   np.where((pa >= pb) & (a < b), -1.0, 0.0))
        return out

    def __repr__(self) -> str:
        return f"Cross({self.a!r}, {self.b!r})"


class Computed(Indicator):
    """An indicator from a function of one symbol's columns (as backtesting.py's ``self.I``):
    ``fn(bars) -> array`` of one float per bar, the value at bar i from bars
    ``i - lookback`` .. ``i`` only. Checked before each backtest's loop (see module doc)."""

    def __init__(self, fn: Callable[[Mapping[str, np.ndarray]], Any], lookback: int,
                 name: str | None = None) -> None:
        if not callable(fn):
            raise ConfigError(f"Computed needs a function (got {fn!r})", where="indicators",
                              fix="pass a function of the bar columns, e.g. "
                                  "Computed(lambda b: b['close'] * 2, lookback=0)")
        if not isinstance(lookback, int) or isinstance(lookback, bool) or lookback < 0:
            raise ConfigError(f"Computed lookback must be a whole number >= 0 (got {lookback!r})",
                              where="indicators",
                              fix="set lookback to how many earlier bars a value reads")
        self.fn, self.lookback = fn, lookback
        self.name = name or getattr(fn, "__name__", "fn")

    def compute(self, bars: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.fn(bars), dtype=np.float64)

    def __repr__(self) -> str:
        return f"Computed({self.name}, lookback={self.lookback})"


class IndicatorSet:
    """A strategy's declared indicators: whole series for a backtest, bar by bar live.

    ``row`` is the NamedTuple type of ``ctx.ind`` (one field per declared name).
    """

    def __init__(self, declared: Mapping[str, Indicator], owner: str = "strategy") -> None:
        where = f"{owner}.indicators"
        for name, ind in declared.items():
            if (not isinstance(name, str) or not name.isidentifier() or name.startswith("_")
                    or keyword.iskeyword(name)):
                raise ConfigError(f"indicator name {name!r} is not a plain identifier",
                                  where=where, fix="name indicators like attributes, e.g. "
                                                   "'fast' or 'atr_14'")
            if not isinstance(ind, Indicator):
                raise ConfigError(f"indicator {name!r} is {ind!r}, not an Indicator",
                                  where=f"{where}.{name}",
                                  fix="declare workbench.indicators objects (Sma, Cross, "
                                      "Computed(fn, lookback), ...)")
        self.names = list(declared)
        self.indicators = list(declared.values())
        self.where = where
        self.row: Any = NamedTuple(  # type: ignore[misc]
            "Indicators", [(name, float) for name in self.names])
        self.keep = 1 + max((i.lookback for i in self.indicators), default=0)
        self._tails: dict[str, dict[str, deque[float]]] = {}

    def __len__(self) -> int:
        return len(self.names)

    def series(self, bars: Mapping[str, np.ndarray], symbol: str = "") -> list[np.ndarray]:
        """Every declared indicator over one symbol's whole series (float64, one per bar)."""
        n = len(bars["close"])
        out = []
        for name, ind in zip(self.names, self.indicators, strict=True):
            values = self._compute(name, ind, bars, n)
            if not ind.checked:
                self._check(name, ind, bars, values, symbol)
            out.append(values)
        return out

    def update(self, symbol: str, bar: Any) -> tuple:
        """The row for ``bar``, the newest of its symbol (live: called once per bar)."""
        tails = self._tails.get(symbol)
        if tails is None:
            tails = self._tails[symbol] = {f: deque(maxlen=self.keep) for f in FIELDS}
        for f in FIELDS:
            tails[f].append(getattr(bar, f))
        cols = {f: np.fromiter(tails[f], np.float64, len(tails[f])) for f in FIELDS}
        n = len(cols["close"])
        return self.row(*(float(self._compute(name, ind, cols, n)[-1])
                          for name, ind in zip(self.names, self.indicators, strict=True)))

    def _compute(self, name: str, ind: Indicator, bars: Mapping[str, np.ndarray],
                 n: int) -> np.ndarray:
        try:
            values = ind.compute(bars)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"indicator {name!r} ({ind!r}) failed: "
                              f"{type(exc).__name__}: {exc}", where=f"{self.where}.{name}",
                              fix="fix the indicator's function; it gets a dict of float64 "
                                  "arrays (open, high, low, close, volume)") from exc
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (n,):
            raise ConfigError(f"indicator {name!r} ({ind!r}) returned shape {values.shape} "
                              f"for {n} bars", where=f"{self.where}.{name}",
                              fix="return exactly one value per bar (NaN where undefined)")
        return values

    def _check(self, name: str, ind: Indicator, bars: Mapping[str, np.ndarray],
               full: np.ndarray, symbol: str) -> None:
        """The value at some bars m must be what bars 0 .. m give (no look-ahead), and what
        bars ``m - lookback`` .. ``m`` alone give (the lookback a live run keeps).

        Look-ahead is checked at bars n // 2, 3n // 4, n - 1 and at the ends of the prefixes of
        1, 2, 4, ... bars (a statistic of the whole series that its first half already fixes
        still differs on a shorter prefix), about four computes over the series in all; the
        lookback also at ``_WINDOW_CHECKS`` evenly spaced bars, from their window alone, while
        those windows add up to at most about four computes over the series."""
        n = len(full)
        if not n:
            return  # no bar, no value to check
        lookback = ind.lookback
        ahead = {n - 1, n // 2, (3 * n) // 4, min(lookback, n - 1)}
        ahead |= {(1 << k) - 1 for k in range(1, n.bit_length() + 1) if (1 << k) - 1 < n}
        behind: set[int] = set()
        if (lookback + 1) * _WINDOW_CHECKS <= 4 * n:
            behind = {int(m) for m in np.linspace(0, n - 1, _WINDOW_CHECKS) if m > lookback}
        for m in sorted(ahead | behind):
            if m < 0:
                continue
            checks = [(max(0, m - lookback), f"bars older than its lookback={lookback}")]
            if m in ahead:
                checks.insert(0, (0, "later bars (look-ahead)"))
                if checks[1][0] == 0:
                    del checks[1]  # the same bars: the same compute
            for lo, reads in checks:
                part = {f: bars[f][lo:m + 1] for f in FIELDS}
                got = self._compute(name, ind, part, m + 1 - lo)[-1]
                if got == full[m] or (math.isnan(got) and math.isnan(full[m])):
                    continue
                raise ConfigError(
                    f"indicator {name!r} ({ind!r}) of {symbol or 'the series'} at bar {m} is "
                    f"{full[m]!r} over the whole series but {got!r} from bars {lo}..{m} "
                    f"alone: it reads {reads}",
                    where=f"{self.where}.{name}",
                    fix="make the value at bar i depend on bars i-lookback..i only (no "
                        "centred windows, negative shifts or whole-series statistics), and "
                        "set lookback to the oldest bar it reads")
