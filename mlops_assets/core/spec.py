"""The dataset spec: which columns are the timestamp, group, target and features.

Every function in the platform takes column names from a `DatasetSpec`, so a user's own
tabular time series runs through the same graph with only a new YAML file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

SPEC_ENV_VAR = "MLOPS_DATASET_SPEC"
OUT_OF_RANGE_ACTIONS = ("reject", "null")


class SpecError(ValueError):
    """The dataset spec is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class ColumnSpec:
    column: str
    min: float | None = None
    max: float | None = None
    on_out_of_range: str = "reject"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    timestamp: str
    timezone: str
    target: ColumnSpec
    group: str | None = None
    timestamp_format: str | None = None
    frequency: str = "1h"
    description: str = ""
    numeric_features: tuple[ColumnSpec, ...] = ()
    categorical_features: tuple[str, ...] = ()
    holidays_country: str | None = None
    spike_mad_threshold: float | None = 12.0
    max_interpolate_hours: int = 3
    min_rows_per_group: int = 1
    horizon_hours: int = 24
    lags_hours: tuple[int, ...] = (24, 48, 168)
    rolling_windows_hours: tuple[int, ...] = (24, 168)
    train_fraction: float = 0.7
    validation_fraction: float = 0.15
    quantile_bins: int = 10
    source: str = "<memory>"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def frequency_delta(self) -> timedelta:
        return parse_frequency(self.frequency, self.source)

    @property
    def key_columns(self) -> list[str]:
        """(group, timestamp), or just timestamp for single-series data."""
        return [self.group, self.timestamp] if self.group else [self.timestamp]

    @property
    def numeric_columns(self) -> list[str]:
        return [c.column for c in self.numeric_features]

    @property
    def value_columns(self) -> list[ColumnSpec]:
        """Target and numeric features: the columns cast to float and range-checked."""
        return [self.target, *self.numeric_features]

    @property
    def required_columns(self) -> list[str]:
        return [*self.key_columns, self.target.column, *self.numeric_columns, *self.categorical_features]

    @property
    def test_fraction(self) -> float:
        return 1.0 - self.train_fraction - self.validation_fraction

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


_FREQ = re.compile(r"^\s*(\d+)\s*(min|h|d)\s*$")


def parse_frequency(text: str, source: str = "<spec>") -> timedelta:
    match = _FREQ.match(str(text))
    if not match:
        raise SpecError(f"{source}: frequency {text!r} is not like '1h', '15min' or '1d'")
    n, unit = int(match.group(1)), match.group(2)
    return {"min": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n)}[unit]


def default_spec_path() -> Path:
    """The spec named by MLOPS_DATASET_SPEC, else the demo spec shipped in the package."""
    if os.environ.get(SPEC_ENV_VAR):
        return Path(os.environ[SPEC_ENV_VAR])
    return Path(str(resources.files("mlops_assets") / "specs" / "electricity_load.yaml"))


def load_spec(path: str | os.PathLike[str] | None = None) -> DatasetSpec:
    path = Path(path) if path else default_spec_path()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SpecError(f"dataset spec {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"dataset spec {path} is not valid YAML: {exc}") from exc
    return spec_from_dict(raw, source=str(path))


def _column(raw: Any, where: str, source: str) -> ColumnSpec:
    if isinstance(raw, str):
        return ColumnSpec(column=raw)
    if not isinstance(raw, dict) or "column" not in raw:
        raise SpecError(f"{source}: {where} needs a 'column' name")
    action = str(raw.get("on_out_of_range", "reject"))
    if action not in OUT_OF_RANGE_ACTIONS:
        raise SpecError(f"{source}: {where}.on_out_of_range must be one of {OUT_OF_RANGE_ACTIONS}, not {action!r}")
    lo, hi = raw.get("min"), raw.get("max")
    if lo is not None and hi is not None and float(lo) > float(hi):
        raise SpecError(f"{source}: {where} has min {lo} > max {hi}")
    return ColumnSpec(
        column=str(raw["column"]),
        min=None if lo is None else float(lo),
        max=None if hi is None else float(hi),
        on_out_of_range=action,
    )


def _section(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise SpecError(f"section {key!r} must be a mapping")
    return value


def spec_from_dict(raw: Any, source: str = "<memory>") -> DatasetSpec:
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: a dataset spec is a YAML mapping")
    for key in ("name", "timestamp", "target"):
        if key not in raw:
            raise SpecError(f"{source}: missing required field {key!r}")
    ts = raw["timestamp"] if isinstance(raw["timestamp"], dict) else {"column": raw["timestamp"]}
    group = raw.get("group")
    group_col = (group.get("column") if isinstance(group, dict) else group) or None
    features = _section(raw, "features")
    cleaning, prep = _section(raw, "cleaning"), _section(raw, "preparation")
    split, profile, calendar = _section(raw, "split"), _section(raw, "profile"), _section(raw, "calendar")
    spec = DatasetSpec(
        name=str(raw["name"]),
        description=str(raw.get("description", "")),
        timestamp=str(ts["column"]),
        timezone=str(ts.get("timezone", "UTC")),
        timestamp_format=ts.get("format"),
        frequency=str(raw.get("frequency", "1h")),
        group=str(group_col) if group_col else None,
        target=_column(raw["target"], "target", source),
        numeric_features=tuple(
            _column(c, f"features.numeric[{i}]", source) for i, c in enumerate(features.get("numeric") or [])
        ),
        categorical_features=tuple(str(c) for c in features.get("categorical") or []),
        holidays_country=calendar.get("holidays_country"),
        spike_mad_threshold=cleaning.get("spike_mad_threshold", 12.0),
        max_interpolate_hours=int(cleaning.get("max_interpolate_hours", 3)),
        min_rows_per_group=int(cleaning.get("min_rows_per_group", 1)),
        horizon_hours=int(prep.get("horizon_hours", 24)),
        lags_hours=tuple(int(x) for x in prep.get("lags_hours", (24, 48, 168))),
        rolling_windows_hours=tuple(int(x) for x in prep.get("rolling_windows_hours", (24, 168))),
        train_fraction=float(split.get("train_fraction", 0.7)),
        validation_fraction=float(split.get("validation_fraction", 0.15)),
        quantile_bins=int(profile.get("quantile_bins", 10)),
        source=source,
        extra={k: v for k, v in raw.items() if k == "sensitive_features"},
    )
    validate_spec(spec)
    return spec


def validate_spec(spec: DatasetSpec) -> None:
    src = spec.source
    try:
        spec.zone  # noqa: B018
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SpecError(f"{src}: unknown time zone {spec.timezone!r}") from exc
    step_hours = spec.frequency_delta.total_seconds() / 3600
    names = spec.required_columns
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"{src}: columns used twice: {dupes}")
    if not spec.lags_hours:
        raise SpecError(f"{src}: preparation.lags_hours must name at least one lag")
    too_short = [lag for lag in spec.lags_hours if lag < spec.horizon_hours]
    if too_short:
        raise SpecError(
            f"{src}: lags {too_short} h are shorter than the forecast horizon {spec.horizon_hours} h; "
            "the model could not be used that far ahead"
        )
    if spec.max_interpolate_hours >= spec.horizon_hours:
        raise SpecError(f"{src}: cleaning.max_interpolate_hours must be below the horizon ({spec.horizon_hours} h)")
    for hours in (*spec.lags_hours, *spec.rolling_windows_hours, spec.horizon_hours):
        if hours % step_hours and step_hours <= 1:
            raise SpecError(f"{src}: {hours} h is not a whole number of {spec.frequency} steps")
    if not (0 < spec.train_fraction < 1 and 0 < spec.validation_fraction < 1 and spec.test_fraction > 0):
        raise SpecError(f"{src}: split fractions must be positive and leave a test share (train+validation < 1)")
    if spec.quantile_bins < 2:
        raise SpecError(f"{src}: profile.quantile_bins must be at least 2")
