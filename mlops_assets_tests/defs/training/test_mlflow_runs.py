"""MLflow as its users expect it: one `training_job` run is one MLflow parent run with the
candidates, the sensitivity, the fair model and the evaluation as nested runs; training runs log
their splits as dataset inputs (digest = the Dagster data version); the experiment opens as model
training; a run lasts as long as its training; the parent ends with the Dagster run; the
promotion history is also a table artifact."""

import json
import multiprocessing
import time
from types import SimpleNamespace

import dagster as dg
import pytest

from mlops_assets.resources.registry import HISTORY_TABLE, ModelRegistry
from mlops_assets.resources.tracking import (
    DAGSTER_PARENT_TAG,
    EXPERIMENT_KIND_TAG,
    MODEL_TRAINING_KIND,
    PARENT_RUN_TAG,
    MlflowTracking,
)
from mlops_assets_tests.pipeline import local_platform, trained_platform

KINDS = ("xgboost", "linear", "lstm")
SPLITS = {"train_set": "training", "validation_set": "validation", "test_set": "test"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    home = tmp_path_factory.mktemp("mlflow_runs") / "mlops"
    with trained_platform(home) as (defs, instance, result):
        assert result.success
        yield SimpleNamespace(home=home, defs=defs, instance=instance, result=result, tracking=defs.resources["mlflow_tracking"])


def parent_runs(tracking: MlflowTracking, dagster_run_id: str) -> list:
    return tracking.client().search_runs(
        [tracking.experiment_id()], filter_string=f"tags.`dagster.run_id` = '{dagster_run_id}' AND tags.`mlops.run_role` = 'training'"
    )


def runs_of(tracking: MlflowTracking, dagster_run_id: str) -> list:
    return tracking.client().search_runs([tracking.experiment_id()], filter_string=f"tags.`dagster.run_id` = '{dagster_run_id}'")


def data_version(instance: dg.DagsterInstance, name: str) -> str:
    return instance.get_latest_materialization_event(dg.AssetKey(name)).asset_materialization.tags["dagster/data_version"]


def part_run_ids(trained) -> dict[str, str]:
    out = trained.result.output_for_node
    ids = {f"{kind}_model": out(f"{kind}_model")["run_id"] for kind in KINDS}
    ids["fair_model"] = out("fair_model")["fair_run_id"]
    ids["hyperparameter_sensitivity"] = out("hyperparameter_sensitivity")["mlflow_run_id"]
    return ids


def test_one_parent_run_per_dagster_run_linked_both_ways(trained):
    parents = parent_runs(trained.tracking, trained.result.run_id)
    assert len(parents) == 1
    parent = parents[0]
    assert PARENT_RUN_TAG not in parent.data.tags
    assert parent.data.tags["dagster.job"] == "training_job"
    assert parent.data.tags["dagster_run_id"] == trained.result.run_id  # dagster-mlflow's tag as well
    assert trained.instance.get_run_by_id(trained.result.run_id).tags[DAGSTER_PARENT_TAG] == parent.info.run_id


def test_candidates_sensitivity_and_fair_model_are_nested_under_the_parent(trained):
    parent = parent_runs(trained.tracking, trained.result.run_id)[0].info.run_id
    client = trained.tracking.client()
    for asset, run_id in part_run_ids(trained).items():
        run = client.get_run(run_id)
        assert run.data.tags[PARENT_RUN_TAG] == parent, asset
        assert run.data.tags["dagster.asset"] == asset
    # Every other run of this Dagster run is a part of it too.
    others = [r for r in runs_of(trained.tracking, trained.result.run_id) if r.info.run_id != parent]
    assert len(others) >= 5 and all(r.data.tags.get(PARENT_RUN_TAG) == parent for r in others)


def test_the_kept_candidate_is_recorded_by_a_fair_model_run_pointing_at_it(trained):
    fair = trained.result.output_for_node("fair_model")
    candidate = trained.result.output_for_node("candidate_model")
    assert fair["mitigation"]["applied"] is False and fair["run_id"] == candidate["run_id"]
    tags = trained.tracking.client().get_run(fair["fair_run_id"]).data.tags
    assert tags["mitigation"] == "none" and tags["model_run_id"] == candidate["run_id"] and tags["model_uri"] == candidate["model_uri"]


def test_the_evaluation_is_a_nested_run_spanning_its_step(trained):
    """`model_evaluation` logs its comparison as a nested run of the training run, with the
    test set as its input and the step's start as its start."""
    result = trained.result.output_for_node("model_evaluation")
    parent = parent_runs(trained.tracking, trained.result.run_id)[0].info.run_id
    [run] = [r for r in runs_of(trained.tracking, trained.result.run_id) if r.data.tags.get("dagster.asset") == "model_evaluation"]
    assert run.data.tags[PARENT_RUN_TAG] == parent
    assert run.data.metrics["challenger_mae"] == pytest.approx(result["challenger"]["metrics"]["mae"])
    assert {"baseline_seasonal_naive_mae", "baseline_day_before_mae", "test_rows"} <= set(run.data.metrics)
    inputs = {i.dataset.name: i.dataset.digest for i in run.inputs.dataset_inputs}
    assert inputs == {"test_set": data_version(trained.instance, "test_set")}
    step_start = [
        r.event_log_entry.timestamp
        for r in trained.instance.get_records_for_run(trained.result.run_id, of_type=dg.DagsterEventType.STEP_START).records
        if r.event_log_entry.step_key == "model_evaluation"
    ]
    assert run.info.start_time == int(step_start[0] * 1000)


@pytest.mark.parametrize("asset", ["xgboost_model", "linear_model", "lstm_model", "fair_model"])
def test_training_runs_log_their_splits_with_the_dagster_data_version_as_digest(trained, asset):
    run = trained.tracking.client().get_run(part_run_ids(trained)[asset])
    inputs = {i.dataset.name: i for i in run.inputs.dataset_inputs}
    assert set(inputs) == set(SPLITS)
    for name, context in SPLITS.items():
        dataset = inputs[name].dataset
        assert dataset.digest == data_version(trained.instance, name)
        assert {t.key: t.value for t in inputs[name].tags}["mlflow.data.context"] == context
        assert dataset.source_type == "dagster_asset"
        source = json.loads(dataset.source)
        assert source["uri"] == f"dagster://asset/{name}" and source["storage_path"].endswith(f"{name}.parquet")
        stored = trained.instance.get_latest_materialization_event(dg.AssetKey(name)).asset_materialization.metadata
        assert json.loads(dataset.profile) == {"num_rows": stored["dagster/row_count"].value}
        columns = [c["name"] for c in json.loads(dataset.schema)["mlflow_colspec"]]
        assert columns == [c.name for c in stored["dagster/column_schema"].value.columns]


def test_the_experiment_opens_as_model_training(trained):
    experiment = trained.tracking.client().get_experiment(trained.tracking.experiment_id())
    assert experiment.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND


@pytest.mark.parametrize("kind", KINDS)
def test_a_candidate_run_lasts_as_long_as_its_training(trained, kind):
    """Not the logging after it, nor the bias report and SHAP logged into it later."""
    summary = trained.result.output_for_node(f"{kind}_model")
    info = trained.tracking.client().get_run(summary["run_id"]).info
    assert info.status == "FINISHED"
    seconds = (info.end_time - info.start_time) / 1000
    assert summary["fit_seconds"] <= seconds + 0.01 <= summary["fit_seconds"] + 2.0


def test_the_parent_finishes_with_the_dagster_run_and_spans_its_parts(trained):
    client = trained.tracking.client()
    parent = parent_runs(trained.tracking, trained.result.run_id)[0].info
    assert parent.status == "FINISHED"
    record = trained.instance.get_run_record_by_id(trained.result.run_id)
    assert parent.start_time == int(record.start_time * 1000)
    parts = [client.get_run(run_id).info for run_id in part_run_ids(trained).values()]
    assert all(parent.start_time <= p.start_time and p.end_time <= parent.end_time for p in parts)


def test_the_promotion_history_is_a_table_artifact_with_a_row_per_entry(trained):
    registry = trained.tracking.registry()
    history = registry.history()
    assert [e["action"] for e in history] == ["approve", "promote"]
    client = trained.tracking.client()
    run_id = registry.history_run_id()
    table = client.load_table(trained.tracking.experiment_id(), HISTORY_TABLE, run_ids=[run_id])
    assert list(table.columns[:8]) == ["number", "at", "action", "version", "previous_champion", "trigger", "reason", "verdicts"]
    assert table["action"].tolist() == [e["action"] for e in history]
    assert table["at"].tolist() == [e["at"] for e in history]
    assert [str(v) for v in table["version"]] == [e["version"] for e in history]  # read back as numbers
    assert {"path": HISTORY_TABLE, "type": "table"} in json.loads(client.get_run(run_id).data.tags["mlflow.loggedArtifacts"])


# Small runs without training: the parent's status when the Dagster run ends, the experiment's
# kind, the history table's failure mode, and parallel steps racing to create the parent.


def tracking_in(home) -> MlflowTracking:
    return MlflowTracking(tracking_uri=f"sqlite:///{home / 'mlflow.db'}", artifact_root=str(home / "mlartifacts"))


@dg.asset
def logs_a_part(context: dg.AssetExecutionContext, mlflow_tracking: MlflowTracking) -> str:
    with mlflow_tracking.start_run(context, "logs_a_part") as run:
        time.sleep(0.3)
        mlflow_tracking.training_ended(run)
        time.sleep(0.5)  # logging after the training: not part of the run's duration
    return run.info.run_id


@dg.asset(deps=[logs_a_part])
def after_the_part() -> None:
    """Last step; the parent run stays open while it runs."""


@dg.asset(deps=[logs_a_part])
def fails_after_the_part() -> None:
    raise RuntimeError("broken on purpose")


@pytest.mark.parametrize(("last", "status"), [(after_the_part, "FINISHED"), (fails_after_the_part, "FAILED")])
def test_the_parent_ends_when_the_dagster_run_ends(mlops_home, last, status):
    tracking = tracking_in(mlops_home)
    with dg.instance_for_test() as instance:
        result = dg.materialize([logs_a_part, last], resources={"mlflow_tracking": tracking}, instance=instance, raise_on_error=False)
        assert result.success is (status == "FINISHED")
        parent = parent_runs(tracking, result.run_id)
        assert len(parent) == 1 and parent[0].info.status == status and parent[0].info.end_time
        part = tracking.client().get_run(result.output_for_node("logs_a_part"))
        assert part.data.tags[PARENT_RUN_TAG] == parent[0].info.run_id
        assert 0.3 <= (part.info.end_time - part.info.start_time) / 1000 < 0.75


@dg.asset
def reads_the_registry(mlflow_tracking: MlflowTracking) -> None:
    mlflow_tracking.registry().alias_version("champion")


def test_a_run_without_mlflow_parts_makes_no_parent(mlops_home):
    tracking = tracking_in(mlops_home)
    with dg.instance_for_test() as instance:
        result = dg.materialize([reads_the_registry], resources={"mlflow_tracking": tracking}, instance=instance)
        assert runs_of(tracking, result.run_id) == []
        assert DAGSTER_PARENT_TAG not in instance.get_run_by_id(result.run_id).tags


def test_an_experiment_found_without_its_kind_gets_it(mlops_home):
    tracking = tracking_in(mlops_home)
    client = tracking.client()
    created = client.create_experiment(tracking.experiment, artifact_location=(mlops_home / "mlartifacts").as_uri())
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(created).tags
    assert tracking.experiment_id() == created
    assert client.get_experiment(created).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND
    client.set_experiment_tag(created, EXPERIMENT_KIND_TAG, "genai_development")
    tracking.experiment_id()
    assert client.get_experiment(created).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND


def test_a_promotion_history_entry_is_recorded_when_its_table_cannot_be_written(mlops_home, monkeypatch, caplog):
    tracking = tracking_in(mlops_home)
    registry = tracking.registry()
    registry.record("approve", None, None, "test", "first")

    def broken(self):
        raise OSError("artifact store unreachable")

    monkeypatch.setattr(ModelRegistry, "log_history_table", broken)
    entry = registry.record("refuse", None, None, "test", "second")
    assert entry["action"] == "refuse" and [e["reason"] for e in registry.history()] == ["first", "second"]
    assert "its MLflow table not updated: artifact store unreachable" in caplog.text
    monkeypatch.undo()
    registry.record("rollback", None, None, "test", "third")  # the next entry rewrites the whole table
    table = tracking.client().load_table(tracking.experiment_id(), HISTORY_TABLE, run_ids=[registry.history_run_id()])
    assert table["reason"].tolist() == ["first", "second", "third"]


class _NoDagsterRun:
    """What `training_run_id` asks the instance when there is no stored Dagster run."""

    def get_run_record_by_id(self, run_id):
        return None

    def add_run_tags(self, run_id, tags):
        pass


def _parent_in_a_step_process(uri: str, artifact_root: str, run_id: str, barrier, found) -> None:
    tracking = MlflowTracking(tracking_uri=uri, artifact_root=artifact_root)
    tracking.experiment_id()
    barrier.wait()
    found.put(tracking.training_run_id(SimpleNamespace(run_id=run_id, job_name="training_job", instance=_NoDagsterRun())))


def test_parallel_step_processes_find_or_create_one_parent(mlops_home):
    tracking = tracking_in(mlops_home)
    tracking.experiment_id()
    ctx = multiprocessing.get_context("spawn")
    barrier, found = ctx.Barrier(3), ctx.Queue()
    run_id = "0123456789abcdef"
    processes = [
        ctx.Process(target=_parent_in_a_step_process, args=(tracking.tracking_uri, tracking.artifact_root, run_id, barrier, found))
        for _ in range(3)
    ]
    for process in processes:
        process.start()
    ids = {found.get(timeout=120) for _ in processes}
    for process in processes:
        process.join(timeout=60)
    assert len(ids) == 1 and [r.info.run_id for r in parent_runs(tracking, run_id)] == list(ids)


