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


@contextmanager
def trained_platform(home: Path, groups: tuple[str, ...] = ("A", "B", "C"), days: int = 30):
    """(defs, instance, result): a month of hourly history for `groups` landed, ingested and
    run through `training_job` (the fast profile) in a throwaway MLOPS_HOME."""
    from mlops_assets.core.spec import load_spec
    from mlops_assets.runner import ingest_landed, run_job
    from mlops_assets_tests.builders import hourly_frame

    with local_platform(home) as (defs, instance):
        land(home, "history.csv", hourly_frame(load_spec(), list(groups), 24 * days))
        ingest_landed(defs, instance)
        yield defs, instance, run_job(defs, "training_job", instance)
