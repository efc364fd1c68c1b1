"""The dataset spec: which columns are the timestamp, group, target and features.

Every function in the platform takes column names from a `DatasetSpec`, so a user's own
tabular time series runs through the same graph with only a new YAML file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

SPEC_ENV_VAR = "MLOPS_DATASET_SPEC"
OUT_OF_RANGE_ACTIONS = ("reject", "null")
DEFAULT_MISSING_VALUES = ("", "NA", "NaN", "null")
DEFAULT_LAGS_HOURS = (24, 48, 168)
DEFAULT_ROLLING_WINDOWS_HOURS = (24, 168)
DEFAULT_MAX_INTERPOLATE_HOURS = 3
DEFAULT_RETIRE_AFTER_HOURS = 168  # a group without data for 7 days is retired
MIN_ROLLING_STEPS = 2  # a rolling standard deviation needs two values


class SpecError(ValueError):
    """The dataset spec is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class ColumnSpec:
    """A value column. `allow_missing`: a null (or missing-value token) is accepted and counted
    rather than refused; `known_in_advance`: the value at t is known when forecasting t (a
    weather forecast, a tariff), otherwise it is only observed and enters the model as lags."""

    column: str
    min: float | None = None
    max: float | None = None
    on_out_of_range: str = "reject"
    allow_missing: bool = True
    known_in_advance: bool = True


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset spec. Durations (`*_hours`) are numbers of hours, a float where not whole
    (0.5 = 30 min); `frequency` is the normalized polars duration ("30m", "1h", "1d")."""

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
    missing_values: tuple[str, ...] = DEFAULT_MISSING_VALUES
    holidays_country: str | None = None
    holidays_subdivision: str | None = None
    holidays_file: str | None = None
    holiday_column: str | None = None
    temperature_column: str | None = None
    spike_mad_threshold: float | None = 12.0
    max_interpolate_hours: float = DEFAULT_MAX_INTERPOLATE_HOURS
    min_rows_per_group: int = 1
    horizon_hours: float = 24
    lags_hours: tuple[float, ...] = DEFAULT_LAGS_HOURS
    rolling_windows_hours: tuple[float, ...] = DEFAULT_ROLLING_WINDOWS_HOURS
    retire_after_hours: float = DEFAULT_RETIRE_AFTER_HOURS
    train_fraction: float = 0.7
    validation_fraction: float = 0.15
    quantile_bins: int = 10
    source: str = "<memory>"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Any accepted spelling ("30min", "PT30M", "hourly") is stored once in polars' form.
        object.__setattr__(self, "frequency", normalize_frequency(self.frequency, self.source))

    @property
    def frequency_delta(self) -> timedelta:
        return parse_frequency(self.frequency, self.source)

    @property
    def frequency_hours(self) -> float:
        return self.frequency_delta.total_seconds() / 3600

    @property
    def is_daily(self) -> bool:
        """Daily data: one row per local calendar day (a day is 23 or 25 h at a DST change)."""
        return self.frequency == "1d"

    def steps(self, hours: float) -> int:
        """`hours` as a whole number of steps of the data's frequency (SpecError if not whole)."""
        exact = hours / self.frequency_hours
        n = round(exact)
        if abs(exact - n) > 1e-9:
            raise SpecError(
                f"{self.source}: {duration_label(hours)} is not a whole number of {self.frequency} steps"
            )
        return n

    @property
    def key_columns(self) -> list[str]:
        """(group, timestamp), or just timestamp for single-series data."""
        return [self.group, self.timestamp] if self.group else [self.timestamp]

    @property
    def numeric_columns(self) -> list[str]:
        return [c.column for c in self.numeric_features]

    @property
    def known_numeric_columns(self) -> list[str]:
        """Numeric features known at forecast time: model inputs as they are."""
        return [c.column for c in self.numeric_features if c.known_in_advance]

    @property
    def observed_only_columns(self) -> list[str]:
        """Numeric features only observed (not known ahead): inputs only as lags >= horizon."""
        return [c.column for c in self.numeric_features if not c.known_in_advance]

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


# Minutes per unit; "T" is pandas' minute, "m" polars'. A bare "M" is refused (month or minute?).
_UNIT_MINUTES = {
    "min": 1, "mins": 1, "minute": 1, "minutes": 1, "m": 1, "t": 1,
    "h": 60, "hr": 60, "hrs": 60, "hour": 60, "hours": 60,
    "d": 1440, "day": 1440, "days": 1440,
}
_WORDS = {"hourly": 60, "daily": 1440, "half-hourly": 30, "half_hourly": 30, "halfhourly": 30}
_AMOUNT = re.compile(r"^(\d+(?:\.\d+)?)?\s*([A-Za-z]+)$")
_ISO = re.compile(r"^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?)?$", re.IGNORECASE)


def _minutes(text: Any, source: str, what: str) -> float:
    """Minutes of a duration written as "30min", "30m", "30T", "1H", "H", "hourly", "2d",
    ISO-8601 "PT30M"/"P1D"; a bare number is hours."""
    if isinstance(text, bool):
        raise SpecError(f"{source}: {what} {text!r} is not a duration")
    if isinstance(text, (int, float)):
        return float(text) * 60
    raw = str(text).strip()
    iso = _ISO.match(raw)
    if iso and raw.upper() not in ("P", "PT") and any(iso.groups()):
        days, hours, minutes = (float(g) if g else 0.0 for g in iso.groups())
        return days * 1440 + hours * 60 + minutes
    if raw.lower() in _WORDS:
        return float(_WORDS[raw.lower()])
    try:
        return float(raw) * 60
    except ValueError:
        pass
    match = _AMOUNT.match(raw.replace(" ", ""))
    unit = match.group(2) if match else ""
    if not match or unit == "M" or unit.lower() not in _UNIT_MINUTES:
        raise SpecError(
            f"{source}: {what} {text!r} is not a duration like '30min', '1h', '1d', 'PT30M' or a number of hours"
        )
    return float(match.group(1) or 1) * _UNIT_MINUTES[unit.lower()]


def parse_duration_hours(value: Any, source: str = "<spec>", what: str = "duration") -> float:
    """A spec duration in hours (a number is hours; "90min" is 1.5); an int when whole."""
    hours = _minutes(value, source, what) / 60
    if hours < 0:
        raise SpecError(f"{source}: {what} {value!r} is negative")
    return int(hours) if float(hours).is_integer() else hours


def normalize_frequency(text: Any, source: str = "<spec>") -> str:
    """The polars duration string of a data frequency: "30m", "1h" or "1d". Supported: a
    whole number of minutes dividing an hour, one hour, one day (a multi-hour step would
    slide against local clocks at daylight-saving changes)."""
    minutes = _minutes(text, source, "frequency")
    if minutes == 1440:
        return "1d"
    if minutes == 60:
        return "1h"
    if minutes.is_integer() and 0 < minutes < 60 and 60 % int(minutes) == 0:
        return f"{int(minutes)}m"
    raise SpecError(
        f"{source}: frequency {text!r} is not supported: use a number of minutes dividing an hour "
        "(5min, 10min, 15min, 30min), 1h or 1d"
    )


def parse_frequency(text: Any, source: str = "<spec>") -> timedelta:
    """The step of a data frequency in any accepted spelling, as a timedelta."""
    normalized = normalize_frequency(text, source)
    return timedelta(minutes=_minutes(normalized, source, "frequency"))


def duration_label(hours: float) -> str:
    """A duration in a column name: whole hours as "24h", anything else as "90min"."""
    if float(hours).is_integer():
        return f"{int(hours)}h"
    return f"{int(round(hours * 60))}min"


def default_spec_path() -> Path:
    """The spec named by MLOPS_DATASET_SPEC, else the demo spec shipped in the package."""
    if os.environ.get(SPEC_ENV_VAR):
        return Path(os.environ[SPEC_ENV_VAR])
    return Path(str(resources.files("mlops_assets") / "specs" / "electricity_load.yaml"))


def read_yaml(path: Path, what: str, error: type[Exception]) -> Any:
    """The YAML document at `path`; `error` naming `what` and the path when it is missing or not YAML."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise error(f"{what} {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise error(f"{what} {path} is not valid YAML: {exc}") from exc


def load_spec(path: str | os.PathLike[str] | None = None) -> DatasetSpec:
    path = Path(path) if path else default_spec_path()
    return spec_from_dict(read_yaml(path, "dataset spec", SpecError), source=str(path))


def _flag(raw: dict[str, Any], key: str, default: bool, where: str, source: str) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise SpecError(f"{source}: {where}.{key} must be true or false, not {value!r}")
    return value


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
        allow_missing=_flag(raw, "allow_missing", True, where, source),
        known_in_advance=_flag(raw, "known_in_advance", True, where, source),
    )


def _section(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise SpecError(f"section {key!r} must be a mapping")
    return value


def _durations(section: dict[str, Any], key: str, old_key: str, default: Any, source: str) -> tuple[Any, bool]:
    """A duration (or list of them) under its new key or its old `*_hours` key, in hours;
    and whether the spec gave it (defaults are fitted to the frequency, given values are not)."""
    if key in section and old_key in section:
        raise SpecError(f"{source}: give either {key!r} or {old_key!r}, not both")
    name = key if key in section else old_key
    if name not in section:
        return default, False
    value = section[name]
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise SpecError(f"{source}: {name} must be a list of durations")
        return tuple(parse_duration_hours(v, source, name) for v in value), True
    return parse_duration_hours(value, source, name), True


def _missing_values(raw: Any, source: str) -> tuple[str, ...]:
    if raw is None:
        return DEFAULT_MISSING_VALUES
    if not isinstance(raw, (list, tuple)) or not all(isinstance(v, (str, int, float)) for v in raw):
        raise SpecError(f"{source}: missing_values must be a list of text tokens such as ['', 'NA']")
    return tuple(str(v).strip() for v in raw)


def _holidays_file(value: Any, source: str) -> str | None:
    """The holiday file's absolute path; a relative one is relative to the spec file."""
    if not value:
        return None
    path = Path(str(value))
    if not path.is_absolute() and source not in ("<memory>", "<spec>"):
        path = Path(source).parent / path
    return str(path)


def _numeric_features(features: dict[str, Any], holiday_column: str | None, source: str) -> tuple[ColumnSpec, ...]:
    """The spec's numeric features, plus the 0/1 holiday column (a known feature) if it is not one."""
    numeric = [_column(c, f"features.numeric[{i}]", source) for i, c in enumerate(features.get("numeric") or [])]
    if holiday_column and holiday_column not in [c.column for c in numeric]:
        numeric.append(ColumnSpec(column=holiday_column, min=0.0, max=1.0))
    return tuple(numeric)


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
    frequency = normalize_frequency(raw.get("frequency", "1h"), source)
    step_hours = parse_frequency(frequency, source).total_seconds() / 3600
    horizon, _ = _durations(prep, "horizon", "horizon_hours", 24, source)
    lags, _ = _durations(prep, "lags", "lags_hours", DEFAULT_LAGS_HOURS, source)
    windows, windows_given = _durations(
        prep, "rolling_windows", "rolling_windows_hours", DEFAULT_ROLLING_WINDOWS_HOURS, source
    )
    retire_after, _ = _durations(prep, "retire_after", "retire_after_hours", DEFAULT_RETIRE_AFTER_HOURS, source)
    interpolate, interpolate_given = _durations(
        cleaning, "max_interpolate", "max_interpolate_hours", DEFAULT_MAX_INTERPOLATE_HOURS, source
    )
    if not windows_given:  # the defaults, fitted to the frequency (a daily series has no 24 h rolling std)
        windows = tuple(w for w in windows if w >= MIN_ROLLING_STEPS * step_hours)
    if not interpolate_given:
        interpolate = int(interpolate // step_hours * step_hours) if step_hours >= 1 else interpolate
    holiday_column = calendar.get("holiday_column") or None
    temperature = features.get("temperature") or None
    spec = DatasetSpec(
        name=str(raw["name"]),
        description=str(raw.get("description", "")),
        timestamp=str(ts["column"]),
        timezone=str(ts.get("timezone", "UTC")),
        timestamp_format=ts.get("format"),
        frequency=frequency,
        group=str(group_col) if group_col else None,
        target=_column(raw["target"], "target", source),
        numeric_features=_numeric_features(features, holiday_column and str(holiday_column), source),
        categorical_features=tuple(str(c) for c in features.get("categorical") or []),
        missing_values=_missing_values(raw.get("missing_values"), source),
        holidays_country=calendar.get("holidays_country") or None,
        holidays_subdivision=calendar.get("holidays_subdivision") or None,
        holidays_file=_holidays_file(calendar.get("holidays_file"), source),
        holiday_column=str(holiday_column) if holiday_column else None,
        temperature_column=str(temperature) if temperature else None,
        spike_mad_threshold=cleaning.get("spike_mad_threshold", 12.0),
        max_interpolate_hours=interpolate,
        min_rows_per_group=int(cleaning.get("min_rows_per_group", 1)),
        horizon_hours=horizon,
        lags_hours=lags,
        rolling_windows_hours=windows,
        retire_after_hours=retire_after,
        train_fraction=float(split.get("train_fraction", 0.7)),
        validation_fraction=float(split.get("validation_fraction", 0.15)),
        quantile_bins=int(profile.get("quantile_bins", 10)),
        source=source,
        extra={k: v for k, v in raw.items() if k == "sensitive_features"},
    )
    validate_spec(spec)
    return spec


def _validate_generated_names(spec: DatasetSpec, names: list[str]) -> None:
    from mlops_assets.core.features import generated_columns  # its names follow from the spec

    clash = sorted(set(names) & set(generated_columns(spec)))
    if clash:
        raise SpecError(
            f"{spec.source}: columns {clash} have the names of columns the platform generates "
            "(calendar, lags, rolling statistics, baselines) and would be overwritten; rename them"
        )


def validate_spec(spec: DatasetSpec) -> None:
    src = spec.source
    try:
        spec.zone  # noqa: B018
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SpecError(f"{src}: unknown time zone {spec.timezone!r}") from exc
    names = spec.required_columns
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"{src}: columns used twice: {dupes}")
    reserved = [n for n in names if n.startswith("__")]
    if reserved:
        raise SpecError(f"{src}: column names starting with '__' are reserved for the platform's working columns: {reserved}; rename them")
    _validate_generated_names(spec, names)
    _validate_durations(spec)
    _validate_roles(spec)
    _validate_calendar(spec)
    if not (0 < spec.train_fraction < 1 and 0 < spec.validation_fraction < 1 and spec.test_fraction > 0):
        raise SpecError(f"{src}: split fractions must be positive and leave a test share (train+validation < 1)")
    if spec.quantile_bins < 2:
        raise SpecError(f"{src}: profile.quantile_bins must be at least 2")


def _validate_durations(spec: DatasetSpec) -> None:
    """Every duration is a whole number of steps, so a lag is exactly the time it names."""
    src, label = spec.source, duration_label
    for what, values in (
        ("preparation.lags", spec.lags_hours),
        ("preparation.rolling_windows", spec.rolling_windows_hours),
        ("preparation.horizon", (spec.horizon_hours,)),
        ("cleaning.max_interpolate", (spec.max_interpolate_hours,)),
        ("preparation.retire_after", (spec.retire_after_hours,)),
    ):
        for hours in values:
            try:
                spec.steps(hours)
            except SpecError:
                raise SpecError(
                    f"{src}: {what} {label(hours)} is not a whole number of {spec.frequency} steps"
                ) from None
    if not spec.lags_hours:
        raise SpecError(f"{src}: preparation.lags must name at least one lag")
    if spec.horizon_hours <= 0:
        raise SpecError(f"{src}: preparation.horizon must be positive")
    if spec.retire_after_hours <= 0:
        raise SpecError(f"{src}: preparation.retire_after must be positive (a group without data that long is retired)")
    too_short = [lag for lag in spec.lags_hours if lag < spec.horizon_hours]
    if too_short:
        raise SpecError(
            f"{src}: lags {[label(h) for h in too_short]} are shorter than the forecast horizon "
            f"{label(spec.horizon_hours)}; the model could not be used that far ahead"
        )
    if spec.max_interpolate_hours >= spec.horizon_hours:
        raise SpecError(f"{src}: cleaning.max_interpolate must be below the horizon ({label(spec.horizon_hours)})")
    short = [w for w in spec.rolling_windows_hours if spec.steps(w) < MIN_ROLLING_STEPS]
    if short:
        raise SpecError(
            f"{src}: preparation.rolling_windows {[label(w) for w in short]} are shorter than "
            f"{MIN_ROLLING_STEPS} steps of {spec.frequency} (a rolling standard deviation needs two values)"
        )


def _validate_roles(spec: DatasetSpec) -> None:
    src = spec.source
    if spec.temperature_column and spec.temperature_column not in spec.numeric_columns:
        raise SpecError(
            f"{src}: features.temperature {spec.temperature_column!r} must be one of the numeric features "
            f"{spec.numeric_columns}"
        )
    if spec.holiday_column and spec.holiday_column in spec.observed_only_columns:
        raise SpecError(f"{src}: calendar.holiday_column {spec.holiday_column!r} is a calendar: known in advance")


def _validate_calendar(spec: DatasetSpec) -> None:
    """The holiday calendar exists: country, subdivision and file are checked at load, not
    when features are first built."""
    src = spec.source
    if spec.holidays_subdivision and not spec.holidays_country:
        raise SpecError(f"{src}: calendar.holidays_subdivision needs calendar.holidays_country")
    if spec.holidays_country:
        import holidays

        supported = holidays.list_supported_countries()
        if spec.holidays_country not in supported:
            raise SpecError(f"{src}: calendar.holidays_country {spec.holidays_country!r} is not a country code "
                            "the holidays package knows (ISO 3166-1 alpha-2, e.g. US, AU, DE)")
        allowed = supported[spec.holidays_country]
        if spec.holidays_subdivision and spec.holidays_subdivision not in allowed:
            raise SpecError(
                f"{src}: calendar.holidays_subdivision {spec.holidays_subdivision!r} is not a subdivision of "
                f"{spec.holidays_country}; allowed: {allowed}"
            )
    if spec.holidays_file:
        read_holiday_file(spec.holidays_file, src)


def read_holiday_file(path: str, source: str = "<spec>") -> frozenset[date]:
    """Dates of a holiday CSV with a `date` column (YYYY-MM-DD)."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError as exc:
        raise SpecError(f"{source}: calendar.holidays_file {path} does not exist") from exc
    if rows and "date" not in rows[0]:
        raise SpecError(f"{source}: calendar.holidays_file {path} needs a 'date' column, it has {list(rows[0])}")
    try:
        return frozenset(date.fromisoformat(row["date"].strip()) for row in rows if (row["date"] or "").strip())
    except ValueError as exc:
        raise SpecError(f"{source}: calendar.holidays_file {path}: {exc} (write dates as YYYY-MM-DD)") from exc
