"""The venue and live sections of the config: defaults, bounds, and credentials as secrets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workbench.config import load_config, with_venue_credentials
from workbench.errors import ConfigError
from workbench.secrets import MASK, SecretsProvider

KEY, SECRET = "k3y-0123456789abcdef", "s3cr3t-fedcba9876543210"


def test_config_venue_and_live_defaults() -> None:
    cfg = load_config(None, env={})
    assert cfg.venue.base_url == "https://api.binance.com"
    assert cfg.venue.recv_window_ms == 5000 and cfg.venue.api_key is None
    assert (cfg.live.warmup_bars, cfg.live.snapshot_every_bars, cfg.live.gap_tolerance_bars) \
        == (100, 60, 1)


def test_config_venue_credentials_from_env_are_secrets_masked_and_hashed() -> None:
    env = {"WB_VENUE__API_KEY": KEY, "WB_VENUE__API_SECRET": SECRET}
    cfg = load_config(None, ["venue.base_url=http://127.0.0.1:8765/"], env=env)
    assert cfg.venue.base_url == "http://127.0.0.1:8765"
    assert cfg.venue.api_key is not None and cfg.venue.api_key.get_secret_value() == KEY
    written = cfg.to_dict()["venue"]
    assert written["api_key"] == MASK and written["api_secret"] == MASK
    assert KEY not in str(cfg.to_dict()) and SECRET not in repr(cfg)
    other = load_config(None, ["venue.base_url=http://127.0.0.1:8765/"],
                        env={**env, "WB_VENUE__API_KEY": KEY + "x"})
    assert other.hash() != cfg.hash()


def test_config_venue_credentials_from_a_0600_secrets_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text(f"# venue\nVENUE__API_KEY={KEY}\nVENUE__API_SECRET={SECRET}\n")
    os.chmod(path, 0o600)
    cfg = with_venue_credentials(load_config(None, env={}), SecretsProvider(env={}, path=path))
    assert cfg.venue.api_key is not None and cfg.venue.api_key.get_secret_value() == KEY
    assert cfg.to_dict()["venue"]["api_secret"] == MASK


def test_config_venue_secrets_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text(f"VENUE__API_KEY={KEY}\n")
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="readable by others") as raised:
        with_venue_credentials(load_config(None, env={}), SecretsProvider(env={}, path=path))
    assert raised.value.fix == f"chmod 600 {path}"
    assert KEY not in raised.value.render()


def test_config_venue_env_wins_over_the_secrets_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text(f"VENUE__API_KEY={KEY}file\n")
    os.chmod(path, 0o600)
    cfg = with_venue_credentials(load_config(None, env={}), SecretsProvider(
        env={"WB_VENUE__API_KEY": KEY}, path=path))
    assert cfg.venue.api_key is not None and cfg.venue.api_key.get_secret_value() == KEY


@pytest.mark.parametrize(("override", "key"), [
    ("venue.base_url=ftp://example.org", "venue.base_url"),
    ("venue.base_url=http://127.0.0.1:8765/\x1b[2J", "venue.base_url"),
    ("venue.recv_window_ms=60001", "venue.recv_window_ms"),
    ("venue.timeout_s=.inf", "venue.timeout_s"),
    ("venue.name=kraken", "venue.name"),
    ("live.warmup_bars=-1", "live.warmup_bars"),
    ("live.snapshot_every_bars=0", "live.snapshot_every_bars"),
])
def test_config_venue_and_live_bad_values_name_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(None, [override], env={})
    assert key in raised.value.render()


def test_config_venue_badly_typed_secret_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(None, ["venue.api_key=[1, 2]"], env={})
    assert "venue.api_key" in raised.value.render() and "[1, 2]" not in raised.value.render()
