"""`mlops-assets demo`: land demo data if there is none, then run the graph end to end."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import timedelta

import dagster as dg

from mlops_assets import settings
from mlops_assets.defs.partitions import BATCHES

MAIN_JOB = "training_job"
DAILY_FILES = 7


def land_files(files: list[tuple[str, bytes]], landing: str) -> list[str]:
    """Write (name, bytes) files into the landing zone, a local folder or a gs:// prefix, as
    whole files only (a temporary name and a rename locally, one object upload on GCS), so
    the sensor never sees a partial file. Returns where each file landed."""
    from mlops_assets.resources.gcs import storage_path
    from mlops_assets.resources.landing import write_atomic

    root = storage_path(landing)
    landed = []
    for name, data in files:
        write_atomic(root / name, data)
        landed.append(str(root / name))
    return landed


def land_demo_data(days: int, groups: int, corrupt: bool, echo: Callable[[str], None]) -> None:
    """A history file, then daily files (with the usual feed defects), then one broken file
    to show quarantine."""
    from mlops_assets.core.simulate import DEFAULT_START, SimulationConfig, batch_files, corrupt_file
    from mlops_assets.core.spec import load_spec

    spec = load_spec()
    landing = settings.landing_dir()
    history_days = days - DAILY_FILES
    history = SimulationConfig(start=DEFAULT_START, days=history_days, groups=groups)
    daily = SimulationConfig(start=DEFAULT_START + timedelta(days=history_days), days=DAILY_FILES, groups=groups, batch_days=1)
    files = batch_files(spec, history) + batch_files(spec, daily)
    if corrupt:
        files.append(corrupt_file(spec, "wrong_type", daily))
    paths = land_files(files, landing)
    state = settings.mlops_home() / "simulate_state.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"next_start": (DEFAULT_START + timedelta(days=days)).isoformat()}))
    echo(f"landed {len(paths)} demo files in {landing}")


def run_demo(days: int, groups: int, corrupt: bool, echo: Callable[[str], None]) -> int:
    # Files written by this process are complete (atomic rename): no need to wait for them to settle.
    os.environ.setdefault("MLOPS_SETTLE_SECONDS", "0")
    from mlops_assets.definitions import build_definitions
    from mlops_assets.runner import ingest_landed, local_instance, run_job

    instance = local_instance()
    defs = build_definitions()
    if not instance.get_dynamic_partitions(BATCHES) and _landing_is_empty(settings.landing_dir()):
        land_demo_data(days, groups, corrupt, echo)
    ingested = ingest_landed(defs, instance)
    echo(f"ingested {len(ingested.succeeded)} new batch(es); {len(ingested.duplicates)} re-delivered file(s) skipped")
    for key, reason in ingested.quarantined.items():
        echo(f"  QUARANTINED {key}: {reason}")
    result = run_job(defs, MAIN_JOB, instance)
    _print_result(result, echo)
    _print_model(result, echo)
    _print_next_steps(echo)
    return 0 if result.success else 1


def _landing_is_empty(landing: str) -> bool:
    """Whether nothing at all is in the landing zone (a local folder or a gs:// prefix)."""
    from mlops_assets.resources.gcs import storage_path

    root = storage_path(landing)
    return not root.exists() or not any(root.iterdir())


def _print_result(result: dg.ExecuteInProcessResult, echo: Callable[[str], None]) -> None:
    echo(f"\n{MAIN_JOB}: {'SUCCESS' if result.success else 'FAILED'} (run {result.run_id})")
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        rows = mat.metadata.get("dagster/row_count")
        echo(f"  materialized {mat.asset_key.to_user_string():<16} {'' if rows is None else f'{rows.value:>9,} rows'}")
    for event in result.get_asset_check_evaluations():
        echo(f"  check {event.asset_key.to_user_string()}.{event.check_name}: {'pass' if event.passed else 'FAIL'}")
    from mlops_assets.runner import step_errors

    for step, message in step_errors(result):
        echo(f"  FAILED step {step}: {message}")


def _print_model(result: dg.ExecuteInProcessResult, echo: Callable[[str], None]) -> None:
    outputs = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    if "registered_model" not in outputs:
        return
    candidate = result.output_for_node("candidate_model")
    registered = result.output_for_node("registered_model")
    echo("\nmodels (validation RMSE / test MAPE):")
    for row in candidate["comparison"]:
        echo(f"  {row['model']:<8} {row['val_rmse']:>10.2f} / {row['test_mape']:6.2f}%{'  <- candidate' if row['chosen'] else ''}")
    verdict = "approved" if registered["passed"] else "REFUSED"
    echo(f"registered {registered['model_uri']} ({registered['kind']}): {verdict}")
    for v in registered["verdicts"]:
        echo(f"  {v['check']:<26} {'pass' if v['passed'] else 'FAIL'}  {v['reason'][:110]}")
    if "champion_model" in outputs:
        meta = next(e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == "champion_model").materialization.metadata
        echo(f"champion: v{meta['champion_version'].value} ({meta['action'].value})")


def _print_next_steps(echo: Callable[[str], None]) -> None:
    echo(
        f"\nlocal state: {settings.mlops_home()}"
        "\nDagster UI:  make ui         (http://127.0.0.1:3000: asset graph, runs, checks, sensors)"
        "\nMLflow UI:   make mlflow-ui  (http://127.0.0.1:5000: runs, plots, registry)"
        "\nstatus:      .venv/bin/mlops-assets status"
    )
