"""`drift_sensor` on a real instance: retrain verdicts become at most one training per
cool-down, none while a training run is queued or running, and a verdict that arrives
meanwhile is answered by one training as soon as one may start."""

import json
import time

import dagster as dg
import pytest

from mlops_assets.defs.monitoring.sensors import drift_sensor
from mlops_assets.resources.monitoring import DriftSettings

COOLDOWN_SECONDS = 3.0


def report(instance: dg.DagsterInstance, batch: str, retrain: bool) -> None:
    """A drift report materialization as `drift_report` writes it (verdict and reasons in metadata)."""
    reasons = "realized MAE 1.4x the reference (CI 1.2..1.6)" if retrain else ""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key="drift_report", partition=batch, metadata={"retrain": retrain, "reasons": reasons})
    )


def tick(instance: dg.DagsterInstance, cursor: str | None, cooldown_seconds: float = COOLDOWN_SECONDS) -> dg.SensorResult:
    resources = {"drift": DriftSettings(retrain_cooldown_hours=cooldown_seconds / 3600)}
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        return drift_sensor(context)


def pending(result: dg.SensorResult) -> list[str]:
    return json.loads(result.cursor)["pending"]


def training_run(instance: dg.DagsterInstance, defs: dg.Definitions, status: dg.DagsterRunStatus) -> dg.DagsterRun:
    """A training_job run as the daemon creates it (with the job's run tags), then queued by the
    instance's run coordinator (the local QueuedRunCoordinator) or marked as started."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.run_coordinator import SubmitRunContext
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    job = defs.resolve_job_def("training_job")
    created = dg.DagsterRunStatus.NOT_STARTED if status == dg.DagsterRunStatus.QUEUED else status
    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="mlops_assets.definitions"), location_name="mlops_assets")
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), "training_job")
    tags = {**job.run_tags, "mlops/trigger": "schedule:weekly"}
    run = instance.create_run_for_job(job_def=job, status=created, tags=tags, remote_job_origin=origin)
    if status == dg.DagsterRunStatus.QUEUED:
        run = instance.run_coordinator.submit_run(SubmitRunContext(run, workspace=None))
    assert run.status == status
    return run


def test_retrain_verdicts_become_one_training_and_wait_out_the_cool_down(instance):
    report(instance, "2024-03-01__a", retrain=True)
    report(instance, "2024-03-02__b", retrain=False)
    report(instance, "2024-03-03__c", retrain=True)
    first = tick(instance, None)
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    assert request.tags["mlops/trigger"] == "drift_sensor:2024-03-03__c"
    assert request.tags["mlops/drift_batches"] == "2024-03-01__a,2024-03-03__c"
    assert pending(first) == []

    report(instance, "2024-03-04__d", retrain=True)
    cooling = tick(instance, first.cursor)
    assert cooling.run_requests == []
    assert "at most one per 3 s" in cooling.skip_reason.skip_message
    assert "cool-down" in cooling.skip_reason.skip_message and "2024-03-04__d" in cooling.skip_reason.skip_message
    assert pending(cooling) == ["2024-03-04__d"]
    again = tick(instance, cooling.cursor)
    assert again.run_requests == [] and pending(again) == ["2024-03-04__d"]

    time.sleep(COOLDOWN_SECONDS + 0.5)
    after = tick(instance, again.cursor)  # no new report: the kept verdict is answered
    assert len(after.run_requests) == 1 and after.run_requests[0].tags["mlops/trigger"] == "drift_sensor:2024-03-04__d"
    assert after.run_requests[0].run_key != request.run_key
    assert pending(after) == []
    quiet = tick(instance, after.cursor)
    assert quiet.run_requests == [] and quiet.skip_reason.skip_message == "no drift report says retrain"


@pytest.mark.parametrize("status", [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTED])
def test_no_training_starts_while_one_is_queued_or_running(instance, defs, status):
    run = training_run(instance, defs, status)
    assert run.tags["mlops/training"] == "true"  # the job puts the tag on every run
    report(instance, "2024-03-05__e", retrain=True)
    busy = tick(instance, None, cooldown_seconds=0)
    assert busy.run_requests == []
    assert f"a training is {status.value.lower()} (run {run.run_id[:8]} of training_job)" in busy.skip_reason.skip_message
    assert pending(busy) == ["2024-03-05__e"]

    instance.report_run_canceled(instance.get_run_by_id(run.run_id))
    freed = tick(instance, busy.cursor, cooldown_seconds=0)
    assert len(freed.run_requests) == 1 and freed.run_requests[0].tags["mlops/trigger"] == "drift_sensor:2024-03-05__e"


def test_a_cursor_written_before_it_was_json_is_read(instance):
    report(instance, "2024-03-06__f", retrain=True)
    newest = instance.fetch_materializations(dg.AssetKey("drift_report"), limit=1).records[0].storage_id
    assert tick(instance, str(newest)).run_requests == []  # already read by the old sensor
    report(instance, "2024-03-07__g", retrain=True)
    assert len(tick(instance, str(newest)).run_requests) == 1
