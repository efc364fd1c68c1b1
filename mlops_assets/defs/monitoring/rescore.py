"""Re-scoring: a batch scored before the history its features need is scored again once
`load_history` has changed since (each batch at most once per history materialization)."""

import json
import time

import dagster as dg

from mlops_assets.defs.jobs import monitoring_job
from mlops_assets.defs.monitoring.assets import latest_storage_id
from mlops_assets.defs.partitions import BATCHES

PAGE = 1000
# A batch whose rows still lack their history this long after it was first scored is left as it is.
MAX_WAIT_HOURS = 7 * 24.0


def _new_records(instance: dg.DagsterInstance, after: int | None):
    """batch_predictions materializations after storage id `after`, oldest first, all pages."""
    while True:
        wanted = dg.AssetRecordsFilter(asset_key=dg.AssetKey("batch_predictions"), after_storage_id=after)
        page = instance.fetch_materializations(wanted, limit=PAGE, ascending=True).records
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1].storage_id


def fold_awaiting(awaiting: dict[str, list], records) -> tuple[dict[str, list], int | None]:
    """({batch: [storage id of the load_history it was last scored with, epoch seconds it has
    awaited history since]} for the batches whose newest scoring left rows awaiting history,
    the last record's storage id). Records oldest first."""
    awaiting, last = dict(awaiting), None
    for record in records:
        last = record.storage_id
        mat = record.asset_materialization
        meta = mat.metadata
        waiting = meta.get("rows_awaiting_history")
        if not mat.partition:
            continue
        if waiting is not None and waiting.value:
            seen = meta.get("history_storage_id")
            since = awaiting.get(mat.partition, [None, record.timestamp])[1]
            awaiting[mat.partition] = [int(seen.value) if seen is not None else record.storage_id, since]
        else:
            awaiting.pop(mat.partition, None)
    return awaiting, last


def due(awaiting: dict[str, list], history_id: int | None, now: float) -> list[str]:
    """The batches scored with an older load_history than the newest one, that have awaited
    their history for less than MAX_WAIT_HOURS (a gap that never fills is not re-scored forever)."""
    if history_id is None:
        return []
    return [batch for batch, (seen, since) in awaiting.items() if seen < history_id and now - since < MAX_WAIT_HOURS * 3600]


def unexpired(awaiting: dict[str, list], now: float) -> dict[str, list]:
    return {batch: entry for batch, entry in awaiting.items() if now - entry[1] < MAX_WAIT_HOURS * 3600}


def batches_awaiting_history(instance: dg.DagsterInstance) -> list[str]:
    """Every batch to re-score now, from all batch_predictions materializations (for `mlops-assets run`)."""
    awaiting, _ = fold_awaiting({}, _new_records(instance, None))
    return due(awaiting, latest_storage_id(instance, "load_history"), time.time())


@dg.sensor(
    job=monitoring_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Re-scores a batch whose rows awaited history once load_history has changed (for up to {MAX_WAIT_HOURS / 24:g} days).",
)
def rescore_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Requests `monitoring_job` for each batch whose rows awaited history, once `load_history`
    has changed since it was scored (run key: batch and load_history storage id, so a batch
    whose history is still missing is not re-scored again until the history changes), for at
    most MAX_WAIT_HOURS (7 days) after it was first scored."""
    state = json.loads(context.cursor) if context.cursor else {"after": None, "awaiting": {}}
    awaiting, last = fold_awaiting(state["awaiting"], _new_records(context.instance, state["after"]))
    history_id, now = latest_storage_id(context.instance, "load_history"), time.time()
    batches = due(awaiting, history_id, now)
    awaiting = unexpired(awaiting, now)
    if batches:  # a deleted batch is forgotten
        existing = set(context.instance.get_dynamic_partitions(BATCHES))
        awaiting = {b: seen for b, seen in awaiting.items() if b in existing}
    requests = [
        dg.RunRequest(partition_key=batch, run_key=f"rescore:{batch}:{history_id}", tags={"mlops/trigger": f"rescore_sensor:{batch}"})
        for batch in batches if batch in awaiting
    ]
    cursor = json.dumps({"after": last if last is not None else state["after"], "awaiting": awaiting})
    return dg.SensorResult(run_requests=requests, cursor=cursor)
