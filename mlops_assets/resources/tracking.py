"""MLflow tracking and registry access.

One Dagster run of `training_job` is one MLflow parent run (tag `dagster.run_id`, role
`mlops.run_role=training`) with each part -- the candidates, the sensitivity, the fair model,
the evaluation -- as a nested run (`mlflow.parentRunId`), tagged with the Dagster run and asset
so both UIs link to each other. The parent is found or created by the first step that logs,
under a lock (steps run in parallel processes), and ended by the last step to finish
(`teardown_after_execution`): FINISHED, or FAILED when a step failed.

We wrap `MlflowClient` ourselves instead of dagster-mlflow's `mlflow_tracking` resource and
`end_mlflow_on_run_finished` hook (see `DAGSTER_MLFLOW_NOTE`)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import dagster as dg

DAGSTER_MLFLOW_NOTE = """\
Why not dagster-mlflow's `mlflow_tracking` resource and `end_mlflow_on_run_finished` hook:
- the resource makes one MLflow run per Dagster run the *active* run of every step process and
  finds it with `search_runs(tags.dagster_run_id=...)`, creating it when absent without a lock:
  the three candidates start at once under the multiprocess executor, and two of them can each
  create a parent. We need a parent with nested runs, found or created under a lock;
- it calls `mlflow.set_experiment`, which creates the experiment without our artifact location
  or its kind (`mlflow.experimentKind`), and `import dagster_mlflow` imports mlflow at module
  level, which the code location must not do (it loads in ~1 s without mlflow);
- the hook ends the run when the op *last in topological order* succeeds. In an asset job with
  parallel branches that op is not always the last to finish (a later step's resource then
  calls `start_run(run_id=...)`, which sets the ended run back to RUNNING for good), and it
  never runs when that op is skipped; on a failure it ends only the active run of the failing
  process. It also has to be attached to the job, and needs the legacy `mlflow` resource key.
So the parent is ours: found or created under a lock, ended when every step of the Dagster run
has ended (checked from the run's step events by the resource's teardown in each step process).
It carries dagster-mlflow's tag `dagster_run_id` too, so an op using that resource in the same
Dagster run would resume our parent rather than open a second one."""

# MLflow 3's UI opens an experiment in the mode its tag `mlflow.experimentKind` names; without
# the tag it falls back to its own default workflow, GenAI (traces). Ours is model training.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
# Kinds the UI opens as machine learning ("Model training"); any other value is replaced.
MODEL_TRAINING_KINDS = (MODEL_TRAINING_KIND, "custom_model_development_inferred", "finetuning", "forecasting", "classification", "regression", "automl")
PARENT_RUN_TAG = "mlflow.parentRunId"
RUN_ROLE_TAG = "mlops.run_role"
TRAINING_ROLE = "training"
# On the Dagster run: the id of its MLflow parent run (also a link from the Dagster UI).
DAGSTER_PARENT_TAG = "mlops/mlflow_run_id"
PARENT_LOCK = "mlflow_parent_run"
_PARENTS: dict[tuple[str, str], str] = {}  # (tracking URI, Dagster run id) -> parent run id, in this process
_TRAINING_ENDED: dict[str, int] = {}  # MLflow run id -> end of its training (ms), until the run ends


def _now_ms() -> int:
    return int(time.time() * 1000)


def dagster_run_outcome(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """MLflow's status for a Dagster run whose steps have all ended: FAILED if one failed,
    FINISHED if each succeeded or was skipped; None while a step is still to run or running.
    Read from the run's step events, so a step can tell from its own process (the run's status
    is written only after the last step)."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        return None
    status = run.status.value
    if status in ("SUCCESS", "FAILURE", "CANCELED"):
        return {"SUCCESS": "FINISHED", "FAILURE": "FAILED", "CANCELED": "KILLED"}[status]
    ended = {stats.step_key: getattr(stats.status, "value", stats.status) for stats in instance.get_run_step_stats(run_id)}
    if "FAILURE" in ended.values():
        return "FAILED"
    plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id) if run.execution_plan_snapshot_id else None
    planned = plan.step_keys_to_execute if plan else []
    if planned and all(ended.get(key) in ("SUCCESS", "SKIPPED") for key in planned):
        return "FINISHED"
    return None


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes of this machine (held while the block runs)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


class MlflowTracking(dg.ConfigurableResource):
    """Tracking URI (default `sqlite:///$MLOPS_HOME/mlflow.db`), artifact root, experiment."""

    tracking_uri: str
    artifact_root: str
    experiment: str = "load_forecasting"
    registered_model: str = "load_forecaster"
    mlflow_ui_url: str = "http://127.0.0.1:5000"
    dagster_ui_url: str = "http://127.0.0.1:3000"

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Point the process-global MLflow (load_model, register_model, log_model) at this
        store in every process that uses the resource: with the multiprocess executor each
        step is a fresh process, which otherwise would fall back to a local ./mlflow.db.
        A SQLite store is created under a file lock: parallel steps would race on its tables."""
        if not self.tracking_uri.startswith("sqlite:///"):
            self.client()
            return
        with _file_lock(Path(self.tracking_uri.removeprefix("sqlite:///") + ".lock")):
            client = self.client()
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)

    def client(self):
        import mlflow
        from mlflow import MlflowClient

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """End this Dagster run's MLflow parent run if every step has ended. Each step process
        tears its resources down after its step (the in-process executor: once, after the last
        step), so the process of the last step to end closes the parent."""
        if context.instance is None or context.dagster_run is None:
            return
        try:
            self.close_training_run(context.instance, context.dagster_run.run_id)
        except Exception as error:  # noqa: BLE001 - closing the MLflow run never fails the Dagster run
            dg.get_dagster_logger().warning(f"could not end the MLflow run of Dagster run {context.dagster_run.run_id}: {error}")

    def experiment_id(self) -> str:
        """The experiment, created with its artifact location; marked as model training (tag
        `mlflow.experimentKind`) whether created here or found without that kind."""
        from mlflow.exceptions import MlflowException

        client = self.client()
        found = client.get_experiment_by_name(self.experiment)
        if found:
            if found.tags.get(EXPERIMENT_KIND_TAG) not in MODEL_TRAINING_KINDS:
                client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
            return found.experiment_id
        location = self.artifact_root if "://" in self.artifact_root else Path(self.artifact_root).resolve().as_uri()
        try:
            return client.create_experiment(
                self.experiment, artifact_location=f"{location}/{self.experiment}", tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND}
            )
        except MlflowException:  # created meanwhile by a parallel step
            found = client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return found.experiment_id

    def training_run_id(self, context: dg.AssetExecutionContext | dg.OpExecutionContext) -> str:
        """The MLflow parent run of this Dagster run, created by the first step that asks. Found
        by its tags (`dagster.run_id`, `mlops.run_role=training`) under a lock on this host, so
        steps starting together in parallel processes create one; it starts when the Dagster
        run started, and its id is tagged on the Dagster run (`mlops/mlflow_run_id`)."""
        key = (self.tracking_uri, context.run_id)
        if key in _PARENTS:
            return _PARENTS[key]
        from mlops_assets.locks import hold

        with hold(PARENT_LOCK, f"MLflow parent run of Dagster run {context.run_id}"):
            parent = self._find_training_run(context.run_id) or self._create_training_run(context)
        _PARENTS[key] = parent
        return parent

    def _find_training_run(self, dagster_run_id: str) -> str | None:
        runs = self.client().search_runs(
            [self.experiment_id()],
            filter_string=f"tags.`dagster.run_id` = '{dagster_run_id}' AND tags.`{RUN_ROLE_TAG}` = '{TRAINING_ROLE}'",
            max_results=1, order_by=["attributes.start_time ASC"],
        )
        return runs[0].info.run_id if runs else None

    def _create_training_run(self, context) -> str:
        record = context.instance.get_run_record_by_id(context.run_id)
        started = record.start_time if record and record.start_time else None
        job = context.job_name or "dagster"
        tags = {
            "dagster.run_id": context.run_id, "dagster_run_id": context.run_id, "dagster.job": job,
            "dagster.run_url": f"{self.dagster_ui_url}/runs/{context.run_id}", RUN_ROLE_TAG: TRAINING_ROLE,
            "mlflow.note.content": f"Dagster run {context.run_id} of {job}: its parts (candidates, fair model, evaluation) are the nested runs.",
        }
        run = self.client().create_run(
            self.experiment_id(), start_time=int(started * 1000) if started else None, tags=tags, run_name=f"{job}-{context.run_id[:8]}"
        )
        context.instance.add_run_tags(context.run_id, {DAGSTER_PARENT_TAG: run.info.run_id})
        return run.info.run_id

    def close_training_run(self, instance: dg.DagsterInstance, dagster_run_id: str) -> str | None:
        """End the parent run of a Dagster run whose steps have all ended (see
        `dagster_run_outcome`); returns the status set, or None (no parent, or steps left)."""
        run = instance.get_run_by_id(dagster_run_id)
        parent = run.tags.get(DAGSTER_PARENT_TAG) if run else None
        status = dagster_run_outcome(instance, dagster_run_id) if parent else None
        if parent and status:
            self.client().set_terminated(parent, status)
        return status

    def dagster_tags(self, context: dg.AssetExecutionContext | dg.OpExecutionContext, asset: str) -> dict[str, str]:
        return {
            "dagster.run_id": context.run_id,
            "dagster.job": context.job_name or "",
            "dagster.asset": asset,
            "dagster.run_url": f"{self.dagster_ui_url}/runs/{context.run_id}",
        }

    @contextmanager
    def start_run(
        self, context, asset: str, run_name: str | None = None, tags: dict[str, str] | None = None, started_ms: int | None = None
    ) -> Iterator[Any]:
        """A run nested under this Dagster run's parent run, active (fluent API) in the block,
        starting now (or at `started_ms`). Call `training_ended(run)` when its training ends: the
        run then ends at that time, so its duration is the training's (logging after it does
        not count)."""
        import mlflow

        experiment_id = self.experiment_id()
        tags = {**self.dagster_tags(context, asset), PARENT_RUN_TAG: self.training_run_id(context), **(tags or {})}
        if started_ms is not None:
            created = self.client().create_run(experiment_id, start_time=started_ms, tags=tags, run_name=run_name or asset)
            opened = mlflow.start_run(run_id=created.info.run_id)
        else:
            opened = mlflow.start_run(experiment_id=experiment_id, run_name=run_name or asset, tags=tags)
        with opened as run:
            try:
                yield run
            except BaseException:
                _TRAINING_ENDED.pop(run.info.run_id, None)
                raise
        ended = _TRAINING_ENDED.pop(run.info.run_id, None)
        if ended is not None:
            self.client().set_terminated(run.info.run_id, "FINISHED", end_time=ended)

    @staticmethod
    def training_ended(run: Any) -> None:
        """Inside `start_run`: the run's training ends now (its end time when the block ends)."""
        _TRAINING_ENDED[run.info.run_id] = _now_ms()

    @contextmanager
    def resume_run(self, run_id: str) -> Iterator[Any]:
        """Log more to an ended run (bias report, SHAP); it keeps its status and end time, so
        its duration stays its training's."""
        import mlflow

        before = self.client().get_run(run_id).info
        with mlflow.start_run(run_id=run_id) as run:
            yield run
        if before.end_time:  # RUNNING: resumed by a parallel step at the same time
            status = "FINISHED" if before.status == "RUNNING" else before.status
            self.client().set_terminated(run_id, status, end_time=before.end_time)

    def registry(self):
        from mlops_assets.resources.registry import ModelRegistry

        return ModelRegistry(self.client(), self.registered_model, self.experiment_id)

    def model_version_url(self, version: str) -> str:
        return f"{self.mlflow_ui_url}/#/models/{self.registered_model}/versions/{version}"

    def run_url(self, run_id: str) -> str:
        return f"{self.mlflow_ui_url}/#/experiments/{self.experiment_id()}/runs/{run_id}"
