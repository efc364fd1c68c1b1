"""Running the graph in-process against the persistent local Dagster instance, so every run
the CLI makes shows up in the Dagster UI exactly like one launched there."""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field

import dagster as dg

from mlops_assets import settings
from mlops_assets.defs.ingestion.discovery import discover_batches
from mlops_assets.defs.partitions import BATCHES


@dataclass
class IngestSummary:
    succeeded: list[str] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)


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
    """What `new_data_sensor` does, run synchronously: one ingestion run per new batch."""
    landing = defs.resources["landing"]
    known = set(instance.get_dynamic_partitions(BATCHES))
    found = discover_batches(landing, known, {})
    summary = IngestSummary(duplicates=[f.name for f in found.already_known])
    if found.new:
        instance.add_dynamic_partitions(BATCHES, [f.key for f in found.new])
    job = defs.resolve_job_def("ingestion_job")
    for landed in found.new:
        result = job.execute_in_process(
            partition_key=landed.key, instance=instance, raise_on_error=False, tags={"mlops/landed_file": landed.name[:200]},
            run_config=quiet_run_config(),
        )
        if result.success:
            summary.succeeded.append(landed.key)
        else:
            summary.quarantined[landed.key] = _failure_message(result)
    return summary


def run_job(defs: dg.Definitions, name: str, instance: dg.DagsterInstance) -> StoredOutputsResult:
    """Run an unpartitioned job of `defs` in this process, as `execute_in_process` does, but
    without keeping every step's output in memory until the run ends: each output is released
    once the steps that need it have loaded it from storage, and `output_for_node` reads it back
    from there. At 1M rows the kept outputs were about 500 MB of frames (bench/end_to_end.py)."""
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.execute_in_process import core_execute_in_process

    # `execute_in_process` always captures outputs and has no switch for it; this is the same
    # call with capture off (dagster is pinned exactly; mlops_assets_tests/test_runner.py checks the release).
    run_config = quiet_run_config()
    job = defs.resolve_job_def(name)
    result = core_execute_in_process(
        job=InMemoryJob(job_def=job.as_ephemeral_job(resource_defs={}, input_values={})),
        run_config=run_config,
        instance=instance,
        output_capturing_enabled=False,
        raise_on_error=False,
        run_tags={**job.run_tags},
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
    errors = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error:
            error = event.step_failure_data.error
            root = error.cause if error.cls_name == "DagsterExecutionStepExecutionError" and error.cause else error
            message = root.message.strip().splitlines()[0] if root.message.strip() else root.cls_name
            errors.append((event.step_key, message.split(": ", 1)[-1] if message.startswith("dagster.") else message))
    return errors


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    errors = step_errors(result)
    return errors[0][1] if errors else "failed"


def change_champion(job: str, config: dict, echo) -> int:
    """Run `rollback_job` / `manual_promotion_job` in-process, so the move is a Dagster run too."""
    from mlops_assets.definitions import build_definitions

    instance = local_instance()
    defs = build_definitions()
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False, run_config=quiet_run_config({"ops": {"champion_model": {"config": config}}}), tags={"mlops/trigger": "cli"}
    )
    if result.success:
        meta = result.get_asset_materialization_events()[0].materialization.metadata
        echo(f"{meta['action'].value}; champion is now v{meta['champion_version'].value}")
        return 0
    echo(f"not changed: {_failure_message(result)}")
    return 1
