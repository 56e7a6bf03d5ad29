"""Regenerate the synthetic samples: one month (January 2024) of BTCUSDT-like and ETHUSDT-like
1-minute bars.

    python sample_data/generate.py        # rewrites both CSVs
    python sample_data/generate.py OUT    # the BTCUSDT series to OUT

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
# the second symbol of the multi-symbol golden strategy (configs/rebalance_demo.yaml)
ETH_OUTPUT = HERE / "ethusdt_1m_2024-01_synthetic.csv"
ETH_SEED = 11


def main(out: Path = OUTPUT, *, seed: int = SEED, price: float = 42_000.0) -> None:
    rows = write_csv(out, START_MS, MINUTES, seed=seed, price=price)
    print(f"wrote {rows} synthetic bars to {out}")


def main_eth(out: Path = ETH_OUTPUT) -> None:
    main(out, seed=ETH_SEED, price=2_300.0)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        main()
        main_eth()
