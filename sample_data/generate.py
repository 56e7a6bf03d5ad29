"""Regenerate the synthetic sample: one month (January 2024) of BTCUSDT-like 1-minute bars.

    python sample_data/generate.py        # rewrites btcusdt_1m_2024-01_synthetic.csv

Deterministic: a test checks that this script reproduces the committed file byte for byte.
"""

from __future__ import annotations

import sys
from pathlib import Path

from workbench.feeds.synthetic import write_csv

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "btcusdt_1m_2024-01_synthetic.csv"
START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MINUTES = 31 * 24 * 60
SEED = 7


def main(out: Path = OUTPUT) -> None:
    rows = write_csv(out, START_MS, MINUTES, seed=SEED, price=42_000.0)
    print(f"wrote {rows} synthetic bars to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT)
