"""Ingestion: landed batch files become `raw_load` and `clean_load` partitions."""

import dagster as dg
import polars as pl

from mlops_assets.core.cleaning import clean_batch
from mlops_assets.core.ingest import BatchError, file_format, parse_batch
from mlops_assets.defs.ingestion.quarantine import quarantine_and_fail
from mlops_assets.defs.metadata import counts, table_metadata
from mlops_assets.defs.partitions import batches
from mlops_assets.resources.dataset import DatasetSpecResource
from mlops_assets.resources.landing import LandingZone


@dg.asset(
    group_name="ingestion",
    partitions_def=batches,
    kinds={"polars", "parquet"},
    check_specs=[
        dg.AssetCheckSpec("readable", asset="raw_load", blocking=True, description="The file parses: encoding, header, rows, not truncated.")
    ],
)
def raw_load(context: dg.AssetExecutionContext, landing: LandingZone):
    """One landed batch file as received: bytes archived unchanged (with their SHA-256) and
    parsed into a frame, every CSV column still text. A file that cannot be parsed, or was
    refused on arrival (too large, a symbolic link), is quarantined with the reason."""
    landed = landing.manifest(context.partition_key)
    try:
        if landed.refused:
            raise BatchError(landed.name, landed.refused["kind"], landed.refused["message"])
        landed, data = landing.read_archived(context.partition_key)
        frame = parse_batch(landed.name, data, landing.max_columns)
    except BatchError as error:
        yield from quarantine_and_fail(context, landing, error, "readable", "raw_load")
        return
    yield dg.Output(
        frame,
        data_version=dg.DataVersion(landed.sha256[:16]),
        metadata={
            "file": landed.name,
            "sha256": landed.sha256,
            "bytes": landed.size,
            "format": file_format(landed.name),
            "received_at": landed.received_at,
            "archived_as": dg.MetadataValue.path(str(landing.archived_path(context.partition_key))),
        },
    )
    yield dg.AssetCheckResult(check_name="readable", passed=True, metadata={"rows": frame.height, "columns": frame.width - 1})


@dg.asset(
    group_name="ingestion",
    partitions_def=batches,
    kinds={"polars", "pandera", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(
            "valid_batch",
            asset="clean_load",
            blocking=True,
            description="Columns, types, timestamps, ranges and keys match the dataset spec (pandera).",
        )
    ],
)
def clean_load(context: dg.AssetExecutionContext, raw_load: pl.DataFrame, landing: LandingZone, dataset: DatasetSpecResource):
    """The batch cast to the spec's types, timestamps in UTC, negative readings and spikes
    nulled and counted, re-sent rows de-duplicated on (group, timestamp) with the last row
    winning; validated with pandera. A batch that fails is quarantined, never dropped."""
    from mlops_assets.core.schemas import validate_clean  # pandera brings pandas: not at code location load

    spec = dataset.load()
    file = landing.manifest(context.partition_key).name
    try:
        frame, report = clean_batch(raw_load, spec, file)
        frame = validate_clean(frame, spec, file)
    except BatchError as error:
        yield from quarantine_and_fail(context, landing, error, "valid_batch", "clean_load")
        return
    summary = report.to_dict()
    if report.mostly_missing:
        shares = ", ".join(f"{column} {share:.0%}" for column, share in report.mostly_missing.items())
        context.log.warning(f"batch {context.partition_key}: mostly missing values in {shares} (kept, counted)")
    yield dg.Output(
        frame,
        metadata={
            **counts(summary),
            "spikes_nulled": report.spikes_nulled,
            "out_of_range_nulled": dg.MetadataValue.json(report.out_of_range_nulled),
            "null_counts": dg.MetadataValue.json(report.null_counts),
            "missing_tokens": dg.MetadataValue.json(report.missing_tokens),
            "mostly_missing": dg.MetadataValue.json(report.mostly_missing),
            "first_timestamp": report.first_timestamp,
            "last_timestamp": report.last_timestamp,
            "extra_columns_ignored": ", ".join(report.extra_columns) or "-",
            "preview": table_metadata(frame, 10),
        },
    )
    yield dg.AssetCheckResult(
        check_name="valid_batch",
        passed=True,
        metadata={"rows_in": report.rows_in, "rows_out": report.rows_out, "duplicates_dropped": report.duplicates_dropped},
        description=f"{report.rows_out} rows valid for spec {spec.name!r}",
    )
