"""The retrain decision (core.drift.calibrate / judge_batch) on small synthetic data whose
answers are known: two groups of very different size, a seasonal temperature, a humidity
without season, a tariff category fixed by the hour, and a champion whose error is known.
Fast enough to run against every mutant of core/drift.py (test_retrain_decision.py holds the
same rules on real-shaped data)."""

from __future__ import annotations

import copy
import json
import math
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from mlops_assets.core.drift import NO_KNOWN_GROUP, NO_TRIGGER, NOTHING_TO_JUDGE, DriftConfig, calibrate, judge_batch, judged_columns
from mlops_assets.core.reference import ReferenceData
from mlops_assets.core.spec import spec_from_dict
from mlops_assets_tests.compare import assert_same

SPEC = spec_from_dict({
    "name": "small", "timestamp": {"column": "ts", "timezone": "UTC"}, "group": "zone",
    "target": {"column": "load"},
    "features": {"numeric": ["temp", "humidity"], "categorical": ["tariff"]},
    "preparation": {"horizon": "24h", "lags": ["24h"], "rolling_windows": ["24h"]},
})  # fmt: skip
T0 = datetime(2023, 1, 1, tzinfo=timezone.utc)
LEVELS = {"north": 1000.0, "south": 50.0}
CONFIG = DriftConfig(calibration_hours=(24.0, 168.0), calibration_windows=12, min_reference_rows=100, min_error_windows=7)
IMPORTANCE = {"temp": 0.6, "humidity": 0.1, "tariff": 0.1, "load_lag_24h": 0.2}


def rows(first_day: int, days: int, temp_shift: float = 0.0, humidity_shift: float = 0.0, error: float = 0.02, seed: int = 0,
         levels: dict[str, float] = LEVELS) -> pl.DataFrame:  # fmt: skip
    """Hourly rows of each group from day `first_day` after T0, scored by a champion whose
    error is `error` x the group's level (noise), the target depending on temperature."""
    rng = np.random.default_rng(seed + first_day)
    hours = np.arange(first_day * 24, (first_day + days) * 24)
    parts = []
    for group, level in levels.items():
        season = 15 + 10 * np.sin(2 * np.pi * hours / (24 * 365.25)) + 4 * np.sin(2 * np.pi * (hours % 24) / 24)
        temp = season + rng.normal(0, 2, hours.size) + temp_shift
        load = level * (1 + 0.02 * (temp - 15)) + rng.normal(0, level * 0.01, hours.size)
        parts.append(pl.DataFrame({
            "ts": [T0 + timedelta(hours=int(h)) for h in hours], "zone": group, "load": load, "temp": temp,
            "humidity": 60 + rng.normal(0, 8, hours.size) + humidity_shift,
            "tariff": np.where((hours % 24 >= 8) & (hours % 24 < 20), "peak", "off"),
            "load_lag_24h": load + rng.normal(0, level * 0.05, hours.size),
            "prediction": load + rng.normal(0, level * error, hours.size),
        }))  # fmt: skip
    return pl.concat(parts).with_columns(pl.col("ts").dt.cast_time_unit("us"))


def reference(days: int = 400, calibrated: bool = True) -> ReferenceData:
    """The champion trained on the first 85 % of `days` and tested on the last 28 days."""
    history = rows(0, days)
    train = history.filter(pl.col("ts") < T0 + timedelta(days=days - 28)).drop("prediction")
    ref = ReferenceData("1", train, history.filter(pl.col("ts") >= T0 + timedelta(days=days - 28)), {}, IMPORTANCE, {})
    if calibrated:
        ref.calibration = calibrate(ref, SPEC, CONFIG)
    return ref


@pytest.fixture(scope="module")
def calibrated_reference() -> ReferenceData:
    return reference()


@pytest.fixture
def champion(calibrated_reference: ReferenceData) -> ReferenceData:
    """A copy per test: judging an uncalibrated reference calibrates it in place."""
    return copy.deepcopy(calibrated_reference)


def test_judged_columns_leave_out_group_target_prediction_and_timestamp(champion):
    assert judged_columns(champion, SPEC) == (["temp", "humidity", "load_lag_24h"], ["tariff"])


def test_an_ordinary_day_does_not_retrain_and_is_compared_with_the_same_hours_a_year_before(champion):
    v = judge_batch(rows(400, 1, seed=1), champion, SPEC, CONFIG)
    assert not v["retrain"] and v["reasons"][0] == NO_TRIGGER
    assert v["reference"]["kind"] == "seasonal" and "same hours of the week" in v["reference"]["description"]
    assert {r["feature"] for r in v["features"]} == {"temp", "humidity", "load_lag_24h", "tariff"}
    assert not any(r["drifted"] for r in v["features"])
    assert v["weighted_drift"] < v["weighted_drift_threshold"] == champion.calibration["drift"]["24"]["seasonal"]["threshold"]
    json.dumps(v, allow_nan=False)


def test_a_warm_day_retrains_on_the_weighted_drift_and_names_the_temperature(champion):
    v = judge_batch(rows(400, 1, temp_shift=15.0, seed=1), champion, SPEC, CONFIG)
    assert v["retrain"] and v["weighted_drift"] > v["weighted_drift_threshold"]
    assert v["reasons"][0].startswith("importance-weighted drift") and "'temp'" in v["reasons"][0]
    assert v["root_causes"][0]["feature"] == "temp" and v["root_causes"][0]["drifted"]
    assert next(r for r in v["features"] if r["feature"] == "temp")["drifted"]


def test_a_shift_of_a_minor_feature_far_beyond_its_ordinary_shift_retrains_on_its_own(champion):
    """Humidity (a tenth of the importance) moves by most of its spread: not enough for the
    weighted drift, far beyond humidity's own ordinary day-to-day shift."""
    v = judge_batch(rows(400, 1, humidity_shift=6.0, seed=1), champion, SPEC, CONFIG)
    assert v["retrain"] and v["weighted_drift"] < v["weighted_drift_threshold"]
    assert len(v["reasons"]) == 1 and v["reasons"][0].startswith("feature humidity shifted far beyond its ordinary shift")
    assert [r["feature"] for r in v["features"] if r["drifted"]] == ["humidity"]
    assert [c["feature"] for c in v["root_causes"]][:1] == ["humidity"]


def test_a_week_is_judged_with_the_weekly_calibration(champion):
    v = judge_batch(rows(400, 7, seed=1), champion, SPEC, CONFIG)
    assert v["weighted_drift_threshold"] == champion.calibration["drift"]["168"]["seasonal"]["threshold"]
    assert "the same hours of the week" not in v["reference"]["description"]


def test_two_weeks_of_doubled_error_retrain_on_the_realized_error(champion):
    calm = judge_batch(rows(400, 14, seed=1), champion, SPEC, CONFIG)
    worse = judge_batch(rows(400, 14, error=0.06, seed=1), champion, SPEC, CONFIG)
    assert calm["realized"]["tested"] and not calm["retrain"]
    assert worse["realized"]["tested"] and worse["retrain"]
    assert worse["realized"]["ratio"] > 2.5 and worse["realized"]["ci_low"] > 1 + CONFIG.realized_mae_tolerance
    assert any(r.startswith("realized MAE") for r in worse["reasons"])


def test_few_labelled_rows_are_not_tested_for_realized_error(champion):
    batch = rows(400, 1, error=0.2, seed=1).with_columns(pl.when(pl.int_range(pl.len()) < 10).then(pl.col("load")).alias("load"))
    v = judge_batch(batch, champion, SPEC, CONFIG)
    assert not v["realized"]["tested"] and v["realized"]["rows"] == 10
    assert v["realized"]["why_not"] == f"10 labelled rows of known groups; the test needs {CONFIG.min_labelled_rows}"
    assert v["reasons"][-1] == f"realized error not tested: {v['realized']['why_not']}"


def test_a_batch_of_new_groups_only_has_nothing_to_judge(champion):
    v = judge_batch(rows(400, 1, levels={"east": 300.0}), champion, SPEC, CONFIG)
    assert not v["retrain"] and v["reasons"] == [NO_KNOWN_GROUP] and v["features"] == []


def test_an_unscored_batch_has_nothing_to_judge(champion):
    batch = rows(400, 1).with_columns(pl.lit(None, dtype=pl.Float64).alias("prediction"))
    assert judge_batch(batch, champion, SPEC, CONFIG)["reasons"] == [NOTHING_TO_JUDGE]
    assert judge_batch(batch.drop("prediction"), champion, SPEC, CONFIG)["reasons"] == [NOTHING_TO_JUDGE]


def test_a_young_champion_is_compared_with_its_recent_rows():
    young = reference(days=120)
    v = judge_batch(rows(120, 1, seed=1), young, SPEC, CONFIG)
    assert v["reference"]["kind"] == "recent" and not v["retrain"]
    assert v["weighted_drift_threshold"] == young.calibration["drift"]["24"]["recent"]["threshold"]
    warm = judge_batch(rows(120, 1, temp_shift=15.0, seed=1), young, SPEC, CONFIG)
    assert warm["retrain"] and warm["reference"]["kind"] == "recent"


def test_an_uncalibrated_champion_is_calibrated_on_the_fly(champion):
    bare = reference(calibrated=False)
    assert_same(judge_batch(rows(400, 1, seed=1), bare, SPEC, CONFIG), judge_batch(rows(400, 1, seed=1), champion, SPEC, CONFIG), rel=1e-12)


def test_the_calibration_measures_both_references_and_the_error_spread(champion):
    calibration = champion.calibration
    json.dumps(calibration, allow_nan=False)
    assert calibration["features"] == ["temp", "humidity", "load_lag_24h", "tariff"]
    assert calibration["weights"] == pytest.approx({"temp": 0.6 / 1.0, "humidity": 0.1, "load_lag_24h": 0.2, "tariff": 0.1})
    day = calibration["drift"]["24"]
    assert day["seasonal"]["windows"] >= 10 and day["recent"]["windows"] >= 10
    assert day["seasonal"]["threshold"] >= day["seasonal"]["median"] > 0
    assert calibration["realized"]["windows"] == 28 and calibration["realized"]["window_hours"] == 24.0
    assert 0.0 <= calibration["realized"]["autocorrelation"] <= 0.9
    assert math.isclose(calibration["alpha"], CONFIG.alpha)


def test_the_realized_error_is_the_batch_mae_over_the_champions_recent_mae_for_the_same_groups(champion):
    """The ratio from the rows themselves, and the interval as the module docstring defines it:
    a one-sided Student-t bound at alpha/3 on the log ratio, centred on its no-drift mean,
    its spread shrunk by the number of days and widened by their autocorrelation."""
    from scipy.stats import t

    batch = rows(400, 14, error=0.03, seed=2)
    v = judge_batch(batch, champion, SPEC, CONFIG)["realized"]
    error = (pl.col("load") - pl.col("prediction")).abs()
    recent = champion.recent.group_by("zone").agg(error.mean().alias("expected"))
    scored = batch.join(recent, on="zone").with_columns(error.alias("error"))
    assert v["rows"] == batch.height and v["tested"] and v["why_not"] is None
    assert v["mae"] == pytest.approx(scored.get_column("error").mean())
    assert v["reference_mae"] == pytest.approx(scored.get_column("expected").mean())
    assert v["ratio"] == pytest.approx(v["mae"] / v["reference_mae"])
    spread = champion.calibration["realized"]  # daily windows, as for a batch longer than a day
    rho = spread["autocorrelation"]
    sd = spread["sd_log_ratio"] * math.sqrt((1 + rho) / (1 - rho) / 14 + 1 / spread["windows"])
    bound = t.ppf(1 - CONFIG.alpha / 3, spread["windows"] - 1) * sd
    center = math.log(v["ratio"]) - spread["mean_log_ratio"]
    assert (v["ci_low"], v["ci_high"]) == pytest.approx((math.exp(center - bound), math.exp(center + bound)))


def test_a_perfect_batch_and_a_champion_without_labelled_rows_are_not_tested(champion):
    perfect = rows(400, 2, seed=1).with_columns(pl.col("load").alias("prediction"))
    v = judge_batch(perfect, champion, SPEC, CONFIG)["realized"]
    assert not v["tested"] and v["why_not"] == "the champion's reference error is 0 or the batch's error is 0"
    assert v["mae"] == 0.0 and v["ratio"] == 0.0 and v["ci_low"] is None
    unlabelled = ReferenceData("1", champion.train_sample, champion.recent.with_columns(pl.lit(None, dtype=pl.Float64).alias("load")),
                               {}, IMPORTANCE, {}, champion.calibration)  # fmt: skip
    v = judge_batch(rows(400, 2, seed=1), unlabelled, SPEC, CONFIG)["realized"]
    assert not v["tested"] and v["why_not"] == "the champion's reference has no labelled recent rows"


def test_the_forecasts_drift_is_measured_against_the_champions_recent_forecasts(champion):
    from mlops_assets.core.drift import ks_and_wasserstein, psi
    from mlops_assets.core.profile import bin_fractions, quantile_bin_edges

    batch = rows(400, 1, temp_shift=5.0, seed=1)
    ref, cur = champion.recent.get_column("prediction").to_numpy(), batch.get_column("prediction").to_numpy()
    d, _, w = ks_and_wasserstein(ref, cur)
    edges = quantile_bin_edges(ref, SPEC.quantile_bins)
    expected = {"ks": d, "psi": psi(bin_fractions(ref, edges), cur, edges), "wasserstein": w}
    assert judge_batch(batch, champion, SPEC, CONFIG)["prediction_drift"] == pytest.approx(expected)


def test_root_causes_list_drifted_features_first_then_by_drift_times_importance(champion):
    v = judge_batch(rows(400, 1, temp_shift=15.0, humidity_shift=6.0, seed=1), champion, SPEC, CONFIG)
    causes = v["root_causes"]
    assert [c["feature"] for c in causes if c["drifted"]] == ["temp", "load_lag_24h", "humidity"]  # the load follows the temperature
    assert [c["drifted"] for c in causes] == sorted((c["drifted"] for c in causes), reverse=True)
    for cause in causes:
        row = next(r for r in v["features"] if r["feature"] == cause["feature"])
        assert cause["drift"] == row["score"] and cause["importance"] == IMPORTANCE[cause["feature"]]
        assert cause["rank_score"] == pytest.approx(row["score"] * IMPORTANCE[cause["feature"]])
    calm = [c["rank_score"] for c in causes if not c["drifted"]]
    assert calm == sorted(calm, reverse=True) and len(causes) == 4
    assert v["top_features"] == ["temp", "load_lag_24h", "humidity"]


def test_a_batch_is_judged_with_the_calibration_of_the_longest_batch_length_up_to_one_and_a_half_times_its_own(champion):
    drift = champion.calibration["drift"]
    for days, hours in ((1, "24"), (3, "24"), (4, "24"), (5, "168"), (14, "168")):
        v = judge_batch(rows(400, days, seed=1), champion, SPEC, CONFIG)
        assert v["weighted_drift_threshold"] == drift[hours][v["reference"]["kind"]]["threshold"], days


def test_a_threshold_missing_for_the_reference_kind_comes_from_the_other_kind(champion):
    only_recent = json.loads(json.dumps(champion.calibration))
    only_recent["drift"]["24"]["seasonal"] = None
    only_recent["drift"]["24"]["largest_feature_z"]["seasonal"] = None
    ref = ReferenceData("1", champion.train_sample, champion.recent, {}, IMPORTANCE, {}, only_recent)
    v = judge_batch(rows(400, 1, temp_shift=15.0, seed=1), ref, SPEC, CONFIG)
    assert v["reference"]["kind"] == "seasonal"
    assert v["weighted_drift_threshold"] == only_recent["drift"]["24"]["recent"]["threshold"]
    assert "no-drift windows of 24 h (recent reference)" in v["reasons"][0]


def test_without_a_calibration_for_the_batch_the_configured_thresholds_decide(champion):
    """A calibration that measured nothing: the weighted drift against `weighted_threshold`,
    and a feature is drifted by the fixed PSI and Wasserstein rule (it triggers nothing alone)."""
    ref = ReferenceData("1", champion.train_sample, champion.recent, {}, IMPORTANCE, {}, {"drift": {}})
    calm = judge_batch(rows(400, 1, seed=1), ref, SPEC, CONFIG)
    assert calm["weighted_drift_threshold"] == CONFIG.weighted_threshold
    warm = judge_batch(rows(400, 1, temp_shift=15.0, seed=1), ref, SPEC, CONFIG)
    temp = next(r for r in warm["features"] if r["feature"] == "temp")
    assert temp["drifted"] and temp["psi"] > CONFIG.psi_threshold and temp["wasserstein"] > CONFIG.wasserstein_threshold
    assert warm["retrain"] and len(warm["reasons"]) == 1
    assert "(uncalibrated: the configured weighted_threshold); drifted: ['temp', 'load_lag_24h']" in warm["reasons"][0]
    humid = judge_batch(rows(400, 1, humidity_shift=6.0, seed=1), ref, SPEC, CONFIG)
    assert next(r for r in humid["features"] if r["feature"] == "humidity")["drifted"]
    assert not any(r.startswith("feature humidity") for r in humid["reasons"])


def test_a_batch_at_new_year_finds_its_season_across_the_turn_of_the_year():
    """Days of the year are circular: 2 January's neighbours include late December."""
    ref = reference(days=400, calibrated=False)
    v = judge_batch(rows(366, 1, seed=3), ref, SPEC, CONFIG)
    assert v["reference"]["kind"] == "seasonal", v["reference"]


def test_naive_timestamps_are_read_as_utc(champion):
    batch = rows(400, 1, temp_shift=15.0, seed=1)
    naive = batch.with_columns(pl.col("ts").dt.replace_time_zone(None))
    assert_same(judge_batch(naive, champion, SPEC, CONFIG), judge_batch(batch, champion, SPEC, CONFIG), rel=1e-12)


def test_a_shift_of_every_group_by_its_own_spread_is_seen_whatever_the_groups_sizes(champion):
    """Loads of 1000 and 50: the lag feature of both groups up by 3 of the group's own SDs."""
    batch = rows(400, 1, seed=1).with_columns((pl.col("load_lag_24h") * 1.15).alias("load_lag_24h"))
    v = judge_batch(batch, champion, SPEC, CONFIG)
    lag = next(r for r in v["features"] if r["feature"] == "load_lag_24h")
    assert lag["drifted"] and lag["score"] > 1.5


def test_a_new_group_next_to_known_ones_is_left_out_of_the_comparison(champion):
    known = rows(400, 1, seed=1)
    with_new = pl.concat([known, rows(400, 1, seed=1, temp_shift=40.0, levels={"east": 5000.0})])
    plain, mixed = judge_batch(known, champion, SPEC, CONFIG), judge_batch(with_new, champion, SPEC, CONFIG)
    assert mixed["features"] == plain["features"] and mixed["weighted_drift"] == plain["weighted_drift"]
    assert mixed["realized"]["rows"] == known.height


def test_a_category_the_champion_never_saw_is_drift(champion):
    batch = rows(400, 1, seed=1).with_columns(pl.lit("critical").alias("tariff"))
    v = judge_batch(batch, champion, SPEC, CONFIG)
    tariff = next(r for r in v["features"] if r["feature"] == "tariff")
    assert tariff["kind"] == "categorical" and tariff["drifted"] and tariff["js"] > 0.9
    assert tariff["score"] == tariff["js"] and tariff["chi2_pvalue"] < 1e-6


def test_judged_columns_follow_the_profile_when_there_is_one(champion):
    profile = {"columns": {"temp": {"kind": "numeric"}, "tariff": {"kind": "categorical"}, "hour": {"kind": "numeric"},
                           "zone": {"kind": "categorical"}, "absent": {"kind": "numeric"}}}  # fmt: skip
    ref = ReferenceData("1", champion.train_sample.with_columns(pl.lit(3).alias("hour")), champion.recent, profile, {}, {})
    assert judged_columns(ref, SPEC) == (["temp"], ["tariff"])


def test_without_importance_every_judged_column_weighs_the_same(champion):
    ref = ReferenceData("1", champion.train_sample, champion.recent, {}, {"temp": float("nan"), "humidity": -1.0}, {})
    weights = calibrate(ref, SPEC, DriftConfig(calibration_hours=(24.0,), calibration_windows=0))["weights"]
    assert weights == {"temp": 0.25, "humidity": 0.25, "load_lag_24h": 0.25, "tariff": 0.25}


def empty_verdict(why: str) -> dict:
    """The whole verdict of a batch with nothing to judge: a judged verdict's keys, empty."""
    return {
        "features": [], "reference": {"kind": "none", "rows": 0, "from": None, "to": None, "description": why},
        "weighted_drift": 0.0, "weighted_drift_threshold": None, "prediction_drift": {},
        "realized": {
            "rows": 0, "mae": None, "reference_mae": None, "ratio": None, "ci_low": None, "ci_high": None, "tested": False,
            "why_not": why,
        },
        "retrain": False, "reasons": [why], "top_features": [], "root_causes": [],
    }  # fmt: skip


def test_nothing_to_judge_is_a_whole_verdict_with_the_shape_of_a_judged_one(champion):
    """Sensors, the drift report and the UI read the same keys whatever the verdict."""
    unscored = rows(400, 1).with_columns(pl.lit(None, dtype=pl.Float64).alias("prediction"))
    v = judge_batch(unscored, champion, SPEC, CONFIG)
    assert v == empty_verdict(NOTHING_TO_JUDGE)
    judged = judge_batch(rows(400, 1, seed=1), champion, SPEC, CONFIG)
    for part in (lambda d: d, lambda d: d["reference"], lambda d: d["realized"]):
        assert set(part(v)) <= set(part(judged))
