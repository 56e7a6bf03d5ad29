"""Closed bars from REST klines against the fake exchange: never a forming bar, back-filled
across pages, venue gaps named and never invented, warm-up bars before the first decision."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from venue_bars import MIN, T0, write_bars

from workbench.errors import DataError
from workbench.feeds.binance_rest import RestKlineFeed
from workbench.venue_client import VenueClient
from workbench.venues.bar_book import BarBook
from workbench.venues.fake_binance import FakeBinance
from workbench.venues.venue_clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0 + 2500 * MIN + 30_000)  # half way through the bar of minute 2500


@pytest.fixture
def feed(tmp_path: Path, clock: ManualClock) -> Iterator[RestKlineFeed]:
    book = BarBook.from_file(write_bars(tmp_path / "bars.csv", 3000, missing=(7, 8, 1500)),
                             "BTCUSDT")
    with FakeBinance(book, clock=clock) as fx:
        yield RestKlineFeed(VenueClient(fx.url), "BTCUSDT")


def test_feed_closed_bars_back_fill_across_pages_up_to_the_last_closed_bar(
        feed: RestKlineFeed, clock: ManualClock) -> None:
    bars, gaps = feed.closed_bars(T0 - MIN, clock.now_ms())
    assert bars[0].ts == T0 and bars[-1].ts == T0 + 2499 * MIN  # 2500 is still forming
    assert len(bars) == 2500 - 3  # three minutes the venue does not have
    assert [(g.first_ts, g.count) for g in gaps] == [(T0 + 7 * MIN, 2), (T0 + 1500 * MIN, 1)]
    assert all(b.symbol == "BTCUSDT" and isinstance(b.close, float) for b in bars)
    assert bars[1].open == 42_001.0 and bars[1].close == 42_002.0


def test_feed_closed_bars_after_a_bar_returns_only_newer_ones(
        feed: RestKlineFeed, clock: ManualClock) -> None:
    bars, gaps = feed.closed_bars(T0 + 2490 * MIN, clock.now_ms())
    assert [b.ts for b in bars] == [T0 + m * MIN for m in range(2491, 2500)]
    assert gaps == []
    clock.advance(MIN)  # minute 2500 closes
    bars, _ = feed.closed_bars(T0 + 2499 * MIN, clock.now_ms())
    assert [b.ts for b in bars] == [T0 + 2500 * MIN]


def test_feed_nothing_new_before_the_next_close(feed: RestKlineFeed, clock: ManualClock) -> None:
    assert feed.closed_bars(T0 + 2499 * MIN, clock.now_ms()) == ([], [])


def test_feed_gap_right_after_the_last_seen_bar_is_named(
        feed: RestKlineFeed, clock: ManualClock) -> None:
    bars, gaps = feed.closed_bars(T0 + 6 * MIN, clock.now_ms(), limit=3)
    assert [b.ts for b in bars] == [T0 + 9 * MIN, T0 + 10 * MIN, T0 + 11 * MIN]
    assert [str(g) for g in gaps] == ["BTCUSDT: 2 missing bar(s) from 2024-01-01T00:07:00.000Z"]


def test_feed_warmup_is_the_last_closed_bars(feed: RestKlineFeed, clock: ManualClock) -> None:
    bars = feed.warmup(100, clock.now_ms())
    assert len(bars) == 100 and bars[-1].ts == T0 + 2499 * MIN
    assert feed.warmup(0, clock.now_ms()) == []


def test_feed_interval_the_venue_lacks_is_refused() -> None:
    with pytest.raises(DataError, match="no kline interval"):
        RestKlineFeed(VenueClient("http://127.0.0.1:9"), "BTCUSDT", timeframe_ms=7 * MIN)
