"""``python -m workbench.live --mode shadow|paper --config FILE ...``: the live commands.

The same as ``workbench shadow|paper --config FILE ...`` (the CLI parses the arguments)."""

from __future__ import annotations

import sys

from workbench.cli import entry_live

if __name__ == "__main__":
    entry_live(sys.argv[1:])
