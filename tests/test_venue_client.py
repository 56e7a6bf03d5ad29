"""The venue call policy, driven through the real python-binance client against the fake
exchange on 127.0.0.1. Waits are recorded, not slept: nothing here depends on wall time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from venue_bars import MIN, T0, write_bars

from workbench.venue_client import RetryPolicy, VenueClient, VenueRejected, VenueUnavailable
from workbench.venues.bar_book import BarBook
from workbench.venues.fake_binance import FakeBinance
from workbench.venues.venue_clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0 + 30 * MIN)


@pytest.fixture
def venue(tmp_path: Path, clock: ManualClock) -> Iterator[FakeBinance]:
    book = BarBook.from_file(write_bars(tmp_path / "bars.csv", 3000, missing=(7, 8)), "BTCUSDT")
    with FakeBinance(book, clock=clock) as fx:
        yield fx


class Recorder:
    """A fake sleep and monotonic clock: waits are recorded and advance the time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def client(venue: FakeBinance, rec: Recorder, **kw: object) -> VenueClient:
    return VenueClient(venue.url, sleep=rec.sleep, monotonic=rec.monotonic,
                       policy=RetryPolicy(attempts=4), **kw)  # type: ignore[arg-type]


def test_venue_client_sync_time_sets_the_offset_from_the_venue_clock(
        venue: FakeBinance, clock: ManualClock) -> None:
    vc = VenueClient(venue.url, wall_ms=lambda: T0)
    assert vc.sync_time() == T0 + 30 * MIN
    assert vc.client.timestamp_offset == 30 * MIN
    assert vc.now_ms() == T0 + 30 * MIN


def test_venue_client_429_waits_at_least_retry_after_then_succeeds(venue: FakeBinance) -> None:
    rec = Recorder()
    vc = client(venue, rec)
    venue.inject("time:429=3@1")
    assert vc.call("time", vc.client.get_server_time)["serverTime"] == T0 + 30 * MIN
    assert len(rec.waits) == 1 and rec.waits[0] >= 3.0
    assert [e.kind for e in vc.events] == ["throttled"] and vc.errors == 1


def test_venue_client_5xx_retried_with_growing_jittered_backoff(venue: FakeBinance) -> None:
    rec = Recorder()
    vc = client(venue, rec)
    venue.inject("time:503@1x3")
    vc.call("time", vc.client.get_server_time)
    assert [e.kind for e in vc.events] == ["server"] * 3
    assert rec.waits[0] < rec.waits[1] < rec.waits[2]
    assert 0.25 <= rec.waits[0] <= 0.375  # base, plus at most 50 % jitter


def test_venue_client_418_ban_stops_all_traffic_until_it_ends(venue: FakeBinance) -> None:
    rec = Recorder()
    vc = client(venue, rec)
    venue.inject("klines:418=7@1")
    vc.call("klines", vc.client.get_klines, symbol="BTCUSDT", interval="1m", limit=5)
    assert [e.kind for e in vc.events] == ["banned"]
    assert rec.waits == [7.0]  # the next request left only once the ban was over
    calls_before = vc.calls
    vc.call("time", vc.client.get_server_time)
    assert vc.calls == calls_before + 1 and rec.waits == [7.0]


def test_venue_client_terminal_error_raised_at_once_with_a_fix(venue: FakeBinance) -> None:
    rec = Recorder()
    vc = client(venue, rec)
    with pytest.raises(VenueRejected) as raised:
        vc.call("klines", vc.client.get_klines, symbol="NOPEUSDT", interval="1m")
    assert "-1121" in raised.value.what and "data.symbols" in (raised.value.fix or "")
    assert rec.waits == [] and vc.calls == 1


def test_venue_client_repeated_failures_give_up_with_venue_unavailable(
        venue: FakeBinance) -> None:
    rec = Recorder()
    vc = client(venue, rec)
    venue.inject("time:500x10")
    with pytest.raises(VenueUnavailable) as raised:
        vc.call("time", vc.client.get_server_time)
    assert "failed 4 times in a row" in raised.value.what
    assert vc.calls == 4 and len(rec.waits) == 3  # no wait after the last attempt


def test_venue_client_read_timeout_is_retried(venue: FakeBinance) -> None:
    rec = Recorder()
    vc = VenueClient(venue.url, timeout_s=0.3, sleep=rec.sleep, monotonic=rec.monotonic,
                     policy=RetryPolicy(attempts=3))
    venue.inject("time:timeout=2s@1")
    vc.call("time", vc.client.get_server_time)
    assert [e.kind for e in vc.events] == ["timeout"]


def test_venue_client_timestamp_outside_recv_window_resyncs_and_retries(
        venue: FakeBinance) -> None:
    rec = Recorder()
    vc = VenueClient(venue.url, api_key="fake-api-key", api_secret="fake-api-secret",
                     sleep=rec.sleep, monotonic=rec.monotonic)
    # never synced: python-binance signs with this machine's clock, years from the venue's
    account = vc.call("account", vc.client.get_account)
    assert "balances" in account
    assert [e.kind for e in vc.events] == ["clock"]
    assert abs(vc.now_ms() - (T0 + 30 * MIN)) < 60_000


def test_venue_client_unreachable_base_url_gives_up_naming_the_url() -> None:
    rec = Recorder()
    vc = VenueClient("http://127.0.0.1:9", timeout_s=0.5, sleep=rec.sleep,
                     monotonic=rec.monotonic, policy=RetryPolicy(attempts=2))
    with pytest.raises(VenueUnavailable) as raised:
        vc.sync_time()
    assert raised.value.where == "http://127.0.0.1:9"
    assert [e.kind for e in vc.events] == ["network", "network"]


def test_venue_client_base_url_not_http_is_refused() -> None:
    with pytest.raises(VenueRejected, match="not an http"):
        VenueClient("127.0.0.1:8765")


def test_venue_client_near_the_minutes_weight_waits_for_the_next_minute_not_a_429(
        tmp_path: Path, clock: ManualClock) -> None:
    wall = ManualClock(1_800_000_030_000)  # half a minute in
    rec = Recorder()

    def sleep(seconds: float) -> None:
        rec.sleep(seconds)
        wall.advance(int(seconds * 1000))

    book = BarBook.from_file(write_bars(tmp_path / "bars.csv", 100), "BTCUSDT")
    with FakeBinance(book, clock=clock, weight_limit=100, wall_ms=wall.now_ms) as fx:
        vc = VenueClient(fx.url, sleep=sleep, monotonic=rec.monotonic, wall_ms=wall.now_ms,
                         policy=RetryPolicy(attempts=2))
        vc.set_limits(vc.call("exchangeInfo", vc.client.get_exchange_info))  # weight 20
        assert vc.weight_limit == 100
        for _ in range(36):  # klines weigh 2: 20 + 72 = 92 passes 90 % of 100 ...
            vc.call("klines", vc.client.get_klines, symbol="BTCUSDT", interval="1m", limit=1)
        assert rec.waits == [30.0]  # ... so the call after it waited for the next minute
        assert [e.kind for e in vc.events] == ["weight"] and vc.used_weight == 2
    assert all(e.kind != "throttled" for e in vc.events)  # never a 429
