"""What each stored column means, in words a person reads in a table's schema: the dataset
spec's columns (timestamp, group, target, features) and the columns the pipeline generates
(calendar, lags, rolling statistics, baselines, prediction columns). Pure: no dagster here."""

from __future__ import annotations

from collections.abc import Iterable

from mlops_assets.core.features import (
    BASELINE_HOURS, lag_sources, rolling_columns, temperature_columns, temperature_windows,
)
from mlops_assets.core.ingest import ROW_COLUMN
from mlops_assets.core.spec import ColumnSpec, DatasetSpec, duration_label

CALENDAR_DESCRIPTIONS = {
    "hour": "Hour of the day (0-23), local time of the spec's time zone.",
    "day_of_week": "Day of the week, 1 = Monday ... 7 = Sunday (local time).",
    "month": "Month of the year, 1-12 (local time).",
    "day_of_year": "Day of the year, 1-366 (local time).",
    "is_weekend": "1 on Saturdays and Sundays (local time), else 0.",
    "is_holiday": "1 on a public holiday of the spec's calendar, else 0.",
    "is_day_before_holiday": "1 on the day before a public holiday, else 0.",
    "is_day_after_holiday": "1 on the day after a public holiday, else 0.",
    "minute_of_day_sin": "Time of day on a circle (sine), local time.",
    "minute_of_day_cos": "Time of day on a circle (cosine), local time.",
    "week_sin": "Position in the week on a circle (sine), local time.",
    "week_cos": "Position in the week on a circle (cosine), local time.",
    "day_of_year_sin": "Position in the year on a circle (sine), local time.",
    "day_of_year_cos": "Position in the year on a circle (cosine), local time.",
}
# Columns batch_predictions adds to the features of a batch.
PREDICTION_DESCRIPTIONS = {
    "prediction": "The champion model's forecast of the target for this row.",
    "model_version": "Registered model version that made the prediction (the champion when scored).",
    "served_by": '"model" when the champion knows the row\'s group, "fallback" when its group-agnostic fallback served it.',
    "new_group": "True when the row's group was not in the champion's training data.",
}


def _unit(column: ColumnSpec) -> str:
    unit = getattr(column, "unit", None)  # a spec field when the spec declares one
    return f" ({unit})" if unit else ""


def _range(column: ColumnSpec) -> str:
    if column.min is None and column.max is None:
        return ""
    low = "-inf" if column.min is None else f"{column.min:g}"
    high = "inf" if column.max is None else f"{column.max:g}"
    return f"; valid range {low} .. {high}"


def _spec_descriptions(spec: DatasetSpec) -> dict[str, str]:
    target = spec.target
    out = {
        spec.timestamp: f"Timestamp of the reading, stored in UTC (local time zone {spec.timezone}; every {spec.frequency}).",
        target.column: getattr(target, "description", None)
        or f"Target: the value the models forecast{_unit(target)}{_range(target)}."
        + (f" Dataset: {spec.description}" if spec.description else ""),
    }
    if spec.group:
        out[spec.group] = "Group (series) the row belongs to; each group is forecast as its own series."
    for column in spec.numeric_features:
        known = "known in advance (an input at t)" if column.known_in_advance else "observed only (an input only as lags)"
        out[column.column] = getattr(column, "description", None) or f"Numeric feature{_unit(column)}, {known}{_range(column)}."
    for name in spec.categorical_features:
        out[name] = "Categorical feature from the data."
    if spec.holiday_column:
        out[spec.holiday_column] = "1 on a holiday, as the data says (the spec's holiday column), else 0."
    return out


def _generated_descriptions(spec: DatasetSpec) -> dict[str, str]:
    out = dict(CALENDAR_DESCRIPTIONS)
    horizon = duration_label(spec.horizon_hours)
    for name, (source, hours) in lag_sources(spec).items():
        out[name] = f"{source} of the same group {duration_label(hours)} earlier (lag; at least the {horizon} horizon)."
    y = spec.target.column
    for name in rolling_columns(spec):
        stat, window = name[len(f"{y}_roll_"):].split("_", 1)
        what = "mean" if stat == "mean" else "standard deviation"
        out[name] = f"Rolling {what} of {y} over {window}, of values up to t - {horizon} (same group)."
    for name, window in zip(temperature_columns(spec), temperature_windows(spec)):
        out[name] = f"Rolling mean of {spec.temperature_column} over the last {duration_label(window)} (same group)."
    for name, hours in BASELINE_HOURS.items():
        out[name] = f"Baseline forecast: {y} of the same group {duration_label(hours)} earlier (reference only, not a model input)."
    out[ROW_COLUMN] = "Row number in the landed file (1 = first data row)."
    return {**out, **PREDICTION_DESCRIPTIONS}


def column_descriptions(spec: DatasetSpec | None, columns: Iterable[str]) -> dict[str, str]:
    """A description for each of `columns`: from the spec for its own columns, generated for the
    columns the pipeline adds; a column neither knows gets a generic text. Without a spec, only
    the spec-independent columns (prediction columns, calendar) are described specifically."""
    known = {**CALENDAR_DESCRIPTIONS, **PREDICTION_DESCRIPTIONS}
    if spec is not None:
        known = {**_generated_descriptions(spec), **_spec_descriptions(spec)}
    return {name: known.get(name) or f"Column {name!r} as delivered in the data (not named in the dataset spec)." for name in columns}
