"""Model features: calendar (local time, holidays), known features, and per-group lags and
rolling statistics of the target and of observed-only features. Lags are computed on a
complete time grid per group, so a lag of 24 h is 24 hours (one local day for daily data),
and never reach into another group's series.

Durations come from the spec in hours and become steps of the data's frequency with
`spec.steps()`. For daily data the grid is the sequence of local calendar days, so a 24 h lag
is "the same local date one day earlier" even across a daylight-saving change (23 or 25 h).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any

import polars as pl

from mlops_assets.core.cleaning import local_day_start
from mlops_assets.core.spec import DatasetSpec, duration_label, read_holiday_file

CALENDAR_COLUMNS = (
    "hour", "day_of_week", "month", "day_of_year", "is_weekend",
    "is_holiday", "is_day_before_holiday", "is_day_after_holiday",
    "minute_of_day_sin", "minute_of_day_cos", "week_sin", "week_cos", "day_of_year_sin", "day_of_year_cos",
)  # fmt: skip
# Constant within a day: not inputs for daily data.
INTRADAY_COLUMNS = ("hour", "minute_of_day_sin", "minute_of_day_cos")
# The target one week and one day earlier (same group, raw observed values): reference
# forecasts carried next to the features, never model inputs.
BASELINE_HOURS = {"baseline_seasonal_naive": 168, "baseline_day_before": 24}
BASELINE_COLUMNS = tuple(BASELINE_HOURS)
# Buildings answer the last few hours' temperature, not only today's: thermal inertia.
TEMPERATURE_WINDOWS_HOURS = (3, 6, 12, 24)
_FFILL, _INTERP, _TO_NEXT = "__ffill", "__interp", "__to_next"
_TWO_PI = 2 * math.pi


@dataclass
class FeatureReport:
    """Counts of one feature build. `missing_target_values`: history rows without a target;
    `interpolated_target_points`: grid points filled in the lag input only; rows without a
    target are never training rows; `rows_without_required_history`: rows dropped because the
    shortest target lag is missing (a group's first day, a long gap); `rows_with_partial_history`:
    rows kept with a longer lag or rolling statistic still null (a young group);
    `feature_null_counts`: nulls per output column."""

    rows_in: int
    grid_rows: int
    missing_target_values: int
    interpolated_target_points: int
    rows_without_target: int
    rows_without_required_history: int
    rows_with_partial_history: int
    rows_out: int
    feature_null_counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def steps(spec: DatasetSpec, hours: float) -> int:
    return spec.steps(hours)


def calendar_columns(spec: DatasetSpec) -> list[str]:
    return [c for c in CALENDAR_COLUMNS if not (spec.is_daily and c in INTRADAY_COLUMNS)]


def target_lag_columns(spec: DatasetSpec) -> list[str]:
    return [f"{spec.target.column}_lag_{duration_label(h)}" for h in spec.lags_hours]


def rolling_columns(spec: DatasetSpec) -> list[str]:
    y = spec.target.column
    return [f"{y}_roll_{stat}_{duration_label(w)}" for w in spec.rolling_windows_hours for stat in ("mean", "std")]


def lag_columns(spec: DatasetSpec) -> list[str]:
    """Target lags and rolling statistics (rolling over the values up to t - horizon)."""
    return target_lag_columns(spec) + rolling_columns(spec)


def observed_lag_columns(spec: DatasetSpec) -> list[str]:
    """The only form in which observed-only features are inputs: one lag per spec lag."""
    return [f"{c}_lag_{duration_label(h)}" for c in spec.observed_only_columns for h in spec.lags_hours]


def lag_sources(spec: DatasetSpec) -> dict[str, tuple[str, float]]:
    """Each lag column -> (the history column it reads, its lag in hours)."""
    out = {f"{spec.target.column}_lag_{duration_label(h)}": (spec.target.column, h) for h in spec.lags_hours}
    for col in spec.observed_only_columns:
        out.update({f"{col}_lag_{duration_label(h)}": (col, h) for h in spec.lags_hours})
    return out


def temperature_windows(spec: DatasetSpec) -> list[float]:
    """Rolling-mean windows of temperature: 3, 6, 12 and 24 h and the spec's rolling windows,
    each at least two steps long."""
    if not spec.temperature_column:
        return []
    step = spec.frequency_delta.total_seconds()
    windows = sorted({*TEMPERATURE_WINDOWS_HOURS, *spec.rolling_windows_hours})
    return [w for w in windows if (w * 3600) % step == 0 and w * 3600 / step >= 2]


def temperature_columns(spec: DatasetSpec) -> list[str]:
    return [f"{spec.temperature_column}_roll_mean_{duration_label(w)}" for w in temperature_windows(spec)]


def feature_columns(spec: DatasetSpec) -> list[str]:
    """Model inputs in a fixed order; the group stays an input (as a category)."""
    group = [spec.group] if spec.group else []
    return [
        *group, *spec.categorical_features, *spec.known_numeric_columns, *calendar_columns(spec),
        *temperature_columns(spec), *lag_columns(spec), *observed_lag_columns(spec),
    ]  # fmt: skip


def generated_columns(spec: DatasetSpec) -> list[str]:
    """Every column the feature builder adds (whatever the frequency): a spec column of the
    same name would be silently overwritten, so the spec refuses one."""
    return [*CALENDAR_COLUMNS, *temperature_columns(spec), *lag_columns(spec), *observed_lag_columns(spec), *BASELINE_COLUMNS]


def required_lag_hours(spec: DatasetSpec) -> float:
    """The shortest target lag: a row is a feature row once it is present (longer lags, rolling
    statistics, observed-only lags and baselines may still be null, as in a new group's first week)."""
    return min(spec.lags_hours)


def required_lag_column(spec: DatasetSpec) -> str:
    return f"{spec.target.column}_lag_{duration_label(required_lag_hours(spec))}"


def required_feature_columns(spec: DatasetSpec) -> list[str]:
    """The columns a row must have non-null to be scored or served: the group, the calendar,
    the shortest target lag and the known-in-advance numeric features whose spec says
    `allow_missing: false`. Every other column of `feature_columns` may be null."""
    group = [spec.group] if spec.group else []
    strict = [c.column for c in spec.numeric_features if c.known_in_advance and not c.allow_missing]
    return [*group, *calendar_columns(spec), required_lag_column(spec), *strict]


def categorical_columns(spec: DatasetSpec) -> list[str]:
    return [*([spec.group] if spec.group else []), *spec.categorical_features]


def build_features(
    history: pl.DataFrame, spec: DatasetSpec, require_target: bool = True
) -> tuple[pl.DataFrame, FeatureReport]:
    """Rows with the shortest target lag (and, for training, an observed target); columns: keys,
    target, features, baselines. Longer lags and other missing feature values stay null, so a
    group joins as soon as it has the shortest lag's history."""
    y = pl.col(spec.target.column)
    grid = _with_lag_inputs(complete_grid(history, spec), spec)
    filled = int(grid.select((y.is_null() & pl.col(_FFILL).is_not_null()).sum()).item())
    frame = grid.with_columns(*_lags(spec), *_observed_lags(spec), *_temperature(spec), *_baselines(spec))
    frame = frame.with_columns(_calendar(grid, spec))
    has_target = y.is_not_null()
    has_required = pl.col(required_lag_column(spec)).is_not_null()
    full_lags = pl.all_horizontal(pl.col(c).is_not_null() for c in lag_columns(spec))
    keep = (has_target & has_required) if require_target else has_required
    candidates = has_target if require_target else pl.lit(True)
    counted = frame.select(
        (~has_target).sum().alias("no_target"),
        (candidates & ~has_required).sum().alias("no_history"),
        (keep & ~full_lags).sum().alias("partial"),
    ).row(0, named=True)
    report = FeatureReport(
        rows_in=history.height,
        grid_rows=grid.height,
        missing_target_values=history.get_column(spec.target.column).null_count(),
        interpolated_target_points=filled,
        rows_without_target=int(counted["no_target"]),
        rows_without_required_history=int(counted["no_history"]),
        rows_with_partial_history=int(counted["partial"]),
        rows_out=0,
    )
    out = frame.filter(keep).select(spec.timestamp, spec.target.column, *feature_columns(spec), *BASELINE_COLUMNS)
    out = out.select(*spec.key_columns, *[c for c in out.columns if c not in spec.key_columns])
    report.rows_out = out.height
    report.feature_null_counts = {c: n for c, n in zip(out.columns, out.null_count().row(0)) if n}
    return out, report


def complete_grid(history: pl.DataFrame, spec: DatasetSpec) -> pl.DataFrame:
    """Every step between each group's first and last timestamp, missing ones as null rows.
    Daily data is upsampled on the local calendar (a day is 23 or 25 h at a DST change)."""
    ts = spec.timestamp
    if not spec.is_daily:
        return _upsample(history, spec)
    # Upsampled as local dates: polars' zoned "1d" upsampling goes astray where a day starts at 01:00.
    local = history.with_columns(pl.col(ts).dt.convert_time_zone(spec.timezone).dt.date())
    return _upsample(local, spec).with_columns(local_day_start(pl.col(ts), spec.timezone))


def _upsample(history: pl.DataFrame, spec: DatasetSpec) -> pl.DataFrame:
    ts = spec.timestamp
    if not spec.group:
        return history.sort(ts).upsample(time_column=ts, every=spec.frequency)
    grid = history.sort(spec.key_columns).upsample(
        time_column=ts, every=spec.frequency, group_by=spec.group, maintain_order=True
    )
    return grid.select(spec.group, ts, *[c for c in history.columns if c not in spec.key_columns])


def _over(expr: pl.Expr, spec: DatasetSpec) -> pl.Expr:
    return expr.over(spec.group) if spec.group else expr


def _with_lag_inputs(grid: pl.DataFrame, spec: DatasetSpec) -> pl.DataFrame:
    """The series target lags read from. A gap of at most `max_interpolate` is filled two ways:
    carried forward (`__ffill`, only earlier values) and linearly (`__interp`, which also reads
    the next observed value); `__to_next` is the number of steps to that next value, so a lag
    uses the linear fill only where the next value is no later than t - horizon."""
    y = pl.col(spec.target.column)
    limit = spec.steps(spec.max_interpolate_hours)
    index = pl.int_range(pl.len())
    frame = grid.with_columns(_over(y.is_null().rle_id(), spec).alias("__run"))
    parts = [spec.group, "__run"] if spec.group else ["__run"]
    frame = frame.with_columns(pl.len().over(parts).alias("__run_len"))
    fill = y.is_null() & (pl.col("__run_len") <= limit)
    return frame.with_columns(
        pl.when(fill).then(_over(y.forward_fill(), spec)).otherwise(y).alias(_FFILL),
        pl.when(fill).then(_over(y.interpolate(), spec)).otherwise(y).alias(_INTERP),
        _over(pl.when(y.is_not_null()).then(index).backward_fill() - index, spec).alias(_TO_NEXT),
    ).drop("__run", "__run_len")


def _lags(spec: DatasetSpec) -> list[pl.Expr]:
    horizon = spec.steps(spec.horizon_hours)
    exprs = []
    for hours, name in zip(spec.lags_hours, target_lag_columns(spec)):
        k = spec.steps(hours)
        source = pl.when(pl.col(_TO_NEXT) <= k - horizon).then(pl.col(_INTERP)).otherwise(pl.col(_FFILL))
        exprs.append(_over(source.shift(k), spec).alias(name))
    # Rolling statistics end at t - horizon and read only carried-forward fills (never a later value).
    shifted = pl.col(_FFILL).shift(horizon)
    y = spec.target.column
    for w in spec.rolling_windows_hours:
        n, label = spec.steps(w), duration_label(w)
        exprs.append(_over(shifted.rolling_mean(n, min_samples=max(1, n // 2)), spec).alias(f"{y}_roll_mean_{label}"))
        exprs.append(_over(shifted.rolling_std(n, min_samples=max(2, n // 2)), spec).alias(f"{y}_roll_std_{label}"))
    return exprs


def _observed_lags(spec: DatasetSpec) -> list[pl.Expr]:
    """Observed-only features as raw lags (no fill): the value at t - lag, or null."""
    return [
        _over(pl.col(col).shift(spec.steps(hours)), spec).alias(f"{col}_lag_{duration_label(hours)}")
        for col in spec.observed_only_columns
        for hours in spec.lags_hours
    ]


def _temperature(spec: DatasetSpec) -> list[pl.Expr]:
    """Backward-looking rolling means of temperature (ending at t when it is a forecast known
    in advance, at t - horizon when it is only observed)."""
    if not spec.temperature_column:
        return []
    temp = pl.col(spec.temperature_column)
    known = spec.temperature_column in spec.known_numeric_columns
    source = temp if known else temp.shift(spec.steps(spec.horizon_hours))
    exprs = []
    for hours, name in zip(temperature_windows(spec), temperature_columns(spec)):
        n = spec.steps(hours)
        exprs.append(_over(source.rolling_mean(n, min_samples=max(1, n // 2)), spec).alias(name))
    return exprs


def _baselines(spec: DatasetSpec) -> list[pl.Expr]:
    """Seasonal naive and day-before forecasts: the raw observed target (no fill), on the grid."""
    y = pl.col(spec.target.column)
    return [_over(y.shift(spec.steps(hours)), spec).alias(name) for name, hours in BASELINE_HOURS.items()]


def _calendar(grid: pl.DataFrame, spec: DatasetSpec) -> list[pl.Expr]:
    """Calendar in the spec's local time zone (load follows local clocks, not UTC), at the
    data's resolution (minute of day), from one time-zone conversion."""
    local = pl.col(spec.timestamp).dt.convert_time_zone(spec.timezone).dt.replace_time_zone(None)
    keep = [c for c in (spec.group, spec.holiday_column) if c]
    wall = grid.select(local.alias("__wall"), *keep).with_columns(pl.col("__wall").dt.date().alias("__date"))
    flags = _holiday_flags(wall, spec)
    w = pl.col("__wall")
    minute = (w.dt.hour().cast(pl.Float64) * 60 + w.dt.minute().cast(pl.Float64)) / 1440
    week = ((w.dt.weekday() - 1).cast(pl.Float64) + minute) / 7
    year = w.dt.ordinal_day().cast(pl.Float64) / 365.25
    cal = wall.select(
        w.dt.hour().cast(pl.Int8).alias("hour"),
        w.dt.weekday().cast(pl.Int8).alias("day_of_week"),
        w.dt.month().cast(pl.Int8).alias("month"),
        w.dt.ordinal_day().cast(pl.Int16).alias("day_of_year"),
        (w.dt.weekday() >= 6).cast(pl.Int8).alias("is_weekend"),
        (minute * _TWO_PI).sin().alias("minute_of_day_sin"),
        (minute * _TWO_PI).cos().alias("minute_of_day_cos"),
        (week * _TWO_PI).sin().alias("week_sin"),
        (week * _TWO_PI).cos().alias("week_cos"),
        (year * _TWO_PI).sin().alias("day_of_year_sin"),
        (year * _TWO_PI).cos().alias("day_of_year_cos"),
    ).hstack(flags)
    return [pl.lit(cal.get_column(c)).alias(c) for c in CALENDAR_COLUMNS]


def _holiday_flags(wall: pl.DataFrame, spec: DatasetSpec) -> pl.DataFrame:
    """is_holiday, is_day_before_holiday, is_day_after_holiday by local date: the calendar's
    holidays (country, subdivision, file), and days on which the spec's 0/1 holiday column
    is 1 for the group."""
    years = wall.get_column("__date").dt.year().unique().drop_nulls().to_list()
    years = tuple(sorted({*years, *(y - 1 for y in years), *(y + 1 for y in years)}))
    known = pl.Series(sorted(holiday_dates(spec, years)), dtype=pl.Date).implode()
    day = pl.duration(days=1)
    shifted = {"is_holiday": pl.col("__date"), "is_day_before_holiday": pl.col("__date") + day,
               "is_day_after_holiday": pl.col("__date") - day}  # fmt: skip
    frame = wall.with_columns(d.alias(f"__{name}") for name, d in shifted.items())
    flags = {name: pl.col(f"__{name}").is_in(known) for name in shifted}
    if spec.holiday_column:
        by = [spec.group] if spec.group else []
        marked = wall.group_by([*by, "__date"]).agg((pl.col(spec.holiday_column) >= 0.5).any().alias("__marked"))
        for name in shifted:
            found = marked.rename({"__date": f"__{name}", "__marked": f"__m_{name}"})
            frame = frame.join(found, on=[*by, f"__{name}"], how="left", maintain_order="left")
            flags[name] = flags[name] | pl.col(f"__m_{name}").fill_null(False)
    return frame.select(expr.cast(pl.Int8).alias(name) for name, expr in flags.items())


def holiday_dates(spec: DatasetSpec, years: tuple[int, ...]) -> frozenset[date]:
    """Holidays of the spec's calendar in `years`: country (and subdivision, observed days
    included) from the holidays package, plus the dates of the spec's holiday file."""
    dates = holiday_set(spec.holidays_country, years, spec.holidays_subdivision)
    if spec.holidays_file:
        dates = dates | _file_dates(spec.holidays_file, os.path.getmtime(spec.holidays_file))
    return dates


@lru_cache(maxsize=32)
def holiday_set(country: str | None, years: tuple[int, ...], subdivision: str | None = None) -> frozenset[date]:
    if not country or not years:
        return frozenset()
    import holidays

    calendar = holidays.country_holidays(country, subdiv=subdivision, years=list(years), observed=True)
    return frozenset(calendar.keys())


@lru_cache(maxsize=8)
def _file_dates(path: str, mtime: float) -> frozenset[date]:
    return read_holiday_file(path)


def shift_back(ts: pl.Expr, hours: float, spec: DatasetSpec) -> pl.Expr:
    """The UTC instant `hours` before `ts` as the grid counts it: for daily data whole local
    calendar days (polars `offset_by("-<n>d")` on the local date, then that day's first instant,
    so 24 h is one local day across a DST change), else elapsed time."""
    if spec.is_daily:
        day = ts.dt.convert_time_zone(spec.timezone).dt.date().dt.offset_by(f"-{spec.steps(hours)}d")
        return local_day_start(day, spec.timezone)
    return ts - pl.duration(microseconds=round(hours * 3_600_000_000))


def _close(value: pl.Expr, expected: pl.Expr) -> pl.Expr:
    return (value - expected).abs() <= 1e-9 * (1 + expected.abs())


def lag_mismatches(features: pl.DataFrame, history: pl.DataFrame, spec: DatasetSpec) -> dict[str, int]:
    """Independent check of the lag features (target and observed-only): join each row to the
    same group's history exactly `lag` earlier and count disagreements, a null lag where that
    value exists included. Rows whose source was missing (and, for the target, filled) are not
    compared. Columns absent from `features` are skipped."""
    result = {}
    for col, (source_col, hours) in lag_sources(spec).items():
        if col not in features.columns:
            continue
        source = history.select(*spec.key_columns, pl.col(source_col).alias("__expected")).drop_nulls("__expected")
        probe = features.select(*spec.key_columns, col).with_columns(
            shift_back(pl.col(spec.timestamp), hours, spec).alias(spec.timestamp)
        )
        joined = probe.join(source, on=spec.key_columns, how="inner")
        result[col] = joined.filter(~_close(pl.col(col), pl.col("__expected")).fill_null(False)).height
    return result


def values_after_cutoff(features: pl.DataFrame, history: pl.DataFrame, spec: DatasetSpec) -> dict[str, int]:
    """Independent leakage check: per lag column (target and observed-only), the rows at t whose
    non-null value cannot have come from the history at or before t - horizon.

    A value is accounted for when it equals its source at t - lag, or, where that source is
    missing, for the target only: equals the last earlier observed value (carried forward), or
    lies between it and the next observed value when that next value is no later than
    t - horizon (linear fill). Observed-only features are never filled (and never inputs at t:
    `feature_columns`)."""
    ts = spec.timestamp
    by = [spec.group] if spec.group else None
    result = {}
    for col, (source_col, hours) in lag_sources(spec).items():
        if col not in features.columns:
            continue
        rows = features.select(*spec.key_columns, col).filter(pl.col(col).is_not_null()).with_columns(
            shift_back(pl.col(ts), hours, spec).alias("__p"),
            shift_back(pl.col(ts), spec.horizon_hours, spec).alias("__c"),
        )
        observed = history.select(*spec.key_columns, pl.col(source_col).alias("__v")).drop_nulls("__v").sort(ts)
        rows = rows.join(observed.rename({ts: "__p"}), on=[*(by or []), "__p"], how="left")
        ok = (pl.col("__p") <= pl.col("__c")) & pl.col("__v").is_not_null() & _close(pl.col(col), pl.col("__v"))
        if source_col == spec.target.column:
            rows = _neighbours(rows.sort("__p"), observed, ts, by)
            lo, hi = pl.min_horizontal("__prev", "__next"), pl.max_horizontal("__prev", "__next")
            linear = (pl.col("__next_ts") <= pl.col("__c")) & (pl.col(col) >= lo - 1e-9 * (1 + lo.abs()))
            linear = linear & (pl.col(col) <= hi + 1e-9 * (1 + hi.abs()))
            carried = (pl.col("__prev_ts") <= pl.col("__c")) & _close(pl.col(col), pl.col("__prev"))
            filled = pl.col("__v").is_null() & (carried.fill_null(False) | linear.fill_null(False))
            ok = ok | filled.fill_null(False)
        result[col] = rows.filter(~ok.fill_null(False)).height
    return result


def _neighbours(rows: pl.DataFrame, observed: pl.DataFrame, ts: str, by: list[str] | None) -> pl.DataFrame:
    """The last observed value strictly before `__p` and the first at or after it (with its time)."""
    before = observed.select(*(by or []), pl.col(ts).alias("__prev_ts"), pl.col("__v").alias("__prev"))
    after = observed.select(*(by or []), pl.col(ts).alias("__next_ts"), pl.col("__v").alias("__next"))
    rows = rows.join_asof(
        before, left_on="__p", right_on="__prev_ts", by=by, strategy="backward", allow_exact_matches=False,
        check_sortedness=False,
    )
    return rows.join_asof(
        after, left_on="__p", right_on="__next_ts", by=by, strategy="forward", check_sortedness=False
    )


def lookback_hours(spec: DatasetSpec) -> int:
    """How much history before a batch its features need (a day more for daily data, whose
    local days may be 25 h long)."""
    reach = max(*spec.lags_hours, *BASELINE_HOURS.values())
    windows = max([*spec.rolling_windows_hours, *temperature_windows(spec)], default=0)
    total = reach + spec.horizon_hours + windows + spec.max_interpolate_hours + (24 if spec.is_daily else 0)
    return math.ceil(total)


def batch_features(history_window: pl.DataFrame, batch: pl.DataFrame, spec: DatasetSpec) -> pl.DataFrame:
    """Features for a batch's rows, from the batch on top of the history just before it
    (the batch wins where both have a row). Rows without a target are kept: they are the
    steps to forecast. Rows without the shortest target lag's history are not returned (they
    cannot be scored yet); longer lags may be null, as in `build_features`."""
    earlier = history_window.join(batch.select(spec.key_columns), on=spec.key_columns, how="anti")
    merged = pl.concat([earlier, batch], how="vertical_relaxed").sort(spec.key_columns)
    frame, _ = build_features(merged, spec, require_target=False)
    return frame.join(batch.select(spec.key_columns), on=spec.key_columns, how="semi")
