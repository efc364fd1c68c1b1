"""Checks of a scoring request against the dataset spec, before any model sees it.

A request is MLflow's JSON (`dataframe_split` or `dataframe_records`). Every problem names the
column and the row (0-based position in the request):
- a required column missing, or null in a row (`required_feature_columns(spec)` and the
  timestamp); other feature columns may be null or left out (sent to the model as missing);
- a wrong type: text that is not a number in a numeric column, a fraction in a whole-number
  column, a timestamp that cannot be read;
- a value outside the spec's range: a feature's own min/max (its rolling means and lags too),
  the target's min/max for target lags and rolling means (a rolling std within 0..max-min),
  the calendar's natural ranges (hour 0..23, day of week 1..7, sin/cos -1..1, flags 0/1);
- an empty group label (null, "" or blanks).
`model_frame` then gives the frame the logged model expects (columns in the signature's order,
timestamps as naive UTC, numbers as floats or whole numbers as the signature says)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core.features import (
    calendar_columns, categorical_columns, feature_columns, observed_lag_columns, rolling_columns,
    target_lag_columns, temperature_columns,
)
from mlops_assets.core.spec import DatasetSpec, duration_label

FORMATS = ("dataframe_split", "dataframe_records")
CALENDAR_RANGES = {
    "hour": (0, 23), "day_of_week": (1, 7), "month": (1, 12), "day_of_year": (1, 366),
    "is_weekend": (0, 1), "is_holiday": (0, 1), "is_day_before_holiday": (0, 1), "is_day_after_holiday": (0, 1),
}
MAX_LISTED = 20


class RequestError(ValueError):
    """A request the server refuses (HTTP 400): `problems` name column and row."""

    def __init__(self, message: str, problems: list[Problem] | None = None, error_code: str = "BAD_REQUEST"):
        super().__init__(message)
        self.message = message
        self.problems = problems or []
        self.error_code = error_code

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error_code": self.error_code, "message": self.message}
        if self.problems:
            body["problems"] = [p.to_dict() for p in self.problems[:MAX_LISTED]]
            body["problem_count"] = len(self.problems)
        return body


@dataclass(frozen=True)
class Problem:
    column: str
    row: int | None  # None: the whole request (a missing column)
    problem: str
    value: Any = None

    def text(self) -> str:
        where = f"row {self.row}" if self.row is not None else "every row"
        shown = "" if self.value is None else f" (got {self.value!r})"
        return f"{where}, column {self.column!r}: {self.problem}{shown}"

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "problem": self.problem, "value": _jsonable(self.value)}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def required_columns(spec: DatasetSpec) -> list[str]:
    """Columns every row must have non-null: the timestamp and the spec's required features."""
    from mlops_assets.core import features

    required = getattr(features, "required_feature_columns", None)
    if required is not None:
        return [spec.timestamp, *required(spec)]
    group = [spec.group] if spec.group else []  # the contract's definition, for an older features module
    strict = [c.column for c in spec.numeric_features if c.known_in_advance and not c.allow_missing]
    shortest = f"{spec.target.column}_lag_{duration_label(min(spec.lags_hours))}"
    return [spec.timestamp, *group, *calendar_columns(spec), shortest, *strict]


def value_ranges(spec: DatasetSpec) -> dict[str, tuple[float | None, float | None]]:
    """(min, max) per numeric input column; None where the spec sets no bound."""
    ranges: dict[str, tuple[float | None, float | None]] = {
        c: CALENDAR_RANGES.get(c, (-1.0, 1.0) if c.endswith(("_sin", "_cos")) else (None, None)) for c in calendar_columns(spec)
    }
    by_column = {c.column: (c.min, c.max) for c in spec.numeric_features}
    ranges.update({c: by_column[c] for c in spec.known_numeric_columns})
    if spec.temperature_column:
        ranges.update(dict.fromkeys(temperature_columns(spec), by_column.get(spec.temperature_column, (None, None))))
    target = (spec.target.min, spec.target.max)
    ranges.update(dict.fromkeys(target_lag_columns(spec), target))
    spread = None if None in target else target[1] - target[0]
    for col in rolling_columns(spec):
        ranges[col] = (0.0, spread) if "_roll_std_" in col else target
    for col in spec.observed_only_columns:
        ranges.update({lag: by_column[col] for lag in observed_lag_columns(spec) if lag.startswith(f"{col}_lag_")})
    return ranges


def parse_request(body: bytes | str) -> pd.DataFrame:
    """The request's rows as an object-typed frame, values as sent (RequestError when the JSON
    or its format is not MLflow's)."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise RequestError(f"the request is not valid JSON: {error}") from None
    if not isinstance(payload, dict) or len(set(payload).intersection(FORMATS)) != 1:
        keys = list(payload) if isinstance(payload, dict) else type(payload).__name__
        raise RequestError(f"send a JSON object with one of {', '.join(FORMATS)} (got {keys})")
    if "dataframe_records" in payload:
        records = payload["dataframe_records"]
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise RequestError("dataframe_records must be a list of objects, one per row")
        return pd.DataFrame.from_records(records).astype(object) if records else pd.DataFrame()
    split = payload["dataframe_split"]
    if not isinstance(split, dict) or not isinstance(split.get("data"), list) or not isinstance(split.get("columns"), list):
        raise RequestError('dataframe_split must be an object with "columns" and "data" (a list of rows)')
    widths = {len(row) if isinstance(row, list) else -1 for row in split["data"]}
    if widths - {len(split["columns"])}:
        raise RequestError(f'every row of dataframe_split "data" must be a list of {len(split["columns"])} values')
    return pd.DataFrame(split["data"], columns=split["columns"], dtype=object)


def _is_null(values: pd.Series) -> np.ndarray:
    return pd.isna(values).to_numpy(bool)


def _numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(floats, wrong type) of a column: numbers, booleans and numeric text are numbers."""
    def convert(v: Any) -> float:
        if isinstance(v, (bool, int, float)):
            return float(v)
        if isinstance(v, str):
            try:
                return float(v.strip())
            except ValueError:
                pass
        return math.nan  # null, or (when not null) the wrong type

    if pd.api.types.infer_dtype(values, skipna=True) in ("floating", "integer", "mixed-integer-float", "boolean", "empty"):
        return np.asarray(values.to_numpy(), dtype=float), np.zeros(len(values), dtype=bool)  # numbers and nulls only
    floats = values.map(convert).to_numpy(float)
    wrong = np.isnan(floats) & ~_is_null(values)
    return floats, wrong


def _timestamps(values: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """(naive UTC timestamps, unreadable) of ISO 8601 text; text without an offset is UTC."""
    text = values.map(lambda v: v if isinstance(v, str) else None)
    parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    return parsed.dt.tz_localize(None), (parsed.isna().to_numpy() & ~_is_null(values))


def check_request(frame: pd.DataFrame, spec: DatasetSpec) -> tuple[pd.DataFrame, list[Problem]]:
    """(the frame with numbers and timestamps converted, problems). Extra columns are kept as
    sent; feature columns left out of the request come back as missing values."""
    if frame.empty:
        return frame, [Problem("*", None, "the request has no rows")]
    required = required_columns(spec)
    problems = [Problem(c, None, "required column missing from the request") for c in required if c not in frame.columns]
    out = frame.copy()
    for col in (c for c in feature_columns(spec) if c not in out.columns and c not in required):
        out[col] = np.nan
    categorical = set(categorical_columns(spec))
    ranges = value_ranges(spec)
    whole = set(CALENDAR_RANGES)
    for col in [c for c in [spec.timestamp, *feature_columns(spec)] if c in frame.columns]:
        values = frame[col]
        nulls = _is_null(values)
        if col in required:
            problems += [Problem(col, int(i), "is null, and it is a required feature") for i in np.flatnonzero(nulls)]
        if col == spec.timestamp:
            out[col], unreadable = _timestamps(values)
            problems += [Problem(col, int(i), "cannot be read as an ISO 8601 timestamp", values.iat[i]) for i in np.flatnonzero(unreadable)]
        elif col == spec.group:
            empty = values.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(bool) | nulls
            problems += [Problem(col, int(i), "the group label is empty") for i in np.flatnonzero(empty & ~nulls)]
            if col not in required:
                problems += [Problem(col, int(i), "the group label is empty") for i in np.flatnonzero(nulls)]
            out[col] = values.map(lambda v: None if v is None else str(v))
        elif col in categorical:
            out[col] = values.map(lambda v: None if v is None else str(v))
        else:
            floats, wrong = _numbers(values)
            problems += [Problem(col, int(i), "is not a number", values.iat[i]) for i in np.flatnonzero(wrong)]
            problems += _range_problems(col, floats, ranges.get(col, (None, None)), col in whole)
            out[col] = floats
    problems.sort(key=lambda p: (-1 if p.row is None else p.row, p.column))
    return out, problems


def _range_problems(col: str, floats: np.ndarray, bounds: tuple, whole: bool) -> list[Problem]:
    lo, hi = bounds
    found = []
    for i in np.flatnonzero(np.isinf(floats)):
        found.append(Problem(col, int(i), "is not a finite number", float(floats[i])))
    finite = np.isfinite(floats)
    if lo is not None:
        found += [Problem(col, int(i), f"is below the spec's minimum {lo:g}", float(floats[i])) for i in np.flatnonzero(finite & (floats < lo))]
    if hi is not None:
        found += [Problem(col, int(i), f"is above the spec's maximum {hi:g}", float(floats[i])) for i in np.flatnonzero(finite & (floats > hi))]
    if whole:
        found += [Problem(col, int(i), "is not a whole number", float(floats[i])) for i in np.flatnonzero(finite & (floats != np.round(floats)))]
    return found


def validated(body: bytes | str, spec: DatasetSpec) -> pd.DataFrame:
    """The request's rows, checked and converted; RequestError naming column and row otherwise."""
    frame, problems = check_request(parse_request(body), spec)
    if problems:
        raise RequestError(summary(problems), problems, "INVALID_PARAMETER_VALUE")
    return frame


def summary(problems: list[Problem]) -> str:
    """One line: the missing columns all named, else the first problem and how many more."""
    missing = [p.column for p in problems if p.row is None and p.column != "*"]
    if missing:
        return f"required column{'s' if len(missing) > 1 else ''} missing from the request: {', '.join(missing)}"
    more = len(problems) - 1
    return problems[0].text() + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


_CASTS = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32", "boolean": "bool"}


def model_frame(frame: pd.DataFrame, input_schema: Any) -> pd.DataFrame:
    """The columns the logged model's signature names, in its order and types (NaN stays NaN
    in float columns); without a signature, the frame as it is."""
    if input_schema is None:
        return frame
    out = {}
    for spec in input_schema.inputs:
        name, kind = spec.name, str(getattr(spec.type, "name", spec.type))
        values = frame[name] if name in frame.columns else pd.Series(np.nan, index=frame.index)
        if kind in _CASTS:
            values = values.astype(_CASTS[kind])
        elif kind == "string":
            values = values.astype(object)
        out[name] = values
    return pd.DataFrame(out, index=frame.index)
