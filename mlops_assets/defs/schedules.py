"""Schedules (both off by default: turn them on in the UI or with `dagster schedule start`)."""

import dagster as dg

from mlops_assets.defs.jobs import monitoring_job, training_job
from mlops_assets.defs.partitions import BATCHES


@dg.schedule(
    job=monitoring_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Daily 06:00 UTC: predictions and drift report for the newest batch (once per batch).",
)
def daily_monitoring_schedule(context: dg.ScheduleEvaluationContext):
    """Every morning: predictions and drift report for the newest batch (once per batch)."""
    keys = context.instance.get_dynamic_partitions(BATCHES)
    if not keys:
        return dg.SkipReason("no batches landed yet")
    return dg.RunRequest(partition_key=keys[-1], run_key=f"monitoring:{keys[-1]}")


weekly_retraining_schedule = dg.ScheduleDefinition(
    name="weekly_retraining_schedule",
    job=training_job,
    cron_schedule="0 3 * * 0",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Sundays 03:00 UTC: retrain on the latest data; the same gates decide promotion.",
)
