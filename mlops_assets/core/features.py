"""Model features: calendar (local time, holidays), weather, and per-group lags and rolling
statistics of the target. Lags are computed on a complete time grid per group, so a lag of
24 h is 24 hours, and never reach into another group's series."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from functools import lru_cache
from typing import Any

import polars as pl

from mlops_assets.core.spec import DatasetSpec

CALENDAR_COLUMNS = ("hour", "day_of_week", "month", "day_of_year", "is_weekend", "is_holiday", "hour_sin", "hour_cos", "year_sin", "year_cos")
_LAG_INPUT = "__lag_input"


@dataclass
class FeatureReport:
    rows_in: int
    grid_rows: int
    interpolated_target_points: int
    rows_without_target: int
    rows_without_full_lags: int
    rows_out: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def steps(spec: DatasetSpec, hours: int) -> int:
    return max(1, round(hours * 3600 / spec.frequency_delta.total_seconds()))


def lag_columns(spec: DatasetSpec) -> list[str]:
    y = spec.target.column
    lags = [f"{y}_lag_{h}h" for h in spec.lags_hours]
    rolls = [f"{y}_roll_{stat}_{w}h" for w in spec.rolling_windows_hours for stat in ("mean", "std")]
    return lags + rolls


def feature_columns(spec: DatasetSpec) -> list[str]:
    """Model inputs in a fixed order; the group stays an input (as a category)."""
    group = [spec.group] if spec.group else []
    return [*group, *spec.categorical_features, *spec.numeric_columns, *CALENDAR_COLUMNS, *lag_columns(spec)]


def categorical_columns(spec: DatasetSpec) -> list[str]:
    return [*([spec.group] if spec.group else []), *spec.categorical_features]


def build_features(history: pl.DataFrame, spec: DatasetSpec, require_target: bool = True) -> tuple[pl.DataFrame, FeatureReport]:
    """Rows with complete lags (and, for training, an observed target); columns: keys,
    target, features."""
    grid = complete_grid(history, spec)
    grid = _with_lag_input(grid, spec)
    interpolated = int(grid.select((pl.col(spec.target.column).is_null() & pl.col(_LAG_INPUT).is_not_null()).sum()).item())
    frame = grid.with_columns(_weather_fill(spec)).with_columns(_lags(spec)).with_columns(_calendar(grid, spec))
    lag_cols = lag_columns(spec)
    has_target = pl.col(spec.target.column).is_not_null()
    full_lags = pl.all_horizontal(pl.col(c).is_not_null() for c in lag_cols)
    report = FeatureReport(
        rows_in=history.height,
        grid_rows=grid.height,
        interpolated_target_points=interpolated,
        rows_without_target=int(frame.select((~has_target).sum()).item()),
        rows_without_full_lags=int(frame.select((has_target & ~full_lags).sum()).item()),
        rows_out=0,
    )
    keep = (has_target & full_lags) if require_target else full_lags
    out = frame.filter(keep).select(spec.timestamp, spec.target.column, *feature_columns(spec))
    out = out.select(*spec.key_columns, *[c for c in out.columns if c not in spec.key_columns])
    report.rows_out = out.height
    return out, report


def complete_grid(history: pl.DataFrame, spec: DatasetSpec) -> pl.DataFrame:
    """Every step between each group's first and last timestamp, missing ones as null rows."""
    ts = spec.timestamp
    if not spec.group:
        return history.sort(ts).upsample(time_column=ts, every=spec.frequency)
    grid = history.sort(spec.key_columns).upsample(time_column=ts, every=spec.frequency, group_by=spec.group, maintain_order=True)
    return grid.select(spec.group, ts, *[c for c in history.columns if c not in spec.key_columns])


def _over(expr: pl.Expr, spec: DatasetSpec) -> pl.Expr:
    return expr.over(spec.group) if spec.group else expr


def _with_lag_input(grid: pl.DataFrame, spec: DatasetSpec) -> pl.DataFrame:
    """The series lags read from: the target with gaps of at most `max_interpolate_hours`
    filled linearly (shorter than any lag, so no future value reaches a prediction)."""
    y = pl.col(spec.target.column)
    limit = steps(spec, spec.max_interpolate_hours) if spec.max_interpolate_hours else 0
    run = _over(y.is_null().rle_id(), spec)
    parts = [spec.group, "__run"] if spec.group else ["__run"]
    frame = grid.with_columns(run.alias("__run"))
    frame = frame.with_columns(pl.len().over(parts).alias("__run_len"))
    fill = y.is_null() & (pl.col("__run_len") <= limit)
    return frame.with_columns(
        pl.when(fill).then(_over(y.interpolate(), spec)).otherwise(y).alias(_LAG_INPUT)
    ).drop("__run", "__run_len")


def _weather_fill(spec: DatasetSpec) -> list[pl.Expr]:
    """Forward-fill short weather gaps within a group (a past value, never a future one)."""
    limit = steps(spec, spec.max_interpolate_hours) if spec.max_interpolate_hours else 0
    return [_over(pl.col(c).forward_fill(limit=limit), spec).alias(c) for c in spec.numeric_columns]


def _lags(spec: DatasetSpec) -> list[pl.Expr]:
    y = spec.target.column
    src = pl.col(_LAG_INPUT)
    exprs = [_over(src.shift(steps(spec, h)), spec).alias(f"{y}_lag_{h}h") for h in spec.lags_hours]
    shifted = src.shift(steps(spec, spec.horizon_hours))
    for w in spec.rolling_windows_hours:
        n = steps(spec, w)
        exprs.append(_over(shifted.rolling_mean(n, min_samples=max(1, n // 2)), spec).alias(f"{y}_roll_mean_{w}h"))
        exprs.append(_over(shifted.rolling_std(n, min_samples=max(2, n // 2)), spec).alias(f"{y}_roll_std_{w}h"))
    return exprs


def _calendar(grid: pl.DataFrame, spec: DatasetSpec) -> list[pl.Expr]:
    """Calendar in the spec's local time zone (load follows local clocks, not UTC), from one
    time-zone conversion."""
    wall = grid.select(pl.col(spec.timestamp).dt.convert_time_zone(spec.timezone).dt.replace_time_zone(None).alias("__wall"))
    years = tuple(sorted(wall.get_column("__wall").dt.year().unique().drop_nulls().to_list()))
    holidays = pl.Series(sorted(holiday_set(spec.holidays_country, years)), dtype=pl.Date)
    w = pl.col("__wall")
    hour, doy = w.dt.hour().cast(pl.Float64), w.dt.ordinal_day().cast(pl.Float64)
    two_pi = 2 * 3.141592653589793
    cal = wall.select(
        w.dt.hour().cast(pl.Int8).alias("hour"),
        w.dt.weekday().cast(pl.Int8).alias("day_of_week"),
        w.dt.month().cast(pl.Int8).alias("month"),
        w.dt.ordinal_day().cast(pl.Int16).alias("day_of_year"),
        (w.dt.weekday() >= 6).cast(pl.Int8).alias("is_weekend"),
        w.dt.date().is_in(holidays.implode()).cast(pl.Int8).alias("is_holiday"),
        (hour * two_pi / 24).sin().alias("hour_sin"),
        (hour * two_pi / 24).cos().alias("hour_cos"),
        (doy * two_pi / 365.25).sin().alias("year_sin"),
        (doy * two_pi / 365.25).cos().alias("year_cos"),
    )
    return [pl.lit(cal.get_column(c)).alias(c) for c in cal.columns]


@lru_cache(maxsize=32)
def holiday_set(country: str | None, years: tuple[int, ...]) -> frozenset[date]:
    if not country or not years:
        return frozenset()
    import holidays

    return frozenset(holidays.country_holidays(country, years=list(years)).keys())


def lag_mismatches(features: pl.DataFrame, history: pl.DataFrame, spec: DatasetSpec) -> dict[str, int]:
    """Independent check of the lag features: join each row to the same group's observed
    target exactly `lag` hours earlier and count disagreements. Rows whose source hour was
    missing (and so interpolated) are not compared."""
    y = spec.target.column
    source = history.select(*spec.key_columns, pl.col(y).alias("__expected")).filter(pl.col("__expected").is_not_null())
    result = {}
    for hours in spec.lags_hours:
        col = f"{y}_lag_{hours}h"
        probe = features.select(*spec.key_columns, col).with_columns(
            (pl.col(spec.timestamp) - pl.duration(hours=hours)).alias(spec.timestamp)
        )
        joined = probe.join(source, on=spec.key_columns, how="inner")
        bad = joined.filter((pl.col(col) - pl.col("__expected")).abs() > 1e-9 * (1 + pl.col("__expected").abs()))
        result[col] = bad.height
    return result


def lookback_hours(spec: DatasetSpec) -> int:
    """How much history before a batch its features need."""
    return max(spec.lags_hours) + spec.horizon_hours + max(spec.rolling_windows_hours, default=0)


def batch_features(history_window: pl.DataFrame, batch: pl.DataFrame, spec: DatasetSpec) -> pl.DataFrame:
    """Features for a batch's rows, from the batch on top of the history just before it
    (the batch wins where both have a row). Rows without a target are kept: they are the
    hours to forecast."""
    merged = pl.concat([history_window.join(batch.select(spec.key_columns), on=spec.key_columns, how="anti"), batch], how="vertical_relaxed").sort(spec.key_columns)
    frame, _ = build_features(merged, spec, require_target=False)
    return frame.join(batch.select(spec.key_columns), on=spec.key_columns, how="semi")
