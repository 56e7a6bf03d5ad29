"""Secrets: what counts as one, how it is masked, and where it is read from.

A value is a secret when it is typed as one (pydantic ``SecretStr``, or the ``Secret`` type
below) or when its key *says* it is one. A key says so when one of its words is ``secret``,
``token``, ``password``/``passwd``/``pwd``, ``passphrase``, ``credential(s)`` or ``key(s)``, or a
word ends in one of the usual compounds (``apikey``, ``apisecret``, ``accesstoken``,
``privatekey``, ...). Words are split at ``_``, ``-``, ``.``, spaces and camelCase, so
``api_key``, ``apiKey``, ``API_KEY``, ``X-Api-Key``, ``access_token``, ``client_secret`` and
``passphrase`` are secret names, while ``keep``, ``monkey``, ``keyboard`` or ``hockey`` are not
(``key`` must be a word of its own). Everything under a secret-named key is masked, whatever its
type. A harmless key that happens to match (``sort_key``, ``max_tokens``) is masked too: a
false positive costs a ``***`` in a report, a false negative a leaked credential.

Masked values read ``***`` (:data:`MASK`); ``None`` stays ``None`` so "not set" stays visible.
Nothing derived from the value (no prefix, no per-secret hash) is stored: the run's
``config_hash`` is computed over the real values (so two runs with different keys hash
differently) and is the only thing that depends on them.

Every writer (run manifest, ``runs.config_json``, logs, reports, CLI output, error messages)
gets the config through :func:`redact` (``Config.to_dict()`` does it), and free text through
:func:`scrub`, which replaces every secret value this process has seen (:func:`remember`).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import PlainSerializer, SecretStr, SerializationInfo

MASK = "***"

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_SECRET_WORD = re.compile(
    r"(secret|token|passw(or)?d|pwd|passphrase|credentials?|keys?)s?"
    r"|.*(secret|token|passw(or)?d|passphrase|apikey|privatekey|secretkey|accesskey"
    r"|signingkey|authkey)s?")
_MIN_SCRUB = 6  # shorter values are not scrubbed from free text (they would mangle it)
_seen: set[str] = set()


def is_secret_key(key: object) -> bool:
    """Whether a config or log key names a secret (see the module docstring for the rule)."""
    if not isinstance(key, str):
        return False
    return any(_SECRET_WORD.fullmatch(word.lower()) for word in _WORDS.findall(key))


def is_secret_path(path: Iterable[object]) -> bool:
    """Whether any part of a key path (``("strategy", "params", "api_key")``) names a secret."""
    return any(is_secret_key(part) for part in path)


def _reveal(value: SecretStr, info: SerializationInfo) -> str:
    if isinstance(info.context, Mapping) and info.context.get("reveal"):
        return value.get_secret_value()
    return MASK


Secret = Annotated[SecretStr, PlainSerializer(_reveal, return_type=str)]
"""A ``SecretStr`` for config models: dumps as ``***``, or the value with context reveal=True."""


def redact(tree: Any, *, remember_values: bool = True) -> Any:
    """A copy of ``tree`` (dicts, lists, scalars) with every secret masked.

    Values under secret-named keys and ``SecretStr`` values anywhere become :data:`MASK`;
    secret values seen on the way are remembered for :func:`scrub`.
    """
    if isinstance(tree, SecretStr):
        if remember_values:
            remember(tree.get_secret_value())
        return MASK
    if isinstance(tree, Mapping):
        out = {}
        for key, value in tree.items():
            if is_secret_key(key) and value is not None:
                if remember_values:
                    _remember_tree(value)
                out[key] = MASK
            else:
                out[key] = redact(value, remember_values=remember_values)
        return out
    if isinstance(tree, list | tuple):
        return [redact(v, remember_values=remember_values) for v in tree]
    return tree


def unwrap(tree: Any, reveal: bool) -> Any:
    """``tree`` with each ``SecretStr`` replaced by its value (``reveal``) or the mask."""
    if isinstance(tree, SecretStr):
        return tree.get_secret_value() if reveal else MASK
    if isinstance(tree, Mapping):
        return {k: unwrap(v, reveal) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [unwrap(v, reveal) for v in tree]
    return tree


def holds_secret(tree: Any) -> bool:
    """Whether ``tree`` has a ``SecretStr`` or a (non-None) value under a secret-named key."""
    if isinstance(tree, SecretStr):
        return True
    if isinstance(tree, Mapping):
        return any((is_secret_key(k) and v is not None) or holds_secret(v)
                   for k, v in tree.items())
    if isinstance(tree, list | tuple):
        return any(holds_secret(v) for v in tree)
    return False


def clean(tree: Any) -> Any:
    """:func:`redact`, then :func:`scrub` every string left (keys and values): for anything
    written out (manifests, log records)."""
    return _scrub_tree(redact(tree))


def _scrub_tree(tree: Any) -> Any:
    if isinstance(tree, str):
        return scrub(tree)
    if isinstance(tree, Mapping):
        return {scrub(k) if isinstance(k, str) else k: _scrub_tree(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [_scrub_tree(v) for v in tree]
    return tree


def _remember_tree(value: Any) -> None:
    if isinstance(value, Mapping):
        for sub in value.values():
            _remember_tree(sub)
    elif isinstance(value, list | tuple):
        for sub in value:
            _remember_tree(sub)
    elif isinstance(value, SecretStr):
        remember(value.get_secret_value())
    elif value is not None and not isinstance(value, bool):
        remember(str(value))


def remember(value: str) -> None:
    """Note a secret value so that :func:`scrub` removes it from free text in this process."""
    if isinstance(value, str) and len(value) >= _MIN_SCRUB:
        _seen.add(value)


def scrub(text: str) -> str:
    """``text`` with every remembered secret value replaced by :data:`MASK`."""
    if not _seen or not isinstance(text, str):
        return text
    for value in sorted(_seen, key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return text


def shown(path: Iterable[object], value: Any, limit: int = 80) -> str:
    """How an error message may quote ``value`` found at ``path``: masked when the path names a
    secret or the value is one, else its repr (cut to ``limit`` characters)."""
    if isinstance(value, SecretStr) or is_secret_path(path):
        return MASK
    text = scrub(repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- where secrets come from ---------------------------------------------------------------------
class SecretsProvider:
    """Reads credentials from the environment, then from a local file only its owner can read.

    ``get("BINANCE_API_KEY")`` looks at ``$WB_BINANCE_API_KEY`` (the prefix is the CLI's
    ``--env-prefix``), then at the ``BINANCE_API_KEY=...`` line of the secrets file
    (``$WB_SECRETS_FILE``, default ``~/.config/workbench/secrets.env``: ``NAME=value`` lines,
    ``#`` comments). The file is refused unless its mode is 0600 or stricter. Values come back
    as ``SecretStr`` and are remembered for :func:`scrub`.
    """

    def __init__(self, env: Mapping[str, str] | None = None, path: str | Path | None = None,
                 prefix: str = "WB_") -> None:
        self.env = os.environ if env is None else env
        self.prefix = prefix
        default = Path.home() / ".config" / "workbench" / "secrets.env"
        self.path = Path(path or self.env.get(f"{prefix}SECRETS_FILE") or default)
        self._file: dict[str, str] | None = None

    def get(self, name: str) -> SecretStr | None:
        value = self.env.get(f"{self.prefix}{name}")
        if value is None:
            value = self._read_file().get(name)
        if value is None:
            return None
        remember(value)
        return SecretStr(value)

    def _read_file(self) -> dict[str, str]:
        if self._file is not None:
            return self._file
        from workbench.errors import ConfigError

        self._file = {}
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return self._file
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"the secrets file is readable by others (mode {stat.S_IMODE(info.st_mode):o})",
                where=str(self.path), fix=f"chmod 600 {self.path}")
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, value = line.partition("=")
            if not sep or not name.strip():
                raise ConfigError("expected NAME=value (the value is not shown)",
                                  where=f"{self.path}, line {number}",
                                  fix="write one NAME=value per line")
            self._file[name.strip()] = value.strip()
        return self._file
