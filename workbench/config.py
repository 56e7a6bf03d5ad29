"""Typed run configuration, loaded in layers: defaults < YAML file < env ``WB_*`` < ``--set``.

Environment overrides use the prefix (``WB_`` by default) and ``__`` for nesting:
``WB_COSTS__FEE_BPS=5`` sets ``costs.fee_bps``. ``--set costs.fee_bps=5`` does the same from the
command line. Values from both are read as YAML scalars or lists (``5`` is a number, ``[A, B]`` a
list). Unknown keys and bad values fail fast, naming the key, the layer that set it, and a fix.

Every layer is read with a bounded YAML loader: nesting deeper than ``MAX_DEPTH``, more than
``MAX_NODES`` nodes once aliases are expanded (a "billion laughs"), or a recursive alias is a
config error, not a hang or a RecursionError. Numbers are finite and within sane bounds.

Secrets (see ``workbench.secrets``) are masked in ``to_dict()`` and in every error message;
``hash()`` covers their real values.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import re
import typing
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    field_serializer,
    field_validator,
    model_validator,
)

from workbench import secrets
from workbench.brokers.execution import PROFILES
from workbench.errors import ConfigError
from workbench.model import MAX_BPS

DEFAULT_ENV_PREFIX = "WB_"
_GLOBAL_ENV_KEYS = {"WAREHOUSE", "DEBUG", "RUNS_DIR"}
_TIMEFRAME = re.compile(r"([1-9][0-9]*)([mhd])")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}
MAX_TIMEFRAME_MS = 366 * 86_400_000  # a bar longer than a year is a typo, and would overflow

# Bounds of the config layers and numbers (hostile or mistyped input must end as a ConfigError).
MAX_DEPTH = 32  # nesting of any config tree (YAML file, --set/env value, key path)
MAX_NODES = 100_000  # YAML nodes in one document once aliases are expanded
MAX_MONEY = 1e15  # quote-currency amounts and quantities
MAX_SEED = 2**32 - 1  # what random.Random, numpy's seeders and the warehouse all accept
MAX_NAME = 200


def timeframe_ms(timeframe: str) -> int:
    """Milliseconds in a whole-minute timeframe such as ``1m``, ``5m``, ``1h`` or ``1d``."""
    match = _TIMEFRAME.fullmatch(timeframe) if isinstance(timeframe, str) else None
    if not match:
        raise ValueError(
            f"timeframe {secrets.shown((), timeframe, 40)} is not a whole number of minutes, "
            "hours or days (examples: 1m, 5m, 15m, 1h, 4h, 1d)"
        )
    count = match.group(1)  # a few digits at most, so int() stays cheap
    ms = int(count) * _UNIT_MS[match.group(2)] if len(count) <= 9 else MAX_TIMEFRAME_MS + 1
    if ms > MAX_TIMEFRAME_MS:
        raise ValueError(f"timeframe {secrets.shown((), timeframe, 40)} is longer than 366 "
                         "days (examples: 1m, 5m, 15m, 1h, 4h, 1d)")
    return ms


def _plain_text(value: str) -> str:
    """Refuse control and line-breaking characters (a run name is printed on the CLI's last
    line, ``run_id=... dir=...``, which scripts parse)."""
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            raise ValueError(f"contains the control character U+{ord(ch):04X}; use printable "
                             "characters only (no newline, carriage return, escape, tab)")
    return value


PlainText = Annotated[str, Field(max_length=MAX_NAME), AfterValidator(_plain_text)]
Money = Annotated[float, Field(gt=0, le=MAX_MONEY, allow_inf_nan=False)]
Bps = Annotated[float, Field(ge=0, le=MAX_BPS, allow_inf_nan=False)]


def parse_when(value: str | date | datetime | None, what: str = "date") -> int | None:
    """A date (``2024-01-01``) or ISO-8601 time as ms UTC; naive values are taken as UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    else:
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ConfigError(
                f"{what} {value!r} is not a date or ISO-8601 time",
                fix="write it as 2024-01-31 or 2024-01-31T12:00:00Z",
            ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunConfig(_Section):
    name: Annotated[PlainText, Field(min_length=1)] = "backtest"
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] = 0
    memory_limit: str | None = None  # DuckDB's cap for the job's own database, e.g. "2GB"

    @field_validator("memory_limit")
    @classmethod
    def _memory_limit(cls, value: str | None) -> str | None:
        if value is not None and not MEMORY.fullmatch(value):
            raise ValueError("write a size such as 512MB, 2GB or 1.5GiB")
        return value


MEMORY = re.compile(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)")
SYMBOL = re.compile(r"[A-Z0-9._-]{1,40}")


def check_symbol(symbol: str) -> str:
    """A symbol as the venue spells it (upper case, e.g. BTCUSDT); ValueError otherwise."""
    if not SYMBOL.fullmatch(symbol):
        raise ValueError(f"symbol {symbol!r} should be upper-case letters and digits, as the "
                         "venue spells it (e.g. BTCUSDT)")
    return symbol


class DataConfig(_Section):
    symbols: Annotated[list[str], Field(min_length=1)] = ["BTCUSDT"]
    timeframe: str = "1m"
    gaps: Literal["fail", "forward", "none"] = "fail"
    calendar: Annotated[PlainText, Field(min_length=1, max_length=500)] = "24x7"
    # the stored prices already include splits and dividends: corporate actions are then not
    # applied (they would count twice; adr/0025)
    adjusted: bool = False
    start: datetime | None = None
    end: datetime | None = None

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        timeframe_ms(value)
        return value

    @field_validator("start", "end", mode="before")
    @classmethod
    def _when(cls, value: Any) -> datetime | None:
        """Any date or ISO time (offsets honoured, naive taken as UTC) as an aware UTC time."""
        if value is None:
            return None
        if not isinstance(value, str | date | datetime):
            raise ValueError("write a date (2024-01-31) or an ISO time (2024-01-31T12:00Z)")
        try:
            ms = parse_when(value)
        except ConfigError as exc:
            raise ValueError(exc.what) from None
        assert ms is not None
        return datetime.fromtimestamp(ms / 1000, tz=UTC)

    @field_validator("calendar")
    @classmethod
    def _calendar(cls, value: str) -> str:
        from workbench.calendars import calendar_for

        try:
            calendar_for(value)
        except ConfigError as exc:
            raise ValueError(f"{exc.what}; {exc.fix}" if exc.fix else exc.what) from None
        return value

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: list[str]) -> list[str]:
        for symbol in value:
            check_symbol(symbol)
        if len(set(value)) != len(value):
            raise ValueError("symbols are listed more than once")
        return value


class StrategyConfig(_Section):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    class_path: str = Field("workbench.strategies.sma_cross:SmaCross", alias="class")
    params: dict[str, Any] = {}
    # Directories searched for the strategy's module before the working directory and the
    # installed packages (relative to the working directory). Hashed only when set.
    path: list[str] = []
    # The class itself when one was passed in Python (run_backtest(..., strategy=Cls));
    # class_path then records its identity, module:qualname.
    _class: Any = PrivateAttr(default=None)

    @field_serializer("params", mode="wrap")
    def _params(self, value: dict[str, Any], handler: SerializerFunctionWrapHandler,
                info: SerializationInfo) -> Any:
        """A ``SecretStr`` passed in params (from Python) dumps as its value only when revealed
        (so the hash covers it and a rebuilt config keeps it), else as the mask."""
        reveal = isinstance(info.context, Mapping) and bool(info.context.get("reveal"))
        return handler(secrets.unwrap(value, reveal))

    @field_validator("class_path")
    @classmethod
    def _class_path(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.<>]*", value):
            raise ValueError("write the strategy as `module:Class`, e.g. "
                             "workbench.strategies.sma_cross:SmaCross")
        return value

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, value: Any) -> Any:
        """One directory, several separated by os.pathsep, or a list of them."""
        if value is None:
            return []
        if isinstance(value, str | os.PathLike):
            value = [value]
        if isinstance(value, list | tuple):
            return [p for v in value for p in str(v).split(os.pathsep) if p.strip()]
        return value


class PortfolioConfig(_Section):
    initial_cash: Money = 10_000.0
    quote: Annotated[PlainText, Field(min_length=1, max_length=20)] = "USDT"
    # a sell beyond the position opens a short (backtests only; adr/0026)
    allow_short: bool = False
    # shorts are refused past equity times this, in short notional across symbols
    short_margin: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)] = 1.0


Amount = Annotated[float, Field(ge=0, le=MAX_MONEY, allow_inf_nan=False)]  # 0 allowed


class ImpactTier(_Section):
    """Extra impact for a market order whose notional reaches ``from_notional``."""

    from_notional: Amount
    bps: Bps


class CostsConfig(_Section):
    enabled: bool = True
    fee_bps: Bps = 10.0
    fee_per_unit: Amount = 0.0  # quote currency per unit bought or sold ("per share")
    min_fee: Amount = 0.0  # the least an order pays in fees (its first fill)
    slippage_bps: Bps = 5.0
    spread_bps: Bps = 0.0
    # each bar's own spread from this bars column (a file's spread_bps); spread_bps where a
    # bar has none
    spread_column: Literal["spread_bps"] | None = None
    impact_k: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] = 0.0
    impact_cap_bps: Bps = 500.0
    impact_tiers: list[ImpactTier] = []
    min_notional: Amount = 0.0
    fill_at: Literal["close", "next_open"] = "close"
    # a short pays this rate a year on its notional, accrued each bar (adr/0026)
    borrow_bps_per_year: Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)] = 0.0
    # perpetual-style funding: at each multiple of funding_every (UTC), a long pays this rate
    # of its notional and a short receives it (negative: the other way round)
    funding_bps: Annotated[float, Field(ge=-MAX_BPS, le=MAX_BPS, allow_inf_nan=False)] = 0.0
    funding_every: str = "8h"

    @field_validator("funding_every")
    @classmethod
    def _funding_every(cls, value: str) -> str:
        timeframe_ms(value)
        return value

    @field_validator("impact_tiers")
    @classmethod
    def _tiers(cls, value: list[ImpactTier]) -> list[ImpactTier]:
        starts = [t.from_notional for t in value]
        if starts != sorted(set(starts)):
            raise ValueError("impact_tiers must ascend by from_notional, each once "
                             f"(got {starts})")
        return value

    @model_validator(mode="after")
    def _impact_below_the_price(self) -> CostsConfig:
        worst = self.impact_cap_bps + max((t.bps for t in self.impact_tiers), default=0.0)
        if (self.impact_k or self.impact_tiers) and worst >= 5_000:
            raise ValueError(
                f"impact_cap_bps plus the largest impact_tiers bps is {worst:g} bps: a market "
                "impact of half the price or more (a sell would fill near zero); keep it "
                "below 5000")
        return self


MAX_LATENCY_MS = 3_600_000  # an hour: longer is a typo (a latency in seconds, not ms?)
LatencyMs = Annotated[int, Field(ge=0, le=MAX_LATENCY_MS)]
LATENCY_PROFILES: dict[str, dict[str, Any]] = {
    name: {"submit_ms": p.submit_ms, "fill_ms": [p.fill_lo_ms, p.fill_hi_ms],
           "cancel_ms": p.cancel_ms} for name, p in PROFILES.items()}
"""The named latency profiles of ``execution.latency``, as config values."""
_LATENCY_FIX = ("write INSTANT, FAST, NORMAL or SLOW, or custom delays such as "
                "{submit_ms: 10, fill_ms: [50, 100], cancel_ms: 20}")


class LatencyConfig(_Section):
    """Delays of the simulated venue, in ms: an order's way to it, its execution after that
    (a range the jitter is drawn from), a cancel's way to it."""

    submit_ms: LatencyMs = 0
    fill_ms: tuple[LatencyMs, LatencyMs] = (0, 0)
    cancel_ms: LatencyMs = 0

    @field_validator("fill_ms", mode="before")
    @classmethod
    def _fill_range(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return [value, value]  # one number: no jitter
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise ValueError("write the fill delay as a range [lo, hi] in ms, e.g. [50, 100], "
                             "or one number")
        return value

    @field_validator("fill_ms")
    @classmethod
    def _ordered(cls, value: tuple[int, int]) -> tuple[int, int]:
        if value[0] > value[1]:
            raise ValueError(f"the range [{value[0]}, {value[1]}] runs backwards: write "
                             f"[{value[1]}, {value[0]}]")
        return value

    @property
    def profile(self) -> str | None:
        """The profile these delays are, if any."""
        mine = self.model_dump(mode="json")
        return next((name for name, p in LATENCY_PROFILES.items() if p == mine), None)


class ExecutionConfig(_Section):
    """How the simulated venue (backtest and paper) executes; the default is the fill model
    as it always was: no latency, no participation cap. See docs/architecture.md."""

    latency: LatencyConfig = LatencyConfig()
    participation_pct: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)] | None = None
    remainder: Literal["keep", "cancel"] = "keep"

    @field_validator("latency", mode="before")
    @classmethod
    def _profile(cls, value: Any) -> Any:
        """A profile name (any case) stands for its delays."""
        if isinstance(value, str):
            found = LATENCY_PROFILES.get(value.strip().upper())
            if found is None:
                close = difflib.get_close_matches(value.strip().upper(), LATENCY_PROFILES, n=1)
                hint = f"did you mean {close[0]}? " if close else ""
                raise ValueError(f"unknown latency profile; {hint}{_LATENCY_FIX}")
            return found
        if value is not None and not isinstance(value, Mapping | LatencyConfig):
            raise ValueError(_LATENCY_FIX)
        return value

    @field_serializer("latency")
    def _latency_name(self, value: LatencyConfig) -> Any:
        """A profile's delays are written as its name (the manifest reads ``FAST``)."""
        return value.profile or value.model_dump(mode="json")

    @property
    def default(self) -> bool:
        return self == ExecutionConfig()

    def manifest(self) -> dict[str, Any]:
        """What a run manifest records of it (the default too, which the config leaves out)."""
        return self.model_dump(mode="json")


Positive = Money  # finite, > 0, at most MAX_MONEY (quantities, amounts and percentages)


class PositionLimit(_Section):
    max_qty: Positive | None = None
    max_value: Positive | None = None  # quote currency


class RiskModes(_Section):
    backtest: bool = True
    shadow: bool = True
    paper: bool = True
    live: bool = True


class RiskConfig(_Section):
    """Pre-trade rules; each is off while its key is unset. See docs/risk.md."""

    allowed_symbols: list[Annotated[str, AfterValidator(check_symbol)]] | None = None
    max_order_notional: Positive | None = None  # quote currency
    max_open_positions: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    position_limits: dict[Annotated[str, AfterValidator(check_symbol)], PositionLimit] | None = None
    max_gross_exposure_pct: Positive | None = None
    max_net_exposure_pct: Positive | None = None
    daily_loss_limit: Positive | None = None  # quote currency, realized
    max_daily_drawdown_pct: Positive | None = None
    max_drawdown_pct: Positive | None = None
    modes: RiskModes = RiskModes()


class VenueConfig(_Section):
    """Where live modes get bars (and, live, send orders). The API key and secret come from
    ``WB_VENUE__API_KEY`` / ``WB_VENUE__API_SECRET`` or the 0600 secrets file
    (``SecretsProvider``); they are secrets: masked wherever the config is written."""

    name: Literal["binance"] = "binance"
    base_url: str = "https://api.binance.com"
    recv_window_ms: Annotated[int, Field(ge=1, le=60_000)] = 5000
    timeout_s: Annotated[float, Field(gt=0, le=120, allow_inf_nan=False)] = 10.0
    api_key: secrets.Secret | None = None
    api_secret: secrets.Secret | None = None

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+(/[!-~]*)?", value):
            raise ValueError('write an http(s) URL such as "https://api.binance.com" or '
                             '"http://127.0.0.1:8765"')
        return value.rstrip("/")


def with_venue_credentials(cfg: Config, provider: secrets.SecretsProvider) -> Config:
    """``cfg`` with the venue's API key and secret filled in from ``provider`` (the
    environment's ``WB_VENUE__API_KEY``/``WB_VENUE__API_SECRET``, then the 0600 secrets file's
    ``VENUE__API_KEY=``/``VENUE__API_SECRET=`` lines) where the config leaves them unset."""
    found = {key: provider.get(f"VENUE__{key.upper()}") for key in ("api_key", "api_secret")
             if getattr(cfg.venue, key) is None}
    found = {k: v for k, v in found.items() if v is not None}
    if not found:
        return cfg
    return cfg.model_copy(update={"venue": cfg.venue.model_copy(update=found)})


class LiveConfig(_Section):
    """How the live loop runs: warm-up bars before the first decision, how often the state is
    snapshotted, how many missing bars in a row are tolerated before an alert."""

    warmup_bars: Annotated[int, Field(ge=0, le=100_000)] = 100
    snapshot_every_bars: Annotated[int, Field(ge=1, le=1_000_000)] = 60
    gap_tolerance_bars: Annotated[int, Field(ge=0, le=1_000_000)] = 1
    tiny_notional: Positive | None = None  # live --tiny: orders sized down to this worth
    # live: how long an order the venue may have taken stays "unknown to queries" before a
    # "does not exist" is believed and it is sent again (Binance: a few seconds after create)
    invisible_s: Annotated[float, Field(gt=0, le=600, allow_inf_nan=False)] = 10.0
    # live: the venue's open orders and balances against the journal at start, after a
    # restart, and every this many bars
    reconcile_every_bars: Annotated[int, Field(ge=1, le=1_000_000)] = 60
    # live: orders in a row the venue fails (unknown outcome, throttled, banned) before the
    # run halts with an alert
    order_failures_halt: Annotated[int, Field(ge=1, le=1_000)] = 3


class Config(_Section):
    """The whole effective configuration of a run; frozen, hashed into the manifest."""

    run: RunConfig = RunConfig()
    data: DataConfig = DataConfig()
    strategy: StrategyConfig = StrategyConfig.model_validate({})
    portfolio: PortfolioConfig = PortfolioConfig()
    costs: CostsConfig = CostsConfig()
    risk: RiskConfig = RiskConfig()
    venue: VenueConfig = VenueConfig()
    live: LiveConfig = LiveConfig()
    execution: ExecutionConfig = ExecutionConfig()

    @model_validator(mode="after")
    def _funding_on_bar_times(self) -> Config:
        """Funding is paid on the bars that open at its times: a bar must open at each."""
        every, bar = timeframe_ms(self.costs.funding_every), timeframe_ms(self.data.timeframe)
        if self.costs.funding_bps and every % bar:
            raise ValueError(
                f"costs.funding_every {self.costs.funding_every} is not a whole number of "
                f"data.timeframe {self.data.timeframe} bars, so some funding times would "
                "fall inside a bar and never be paid; set funding_every to a multiple of the "
                "timeframe (e.g. 8h for 1m..8h bars)")
        return self

    @model_validator(mode="after")
    def _limits_name_traded_symbols(self) -> Config:
        """A position limit for a symbol the run does not trade is almost surely a typo."""
        for symbol in (self.risk.position_limits or {}):
            if symbol not in self.data.symbols:
                close = difflib.get_close_matches(symbol, self.data.symbols, n=1)
                hint = f"did you mean {close[0]}? " if close else ""
                raise ValueError(
                    f"risk.position_limits.{symbol} limits a symbol this run does not trade "
                    f"(data.symbols: {', '.join(self.data.symbols)}); {hint}fix the symbol, "
                    "or remove the limit")
        return self

    def to_dict(self, *, reveal: bool = False) -> dict[str, Any]:
        """The config as plain JSON data, secrets masked (``***``): what every writer stores.

        ``reveal=True`` keeps the real values, for building another config in this process
        (never write it anywhere).
        """
        plain = self.model_dump(mode="json", by_alias=True, context={"reveal": reveal})
        if not plain["strategy"]["path"]:
            del plain["strategy"]["path"]  # configs without it keep their hash
        if self.execution.default:
            del plain["execution"]  # so do configs of the default (instant, uncapped) venue
        for (section, key), default in LATER_DEFAULTS.items():
            if plain[section].get(key, default) == default:
                plain[section].pop(key, None)
        return plain if reveal else secrets.redact(plain)

    def canonical_json(self) -> str:
        """The JSON the hash is computed over: real values, secrets included (never stored)."""
        return json.dumps(self.to_dict(reveal=True), sort_keys=True, separators=(",", ":"))

    def hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


SECTIONS = tuple(Config.model_fields)
LATER_DEFAULTS: dict[tuple[str, str], Any] = {
    ("data", "calendar"): "24x7",
    ("data", "adjusted"): False,
    ("portfolio", "allow_short"): False,
    ("portfolio", "short_margin"): 1.0,
    ("costs", "fee_per_unit"): 0.0,
    ("costs", "min_fee"): 0.0,
    ("costs", "impact_k"): 0.0,
    ("costs", "impact_cap_bps"): 500.0,
    ("costs", "impact_tiers"): [],
    ("costs", "spread_column"): None,
    ("costs", "borrow_bps_per_year"): 0.0,
    ("costs", "funding_bps"): 0.0,
    ("costs", "funding_every"): "8h",
}
"""Keys added after configs were hashed and journaled: left out of ``to_dict`` at their
defaults, so an unchanged config keeps its hash and a live run started before them resumes."""


# --- loading ----------------------------------------------------------------------------------
class _Layers:
    """Merges layers into one dict and remembers which layer set each key."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.origin: dict[tuple[str, ...], str] = {}

    def merge(self, tree: Mapping[str, Any], origin: str, prefix: tuple[str, ...] = ()) -> None:
        for key, value in tree.items():
            self.set((*prefix, str(key)), value, origin)

    def set(self, path: tuple[str, ...], value: Any, origin: str) -> None:
        node = self.data
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(
                    f"`{'.'.join(path)}` goes inside `{'.'.join(path[: i + 1])}`, "
                    f"which is a {type(child).__name__}, not a section",
                    where=origin,
                    fix="check the key's spelling and nesting",
                )
            node = child
        leaf = path[-1]
        if isinstance(value, Mapping) and value:
            for key, sub in value.items():
                self.set((*path, str(key)), sub, origin)
            return
        node[leaf] = copy.deepcopy(value)
        self.origin[path] = origin

    def origin_of(self, path: tuple[str, ...]) -> str:
        for n in range(len(path), 0, -1):
            if path[:n] in self.origin:
                return self.origin[path[:n]]
        deeper = [o for p, o in self.origin.items() if p[:len(path)] == path]
        return deeper[0] if deeper else "defaults"


class _Refused(ValueError):
    """A YAML document the bounded loader will not build (too deep, too big, recursive)."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(what)
        self.fix = fix


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with bounds on nesting and on the size after alias expansion.

    PyYAML shares an aliased node instead of copying it, so a "billion laughs" parses in
    microseconds, then every consumer that walks the tree (merging layers, validation, JSON)
    walks it expanded: 9 levels of 9 aliases are 387 million nodes. Nesting recurses in the
    composer, so 50,000 levels end in RecursionError. Both are refused while composing.
    """

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self._depth >= MAX_DEPTH:
            raise _Refused(f"the YAML nests deeper than {MAX_DEPTH} levels",
                           "flatten it: no config value nests that deep")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Any:
        node = super().compose_document()
        _expanded_size(node, {})
        return node


def _expanded_size(node: Any, sizes: dict[int, int]) -> int:
    """Nodes under ``node`` with every alias expanded; _Refused beyond MAX_NODES or on a cycle
    (depth is already bounded by the composer, so recursion here is shallow)."""
    key = id(node)
    if key in sizes:
        if sizes[key] < 0:
            raise _Refused("the YAML has an alias that refers to itself (a recursive alias)",
                           "replace the alias (`*name`) inside its own anchor by a value")
        return sizes[key]
    sizes[key] = -1
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, sizes) + _expanded_size(v, sizes)
                       for k, v in node.value)
    else:
        size = 1
    if size > MAX_NODES:
        raise _Refused(f"the YAML expands to more than {MAX_NODES:,} values once its aliases "
                       "are expanded (an alias bomb?)",
                       "write the values out, or use each anchor (`&a` ... `*a`) a few times only")
    sizes[key] = size
    return size


def _load_yaml(text: str, where: str) -> Any:
    """Parse one YAML document with the bounded loader; ConfigError for anything refused."""
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader subclass: safe
    except _Refused as exc:
        raise ConfigError(f"{exc}; refused", where=where, fix=exc.fix) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f"{where}, line {mark.line + 1}, column {mark.column + 1}" if mark else where
        raise ConfigError(f"invalid YAML: {exc.problem}", where=at,
                          fix="fix the YAML syntax at that place") from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:  # e.g. a 5,000-digit integer
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"unreadable YAML: {secrets.scrub(reason)[:200]}", where=where,
                          fix="fix the value (a date is a real YYYY-MM-DD; numbers have at "
                              "most a few dozen digits)") from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML config file's tree, unvalidated (``load_config(base=...)`` validates it): read
    once by a command that builds many configs from it over a long time, so an edit of the
    file meanwhile does not reach only some of them."""
    return _read_yaml(Path(path))


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(
            f"config file {str(path)!r} not found",
            fix="check the path; example configs live in configs/ (e.g. configs/sma_demo.yaml)",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the file is not UTF-8 text (byte {exc.start})", where=str(path),
                          fix="save the config as UTF-8") from None
    tree = _load_yaml(text, str(path))
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"the top level is a {type(tree).__name__}, not a mapping",
                          where=str(path), fix="start the file with sections such as `data:`")
    return tree


def _scalar(text: str, where: str) -> Any:
    """A ``--set`` or environment value read as YAML; text that is not YAML stays text, but a
    value the bounded loader refuses (alias bomb, deep nesting) is a ConfigError."""
    try:
        return _load_yaml(text, where)
    except ConfigError as exc:
        if exc.what.startswith("invalid YAML"):
            return text
        raise


def _env_path(parts: list[str]) -> tuple[str, ...]:
    """Environment names are upper case: field names are matched lower case, but keys of a
    mapping (the symbols of ``risk.position_limits``) keep their case."""
    out: list[str] = []
    node: Any = Config
    for part in parts:
        symbol_key = typing.get_origin(node) is dict and _child(node, part) is not None
        name = part if symbol_key else part.lower()
        out.append(name)
        node = _child(node, name)
    return tuple(out)


def _env_layer(env: Mapping[str, str], prefix: str) -> list[tuple[tuple[str, ...], Any, str]]:
    out = []
    for name in sorted(env):
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix):]
        if rest in _GLOBAL_ENV_KEYS or not rest:
            continue
        parts = rest.split("__")
        if len(parts) > MAX_DEPTH:
            raise ConfigError(f"environment variable {name[:60]}... nests deeper than "
                              f"{MAX_DEPTH} levels", fix="check the variable's name")
        path = _env_path(parts)
        if path[0] not in SECTIONS:
            close = difflib.get_close_matches(path[0], SECTIONS, n=1, cutoff=0.75)
            if close:
                raise ConfigError(
                    f"environment variable {name} names an unknown section `{path[0]}`",
                    fix=f"did you mean {prefix}{close[0].upper()}__...?",
                )
            continue  # not ours (secrets and other tools share the prefix)
        out.append((path, _scalar(env[name], f"env {name}"), f"env {name}"))
    return out


def _set_layer(overrides: Iterable[str]) -> list[tuple[tuple[str, ...], Any, str]]:
    out = []
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", key):
            shown = repr(f"{key}={secrets.MASK}") if sep and secrets.is_secret_key(key) \
                else secrets.shown((), item, 100)
            raise ConfigError(f"--set expects KEY=VALUE with a dotted key, got {shown}",
                              fix="for example: --set costs.fee_bps=5")
        path = tuple(key.split("."))
        if len(path) > MAX_DEPTH:
            raise ConfigError(f"--set key {key[:60]}... nests deeper than {MAX_DEPTH} levels",
                              fix="check the key")
        parsed = _scalar(value, f"--set {key}")
        # The origin is quoted in error messages: a secret's value never is.
        hidden = secrets.is_secret_path(path) or secrets.holds_secret(parsed)
        origin = f"--set {key}={secrets.MASK if hidden else secrets.scrub(value[:200])}"
        out.append((path, parsed, origin))
    return out


def override_value(item: str) -> Any:
    """The value of one ``--set KEY=VALUE`` as the config receives it (a ConfigError for a
    malformed item): what ``workbench sweep`` records for a grid value."""
    return _set_layer([item])[0][1]


def load_config(
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    env_prefix: str = DEFAULT_ENV_PREFIX,
    base: Mapping[str, Any] | None = None,
) -> Config:
    """Build the effective config from defaults, a YAML file, the environment and ``--set``."""
    layers = _Layers()
    if base:
        _check_depth(base)  # merging recurses into mappings
        layers.merge(base, "config dict")
    if path is not None:
        layers.merge(_read_yaml(Path(path)), str(path))
    for key, value, origin in _env_layer(os.environ if env is None else env, env_prefix):
        layers.set(key, value, origin)
    for key, value, origin in _set_layer(overrides):
        layers.set(key, value, origin)
    _check_depth(layers.data)
    return validate(layers.data, layers)


def _check_depth(tree: Any) -> None:
    """Refuse a merged tree nested deeper than MAX_DEPTH (each layer is bounded, but a long
    dotted key plus a nested value, or a Python dict, may still be deep); iterative."""
    stack: list[tuple[Any, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(f"the config nests deeper than {MAX_DEPTH} levels",
                              fix="flatten it: no config key is that deep")
        children = node.values() if isinstance(node, Mapping) else node \
            if isinstance(node, list | tuple) else ()
        stack.extend((child, depth + 1) for child in children)


def validate(tree: Mapping[str, Any], layers: _Layers | None = None) -> Config:
    """Validate a config tree; raise ConfigError naming the first bad key and who set it."""
    secrets.redact(tree)  # notes secret values first, so no error below can quote one
    try:
        cfg = Config.model_validate(tree)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if not loc:  # a check across sections: "<key> <what>; <fix>"
            key = tuple(msg.split(" ")[0].split("."))
            where = layers.origin_of(key) if layers else "config"
            what, _, fix = msg.partition("; ")
            raise ConfigError(what, where=where, fix=fix or None) from None
        origin = layers.origin_of(loc) if layers else "config"
        dotted = ".".join(loc)
        if err["type"] == "extra_forbidden":
            known = _known_keys(loc[:-1])
            close = difflib.get_close_matches(loc[-1], known, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            raise ConfigError(f"unknown key `{dotted}`", where=origin,
                              fix=f"{hint}known keys here: {', '.join(known)}") from None
        got = secrets.shown(loc, err.get("input"))
        raise ConfigError(f"`{dotted}`: {msg} (got {got})", where=origin,
                          fix=f"set `{dotted}` to a valid value{_FIXES.get(err['type'], '')}"
                          ) from None
    secrets.redact(cfg.to_dict(reveal=True))  # notes the values as validated, for scrub
    return cfg


_FIXES = {
    "finite_number": " (a finite number: not .inf or .nan)",
    "greater_than": " (a larger number)",
    "greater_than_equal": " (a larger number)",
    "less_than": " (a smaller number)",
    "less_than_equal": " (a smaller number)",
    "string_too_long": " (a shorter one)",
    "int_parsing": " (a whole number)",
    "int_from_float": " (a whole number)",
}


def _model_in(annotation: Any) -> Any:
    """The pydantic model or dict type inside an annotation such as ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is dict:
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _child(node: Any, key: str) -> Any:
    """What lies under ``key`` of a config node: a model, a mapping, or None (a plain value or
    an unknown key). Under a mapping (``position_limits``) every key leads to its value type."""
    if typing.get_origin(node) is dict:
        return _model_in(typing.get_args(node)[1])
    if isinstance(node, type) and issubclass(node, BaseModel):
        field = node.model_fields.get(key)
        return _model_in(field.annotation) if field is not None else None
    return None


def _known_keys(loc: tuple[str, ...]) -> list[str]:
    """The keys valid at ``loc`` (through optional sections and per-symbol mappings)."""
    node: Any = Config
    for part in loc:
        node = _child(node, part)
    if not (isinstance(node, type) and issubclass(node, BaseModel)):
        return []
    return [f.alias or name for name, f in node.model_fields.items()]
