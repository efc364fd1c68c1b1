import os
from pathlib import Path

import dagster as dg
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")


@pytest.fixture
def mlops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MLOPS_HOME with its folders; files count as settled at once."""
    home = tmp_path / "mlops"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_SETTLE_SECONDS", "0")
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster_home"))
    for var in ("MLOPS_LANDING_DIR", "MLOPS_QUARANTINE_DIR", "MLOPS_STORAGE_DIR", "MLOPS_DATASET_SPEC", "MLOPS_DEPLOYMENT"):
        monkeypatch.delenv(var, raising=False)
    from mlops_assets import settings

    settings.ensure_local_dirs()
    return home


@pytest.fixture
def landing_dir(mlops_home: Path) -> Path:
    return mlops_home / "landing"


@pytest.fixture
def defs(mlops_home: Path) -> dg.Definitions:
    from mlops_assets.definitions import build_definitions

    return build_definitions("local")


@pytest.fixture
def instance(mlops_home: Path):
    from mlops_assets.settings import local_instance_config

    home = mlops_home / "dagster_home"
    with dg.instance_for_test(temp_dir=str(home), overrides=local_instance_config(home)) as inst:
        yield inst
