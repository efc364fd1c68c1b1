"""Alerting: one alert per incident. A failed asset check alerts once (any severity, blocking
or not); checks that name the same incident (`ALERT_KEY` in their metadata, e.g. the verdicts
of one refused model version) alert once together. A failed run alerts once, unless every
failed step failed on a check (a quarantine, a failed blocking check), which the check's own
alert already announced with its reason."""

import dagster as dg

from mlops_assets.resources.alerts import ALERT_KEY, Alert, AlertChannels

BATCH = 200


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="One alert (log file, email, webhook, Slack) per failed asset check or refused model version; starts with the events after its first tick.",
)
def check_failure_alert_sensor(context: dg.SensorEvaluationContext, alerts: AlertChannels) -> dg.SensorResult:
    """Reads asset-check evaluations after the cursor (an event-log storage id) and alerts for
    each one that did not pass. The first tick (no cursor) alerts on nothing: it starts after
    the newest event, so a daemon started on an existing instance does not re-announce old
    incidents. The cursor only moves past events already alerted on."""
    if not context.cursor:
        latest = context.instance.event_log_storage.get_maximum_record_id() or 0
        context.log.info(f"first tick: alerting on check evaluations after event {latest}")
        return dg.SensorResult(cursor=str(latest))
    cursor = int(context.cursor)
    records = context.instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, after_cursor=cursor), ascending=True, limit=BATCH
    )
    incidents: dict[str, list] = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if not evaluation.passed:
            key = evaluation.metadata[ALERT_KEY].value if ALERT_KEY in evaluation.metadata else f"event:{record.storage_id}"
            incidents.setdefault(key, []).append((record, evaluation))
        cursor = record.storage_id
    sent = sum(_send(context.instance, alerts, key, failed) for key, failed in incidents.items())
    if sent:
        context.log.info(f"sent {sent} check-failure alert(s)")
    return dg.SensorResult(cursor=str(cursor))


def _send(instance: dg.DagsterInstance, alerts: AlertChannels, key: str, failed: list) -> int:
    """One alert for the failed checks of one incident; 1 if sent, 0 if already sent."""
    record, first = failed[0]
    asset = first.asset_key.to_user_string()
    checks = [evaluation.check_name for _, evaluation in failed]
    reasons = [f"{e.check_name}: {e.description or _reason(e.metadata)}" for _, e in failed]
    alert = Alert(
        kind="check_failed",
        title=f"check {', '.join(checks)} failed on {asset}",
        reason=reasons[0].split(": ", 1)[1] if len(failed) == 1 else "; ".join(reasons),
        asset=asset,
        check=", ".join(checks),
        partition=first.partition or _run_partition(instance, record.run_id),
        severity=first.severity.value,
        run_id=record.run_id,
    )
    if key.startswith("event:"):
        alerts.send(alert)
        return 1
    return int(alerts.send_once(alert, key=key) is not None)


def _run_partition(instance: dg.DagsterInstance, run_id: str) -> str:
    run = instance.get_run_by_id(run_id)
    return run.tags.get("dagster/partition", "") if run else ""


def _reason(metadata: dict) -> str:
    for key in ("reason", "description"):
        if key in metadata:
            return str(metadata[key].value)
    return "no reason recorded"


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="One ERROR alert per failed run, naming each failed step and its error (a run that failed only on checks is alerted by those checks).",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alerts: AlertChannels) -> None:
    """One alert per failed run, with the failing steps' errors. A run whose every failed step
    quarantined its batch is not alerted again: the failed check already said why, once."""
    failures = [e for e in context.get_step_failure_events() if e.event_specific_data]
    if failures and all(_alerted_by_its_check(e.event_specific_data) for e in failures):
        context.log.info(f"run {context.dagster_run.run_id[:8]} failed only on checks: each failed check is alerted with its reason")
        return
    steps = [f"{e.step_key}: {root_message(e.event_specific_data.error)}" for e in failures if e.event_specific_data.error]
    alerts.send(
        Alert(
            kind="run_failed",
            title=f"run of {context.dagster_run.job_name} failed",
            reason="; ".join(steps) or (context.failure_event.message or "failed"),
            partition=context.dagster_run.tags.get("dagster/partition", ""),
            run_id=context.dagster_run.run_id,
        )
    )


def _alerted_by_its_check(failure) -> bool:
    """Whether a step failed only because of a failed check, which `check_failure_alert_sensor`
    alerts with its reason: a quarantine (`quarantine_and_fail` puts the folder in the failure's
    metadata) or a failed blocking check."""
    data = failure.user_failure_data
    error = failure.error
    return bool(data and "quarantine" in data.metadata) or bool(error and error.cls_name == "DagsterAssetCheckFailedError")


def root_message(error) -> str:
    """First line of the error that caused a step failure, not Dagster's wrappers around it
    ("Error occurred while executing op ...", "... while handling output ..."), so the alert
    says what went wrong."""
    while error.cause and error.cls_name.startswith("DagsterExecution"):
        error = error.cause
    text = error.message.strip()
    if error.cls_name == "DagsterAssetCheckFailedError":  # the checks are named on the lines after the first
        text = " ".join(text.split())
    line = text.splitlines()[0] if text else error.cls_name
    return line.split(": ", 1)[-1] if line.startswith("dagster.") else line
