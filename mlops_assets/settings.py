"""Where local state lives. Everything defaults to folders under MLOPS_HOME (default `.mlops/`
in the working directory); production overrides them with environment variables."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV_VAR = "MLOPS_HOME"


def mlops_home() -> Path:
    return Path(os.environ.get(HOME_ENV_VAR, ".mlops")).expanduser().resolve()


def landing_dir() -> str:
    return os.environ.get("MLOPS_LANDING_DIR") or str(mlops_home() / "landing")


def quarantine_dir() -> str:
    return os.environ.get("MLOPS_QUARANTINE_DIR") or str(mlops_home() / "quarantine")


def storage_dir() -> str:
    return os.environ.get("MLOPS_STORAGE_DIR") or str(mlops_home() / "storage")


def dagster_url() -> str:
    """Where the Dagster UI is reached: the base of run links in alerts, MLflow tags and summaries."""
    return os.environ.get("MLOPS_DAGSTER_URL", "http://127.0.0.1:3000").rstrip("/")


def mlflow_url() -> str:
    """Where the MLflow UI is reached: the base of run and model-version links in asset metadata."""
    return os.environ.get("MLOPS_MLFLOW_URL", "http://127.0.0.1:5000").rstrip("/")


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or mlops_home() / "dagster_home")


def locks_dir() -> Path:
    """Lock files of the local store (promotion, training): always on this machine."""
    return mlops_home() / "locks"


def ensure_local_dirs() -> None:
    """Create the local folders (a no-op for remote `gs://` locations)."""
    for location in (landing_dir(), quarantine_dir(), storage_dir(), str(dagster_home())):
        if "://" not in location:
            Path(location).mkdir(parents=True, exist_ok=True)
    write_dagster_yaml(dagster_home())


TRAINING_TAG = "mlops/training"  # carried by every training_job run (defs/jobs.py)
WRITTEN_BY = (
    "# Written by mlops-assets (settings.local_instance_config); a file that differs from what it\n"
    "# writes is never replaced.\n"
)


def local_instance_config(home: Path) -> dict:
    """The local Dagster instance: SQLite, with one event log for all runs (not one file per
    run), so sensors can read check results across runs with a single cursor; and a run queue
    that starts at most one run tagged `mlops/training=true` (training_job) at a time, however
    it was requested (UI, schedule, drift_sensor)."""
    return {
        **_first_local_instance_config(home),
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {"tag_concurrency_limits": [{"key": TRAINING_TAG, "value": "true", "limit": 1}]},
        },
    }


def _first_local_instance_config(home: Path) -> dict:
    """What `write_dagster_yaml` wrote before the run queue was added (recognised to upgrade it)."""
    return {
        "event_log_storage": {
            "module": "dagster._core.storage.event_log",
            "class": "ConsolidatedSqliteEventLogStorage",
            "config": {"base_dir": str(home / "history" / "events")},
        },
        "telemetry": {"enabled": False},
    }


def write_dagster_yaml(home: Path) -> Path:
    """Create DAGSTER_HOME/dagster.yaml, or upgrade one that an earlier version of this function
    wrote (recognised by its exact content) to the current local config. Any other existing
    file -- a user's edits, production's deploy/dagster.yaml -- is kept as it is."""
    import yaml

    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    current = local_instance_config(home)
    if path.exists():
        try:
            existing = yaml.safe_load(path.read_text())
        except yaml.YAMLError:
            return path  # not ours to fix
        if existing != _first_local_instance_config(home):
            return path  # already current, or not ours
    path.write_text(WRITTEN_BY + yaml.safe_dump(current, sort_keys=False))
    return path
