"""The jobs, and the executor that runs their steps in a deployment (MLOPS_EXECUTOR)."""

import os
from collections.abc import Mapping

import dagster as dg

from mlops_assets.defs.partitions import batches
from mlops_assets.settings import TRAINING_TAG

EXECUTOR_ENV_VAR = "MLOPS_EXECUTOR"
START_METHOD_ENV_VAR = "MLOPS_EXECUTOR_START_METHOD"
MAX_CONCURRENT_ENV_VAR = "MLOPS_EXECUTOR_MAX_CONCURRENT"
EXECUTORS = ("in_process", "multiprocess")
START_METHODS = ("forkserver", "spawn")


def executor_from_env(env: Mapping[str, str] | None = None) -> dg.ExecutorDefinition:
    """The executor of every job launched by the webserver or the daemon (runs from the CLI
    always run in one process). MLOPS_EXECUTOR=in_process (default): all steps in the run's
    own process, one after the other -- the cheapest on one small machine (bench/executors.py).
    MLOPS_EXECUTOR=multiprocess: each step in its own process, started by
    MLOPS_EXECUTOR_START_METHOD=forkserver (default; the code location is imported once by the
    fork server) or spawn, at most MLOPS_EXECUTOR_MAX_CONCURRENT at a time (default: one per CPU)."""
    env = os.environ if env is None else env
    kind = env.get(EXECUTOR_ENV_VAR) or "in_process"
    if kind not in EXECUTORS:
        raise ValueError(f"{EXECUTOR_ENV_VAR}={kind!r}: choose one of {list(EXECUTORS)}")
    if kind == "in_process":
        return dg.in_process_executor
    start_method = env.get(START_METHOD_ENV_VAR) or "forkserver"
    if start_method not in START_METHODS:
        raise ValueError(f"{START_METHOD_ENV_VAR}={start_method!r}: choose one of {list(START_METHODS)}")
    config: dict = {"start_method": {start_method: {}}}
    max_concurrent = env.get(MAX_CONCURRENT_ENV_VAR)
    if max_concurrent:
        if not max_concurrent.isdigit() or int(max_concurrent) < 1:
            raise ValueError(f"{MAX_CONCURRENT_ENV_VAR}={max_concurrent!r}: give a whole number of processes, at least 1")
        config["max_concurrent"] = int(max_concurrent)
    return dg.multiprocess_executor.configured(config)


ingestion_job = dg.define_asset_job(
    "ingestion_job",
    selection=dg.AssetSelection.groups("ingestion"),
    partitions_def=batches,
    description="Parse, validate and clean one landed batch (one `batches` partition).",
)

preparation_job = dg.define_asset_job(
    "preparation_job",
    selection=dg.AssetSelection.groups("preparation"),
    description="Merge clean batches into the history, build features, split in time, profile.",
)

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.groups("preparation", "training", "fairness", "explainability", "registry"),
    description=(
        "Retrain from the latest clean data: preparation, candidates, fairness, SHAP, registry and promotion. "
        "Its runs carry `mlops/training=true`: the run queue starts one at a time."
    ),
    tags={TRAINING_TAG: "true"},
)

rollback_job = dg.define_asset_job(
    "rollback_job",
    selection=dg.AssetSelection.assets("champion_model"),
    config={"ops": {"champion_model": {"config": {"action": "rollback", "reason": ""}}}},
    description="Move `champion` back to the version that served before it (set a reason in the config).",
)

manual_promotion_job = dg.define_asset_job(
    "manual_promotion_job",
    selection=dg.AssetSelection.assets("champion_model"),
    config={"ops": {"champion_model": {"config": {"action": "force_promote", "reason": "", "version": ""}}}},
    description="The audited manual override: make a given version champion regardless of its checks.",
)

monitoring_job = dg.define_asset_job(
    "monitoring_job",
    selection=dg.AssetSelection.groups("monitoring"),
    partitions_def=batches,
    description="The champion's predictions and the drift report for one batch.",
)


def training_runs_in_progress(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Runs tagged `mlops/training=true` that are queued or running, newest first; a run whose
    CLI process is gone (it keeps status STARTED forever) does not count."""
    from mlops_assets.defs.ingestion.discovery import UNFINISHED, _alive

    runs = instance.get_runs(filters=dg.RunsFilter(tags={TRAINING_TAG: "true"}, statuses=list(UNFINISHED)))
    return [run for run in runs if _alive(run)]
