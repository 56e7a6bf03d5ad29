"""The layered run config: defaults < YAML < environment (WB_*, ``__`` nesting) < --set.

Every error is a ConfigError naming the key, the layer that set it, and a fix.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from workbench.config import Config, load_config, parse_when, timeframe_ms
from workbench.errors import ConfigError

YAML = """\
run: {name: layered, seed: 3}
data: {symbols: [BTCUSDT], timeframe: 1m, gaps: fail}
strategy:
  class: "workbench.strategies.sma_cross:SmaCross"
  params: {fast: 5, slow: 20, qty: 0.1}
portfolio: {initial_cash: 5000, quote: USDT}
costs: {fee_bps: 10, slippage_bps: 4, spread_bps: 1}
"""


@pytest.fixture
def yaml_file(tmp_path: Path) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(YAML, encoding="utf-8")
    return path


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- layers and precedence --------------------------------------------------------------------
def test_load_config_nothing_given_returns_defaults() -> None:
    cfg = load_config(None, env={})
    assert cfg == Config()
    assert cfg.data.gaps == "fail"
    assert cfg.strategy.class_path == "workbench.strategies.sma_cross:SmaCross"
    assert cfg.costs.fee_bps == 10.0


def test_load_config_yaml_overrides_defaults_and_keeps_unset_defaults(yaml_file: Path) -> None:
    cfg = load_config(yaml_file, env={})
    assert cfg.run.name == "layered"
    assert cfg.portfolio.initial_cash == 5000.0
    assert cfg.costs.slippage_bps == 4.0
    assert cfg.costs.min_notional == 0.0  # not in the file: the default
    assert cfg.costs.fill_at == "close"


def test_load_config_env_overrides_yaml(yaml_file: Path) -> None:
    cfg = load_config(yaml_file, env={"WB_COSTS__FEE_BPS": "7"})
    assert cfg.costs.fee_bps == 7.0
    assert cfg.costs.slippage_bps == 4.0


def test_load_config_set_overrides_env(yaml_file: Path) -> None:
    cfg = load_config(yaml_file, ["costs.fee_bps=2"], env={"WB_COSTS__FEE_BPS": "7"})
    assert cfg.costs.fee_bps == 2.0


def test_load_config_four_layers_each_key_takes_its_highest_layer(yaml_file: Path) -> None:
    env = {"WB_COSTS__FEE_BPS": "7", "WB_COSTS__SLIPPAGE_BPS": "3"}
    cfg = load_config(yaml_file, ["costs.fee_bps=2"], env=env)
    assert cfg.costs.fee_bps == 2.0        # YAML 10 < env 7 < --set 2
    assert cfg.costs.slippage_bps == 3.0   # YAML 4 < env 3
    assert cfg.costs.spread_bps == 1.0     # YAML only
    assert cfg.costs.min_notional == 0.0   # default only


def test_load_config_later_set_wins_over_earlier_set() -> None:
    cfg = load_config(None, ["costs.fee_bps=1", "costs.fee_bps=4"], env={})
    assert cfg.costs.fee_bps == 4.0


def test_load_config_env_prefix_reads_only_that_prefix(yaml_file: Path) -> None:
    env = {"XY_COSTS__FEE_BPS": "6", "WB_COSTS__FEE_BPS": "9"}
    assert load_config(yaml_file, env=env, env_prefix="XY_").costs.fee_bps == 6.0
    assert load_config(yaml_file, env=env).costs.fee_bps == 9.0


def test_load_config_env_double_underscore_nests_into_strategy_params(yaml_file: Path) -> None:
    cfg = load_config(yaml_file, env={"WB_STRATEGY__PARAMS__FAST": "8"})
    assert cfg.strategy.params == {"fast": 8, "slow": 20, "qty": 0.1}


def test_load_config_env_value_read_as_yaml_list() -> None:
    cfg = load_config(None, env={"WB_DATA__SYMBOLS": "[BTCUSDT, ETHUSDT]"})
    assert cfg.data.symbols == ["BTCUSDT", "ETHUSDT"]


def test_load_config_env_global_and_foreign_prefixed_variables_ignored() -> None:
    env = {"WB_WAREHOUSE": "x.duckdb", "WB_DEBUG": "1", "WB_API_TOKEN": "secret"}
    assert load_config(None, env=env) == Config()


def test_load_config_set_nested_param_merges_with_yaml_params(yaml_file: Path) -> None:
    cfg = load_config(yaml_file, ["strategy.params.fast=3"], env={})
    assert cfg.strategy.params == {"fast": 3, "slow": 20, "qty": 0.1}


def test_load_config_set_value_read_as_yaml_scalar() -> None:
    cfg = load_config(None, ["costs.enabled=false", "run.seed=42", "data.symbols=[ETHUSDT]"],
                      env={})
    assert cfg.costs.enabled is False
    assert cfg.run.seed == 42
    assert cfg.data.symbols == ["ETHUSDT"]


def test_load_config_strategy_class_key_sets_class_path() -> None:
    cfg = load_config(None, ["strategy.class=workbench.strategies.pullback_limit:PullbackLimit"],
                      env={})
    assert cfg.strategy.class_path == "workbench.strategies.pullback_limit:PullbackLimit"
    assert cfg.to_dict()["strategy"]["class"] == cfg.strategy.class_path


def test_config_hash_equal_configs_equal_hash_changed_value_new_hash(yaml_file: Path) -> None:
    a = load_config(yaml_file, env={})
    b = load_config(yaml_file, env={})
    c = load_config(yaml_file, ["costs.fee_bps=11"], env={})
    assert a.hash() == b.hash()
    assert len(a.hash()) == 64
    assert a.hash() != c.hash()


# --- errors: what, where (key and layer), how to fix --------------------------------------------
def test_load_config_missing_file_names_path_and_example_configs(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing, env={})
    assert str(missing) in info.value.what
    assert "not found" in info.value.what
    assert "configs/" in (info.value.fix or "")
    assert info.value.exit_code == 2


def test_load_config_unknown_yaml_key_names_key_file_and_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path, "costs: {fee_bsp: 5}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    err = info.value
    assert "unknown key `costs.fee_bsp`" in err.what
    assert err.where == str(path)
    assert "did you mean `fee_bps`" in (err.fix or "")


def test_load_config_unknown_section_lists_known_sections(tmp_path: Path) -> None:
    path = write(tmp_path, "cost: {fee_bps: 5}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert "`cost`" in info.value.what
    assert "did you mean `costs`" in (info.value.fix or "")
    assert "portfolio" in (info.value.fix or "")


def test_load_config_unknown_key_from_set_names_set_layer() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["portfolio.intial_cash=5"], env={})
    assert info.value.where == "--set portfolio.intial_cash=5"
    assert "did you mean `initial_cash`" in (info.value.fix or "")


def test_load_config_unknown_key_from_env_names_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"WB_COSTS__FEE_BSP": "5"})
    assert info.value.where == "env WB_COSTS__FEE_BSP"
    assert "costs.fee_bsp" in info.value.what


def test_load_config_env_misspelled_section_did_you_mean() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"WB_COSTZ__FEE_BPS": "5"})
    assert "WB_COSTZ__FEE_BPS" in info.value.what
    assert "WB_COSTS__" in (info.value.fix or "")


@pytest.mark.parametrize(
    ("layer", "expected_where"),
    [("yaml", None), ("env", "env WB_COSTS__FEE_BPS"), ("set", "--set costs.fee_bps=abc")],
)
def test_load_config_wrong_type_names_key_and_the_layer_that_set_it(
        tmp_path: Path, layer: str, expected_where: str | None) -> None:
    path = write(tmp_path, "costs: {fee_bps: abc}\n" if layer == "yaml" else "costs: {}\n")
    env = {"WB_COSTS__FEE_BPS": "abc"} if layer == "env" else {}
    overrides = ["costs.fee_bps=abc"] if layer == "set" else []
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides, env=env)
    err = info.value
    assert "`costs.fee_bps`" in err.what
    assert "'abc'" in err.what
    assert err.where == (expected_where or str(path))
    assert "set `costs.fee_bps` to a valid value" in (err.fix or "")


def test_load_config_set_overriding_bad_yaml_value_fixes_it(tmp_path: Path) -> None:
    path = write(tmp_path, "costs: {fee_bps: abc}\n")
    assert load_config(path, ["costs.fee_bps=3"], env={}).costs.fee_bps == 3.0


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("costs.fee_bps=-1", "costs.fee_bps"),
        ("portfolio.initial_cash=0", "portfolio.initial_cash"),
        ("data.gaps=skip", "data.gaps"),
        ("costs.fill_at=open", "costs.fill_at"),
        ("data.timeframe=90s", "data.timeframe"),
        ("data.symbols=[btcusdt]", "data.symbols"),
        ("data.symbols=[BTCUSDT, BTCUSDT]", "data.symbols"),
        ("data.symbols=[]", "data.symbols"),
        ("strategy.class=sma_cross.SmaCross", "strategy.class"),
        ("run.seed=1.5", "run.seed"),
    ],
)
def test_load_config_invalid_value_refused_naming_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, [override], env={})
    assert f"`{key}`" in info.value.what
    assert info.value.where == f"--set {override}"


def test_load_config_invalid_yaml_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "run:\n  name: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert "invalid YAML" in info.value.what
    assert str(path) in (info.value.where or "")
    assert "line" in (info.value.where or "")


def test_load_config_top_level_list_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "- run\n- data\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert "not a mapping" in info.value.what


def test_load_config_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), env={}) == Config()


@pytest.mark.parametrize("item", ["costs.fee_bps", "=5", "costs..fee_bps=5", "1x=2"])
def test_load_config_malformed_set_refused_with_example(item: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, [item], env={})
    assert repr(item) in info.value.what
    assert "--set costs.fee_bps=5" in (info.value.fix or "")


def test_load_config_set_inside_a_scalar_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "costs: 5\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, ["costs.fee_bps=1"], env={})
    assert "costs" in info.value.what
    assert "not a section" in info.value.what


# --- helpers -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2024-01-01", 1_704_067_200_000),
        ("2024-01-01T01:00", 1_704_070_800_000),
        ("2024-01-01T01:00:00Z", 1_704_070_800_000),
        ("2024-01-01T03:00:00+02:00", 1_704_070_800_000),
    ],
)
def test_parse_when_naive_is_utc_and_offsets_are_honoured(text: str, ms: int) -> None:
    assert parse_when(text) == ms


def test_parse_when_date_and_datetime_objects() -> None:
    assert parse_when(date(2024, 1, 1)) == 1_704_067_200_000
    assert parse_when(datetime(2024, 1, 1, 1, tzinfo=UTC)) == 1_704_070_800_000
    assert parse_when(None) is None


def test_parse_when_garbage_raises_config_error_naming_the_flag() -> None:
    with pytest.raises(ConfigError) as info:
        parse_when("yesterday", "--from")
    assert "--from 'yesterday'" in info.value.what
    assert "2024-01-31" in (info.value.fix or "")


@pytest.mark.parametrize(("tf", "ms"), [("1m", 60_000), ("5m", 300_000), ("1h", 3_600_000),
                                        ("4h", 14_400_000), ("1d", 86_400_000)])
def test_timeframe_ms_whole_units(tf: str, ms: int) -> None:
    assert timeframe_ms(tf) == ms


@pytest.mark.parametrize("tf", ["0m", "90s", "1w", "m", "1.5h", ""])
def test_timeframe_ms_invalid_raises_value_error_with_examples(tf: str) -> None:
    with pytest.raises(ValueError, match="examples"):
        timeframe_ms(tf)


# --- hostile input: every layer is bounded, every number finite and sane ----------------------
BOMB_FLOW = "[" + ", ".join(
    ["&a [l,l,l,l,l,l,l,l,l]"] + [f"&{n} [{','.join([f'*{p}'] * 9)}]"
                                  for p, n in zip("abcdefgh", "bcdefghi", strict=True)]) + "]"


def billion_laughs_file() -> str:
    """The classic: 9 levels of 9 aliases, 387 million strings once expanded, < 1 kB."""
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    return "strategy:\n  params:\n" + "".join(f"    {line}\n" for line in lines)


def test_load_config_yaml_alias_bomb_in_file_refused(tmp_path: Path) -> None:
    text = billion_laughs_file()
    assert len(text) < 1000
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    assert "aliases" in info.value.what and "refused" in info.value.what
    assert info.value.where == str(tmp_path / "c.yaml")
    assert info.value.fix


def test_load_config_alias_bomb_in_set_value_refused() -> None:
    assert len(BOMB_FLOW) < 400
    with pytest.raises(ConfigError) as info:
        load_config(None, [f"strategy.params.x={BOMB_FLOW}"], env={})
    assert "aliases" in info.value.what
    assert info.value.where == "--set strategy.params.x"


def test_load_config_alias_bomb_in_env_value_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"WB_STRATEGY__PARAMS__X": BOMB_FLOW})
    assert "aliases" in info.value.what
    assert info.value.where == "env WB_STRATEGY__PARAMS__X"


def test_load_config_few_aliases_still_allowed(tmp_path: Path) -> None:
    text = ("data: {symbols: &syms [BTCUSDT, ETHUSDT]}\n"
            "risk: {allowed_symbols: *syms, position_limits: {BTCUSDT: &lim {max_qty: 1},"
            " ETHUSDT: *lim}}\n")
    cfg = load_config(write(tmp_path, text), env={})
    assert cfg.risk.allowed_symbols == ["BTCUSDT", "ETHUSDT"]
    assert cfg.risk.position_limits is not None
    assert cfg.risk.position_limits["ETHUSDT"].max_qty == 1.0
    cfg = load_config(None, ["data.symbols=[&s BTCUSDT, ETHUSDT]"], env={})
    assert cfg.data.symbols == ["BTCUSDT", "ETHUSDT"]


def test_load_config_recursive_alias_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["strategy.params.x=&a [*a]"], env={})
    assert "refers to itself" in info.value.what


@pytest.mark.parametrize("layer", ["file", "set", "env"])
def test_load_config_yaml_nested_50000_deep_refused_not_recursion_error(
        tmp_path: Path, layer: str) -> None:
    deep = "[" * 50_000 + "]" * 50_000
    with pytest.raises(ConfigError) as info:
        if layer == "file":
            load_config(write(tmp_path, f"strategy: {{params: {{x: {deep}}}}}\n"), env={})
        elif layer == "set":
            load_config(None, [f"strategy.params.x={deep}"], env={})
        else:
            load_config(None, env={"WB_STRATEGY__PARAMS__X": deep})
    assert "nests deeper than" in info.value.what


def test_load_config_deep_block_mapping_file_refused(tmp_path: Path) -> None:
    text = "strategy:\n  params:\n" + "".join(f"{'  ' * (i + 2)}k{i}:\n" for i in range(5000))
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    assert "nests deeper than" in info.value.what


def test_load_config_long_dotted_set_key_refused() -> None:
    key = ".".join(["strategy", "params"] + ["k"] * 50_000)
    with pytest.raises(ConfigError) as info:
        load_config(None, [f"{key}=1"], env={})
    assert "nests deeper than" in info.value.what


def test_load_config_deep_env_name_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"WB_STRATEGY__PARAMS" + "__K" * 50_000: "1"})
    assert "nests deeper than" in info.value.what


def test_load_config_huge_integer_literal_refused_as_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["strategy.params.x=" + "9" * 5000], env={})
    assert info.value.where == "--set strategy.params.x"


def test_load_config_non_utf8_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("run: {name: caf\xe9}\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert "UTF-8" in info.value.what


@pytest.mark.parametrize(("override", "key", "fix"), [
    ("portfolio.initial_cash=.inf", "portfolio.initial_cash", "finite"),
    ("portfolio.initial_cash=.nan", "portfolio.initial_cash", "finite"),
    ("portfolio.initial_cash=-.inf", "portfolio.initial_cash", "finite"),
    ("portfolio.initial_cash=-5", "portfolio.initial_cash", "larger"),
    ("portfolio.initial_cash=1.0e+300", "portfolio.initial_cash", "smaller"),
    ("run.seed=1.0e+23", "run.seed", "valid value"),
    ("run.seed=1e23", "run.seed", "whole number"),
    ("run.seed=-1", "run.seed", "larger"),
    ("run.seed=4294967296", "run.seed", "smaller"),
    ("data.timeframe=100000000000000000000d", "data.timeframe", "valid value"),
    ("data.timeframe=367d", "data.timeframe", "valid value"),
    ("costs.fee_bps=.inf", "costs.fee_bps", "finite"),
    ("costs.slippage_bps=.nan", "costs.slippage_bps", "finite"),
    ("costs.spread_bps=1.0e+9", "costs.spread_bps", "smaller"),
    ("costs.min_notional=.inf", "costs.min_notional", "finite"),
    ("risk.max_order_notional=.inf", "risk.max_order_notional", "finite"),
    ("risk.max_drawdown_pct=.nan", "risk.max_drawdown_pct", "finite"),
    ("risk.daily_loss_limit=1.0e+308", "risk.daily_loss_limit", "smaller"),
    ("risk.max_open_positions=100000000000000000000000", "risk.max_open_positions", "smaller"),
    ("risk.position_limits.BTCUSDT.max_qty=.inf", "risk.position_limits.BTCUSDT.max_qty",
     "finite"),
])
def test_load_config_overflowing_number_refused_naming_key_and_fix(
        override: str, key: str, fix: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, [override], env={})
    assert f"`{key}`" in info.value.what
    assert info.value.fix and fix in info.value.fix and key in info.value.fix


@pytest.mark.parametrize("name", ["a\nrun_id=x dir=/tmp", "a\rb", "a\x1b[2Kb", "tab\there",
                                  "nul\x00", "bidi\u202etxt", "line\u2028sep", ""])
def test_config_run_name_with_control_characters_refused(name: str) -> None:
    from workbench.config import validate

    with pytest.raises(ConfigError) as info:
        validate({"run": {"name": name}})
    assert "`run.name`" in info.value.what


def test_config_run_name_printable_unicode_accepted() -> None:
    from workbench.config import validate

    assert validate({"run": {"name": "sma démo — 5/20 ✓"}}).run.name == "sma démo — 5/20 ✓"


def test_timeframe_ms_beyond_a_year_raises_value_error() -> None:
    assert timeframe_ms("366d") == 366 * 86_400_000
    for tf in ("367d", "100000000000000000000d", "9999999999m", "1" * 5000 + "d"):
        with pytest.raises(ValueError, match="longer than 366 days"):
            timeframe_ms(tf)


def test_load_config_deep_python_dict_base_refused_not_recursion_error() -> None:
    deep: dict = {}
    node = deep
    for _ in range(50_000):
        node["k"] = {}
        node = node["k"]
    with pytest.raises(ConfigError) as info:
        load_config(None, base={"strategy": {"params": deep}}, env={})
    assert "nests deeper than" in info.value.what


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_strategy_params_non_finite_float_refused_as_config_error(value: str) -> None:
    from workbench.engine.kernel import build_strategy

    cfg = load_config(None, [f"strategy.params.qty={value}"], env={})
    with pytest.raises(ConfigError) as info:
        build_strategy(cfg)
    assert "strategy.params.qty" in info.value.render()
    assert "finite" in info.value.what


def test_strategy_path_pathsep_string_from_env_split_and_hashed_only_when_set():
    import os

    plain = load_config(None, env={})
    assert "path" not in plain.to_dict()["strategy"]
    joined = os.pathsep.join(["/a", "/b"])
    cfg = load_config(None, env={"WB_STRATEGY__PATH": joined})
    assert cfg.strategy.path == ["/a", "/b"]
    assert cfg.to_dict()["strategy"]["path"] == ["/a", "/b"]
    assert cfg.hash() != plain.hash()
    assert load_config(None, ["strategy.path=[/a, /b]"], env={}).hash() == cfg.hash()


def test_strategy_class_qualified_name_accepted_bad_form_refused():
    assert load_config(None, ["strategy.class=__main__:Outer.Inner"],
                       env={}).strategy.class_path == "__main__:Outer.Inner"
    with pytest.raises(ConfigError, match="module:Class"):
        load_config(None, ["strategy.class=no_colon"], env={})


def test_config_hash_is_unchanged_by_keys_added_later_at_their_defaults() -> None:
    """Pinned at the hashes of a820322 (before data.calendar and the cost model's new keys):
    a config that does not set them keeps its hash, and a live run journaled before resumes."""
    from pathlib import Path

    from workbench.config import load_config

    assert load_config(None, env={}).hash() == (
        "719c3bbbd609ef847e5b364fc4f2451df345f97e3559b99a47e1e02463f0d0e3")
    demo = Path(__file__).resolve().parents[1] / "configs" / "sma_demo.yaml"
    assert load_config(demo, env={}).hash() == (
        "ea5eba36c4cd4b9322bb66a07245a7561a97078b647a18ba3362114ceec16e37")
    moved = load_config(None, env={}, overrides=["data.calendar=XNYS", "costs.min_fee=1"])
    assert moved.to_dict()["data"]["calendar"] == "XNYS"
    assert moved.to_dict()["costs"]["min_fee"] == 1.0
    adjusted = load_config(None, env={}, overrides=["data.adjusted=true"])
    assert adjusted.to_dict()["data"]["adjusted"] is True
    assert adjusted.hash() != load_config(None, env={}).hash()
    by_bar = load_config(None, env={}, overrides=["costs.spread_column=spread_bps"])
    assert by_bar.to_dict()["costs"]["spread_column"] == "spread_bps"


# --- execution: latency and participation -------------------------------------------------------
@pytest.mark.parametrize(("name", "values"), [
    ("INSTANT", (0, (0, 0), 0)), ("FAST", (10, (50, 100), 20)),
    ("normal", (50, (100, 200), 50)), ("Slow", (100, (500, 1000), 100))])
def test_load_config_latency_profile_name_any_case_sets_its_delays(
        name: str, values: tuple[int, tuple[int, int], int]) -> None:
    latency = load_config(None, [f"execution.latency={name}"], env={}).execution.latency
    assert (latency.submit_ms, latency.fill_ms, latency.cancel_ms) == values
    assert latency.profile == name.upper()


def test_load_config_custom_latency_and_cap_from_yaml_recorded_as_given(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("execution:\n  latency: {submit_ms: 5, fill_ms: [20, 40], cancel_ms: 7}\n"
                    "  participation_pct: 2.5\n  remainder: cancel\n", encoding="utf-8")
    cfg = load_config(path, env={})
    assert cfg.execution.latency.fill_ms == (20, 40) and cfg.execution.latency.profile is None
    assert cfg.to_dict()["execution"] == {
        "latency": {"submit_ms": 5, "fill_ms": [20, 40], "cancel_ms": 7},
        "participation_pct": 2.5, "remainder": "cancel"}


def test_load_config_latency_from_env_and_one_fill_number_means_no_jitter() -> None:
    cfg = load_config(None, env={"WB_EXECUTION__LATENCY": "slow"})
    assert cfg.execution.latency.profile == "SLOW"
    cfg = load_config(None, ["execution.latency={fill_ms: 30}"], env={})
    assert cfg.execution.latency.fill_ms == (30, 30)


def test_config_execution_default_absent_from_dict_and_hash() -> None:
    plain = load_config(None, env={})
    explicit = load_config(None, ["execution.latency=INSTANT", "execution.remainder=keep"],
                           env={})
    assert "execution" not in plain.to_dict() and explicit.hash() == plain.hash()
    assert load_config(None, ["execution.latency=FAST"], env={}).hash() != plain.hash()


@pytest.mark.parametrize(("override", "says"), [
    ("execution.latency=QUICK", "`execution.latency`: unknown latency profile; write INSTANT, "
                                "FAST, NORMAL or SLOW"),
    ("execution.latency=FASTER", "did you mean FAST?"),
    ("execution.latency=5", "`execution.latency`: write INSTANT, FAST, NORMAL or SLOW, or "
                            "custom delays such as {submit_ms: 10"),
    ("execution.latency={fill_ms: [100, 50]}",
     "`execution.latency.fill_ms`: the range [100, 50] runs backwards: write [50, 100]"),
    ("execution.latency={fill_ms: [1, 2, 3]}", "a range [lo, hi] in ms"),
    ("execution.latency={submit_ms: -1}", "`execution.latency.submit_ms`"),
    ("execution.latency={submit_ms: 7200000}", "less than or equal to 3600000"),
    ("execution.latency={submit: 3}", "did you mean `submit_ms`?"),
    ("execution.participation_pct=0", "`execution.participation_pct`"),
    ("execution.participation_pct=101", "less than or equal to 100"),
    ("execution.remainder=drop", "`execution.remainder`: Input should be 'keep' or 'cancel'"),
])
def test_load_config_bad_execution_refused_naming_key_value_and_fix(override: str,
                                                                   says: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, [override], env={})
    text = str(err.value)
    assert says in text and "--set execution." in text


def test_load_config_set_impossible_date_says_it_is_not_a_date() -> None:
    # YAML reads 2024-13-01 as a date and fails on month 13: the fix is about dates, not digits
    with pytest.raises(ConfigError) as err:
        load_config(None, ["data.start=2024-13-01"], env={})
    assert "month must be in 1..12" in err.value.what
    assert "YYYY-MM-DD" in (err.value.fix or "")
