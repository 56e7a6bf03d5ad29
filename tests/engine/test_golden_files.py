"""The demo config on the bundled sample gives the same files, to the byte, as the version that
pinned them (a820322, before costs, fees in kind, latency and calendars): new settings at their
defaults change nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cli_runs import sample_warehouse

from workbench.engine.run import run_backtest

ROOT = Path(__file__).resolve().parents[2]
PINNED = {
    "trades.csv": "2766f72064b58d357d0dfe21f1b76ca3f82b53d99ac79bb1196aa900602edd99",
    "equity.csv": "c41cdc370998b713367e63cb8265bc845d73f576cf7b4246bf1b92e94860367a",
    "fills.csv": "207988892d1b67af380985087925621b204a2d0b8c6cf07005efea8e4c3be658",
    "orders.csv": "5bcc1ca42ceb22c92e941cda07a90601702c09bd1f2eb96d37b5a921c2f1fbba",
}


def test_golden_demo_config_on_the_sample_gives_the_pinned_files(tmp_path: Path) -> None:
    db = sample_warehouse(tmp_path / "golden.duckdb")
    run = run_backtest(ROOT / "configs" / "sma_demo.yaml", warehouse=db, out=tmp_path / "run",
                       env={}, progress=False)
    got = {name: hashlib.sha256((run.run_dir / name).read_bytes()).hexdigest()
           for name in PINNED}
    assert got == PINNED
