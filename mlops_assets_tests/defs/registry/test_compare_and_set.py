"""Promotion is compare-and-set: a version evaluated against one champion is not promoted
over another. Real runs on one platform: v1 is trained and promoted; v2 and v3 are evaluated
(against v1) and registered; v2 is force-promoted from the CLI while v3 waits; promoting v3
is then refused with the reason, the alias stays on v2, the run succeeds and one WARN alert
is sent; the next evaluation compares with v2 and may promote."""

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from mlops_assets.core.spec import load_spec
from mlops_assets_tests.builders import hourly_frame
from mlops_assets_tests.pipeline import land, local_platform

SPEC = load_spec()
REFUSAL = "champion changed from v1 to v2 during evaluation"


def evaluate_and_register(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """The registry steps of training_job up to (not including) the promotion, on the stored model."""
    selection = dg.AssetSelection.groups("registry") - dg.AssetSelection.assets("champion_model")
    result = dg.materialize(defs.assets, selection=selection, instance=instance, resources=defs.resources)
    assert result.success
    return result


def promote_registered(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize(defs.assets, selection=["champion_model"], instance=instance, resources=defs.resources, raise_on_error=False)


def alerts(home) -> list[dict]:
    path = home / "alerts.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def force_promote_from_cli(home, version: str) -> None:
    env = {**os.environ, "MLOPS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"), "MLOPS_PROFILE": "fast"}
    done = subprocess.run(
        [sys.executable, "-m", "mlops_assets.cli", "promote", "--version", version, "--force", "--reason", "hotfix while v3 was evaluated"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def race(tmp_path_factory):
    from mlops_assets.runner import ingest_landed, run_job, step_errors

    home = tmp_path_factory.mktemp("cas") / "mlops"
    with local_platform(home) as (defs, instance):
        land(home, "history.csv", hourly_frame(SPEC, ["Zone A/B (ö)", "north"], 24 * 28))
        ingest_landed(defs, instance)
        first = run_job(defs, "training_job", instance)
        assert first.success, step_errors(first)
        registry = defs.resources["mlflow_tracking"].registry()
        assert registry.alias_version("champion") == "1"
        second = evaluate_and_register(defs, instance)
        third = evaluate_and_register(defs, instance)
        force_promote_from_cli(home, "2")
        alerts_before = len(alerts(home))
        refused = promote_registered(defs, instance)
        yield {
            "home": home, "defs": defs, "instance": instance, "registry": registry, "second": second, "third": third,
            "refused": refused, "alerts_before": alerts_before, "alerts_after": alerts(home)[alerts_before:],
            "champion_after": registry.alias_version("champion"), "history_after": registry.history(),
        }


# Later steps of the story, each a fixture on the one before: whichever test asks first, they run in order.
@pytest.fixture(scope="module")
def re_executed(race):
    """The refused promotion executed again."""
    again = promote_registered(race["defs"], race["instance"])
    return {"again": again, "champion": race["registry"].alias_version("champion"), "alerts": len(alerts(race["home"]))}


@pytest.fixture(scope="module")
def next_trained(race, re_executed):
    """v4 evaluated against the champion of the moment (v2), then promoted."""
    fourth = evaluate_and_register(race["defs"], race["instance"])
    promoted = promote_registered(race["defs"], race["instance"])
    return {"fourth": fourth, "promoted": promoted, "champion": race["registry"].alias_version("champion"), "history": race["registry"].history()}


def test_each_evaluation_records_the_champion_it_compared_with(race):
    registry = race["registry"]
    assert race["second"].output_for_node("model_evaluation")["compared_champion"] == "1"
    assert race["third"].output_for_node("model_evaluation")["compared_champion"] == "1"
    assert race["third"].output_for_node("registered_model")["version"] == "3"
    assert registry.version_tags("1")["compared_champion"] == "none"
    assert registry.version_tags("3")["compared_champion"] == "1"


def test_promotion_over_a_champion_that_changed_is_refused_with_the_reason(race):
    assert race["champion_after"] == "2"
    entry = race["history_after"][-1]
    assert (entry["action"], entry["version"], entry["previous_champion"], entry["reason"]) == ("refuse", "3", "2", REFUSAL)
    assert ("promote", "3") not in [(h["action"], h["version"]) for h in race["registry"].history()]


def test_the_refusal_is_an_outcome_a_successful_run_with_one_warn_alert(race):
    refused = race["refused"]
    assert refused.success
    assert refused.get_asset_materialization_events() == []  # the champion did not change
    observed = [e.event_specific_data.asset_observation for e in refused.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert [o.metadata["reason"].value for o in observed] == [REFUSAL]
    new = race["alerts_after"]
    assert [(a["severity"], a["kind"], a["reason"]) for a in new] == [("WARN", "promotion_refused", REFUSAL)]
    assert "v3" in new[0]["title"] and "v2" in new[0]["title"]


def test_re_executing_the_refused_promotion_does_not_move_the_alias_or_alert_again(race, re_executed):
    assert re_executed["again"].success and re_executed["champion"] == "2"
    assert re_executed["alerts"] == race["alerts_before"] + 1


def test_the_next_training_compares_with_the_new_champion_and_is_promoted(next_trained):
    evaluation = next_trained["fourth"].output_for_node("model_evaluation")
    assert evaluation["compared_champion"] == "2" and evaluation["champion"]["version"] == "2"
    assert next_trained["promoted"].success and next_trained["champion"] == "4"
    entry = next_trained["history"][-1]
    assert (entry["action"], entry["version"], entry["previous_champion"]) == ("promote", "4", "2")
