"""Bar files for tests of the venue client and the REST feed against the fake exchange."""

from __future__ import annotations

from pathlib import Path

T0 = 1_704_067_200_000
MIN = 60_000


def write_bars(path: Path, count: int, missing: tuple[int, ...] = ()) -> Path:
    lines = ["ts,open,high,low,close,volume"]
    for i in range(count):
        if i not in missing:
            p = 42_000 + i
            lines.append(f"{T0 + i * MIN},{p:.2f},{p + 5:.2f},{p - 3:.2f},{p + 1:.2f},1.5")
    path.write_text("\n".join(lines) + "\n")
    return path
