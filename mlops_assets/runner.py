"""Running the graph in-process against the persistent local Dagster instance, so every run
the CLI makes shows up in the Dagster UI exactly like one launched there."""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field

import dagster as dg

from mlops_assets import settings
from mlops_assets.defs.ingestion.discovery import cli_run_tags, discover_batches, received_keys, running_keys
from mlops_assets.defs.partitions import BATCHES


TRAINING_LOCK = "training"


class TrainingInProgress(RuntimeError):
    """Another training is running on this MLOPS_HOME: this process does not train (an
    outcome, not a failure; the message says who trains)."""


@dataclass
class IngestSummary:
    """One look at the landing zone: batch keys ingested, quarantined (key -> reason) and failed
    for another reason (key or file name -> error; still pending, retried on the next look),
    names of files whose content was already received, and keys still in a run elsewhere."""

    succeeded: list[str] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)
    in_progress: list[str] = field(default_factory=list)


def quiet_run_config(extra: dict | None = None) -> dict:
    """Runs started from the CLI log to the console at MLOPS_LOG_LEVEL (default WARNING);
    everything is still in the run's event log in the UI."""
    level = os.environ.get("MLOPS_LOG_LEVEL", "WARNING").upper()
    return {"loggers": {"console": {"config": {"log_level": level}}}, **(extra or {})}


def local_instance() -> dg.DagsterInstance:
    """The instance under MLOPS_HOME (SQLite), unless DAGSTER_HOME already points elsewhere."""
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home()))
    settings.ensure_local_dirs()
    return dg.DagsterInstance.get()


def ingest_landed(defs: dg.Definitions, instance: dg.DagsterInstance) -> IngestSummary:
    """What `new_data_sensor` does, run synchronously: one ingestion run per new or pending
    batch. A failed run is a quarantine only when the batch was quarantined (a data error);
    any other failure leaves the batch pending for the next look."""
    landing = defs.resources["landing"]
    found = discover_batches(landing, received_keys(instance, landing), {}, running_keys(instance))
    summary = IngestSummary(
        failed=dict(found.failed),
        duplicates=[f.name for f in found.already_known],
        in_progress=[f.key for f in found.in_progress],
    )
    known = set(instance.get_dynamic_partitions(BATCHES))
    unknown = [f.key for f in found.new if f.key not in known]
    if unknown:
        instance.add_dynamic_partitions(BATCHES, unknown)
    job = defs.resolve_job_def("ingestion_job")
    for landed in found.new:
        result = job.execute_in_process(
            partition_key=landed.key, instance=instance, raise_on_error=False,
            tags={"mlops/landed_file": landed.name[:200], **cli_run_tags()},
            run_config=quiet_run_config(),
        )
        if result.success:
            summary.succeeded.append(landed.key)
        elif landing.is_quarantined(landed.key):
            summary.quarantined[landed.key] = failure_message(result).removeprefix("quarantined: ")
        else:
            summary.failed[landed.key] = failure_message(result)
    return summary


def run_job(
    defs: dg.Definitions, name: str, instance: dg.DagsterInstance,
    asset_selection: set[dg.AssetKey] | None = None, tags: dict[str, str] | None = None,
) -> StoredOutputsResult:
    """Run an unpartitioned job of `defs` (or the `asset_selection` part of it) in this process,
    as `execute_in_process` does, but without keeping every step's output in memory until the
    run ends: each output is released once the steps that need it have loaded it from storage,
    and `output_for_node` reads it back from there. At 1M rows the kept outputs were about
    500 MB of frames (bench/end_to_end.py).

    A training job (run tag `mlops/training=true`) runs only while this process holds the
    training lock (MLOPS_HOME/locks/training.lock) and no other training run is queued or
    running in the instance; otherwise it raises `TrainingInProgress` and trains nothing."""
    job = defs.resolve_job_def(name)
    if asset_selection is not None:
        job = job.get_subset(asset_selection=asset_selection)
    if job.run_tags.get(settings.TRAINING_TAG) != "true":
        return _execute(defs, job, instance, tags)
    from mlops_assets.locks import describe_holder, lock_path, try_hold

    with try_hold(TRAINING_LOCK, f"{name} {(tags or {}).get('mlops/trigger', 'cli')}") as held:
        if not held:
            who = describe_holder(lock_path(TRAINING_LOCK))
            raise TrainingInProgress(f"a training is already running ({who}): not training now")
        _refuse_if_training_run_in_progress(instance)
        return _execute(defs, job, instance, tags)


def _refuse_if_training_run_in_progress(instance: dg.DagsterInstance) -> None:
    """A training run launched by the daemon or the UI holds no lock of ours: ask the instance."""
    from mlops_assets.defs.jobs import training_runs_in_progress

    running = training_runs_in_progress(instance)
    if running:
        run = running[0]
        status = run.status.value.lower()
        raise TrainingInProgress(f"a training is already {status}: run {run.run_id[:8]} of {run.job_name}: not training now")


def _execute(
    defs: dg.Definitions, job: dg.JobDefinition, instance: dg.DagsterInstance, tags: dict[str, str] | None
) -> StoredOutputsResult:
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.execute_in_process import core_execute_in_process

    # `execute_in_process` always captures outputs and has no switch for it; this is the same
    # call with capture off (dagster is pinned exactly; mlops_assets_tests/test_runner.py checks the release).
    run_config = quiet_run_config()
    result = core_execute_in_process(
        job=InMemoryJob(job_def=job.as_ephemeral_job(resource_defs={}, input_values={})),
        run_config=run_config,
        instance=instance,
        output_capturing_enabled=False,
        raise_on_error=False,
        # The CLI's pid and host: a run whose process was killed keeps status STARTED forever,
        # and these tell it from one still going (ingestion discovery, training_runs_in_progress).
        run_tags={**job.run_tags, **cli_run_tags(), **(tags or {})},
    )
    return StoredOutputsResult(result, defs, instance)


class StoredOutputsResult(dg.ExecuteInProcessResult):
    """The result of `run_job`: events and run as usual; outputs are loaded from storage."""

    def __init__(self, result: dg.ExecuteInProcessResult, defs: dg.Definitions, instance: dg.DagsterInstance):
        super().__init__(job_def=result.job_def, event_list=result.all_events, dagster_run=result.dagster_run, output_capture={})
        self._defs = defs
        self._instance = instance

    def output_for_node(self, node_str: str, output_name: str = "result") -> object:
        keys = {e.asset_key for e in self.get_asset_materialization_events() if e.step_key == node_str}
        wanted = [d.keys_by_output_name[output_name] for d in {self._defs.get_assets_def(k) for k in keys} if output_name in d.keys_by_output_name]
        if not wanted or wanted[0] not in keys:
            raise dg.DagsterInvariantViolationError(f"{node_str!r} did not materialize output {output_name!r} in run {self.run_id}")
        # load_asset_value logs the read at DEBUG on a console logger of its own, whatever the
        # instance's level: the CLI's output would show a storage path per value printed.
        with contextlib.redirect_stderr(io.StringIO()):
            return self._defs.load_asset_value(wanted[0], instance=self._instance)


def step_errors(result: dg.ExecuteInProcessResult) -> list[tuple[str, str]]:
    """(step, first line of the underlying error) for every failed step."""
    from mlops_assets.defs.alerts.sensors import root_message

    return [(e.step_key, root_message(e.step_failure_data.error)) for e in result.all_events if e.is_step_failure and e.step_failure_data.error]


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The first failed step's error, in one line."""
    errors = step_errors(result)
    return errors[0][1] if errors else "failed"


def change_champion(job: str, config: dict, console) -> int:
    """Run `rollback_job` / `manual_promotion_job` in-process, so the move is a Dagster run too."""
    from mlops_assets.definitions import build_definitions

    instance = local_instance()
    defs = build_definitions()
    with console.step(config["action"].replace("_", " ")) as step:
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance, raise_on_error=False, run_config=quiet_run_config({"ops": {"champion_model": {"config": config}}}), tags={"mlops/trigger": "cli"}
        )
        if result.success:
            meta = result.get_asset_materialization_events()[0].materialization.metadata
            step.line = f"champion is now v{meta['champion_version'].value} ({meta['action'].value})"
        else:
            step.line, step.broken = f"not changed: {failure_message(result)}", True
    console.detail(f"run {result.run_id}")
    return 0 if result.success else 1
