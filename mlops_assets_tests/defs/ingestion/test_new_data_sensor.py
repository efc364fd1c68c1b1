import json
import os
import time

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
    assert all(r.job_name in (None, "ingestion_job") for r in result.run_requests)

    land(landing_dir, "day3.csv", start_hour=48)
    again = evaluate(defs, instance, result.cursor)
    assert [r.partition_key.split("__")[0] for r in again.run_requests] == ["day3"]


def test_nothing_new_means_no_request_even_after_a_restart(defs, instance, landing_dir):
    land(landing_dir, "day1.csv")
    first = evaluate(defs, instance)
    assert len(first.run_requests) == 1
    assert evaluate(defs, instance, first.cursor).run_requests == []
    # A restarted daemon has lost the cursor, but the partitions remember what was ingested.
    assert evaluate(defs, instance, None).run_requests == []


def test_redelivered_file_is_not_ingested_twice(defs, instance, landing_dir):
    data = land(landing_dir, "day1.csv")
    first = evaluate(defs, instance)
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
