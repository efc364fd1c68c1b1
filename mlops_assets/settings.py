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
