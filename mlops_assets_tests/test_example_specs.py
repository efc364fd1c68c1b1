"""The example specs shipped for the walk-through (docs/your_own_data.md) load and say what the
walk-through says they do."""

from datetime import timedelta
from pathlib import Path

from mlops_assets.core.spec import load_spec

SPECS = Path(__file__).resolve().parents[1] / "mlops_assets" / "specs"


def test_half_hourly_single_series_with_state_holidays():
    spec = load_spec(SPECS / "half_hourly_demand.yaml")
    assert spec.frequency_delta == timedelta(minutes=30) and spec.group is None
    assert (spec.timezone, spec.holidays_country, spec.holidays_subdivision) == ("Australia/Melbourne", "AU", "VIC")
    assert spec.temperature_column == "temperature_c" and spec.steps(spec.horizon_hours) == 48
    assert spec.key_columns == ["settlement_date"]


def test_hourly_multi_group_with_na_tokens_and_a_target_below_zero():
    spec = load_spec(SPECS / "hourly_multi_group.yaml")
    assert spec.frequency_delta == timedelta(hours=1) and spec.group == "zone"
    assert "NA" in spec.missing_values and spec.target.min < 0 and spec.target.allow_missing
    assert (spec.holidays_country, spec.holidays_subdivision) == ("CH", "ZH")
    assert [c.column for c in spec.numeric_features] == ["temperature_c", "humidity"]
