"""`mlops-assets demo`: land demo data if there is none, then run the graph end to end."""

from __future__ import annotations

import json
import os
from datetime import timedelta

from mlops_assets import settings
from mlops_assets.console import Console
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


def land_demo_data(days: int, groups: int, corrupt: bool, console: Console) -> None:
    """A history file, then daily files (with the usual feed defects), then one broken file
    to show quarantine."""
    from mlops_assets.core.simulate import DEFAULT_START, SimulationConfig, batch_files, corrupt_file
    from mlops_assets.core.spec import load_spec

    spec = load_spec()
    landing = settings.landing_dir()
    history_days = days - DAILY_FILES
    history = SimulationConfig(start=DEFAULT_START, days=history_days, groups=groups)
    daily = SimulationConfig(start=DEFAULT_START + timedelta(days=history_days), days=DAILY_FILES, groups=groups, batch_days=1)
    with console.step("land") as step:
        files = batch_files(spec, history) + batch_files(spec, daily)
        if corrupt:
            files.append(corrupt_file(spec, "wrong_type", daily))
        paths = land_files(files, landing)
        state = settings.mlops_home() / "simulate_state.json"
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"next_start": (DEFAULT_START + timedelta(days=days)).isoformat()}))
        broken = " (one broken on purpose)" if corrupt else ""
        step.line = f"{len(paths)} demo files{broken}, {days} days x {groups} subregions, in {landing}"


def run_demo(days: int, groups: int, corrupt: bool, console: Console) -> int:
    """Land simulated data when the platform has none, then what `mlops-assets run` does."""
    # Files written by this process are complete (atomic rename): no need to wait for them to settle.
    os.environ.setdefault("MLOPS_SETTLE_SECONDS", "0")
    from mlops_assets.definitions import build_definitions
    from mlops_assets.local_run import process_landing
    from mlops_assets.runner import local_instance

    instance = local_instance()
    defs = build_definitions()
    if not instance.get_dynamic_partitions(BATCHES) and _landing_is_empty(settings.landing_dir()):
        land_demo_data(days, groups, corrupt, console)
    return process_landing(defs, instance, None, console, trigger="cli:demo")


def _landing_is_empty(landing: str) -> bool:
    """Whether nothing at all is in the landing zone (a local folder or a gs:// prefix)."""
    from mlops_assets.resources.gcs import storage_path

    root = storage_path(landing)
    return not root.exists() or not any(root.iterdir())
