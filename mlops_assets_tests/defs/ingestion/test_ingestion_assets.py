import json

import dagster as dg
import polars as pl

from mlops_assets.core.spec import load_spec
from mlops_assets.runner import ingest_landed
from mlops_assets_tests.builders import hourly_frame, to_csv_bytes

SPEC = load_spec()


def check_evaluation(instance: dg.DagsterInstance, asset: str, check: str):
    key = dg.AssetCheckKey(dg.AssetKey(asset), check)
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    return record.event.dagster_event.event_specific_data


def test_good_batch_is_parsed_archived_and_cleaned(defs, instance, landing_dir, mlops_home):
    frame = hourly_frame(SPEC, ["A", "B"], 24)
    data = to_csv_bytes(pl.concat([frame, frame.head(3)]))  # three re-sent rows
    (landing_dir / "day1.csv").write_bytes(data)
    summary = ingest_landed(defs, instance)
    assert len(summary.succeeded) == 1 and not summary.quarantined
    key = summary.succeeded[0]

    raw = instance.get_latest_materialization_event(dg.AssetKey("raw_load")).asset_materialization
    assert raw.partition == key and raw.metadata["bytes"].value == len(data)
    archived = mlops_home / "storage" / "raw_files" / key / "day1.csv"
    assert archived.read_bytes() == data

    clean = instance.get_latest_materialization_event(dg.AssetKey("clean_load")).asset_materialization
    assert clean.metadata["dagster/row_count"].value == 48
    assert clean.metadata["exact_duplicates_dropped"].value == 3
    schema = clean.metadata["dagster/column_schema"].value
    assert [c.name for c in schema.columns] == SPEC.required_columns
    stored = pl.read_parquet(mlops_home / "storage" / "clean_load" / f"{key}.parquet")
    assert stored.height == 48 and stored.schema[SPEC.timestamp] == pl.Datetime("us", "UTC")
    assert check_evaluation(instance, "clean_load", "valid_batch").passed


def test_bad_batch_is_quarantined_and_others_go_on(defs, instance, landing_dir, mlops_home):
    good = to_csv_bytes(hourly_frame(SPEC, ["A"], 24))
    bad_frame = hourly_frame(SPEC, ["A"], 24, start_hour=24).with_columns(pl.col("temperature_c").cast(pl.String))
    bad_frame = bad_frame.with_columns(
        pl.when(pl.int_range(pl.len()).is_in([4, 9])).then(pl.lit("sensor-fault")).otherwise(pl.col("temperature_c")).alias("temperature_c")
    )
    bad = to_csv_bytes(bad_frame)
    (landing_dir / "good.csv").write_bytes(good)
    (landing_dir / "bad.csv").write_bytes(bad)
    summary = ingest_landed(defs, instance)
    assert len(summary.succeeded) == 1 and len(summary.quarantined) == 1
    key, message = next(iter(summary.quarantined.items()))
    assert "bad.csv" in message and "temperature_c" in message

    folder = mlops_home / "quarantine" / key
    assert (folder / "bad.csv").read_bytes() == bad
    reason = json.loads((folder / "reason.json").read_text())["reason"]
    assert reason["file"] == "bad.csv" and reason["kind"] == "wrong_type"
    assert reason["rows"] == [5, 10] and reason["columns"] == ["temperature_c"]
    assert not (landing_dir / "bad.csv").exists() and (landing_dir / "good.csv").exists()

    evaluation = check_evaluation(instance, "clean_load", "valid_batch")
    assert not evaluation.passed and "temperature_c" in evaluation.metadata["reason"].value
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": key}))
    assert [r.status for r in runs] == [dg.DagsterRunStatus.FAILURE]
    clean_partitions = instance.get_materialized_partitions(dg.AssetKey("clean_load"))
    assert key not in clean_partitions and len(clean_partitions) == 1


def test_unreadable_file_fails_the_raw_check(defs, instance, landing_dir, mlops_home):
    (landing_dir / "latin1.csv").write_bytes(b"period,subregion\n2024-01-01T00:00:00+00:00,Z\xfcrich\n")
    summary = ingest_landed(defs, instance)
    key = next(iter(summary.quarantined))
    assert "not UTF-8" in summary.quarantined[key]
    assert not check_evaluation(instance, "raw_load", "readable").passed
    assert (mlops_home / "quarantine" / key / "reason.json").exists()


def test_missing_value_tokens_are_counted_not_quarantined(defs, instance, landing_dir):
    frame = hourly_frame(SPEC, ["A"], 48).with_columns(pl.col("load_mw", "wind_speed_ms").cast(pl.String))
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("NA")).otherwise(pl.col("load_mw")).alias("load_mw"),
        pl.when(pl.int_range(pl.len()) >= 8).then(pl.lit("null")).otherwise(pl.col("wind_speed_ms")).alias("wind_speed_ms"),
    )
    (landing_dir / "with_na.csv").write_bytes(to_csv_bytes(frame))
    summary = ingest_landed(defs, instance)
    assert len(summary.succeeded) == 1 and not summary.quarantined and not summary.failed
    clean = instance.get_latest_materialization_event(dg.AssetKey("clean_load")).asset_materialization
    assert clean.metadata["missing_tokens"].value == {"load_mw": 1, "wind_speed_ms": 40}
    assert clean.metadata["mostly_missing"].value == {"wind_speed_ms": round(40 / 48, 4)}
