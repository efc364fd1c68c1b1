"""The `mlops-assets` command with the landing zone, quarantine, storage and MLflow artifacts on
gs:// (gcp-storage-emulator on 127.0.0.1, the `emulator` fixture of conftest.py), run as a
user runs it: the installed console script in a subprocess.

`simulate` must upload whole objects under the gs:// prefix (never a local folder named
`gs:`), the ingestion must pick them up and quarantine the broken one on GCS, and `status`
must read that quarantine back from the bucket."""

from __future__ import annotations

import io
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from mlops_assets.core.simulate import SimulationConfig, batch_files, corrupt_file
from mlops_assets.core.spec import load_spec
from mlops_assets_tests.integration.conftest import BIN, GCS_BUCKET, gcs_production_env

SPEC = load_spec()
GROUPS = 3


@pytest.fixture
def gcs_home(emulator, tmp_path, monkeypatch) -> dict:
    """The production settings with every location under a fresh gs:// prefix (MLflow
    tracking and Dagster in SQLite under a local MLOPS_HOME), set in this process too."""
    prefix = f"gs://{GCS_BUCKET}/cli{uuid.uuid4().hex[:10]}"
    home = tmp_path / "mlops"
    env = gcs_production_env(home, prefix)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for leaked in ("MLOPS_DATASET_SPEC", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(leaked, raising=False)
    return {"prefix": prefix, "home": home, "cwd": tmp_path}


def cli(gcs_home: dict, *args: str) -> subprocess.CompletedProcess:
    """`mlops-assets ARGS` with this process's environment (the emulator and gs:// settings)."""
    return subprocess.run(
        [str(BIN / "mlops-assets"), *args], capture_output=True, text=True, env=dict(os.environ), cwd=gcs_home["cwd"], timeout=300
    )


def objects(prefix: str) -> dict[str, bytes]:
    """{name relative to the prefix: bytes} of every object under the gs:// prefix."""
    from google.cloud import storage

    key = prefix.split(f"gs://{GCS_BUCKET}/", 1)[1] + "/"
    return {blob.name[len(key):]: blob.download_as_bytes() for blob in storage.Client().list_blobs(GCS_BUCKET, prefix=key)}


def no_local_gs_folder(root: Path) -> bool:
    """Nothing was written to a local folder named after the URL's scheme."""
    return not any(part.startswith("gs:") for path in root.rglob("*") for part in path.parts)


def test_simulate_lands_on_gcs_ingestion_quarantines_and_status_reads_it(gcs_home):
    from mlops_assets.definitions import build_definitions
    from mlops_assets.runner import ingest_landed, local_instance

    landing = f"{gcs_home['prefix']}/landing"
    simulated = cli(gcs_home, "simulate", "--days", "2", "--batch-days", "1", "--groups", str(GROUPS))
    assert simulated.returncode == 0, simulated.stderr[-3000:]
    corrupt = cli(gcs_home, "simulate", "--corrupt", "wrong_type", "--groups", str(GROUPS))
    assert corrupt.returncode == 0, corrupt.stderr[-3000:]

    # Whole objects, byte for byte what the generator makes, and nothing else (no temp objects).
    expected = dict(batch_files(SPEC, SimulationConfig(days=2, batch_days=1, groups=GROUPS)))
    # --corrupt continues after the simulated days (2024-01-03), like the next batch would.
    bad_name, bad_bytes = corrupt_file(SPEC, "wrong_type", SimulationConfig(start=SimulationConfig(days=2).end, groups=GROUPS))
    expected[bad_name] = bad_bytes
    assert objects(landing) == expected
    printed = (simulated.stdout + corrupt.stdout).splitlines()
    assert printed == [f"wrote {landing}/{name}" for name in expected]
    assert no_local_gs_folder(gcs_home["cwd"])

    with local_instance() as instance:
        ingested = ingest_landed(build_definitions(), instance)
    assert len(ingested.succeeded) == 2 and {key.split("__")[0] for key in ingested.succeeded} == {
        name.rsplit(".", 1)[0] for name in expected if name != bad_name
    }
    [(bad_key, message)] = ingested.quarantined.items()
    assert bad_key.startswith(bad_name.rsplit(".", 1)[0]) and "wrong_type" in message

    # Quarantine on GCS holds the broken bytes and the reason; the landing zone keeps the good files.
    quarantined = objects(f"{gcs_home['prefix']}/quarantine")
    assert set(quarantined) == {f"{bad_key}/{bad_name}", f"{bad_key}/reason.json"}
    assert quarantined[f"{bad_key}/{bad_name}"] == bad_bytes
    assert set(objects(landing)) == set(expected) - {bad_name}

    status = cli(gcs_home, "status")
    assert status.returncode == 0, status.stderr[-3000:]
    assert "3 received, 1 quarantined" in status.stdout
    assert f"quarantined {bad_key}: {bad_name}: wrong_type" in status.stdout
    assert no_local_gs_folder(gcs_home["cwd"])


def test_demo_lands_its_files_on_gcs(gcs_home):
    """`mlops-assets demo` lands its history, daily and broken files through the same path
    (the training that follows is covered by test_cli.py and test_gcs_storage.py)."""
    from mlops_assets.console import Console
    from mlops_assets.demo import DAILY_FILES, land_demo_data

    printed = io.StringIO()
    land_demo_data(days=DAILY_FILES + 3, groups=2, corrupt=True, console=Console(stream=printed))
    landed = objects(f"{gcs_home['prefix']}/landing")
    assert len(landed) == 1 + DAILY_FILES + 1
    assert sum(name.startswith("corrupt_wrong_type_") for name in landed) == 1
    assert all(data for data in landed.values())
    [line] = printed.getvalue().splitlines()
    assert line.startswith(f"land      {len(landed)} demo files (one broken on purpose), 10 days x 2 subregions, in {gcs_home['prefix']}/landing ")
    assert no_local_gs_folder(gcs_home["cwd"])
