"""Request checks of the server: each problem names the column and the row."""

import json
from pathlib import Path

import pytest

from mlops_assets.core.features import build_features, feature_columns
from mlops_assets.core.request_checks import RequestError, check_request, parse_request, validated, value_ranges
from mlops_assets.core.spec import load_spec
from mlops_assets_tests.builders import hourly_frame

import polars as pl

SPEC = load_spec()
SPECS = Path(__file__).resolve().parents[2] / "mlops_assets" / "specs"


def _records(spec, groups, n=3) -> list[dict]:
    features, _ = build_features(hourly_frame(spec, groups, 24 * 10), spec)
    rows = features.select(spec.timestamp, *feature_columns(spec)).tail(n)
    return rows.with_columns(pl.col(spec.timestamp).dt.strftime("%Y-%m-%dT%H:%M:%S%:z")).to_dicts()


def _problems(spec, records) -> list[tuple]:
    _, problems = check_request(parse_request(json.dumps({"dataframe_records": records})), spec)
    return [(p.row, p.column, p.problem) for p in problems]


def test_ranges_come_from_the_spec():
    ranges = value_ranges(SPEC)
    assert ranges["temperature_c"] == (-60.0, 60.0) and ranges["temperature_c_roll_mean_24h"] == (-60.0, 60.0)
    assert ranges["load_mw_lag_168h"] == (0.0, 100000.0) and ranges["load_mw_roll_mean_24h"] == (0.0, 100000.0)
    assert ranges["load_mw_roll_std_24h"] == (0.0, 100000.0)
    assert ranges["hour"] == (0, 23) and ranges["week_sin"] == (-1.0, 1.0)


def test_a_good_request_passes_and_both_formats_read_the_same():
    records = _records(SPEC, ["A", "Zone A/B (ö)"])
    columns = list(records[0])
    split = {"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in records]}}
    a = validated(json.dumps({"dataframe_records": records}), SPEC)
    b = validated(json.dumps(split), SPEC)
    assert a.equals(b) and str(a[SPEC.timestamp].dtype) == "datetime64[ns]"


def test_every_problem_names_its_column_and_row():
    records = _records(SPEC, ["A"], 5)
    records[0]["hour"] = 24
    records[1]["load_mw_lag_24h"] = None
    records[2]["precipitation_mm"] = "heavy"
    records[3][SPEC.group] = ""
    records[4]["is_weekend"] = 0.5
    assert _problems(SPEC, records) == [
        (0, "hour", "is above the spec's maximum 23"),
        (1, "load_mw_lag_24h", "is null, and it is a required feature"),
        (2, "precipitation_mm", "is not a number"),
        (3, SPEC.group, "the group label is empty"),
        (4, "is_weekend", "is not a whole number"),
    ]


def test_optional_features_may_be_null_or_left_out():
    records = _records(SPEC, ["A"])
    for r in records:
        r["temperature_c"] = None
        del r["load_mw_lag_168h"]
    frame = validated(json.dumps({"dataframe_records": records}), SPEC)
    assert frame["load_mw_lag_168h"].isna().all() and frame["temperature_c"].isna().all()


def test_a_single_half_hourly_series_needs_no_group():
    spec = load_spec(SPECS / "half_hourly_demand.yaml")
    assert spec.group is None
    records = _records(spec, None)
    assert validated(json.dumps({"dataframe_records": records}), spec).shape[0] == 3
    records[1]["minute_of_day_sin"] = 1.5
    assert _problems(spec, records) == [(1, "minute_of_day_sin", "is above the spec's maximum 1")]


def test_malformed_json_is_a_bad_request():
    with pytest.raises(RequestError) as error:
        validated(b"[1, 2]", SPEC)
    assert error.value.error_code == "BAD_REQUEST" and "dataframe_split" in error.value.message
    with pytest.raises(RequestError) as error:
        validated(json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}), SPEC)
    assert "list of 2 values" in error.value.message
