"""Every gs:// location against a real GCS emulator (gcp-storage-emulator, in memory, on
127.0.0.1): the landing zone listed through dagster-gcp's GCSResource, asset storage through
UPath/gcsfs, quarantine, and MLflow artifacts through google-cloud-storage.

The emulator (the `emulator` fixture of conftest.py) is started for this module and stopped at
its end. Without the package the tests skip with the reason; with MLOPS_REQUIRE_SERVICES=1 (CI)
that is a failure."""

from __future__ import annotations

import contextlib
import json
import uuid
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from mlops_assets.core.spec import load_spec
from mlops_assets_tests.builders import hourly_frame, to_csv_bytes
from mlops_assets_tests.integration.conftest import GCS_BUCKET as BUCKET, gcs_production_env

SPEC = load_spec()


@pytest.fixture
def bucket(emulator):
    from google.cloud import storage

    return storage.Client().bucket(BUCKET)


@pytest.fixture
def prefix(emulator) -> str:
    """A fresh gs:// prefix per test."""
    return f"gs://{BUCKET}/t{uuid.uuid4().hex[:10]}"


def _key(url: str) -> str:
    return url.split(f"gs://{BUCKET}/", 1)[1]


def _names(bucket, url: str) -> set[str]:
    return {blob.name for blob in bucket.client.list_blobs(BUCKET, prefix=_key(url) + "/")}


@contextlib.contextmanager
def production_on_gcs(tmp_path: Path, prefix: str):
    """(defs, instance) of the production deployment with landing, quarantine, storage and
    MLflow artifacts all under `prefix`; MLflow tracking in SQLite, Dagster in a test instance."""
    from mlops_assets.settings import local_instance_config

    home = tmp_path / "mlops"
    env = gcs_production_env(home, prefix)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.delenv("MLOPS_DATASET_SPEC", raising=False)
        from mlops_assets.definitions import build_definitions

        dagster_home = home / "dagster_home"
        dagster_home.mkdir(parents=True)
        with dg.instance_for_test(temp_dir=str(dagster_home), overrides=local_instance_config(dagster_home)) as instance:
            yield build_definitions(), instance


def _land(bucket, prefix: str, name: str, data: bytes) -> int:
    """Upload a landed file as a producer would; returns its generation."""
    blob = bucket.blob(f"{_key(prefix)}/landing/{name}")
    blob.upload_from_string(data)
    return blob.generation


def _evaluate(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None = None) -> dg.SensorResult:
    from mlops_assets.defs.ingestion.sensors import new_data_sensor

    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"landing": defs.resources["landing"]}) as context:
        result = new_data_sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def test_production_lists_a_gs_landing_zone_through_the_gcs_resource(tmp_path, prefix):
    from dagster_gcp import GCSResource

    from mlops_assets.resources.gcs_landing import GcsLandingZone

    with production_on_gcs(tmp_path, prefix) as (defs, _):
        landing = defs.resources["landing"]
    assert isinstance(landing, GcsLandingZone) and isinstance(landing.gcs, GCSResource)
    assert (landing.root, landing.archive_root) == (f"{prefix}/landing", f"{prefix}/storage/raw_files")


def test_new_data_sensor_on_gs_landing_keeps_a_cursor(tmp_path, prefix, bucket):
    day1 = to_csv_bytes(hourly_frame(SPEC, ["A", "B"], 24))
    with production_on_gcs(tmp_path, prefix) as (defs, instance):
        generation = _land(bucket, prefix, "day1.csv", day1)
        _land(bucket, prefix, "day1.csv.part", day1)  # still uploading under a temp name
        bucket.blob(f"{_key(prefix)}/landing/sub/nested.csv").upload_from_string(day1)  # not directly under the prefix
        first = _evaluate(defs, instance)
        assert [r.partition_key.split("__")[0] for r in first.run_requests] == ["day1"]
        key = first.run_requests[0].partition_key
        assert json.loads(first.cursor)["seen"] == {"day1.csv": [len(day1), str(generation), key]}
        # The bytes are archived on GCS under the batch key, with their manifest.
        assert {f"{_key(prefix)}/storage/raw_files/{key}/day1.csv", f"{_key(prefix)}/storage/raw_files/{key}/manifest.json"} <= _names(bucket, f"{prefix}/storage")
        assert bucket.blob(f"{_key(prefix)}/storage/raw_files/{key}/day1.csv").download_as_bytes() == day1

        # The requested ingestion runs (as the daemon would launch it); until it has, the batch
        # is pending and offered again under the same run key.
        assert [r.run_key for r in _evaluate(defs, instance, first.cursor).run_requests] == [key]
        assert defs.resolve_job_def("ingestion_job").execute_in_process(partition_key=key, instance=instance).success
        # With the cursor an unchanged, received object is not downloaded and received again:
        # its archived manifest, removed here, is not written back.
        manifest = bucket.blob(f"{_key(prefix)}/storage/raw_files/{key}/manifest.json")
        manifest.delete()
        assert _evaluate(defs, instance, first.cursor).run_requests == []
        assert not manifest.exists()
        # Re-delivered: the same bytes under the same name (a new generation) and under another name.
        regenerated = _land(bucket, prefix, "day1.csv", day1)
        assert regenerated != generation
        _land(bucket, prefix, "day1 copy.csv", day1)
        second = _evaluate(defs, instance, first.cursor)
        assert second.run_requests == []
        assert json.loads(second.cursor)["seen"]["day1.csv"][1] == str(regenerated)
        assert manifest.exists()  # the new generation was downloaded and hashed once

        _land(bucket, prefix, "day2.csv", to_csv_bytes(hourly_frame(SPEC, ["A", "B"], 24, start_hour=24)))
        third = _evaluate(defs, instance, second.cursor)
        assert [r.partition_key.split("__")[0] for r in third.run_requests] == ["day2"]
        assert len(instance.get_dynamic_partitions("batches")) == 2


def test_gs_landing_waits_until_an_object_settles(tmp_path, prefix, bucket):
    from mlops_assets.resources.gcs_landing import GcsLandingZone

    with production_on_gcs(tmp_path, prefix) as (defs, _):
        landing = defs.resources["landing"]
    _land(bucket, prefix, "fresh.csv", to_csv_bytes(hourly_frame(SPEC, ["A"], 24)))
    fields = {name: getattr(landing, name) for name in GcsLandingZone.model_fields}
    patient = GcsLandingZone(**{**fields, "settle_seconds": 3600.0})
    assert patient.list_files() == []
    assert [stat.name for stat in landing.list_files()] == ["fresh.csv"]


def test_ingestion_on_gcs_stores_clean_batches_and_quarantines_a_bad_one(tmp_path, prefix, bucket):
    from mlops_assets.runner import ingest_landed

    good = hourly_frame(SPEC, ["A", "B"], 48)
    bad = hourly_frame(SPEC, ["A"], 24, start_hour=48).drop(SPEC.target.column)
    with production_on_gcs(tmp_path, prefix) as (defs, instance):
        _land(bucket, prefix, "good.csv", to_csv_bytes(good))
        _land(bucket, prefix, "bad.csv", to_csv_bytes(bad))
        summary = ingest_landed(defs, instance)
        assert len(summary.succeeded) == 1 and len(summary.quarantined) == 1
        good_key, bad_key = summary.succeeded[0], next(iter(summary.quarantined))
        assert SPEC.target.column in summary.quarantined[bad_key]

        stored = _names(bucket, f"{prefix}/storage")
        assert {f"{_key(prefix)}/storage/raw_load/{good_key}.parquet", f"{_key(prefix)}/storage/clean_load/{good_key}.parquet"} <= stored
        assert not any(bad_key in name and "clean_load" in name for name in stored)
        clean = pl.read_parquet(bucket.blob(f"{_key(prefix)}/storage/clean_load/{good_key}.parquet").download_as_bytes())
        assert clean.height == good.height

        quarantined = _names(bucket, f"{prefix}/quarantine")
        assert quarantined == {f"{_key(prefix)}/quarantine/{bad_key}/bad.csv", f"{_key(prefix)}/quarantine/{bad_key}/reason.json"}
        reason = json.loads(bucket.blob(f"{_key(prefix)}/quarantine/{bad_key}/reason.json").download_as_bytes())
        assert reason["batch"] == bad_key and SPEC.target.column in json.dumps(reason["reason"])
        assert bucket.blob(f"{_key(prefix)}/quarantine/{bad_key}/bad.csv").download_as_bytes() == to_csv_bytes(bad)
        # The bad file left the landing zone; the good one stays where it landed.
        assert _names(bucket, f"{prefix}/landing") == {f"{_key(prefix)}/landing/good.csv"}
        check = instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(dg.AssetKey("clean_load"), "valid_batch"))
        assert check is not None and check.event.asset_check_evaluation.passed is False


@dg.asset
def frame_value() -> pl.DataFrame:
    return pl.DataFrame({"group": ["A", "B", "A"], "load": [1.5, None, 3.25], "at": [1, 2, 3]})


@dg.asset
def document_value() -> dict:
    return {"verdict": "pass", "checks": [{"name": "rmse", "value": 0.5}]}


@dg.asset
def combined(frame_value: pl.DataFrame, document_value: dict) -> dict:
    return {"rows": frame_value.height, "load_sum": frame_value["load"].sum(), "verdict": document_value["verdict"]}


def test_table_storage_round_trips_frames_and_documents_on_gcs(prefix, bucket, emulator):
    from mlops_assets.resources.tables import TableStorage

    storage = TableStorage(base_dir=f"{prefix}/storage")
    with dg.instance_for_test() as instance:
        result = dg.materialize([frame_value, document_value, combined], resources={"io_manager": storage}, instance=instance)
    assert result.success
    assert result.output_for_node("combined") == {"rows": 3, "load_sum": 4.75, "verdict": "pass"}
    root = _key(prefix) + "/storage"
    assert _names(bucket, f"{prefix}/storage") == {f"{root}/frame_value.parquet", f"{root}/document_value.json", f"{root}/combined.json"}
    assert pl.read_parquet(bucket.blob(f"{root}/frame_value.parquet").download_as_bytes()).equals(frame_value())
    assert json.loads(bucket.blob(f"{root}/document_value.json").download_as_bytes()) == document_value()
    metadata = result.asset_materializations_for_node("frame_value")[0].metadata
    assert metadata["path"].value == f"{prefix}/storage/frame_value.parquet" and metadata["dagster/row_count"].value == 3


def test_a_failed_write_on_gcs_leaves_the_previous_value_whole(prefix, bucket, emulator):
    from mlops_assets.resources.tables import TableStorage

    storage = TableStorage(base_dir=f"{prefix}/storage")
    root = _key(prefix) + "/storage"

    @dg.asset(name="frame_value")
    def unwritable() -> pl.DataFrame:
        return pl.DataFrame({"group": ["A"], "thing": pl.Series([object()], dtype=pl.Object)})  # Parquet cannot hold it

    with dg.instance_for_test() as instance:
        assert dg.materialize([frame_value], resources={"io_manager": storage}, instance=instance).success
        before = bucket.get_blob(f"{root}/frame_value.parquet")
        failed = dg.materialize([unwritable], resources={"io_manager": storage}, instance=instance, raise_on_error=False)
        assert not failed.success
        after = bucket.get_blob(f"{root}/frame_value.parquet")
        assert after.generation == before.generation  # not rewritten, not truncated
        assert _names(bucket, f"{prefix}/storage") == {f"{root}/frame_value.parquet"}  # no partial or temp object
        # The kept value still loads as the input of a downstream asset.
        again = dg.materialize(
            [frame_value, document_value, combined], selection=["document_value", "combined"], resources={"io_manager": storage}, instance=instance
        )
        assert again.output_for_node("combined") == {"rows": 3, "load_sum": 4.75, "verdict": "pass"}


@pytest.mark.slow
def test_training_job_with_landing_storage_and_artifacts_on_gcs(tmp_path, prefix, bucket):
    """Acceptance: the production deployment with every location on gs:// ingests, trains,
    registers and promotes; the champion loads back from gs:// through pyfunc and predicts."""
    import mlflow
    import numpy as np

    from mlops_assets.core.models.data import to_split
    from mlops_assets.runner import ingest_landed, run_job

    with production_on_gcs(tmp_path, prefix) as (defs, instance):
        _land(bucket, prefix, "history.csv", to_csv_bytes(hourly_frame(SPEC, ["A", "B", "C"], 24 * 30)))
        assert len(ingest_landed(defs, instance).succeeded) == 1
        result = run_job(defs, "training_job", instance)
        assert result.success
        tracking = defs.resources["mlflow_tracking"]
        assert tracking.registry().alias_version("champion") == "1"
        version = tracking.client().get_model_version_by_alias(tracking.registered_model, "champion")
        run = tracking.client().get_run(version.run_id)
        assert run.info.artifact_uri.startswith(f"{prefix}/mlartifacts/load_forecasting/")
        artifacts = _names(bucket, f"{prefix}/mlartifacts")
        assert any(name.endswith("/MLmodel") for name in artifacts)

        model = mlflow.pyfunc.load_model(f"models:/{tracking.registered_model}@champion")
        test_set = pl.read_parquet(bucket.blob(f"{_key(prefix)}/storage/test_set.parquet").download_as_bytes())
        split = to_split(test_set, SPEC)
        predictions = np.asarray(model.predict(split.X), float)
        assert predictions.shape == (test_set.height,) and np.isfinite(predictions).all()
        assert f"{_key(prefix)}/storage/load_history.parquet" in _names(bucket, f"{prefix}/storage")
