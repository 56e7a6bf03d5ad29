"""``results.strings``: repeating text columns made from their distinct values store what
``pa.array(values, pa.string())`` stored (review branch review-parity)."""

from __future__ import annotations

from enum import Enum, StrEnum

import pyarrow as pa

from workbench.model import Side
from workbench.warehouse.results import strings


class Tag(str, Enum):  # noqa: UP042 (the point) the pre-3.11 idiom: str() is "Tag.ENTRY", the text is "entry"
    ENTRY = "entry"


class Kind(StrEnum):
    EXIT = "exit"


def test_strings_str_enum_mixin_stored_as_its_text_as_pyarrow_does() -> None:
    values = [Tag.ENTRY, None, "x", Kind.EXIT, Side.BUY, "entry", None]
    assert strings(values).to_pylist() == pa.array(values, pa.string()).to_pylist() == [
        "entry", None, "x", "exit", "BUY", "entry", None]
