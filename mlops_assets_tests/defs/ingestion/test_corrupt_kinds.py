"""Every kind of broken file `simulate --corrupt` writes: a clear error naming the file,
rows and columns, bytes kept in quarantine, and the other batches untouched."""

import json

import dagster as dg
import pytest

from mlops_assets.core.simulate import CORRUPT_KINDS, SimulationConfig, write_batches, write_corrupt
from mlops_assets.core.spec import load_spec
from mlops_assets.runner import ingest_landed

SPEC = load_spec()
EXPECTED = {
    # corrupt kind: (error kind, failing check, names a column?, names rows?)
    "missing_column": ("missing_columns", "valid_batch", True, False),
    "wrong_type": ("wrong_type", "valid_batch", True, True),
    "empty": ("empty", "readable", False, False),
    "header_only": ("no_rows", "readable", True, False),
    "truncated": ("truncated", "readable", False, True),
    "not_utf8": ("not_utf8", "readable", False, True),
    "all_null_target": ("all_null_target", "valid_batch", True, False),
    "duplicate_columns": ("duplicate_columns", "readable", True, False),
    "unparseable_timestamps": ("unparseable_timestamps", "valid_batch", True, True),
    "out_of_range": ("out_of_range", "valid_batch", True, True),
    "parquet_wrong_schema": ("missing_columns", "valid_batch", True, False),
}


def test_every_kind_has_an_expectation():
    assert set(EXPECTED) == set(CORRUPT_KINDS)


@pytest.mark.parametrize("kind", CORRUPT_KINDS)
def test_corrupt_kind_is_quarantined_with_a_clear_reason(kind, defs, instance, landing_dir, mlops_home):
    good = write_batches(SPEC, SimulationConfig(days=2, groups=2), landing_dir)
    bad = write_corrupt(SPEC, kind, landing_dir, SimulationConfig(days=1, groups=2))
    original = bad.read_bytes()
    summary = ingest_landed(defs, instance)

    assert len(summary.succeeded) == len(good), summary.quarantined
    assert len(summary.quarantined) == 1
    key, message = next(iter(summary.quarantined.items()))
    assert bad.name in message

    error_kind, check, names_column, names_rows = EXPECTED[kind]
    record = json.loads((mlops_home / "quarantine" / key / "reason.json").read_text())
    reason = record["reason"]
    assert reason["kind"] == error_kind and reason["file"] == bad.name
    assert bool(reason["columns"]) == names_column and bool(reason["rows"]) == names_rows
    assert (mlops_home / "quarantine" / key / bad.name).read_bytes() == original
    assert not bad.exists()

    check_key = dg.AssetCheckKey(dg.AssetKey("raw_load" if check == "readable" else "clean_load"), check)
    evaluation = instance.event_log_storage.get_latest_asset_check_execution_by_key([check_key])[check_key]
    assert evaluation.status.value == "FAILED"
    assert bad.name in evaluation.event.dagster_event.event_specific_data.metadata["reason"].value
