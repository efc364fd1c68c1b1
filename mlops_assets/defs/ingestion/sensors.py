import json

import dagster as dg

from mlops_assets.defs.ingestion.discovery import discover_batches
from mlops_assets.defs.jobs import ingestion_job
from mlops_assets.defs.partitions import BATCHES, batches
from mlops_assets.resources.landing import LandingZone


@dg.sensor(job=ingestion_job, minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.RUNNING)
def new_data_sensor(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
    """Watches the landing zone: each new file becomes a `batches` partition and one run of
    `ingestion_job`. The cursor remembers files already hashed; the run key (the batch key,
    which includes the content hash) makes a re-delivered file a no-op."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    known = set(context.instance.get_dynamic_partitions(BATCHES))
    found = discover_batches(landing, known, cursor.get("seen", {}))
    for landed in found.already_known:
        context.log.info(f"{landed.name}: same bytes as batch {landed.key}, already ingested")
    new_keys = [landed.key for landed in found.new]
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=landed.key, partition_key=landed.key, tags={"mlops/landed_file": landed.name[:200]})
            for landed in found.new
        ],
        dynamic_partitions_requests=[batches.build_add_request(new_keys)] if new_keys else None,
        cursor=json.dumps({"seen": found.seen}),
    )
