"""MLflow tracking and registry access.

We wrap `MlflowClient` ourselves instead of dagster-mlflow's `mlflow_tracking` resource:
that resource opens one MLflow run per Dagster run and sets global state, while each model
asset here needs its own MLflow run (three candidates in one Dagster run), tagged with the
Dagster run and asset so both UIs link to each other."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import dagster as dg


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

    def experiment_id(self) -> str:
        client = self.client()
        found = client.get_experiment_by_name(self.experiment)
        if found:
            return found.experiment_id
        location = self.artifact_root if "://" in self.artifact_root else Path(self.artifact_root).resolve().as_uri()
        return client.create_experiment(self.experiment, artifact_location=f"{location}/{self.experiment}")

    def dagster_tags(self, context: dg.AssetExecutionContext | dg.OpExecutionContext, asset: str) -> dict[str, str]:
        return {
            "dagster.run_id": context.run_id,
            "dagster.job": context.job_name or "",
            "dagster.asset": asset,
            "dagster.run_url": f"{self.dagster_ui_url}/runs/{context.run_id}",
        }

    @contextmanager
    def start_run(self, context, asset: str, run_name: str | None = None, tags: dict[str, str] | None = None) -> Iterator[Any]:
        import mlflow

        experiment_id = self.experiment_id()
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name or asset, tags={**self.dagster_tags(context, asset), **(tags or {})}) as run:
            yield run

    @contextmanager
    def resume_run(self, run_id: str) -> Iterator[Any]:
        import mlflow

        self.client()
        with mlflow.start_run(run_id=run_id) as run:
            yield run

    def registry(self):
        from mlops_assets.resources.registry import ModelRegistry

        return ModelRegistry(self.client(), self.registered_model)

    def model_version_url(self, version: str) -> str:
        return f"{self.mlflow_ui_url}/#/models/{self.registered_model}/versions/{version}"

    def run_url(self, run_id: str) -> str:
        return f"{self.mlflow_ui_url}/#/experiments/{self.experiment_id()}/runs/{run_id}"
