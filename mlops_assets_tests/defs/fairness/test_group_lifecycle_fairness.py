"""Training with a group that stopped and a group that appeared late: the bias report and its
gate judge the established groups, list the new and the retired one, and the run succeeds."""

import json

import dagster as dg
import pytest

from mlops_assets.core.spec import load_spec
from mlops_assets_tests.lifecycle_builders import series_frame, with_lifecycle
from mlops_assets_tests.pipeline import land, local_platform

SPEC = load_spec()
LABEL = "Zone A/B (ö)"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from mlops_assets.runner import ingest_landed, run_job

    home = tmp_path_factory.mktemp("lifecycle") / "mlops"
    # 30 days: B stops after day 18 (retired), LABEL starts on day 27 (only in the test split).
    frame = with_lifecycle(series_frame(SPEC, ["A", "B", "C", LABEL], 30), SPEC, starts={LABEL: 27}, stops={"B": 18})
    with local_platform(home) as (defs, instance):
        land(home, "history.csv", frame)
        ingest_landed(defs, instance)
        result = run_job(defs, "training_job", instance)
        again = run_job(defs, "preparation_job", instance)
        yield {"result": result, "again": again, "home": home}


def test_the_bias_report_lists_the_new_and_the_retired_group_and_passes(trained):
    report = trained["result"].output_for_node("bias_report")
    statuses = {row["group"]: row["status"] for row in report["groups"]}
    assert statuses[LABEL] == "new_group" and statuses["B"] == "retired"
    assert {statuses["A"], statuses["C"]} <= {"ok", "within_noise"}
    assert report["passed"] and report["new_groups"] == [LABEL] and report["retired_groups"] == ["B"]
    assert report["missing_groups"] == [] and not report["flagged"]
    new_row = next(row for row in report["groups"] if row["group"] == LABEL)
    assert new_row["count"] == 2 * 24 and new_row["mae"] == new_row["mae"]  # scored, with its error shown
    mat = next(e for e in trained["result"].get_asset_materialization_events() if e.asset_key.to_user_string() == "bias_report")
    meta = mat.materialization.metadata
    assert meta["verdict"].value.startswith("PASS") and meta["new_groups"].value == [LABEL]
    assert meta["retired_groups"].value == ["B"]
    assert "new_group" in {row.data["status"] for row in meta["table"].records}


def test_training_is_not_stalled_by_the_groups_life_cycle(trained):
    result = trained["result"]
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["groups_in_every_split"].passed and checks["bias_within_threshold"].passed, checks["bias_within_threshold"].description
    assert result.success
    train = result.output_for_node("splits", "train_set")
    assert "B" in train.get_column(SPEC.group).unique().to_list()  # its history still trains the model


def test_the_retired_group_is_alerted_once(trained):
    assert trained["again"].success
    records = [json.loads(line) for line in (trained["home"] / "alerts.log").read_text(encoding="utf-8").splitlines()]
    retired = [r for r in records if r["kind"] == "group_retired"]
    assert [r["key"] for r in retired] == ["retired_group:B:2024-01-18T23:00:00+00:00"]
    assert all(r["severity"] != "ERROR" for r in records), records
    instance_events = trained["again"].get_asset_materialization_events()
    assert any(e.asset_key == dg.AssetKey("load_history") for e in instance_events)
