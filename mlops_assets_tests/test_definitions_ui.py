"""What a person sees in the Dagster UI: a description on every sensor, schedule and job;
owners and a domain tag on every asset (MLOPS_ASSET_OWNERS)."""

import dagster as dg
import pytest


def test_every_sensor_schedule_and_job_has_a_one_line_description(defs):
    described = {
        **{f"sensor {s.name}": s.description for s in defs.sensors},
        **{f"schedule {s.name}": s.description for s in defs.schedules},
        **{f"job {j.name}": j.description for j in defs.jobs},
    }
    assert len(described) >= 14
    missing = [name for name, text in described.items() if not (text and text.strip())]
    assert missing == []
    # a one-liner a user reads, not a pasted docstring
    assert [name for name, text in described.items() if "\n" in text.strip()] == []


def test_every_asset_has_the_owners_and_its_domain_tag(defs):
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    assert len(keys) >= 20
    for key in keys:
        node = graph.get(key)
        assert node.owners == ["team:ml-platform"], key
        assert node.tags.get("domain") == node.group_name and node.group_name, key


def test_owners_come_from_the_environment(mlops_home, monkeypatch):
    from mlops_assets.definitions import build_definitions

    monkeypatch.setenv("MLOPS_ASSET_OWNERS", " team:forecasting , jane.doe@example.com,team:forecasting")
    graph = build_definitions("local").resolve_asset_graph()
    assert {tuple(graph.get(k).owners) for k in graph.get_all_asset_keys()} == {("team:forecasting", "jane.doe@example.com")}


@pytest.mark.parametrize("value", ["ml-platform", "team:", "jane@", "team:a,nobody", "team:ml platform"])
def test_an_invalid_owner_is_refused_naming_the_variable(mlops_home, monkeypatch, value):
    from mlops_assets.definitions import build_definitions

    monkeypatch.setenv("MLOPS_ASSET_OWNERS", value)
    with pytest.raises(ValueError, match="MLOPS_ASSET_OWNERS"):
        build_definitions("local")


def test_the_asset_definitions_keep_their_checks_and_conditions(defs):
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("drift_report")).automation_condition is not None
    assert dg.AssetCheckKey(dg.AssetKey("clean_load"), "valid_batch") in graph.asset_check_keys
