"""`mlops-assets status`: what has been ingested, quarantined and prepared."""

from __future__ import annotations

import json
from collections.abc import Callable

import dagster as dg

from mlops_assets import settings
from mlops_assets.defs.partitions import BATCHES
from mlops_assets.resources.gcs import storage_path


def quarantined_batches() -> list[dict]:
    """The reason records (`<key>/reason.json`) in quarantine, a local folder or a gs:// prefix."""
    root = storage_path(settings.quarantine_dir())
    if not root.exists():
        return []
    return [json.loads(p.read_text()) for p in sorted(root.glob("*/reason.json"), key=str)]


def print_status(echo: Callable[[str], None], history_lines: int | None = 5) -> None:
    from mlops_assets.runner import local_instance

    instance = local_instance()
    batches = instance.get_dynamic_partitions(BATCHES)
    quarantined = quarantined_batches()
    echo(f"MLOPS_HOME   {settings.mlops_home()}")
    cleaned = instance.get_materialized_partitions(dg.AssetKey("clean_load"))
    keys = {r["batch"] for r in quarantined}
    pending = [key for key in batches if key not in cleaned and key not in keys]
    waiting = f", {len(pending)} pending (failed, will retry)" if pending else ""
    # A quarantined batch leaves the partitions (`quarantine_and_fail`); it was received all the same.
    received = len(set(batches) | keys)
    echo(f"batches      {received} received, {len(quarantined)} quarantined{waiting}")
    for key in pending:
        echo(f"  pending {key}")
    for record in quarantined:
        echo(f"  quarantined {record['batch']}: {record['reason']['summary'][:200]}")
    _print_registry(echo, history_lines)
    _print_training(instance, echo)
    event = instance.get_latest_materialization_event(dg.AssetKey("load_history"))
    if event is None:
        echo("load_history not materialized yet: land files and run `mlops-assets run` (or `mlops-assets demo`)")
        return
    meta = event.asset_materialization.metadata
    echo(
        f"load_history {meta['dagster/row_count'].value:,} rows up to {meta['last_timestamp'].value}, "
        f"data version {meta['data_version'].value}"
    )


def _print_training(instance: dg.DagsterInstance, echo: Callable[[str], None]) -> None:
    """Whether a training runs now: in a CLI process (the training lock) or as a queued or
    running training_job run of the instance."""
    from mlops_assets.defs.jobs import training_runs_in_progress
    from mlops_assets.locks import describe_holder, lock_path, taken
    from mlops_assets.runner import TRAINING_LOCK

    if taken(TRAINING_LOCK):
        echo(f"training     running in {describe_holder(lock_path(TRAINING_LOCK))}")
    for run in training_runs_in_progress(instance):
        echo(f"training     run {run.run_id[:8]} of {run.job_name}: {run.status.value.lower()}")


def _print_registry(echo: Callable[[str], None], history_lines: int | None) -> None:
    from mlops_assets.definitions import build_resources
    from mlops_assets.resources.registry import CHALLENGER, CHAMPION, version_label

    registry = build_resources()["mlflow_tracking"].registry()
    history = registry.history()
    echo(f"champion     {registry.alias_version(CHAMPION) or 'none'} (model {registry.name}); challenger {registry.alias_version(CHALLENGER) or 'none'}")
    for entry in history[-history_lines if history_lines else 0:]:
        echo(f"  {entry['at']} {entry['action']:<13} v{entry['version']} (was {version_label(entry['previous_champion'])}) by {entry['trigger']}: {entry['reason'][:120]}")
