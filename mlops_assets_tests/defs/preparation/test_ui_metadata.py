"""What the UI shows after a preparation run with a quarantined batch: numbers on every check
result (plotted over time), no warning about the batch left out of the history,
described columns on every stored frame, and tables instead of Markdown."""

import logging

import dagster as dg

from mlops_assets.runner import ingest_landed, run_job
from mlops_assets_tests.defs.preparation.test_preparation_assets import land_history


def test_preparation_metadata_a_person_wants(defs, instance, landing_dir, mlops_home):
    land_history(landing_dir, days=12)
    (landing_dir / "broken.csv").write_bytes(b"period,subregion\n")
    ingested = ingest_landed(defs, instance)
    assert len(ingested.succeeded) == 2 and len(ingested.quarantined) == 1
    result = run_job(defs, "preparation_job", instance)
    assert result.success

    for evaluation in result.get_asset_check_evaluations():
        numbers = [k for k, v in evaluation.metadata.items() if isinstance(v, (dg.IntMetadataValue, dg.FloatMetadataValue))]
        assert numbers, f"check {evaluation.check_name} records no number"

    # The quarantined batch left the partitions: the history neither warns about it nor lists it
    # (a partition missing for another reason is one INFO line: resources/test_tables.py).
    logs = [(e.level, e.user_message) for e in instance.all_logs(result.run_id) if e.dagster_event is None]
    [quarantined] = ingested.quarantined
    assert quarantined not in instance.get_dynamic_partitions("batches")
    assert not [text for level, text in logs if quarantined in text or "left out" in text]
    assert not [text for level, text in logs if level >= logging.WARNING]

    for asset in ("load_history", "features", "train_set"):
        meta = instance.get_latest_materialization_event(dg.AssetKey(asset)).asset_materialization.metadata
        columns = meta["dagster/column_schema"].schema.columns
        assert columns and all(c.description for c in columns), (asset, [c.name for c in columns if not c.description])
    history = instance.get_latest_materialization_event(dg.AssetKey("load_history")).asset_materialization.metadata
    assert isinstance(history["group_lifecycle"], dg.TableMetadataValue)
    profile = instance.get_latest_materialization_event(dg.AssetKey("data_profile")).asset_materialization.metadata["profile"]
    assert isinstance(profile, dg.TableMetadataValue)
    floats = [v for r in profile.records for v in r.data.values() if isinstance(v, float)]
    assert floats and all(v == float(f"{v:.4g}") for v in floats)
