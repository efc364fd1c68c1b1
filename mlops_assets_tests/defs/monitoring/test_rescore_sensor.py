"""rescore_sensor on a real instance: a batch whose rows await history is requested once per
change of load_history, never again while the history is unchanged, and not after it is
scored in full or has waited longer than MAX_WAIT_HOURS."""

import dagster as dg
import pytest

from mlops_assets.defs.monitoring import rescore
from mlops_assets.defs.partitions import BATCHES


def scored(instance, batch: str, awaiting: int, history_id: int | None) -> None:
    metadata = {"rows_scored": 24 - awaiting, "rows_awaiting_history": awaiting}
    if history_id is not None:
        metadata["history_storage_id"] = history_id
    instance.report_runless_asset_event(dg.AssetMaterialization("batch_predictions", partition=batch, metadata=metadata))


def history(instance) -> int:
    instance.report_runless_asset_event(dg.AssetMaterialization("load_history"))
    return rescore.latest_storage_id(instance, "load_history")


def tick(instance, cursor=None):
    with dg.build_sensor_context(instance=instance, cursor=cursor) as context:
        return rescore.rescore_sensor(context)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(BATCHES, ["day_2__a", "day_3__b", "Zone A/B (ö)__c"])
        yield instance


def test_a_batch_awaiting_history_is_requested_once_per_history_change(instance):
    first = history(instance)
    scored(instance, "day_3__b", 24, first)
    scored(instance, "Zone A/B (ö)__c", 0, first)
    quiet = tick(instance)
    assert quiet.run_requests == []  # the history has not changed since it was scored

    second = history(instance)
    arrived = tick(instance, quiet.cursor)
    [request] = arrived.run_requests
    assert request.partition_key == "day_3__b" and request.run_key == f"rescore:day_3__b:{second}"
    assert request.tags["mlops/trigger"] == "rescore_sensor:day_3__b"

    scored(instance, "day_3__b", 24, second)  # re-scored, still waiting: not again until the history changes
    assert tick(instance, arrived.cursor).run_requests == []
    third = history(instance)
    again = tick(instance, arrived.cursor)
    assert [r.run_key for r in again.run_requests] == [f"rescore:day_3__b:{third}"]
    scored(instance, "day_3__b", 0, third)  # scored in full
    history(instance)
    assert tick(instance, again.cursor).run_requests == []
    assert rescore.batches_awaiting_history(instance) == []


def test_the_cli_sees_the_same_batches_as_the_sensor(instance):
    first = history(instance)
    scored(instance, "day_2__a", 5, first)
    scored(instance, "day_3__b", 24, None)  # scored before the history id was recorded: its own storage id counts
    assert rescore.batches_awaiting_history(instance) == []
    history(instance)
    assert sorted(rescore.batches_awaiting_history(instance)) == ["day_2__a", "day_3__b"]
    assert sorted(r.partition_key for r in tick(instance).run_requests) == ["day_2__a", "day_3__b"]


def test_a_batch_that_waited_too_long_or_was_deleted_is_left_alone(instance, monkeypatch):
    first = history(instance)
    scored(instance, "day_2__a", 5, first)
    scored(instance, "day_3__b", 5, first)
    instance.delete_dynamic_partition(BATCHES, "day_3__b")
    history(instance)
    result = tick(instance)
    assert [r.partition_key for r in result.run_requests] == ["day_2__a"]
    monkeypatch.setattr(rescore, "MAX_WAIT_HOURS", 0.0)
    history(instance)
    expired = tick(instance, result.cursor)
    assert expired.run_requests == [] and '"awaiting": {}' in expired.cursor
