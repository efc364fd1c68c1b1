"""Bursts and re-delivery: 200 files landing at once, the same bytes landing twice, a file
changed after landing. `new_data_sensor` (evaluated with build_sensor_context) decides what is
new; each request is executed as one `ingestion_job` run. Every batch is ingested exactly once
and the rows reconcile: rows landed = rows stored + rows rejected, each rejection with a reason."""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from mlops_assets.core.spec import load_spec
from mlops_assets.defs.ingestion.sensors import new_data_sensor
from mlops_assets.defs.partitions import BATCHES
from mlops_assets.runner import quiet_run_config
from mlops_assets_tests.builders import hourly_frame, to_csv_bytes
from mlops_assets_tests.pipeline import local_platform
from mlops_assets_tests.reliability.scratch import memory_backed_dir
from mlops_assets_tests.reliability.counts import record

pytestmark = pytest.mark.slow

SPEC = load_spec()
Y = SPEC.target.column
BURST = 200
BROKEN = {13, 57, 101, 150, 199}  # a value that is not a number: the batch is quarantined
DUPLICATED = {4, 44, 88, 144, 188}  # two rows sent twice: dropped as duplicates, counted


def burst_file(i: int) -> bytes:
    frame = hourly_frame(SPEC, ["A", "B"], 3, start_hour=3 * i, seed=i)
    if i in DUPLICATED:
        frame = pl.concat([frame, frame.head(2)])
    data = to_csv_bytes(frame)
    if i in BROKEN:
        text = pl.read_csv(data, infer_schema=False)
        first_row = pl.int_range(pl.len()) == 0
        data = text.with_columns(pl.when(first_row).then(pl.lit("oops")).otherwise(pl.col(Y)).alias(Y)).write_csv().encode()
    return data


def data_rows(data: bytes) -> int:
    return data.count(b"\n") - 1


def evaluate(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"landing": defs.resources["landing"]}) as context:
        result = new_data_sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def execute(defs: dg.Definitions, instance: dg.DagsterInstance, requests: list[dg.RunRequest]) -> dict[str, bool]:
    job = defs.resolve_job_def("ingestion_job")
    return {
        r.partition_key: job.execute_in_process(partition_key=r.partition_key, instance=instance, tags=r.tags, raise_on_error=False, run_config=quiet_run_config()).success
        for r in requests
    }


def reconcile(home: Path, instance: dg.DagsterInstance, outcomes: dict[str, bool], landed_rows: dict[str, int]) -> dict:
    """Rows stored (clean_load partitions) and rows rejected by reason, per batch."""
    stored, rejected = 0, Counter()
    for key, ok in outcomes.items():
        if not ok:
            reason = json.loads((home / "quarantine" / key / "reason.json").read_text())["reason"]
            rejected[f"quarantined:{reason['kind']}"] += landed_rows[key]
            continue
        stored += pl.read_parquet(home / "storage" / "clean_load" / f"{key}.parquet").height
        records = instance.fetch_materializations(dg.AssetRecordsFilter(dg.AssetKey("clean_load"), asset_partitions=[key]), limit=1).records
        meta = records[0].asset_materialization.metadata
        rejected["duplicate_dropped"] += meta["exact_duplicates_dropped"].value + meta["conflicting_duplicates_dropped"].value
    return {"landed": sum(landed_rows.values()), "stored": stored, "rejected": dict(rejected)}


@pytest.fixture
def platform():
    """(defs, instance, MLOPS_HOME), the home in memory where possible (see memory_backed_dir)."""
    home = memory_backed_dir("mlops_burst_") / "mlops"
    try:
        with local_platform(home) as (defs, instance):
            yield defs, instance, home
    finally:
        shutil.rmtree(home.parent, ignore_errors=True)


def test_burst_redelivery_and_changed_file_are_each_ingested_once(platform):
    defs, instance, mlops_home = platform
    landing_dir = mlops_home / "landing"
    contents = {f"load_{i:03d}.csv": burst_file(i) for i in range(BURST)}
    for name, data in contents.items():
        (landing_dir / name).write_bytes(data)
    (landing_dir / "load_000 (copy).csv").write_bytes(contents["load_000.csv"])  # same bytes, another name

    first = evaluate(defs, instance, None)
    assert len(first.run_requests) == BURST and len({r.run_key for r in first.run_requests}) == BURST
    assert len(instance.get_dynamic_partitions(BATCHES)) == BURST
    started = time.perf_counter()
    outcomes = execute(defs, instance, first.run_requests)
    seconds = time.perf_counter() - started
    keys = {r.tags["mlops/landed_file"]: r.partition_key for r in first.run_requests}
    assert sorted(keys) == sorted(contents)
    assert {name for name, key in keys.items() if not outcomes[key]} == {f"load_{i:03d}.csv" for i in BROKEN}

    time.sleep(0.01)
    (landing_dir / "load_001.csv").write_bytes(contents["load_001.csv"])  # re-delivered: same bytes, new mtime
    assert evaluate(defs, instance, first.cursor).run_requests == []
    assert evaluate(defs, instance, None).run_requests == []  # a daemon restart lost the cursor: still nothing new

    changed = to_csv_bytes(hourly_frame(SPEC, ["A", "B"], 4, start_hour=3 * 7, seed=7))  # one more hour than landed
    (landing_dir / "load_007.csv").write_bytes(changed)
    after_change = evaluate(defs, instance, first.cursor)
    assert len(after_change.run_requests) == 1
    new_key = after_change.run_requests[0].partition_key
    assert new_key != keys["load_007.csv"] and new_key.startswith("load_007__")
    outcomes.update(execute(defs, instance, after_change.run_requests))
    assert outcomes[new_key]

    runs = Counter(run.tags.get("dagster/partition") for run in instance.get_runs(filters=dg.RunsFilter(job_name="ingestion_job")))
    assert len(runs) == BURST + 1 and set(runs.values()) == {1}, "a batch ran twice or never"

    landed_rows = {key: data_rows(contents[name]) for name, key in keys.items()} | {new_key: data_rows(changed)}
    rows = reconcile(mlops_home, instance, outcomes, landed_rows)
    assert rows["landed"] == rows["stored"] + sum(rows["rejected"].values())
    assert rows["rejected"] == {"quarantined:wrong_type": 6 * len(BROKEN), "duplicate_dropped": 2 * len(DUPLICATED)}
    record(
        "bursts",
        files_landed=len(contents) + 3,
        batches=len(outcomes),
        runs=sum(runs.values()),
        redelivered_ignored=2,
        changed_file_new_batch=1,
        rows_landed=rows["landed"],
        rows_stored=rows["stored"],
        rows_rejected=sum(rows["rejected"].values()),
        rejected_by_reason=rows["rejected"],
        burst_ingest_seconds=round(seconds, 1),
    )
