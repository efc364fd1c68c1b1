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


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or mlops_home() / "dagster_home")


def ensure_local_dirs() -> None:
    """Create the local folders (a no-op for remote `gs://` locations)."""
    for location in (landing_dir(), quarantine_dir(), storage_dir(), str(dagster_home())):
        if "://" not in location:
            Path(location).mkdir(parents=True, exist_ok=True)
    write_dagster_yaml(dagster_home())


def local_instance_config(home: Path) -> dict:
    """The local Dagster instance: SQLite, with one event log for all runs (not one file per
    run), so sensors can read check results across runs with a single cursor."""
    return {
        "event_log_storage": {
            "module": "dagster._core.storage.event_log",
            "class": "ConsolidatedSqliteEventLogStorage",
            "config": {"base_dir": str(home / "history" / "events")},
        },
        "telemetry": {"enabled": False},
    }


def write_dagster_yaml(home: Path) -> Path:
    """Create DAGSTER_HOME/dagster.yaml once; an existing file (e.g. production) is kept."""
    import yaml

    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    if not path.exists():
        path.write_text(yaml.safe_dump(local_instance_config(home), sort_keys=False))
    return path
