"""`workbench ingest` and `workbench backtest` do not import pandas (pyarrow would, to probe its
inputs: 0.2-0.3 s of a year's backtest), and pandas still works in such a process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pandas")  # installed with the parity extra (make test)

ROOT = Path(__file__).resolve().parent.parent


def run(script: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("command", ["ingest", "backtest"])
def test_cli_command_never_imports_pandas(tmp_path: Path, command: str) -> None:
    wh = str(tmp_path / "w.duckdb")
    sample = str(ROOT / "sample_data" / "btcusdt_1m_2024-01_synthetic.csv")
    ingest = ["--warehouse", wh, "ingest", sample, "--symbol", "BTCUSDT"]
    backtest = ["--warehouse", wh, "backtest", "--config", str(ROOT / "configs" /
                                                                "sma_demo.yaml"), "--out", "r"]
    if command == "backtest":
        subprocess.run([sys.executable, "-m", "workbench", *ingest], check=True,
                       capture_output=True, timeout=300)
    argv = ingest if command == "ingest" else backtest
    out = run(f"""
import sys
from workbench.cli import main
assert main({argv!r}) == 0
print("pandas" in sys.modules)
""", tmp_path)
    assert out.splitlines()[-1] == "False"


def test_skip_then_pandas_still_converts_through_arrow(tmp_path: Path) -> None:
    out = run("""
from workbench import pandas_probe
import pyarrow as pa
pandas_probe.skip()
import pandas as pd
frame = pd.DataFrame({"x": [1.5, None], "s": ["a", "b"]})
table = pa.Table.from_pandas(frame, preserve_index=False)
assert table.to_pandas().equals(frame)
assert pa.array(pd.Series([1.0, None])).null_count == 1
print("ok")
""", tmp_path)
    assert out == "ok"
