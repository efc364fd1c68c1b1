"""Running the real graph on small data inside a throwaway MLOPS_HOME."""

from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from mlops_assets_tests.builders import to_csv_bytes


@contextmanager
def local_platform(home: Path, env: dict[str, str] | None = None):
    """(defs, instance) with MLOPS_HOME=home, the fast training profile and no settle wait."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"MLOPS_HOME": str(home), "MLOPS_SETTLE_SECONDS": "0", "MLOPS_PROFILE": "fast", "DAGSTER_HOME": str(home / "dagster_home"), **(env or {})}.items():
            mp.setenv(key, value)
        from mlops_assets import settings
        from mlops_assets.definitions import build_definitions

        settings.ensure_local_dirs()
        from mlops_assets.settings import local_instance_config

        with dg.instance_for_test(temp_dir=str(home / "dagster_home"), overrides=local_instance_config(home / "dagster_home")) as instance:
            yield build_definitions("local"), instance


def land(home: Path, name: str, frame: pl.DataFrame) -> Path:
    path = home / "landing" / name
    path.write_bytes(to_csv_bytes(frame))
    return path
