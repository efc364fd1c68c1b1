import json
import os
import time
from pathlib import Path

import dagster as dg

from mlops_assets.core.spec import load_spec
from mlops_assets.defs.ingestion.sensors import new_data_sensor
from mlops_assets.defs.partitions import BATCHES
from mlops_assets_tests.builders import hourly_frame, to_csv_bytes

SPEC = load_spec()


def evaluate(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None = None) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"landing": defs.resources["landing"]}) as context:
        result = new_data_sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def launch(defs: dg.Definitions, instance: dg.DagsterInstance, result: dg.SensorResult) -> list[bool]:
    """What the daemon does with the requests: one ingestion run each, tagged with its run key."""
    job = defs.resolve_job_def("ingestion_job")
    return [
        job.execute_in_process(
            partition_key=r.partition_key, instance=instance, raise_on_error=False,
            tags={**r.tags, "dagster/run_key": r.run_key},
        ).success
        for r in result.run_requests
    ]


def land(landing_dir, name: str, hours: int = 24, start_hour: int = 0) -> bytes:
    data = to_csv_bytes(hourly_frame(SPEC, ["A", "B"], hours, start_hour=start_hour))
    (landing_dir / name).write_bytes(data)
    return data


def test_one_run_request_per_new_file(defs, instance, landing_dir):
    land(landing_dir, "day1.csv")
    land(landing_dir, "day2.csv", start_hour=24)
    result = evaluate(defs, instance)
    keys = [r.partition_key for r in result.run_requests]
    assert len(keys) == 2 and len(set(keys)) == 2
    assert [r.run_key for r in result.run_requests] == keys
    assert set(instance.get_dynamic_partitions(BATCHES)) == set(keys)
    assert [r.job_name or new_data_sensor.job_name for r in result.run_requests] == ["ingestion_job", "ingestion_job"]
    assert launch(defs, instance, result) == [True, True]

    land(landing_dir, "day3.csv", start_hour=48)
    again = evaluate(defs, instance, result.cursor)
    assert [r.partition_key.split("__")[0] for r in again.run_requests] == ["day3"]


def test_nothing_new_means_no_request_even_after_a_restart(defs, instance, landing_dir):
    land(landing_dir, "day1.csv")
    first = evaluate(defs, instance)
    assert len(first.run_requests) == 1 and launch(defs, instance, first) == [True]
    assert evaluate(defs, instance, first.cursor).run_requests == []
    # A restarted daemon has lost the cursor, but the partitions remember what was ingested.
    assert evaluate(defs, instance, None).run_requests == []


def test_redelivered_file_is_not_ingested_twice(defs, instance, landing_dir):
    data = land(landing_dir, "day1.csv")
    first = evaluate(defs, instance)
    launch(defs, instance, first)
    time.sleep(0.01)
    (landing_dir / "day1.csv").write_bytes(data)  # same bytes, new mtime
    (landing_dir / "day1 (copy).csv").write_bytes(data)  # same bytes, another name
    second = evaluate(defs, instance, first.cursor)
    assert second.run_requests == []
    assert len(instance.get_dynamic_partitions(BATCHES)) == 1


def test_changed_file_is_a_new_batch(defs, instance, landing_dir):
    land(landing_dir, "day1.csv")
    first = evaluate(defs, instance)
    land(landing_dir, "day1.csv", hours=25)
    second = evaluate(defs, instance, first.cursor)
    assert len(second.run_requests) == 1
    assert second.run_requests[0].partition_key != first.run_requests[0].partition_key


def test_partial_hidden_and_unsettled_files_wait(defs, instance, landing_dir, monkeypatch):
    land(landing_dir, "day1.csv.part")
    land(landing_dir, ".day1.csv")
    land(landing_dir, "notes.txt")
    assert evaluate(defs, instance).run_requests == []
    monkeypatch.setenv("MLOPS_SETTLE_SECONDS", "60")
    from mlops_assets.definitions import build_definitions

    patient = build_definitions("local")
    land(landing_dir, "fresh.csv")
    assert evaluate(patient, instance).run_requests == []
    old = time.time() - 120
    os.utime(landing_dir / "fresh.csv", (old, old))
    assert len(evaluate(patient, instance).run_requests) == 1


def test_cursor_is_json_with_the_files_seen(defs, instance, landing_dir):
    land(landing_dir, "day1.csv")
    cursor = json.loads(evaluate(defs, instance).cursor)
    assert list(cursor["seen"]) == ["day1.csv"]


def break_clean_storage(home, key: str) -> Path:
    """A folder where the cleaned batch's file goes: storing it fails with an OSError, as on a
    full or read-only disk (not a data error)."""
    blocker = home / "storage" / "clean_load" / f"{key}.parquet"
    blocker.mkdir(parents=True)
    return blocker


def test_batch_whose_run_failed_is_requested_again_until_it_is_ingested(defs, instance, landing_dir, mlops_home):
    land(landing_dir, "day1.csv")
    first = evaluate(defs, instance)
    key = first.run_requests[0].partition_key
    blocker = break_clean_storage(mlops_home, key)
    assert launch(defs, instance, first) == [False]
    assert (landing_dir / "day1.csv").exists() and not (mlops_home / "quarantine" / key).exists()

    retry = evaluate(defs, instance, first.cursor)  # file unchanged: known from the cursor, still pending
    assert [(r.partition_key, r.run_key) for r in retry.run_requests] == [(key, f"{key}#retry1")]
    assert launch(defs, instance, retry) == [False]
    second = evaluate(defs, instance, retry.cursor)
    assert [r.run_key for r in second.run_requests] == [f"{key}#retry2"]  # a new run key per attempt

    blocker.rmdir()
    assert launch(defs, instance, second) == [True]
    assert evaluate(defs, instance, second.cursor).run_requests == []
    assert evaluate(defs, instance, None).run_requests == []
    assert instance.get_materialized_partitions(dg.AssetKey("clean_load")) == {key}


def test_batch_with_a_run_in_progress_is_not_requested_twice(defs, instance, landing_dir):
    land(landing_dir, "day1.csv")
    first = evaluate(defs, instance)
    key = first.run_requests[0].partition_key
    job = defs.resolve_job_def("ingestion_job")
    tags = {"dagster/partition": key, "dagster/run_key": key}
    run = instance.create_run_for_job(job, tags=tags, status=dg.DagsterRunStatus.STARTED)
    assert evaluate(defs, instance, first.cursor).run_requests == []
    assert evaluate(defs, instance, None).run_requests == []
    instance.report_run_failed(run)
    assert [r.run_key for r in evaluate(defs, instance, first.cursor).run_requests] == [f"{key}#retry1"]


def test_quarantined_batch_is_received_and_not_retried(defs, instance, landing_dir, mlops_home):
    (landing_dir / "bad.csv").write_bytes(b"period,subregion\n2024-01-01T00:00:00+00:00,A\n")
    first = evaluate(defs, instance)
    assert launch(defs, instance, first) == [False]
    key = first.run_requests[0].partition_key
    assert (mlops_home / "quarantine" / key / "reason.json").exists()
    (landing_dir / "bad again.csv").write_bytes(b"period,subregion\n2024-01-01T00:00:00+00:00,A\n")
    assert evaluate(defs, instance, first.cursor).run_requests == []
    assert evaluate(defs, instance, None).run_requests == []
