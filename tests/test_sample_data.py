"""sample_data/generate.py reproduces the committed synthetic CSV byte for byte, and the file is
what sample_data/README.md says it is."""

from __future__ import annotations

import csv
import importlib.util
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"
COMMITTED = SAMPLE / "btcusdt_1m_2024-01_synthetic.csv"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sample_data_generate", SAMPLE / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "regenerated.csv"
    load_generator().main(out)
    return out


def test_generate_main_reproduces_committed_csv_byte_for_byte(regenerated: Path) -> None:
    assert regenerated.read_bytes() == COMMITTED.read_bytes()


def test_generate_main_default_output_is_the_committed_file() -> None:
    assert load_generator().OUTPUT == COMMITTED


def test_generate_main_writes_to_the_given_path_and_reports_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "small.csv"
    module = load_generator()
    module.MINUTES = 3  # main reads the module constants at call time
    module.main(out)
    assert capsys.readouterr().out.strip() == f"wrote 3 synthetic bars to {out}"
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines == COMMITTED.read_text(encoding="utf-8").splitlines()[:4]


def test_sample_csv_matches_its_readme_description() -> None:
    text = COMMITTED.read_text(encoding="utf-8")
    assert "\r" not in text
    assert text.endswith("\n")
    rows = list(csv.reader(text.splitlines()))
    assert rows[0] == ["ts", "open", "high", "low", "close", "volume"]
    bars = rows[1:]
    assert len(bars) == 31 * 24 * 60 == 44_640
    assert bars[0][0] == "2024-01-01T00:00:00.000Z"
    assert bars[-1][0] == "2024-01-31T23:59:00.000Z"
    assert bars[0][1] == "42000.00"


def test_sample_csv_has_no_gaps_and_valid_ohlc_on_a_cent_grid() -> None:
    rows = list(csv.reader(COMMITTED.read_text(encoding="utf-8").splitlines()))[1:]
    stamps = [datetime.strptime(r[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC) for r in rows]
    steps = {(b - a).total_seconds() for a, b in pairwise(stamps)}
    assert steps == {60.0}
    for ts, o, h, lo, c, v in rows:
        assert all(len(p.split(".")[1]) == 2 for p in (o, h, lo, c)), ts
        assert float(lo) <= min(float(o), float(c)) <= max(float(o), float(c)) <= float(h), ts
        assert float(v) >= 0, ts
    closes = [r[4] for r in rows]
    opens = [r[1] for r in rows]
    assert opens[1:] == closes[:-1]  # each bar opens at the previous close


def test_generate_main_eth_reproduces_committed_eth_csv_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "eth.csv"
    load_generator().main_eth(out)
    assert out.read_bytes() == (SAMPLE / "ethusdt_1m_2024-01_synthetic.csv").read_bytes()
