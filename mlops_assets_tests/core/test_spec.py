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
        ({"frequency": "hourly"}, "frequency"),
    ],
)
def test_invalid_specs_are_rejected_with_the_field(change, message):
    with pytest.raises(SpecError, match=message):
        spec_from_dict({**MINIMAL, **change}, source="bad.yaml")


def test_missing_required_field():
    with pytest.raises(SpecError, match="'target'"):
        spec_from_dict({"name": "x", "timestamp": "ts"})
