"""The champion's reference: built from the splits and the version's forecasts, bounded,
and stored to files and read back unchanged (odd labels, time zones, no group)."""

import numpy as np
import polars as pl
import pytest

from mlops_assets.core.features import build_features, feature_columns
from mlops_assets.core.profile import build_profile
from mlops_assets.core.reference import PREDICTION, build_reference, read_reference, write_reference
from mlops_assets.core.spec import load_spec, spec_from_dict
from mlops_assets_tests.builders import hourly_frame

SPEC = load_spec()
# A single series at 30 min in a zone with daylight saving.
SINGLE = spec_from_dict({
    "name": "one", "frequency": "30min", "timestamp": {"column": "ts", "timezone": "Europe/Berlin"},
    "target": {"column": "y"}, "features": {"numeric": ["x"]},
})


def _reference(groups, reference_rows=50, recent_days=2.0, spec=SPEC):
    frame, _ = build_features(hourly_frame(spec, groups, 24 * 20), spec)
    ts = pl.col(spec.timestamp)
    cut = frame.get_column(spec.timestamp).sort()[int(frame.height * 0.7)]
    train, test = frame.filter(ts < cut), frame.filter(ts >= cut)
    grouped = [spec.group] if spec.group else []
    profile = build_profile(train, numeric=[spec.target.column], categorical=grouped, bins=10, group=spec.group, timestamp=spec.timestamp)
    reference = build_reference(
        "7", train.lazy(), test, lambda rows: rows.get_column(spec.target.column).to_numpy() * 1.01,
        columns=[*spec.key_columns, *feature_columns(spec), spec.target.column], timestamp=spec.timestamp, profile=profile,
        importance={"temperature_c": np.float64(0.4)}, scales={"overall": np.float32(3.5), "by_group": {g: 1.0 for g in groups or []}},
        data_versions={"train_set": "abc"}, reference_rows=reference_rows, recent_days=recent_days,
    )
    return reference, train, test


def test_reference_is_bounded_and_carries_the_versions_own_forecast_of_the_newest_test_rows():
    reference, train, test = _reference(["Zone A/B (ö)", "north"], reference_rows=50, recent_days=2)
    assert 0 < reference.train_sample.height <= 50 < train.height
    newest = test.get_column(SPEC.timestamp).max()
    recent_ts = reference.recent.get_column(SPEC.timestamp)
    assert recent_ts.max() == newest and (newest - recent_ts.min()).total_seconds() < 2 * 86400
    assert reference.recent.height < test.height
    np.testing.assert_allclose(reference.recent.get_column(PREDICTION).to_numpy(), reference.recent.get_column(SPEC.target.column).to_numpy() * 1.01)
    assert reference.groups(SPEC.group) == ["Zone A/B (ö)", "north"]
    assert reference.describe(SPEC.timestamp)["recent_to"] == str(newest)


@pytest.mark.parametrize("groups, spec", [(["Zone A/B (ö)", "north"], SPEC), (None, SINGLE)])
def test_reference_round_trips_through_files(tmp_path, groups, spec):
    reference, _, _ = _reference(groups, spec=spec)
    reference.calibration = {"weighted_drift": {"threshold": 0.3, "null": [0.1, 0.2]}}
    paths = write_reference(reference, tmp_path / "ref")
    assert [p.name for p in paths if p.is_file() and p.parent == tmp_path / "ref"] == ["train_sample.parquet", "recent.parquet", "reference.json"]
    back = read_reference(tmp_path / "ref")
    assert back.version == "7" and back.importance == {"temperature_c": 0.4} and back.scales["overall"] == 3.5
    assert back.train_sample.equals(reference.train_sample) and back.recent.equals(reference.recent)
    assert back.recent.schema[spec.timestamp] == reference.recent.schema[spec.timestamp]  # the time zone survives
    assert back.groups(spec.group) == sorted(groups or [])
    assert back.profile == reference.profile and back.calibration == reference.calibration
    assert back.data_versions == {"train_set": "abc"}


def test_an_empty_test_set_gives_an_empty_recent_part(tmp_path):
    frame, _ = build_features(hourly_frame(SPEC, ["a"], 24 * 10), SPEC)
    reference = build_reference(
        "1", frame, frame.head(0), lambda rows: np.zeros(rows.height), columns=frame.columns, timestamp=SPEC.timestamp,
        profile={"columns": {}}, importance={}, scales={}, data_versions={}, reference_rows=10, recent_days=28,
    )
    assert reference.recent.height == 0 and PREDICTION in reference.recent.columns
    write_reference(reference, tmp_path)
    assert read_reference(tmp_path).recent.height == 0
