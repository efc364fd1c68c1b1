"""A group made deliberately worse: flagged by `bias_report`, and the blocking check fails."""

import json

import dagster as dg
import numpy as np
import polars as pl
import pytest

from mlops_assets.core.spec import load_spec
from mlops_assets_tests.builders import hourly_frame
from mlops_assets_tests.pipeline import land, local_platform

SPEC = load_spec()


@pytest.fixture(scope="module")
def unfair(tmp_path_factory):
    from mlops_assets.runner import ingest_landed, run_job

    home = tmp_path_factory.mktemp("fairness") / "mlops"
    # E is the smallest group (listed first): unpredictable noise as large as its load makes its
    # relative error several times everyone else's.
    frame = hourly_frame(SPEC, ["E", "A", "B", "C", "D"], 24 * 30)
    noise = np.random.default_rng(3).normal(0, 1500, frame.height)
    frame = frame.with_columns(
        pl.when(pl.col(SPEC.group) == "E").then(pl.col(SPEC.target.column) + pl.Series(noise).abs()).otherwise(pl.col(SPEC.target.column)).alias(SPEC.target.column)
    )
    with local_platform(home) as (defs, instance):
        land(home, "history.csv", frame)
        ingest_landed(defs, instance)
        started = run_check_sensor(defs, instance)  # the daemon's sensor was already running
        result = run_job(defs, "training_job", instance)
        run_check_sensor(defs, instance, started.cursor)  # it sees the failed checks after the run
        alerts = [json.loads(line) for line in (home / "alerts.log").read_text().splitlines()]
        result.alerts, result.champion = alerts, defs.resources["mlflow_tracking"].registry().alias_version("champion")
        yield result


def run_check_sensor(defs, instance, cursor=None):
    from mlops_assets.defs.alerts.sensors import check_failure_alert_sensor

    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"alerts": defs.resources["alerts"]}) as context:
        return check_failure_alert_sensor(context)


def test_worse_group_is_flagged_with_reason_and_plot(unfair):
    report = unfair.output_for_node("bias_report")
    assert report["biased"] and report["flagged"] == ["E"]
    assert any(reason.startswith("group E: normalized MAE gap") for reason in report["reasons"])
    mat = next(e for e in unfair.get_asset_materialization_events() if e.asset_key.to_user_string() == "bias_report")
    assert mat.materialization.metadata["verdict"].value.startswith("BIASED")
    assert mat.materialization.metadata["plot"].value.startswith("![error gap by group](data:image/png;base64,")


def test_mitigation_is_tried_and_compared(unfair):
    fair = unfair.output_for_node("fair_model")
    variants = {row["variant"] for row in fair["mitigation"]["comparison"]}
    assert variants == {"candidate", "balanced", "error_aware"}
    assert fair["mitigation"]["reason"]


def test_bias_check_blocks_the_unfair_model(unfair):
    check = {e.check_name: e for e in unfair.get_asset_check_evaluations()}["bias_within_threshold"]
    assert not check.passed and "group E" in check.description and check.severity == dg.AssetCheckSeverity.WARN
    materialized = {e.asset_key.to_user_string() for e in unfair.get_asset_materialization_events()}
    assert "registered_model" in materialized and "champion_model" not in materialized
    assert unfair.champion is None  # the first model, refused: nothing serves


def test_a_refusal_is_an_outcome_with_one_warn_alert(unfair):
    """Run success; `champion_model` ran, refused and was not materialized (skipped, not
    failed); its page shows the refusal; exactly one alert, WARN, naming the check and why."""
    assert unfair.success
    assert not [e for e in unfair.all_events if e.is_step_failure]
    assert "champion_model" in {e.step_key for e in unfair.all_events if e.is_step_success}
    observed = [e for e in unfair.all_events if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION]
    refusal = next(e.event_specific_data.asset_observation for e in observed if e.asset_key == dg.AssetKey("champion_model"))
    assert refusal.metadata["decision"].value == "REFUSED v1" and "bias_within_threshold: group E" in refusal.metadata["reason"].value
    [alert] = unfair.alerts
    assert alert["severity"] == "WARN" and alert["kind"] == "promotion_refused" and alert["asset"] == "champion_model"
    assert "bias_within_threshold" in alert["reason"] and "group E" in alert["reason"]
