"""Configs and a CSV reader the parity tests share."""

from __future__ import annotations

from workbench.parity.harness import read_rows

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


rows = read_rows  # a run file's rows as dicts
