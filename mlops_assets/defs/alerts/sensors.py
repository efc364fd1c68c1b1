"""Alerting: once per failed asset check (any severity, blocking or not), once per failed run."""

import dagster as dg

from mlops_assets.resources.alerts import Alert, AlertChannels

BATCH = 200


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def check_failure_alert_sensor(context: dg.SensorEvaluationContext, alerts: AlertChannels) -> dg.SensorResult:
    """Reads asset-check evaluations after the cursor (an event-log storage id) and alerts for
    each one that did not pass. The cursor only moves past events already alerted on."""
    cursor = int(context.cursor) if context.cursor else 0
    records = context.instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, after_cursor=cursor), ascending=True, limit=BATCH
    )
    sent = 0
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if not evaluation.passed:
            reason = evaluation.description or _reason(evaluation.metadata)
            alerts.send(
                Alert(
                    kind="check_failed",
                    title=f"check {evaluation.check_name} failed on {evaluation.asset_key.to_user_string()}",
                    reason=reason,
                    asset=evaluation.asset_key.to_user_string(),
                    check=evaluation.check_name,
                    partition=evaluation.partition or _run_partition(context.instance, record.run_id),
                    severity=evaluation.severity.value,
                    run_id=record.run_id,
                )
            )
            sent += 1
        cursor = record.storage_id
    if sent:
        context.log.info(f"sent {sent} check-failure alert(s)")
    return dg.SensorResult(cursor=str(cursor))


def _run_partition(instance: dg.DagsterInstance, run_id: str) -> str:
    run = instance.get_run_by_id(run_id)
    return run.tags.get("dagster/partition", "") if run else ""


def _reason(metadata: dict) -> str:
    for key in ("reason", "description"):
        if key in metadata:
            return str(metadata[key].value)
    return "no reason recorded"


@dg.run_failure_sensor(name="run_failure_alert_sensor", default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alerts: AlertChannels) -> None:
    """One alert per failed run, with the failing steps' errors."""
    steps = [f"{e.step_key}: {_root_message(e.event_specific_data.error)}" for e in context.get_step_failure_events() if e.event_specific_data and e.event_specific_data.error]
    alerts.send(
        Alert(
            kind="run_failed",
            title=f"run of {context.dagster_run.job_name} failed",
            reason="; ".join(steps) or (context.failure_event.message or "failed"),
            partition=context.dagster_run.tags.get("dagster/partition", ""),
            run_id=context.dagster_run.run_id,
        )
    )


def _root_message(error) -> str:
    """First line of the error that caused a step failure, not Dagster's wrapper around it
    ("Error occurred while executing op ..."), so the alert says what went wrong."""
    if error.cls_name == "DagsterExecutionStepExecutionError" and error.cause:
        error = error.cause
    lines = error.message.strip().splitlines()
    return lines[0] if lines else error.cls_name
