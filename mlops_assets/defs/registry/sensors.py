"""Watching the `champion` alias for moves made outside the platform."""

import dagster as dg

from mlops_assets.resources.alerts import Alert, AlertChannels
from mlops_assets.resources.tracking import MlflowTracking


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Notices a `champion` alias moved outside the platform (MLflow UI or API): records it in the promotion history as 'external', shows it on champion_model and sends one WARN alert.",
)
def champion_alias_sensor(context: dg.SensorEvaluationContext, mlflow_tracking: MlflowTracking, alerts: AlertChannels):
    """Compares alias `champion` with the version the promotion history's last move left
    there. A difference is a move that bypassed the gate: it is recorded once (after which
    alias and history agree again), observed on `champion_model` and alerted at WARN."""
    from mlops_assets.registry_actions import record_external_move

    entry = record_external_move(mlflow_tracking.registry())
    if entry is None:
        return dg.SkipReason("alias champion is where the promotion history says")
    alerts.send(
        Alert(
            kind="external_champion_change", title=f"champion changed outside the platform: now {_label(entry['version'])}",
            reason=entry["reason"], asset="champion_model", severity="WARN",
        )
    )
    context.log.warning(entry["reason"])
    observation = dg.AssetObservation(
        asset_key="champion_model",
        metadata={"decision": "EXTERNAL change", "champion_version": entry["version"] or "none", "reason": entry["reason"], "at": entry["at"]},
    )
    return dg.SensorResult(asset_events=[observation])


def _label(version: str | None) -> str:
    return f"v{version}" if version else "no champion"
