"""Acceptance: a newcomer's own data through `mlops-assets run` (fast profile, small data).

A 30-minute and a 15-minute single series of temperature-driven demand (Victoria, with its
state holidays), and an hourly multi-group set with awkward zone labels, `NA` tokens, a zone
that starts late and a net load that crosses zero. Each goes through the whole graph; the
30-minute and multi-group sets then get a new daily file, which a second `run` scores and
reports drift on."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from mlops_assets.core.sample_data import ZONES, delivery_files, demand_series, zone_loads
from mlops_assets_tests.acceptance.platform import (
    champion_or_override,
    explain,
    land,
    lag_errors,
    partitions,
    run_cli,
    run_metric_keys,
    stored,
    write_spec,
)

pytestmark = pytest.mark.slow
CHECKS = {
    "performance_threshold", "no_regression_vs_champion", "bias_within_threshold", "interval_coverage", "signature_and_schema",
    "serving_smoke_test",
}
MELBOURNE = ZoneInfo("Australia/Melbourne")
CUP_DAY = date(2023, 11, 7)  # Melbourne Cup: a VIC public holiday, not a national one


def _split_at(frame: pl.DataFrame, column: str, at: datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
    ts = pl.col(column)
    return frame.filter(ts < at), frame.filter(ts >= at)


def _spec(path):
    from mlops_assets.core.spec import load_spec

    return load_spec(path)


def _lag_columns(spec) -> dict[str, float]:
    from mlops_assets.core.spec import duration_label

    return {f"{spec.target.column}_lag_{duration_label(h)}": h for h in spec.lags_hours}


def _single_series(tmp_path_factory, name: str, frequency: str, days: int, second_file: bool):
    home = tmp_path_factory.mktemp(name) / "mlops"
    overrides = {} if frequency == "30min" else {"frequency": frequency}
    spec_path = write_spec(home, "half_hourly_demand.yaml", **overrides)
    step = frequency.removesuffix("in")  # "30min" -> "30m"
    frame = demand_series(start=date(2023, 10, 24), days=days, frequency=step, seed=5)
    cut = datetime(2023, 10, 24, tzinfo=MELBOURNE) + timedelta(days=days - 1)
    history, new_day = _split_at(frame, "settlement_date", cut)
    land(home, delivery_files(history, "settlement_date", "demand", "1mo"))
    first = run_cli(home, spec_path, "run")
    before = partitions(home, "clean_load")
    second, gate = None, None
    if second_file:
        gate = champion_or_override(home, spec_path)
        land(home, delivery_files(new_day, "settlement_date", "demand", "1d"))
        second = run_cli(home, spec_path, "run", "--no-train")
    return {
        "home": home, "spec": _spec(spec_path), "raw": history, "new": new_day, "first": first, "second": second,
        "before": before, "gate": gate,
    }


@pytest.fixture(scope="module")
def half_hourly(tmp_path_factory):
    return _single_series(tmp_path_factory, "half_hourly", "30min", 24, second_file=True)


@pytest.fixture(scope="module")
def quarter_hourly(tmp_path_factory):
    return _single_series(tmp_path_factory, "quarter_hourly", "15min", 17, second_file=False)


@pytest.fixture(scope="module")
def zones(tmp_path_factory):
    home = tmp_path_factory.mktemp("zones") / "mlops"
    spec_path = write_spec(home, "hourly_multi_group.yaml")
    # Winter: heating makes one week unlike the next, as in a real winter.
    frame = zone_loads(start=date(2023, 1, 9), days=36, seed=2, missing=9)
    cut = datetime(2023, 2, 13, tzinfo=ZoneInfo("Europe/Zurich"))
    history, new_day = _split_at(frame, "timestamp", cut)
    land(home, delivery_files(history, "timestamp", "zones", "1mo", null_value="NA"))
    first = run_cli(home, spec_path, "run")
    before = partitions(home, "clean_load")
    gate = champion_or_override(home, spec_path)
    land(home, delivery_files(new_day, "timestamp", "zones", "1d", null_value="NA"))
    second = run_cli(home, spec_path, "run", "--no-train")
    return {
        "home": home, "spec": _spec(spec_path), "raw": history, "new": new_day, "first": first, "second": second,
        "before": before, "gate": gate,
    }


# ---------------------------------------------------------------------------------------------
# shared assertions


def assert_ingested_not_quarantined(case, files: int) -> None:
    first, home = case["first"], case["home"]
    assert first.returncode == 0, explain(first)
    assert "QUARANTINED" not in first.stdout and "failed, will retry" not in first.stdout, explain(first)
    assert not list((home / "quarantine").glob("*/reason.json"))
    assert len(case["before"]) == files


def assert_features_at_frequency(case, minutes: set[int]) -> pl.DataFrame:
    spec = case["spec"]
    features = stored(case["home"], "features")
    ts = pl.col(spec.timestamp)
    assert set(features.get_column(spec.timestamp).dt.minute().unique().to_list()) == minutes
    steps = features.sort([*([spec.group] if spec.group else []), spec.timestamp]).select(
        ts.diff().over(spec.group) if spec.group else ts.diff()
    ).drop_nulls().to_series().dt.total_minutes()
    step = int(spec.frequency_delta.total_seconds() // 60)
    # A row whose reading is missing may be left out; every step is still a whole number of steps.
    assert steps.min() == step and (steps % step == 0).all() and (steps == step).mean() > 0.98
    return features


def assert_clock_features_differ_within_the_hour(features: pl.DataFrame, timestamp: str) -> None:
    """:00 and :30 of the same hour must not look alike to a model."""
    clock = [c for c in features.columns if "minute" in c]
    assert clock, f"no minute-of-day feature in {features.columns}"
    local = features.with_columns(
        pl.col(timestamp).dt.truncate("1h").alias("__hour"), pl.col(timestamp).dt.minute().alias("__minute")
    )
    on_hour = local.filter(pl.col("__minute") == 0).select("__hour", *clock)
    half = local.filter(pl.col("__minute") == 30).select("__hour", *clock)
    pairs = on_hour.join(half, on="__hour", suffix="_half")
    assert pairs.height > 100
    for col in clock:
        assert (pairs.get_column(col) != pairs.get_column(f"{col}_half")).all(), col


def assert_lags_match_raw(case, features: pl.DataFrame) -> None:
    spec = case["spec"]
    lags = _lag_columns(spec)
    errors = lag_errors(features, case["raw"], spec.timestamp, spec.target.column, spec.group, lags)
    for column in lags:
        assert errors[f"{column}:compared"] > 100, errors
        assert errors[column] == 0, errors


def assert_registered_with_verdicts(case) -> dict:
    registered = stored(case["home"], "registered_model")
    assert {v["check"] for v in registered["verdicts"]} == CHECKS
    from mlops_assets_tests.acceptance.platform import mlflow_client

    version = mlflow_client(case["home"]).get_model_version("load_forecaster", str(registered["version"]))
    assert {f"check.{c}" for c in CHECKS} <= set(version.tags)
    return registered


def assert_first_version_became_champion(case) -> None:
    """The gates let the first model through: it beats seasonal naive and passes the bias rule."""
    registered = case["gate"]["registered"]
    failed = [f"{v['check']}: {v['reason']}" for v in registered["verdicts"] if not v["passed"]]
    assert registered["passed"] and case["gate"]["override"] is None, failed


def assert_second_run_scores_and_reports_drift(case) -> dict:
    """The new file's batch: every row scored by the champion, and a drift report on it."""
    second, home = case["second"], case["home"]
    assert case["gate"]["override"] is None  # the first version passed its gates: no override was needed
    assert second.returncode == 0, explain(second)
    new = sorted(set(partitions(home, "clean_load")) - set(case["before"]))
    assert len(new) == 1, explain(second)
    assert new[0] in partitions(home, "drift_report"), explain(second)
    report = stored(home, f"drift_report/{new[0]}")
    rows = stored(home, f"clean_load/{new[0]}").height
    predictions = stored(home, f"batch_predictions/{new[0]}")
    assert rows > 0 and predictions.height == rows and predictions.get_column("prediction").is_finite().all()
    assert report["rows_scored"] == rows and isinstance(report["retrain"], bool) and report["reasons"]
    # the realized error is the MAE of the champion's forecasts over the batch's labelled rows
    target = case["spec"].target.column
    errors = (predictions.get_column(target) - predictions.get_column("prediction")).abs().drop_nulls()
    assert errors.len() > 0 and report["realized_mae"] == pytest.approx(errors.mean(), rel=1e-9)
    return report


# ---------------------------------------------------------------------------------------------
# 30-minute single series


def test_half_hourly_batches_are_ingested_not_quarantined(half_hourly):
    assert_ingested_not_quarantined(half_hourly, files=2)


def test_half_hourly_features_have_both_half_hours_with_their_own_clock(half_hourly):
    features = assert_features_at_frequency(half_hourly, {0, 30})
    assert_clock_features_differ_within_the_hour(features, half_hourly["spec"].timestamp)


def test_half_hourly_state_holiday_is_a_holiday(half_hourly):
    features = stored(half_hourly["home"], "features")
    local_day = pl.col(half_hourly["spec"].timestamp).dt.convert_time_zone("Australia/Melbourne").dt.date()
    by_day = features.group_by(local_day.alias("day")).agg(pl.col("is_holiday").max()).sort("day")
    flags = dict(zip(by_day.get_column("day").to_list(), by_day.get_column("is_holiday").to_list()))
    assert flags[CUP_DAY] == 1 and flags[CUP_DAY + timedelta(days=7)] == 0


def test_half_hourly_lags_match_the_raw_series(half_hourly):
    assert_lags_match_raw(half_hourly, stored(half_hourly["home"], "features"))


def test_half_hourly_single_series_bias_verdict_passes_the_gate(half_hourly):
    bias = stored(half_hourly["home"], "bias_report")
    assert not bias["grouped"] and bias["passed"] and bias["verdict"] == "single series: nothing to compare"
    assert bias["overall"]["count"] > 0 and bias["overall"]["mae"] > 0
    registered = assert_registered_with_verdicts(half_hourly)
    verdict = next(v for v in registered["verdicts"] if v["check"] == "bias_within_threshold")
    assert verdict["passed"] and verdict["reason"].startswith("single series: nothing to compare")


def test_half_hourly_runs_are_logged_with_the_series_under_a_safe_key(half_hourly):
    from mlops_assets.core.metrics import safe_key

    keys = run_metric_keys(half_hourly["home"])
    labels = {safe_key(half_hourly["spec"].name), "all"}
    assert any("group" in k and k.rsplit("/", 1)[-1] in labels for k in keys), sorted(keys)
    assert not any("<all>" in k for k in keys)


def test_half_hourly_first_version_passes_the_gates_and_serves(half_hourly):
    assert_first_version_became_champion(half_hourly)


def test_half_hourly_second_run_scores_the_new_file_and_reports_drift(half_hourly):
    report = assert_second_run_scores_and_reports_drift(half_hourly)
    assert report["by_group"] == [] and report["by_group_skipped"].startswith("single series")


# ---------------------------------------------------------------------------------------------
# 15-minute single series


def test_quarter_hourly_runs_through_the_whole_graph(quarter_hourly):
    assert_ingested_not_quarantined(quarter_hourly, files=2)
    features = assert_features_at_frequency(quarter_hourly, {0, 15, 30, 45})
    assert_clock_features_differ_within_the_hour(features, quarter_hourly["spec"].timestamp)
    assert_lags_match_raw(quarter_hourly, features)
    assert_registered_with_verdicts(quarter_hourly)
    assert stored(quarter_hourly["home"], "bias_report")["verdict"] == "single series: nothing to compare"


# ---------------------------------------------------------------------------------------------
# hourly multi-group set


def test_zones_with_na_tokens_are_ingested_not_quarantined(zones):
    assert_ingested_not_quarantined(zones, files=2)


def test_zone_features_are_hourly_per_zone_and_lags_match_the_raw_series(zones):
    features = assert_features_at_frequency(zones, {0})
    assert set(features.get_column("zone").unique()) == {z.label for z in ZONES}
    assert_lags_match_raw(zones, features)


def test_zone_labels_are_kept_in_reports_and_sanitized_in_mlflow_keys(zones):
    from mlops_assets.core.metrics import safe_key

    labels = {z.label for z in ZONES}
    bias = stored(zones["home"], "bias_report")
    assert bias["grouped"] and {r["group"] for r in bias["groups"]} == labels
    keys = run_metric_keys(zones["home"])
    for label in labels:
        assert any(safe_key(label) in k for k in keys), (label, sorted(keys)[:40])
    assert not any(label in k for label in labels - {safe_key(x) for x in labels} for k in keys)


def test_zone_crossing_zero_has_no_mape_and_says_why(zones):
    evaluation = stored(zones["home"], "model_evaluation")
    net = next(r for r in evaluation["challenger"]["by_group"] if r["group"] == "Solar & Town (net)")
    assert math.isnan(net["mape"]) and net["mape_absent_reason"].startswith("target not strictly positive (min -"), net
    assert_registered_with_verdicts(zones)


def test_zones_first_version_passes_the_gates_and_serves(zones):
    assert_first_version_became_champion(zones)


def test_zones_second_run_scores_the_new_file_with_drift_per_zone(zones):
    report = assert_second_run_scores_and_reports_drift(zones)
    assert {r["group"] for r in report["by_group"]} == {z.label for z in ZONES}
