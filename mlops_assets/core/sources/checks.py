"""What the source checks look for: schema and units, duplicate hours, and missing hours of a
UTC day (absent rows and empty values alike)."""

from __future__ import annotations

from datetime import date

import polars as pl

from mlops_assets.core.sources.hours import day_hours, hour_ranges


def schema_problems(frame: pl.DataFrame, expected: dict[str, pl.DataType], day: date) -> list[str]:
    """Columns missing or of another type, and rows outside the partition's UTC day."""
    problems = [f"column {name} is missing" for name in expected if name not in frame.columns]
    problems += [
        f"column {name} is {frame.schema[name]}, expected {dtype}"
        for name, dtype in expected.items()
        if name in frame.columns and frame.schema[name] != dtype
    ]
    if not problems:
        hours = day_hours(day)
        outside = frame.filter((pl.col("time_utc") < hours[0]) | (pl.col("time_utc") > hours[-1])).height
        if outside:
            problems.append(f"{outside} rows lie outside the UTC day {day}")
    return problems


def unit_problems(frame: pl.DataFrame, expected: dict[str, str], key: str | None) -> list[str]:
    """Units other than expected: per value of `key` (e.g. each weather variable), or for every
    row under the single expected unit when `key` is None."""
    if key is None:
        (unit,) = expected.values()
        found = sorted(set(frame["unit"].unique().to_list()) - {unit})
        return [f"unit {u!r} found, expected {unit!r}" for u in found]
    problems = []
    for name, unit in expected.items():
        found = sorted(set(frame.filter(pl.col(key) == name)["unit"].unique().to_list()) - {unit})
        problems += [f"{name}: unit {u!r}, expected {unit!r}" for u in found]
    return problems


def duplicate_keys(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Each key seen more than once, with how often."""
    return frame.group_by(keys).len("rows").filter(pl.col("rows") > 1).sort(keys)


def missing_hours(frame: pl.DataFrame, series: pl.DataFrame, day: date) -> pl.DataFrame:
    """(series columns, hour) of every expected hour of the day without a value: `series`
    holds one row per expected series (e.g. each subregion, or subregion x variable)."""
    grid = series.join(pl.DataFrame({"time_utc": day_hours(day)}, schema={"time_utc": pl.Datetime("us", "UTC")}), how="cross")
    present = frame.filter(pl.col("value").is_not_null()).select(*series.columns, "time_utc").unique()
    return grid.join(present, on=[*series.columns, "time_utc"], how="anti").sort(*series.columns, "time_utc")


def gap_table(missing: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """One line per series with gaps: how many hours and which (UTC ranges)."""
    if missing.is_empty():
        return pl.DataFrame(schema={**{k: pl.String for k in keys}, "missing_hours": pl.Int64, "hours_utc": pl.String})
    rows = [
        {**dict(zip(keys, key)), "missing_hours": part.height, "hours_utc": hour_ranges(part["time_utc"].to_list())}
        for key, part in missing.group_by(keys, maintain_order=True)
    ]
    return pl.DataFrame(rows).with_columns(pl.col("missing_hours").cast(pl.Int64))
