import json

import dagster as dg

from mlops_assets.defs.ingestion.discovery import attempts, discover_batches, received_keys, running_keys
from mlops_assets.defs.jobs import ingestion_job
from mlops_assets.defs.partitions import BATCHES, batches
from mlops_assets.resources.landing import LandingZone


def run_key(instance: dg.DagsterInstance, key: str) -> str:
    """The batch key for a first attempt; after runs that ended without ingesting the batch,
    the key with the attempt number, so the daemon launches the retry (it never launches a run
    key twice)."""
    attempt = attempts(instance, key)
    return f"{key}#retry{attempt}" if attempt else key


@dg.sensor(
    job=ingestion_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the landing zone: each new file becomes a batch partition and one ingestion_job run.",
)
def new_data_sensor(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
    """Watches the landing zone: each new file becomes a `batches` partition and one run of
    `ingestion_job`. The cursor remembers files already hashed. A batch counts as received once
    it was cleaned or quarantined, so a re-delivered file is a no-op, while a batch whose run
    failed otherwise is requested again on the next tick (never while a run of it is going)."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    instance = context.instance
    found = discover_batches(landing, received_keys(instance, landing), cursor.get("seen", {}), running_keys(instance))
    for landed in found.already_known:
        context.log.info(f"{landed.name}: same bytes as batch {landed.key}, already received")
    for name, error in found.failed.items():
        context.log.error(f"{name}: could not be received, will retry: {error}")
    known = set(instance.get_dynamic_partitions(BATCHES))
    new_keys = [landed.key for landed in found.new if landed.key not in known]
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=run_key(instance, landed.key),
                partition_key=landed.key,
                tags={"mlops/landed_file": landed.name[:200]},
            )
            for landed in found.new
        ],
        dynamic_partitions_requests=[batches.build_add_request(new_keys)] if new_keys else None,
        cursor=json.dumps({"seen": found.seen}),
    )
