"""Configs and a CSV reader the parity tests share."""

from __future__ import annotations

import csv
from pathlib import Path

SMA = {"run": {"name": "sma"}, "data": {"symbols": ["BTCUSDT"], "timeframe": "1m",
                                        "gaps": "fail"},
       "strategy": {"class": "workbench.strategies.sma_cross:SmaCross",
                    "params": {"fast": 10, "slow": 30, "qty": 0.1}},
       "portfolio": {"initial_cash": 10_000, "quote": "USDT"},
       "costs": {"fee_bps": 10, "slippage_bps": 5}}
FREE_SMA = {**SMA, "costs": {"fee_bps": 0, "slippage_bps": 0, "fill_at": "close"}}
PULLBACK = {**SMA, "strategy": {"class": "workbench.strategies.pullback_limit:PullbackLimit",
                                "params": {"qty": 0.05, "dip_bps": 15, "take_profit_bps": 25,
                                           "stop_bps": 60, "expire_bars": 5}},
            "costs": {"fee_bps": 2, "slippage_bps": 0}}


def rows(path: Path) -> list[dict[str, str]]:
    """A CSV file's rows as dicts."""
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))
