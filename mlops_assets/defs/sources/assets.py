"""The real sources as daily (UTC) partitions: EIA-930 hourly demand, Open-Meteo hourly
weather, and the day joined into one batch file in the landing zone, where `new_data_sensor`
takes it like any other landed file."""


from datetime import date

import dagster as dg
import polars as pl

from mlops_assets.core.ingest import sha256_hex
from mlops_assets.core.sources.checks import gap_table, missing_hours
from mlops_assets.core.sources.config import SourcesConfig
from mlops_assets.core.sources.hours import local_span
from mlops_assets.core.sources.landing import batch_csv, batch_file_name, landing_frame
from mlops_assets.defs.metadata import table_metadata
from mlops_assets.resources.dataset import DatasetSpecResource
from mlops_assets.resources.gcs import storage_path
from mlops_assets.resources.landing import LandingZone, write_atomic
from mlops_assets.resources.sources import EiaClient, Fetched, SourcesSettings, WeatherClient

SOURCES_GROUP = "sources"
# EIA-930 has subregion demand from 2019 on; a partition is one UTC day.
source_days = dg.DailyPartitionsDefinition(start_date="2019-01-01", timezone="UTC")


def partition_day(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> date:
    return date.fromisoformat(context.partition_key)


def demand_series(config: SourcesConfig) -> pl.DataFrame:
    """The series the demand must cover: each configured subregion."""
    return pl.DataFrame({"subregion": config.subba_codes})


def weather_series(config: SourcesConfig) -> pl.DataFrame:
    """The series the weather must cover: each subregion x variable."""
    return demand_series(config).join(pl.DataFrame({"variable": [v.name for v in config.variables]}), how="cross")


def fetch_metadata(fetched: Fetched, series: pl.DataFrame, config: SourcesConfig, day: date) -> dict:
    """Requests, rows, first and last hour, missing hours (and which), the endpoint without key."""
    frame = fetched.frame
    gaps = missing_hours(frame, series, day)
    hours = frame["time_utc"]
    zones = sorted({s.timezone for s in config.subregions})
    return {
        "requests": fetched.requests,
        "pages": fetched.pages,
        "rows": frame.height,
        "first_hour_utc": str(hours.min()) if frame.height else "none",
        "last_hour_utc": str(hours.max()) if frame.height else "none",
        "missing_hours": gaps.height,
        "gaps": table_metadata(gap_table(gaps, series.columns)),
        "endpoint": dg.MetadataValue.url(fetched.endpoint) if fetched.endpoint.startswith("http") else fetched.endpoint,
        "local_day": "; ".join(f"{zone}: {local_span(day, zone)}" for zone in zones),
    }


@dg.asset(partitions_def=source_days, group_name=SOURCES_GROUP, kinds={"polars"})
def eia_demand(context: dg.AssetExecutionContext, eia: EiaClient, sources: SourcesSettings) -> pl.DataFrame:
    """Hourly demand (MWh per hour) per subregion for one UTC day, from the EIA API v2
    (EIA-930, route region-sub-ba-data), read page by page up to the reported total."""
    config, day = sources.load(), partition_day(context)
    fetched = eia.fetch_demand(config, day)
    context.add_output_metadata(fetch_metadata(fetched, demand_series(config), config, day))
    return fetched.frame


@dg.asset(partitions_def=source_days, group_name=SOURCES_GROUP, kinds={"polars"})
def weather_observations(context: dg.AssetExecutionContext, weather: WeatherClient, sources: SourcesSettings) -> pl.DataFrame:
    """Hourly weather (temperature, humidity, wind speed, cloud cover, precipitation) at each
    subregion's coordinate for one UTC day, from the Open-Meteo historical weather API."""
    config, day = sources.load(), partition_day(context)
    fetched = weather.fetch_weather(config, day)
    context.add_output_metadata(fetch_metadata(fetched, weather_series(config), config, day))
    return fetched.frame


@dg.asset(partitions_def=source_days, group_name=SOURCES_GROUP, kinds={"csv"})
def source_batch_file(
    context: dg.AssetExecutionContext, eia_demand: pl.DataFrame, weather_observations: pl.DataFrame,
    dataset: DatasetSpecResource, sources: SourcesSettings, landing: LandingZone,
) -> dg.MaterializeResult:
    """The day's demand and weather joined on (subregion, UTC hour), named by the dataset spec,
    written to the landing zone as one batch file (24 rows per subregion; an hour without a
    value left empty). A day fetched again with revised values lands again under the same name
    and wins, as any late correction does."""
    spec, config, day = dataset.load(), sources.load(), partition_day(context)
    frame = landing_frame(eia_demand, weather_observations, spec, config, day)
    data = batch_csv(frame, spec)
    path = storage_path(landing.root) / batch_file_name(config, day)
    write_atomic(path, data)
    return dg.MaterializeResult(
        metadata={
            "path": str(path),
            "dagster/row_count": frame.height,
            "subregions": frame[spec.group].n_unique() if spec.group else 1,
            "empty_target_values": frame[spec.target.column].null_count(),
            "bytes": len(data),
            "sha256": sha256_hex(data),
            "preview": table_metadata(frame, max_rows=10),
        }
    )
