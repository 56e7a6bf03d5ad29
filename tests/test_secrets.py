"""Secrets never leave the process: which keys count as secret, masking, scrubbing, the provider.

Config-level behaviour (``to_dict`` masks, ``hash`` covers the real value, errors never quote a
secret) is here too; the whole run (manifest, warehouse, logs, report, CLI) is in
tests/e2e/test_secrets_cli.py.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pydantic
import pytest
from pydantic import SecretStr

from workbench import secrets
from workbench.config import Config, load_config, validate
from workbench.errors import ConfigError, StrategyError
from workbench.secrets import MASK, Secret, SecretsProvider, is_secret_key, redact, scrub


def unique() -> str:
    return f"sk-{uuid.uuid4().hex}"


# --- which keys are secret -------------------------------------------------------------------
@pytest.mark.parametrize("key", [
    "api_key", "apiKey", "APIKey", "API_KEY", "X-Api-Key", "apikey", "key", "keys", "secret",
    "api_secret", "apiSecret", "client_secret", "token", "access_token", "accessToken",
    "refresh_tokens", "password", "PASSWORD", "passwd", "db_pwd", "passphrase", "credentials",
    "private_key", "privateKey", "signing_key"])
def test_is_secret_key_secret_names_true(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", [
    "keep", "monkey", "keyboard", "hockey", "turkey", "fast", "slow", "qty", "fee_bps", "name",
    "symbols", "class", "seed", "timeframe", "initial_cash", "passenger", "tokenize_x", 3, None])
def test_is_secret_key_harmless_names_false(key: object) -> None:
    assert not is_secret_key(key)


# --- masking -----------------------------------------------------------------------------------
def test_redact_masks_secret_named_keys_at_any_depth_and_keeps_none() -> None:
    tree = {"a": {"b": [{"api_key": "v1", "x": 1}], "password": None},
            "client_secret": {"nested": "v2"}, "fast": 5}
    assert redact(tree) == {"a": {"b": [{"api_key": MASK, "x": 1}], "password": None},
                            "client_secret": MASK, "fast": 5}
    assert tree["a"]["b"][0]["api_key"] == "v1"  # a copy: the input is untouched


def test_redact_masks_secretstr_values_under_any_key() -> None:
    assert redact({"venue": {"whatever": SecretStr("v3")}}) == {"venue": {"whatever": MASK}}


def test_scrub_replaces_remembered_secret_values_in_free_text() -> None:
    value = unique()
    secrets.remember(value)
    assert scrub(f"login with {value} failed") == f"login with {MASK} failed"
    assert scrub("nothing here") == "nothing here"


def test_secret_type_dumps_mask_unless_revealed() -> None:
    class Venue(pydantic.BaseModel):
        api_key: Secret

    venue = Venue(api_key=SecretStr("v4-value"))
    assert venue.model_dump(mode="json") == {"api_key": MASK}
    assert venue.model_dump(mode="json", context={"reveal": True}) == {"api_key": "v4-value"}
    assert "v4-value" not in repr(venue)


# --- the config ----------------------------------------------------------------------------------
def test_config_to_dict_masks_secret_params_and_hash_covers_real_value() -> None:
    one, two = unique(), unique()
    a = load_config(None, [f"strategy.params.api_key={one}"], env={})
    b = load_config(None, [f"strategy.params.api_key={two}"], env={})
    assert a.to_dict()["strategy"]["params"]["api_key"] == MASK
    assert one not in json.dumps(a.to_dict())
    assert a.to_dict() == b.to_dict()
    assert a.hash() != b.hash()
    assert a.to_dict(reveal=True)["strategy"]["params"]["api_key"] == one


def test_config_env_secret_param_masked_in_to_dict() -> None:
    value = unique()
    cfg = load_config(None, env={"WB_STRATEGY__PARAMS__API_KEY": value})
    assert cfg.strategy.params["api_key"] == value  # the strategy gets the real value
    assert value not in json.dumps(cfg.to_dict())


def test_as_config_with_overrides_keeps_real_secret_values() -> None:
    from workbench.engine.run import as_config

    value = unique()
    cfg = load_config(None, [f"strategy.params.password={value}"], env={})
    again = as_config(cfg, ["run.name=again"], "WB_")
    assert again.strategy.params["password"] == value
    assert again.hash() == load_config(None, [f"strategy.params.password={value}",
                                              "run.name=again"], env={}).hash()


# --- errors never quote a secret -----------------------------------------------------------------
def test_validate_unknown_secret_named_key_error_omits_value() -> None:
    value = unique()
    with pytest.raises(ConfigError) as info:
        load_config(None, [f"costs.api_key={value}"], env={})
    assert "unknown key `costs.api_key`" in info.value.what
    assert value not in info.value.render()


def test_validate_bad_value_under_secret_key_masked_in_error() -> None:
    value = unique()
    with pytest.raises(ConfigError) as info:
        validate({"risk": {"max_order_notional": 5, "token": value}})
    assert value not in info.value.render()
    with pytest.raises(ConfigError) as info:  # a section named like a secret: value masked
        validate({"run": {"name": "x"}, "secret": {"x": value}})
    assert value not in info.value.render()


def test_load_config_set_origin_masks_a_value_holding_secret_keys() -> None:
    value = unique()
    with pytest.raises(ConfigError) as info:
        load_config(None, [f"run={{name: x, seed: oops, api_key: {value}}}"], env={})
    assert value not in info.value.render()
    assert f"--set run={MASK}" in info.value.render()


def test_load_config_malformed_set_of_secret_key_omits_value() -> None:
    value = unique()
    with pytest.raises(ConfigError) as info:
        load_config(None, [f"strategy.params.api key={value}"], env={})
    assert value not in info.value.render()


def test_strategy_params_badly_typed_secret_error_omits_value() -> None:
    from keyed_strategies import IntKeySma

    value = unique()
    with pytest.raises(ConfigError) as info:
        IntKeySma(api_key=value)
    assert "strategy.params.api_key" in info.value.render()
    assert value not in info.value.render()


def test_workbench_error_render_scrubs_remembered_secrets() -> None:
    value = unique()
    load_config(None, [f"strategy.params.api_key={value}"], env={})  # seen: remembered
    err = StrategyError(f"strategy raised: venue refused key {value}", fix="fix it")
    assert value not in err.render() and MASK in err.render()
    assert value not in str(err)


# --- writers ----------------------------------------------------------------------------------
def test_jsonl_log_masks_secret_context_keys_and_scrubs_remembered_values(tmp_path: Path) -> None:
    from workbench.telemetry.log import JsonlLog

    value, other = unique(), unique()
    secrets.remember(value)
    with JsonlLog(tmp_path / "logs.jsonl") as log:
        log.info("run", f"using {value}", api_key=other, detail={"text": f"x {value} y"})
    text = (tmp_path / "logs.jsonl").read_text()
    assert value not in text and other not in text
    record = json.loads(text)
    assert record["context"]["api_key"] == MASK


def test_manifest_write_masks_config_secrets(tmp_path: Path) -> None:
    from workbench import manifest as mf

    value = unique()
    cfg = load_config(None, [f"strategy.params.access_token={value}"], env={})
    mf.write(tmp_path / "m.json", {"config": cfg.to_dict(), "error": f"bad {value}",
                                   "config_hash": cfg.hash()})
    text = (tmp_path / "m.json").read_text()
    assert value not in text
    assert json.loads(text)["config_hash"] == cfg.hash()


# --- the provider ------------------------------------------------------------------------------
def test_secrets_provider_env_wins_over_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text("# venue\nBINANCE_API_KEY = from-file-123\nOTHER=x=y\n")
    path.chmod(0o600)
    provider = SecretsProvider(env={"WB_BINANCE_API_KEY": "from-env-456"}, path=path)
    key = provider.get("BINANCE_API_KEY")
    assert isinstance(key, SecretStr) and key.get_secret_value() == "from-env-456"
    from_file = SecretsProvider(env={}, path=path)
    assert from_file.get("BINANCE_API_KEY").get_secret_value() == "from-file-123"  # type: ignore[union-attr]
    assert from_file.get("OTHER").get_secret_value() == "x=y"  # type: ignore[union-attr]
    assert from_file.get("MISSING") is None
    assert scrub("from-file-123") == MASK  # remembered once read


def test_secrets_provider_file_readable_by_others_refused(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text("BINANCE_API_KEY=v5-secret\n")
    path.chmod(0o644)
    with pytest.raises(ConfigError) as info:
        SecretsProvider(env={}, path=path).get("BINANCE_API_KEY")
    assert "chmod 600" in info.value.render()
    assert "v5-secret" not in info.value.render()


def test_secrets_provider_missing_file_gives_none(tmp_path: Path) -> None:
    provider = SecretsProvider(env={"WB_SECRETS_FILE": str(tmp_path / "nope")})
    assert provider.get("X") is None


def test_secrets_provider_malformed_line_not_echoed(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text("just-a-bare-secret-value\n")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError) as info:
        SecretsProvider(env={}, path=path).get("X")
    assert "just-a-bare-secret-value" not in info.value.render()
    assert "line 1" in info.value.render()


def test_config_defaults_hold_no_secret() -> None:
    assert redact(Config().to_dict(reveal=True)) == Config().to_dict()


def test_validate_error_message_quoting_a_secret_value_is_scrubbed() -> None:
    value = unique()
    with pytest.raises(ConfigError) as info:  # the message quotes data.start; a secret sits
        validate({"data": {"start": value}, "strategy": {"params": {"api_key": value}}})
    assert "`data.start`" in info.value.render()
    assert value not in info.value.render()


def test_config_secretstr_in_strategy_params_masked_hashed_and_kept_on_rebuild() -> None:
    from workbench.engine.run import as_config

    one, two = unique(), unique()
    a = validate({"strategy": {"params": {"venue": SecretStr(one)}}})
    b = validate({"strategy": {"params": {"venue": SecretStr(two)}}})
    assert a.to_dict()["strategy"]["params"]["venue"] == MASK
    assert a.to_dict() == b.to_dict() and a.hash() != b.hash()
    assert as_config(a, ["run.name=x"], "WB_").strategy.params["venue"] == one
    assert one not in scrub(f"text {one}")  # remembered when validated


def _secret_fields(model: type[pydantic.BaseModel], path: str = "") -> list[tuple[str, Any]]:
    import typing

    found = []
    for name, field in model.model_fields.items():
        # (annotation, the metadata of the Annotated[...] directly around it)
        stack: list[tuple[Any, tuple[Any, ...]]] = [(field.annotation, tuple(field.metadata))]
        while stack:
            ann, metadata = stack.pop()
            if isinstance(ann, type) and issubclass(ann, pydantic.BaseModel):
                found += _secret_fields(ann, f"{path}{name}.")
            elif ann is SecretStr:
                found.append((f"{path}{name}", metadata))
            elif typing.get_origin(ann) is typing.Annotated:
                stack.append((typing.get_args(ann)[0], tuple(ann.__metadata__)))
            else:
                stack.extend((arg, ()) for arg in typing.get_args(ann))
    return found


def test_config_secretstr_fields_use_the_secret_type_so_the_hash_covers_them() -> None:
    """A config field typed plain SecretStr would dump as '**********' even for the hash: every
    secret field of the config must be ``workbench.secrets.Secret``."""
    fields = _secret_fields(Config)
    assert "venue.api_key" in dict(fields)  # optional ones (Secret | None) are found too
    for dotted, metadata in fields:
        assert any(isinstance(m, pydantic.PlainSerializer) for m in metadata), dotted
