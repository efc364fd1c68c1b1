from collections.abc import Iterator
from typing import NoReturn

import dagster as dg

from mlops_assets.core.ingest import BatchError
from mlops_assets.defs.partitions import BATCHES
from mlops_assets.resources.landing import LandingZone


def quarantine_and_fail(
    context: dg.AssetExecutionContext, landing: LandingZone, error: BatchError, check_name: str, asset: str
) -> Iterator[dg.AssetCheckResult]:
    """Move the batch to quarantine, fail the check with the same reason, drop its key from the
    `batches` partitions, then fail the step: the check and the run show red with one message.
    The key goes because a quarantined file is not part of the dataset (a corrected file lands
    as a new batch): kept, it would show every downstream asset as missing a partition forever.
    The run, the check and `quarantine/<key>/` keep the record."""
    reason = error.to_dict()
    folder = landing.quarantine(context.partition_key, reason)
    metadata = {
        "file": error.file,
        "error_kind": error.kind,
        "reason": str(error),
        "columns": ", ".join(error.columns) or "-",
        "rows": ", ".join(str(r) for r in error.rows[:50]) or "-",
        "row_count": len(error.rows),
        "quarantine": dg.MetadataValue.path(folder),
    }
    context.log.warning(f"batch {context.partition_key} quarantined in {folder}: {error}")
    yield dg.AssetCheckResult(asset_key=asset, check_name=check_name, passed=False, metadata=metadata, description=str(error))
    context.instance.delete_dynamic_partition(BATCHES, context.partition_key)
    _fail(error, metadata)


def _fail(error: BatchError, metadata: dict) -> NoReturn:
    raise dg.Failure(description=f"quarantined: {error}", metadata=metadata, allow_retries=False)
