"""Blocking checks of each day pulled from the sources, before it is joined and landed:
schema and units as expected, one value per (subregion, hour), every hour present. A day
with missing hours lands (the gaps listed, the hours left empty, counted by ingestion); a
subregion without any demand that day stops it. Weather missing for a whole day (the archive
lags real time by a few days) lands empty: fetch the day again later to fill it."""

import warnings

import dagster as dg
import polars as pl

from mlops_assets.core.sources.checks import duplicate_keys, gap_table, missing_hours, schema_problems, unit_problems
from mlops_assets.core.sources.eia import DEMAND_SCHEMA
from mlops_assets.core.sources.hours import HOURS_PER_DAY
from mlops_assets.core.sources.weather import WEATHER_SCHEMA
from mlops_assets.defs.metadata import table_metadata
from mlops_assets.defs.sources.assets import (
    demand_series, eia_demand, partition_day, source_days, weather_observations, weather_series,
)
from mlops_assets.resources.sources import SourcesSettings

# Checks on a partition are a preview API in Dagster 1.13, used deliberately: say so once, here.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message="Specifying a partitions_def on an AssetCheckSpec")


def _schema_result(problems: list[str], rows: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems)[:2000] if problems else f"{rows} rows: columns, types and units as expected",
        metadata={"problems": len(problems), "rows": rows},
    )


def _unique_result(frame: pl.DataFrame, keys: list[str]) -> dg.AssetCheckResult:
    dupes, named = duplicate_keys(frame, keys), ", ".join(keys)
    return dg.AssetCheckResult(
        passed=dupes.is_empty(),
        description=f"{dupes.height} keys ({named}) appear more than once" if dupes.height else f"one row per ({named})",
        metadata={"duplicated_keys": dupes.height, "duplicates": table_metadata(dupes)},
    )


def _complete_result(frame: pl.DataFrame, series: pl.DataFrame, day, block_empty: bool) -> dg.AssetCheckResult:
    """Passes when every hour has a value; a WARN listing the gaps when some are missing (the
    day still lands); an ERROR, which blocks, when a series has no value at all that day and
    `block_empty` (demand: a subregion without any is no day to learn from)."""
    gaps = missing_hours(frame, series, day)
    table = gap_table(gaps, series.columns)
    empty = table.filter(pl.col("missing_hours") == HOURS_PER_DAY)
    if gaps.is_empty():
        description = f"all {HOURS_PER_DAY} hours of {day} present for {series.height} series"
    elif empty.height:
        names = ", ".join("/".join(r) for r in empty.select(series.columns).rows())
        description = f"{empty.height} series without any value on {day}: {names}"
    else:
        description = f"{gaps.height} missing hours on {day}: " + "; ".join(
            f"{'/'.join(str(row[c]) for c in series.columns)} {row['hours_utc']}" for row in table.iter_rows(named=True)
        )
    return dg.AssetCheckResult(
        passed=gaps.is_empty(),
        severity=dg.AssetCheckSeverity.ERROR if empty.height and block_empty else dg.AssetCheckSeverity.WARN,
        description=description[:2000],
        metadata={"missing_hours": gaps.height, "series_without_values": empty.height, "gaps": table_metadata(table)},
    )


@dg.asset_check(
    asset=eia_demand, blocking=True, partitions_def=source_days,
    description=(
        "Columns and types as documented, demand in the configured unit, only configured subregions, only "
        "hours of the day."
    ),
)
def eia_demand_schema_and_units(
    context: dg.AssetCheckExecutionContext, eia_demand: pl.DataFrame, sources: SourcesSettings
) -> dg.AssetCheckResult:
    config = sources.load()
    problems = schema_problems(eia_demand, DEMAND_SCHEMA, partition_day(context))
    if not problems:
        problems += unit_problems(eia_demand, {"value": config.demand_unit}, None)
        unknown = sorted(set(eia_demand["subregion"].unique().to_list()) - set(config.subba_codes))
        problems += [f"subregion {code} is not configured" for code in unknown]
    return _schema_result(problems, eia_demand.height)


@dg.asset_check(
    asset=eia_demand, blocking=True, partitions_def=source_days,
    description="No (subregion, hour) appears twice.",
)
def eia_demand_unique_hours(eia_demand: pl.DataFrame) -> dg.AssetCheckResult:
    return _unique_result(eia_demand, ["subregion", "time_utc"])


@dg.asset_check(
    asset=eia_demand, blocking=True, partitions_def=source_days,
    description=(
        "Every hour of the UTC day has demand for every subregion, or the gaps are listed (WARN); a subregion "
        "without any value blocks the day."
    ),
)
def eia_demand_complete_hours(
    context: dg.AssetCheckExecutionContext, eia_demand: pl.DataFrame, sources: SourcesSettings
) -> dg.AssetCheckResult:
    return _complete_result(eia_demand, demand_series(sources.load()), partition_day(context), block_empty=True)


@dg.asset_check(
    asset=weather_observations, blocking=True, partitions_def=source_days,
    description="Columns and types as documented, every variable in its configured unit, only hours of the day.",
)
def weather_observations_schema_and_units(
    context: dg.AssetCheckExecutionContext, weather_observations: pl.DataFrame, sources: SourcesSettings
) -> dg.AssetCheckResult:
    config = sources.load()
    problems = schema_problems(weather_observations, WEATHER_SCHEMA, partition_day(context))
    if not problems:
        problems += unit_problems(weather_observations, {v.name: v.unit for v in config.variables}, "variable")
    return _schema_result(problems, weather_observations.height)


@dg.asset_check(
    asset=weather_observations, blocking=True, partitions_def=source_days,
    description="No (subregion, variable, hour) appears twice.",
)
def weather_observations_unique_hours(weather_observations: pl.DataFrame) -> dg.AssetCheckResult:
    return _unique_result(weather_observations, ["subregion", "variable", "time_utc"])


@dg.asset_check(
    asset=weather_observations, blocking=True, partitions_def=source_days,
    description=(
        "Every hour of the UTC day has every variable for every subregion, or the gaps are listed (WARN: the "
        "day lands with those values empty, to be filled by fetching it again later)."
    ),
)
def weather_observations_complete_hours(
    context: dg.AssetCheckExecutionContext, weather_observations: pl.DataFrame, sources: SourcesSettings
) -> dg.AssetCheckResult:
    return _complete_result(weather_observations, weather_series(sources.load()), partition_day(context), block_empty=False)
