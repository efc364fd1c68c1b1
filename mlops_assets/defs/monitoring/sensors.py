import dagster as dg

from mlops_assets.defs.jobs import training_job


@dg.sensor(job=training_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def drift_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Requests `training_job` once per drift report whose verdict is retrain (run key: batch
    and event id), and nothing for reports without drift."""
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("drift_report"), after_storage_id=after), limit=100, ascending=True
    ).records
    requests = []
    for record in records:
        mat = record.asset_materialization
        if mat.metadata.get("retrain") and mat.metadata["retrain"].value:
            requests.append(
                dg.RunRequest(
                    run_key=f"drift:{mat.partition}:{record.storage_id}",
                    tags={"mlops/trigger": f"drift_sensor:{mat.partition}", "mlops/drift_reasons": str(mat.metadata["reasons"].value)[:200]},
                )
            )
        after = record.storage_id
    return dg.SensorResult(run_requests=requests, cursor=str(after) if after is not None else context.cursor)
