"""The executor a deployment runs its steps with (MLOPS_EXECUTOR, defs/jobs.py), and the real
graph run by the multiprocess executor: ingestion and `training_job` on a persistent instance,
each step in its own process, with the same prepared data as an in-process run and the
champion registered in the home's own MLflow store."""

import os
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.core.spec import load_spec
from mlops_assets.defs.ingestion.discovery import discover_batches
from mlops_assets.defs.jobs import executor_from_env
from mlops_assets.defs.partitions import BATCHES
from mlops_assets.resources.tracking import PARENT_RUN_TAG
from mlops_assets_tests.builders import hourly_frame
from mlops_assets_tests.defs.training.test_mlflow_runs import parent_runs, runs_of
from mlops_assets_tests.pipeline import land, local_platform

PREPARED = ("load_history", "features", "train_set", "validation_set", "test_set")


def executor_settings(env: dict[str, str]) -> tuple[str, dict]:
    """(name, resolved config) of the executor the environment selects."""
    executor = executor_from_env(env)
    resolved = executor.config_schema.resolve_config({})
    assert resolved.success, resolved.errors
    return executor.name, (resolved.value or {}).get("config", {})


def test_in_process_is_the_default():
    assert executor_from_env({}).name == "in_process"


def test_multiprocess_uses_forkserver_and_one_process_per_cpu_unless_told_otherwise():
    name, config = executor_settings({"MLOPS_EXECUTOR": "multiprocess"})
    assert (name, config["start_method"], config.get("max_concurrent")) == ("multiprocess", {"forkserver": {}}, None)
    name, config = executor_settings({"MLOPS_EXECUTOR": "multiprocess", "MLOPS_EXECUTOR_START_METHOD": "spawn", "MLOPS_EXECUTOR_MAX_CONCURRENT": "3"})
    assert (name, config["start_method"], config["max_concurrent"]) == ("multiprocess", {"spawn": {}}, 3)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MLOPS_EXECUTOR": "celery"}, "MLOPS_EXECUTOR='celery'"),
        ({"MLOPS_EXECUTOR": "multiprocess", "MLOPS_EXECUTOR_START_METHOD": "fork"}, "MLOPS_EXECUTOR_START_METHOD='fork'"),
        ({"MLOPS_EXECUTOR": "multiprocess", "MLOPS_EXECUTOR_MAX_CONCURRENT": "0"}, "MLOPS_EXECUTOR_MAX_CONCURRENT='0'"),
        ({"MLOPS_EXECUTOR": "multiprocess", "MLOPS_EXECUTOR_MAX_CONCURRENT": "two"}, "MLOPS_EXECUTOR_MAX_CONCURRENT='two'"),
    ],
)
def test_bad_executor_settings_name_the_variable(env, message):
    with pytest.raises(ValueError, match=message):
        executor_from_env(env)


def test_jobs_of_the_code_location_use_the_selected_executor(mlops_home, monkeypatch):
    from mlops_assets.definitions import build_definitions

    monkeypatch.setenv("MLOPS_EXECUTOR", "in_process")
    assert build_definitions("local").resolve_job_def("training_job").executor_def.name == "in_process"
    monkeypatch.setenv("MLOPS_EXECUTOR", "multiprocess")
    assert build_definitions("local").resolve_job_def("training_job").executor_def.name == "multiprocess"


# Reconstructable targets: the multiprocess executor re-imports the job in every step process.
def deployment_ingestion_job() -> dg.JobDefinition:
    from mlops_assets.definitions import build_definitions

    return build_definitions().resolve_job_def("ingestion_job")


def deployment_training_job() -> dg.JobDefinition:
    from mlops_assets.definitions import build_definitions

    return build_definitions().resolve_job_def("training_job")


def land_small_history(home: Path) -> None:
    land(home, "history.csv", hourly_frame(load_spec(), ["A", "B", "C"], 24 * 30))


def data_versions(instance: dg.DagsterInstance) -> dict[str, str]:
    versions = {}
    for name in PREPARED:
        event = instance.get_latest_materialization_event(dg.AssetKey(name))
        versions[name] = event.asset_materialization.tags["dagster/data_version"]
    return versions


@pytest.fixture(scope="module")
def in_process_versions(tmp_path_factory):
    """Data versions (content hashes) of an in-process run over the same landed data."""
    from mlops_assets.runner import ingest_landed, run_job

    home = tmp_path_factory.mktemp("in_process") / "mlops"
    with local_platform(home) as (defs, instance):
        land_small_history(home)
        assert len(ingest_landed(defs, instance).succeeded) == 1
        assert run_job(defs, "preparation_job", instance).success
        return data_versions(instance)


def step_process_ids(instance: dg.DagsterInstance, run_id: str) -> tuple[int, set[int]]:
    """(pid of the run's process, pids that logged the STEP_START events)."""
    records = instance.all_logs(run_id)
    step_pids = {r.dagster_event.pid for r in records if r.dagster_event and r.dagster_event.event_type == dg.DagsterEventType.STEP_START}
    parent = {r.dagster_event.pid for r in records if r.dagster_event and r.dagster_event.event_type == dg.DagsterEventType.RUN_START}
    assert len(parent) == 1
    return parent.pop(), step_pids


@pytest.mark.slow
def test_multiprocess_executor_runs_ingestion_and_training(tmp_path, in_process_versions):
    """Each step runs in a process of its own (forkserver, two at a time); the prepared data
    equals the in-process run's, the stored frames load back, and the registered model lands
    in this home's MLflow store (a step process must not fall back to a local ./mlflow.db).
    The candidates' processes starting together create one MLflow parent run, every part is
    nested under it, and the last step's process ends it. A forkserver keeps the environment
    it started with, so only this test starts one in the session: its step processes see this
    test's MLOPS_HOME."""
    home = tmp_path / "mlops"
    env = {"MLOPS_EXECUTOR": "multiprocess", "MLOPS_EXECUTOR_START_METHOD": "forkserver", "MLOPS_EXECUTOR_MAX_CONCURRENT": "2"}
    with local_platform(home, env) as (defs, instance):
        land_small_history(home)
        found = discover_batches(defs.resources["landing"], set(), {})
        assert len(found.new) == 1
        key = found.new[0].key
        instance.add_dynamic_partitions(BATCHES, [key])

        ingestion = dg.execute_job(dg.reconstructable(deployment_ingestion_job), instance, tags={"dagster/partition": key})
        assert ingestion.success
        training = dg.execute_job(dg.reconstructable(deployment_training_job), instance)
        assert training.success, [e.message for e in training.all_events if e.is_step_failure]

        for result in (ingestion, training):
            run_pid, step_pids = step_process_ids(instance, result.run_id)
            assert step_pids and run_pid not in step_pids and os.getpid() not in step_pids
        versions = data_versions(instance)
        assert versions == in_process_versions
        for name in ("features", "train_set", "validation_set", "test_set"):  # what the step processes stored
            stored = defs.load_asset_value(name, instance=instance)
            recorded = instance.get_latest_materialization_event(dg.AssetKey(name)).asset_materialization.metadata["dagster/row_count"]
            assert stored.height == recorded.value > 0
        tracking = defs.resources["mlflow_tracking"]
        assert tracking.tracking_uri == f"sqlite:///{home / 'mlflow.db'}"
        assert tracking.registry().alias_version("champion") == "1"
        parents = parent_runs(tracking, training.run_id)
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        parts = [r for r in runs_of(tracking, training.run_id) if r.info.run_id != parents[0].info.run_id]
        assert {r.data.tags["dagster.asset"] for r in parts} >= {"xgboost_model", "linear_model", "lstm_model", "fair_model"}
        assert all(r.data.tags[PARENT_RUN_TAG] == parents[0].info.run_id and r.info.status == "FINISHED" for r in parts)
