"""`drift_sensor`: drift reports whose verdict is retrain become at most one `training_job` per
cool-down, never while a training is queued or running, and none is lost on the way."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import dagster as dg

from mlops_assets.defs.jobs import training_job, training_runs_in_progress
from mlops_assets.resources.monitoring import DriftSettings

DRIFT_REPORT = dg.AssetKey("drift_report")


@dataclass
class DriftCursor:
    """The sensor's state, kept as JSON in its cursor: the last drift report read, the retrain
    verdicts not answered by a training yet (batch keys, oldest first, and the newest report's
    storage id and reasons), and when the sensor last requested a training (epoch seconds)."""

    after: int | None = None
    pending: list[str] = field(default_factory=list)
    pending_storage_id: int | None = None
    pending_reasons: str = ""
    last_requested_at: float | None = None

    @classmethod
    def parse(cls, text: str | None) -> DriftCursor:
        if not text:
            return cls()
        if text.isdigit():  # written before the cursor was JSON: just the last storage id read
            return cls(after=int(text))
        return cls(**json.loads(text))

    def dumps(self) -> str:
        return json.dumps(asdict(self))


def _read_new_reports(context: dg.SensorEvaluationContext, state: DriftCursor) -> None:
    """Add every retrain verdict among drift reports materialized since the cursor to `pending`."""
    while True:
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=DRIFT_REPORT, after_storage_id=state.after), limit=100, ascending=True
        ).records
        for record in records:
            mat = record.asset_materialization
            retrain = mat.metadata.get("retrain")
            if retrain is not None and retrain.value:
                if mat.partition not in state.pending:
                    state.pending.append(mat.partition)
                state.pending_storage_id = record.storage_id
                reasons = mat.metadata.get("reasons")
                state.pending_reasons = str(reasons.value if reasons is not None else "")[:200]
            state.after = record.storage_id
        if len(records) < 100:
            return


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


def _duration(hours: float) -> str:
    if hours >= 1:
        return f"{hours:g} h"
    return f"{hours * 60:g} min" if hours * 60 >= 1 else f"{hours * 3600:g} s"


def _waiting(state: DriftCursor) -> str:
    first = ", ".join(state.pending[:3]) + (" ..." if len(state.pending) > 3 else "")
    return f"{len(state.pending)} retrain verdict(s) wait (batches {first}; newest {state.pending[-1]})"


def _why_not_now(
    context: dg.SensorEvaluationContext, state: DriftCursor, cooldown_hours: float, now: float
) -> str | None:
    """Why no training may start now (a training queued or running, or the cool-down), or None."""
    running = training_runs_in_progress(context.instance)
    if running:
        run = running[0]
        return f"a training is {run.status.value.lower()} (run {run.run_id[:8]} of {run.job_name}): {_waiting(state)}"
    if state.last_requested_at is not None:
        allowed_at = state.last_requested_at + cooldown_hours * 3600
        if now < allowed_at:
            return (
                f"cool-down: a training was requested at {_when(state.last_requested_at)}; at most one per "
                f"{_duration(cooldown_hours)}, the next from {_when(allowed_at)}: {_waiting(state)}"
            )
    return None


@dg.sensor(
    job=training_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts training_job when a drift report says retrain: at most once per cooldown, never while a training runs.",
)
def drift_sensor(context: dg.SensorEvaluationContext, drift: DriftSettings) -> dg.SensorResult:
    """Requests `training_job` when drift reports say retrain: at most one per
    `retrain_cooldown_hours` (DriftSettings), and never while a training run is queued or
    running. Verdicts that arrive meanwhile are kept in the cursor and answered by one training
    as soon as one may start; the tick's skip reason says why it waits."""
    state = DriftCursor.parse(context.cursor)
    _read_new_reports(context, state)
    if not state.pending:
        return dg.SensorResult(skip_reason="no drift report says retrain", cursor=state.dumps())
    now = time.time()
    why_not = _why_not_now(context, state, drift.retrain_cooldown_hours, now)
    if why_not:
        return dg.SensorResult(skip_reason=why_not, cursor=state.dumps())
    request = dg.RunRequest(
        run_key=f"drift:{state.pending[-1]}:{state.pending_storage_id}",
        tags={
            "mlops/trigger": f"drift_sensor:{state.pending[-1]}",
            "mlops/drift_reasons": state.pending_reasons,
            "mlops/drift_batches": ",".join(state.pending)[:200],
        },
    )
    answered = DriftCursor(after=state.after, last_requested_at=now)
    return dg.SensorResult(run_requests=[request], cursor=answered.dumps())
