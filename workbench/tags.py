"""Run tags: ``KEY=VALUE`` metadata a run carries for life (``workbench backtest --tag``).

Tags say why a run was made (``experiment=ma-grid``, ``ticket=42``), not what it computes:
they are not part of the config, its hash or the run's files, so tagging a run never changes
its results. They are stored with the run's row (``runs.tags``, migration 011) in the same
insert and nothing changes them afterwards; ``workbench runs compare --tag KEY=VALUE`` selects
a cohort by them. Tags are stored in the clear, so a key that names a secret is refused.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

from workbench.errors import ConfigError
from workbench.secrets import is_secret_key

KEY = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
MAX_VALUE = 200
MAX_TAGS = 32
RERUN_OF = "rerun_of"
"""The tag ``workbench rerun`` puts on its run: the id of the run it reran."""


def parse_tag(item: str, where: str = "--tag") -> tuple[str, str]:
    """``KEY=VALUE`` -> (key, value); a ConfigError saying what is wrong with it."""
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep:
        raise ConfigError(f"{where} expects KEY=VALUE, got {item[:80]!r}",
                          where=where, fix="for example: --tag experiment=ma-grid")
    check_tag(key, value, where)
    return key, value


def check_tag(key: str, value: str, where: str = "--tag") -> None:
    """Refuse a key that is not a short name, one that names a secret, or a value with
    control characters or over MAX_VALUE characters."""
    if not isinstance(key, str) or not KEY.fullmatch(key):
        raise ConfigError(f"tag key {str(key)[:80]!r} is not a name", where=where,
                          fix="start with a letter; then letters, digits, _ or -, at most 64 "
                              "characters (e.g. experiment=ma-grid)")
    if is_secret_key(key):
        raise ConfigError(f"tag key {key!r} names a secret, and tags are stored in the clear",
                          where=where, fix="keep credentials out of tags; pick another key")
    if not isinstance(value, str) or len(value) > MAX_VALUE:
        raise ConfigError(f"the value of tag {key!r} is not text of at most {MAX_VALUE} "
                          "characters", where=where, fix="shorten it")
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in value):
        raise ConfigError(f"the value of tag {key!r} holds a control character", where=where,
                          fix="pass plain text (no newlines, tabs or escapes)")


def as_tags(tags: Mapping[str, str] | Iterable[str] | None, where: str = "--tag"
            ) -> dict[str, str]:
    """Tags from a mapping or ``KEY=VALUE`` items, checked, in key order; a key given twice
    (with different values) is an error."""
    if tags is None:
        return {}
    pairs: list[tuple[str, str]] = []
    if isinstance(tags, Mapping):
        for key, value in tags.items():
            check_tag(key, value, where)
            pairs.append((key, value))
    else:
        if isinstance(tags, str):
            tags = [tags]
        pairs = [parse_tag(item, where) for item in tags]
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out and out[key] != value:
            raise ConfigError(f"tag {key!r} is given twice ({out[key]!r} and {value!r})",
                              where=where, fix="give each key one value")
        out[key] = value
    if len(out) > MAX_TAGS:
        raise ConfigError(f"{len(out)} tags; a run carries at most {MAX_TAGS}", where=where,
                          fix="drop some tags")
    return dict(sorted(out.items()))
