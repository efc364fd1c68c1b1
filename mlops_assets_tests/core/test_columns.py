"""Column descriptions: from the dataset spec and for every generated column."""

from mlops_assets.core.columns import PREDICTION_DESCRIPTIONS, column_descriptions
from mlops_assets.core.features import BASELINE_COLUMNS, feature_columns, generated_columns
from mlops_assets.core.spec import load_spec

SPEC = load_spec()


def test_every_feature_and_generated_column_has_its_own_description():
    columns = [SPEC.timestamp, SPEC.target.column, *feature_columns(SPEC), *generated_columns(SPEC), *PREDICTION_DESCRIPTIONS]
    described = column_descriptions(SPEC, columns)
    assert set(described) == set(columns)
    generic = [name for name, text in described.items() if "not named in the dataset spec" in text]
    assert generic == []
    assert all(text.strip() for text in described.values())


def test_descriptions_say_what_the_spec_says():
    described = column_descriptions(SPEC, [SPEC.timestamp, SPEC.target.column, SPEC.group, "temperature_c", "load_mw_lag_168h"])
    assert SPEC.timezone in described[SPEC.timestamp] and "UTC" in described[SPEC.timestamp]
    assert described[SPEC.target.column].startswith("Target") and "0 .. 100000" in described[SPEC.target.column]
    assert "known in advance" in described["temperature_c"] and "-60 .. 60" in described["temperature_c"]
    assert "168h earlier" in described["load_mw_lag_168h"] and "load_mw" in described["load_mw_lag_168h"]
    for baseline in BASELINE_COLUMNS:
        assert "not a model input" in column_descriptions(SPEC, [baseline])[baseline]


def test_an_unknown_column_or_a_missing_spec_still_gets_a_description():
    assert "not named in the dataset spec" in column_descriptions(SPEC, ["surprise"])["surprise"]
    described = column_descriptions(None, ["prediction", "hour", "load_mw"])
    assert described["prediction"] == PREDICTION_DESCRIPTIONS["prediction"] and "Hour" in described["hour"]
    assert described["load_mw"]
