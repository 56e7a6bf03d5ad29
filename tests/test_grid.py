"""The grid of a sweep: ``--grid`` items and their cartesian product."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from workbench.errors import ConfigError
from workbench.grid import label, parse_grid, points


def test_points_cartesian_product_last_key_fastest_values_parsed_as_set():
    got = points(parse_grid(["strategy.params.fast=3,5", "costs.fee_bps=0,2.5"]))

    assert [p.params for p in got] == [
        {"strategy.params.fast": 3, "costs.fee_bps": 0},
        {"strategy.params.fast": 3, "costs.fee_bps": 2.5},
        {"strategy.params.fast": 5, "costs.fee_bps": 0},
        {"strategy.params.fast": 5, "costs.fee_bps": 2.5}]
    assert got[1].label == "fast=3,costs.fee_bps=2.5"


@pytest.mark.parametrize("item", ["fast", "strategy.params.fast=", "a=1,,2"])
def test_parse_grid_malformed_item_is_config_error(item: str):
    with pytest.raises(ConfigError, match="--grid expects KEY=V1,V2"):
        parse_grid([item])


def test_points_run_name_refused_the_sweep_names_its_runs():
    with pytest.raises(ConfigError, match="names its runs itself"):
        points({"run.name": ["a", "b"]})


def test_points_time_value_recorded_as_written_and_set_as_a_time():
    (point,) = points({"data.start": ["2024-01-15T00:00:00Z"]})

    assert point.params == {"data.start": "2024-01-15T00:00:00Z"}  # JSON, as the user wrote it
    assert point.overrides == ("data.start=2024-01-15T00:00:00Z",)
    assert label({"strategy.params.fast": 5, "data.start": datetime(2024, 1, 15, tzinfo=UTC)
                  .isoformat()}) == "fast=5,data.start=2024-01-15T00:00:00+00:00"
