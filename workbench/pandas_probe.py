"""Keep pyarrow from importing pandas in a job that never uses it.

The first time pyarrow converts anything to an Arrow array (a NumPy array included), it imports
pandas, when installed, to ask whether the input is a pandas object: 0.2-0.3 s of a one-year
backtest, on the critical path. Where pandas is installed (with the ``parity`` extra, and in most
research environments) every backtest paid it. ``skip`` answers pyarrow's one question with a
stand-in that pyarrow declines (too old), so it records "no pandas integration" and carries on.
pandas still imports normally and ``Table.to_pandas`` works, but pyarrow then treats pandas
objects it is handed as plain sequences (``Table.from_pandas`` turns a categorical column into
strings): so only the command line's ``workbench backtest`` and ``workbench ingest`` call it, in
processes that end with the job; never a library call that a notebook makes.
"""

from __future__ import annotations

import sys
import types
import warnings


def skip() -> None:
    """Answer pyarrow's pandas probe without importing pandas (a no-op once pandas is imported
    or pyarrow has asked)."""
    if "pandas" in sys.modules:
        return  # a notebook's pandas: pyarrow may as well use it
    import pyarrow as pa

    stand_in = types.ModuleType("pandas")
    stand_in.__version__ = "0"  # type: ignore[attr-defined]
    sys.modules["pandas"] = stand_in
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "pyarrow requires pandas 2.2.2 or above"
            pa.array([0])
    finally:
        if sys.modules.get("pandas") is stand_in:
            del sys.modules["pandas"]
