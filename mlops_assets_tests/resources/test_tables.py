"""Asset storage: column descriptions in each stored frame's schema, and partitions never
stored (a quarantined batch) left out with one INFO line, or refused by name."""

import logging

import dagster as dg
import polars as pl
import pytest

from mlops_assets.core.spec import load_spec
from mlops_assets.resources.tables import TableStorage

SPEC = load_spec()
PARTS = dg.StaticPartitionsDefinition(["b1", "b2", "b3"])


@dg.asset(partitions_def=PARTS)
def batch(context: dg.AssetExecutionContext) -> pl.DataFrame:
    return pl.DataFrame({"batch": [context.partition_key], "value": [1.0]})


@dg.asset(ins={"batch": dg.AssetIn(metadata={"allow_missing_partitions": True})})
def merged(batch: dict) -> pl.DataFrame:
    return pl.DataFrame({"batch": sorted(batch)})


@dg.asset(ins={"batch": dg.AssetIn()})
def strict_merged(batch: dict) -> pl.DataFrame:
    return pl.DataFrame({"batch": sorted(batch)})


@pytest.fixture
def storage(tmp_path, monkeypatch):
    monkeypatch.delenv("MLOPS_DATASET_SPEC", raising=False)
    return TableStorage(base_dir=str(tmp_path / "storage"))


def _stored(storage, instance, keys=("b1", "b3")):
    for key in keys:
        assert dg.materialize([batch], partition_key=key, instance=instance, resources={"io_manager": storage}).success


def _logs(instance, run_id) -> list[tuple[int, str]]:
    return [(entry.level, entry.user_message) for entry in instance.all_logs(run_id) if entry.dagster_event is None]


def test_missing_partitions_are_left_out_with_one_info_line_and_no_warning(storage):
    with dg.instance_for_test() as instance:
        _stored(storage, instance)
        result = dg.materialize([batch, merged], selection=[merged], instance=instance, resources={"io_manager": storage})
        assert result.success
        assert result.output_for_node("merged").get_column("batch").to_list() == ["b1", "b3"]
        logs = _logs(instance, result.run_id)
        left_out = [(level, text) for level, text in logs if "left out" in text]
        assert left_out == [(logging.INFO, left_out[0][1])] and "left out 1 partition(s) of batch" in left_out[0][1]
        assert left_out[0][1].endswith(": b2")
        assert not [text for level, text in logs if level >= logging.WARNING], logs


def test_an_unpartitioned_reader_of_one_stored_partition_gets_a_dict(storage):
    with dg.instance_for_test() as instance:
        _stored(storage, instance, keys=("b2",))
        result = dg.materialize([batch, merged], selection=[merged], instance=instance, resources={"io_manager": storage})
        assert result.success and result.output_for_node("merged").get_column("batch").to_list() == ["b2"]


def test_a_missing_partition_without_allow_missing_is_an_error_naming_it(storage, tmp_path):
    with dg.instance_for_test() as instance:
        _stored(storage, instance)
        result = dg.materialize(
            [batch, strict_merged], selection=[strict_merged], instance=instance, resources={"io_manager": storage},
            raise_on_error=False,
        )
        assert not result.success
        error = result.failure_data_for_node("strict_merged").error.to_string()
        assert "partition 'b2' of batch has no stored value at" in error
        assert str(tmp_path / "storage" / "batch" / "b2") in error


def test_a_stored_frame_describes_every_column(storage):
    @dg.asset
    def prepared() -> pl.DataFrame:
        return pl.DataFrame({SPEC.timestamp: [1], SPEC.target.column: [2.0], "load_mw_lag_24h": [1.5], "prediction": [2.1]})

    with dg.instance_for_test() as instance:
        assert dg.materialize([prepared], instance=instance, resources={"io_manager": storage}).success
        mat = instance.get_latest_materialization_event(dg.AssetKey("prepared")).asset_materialization
        schema = mat.metadata["dagster/column_schema"].schema
        described = {c.name: c.description for c in schema.columns}
        assert list(described) == [SPEC.timestamp, SPEC.target.column, "load_mw_lag_24h", "prediction"]
        assert all(described.values()), described
        assert described[SPEC.target.column].startswith("Target") and "24h earlier" in described["load_mw_lag_24h"]
        assert [c.type for c in schema.columns] == ["Int64", "Float64", "Float64", "Float64"]


def test_the_column_descriptions_follow_the_spec_path(tmp_path):
    import yaml

    raw = yaml.safe_load(open(SPEC.source, encoding="utf-8"))
    raw["target"]["column"] = "demand"
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    storage = TableStorage(base_dir=str(tmp_path / "s"), spec_path=str(path))

    @dg.asset
    def frame() -> pl.DataFrame:
        return pl.DataFrame({"demand": [1.0]})

    with dg.instance_for_test() as instance:
        assert dg.materialize([frame], instance=instance, resources={"io_manager": storage}).success
        mat = instance.get_latest_materialization_event(dg.AssetKey("frame")).asset_materialization
        assert mat.metadata["dagster/column_schema"].schema.columns[0].description.startswith("Target")
