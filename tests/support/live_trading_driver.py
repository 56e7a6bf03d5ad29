"""``python tests/support/live_trading_driver.py ROOT URL RUN_ID MAX_BARS [--crash SPEC]
[--invisible-s S]``: one live run (``run_live``, real orders) against ``workbench fake-exchange``
at URL in another process, for the kill -9 tests of live trading
(tests/live/test_live_trading_process.py). The key pair comes from ``WB_VENUE__API_KEY`` and
``WB_VENUE__API_SECRET``; the warehouse is ``ROOT/wh/w.duckdb``, the run directory
``ROOT/runs/RUN_ID``. A run with a journal already resumes it.

``--crash SPEC`` SIGKILLs this process (nothing in production code: the child patches itself):

* ``before:N``: before the Nth order request leaves (its order record and NEW are journaled);
* ``after:N``: just after the Nth order request was answered, before the answer is journaled;
* ``resolve:N``: at the Nth query of an order whose outcome is unknown.

It prints ``ready`` before the run and ``done STATUS BARS`` after it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # live_loop_strategies

from binance.client import Client

from workbench.brokers.binance import BinanceBroker
from workbench.engine import live as live_module
from workbench.engine.live import LiveOptions, run_live

CONFIG = """run: {{name: live-crash}}
data: {{symbols: [BTCUSDT], timeframe: 1m}}
strategy:
  class: "live_loop_strategies:Ticker"
  params: {{every: 4, hold: 2, qty: 0.001}}
portfolio: {{initial_cash: 10000, quote: USDT}}
costs: {{fee_bps: 10, slippage_bps: 0}}
risk: {{allowed_symbols: [BTCUSDT], max_order_notional: 100}}
venue: {{base_url: "{url}", recv_window_ms: 10000}}
live: {{warmup_bars: 5, snapshot_every_bars: 20, gap_tolerance_bars: 1,
       invisible_s: {invisible_s}, reconcile_every_bars: 10}}
"""


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def patch(spec: str) -> None:
    where, _, nth = spec.partition(":")
    n = int(nth)
    calls = {"n": 0}
    if where in ("before", "after"):
        real = Client.create_order

        def create_order(self: Any, **params: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == n and where == "before":
                die()
            answer = real(self, **params)
            if calls["n"] == n:
                die()
            return answer

        Client.create_order = create_order  # type: ignore[method-assign]
    elif where == "resolve":
        resolve = BinanceBroker._resolve

        def dying_resolve(self: BinanceBroker, *args: Any) -> None:
            calls["n"] += 1
            if calls["n"] == n:
                die()
            resolve(self, *args)

        BinanceBroker._resolve = dying_resolve  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown crash point {spec!r}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("url")
    parser.add_argument("run_id")
    parser.add_argument("max_bars", type=int)
    parser.add_argument("--crash")
    parser.add_argument("--invisible-s", type=float, default=0.5)
    args = parser.parse_args()
    config = args.root / "live.yaml"
    config.write_text(CONFIG.format(url=args.url, invisible_s=args.invisible_s))
    if args.crash:
        patch(args.crash)
    # the contract-test gate is proved in its own test; here every start would rerun the suite
    live_module.check_contract_gate = lambda cfg, warehouse: None
    print("ready", flush=True)
    result = run_live(config, "live", run_id=args.run_id, warehouse=args.root / "wh" / "w.duckdb",
                      runs_dir=args.root / "runs", options=LiveOptions(max_bars=args.max_bars),
                      confirm_live=True)
    print("done", result.status, result.bars, flush=True)


if __name__ == "__main__":
    main()
