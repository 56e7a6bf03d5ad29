"""MarketDataProvider (``RestKlineFeed`` over the venue): history in order, in UTC minutes,
closed bars only, gaps named never invented; live bars strictly increasing, their lag known."""

from __future__ import annotations

import itertools
from typing import Any

from workbench.contract.adapters import MIN, SYMBOL, T0
from workbench.contract.runner import Skip, check, expect
from workbench.model import ms_to_iso


@check("market_data.history_chronological_utc")
def history_chronological_utc(a: Any) -> str:
    """History comes oldest first, strictly increasing, on UTC minute boundaries, closed."""
    rig = a.rig()
    now = rig.venue.now_ms()
    bars, _ = rig.feed.closed_bars(None, now)
    expect(bars, f"the venue served no {SYMBOL} history at {ms_to_iso(now)}")
    ts = [b.ts for b in bars]
    bad = next((i for i in range(1, len(ts)) if ts[i] <= ts[i - 1]), None)
    expect(bad is None, f"bar {bad} ({ms_to_iso(ts[bad or 0])}) is not after the one before it")
    off = [t for t in ts if t % MIN]
    expect(not off, f"open times off the UTC minute: {[ms_to_iso(t) for t in off[:3]]}")
    forming = [t for t in ts if t + MIN > now]
    expect(not forming, "a bar still forming was served: "
                        f"{ms_to_iso(forming[0]) if forming else ''}")
    expect(all(b.symbol == SYMBOL for b in bars), "bars of another symbol were served")
    last = rig.feed.warmup(3, now)
    expect([b.ts for b in last] == ts[-3:], f"warmup(3) gave {[b.ts for b in last]}, not the "
                                            f"last three closed bars {ts[-3:]}")
    return f"{len(bars)} bars {ms_to_iso(ts[0])} .. {ms_to_iso(ts[-1])}"


@check("market_data.history_gaps_surfaced")
def history_gaps_surfaced(a: Any) -> str:
    """Minutes the venue does not have come back as a Gap, and no bar is invented for them."""
    if not a.faults:
        raise Skip("needs a venue gap injected (fake-binance's klines:drop); a real venue's "
                   "gaps cannot be made on demand")
    first, last = T0 + 3 * MIN, T0 + 4 * MIN
    rig = a.rig(faults=f"klines:drop={first}..{last}")
    bars, gaps = rig.feed.closed_bars(None, rig.venue.now_ms())
    invented = [b.ts for b in bars if first <= b.ts <= last]
    expect(not invented, f"bars were served for dropped minutes: {invented}")
    expect(len(gaps) == 1 and (gaps[0].first_ts, gaps[0].count) == (first, 2),
           f"expected one gap of 2 bars from {ms_to_iso(first)}, got "
           f"{[str(g) for g in gaps]}")
    return str(gaps[0])


@check("market_data.live_bars_strictly_increasing")
def live_bars_strictly_increasing(a: Any) -> str:
    """Polling as time passes yields each closed bar once, in order; a missed minute is
    back-filled, never repeated."""
    if not a.steps_time:
        raise Skip("needs venue time stepped (a real venue's minute cannot be hurried)")
    rig = a.rig()
    seen = [b.ts for b in rig.bars]
    for minutes in (1, 1, 3):
        new = rig.advance(minutes)
        expect(len(new) == minutes, f"after {minutes} venue minute(s) {len(new)} new bars came")
        seen += [b.ts for b in new]
        again, _ = rig.feed.closed_bars(seen[-1], rig.venue.now_ms())
        expect(not again, f"a second poll at the same time repeated {len(again)} bar(s)")
    expect(all(y - x == MIN for x, y in itertools.pairwise(seen)),
           "live bars are not strictly increasing one minute apart")
    return f"{len(seen)} bars, each once"


@check("market_data.live_lag_reported")
def live_lag_reported(a: Any) -> str:
    """Each live bar's lag (venue time minus its close) is known and >= 0: under a minute when
    polled every minute, a minute or more for bars back-filled after a missed poll."""
    rig = a.rig()
    if not a.steps_time:
        now = rig.venue.now_ms()
        bars = rig.feed.warmup(1, now)
        expect(bars, "the venue served no closed bar")
        lag = now - (bars[-1].ts + MIN)
        expect(0 <= lag < 2 * MIN, f"the last closed bar lags {lag} ms (expected 0..2 min)")
        return f"lag {lag} ms"
    new = rig.advance(1)
    lag = rig.venue.now_ms() - (new[-1].ts + MIN)
    expect(0 <= lag < MIN, f"a bar polled on time lags {lag} ms (expected under a minute)")
    late = rig.advance(3)
    lags = [rig.venue.now_ms() - (b.ts + MIN) for b in late]
    expect(all(x >= 0 for x in lags) and lags[0] >= MIN and lags[-1] < MIN,
           f"back-filled bars' lags {lags}: the oldest should be a minute or more, the newest "
           "under a minute")
    return f"lags (ms) {lags}"
