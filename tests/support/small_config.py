"""The small SMA-cross run config the CLI tests write (5/20 on a few hundred bars)."""

from __future__ import annotations


def sma_config(name: str, *, strategy: str = "workbench.strategies.sma_cross:SmaCross",
               seed: int = 0, costs: str = "fee_bps: 10, slippage_bps: 5, spread_bps: 0") -> str:
    return (
        f"run: {{name: {name}, seed: {seed}}}\n"
        "data: {symbols: [BTCUSDT], timeframe: 1m, gaps: fail}\n"
        "strategy:\n"
        f'  class: "{strategy}"\n'
        "  params: {fast: 5, slow: 20, qty: 0.1}\n"
        "portfolio: {initial_cash: 10000, quote: USDT}\n"
        f"costs: {{{costs}, min_notional: 0, fill_at: close}}\n")
