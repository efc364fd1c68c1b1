"""`champion_alias_sensor`: a `champion` moved with the MLflow client (as the MLflow UI's
alias editor does) is noticed on the next tick, alerted once at WARN, recorded in the
promotion history as "external" and observed on `champion_model`."""

import json
import uuid

import dagster as dg
import pytest

from mlops_assets.defs.registry.sensors import champion_alias_sensor
from mlops_assets.resources.alerts import AlertChannels
from mlops_assets.resources.registry import CHAMPION
from mlops_assets.resources.tracking import MlflowTracking
from mlops_assets_tests.defs.registry.test_registry_actions import open_store, serve, shared_store


@pytest.fixture
def platform(mlops_home):
    store = open_store(shared_store())
    # A new resource rather than a model_copy: Dagster re-creates resources from their config.
    tracking = MlflowTracking(tracking_uri=store.tracking_uri, artifact_root=store.artifact_root, registered_model=f"forecaster_{uuid.uuid4().hex}")
    alerts = AlertChannels(log_file=str(mlops_home / "alerts.log"))
    registry = tracking.registry()
    registry.ensure_model()
    return tracking, alerts, registry


def tick(platform):
    tracking, alerts, _ = platform
    with dg.build_sensor_context(resources={"mlflow_tracking": tracking, "alerts": alerts}) as context:
        return champion_alias_sensor(context)


def sent(mlops_home) -> list[dict]:
    log = mlops_home / "alerts.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_an_alias_moved_with_the_mlflow_client_is_alerted_once_and_recorded_as_external(platform, mlops_home):
    _, _, registry = platform
    first = serve(registry)
    second = serve(registry)
    assert isinstance(tick(platform), dg.SkipReason) and sent(mlops_home) == []

    registry.client.set_registered_model_alias(registry.name, CHAMPION, first)  # outside the platform
    result = tick(platform)
    assert not isinstance(result, dg.SkipReason), result
    [alert] = sent(mlops_home)
    assert alert["severity"] == "WARN" and alert["kind"] == "external_champion_change" and alert["asset"] == "champion_model"
    assert alert["title"] == "champion changed outside the platform: now v1"
    assert alert["reason"] == "alias champion moved outside the platform: v2 -> v1 (no gate, no reason given)"
    last = registry.history()[-1]
    assert (last["action"], last["version"], last["previous_champion"]) == ("external", first, second)
    [observation] = result.asset_events
    assert observation.asset_key == dg.AssetKey("champion_model") and observation.metadata["decision"].value == "EXTERNAL change"
    assert observation.metadata["champion_version"].value == first

    assert isinstance(tick(platform), dg.SkipReason)  # the next tick: recorded, nothing new
    assert len(sent(mlops_home)) == 1 and len(registry.history()) == 3
