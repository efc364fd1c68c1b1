"""A failed ingestion that is not a data error is retried, never quarantined (`ingest_landed`,
the path `mlops-assets run` and `demo` take)."""

import dagster as dg

from mlops_assets.core.ingest import batch_key, sha256_hex
from mlops_assets.core.spec import load_spec
from mlops_assets.runner import ingest_landed
from mlops_assets_tests.builders import hourly_frame, to_csv_bytes

SPEC = load_spec()


def test_storage_failure_leaves_the_batch_pending_and_the_next_look_ingests_it(defs, instance, landing_dir, mlops_home):
    data = to_csv_bytes(hourly_frame(SPEC, ["A", "B"], 24))
    (landing_dir / "day1.csv").write_bytes(data)
    key = batch_key("day1.csv", sha256_hex(data))
    blocker = mlops_home / "storage" / "clean_load" / f"{key}.parquet"
    blocker.mkdir(parents=True)  # the cleaned batch cannot be stored: an OSError, as on a full disk

    failed = ingest_landed(defs, instance)
    assert failed.succeeded == [] and failed.quarantined == {}
    assert list(failed.failed) == [key] and failed.failed[key].startswith("IsADirectoryError: ")
    assert (landing_dir / "day1.csv").exists() and not (mlops_home / "quarantine" / key).exists()

    again = ingest_landed(defs, instance)  # still broken: tried again, still pending
    assert list(again.failed) == [key] and again.duplicates == []

    blocker.rmdir()
    done = ingest_landed(defs, instance)
    assert done.succeeded == [key] and done.failed == {}
    assert instance.get_materialized_partitions(dg.AssetKey("clean_load")) == {key}
    assert ingest_landed(defs, instance).duplicates == ["day1.csv"]  # received now: never again


def test_failure_before_the_archive_is_reported_per_file(defs, instance, landing_dir, mlops_home):
    (landing_dir / "day1.csv").write_bytes(to_csv_bytes(hourly_frame(SPEC, ["A"], 24)))
    archive = mlops_home / "storage" / "raw_files"
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_text("not a folder")  # receiving cannot archive the bytes

    summary = ingest_landed(defs, instance)
    assert list(summary.failed) == ["day1.csv"] and not summary.succeeded and not summary.quarantined
    archive.unlink()
    assert len(ingest_landed(defs, instance).succeeded) == 1


def test_run_left_started_by_a_killed_cli_does_not_block_the_retry(defs, instance, landing_dir):
    import os
    import socket
    import subprocess

    data = to_csv_bytes(hourly_frame(SPEC, ["A"], 24))
    (landing_dir / "day1.csv").write_bytes(data)
    key = batch_key("day1.csv", sha256_hex(data))
    instance.add_dynamic_partitions("batches", [key])
    job = defs.resolve_job_def("ingestion_job")
    finished = subprocess.Popen(["true"])
    finished.wait()  # its pid names no process now
    alive = {"dagster/partition": key, "mlops/cli_pid": str(os.getpid()), "mlops/cli_host": socket.gethostname()}
    running = instance.create_run_for_job(job, tags=alive, status=dg.DagsterRunStatus.STARTED)
    assert ingest_landed(defs, instance).in_progress == [key]  # a live process is still on it

    instance.report_run_failed(running)
    killed = {**alive, "mlops/cli_pid": str(finished.pid)}
    instance.create_run_for_job(job, tags=killed, status=dg.DagsterRunStatus.STARTED)  # kill -9: status never updated
    assert ingest_landed(defs, instance).succeeded == [key]
