"""The reference peer: a minimal plain-Python loop running the same SMA-cross strategy.

No engine, no objects per bar: a list of closes, two deques and ``math.fsum``, market fills at
the close with the same slippage and fee, cash and position, and one equity value per bar. This
is the floor a bar loop in Python can reach; the engine is measured against it in the same run.
"""

from __future__ import annotations

from collections import deque
from math import fsum


def sma_cross(closes: list[float], fast: int, slow: int, qty: float, cash: float,
              fee_bps: float, slippage_bps: float) -> tuple[int, float, list[float]]:
    """Run the strategy; return (fills, final equity, equity per bar)."""
    fq: deque[float] = deque(maxlen=fast)
    sq: deque[float] = deque(maxlen=slow)
    buy_mult = 1.0 + slippage_bps / 1e4
    sell_mult = 1.0 - slippage_bps / 1e4
    fee_rate = fee_bps / 1e4
    position = 0.0
    fills = 0
    prev_f = prev_s = None
    equity: list[float] = []
    append = equity.append
    for close in closes:
        fq.append(close)
        sq.append(close)
        if len(sq) == slow and len(fq) == fast:
            f = fsum(fq) / fast
            s = fsum(sq) / slow
            if prev_f is not None:
                if prev_f <= prev_s and f > s:
                    if position == 0.0:
                        price = close * buy_mult
                        cash -= qty * price + qty * price * fee_rate
                        position = qty
                        fills += 1
                elif prev_f >= prev_s and f < s and position > 0.0:
                    price = close * sell_mult
                    cash += position * price - position * price * fee_rate
                    position = 0.0
                    fills += 1
            prev_f, prev_s = f, s
        append(cash + position * close)
    return fills, equity[-1] if equity else cash, equity
