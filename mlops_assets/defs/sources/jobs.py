"""Fetching the sources: one run per UTC day (a partition), from the schedule, a partition
backfill in the UI, or `mlops-assets fetch`."""

import dagster as dg

from mlops_assets.defs.sources.assets import SOURCES_GROUP, source_days

sources_job = dg.define_asset_job(
    "sources_job",
    selection=dg.AssetSelection.groups(SOURCES_GROUP),
    partitions_def=source_days,
    description="Pull one UTC day of EIA demand and Open-Meteo weather, check both, land the joined day as a batch file.",
)

daily_sources_schedule = dg.build_schedule_from_partitioned_job(
    sources_job,
    name="daily_sources_schedule",
    hour_of_day=7,
    minute_of_hour=0,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Daily 07:00 UTC: fetch yesterday (UTC) from EIA and Open-Meteo into the landing zone.",
)
