"""A bad batch through the ingestion job: the failed check, the failed step, the run log and
the quarantine record all carry the same reason, and a quarantine is final (a retry policy
does not run the step again: the bytes would not change)."""

import json

import dagster as dg
import polars as pl
import pytest

from mlops_assets.core.spec import load_spec
from mlops_assets.defs.partitions import BATCHES, batches
from mlops_assets_tests.builders import hourly_frame, to_csv_bytes

SPEC = load_spec()
BAD_ROWS = 60


def land_bad_batch(defs, instance, landing_dir) -> str:
    """60 rows whose target is text: one `wrong_type` error naming every row."""
    frame = hourly_frame(SPEC, ["A"], BAD_ROWS).with_columns(pl.lit("n/a").alias(SPEC.target.column))
    (landing_dir / "bad.csv").write_bytes(to_csv_bytes(frame))
    key = defs.resources["landing"].receive("bad.csv").key
    instance.add_dynamic_partitions(BATCHES, [key])
    return key


def ingest(job: dg.JobDefinition, instance, key: str) -> dg.ExecuteInProcessResult:
    return job.execute_in_process(partition_key=key, instance=instance, raise_on_error=False)


@pytest.fixture
def quarantined(defs, instance, landing_dir):
    key = land_bad_batch(defs, instance, landing_dir)
    return key, ingest(defs.resolve_job_def("ingestion_job"), instance, key)


def test_the_check_step_log_and_record_carry_one_reason(quarantined, instance, mlops_home, landing_dir):
    key, result = quarantined
    folder = mlops_home / "quarantine" / key
    record = json.loads((folder / "reason.json").read_text())
    reason = record["reason"]
    assert (reason["file"], reason["kind"], reason["columns"], reason["row_count"]) == ("bad.csv", "wrong_type", [SPEC.target.column], BAD_ROWS)
    message = reason["summary"]
    assert message.startswith("bad.csv: wrong_type: values are not numbers")
    assert not (landing_dir / "bad.csv").exists() and (folder / "bad.csv").exists()
    assert instance.get_dynamic_partitions(BATCHES) == []  # not part of the dataset: no partition missing forever

    readable, check = result.get_asset_check_evaluations()
    assert (readable.asset_key, readable.check_name, readable.passed) == (dg.AssetKey("raw_load"), "readable", True)
    assert (check.asset_key, check.check_name, check.passed, check.description) == (dg.AssetKey("clean_load"), "valid_batch", False, message)
    metadata = {name: value.value for name, value in check.metadata.items()}
    assert metadata == {
        "file": "bad.csv",
        "error_kind": "wrong_type",
        "reason": message,
        "columns": SPEC.target.column,
        "rows": ", ".join(str(row) for row in reason["rows"][:50]),
        "row_count": BAD_ROWS,
        "quarantine": str(folder),
    }
    assert len(reason["rows"]) == BAD_ROWS and metadata["rows"].count(", ") == 49

    [failure] = result.get_step_failure_events()
    assert failure.step_key == "clean_load"
    user_failure = failure.step_failure_data.user_failure_data
    assert user_failure.description == f"quarantined: {message}"
    assert {name: value.value for name, value in user_failure.metadata.items()} == metadata
    # An outcome, said once at WARNING: the failed step carries the same message, not a second ERROR line.
    logged = [(e.level, e.message) for e in instance.all_logs(result.run_id) if e.step_key == "clean_load" and e.user_message and not e.dagster_event]
    assert (30, f"batch {key} quarantined in {folder}: {message}") in logged
    assert not [message for level, message in logged if level >= 40]


def test_a_batch_without_rows_or_columns_says_so(defs, instance, landing_dir):
    (landing_dir / "empty.csv").write_bytes(b"")
    key = defs.resources["landing"].receive("empty.csv").key
    instance.add_dynamic_partitions(BATCHES, [key])
    result = ingest(defs.resolve_job_def("ingestion_job"), instance, key)
    [check] = result.get_asset_check_evaluations()
    assert (check.asset_key, check.check_name, check.passed) == (dg.AssetKey("raw_load"), "readable", False)
    assert (check.metadata["columns"].value, check.metadata["rows"].value, check.metadata["row_count"].value) == ("-", "-", 0)


def test_every_missing_column_is_named(defs, instance, landing_dir):
    frame = hourly_frame(SPEC, ["A"], 24).drop(SPEC.target.column, SPEC.numeric_features[0].column)
    (landing_dir / "narrow.csv").write_bytes(to_csv_bytes(frame))
    key = defs.resources["landing"].receive("narrow.csv").key
    instance.add_dynamic_partitions(BATCHES, [key])
    result = ingest(defs.resolve_job_def("ingestion_job"), instance, key)
    check = result.get_asset_check_evaluations()[-1]
    assert check.metadata["error_kind"].value == "missing_columns"
    assert sorted(check.metadata["columns"].value.split(", ")) == sorted([SPEC.target.column, SPEC.numeric_features[0].column])


def test_a_quarantine_is_final_even_under_a_retry_policy(defs, instance, landing_dir):
    retrying = dg.define_asset_job(
        "retrying_ingestion", selection=dg.AssetSelection.groups("ingestion"), partitions_def=batches,
        op_retry_policy=dg.RetryPolicy(max_retries=2),
    )
    job = dg.Definitions.merge(defs, dg.Definitions(jobs=[retrying])).resolve_job_def("retrying_ingestion")
    key = land_bad_batch(defs, instance, landing_dir)
    result = ingest(job, instance, key)
    assert not result.success
    assert [e.step_key for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"] == []
    assert [e.step_key for e in result.get_step_failure_events()] == ["clean_load"]


def test_only_the_quarantined_batch_leaves_the_partitions(defs, instance, landing_dir):
    (landing_dir / "good.csv").write_bytes(to_csv_bytes(hourly_frame(SPEC, ["A"], 24)))
    good = defs.resources["landing"].receive("good.csv").key
    instance.add_dynamic_partitions(BATCHES, [good])
    bad = land_bad_batch(defs, instance, landing_dir)
    job = defs.resolve_job_def("ingestion_job")
    assert ingest(job, instance, good).success and not ingest(job, instance, bad).success
    assert instance.get_dynamic_partitions(BATCHES) == [good]
