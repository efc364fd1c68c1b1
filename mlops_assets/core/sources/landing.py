"""One UTC day of demand and weather as a batch file for the landing zone, named by the
dataset spec: every (subregion, hour) of the day is a row (24 per subregion, whatever the
subregion's clocks did that day), timestamps written in UTC with an explicit offset so
nothing is reinterpreted in the spec's zone, an hour without a value left empty."""

from __future__ import annotations

import io
from datetime import date

import polars as pl

from mlops_assets.core.sources.config import SourcesConfig
from mlops_assets.core.sources.hours import day_hours
from mlops_assets.core.spec import DatasetSpec


def batch_file_name(config: SourcesConfig, day: date) -> str:
    """The same name for the same day: a re-fetched day lands again as a late correction."""
    return f"eia_{config.parent}_{day.isoformat()}.csv"


def unfed_columns(spec: DatasetSpec, config: SourcesConfig) -> list[str]:
    """Spec columns no source fills (numeric features without a weather variable, categorical
    features): a batch without them would be quarantined, so they are refused up front."""
    fed = {v.column for v in config.variables}
    return [c for c in spec.numeric_columns if c not in fed] + list(spec.categorical_features)


def landing_frame(demand: pl.DataFrame, weather: pl.DataFrame, spec: DatasetSpec, config: SourcesConfig, day: date) -> pl.DataFrame:
    """Demand and weather of `day` joined on (subregion, UTC hour), with the spec's column names."""
    unfed = unfed_columns(spec, config)
    if unfed:
        raise ValueError(f"{config.source}: spec {spec.name} needs {unfed}, which no weather variable fills (weather.variables[].column)")
    if spec.group is None and len(config.subregions) > 1:
        raise ValueError(f"spec {spec.name} has no group column, but {config.source} names {len(config.subregions)} subregions")
    hour_type = pl.Datetime("us", "UTC")
    grid = pl.DataFrame({"subregion": config.subba_codes}).join(
        pl.DataFrame({"time_utc": day_hours(day)}, schema={"time_utc": hour_type}), how="cross"
    )
    load = demand.select("subregion", "time_utc", pl.col("value").alias(spec.target.column))
    columns = {v.name: v.column for v in config.variables}
    wide = (
        weather.filter(pl.col("variable").is_in(list(columns)))
        .pivot(on="variable", index=["subregion", "time_utc"], values="value")
        .rename(lambda name: columns.get(name, name))
    )
    wide = wide.with_columns([pl.lit(None, pl.Float64).alias(c) for c in columns.values() if c not in wide.columns])
    joined = grid.join(load, on=["subregion", "time_utc"], how="left").join(wide, on=["subregion", "time_utc"], how="left")
    named = joined.rename({"time_utc": spec.timestamp, **({"subregion": spec.group} if spec.group else {})})
    return named.select(spec.required_columns).sort(spec.key_columns)


def batch_csv(frame: pl.DataFrame, spec: DatasetSpec) -> bytes:
    """CSV bytes; timestamps like 2024-01-01T05:00:00+00:00. Deterministic, so a day fetched
    again unchanged lands the same bytes (one batch) and a revised day lands new ones."""
    buffer = io.BytesIO()
    frame.with_columns(pl.col(spec.timestamp).dt.strftime("%Y-%m-%dT%H:%M:%S%:z")).write_csv(buffer)
    return buffer.getvalue()
