"""Prediction intervals through the platform: calibrated at training, gated by
`interval_coverage`, carried by batch predictions and adapted by labelled batches.

The data have known noise: each group's load is a daily cycle around its own level plus
Gaussian noise of 4 % of that level (weather is drawn but the load does not depend on it), so
an honest 80 % interval covers about 80 % of test rows. In the second history the noise is
eight times larger in the newest days only (the test split): a model calibrated on the calm
validation days gives intervals far too narrow for them, even at the widest level ACI can
move its quantile to."""

from datetime import timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from mlops_assets.core.spec import load_spec
from mlops_assets_tests.builders import T0
from mlops_assets_tests.pipeline import land, local_platform

SPEC = load_spec()
GROUPS = ("north", "south", "east", "west")
LEVELS = (800.0, 1600.0, 3200.0, 6400.0)
NOISE = 0.04
HISTORY_DAYS = 42
# The second history's newest days, all inside its test split (15 % of 50 days = 7.5 days).
NOISY_DAYS = 7


def noisy_frame(start_day: int, days: int, noise: float, seed: int) -> pl.DataFrame:
    """`days` of hourly rows per group from day `start_day`, noise `noise` x level."""
    rng = np.random.default_rng(seed)
    hours = np.arange(start_day * 24, (start_day + days) * 24)
    parts = []
    for group, level in zip(GROUPS, LEVELS):
        load = level * (1 + 0.2 * np.sin(hours / 24 * 2 * np.pi)) + rng.normal(0, noise * level, hours.size)
        weather = {}
        for col in SPEC.numeric_features:
            lo, hi = col.min if col.min is not None else 0.0, col.max if col.max is not None else 100.0
            weather[col.column] = rng.uniform(lo + 0.3 * (hi - lo), lo + 0.4 * (hi - lo), hours.size)
        parts.append(pl.DataFrame({
            SPEC.timestamp: [T0 + timedelta(hours=int(h)) for h in hours], SPEC.target.column: load,
            SPEC.group: [group] * hours.size, **weather,
        }))
    frame = pl.concat(parts).with_columns(pl.col(SPEC.timestamp).dt.replace_time_zone("UTC").dt.cast_time_unit("us"))
    return frame.select(SPEC.required_columns)


def check_result(result, name: str):
    """The evaluation of `name` on registered_model in the run `result`."""
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """Two trainings: v1 on calm data (promoted), then one monitored calm batch, then v2 on a
    history whose newest days are eight times noisier."""
    from mlops_assets.runner import ingest_landed, run_job

    home: Path = tmp_path_factory.mktemp("intervals")
    with local_platform(home, {"MLOPS_COVERAGE_TOLERANCE": "0.05"}) as (defs, instance):
        land(home, "history.csv", noisy_frame(0, HISTORY_DAYS, NOISE, seed=1))
        ingest_landed(defs, instance)
        first = run_job(defs, "training_job", instance)
        evaluation_v1 = first.output_for_node("model_evaluation")
        registered_v1 = first.output_for_node("registered_model")
        land(home, "calm_day.csv", noisy_frame(HISTORY_DAYS, 1, NOISE, seed=2))
        [batch] = ingest_landed(defs, instance).succeeded
        monitoring = defs.resolve_job_def("monitoring_job").execute_in_process(partition_key=batch, instance=instance)
        predictions = monitoring.output_for_node("batch_predictions")
        report = monitoring.output_for_node("drift_report")
        land(home, "noisy_days.csv", noisy_frame(HISTORY_DAYS + 1, NOISY_DAYS, 8 * NOISE, seed=3))
        ingest_landed(defs, instance)
        second = run_job(defs, "training_job", instance)
        yield {
            "home": home, "defs": defs, "instance": instance, "first": first, "second": second,
            "evaluation_v1": evaluation_v1, "registered_v1": registered_v1, "predictions": predictions, "report": report,
            "registry": defs.resources["mlflow_tracking"].registry(), "drift": defs.resources["drift"], "batch": batch,
        }


def test_known_noise_interval_covers_its_nominal_share(platform):
    intervals = platform["evaluation_v1"]["challenger"]["intervals"]
    assert intervals["level"] == 0.8
    assert 0.75 <= intervals["coverage"] <= 0.85, intervals
    assert 0.75 <= intervals["static_coverage"] <= 0.85, intervals
    for group in intervals["by_group"]:
        assert 0.7 <= group["coverage"] <= 0.9, group
    # Width follows the level: the biggest group's interval is the widest, about 8x the smallest's.
    widths = {g["group"]: g["mean_width"] for g in intervals["by_group"]}
    assert 5 < widths["west"] / widths["north"] < 12, widths


def test_honest_interval_passes_the_gate_and_is_promoted(platform):
    registered = platform["registered_v1"]
    verdict = next(v for v in registered["verdicts"] if v["check"] == "interval_coverage")
    assert verdict["passed"], verdict
    assert "nominal 80%" in verdict["reason"] and "mean width" in verdict["reason"]
    assert platform["registry"].alias_version("champion") == "1"
    check = check_result(platform["first"], "interval_coverage")
    assert check.passed and 0.75 <= check.metadata["coverage"].value <= 0.85
    assert registered["intervals"]["coverage"] == pytest.approx(check.metadata["coverage"].value, abs=1e-3)


def test_pinball_loss_sits_next_to_mae_in_the_comparison(platform):
    [event] = [e for e in platform["first"].get_asset_materialization_events() if e.asset_key == dg.AssetKey("model_evaluation")]
    table = event.materialization.metadata["comparison"].value.records
    challenger = next(r.data for r in table if r.data["forecast"] == "challenger")
    intervals = platform["evaluation_v1"]["challenger"]["intervals"]
    assert challenger["pinball_loss"] == pytest.approx(intervals["pinball_loss"], rel=1e-3)
    assert challenger["interval_coverage"] == pytest.approx(intervals["coverage"], abs=1e-3)
    assert 0 < challenger["pinball_loss"] < challenger["mae"]


def test_batch_predictions_carry_the_interval(platform):
    frame = platform["predictions"]
    assert frame.height == len(GROUPS) * 24
    assert frame.get_column("prediction_lower").null_count() == 0
    lower, point, upper = (frame.get_column(c).to_numpy() for c in ("prediction_lower", "prediction", "prediction_upper"))
    assert np.all(lower < point) and np.all(point < upper)
    by_group = frame.group_by(SPEC.group).agg((pl.col("prediction_upper") - pl.col("prediction_lower")).mean().alias("width"))
    widths = dict(by_group.iter_rows())
    assert widths["west"] > widths["north"] * 4


def test_drift_report_states_realized_coverage_and_the_state_moved(platform):
    from mlops_assets.core.intervals import batch_coverage
    from mlops_assets.defs.monitoring.intervals import read_state

    frame, report = platform["predictions"], platform["report"]
    expected = batch_coverage(*(frame.get_column(c).to_numpy() for c in (SPEC.target.column, "prediction_lower", "prediction_upper")))
    assert report["intervals"]["coverage"] == pytest.approx(expected["coverage"])
    assert report["intervals"]["rows"] == frame.height and report["intervals"]["shortfall"] is None
    state = read_state(platform["drift"], "1")
    assert [b["batch"] for b in state["batches"]] == [platform["batch"]]
    assert state["calibrator"]["batches_seen"] == 1


def test_too_narrow_interval_is_refused_and_champion_stays(platform):
    second = platform["second"]
    assert second.success
    registered = second.output_for_node("registered_model")
    verdict = next(v for v in registered["verdicts"] if v["check"] == "interval_coverage")
    assert not verdict["passed"], verdict
    assert "coverage" in verdict["reason"] and "nominal 80%" in verdict["reason"], verdict
    assert registered["intervals"]["coverage"] < 0.7, registered["intervals"]
    assert platform["registry"].alias_version("champion") == "1"
    tags = platform["registry"].version_tags(registered["version"])
    assert tags["check.interval_coverage"].startswith("FAIL")
    check = check_result(second, "interval_coverage")
    assert not check.passed and check.metadata["coverage"].value == pytest.approx(registered["intervals"]["coverage"], abs=1e-3)
