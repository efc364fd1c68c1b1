"""The production deployment as it runs: `dagster-daemon` and `dagster-webserver` as real
processes on 127.0.0.1 with the Postgres instance from deploy/dagster.yaml, an `mlflow server`
with a Postgres backend store, MLOPS_DEPLOYMENT=production and the deployment's default
executor (MLOPS_EXECUTOR unset). Everything is observed from outside, through Dagster's GraphQL API
(the dagster-graphql client) and the MLflow server:

landed files -> new_data_sensor -> ingestion runs -> preparation_automation_sensor's run ->
training_job submitted through GraphQL -> blocking checks on registered_model passed ->
`champion` in the MLflow registry -> every process stopped, every port free again.

The tests run in file order on one deployment (module fixture). Without Postgres they skip
with the reason; with MLOPS_REQUIRE_SERVICES=1 (CI) a missing Postgres is a failure."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from mlops_assets.core.promotion import BLOCKING_CHECKS
from mlops_assets.core.spec import load_spec
from mlops_assets_tests.builders import hourly_frame
from mlops_assets_tests.integration.conftest import (
    BIN, ROOT, ServerProcess, free_port, make_production_home, port_is_free, production_env, python_env, wait_for_http,
)
from mlops_assets_tests.pipeline import land

pytestmark = pytest.mark.slow

LOCATION = "mlops_assets"
REPOSITORY = "__repository__"  # the repository Dagster builds from a Definitions object
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
ACTIVE = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]

RUNS_QUERY = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId jobName status tags { key value } assetSelection { path } } }
    ... on PythonError { message }
  }
}"""

SENSOR_QUERY = """
query Sensor($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { name jobOriginId minIntervalSeconds sensorState { status selectorId ticks(limit: 50) { status runIds error { message } } } }
    ... on PythonError { message }
  }
}"""

STOP_SENSOR = """
mutation Stop($origin: String!, $selector: String!) {
  stopSensor(jobOriginId: $origin, jobSelectorId: $selector) { __typename }
}"""

CHECKS_QUERY = """
query Checks($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    __typename
    ... on AssetNode {
      assetChecksOrError { __typename ... on AssetChecks {
        checks { name blocking executionForLatestMaterialization { status runId evaluation { success } } } } }
    }
  }
}"""

STEP_FAILURES_QUERY = """
query Failures($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection { events { __typename ... on ExecutionStepFailureEvent { stepKey error { message } } } }
  }
}"""

LOCATION_QUERY = """
query { workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


class Deployment:
    """The running servers and how to talk to them."""

    def __init__(self, home: Path, port: int, processes: dict[str, ServerProcess], mlflow: dict, env: dict):
        self.home, self.port, self.processes, self.mlflow, self.env = home, port, processes, mlflow, env
        self.url = f"http://127.0.0.1:{port}"
        from dagster_graphql import DagsterGraphQLClient

        self.client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=60)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        """A raw query for what DagsterGraphQLClient has no method for."""
        response = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def runs(self, **run_filter) -> list[dict]:
        data = self.graphql(RUNS_QUERY, {"filter": run_filter})["runsOrError"]
        assert data["__typename"] == "Runs", data
        return data["results"]

    def sensor(self, name: str) -> dict:
        selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "sensorName": name}
        data = self.graphql(SENSOR_QUERY, {"selector": selector})["sensorOrError"]
        assert data["__typename"] == "Sensor", data
        return data

    def step_failures(self, run_id: str) -> list[tuple[str, str]]:
        """(step, error message) of every failed step of a run."""
        data = self.graphql(STEP_FAILURES_QUERY, {"runId": run_id})["logsForRun"]
        return [(e["stepKey"], (e["error"] or {}).get("message", "")) for e in data["events"] if e["__typename"] == "ExecutionStepFailureEvent"] or [("run", "failed")]

    def stop_sensor(self, name: str) -> None:
        sensor = self.sensor(name)
        result = self.graphql(STOP_SENSOR, {"origin": sensor["jobOriginId"], "selector": sensor["sensorState"]["selectorId"]})
        assert result["stopSensor"]["__typename"] == "StopSensorMutationResult", result

    def wait_for_runs(self, describe: str, select, count: int, timeout_s: float) -> list[dict]:
        """Wait until `count` runs chosen by `select(run)` exist and all have finished."""
        deadline = time.time() + timeout_s
        runs: list[dict] = []
        while time.time() < deadline:
            runs = [run for run in self.runs() if select(run)]
            if len(runs) >= count and all(run["status"] in TERMINAL for run in runs):
                return runs
            self.assert_servers_alive()
            time.sleep(2)
        pytest.fail(f"{describe}: waited {timeout_s:.0f} s for {count} finished runs, have {[(r['jobName'], r['status']) for r in runs]}")

    def assert_servers_alive(self) -> None:
        for name, server in self.processes.items():
            if server.process.poll() is not None:
                pytest.fail(f"{name} exited with {server.process.returncode}: {server.log.read_text()[-3000:]}")

    def stop(self) -> dict[str, list[str]]:
        """Daemon first (no new runs), then the webserver; what each left alive."""
        return {name: self.processes.pop(name).stop() for name in ("dagster-daemon", "dagster-webserver") if name in self.processes}


def tag(run: dict, key: str) -> str | None:
    return next((t["value"] for t in run["tags"] if t["key"] == key), None)


def wait_for_location(deployment: Deployment, timeout_s: float) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        entries = deployment.graphql(LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
        loaded = [e for e in entries if e["name"] == LOCATION and e["loadStatus"] == "LOADED"]
        if loaded:
            assert loaded[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation", loaded[0]
            return
        deployment.assert_servers_alive()
        time.sleep(1)
    pytest.fail(f"code location {LOCATION} not loaded within {timeout_s:.0f} s")


@pytest.fixture(scope="module")
def deployment(databases, mlflow_server, tmp_path_factory):
    """Webserver and daemon on the production settings, with two batches already landed (the
    sensor's first tick, right after the daemon starts, finds them)."""
    home = tmp_path_factory.mktemp("servers") / "mlops"
    make_production_home(home)
    env = python_env(production_env(home, databases, mlflow_server))
    for name in ("MLOPS_EXECUTOR", "MLOPS_EXECUTOR_START_METHOD", "MLOPS_EXECUTOR_MAX_CONCURRENT"):
        env.pop(name, None)  # the deployment's default executor
    spec = load_spec()
    land(home, "batch_1.csv", hourly_frame(spec, ["A", "B", "C"], 24 * 20))
    land(home, "batch_2.csv", hourly_frame(spec, ["A", "B", "C"], 24 * 12, start_hour=24 * 18, seed=1))
    port = free_port()
    workspace = str(ROOT / "workspace.yaml")
    processes = {
        "dagster-webserver": ServerProcess(
            "dagster-webserver", [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", workspace], env, home / "webserver.log"
        ),
        "dagster-daemon": ServerProcess("dagster-daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace], env, home / "daemon.log"),
    }
    deployment = Deployment(home, port, processes, mlflow_server, env)
    try:
        wait_for_http(f"{deployment.url}/server_info", processes["dagster-webserver"].process, processes["dagster-webserver"].log, 180)
        wait_for_location(deployment, 180)
        yield deployment
    finally:
        deployment.stop()


def test_new_data_sensor_launched_one_ingestion_run_per_landed_file(deployment):
    sensor = deployment.sensor("new_data_sensor")
    assert sensor["sensorState"]["status"] == "RUNNING"  # on by default
    runs = deployment.wait_for_runs("ingestion", lambda r: r["jobName"] == "ingestion_job", 2, 240)
    assert [r["status"] for r in runs] == ["SUCCESS", "SUCCESS"], runs
    assert {tag(r, "dagster/sensor_name") for r in runs} == {"new_data_sensor"}
    assert sorted(tag(r, "mlops/landed_file") for r in runs) == ["batch_1.csv", "batch_2.csv"]
    launched = {run_id for tick in deployment.sensor("new_data_sensor")["sensorState"]["ticks"] for run_id in tick["runIds"]}
    assert {r["runId"] for r in runs} <= launched


def test_automation_sensor_prepared_the_cleaned_batches(deployment):
    """preparation_automation_sensor (on by default) rebuilds history -> profile after the
    batches are cleaned; training waits for that run so the two never write at once."""
    def prepared(run):
        return tag(run, "dagster/sensor_name") == "preparation_automation_sensor" and {"load_history"} <= {"/".join(k["path"]) for k in run["assetSelection"] or []}

    runs = deployment.wait_for_runs("automation", prepared, 1, 180)
    assert all(r["status"] == "SUCCESS" for r in runs), runs
    selected = {"/".join(k["path"]) for r in runs for k in r["assetSelection"]}
    assert {"load_history", "features", "train_set", "validation_set", "test_set", "data_profile"} <= selected


def test_training_job_submitted_through_graphql_succeeds(deployment):
    from dagster import DagsterRunStatus

    run_id = deployment.client.submit_job_execution("training_job", repository_location_name=LOCATION, repository_name=REPOSITORY, tags={"mlops/trigger": "integration-test"})
    deadline = time.time() + 300
    status = deployment.client.get_run_status(run_id)
    while status not in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED) and time.time() < deadline:
        deployment.assert_servers_alive()
        time.sleep(2)
        status = deployment.client.get_run_status(run_id)
    assert status == DagsterRunStatus.SUCCESS, deployment.processes["dagster-daemon"].log.read_text()[-3000:]
    deployment.training_run_id = run_id


def test_blocking_checks_on_registered_model_passed(deployment):
    data = deployment.graphql(CHECKS_QUERY, {"key": {"path": ["registered_model"]}})["assetNodeOrError"]
    checks = data["assetChecksOrError"]["checks"]
    blocking = [c for c in checks if c["blocking"]]
    assert {c["name"] for c in blocking} == set(BLOCKING_CHECKS), checks
    for check in blocking:
        execution = check["executionForLatestMaterialization"]
        assert execution["runId"] == deployment.training_run_id, check
        assert (execution["status"], execution["evaluation"]["success"]) == ("SUCCEEDED", True), check


def test_champion_is_in_the_mlflow_server_registry(deployment):
    from mlflow import MlflowClient

    # Both URIs explicit: an earlier in-process run in this pytest process may have set the global ones.
    client = MlflowClient(tracking_uri=deployment.mlflow["url"], registry_uri=deployment.mlflow["url"])
    champion = client.get_model_version_by_alias("load_forecaster", "champion")
    assert champion.version == "1"
    run = client.get_run(champion.run_id)
    assert run.data.tags["dagster.run_id"] == deployment.training_run_id


def test_servers_stop_cleanly_and_free_their_ports(deployment):
    """Stop the sensors, let launched runs finish, SIGTERM daemon and webserver: no process of
    theirs is left and the ports are free again (the MLflow server's too)."""
    for name in ("preparation_automation_sensor", "new_data_sensor"):
        deployment.stop_sensor(name)
    deadline = time.time() + 180
    while deployment.runs(statuses=ACTIVE) and time.time() < deadline:
        time.sleep(2)
    assert not deployment.runs(statuses=ACTIVE), "runs still active after 180 s"
    # batch_predictions waits for champion_model, so no run fails for want of a champion.
    failed = {r["runId"]: deployment.step_failures(r["runId"]) for r in deployment.runs() if r["status"] != "SUCCESS"}
    assert not failed, failed
    leftovers = deployment.stop()
    assert leftovers == {"dagster-daemon": [], "dagster-webserver": []}
    assert port_is_free(deployment.port)
    assert deployment.mlflow["server"].stop(timeout_s=30) == []
    assert port_is_free(deployment.mlflow["port"])
