import pytest

from mlops_assets.core.spec import SpecError, load_spec, spec_from_dict

MINIMAL = {"name": "x", "timestamp": {"column": "ts", "timezone": "UTC"}, "target": {"column": "y"}}


def test_demo_spec_names_every_role():
    spec = load_spec()
    assert spec.timestamp == "period" and spec.group == "subregion" and spec.target.column == "load_mw"
    assert spec.required_columns[:3] == ["subregion", "period", "load_mw"]
    assert min(spec.lags_hours) >= spec.horizon_hours == 24


def test_spec_from_env_var(tmp_path, monkeypatch):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\ntimestamp: {column: when}\ntarget: {column: sales}\nfeatures: {numeric: [price]}\n")
    monkeypatch.setenv("MLOPS_DATASET_SPEC", str(path))
    spec = load_spec()
    assert (spec.name, spec.timestamp, spec.group, spec.numeric_columns) == ("mine", "when", None, ["price"])
    assert spec.key_columns == ["when"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"preparation": {"lags_hours": [1, 24]}}, "shorter than the forecast horizon"),
        ({"timestamp": {"column": "ts", "timezone": "Mars/Olympus"}}, "unknown time zone"),
        ({"split": {"train_fraction": 0.9, "validation_fraction": 0.2}}, "split fractions"),
        ({"target": {"column": "y", "on_out_of_range": "clip"}}, "on_out_of_range"),
        ({"target": {"column": "y", "min": 5, "max": 1}}, "min 5"),
        ({"group": "ts"}, "columns used twice"),
        ({"features": {"numeric": ["temp", "__run"]}}, r"reserved .*\['__run'\]"),
        ({"group": "__g"}, "reserved"),
        ({"features": {"numeric": [{"column": "hour", "known_in_advance": False}]}}, r"\['hour'\] have the names of columns the platform generates"),
        ({"features": {"numeric": ["y_lag_24h"]}}, r"\['y_lag_24h'\]"),
        ({"group": "is_holiday"}, "the platform generates"),
        ({"frequency": "fortnightly"}, "frequency"),
        ({"frequency": "2h"}, "not supported"),
    ],
)
def test_invalid_specs_are_rejected_with_the_field(change, message):
    with pytest.raises(SpecError, match=message):
        spec_from_dict({**MINIMAL, **change}, source="bad.yaml")


def test_missing_required_field():
    with pytest.raises(SpecError, match="'target'"):
        spec_from_dict({"name": "x", "timestamp": "ts"})


def test_missing_values_and_feature_roles():
    spec = spec_from_dict(
        {
            **MINIMAL,
            "missing_values": ["NA", " - "],
            "target": {"column": "y", "allow_missing": False},
            "features": {"numeric": ["t", {"column": "price", "known_in_advance": False}], "temperature": "t"},
            "calendar": {"holidays_country": "AU", "holidays_subdivision": "VIC", "holiday_column": "school_break"},
        }
    )
    assert spec.missing_values == ("NA", "-") and not spec.target.allow_missing
    assert spec.known_numeric_columns == ["t", "school_break"] and spec.observed_only_columns == ["price"]
    assert spec.temperature_column == "t" and spec.holidays_subdivision == "VIC"
    assert spec_from_dict(MINIMAL).missing_values == ("", "NA", "NaN", "null")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"features": {"numeric": [{"column": "p", "known_in_advance": "no"}]}}, "known_in_advance must be true"),
        ({"features": {"numeric": ["p"], "temperature": "temp"}}, "features.temperature 'temp' must be one of"),
        ({"missing_values": "NA"}, "missing_values must be a list"),
        ({"preparation": {"lags": ["3 weeks?"]}}, "is not a duration"),
    ],
)
def test_roles_and_tokens_are_validated(change, message):
    with pytest.raises(SpecError, match=message):
        spec_from_dict({**MINIMAL, **change}, source="bad.yaml")


def test_retire_after_is_a_duration_with_a_week_by_default():
    assert spec_from_dict(MINIMAL).retire_after_hours == 168
    assert spec_from_dict({**MINIMAL, "preparation": {"retire_after": "3d"}}).retire_after_hours == 72
    half_hourly = spec_from_dict({**MINIMAL, "frequency": "30min", "preparation": {"retire_after": "90min"}})
    assert half_hourly.retire_after_hours == 1.5
    assert {load_spec(p).retire_after_hours for p in _shipped_specs()} == {168}


def _shipped_specs():
    from pathlib import Path

    import mlops_assets

    return sorted((Path(mlops_assets.__file__).parent / "specs").glob("*.yaml"))


@pytest.mark.parametrize(
    "retire_after, message",
    [("0h", "retire_after must be positive"), ("90min", "retire_after 90min is not a whole number of 1h steps"),
     (-48, "negative"), ("soon", "is not a duration")],
)
def test_retire_after_is_validated(retire_after, message):
    with pytest.raises(SpecError, match=message):
        spec_from_dict({**MINIMAL, "preparation": {"retire_after": retire_after}}, source="bad.yaml")
