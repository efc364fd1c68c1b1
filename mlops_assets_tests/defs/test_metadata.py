"""Metadata helpers: tables with a schema, floats rounded to significant digits."""

import math
from datetime import datetime, timezone

import dagster as dg
import polars as pl
import pytest

from mlops_assets.defs.metadata import counts, rounded, significant, table_metadata


def test_a_frame_becomes_a_typed_table_with_rounded_values():
    frame = pl.DataFrame({
        "group": ["A", "R&D <1>|x"], "mae": [1.23456789123, 98765.4321], "rows": [3, 4], "chosen": [True, False],
        "at": [datetime(2024, 1, 1, tzinfo=timezone.utc)] * 2, "gap": [float("nan"), None],
    })
    table = table_metadata(frame, descriptions={"mae": "mean absolute error"})
    assert isinstance(table, dg.TableMetadataValue)
    columns = {c.name: c for c in table.schema.columns}
    assert [c.name for c in table.schema.columns] == frame.columns
    assert {name: c.type for name, c in columns.items()} == {
        "group": "string", "mae": "float", "rows": "int", "chosen": "bool", "at": "datetime", "gap": "float",
    }
    assert columns["mae"].description == "mean absolute error" and columns["group"].description is None
    first, second = (r.data for r in table.records)
    assert first == {"group": "A", "mae": 1.235, "rows": 3, "chosen": True, "at": "2024-01-01 00:00:00+00:00", "gap": None}
    assert second["group"] == "R&D <1>|x" and second["mae"] == 98770.0 and second["gap"] is None


def test_no_float_in_a_table_has_more_than_four_significant_digits():
    frame = pl.DataFrame({"x": [math.pi * 10**k for k in range(-6, 7)]})
    for record in table_metadata(frame).records:
        value = record.data["x"]
        assert value == float(f"{value:.4g}") and len(f"{value:.4g}") <= 10


def test_a_long_table_shows_max_rows_and_says_so():
    frame = pl.DataFrame({"group": [str(i) for i in range(30)], "n": list(range(30))})
    table = table_metadata(frame, max_rows=10, descriptions={"group": "the group"})
    assert len(table.records) == 10
    assert table.schema.columns[0].description == "the group (first 10 of 30 rows shown)"


def test_an_empty_frame_keeps_its_columns():
    table = table_metadata(pl.DataFrame(schema={"feature": pl.String, "psi": pl.Float64}))
    assert [c.name for c in table.schema.columns] == ["feature", "psi"] and table.records == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.123456789, 0.1235), (12345.678, 12350.0), (-0.000123456, -0.0001235), (0.0, 0.0), (7.0, 7.0)],
)
def test_significant_digits(value, expected):
    assert significant(value) == expected


def test_significant_keeps_nan_and_infinity():
    assert math.isnan(significant(float("nan"))) and significant(float("inf")) == float("inf")


def test_counts_round_floats_and_keep_ints():
    out = counts({"mae": 1.0000000000000002, "rows": 12, "skill": 0.987654321, "flag": True, "none": None})
    assert out == {"mae": dg.MetadataValue.float(1.0), "rows": dg.MetadataValue.int(12), "skill": dg.MetadataValue.float(0.9877)}
    assert rounded(0.333333333) == 0.3333 and rounded("text") == "text" and rounded(5) == 5
