"""The retrain decision with a known false-alarm rate (core.drift.calibrate / judge_batch) on
real-shaped data: the demo simulator's hourly subregions, a 30-minute single series and daily
data per group. The champion here is a plain forecaster (the mean of the day-before and
week-before values, from the feature rows' baselines): the decision rules do not depend on the
model, and the benchmark (bench/monitoring_alarms.py) runs them with a trained XGBoost model."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from mlops_assets.core.drift import NOTHING_TO_JUDGE, DriftConfig, calibrate, judge_batch
from mlops_assets.core.features import batch_features, build_features, feature_columns
from mlops_assets.core.profile import build_profile
from mlops_assets.core.reference import build_reference
from mlops_assets.core.simulate import SimulationConfig, simulate_frame
from mlops_assets.core.spec import load_spec, spec_from_dict

START = date(2024, 1, 1)
# Calibration of one batch length (the default measures a day and a week).
CONFIG = DriftConfig(calibration_hours=(24.0,))
WEEKLY = DriftConfig(calibration_hours=(168.0,))


def forecast(rows: pl.DataFrame) -> np.ndarray:
    day, week = (rows.get_column(c).cast(pl.Float64) for c in ("baseline_day_before", "baseline_seasonal_naive"))
    return ((week.fill_null(day) + day.fill_null(week)) / 2).fill_null(0.0).to_numpy()


def model_shares(train: pl.DataFrame, spec) -> dict[str, float]:
    """A stand-in for the SHAP shares of a load model: 30 % on the temperature, 30 % on the
    day-before load, the rest spread over the other numeric inputs."""
    from mlops_assets.core.features import target_lag_columns

    numeric = [c for c in feature_columns(spec) if c != spec.group and train.schema[c] != pl.String]
    main = {spec.temperature_column: 0.3, target_lag_columns(spec)[0]: 0.3}
    rest = [c for c in numeric if c not in main]
    return {**{c: 0.4 / len(rest) for c in rest}, **main}


@dataclass
class Scenario:
    spec: object
    history: pl.DataFrame
    reference: object
    frame: callable  # (start day, days, drift) -> clean rows as the simulator lands them

    def scored(self, first: date, days: int, drift: float = 0.0) -> pl.DataFrame:
        """A batch of `days` days from `first` scored by the champion, with its actuals."""
        ts = pl.col(self.spec.timestamp)
        batch = self.frame(first, days, drift)
        earlier = self.frame(START, (first - START).days, 0.0) if first > START else self.history.head(0)
        features = batch_features(earlier.filter(ts >= batch.get_column(self.spec.timestamp).min() - timedelta(days=10)), batch, self.spec)
        return features.with_columns(pl.Series("prediction", forecast(features)))


def scenario(spec, frame, history_days: int, config: DriftConfig) -> Scenario:
    history = frame(START, history_days, 0.0)
    features, _ = build_features(history, spec)
    ts = features.get_column(spec.timestamp)
    train = features.filter(pl.col(spec.timestamp) < ts.quantile(0.7))
    test = features.filter(pl.col(spec.timestamp) >= ts.quantile(0.85))
    numeric = [c for c in feature_columns(spec) if c != spec.group and train.schema[c] != pl.String]
    group = [spec.group] if spec.group else []
    profile = build_profile(train, numeric=numeric, categorical=group, bins=spec.quantile_bins, group=spec.group, timestamp=spec.timestamp)
    reference = build_reference(
        "1", train, test, forecast, columns=[*spec.key_columns, *feature_columns(spec), spec.target.column],
        timestamp=spec.timestamp, profile=profile, importance=model_shares(train, spec), scales={},
        data_versions={}, reference_rows=100_000, recent_days=28,
    )
    reference.calibration = calibrate(reference, spec, config)
    return Scenario(spec, history, reference, frame)


# ---------------------------------------------------------------- the three shapes of data


HOURLY = load_spec()


def hourly_frame(first: date, days: int, drift: float) -> pl.DataFrame:
    return simulate_frame(HOURLY, SimulationConfig(start=first, days=days, groups=3, drift=drift, defects=False))


HALF_HOURLY = spec_from_dict({
    "name": "demand", "frequency": "30min", "timestamp": {"column": "settlement_date", "timezone": "Australia/Melbourne"},
    "group": None, "target": {"column": "demand_mw", "min": 0},
    "features": {"numeric": [{"column": "temperature_c", "min": -20, "max": 50}], "temperature": "temperature_c"},
    "calendar": {"holidays_country": "AU"},
    "preparation": {"horizon": "24h", "lags": ["24h", "48h", "7d"], "rolling_windows": ["24h", "7d"]},
})


def half_hourly_frame(first: date, days: int, drift: float) -> pl.DataFrame:
    """The simulator's single series, interpolated to 30 minutes."""
    hourly = simulate_frame(HALF_HOURLY, SimulationConfig(start=first - timedelta(days=1), days=days + 2, groups=1, drift=drift, defects=False))
    ts = HALF_HOURLY.timestamp
    fine = hourly.sort(ts).upsample(ts, every="30m").interpolate()
    lo = pl.datetime(first.year, first.month, first.day, time_zone="UTC")
    return fine.filter((pl.col(ts) >= lo) & (pl.col(ts) < lo + pl.duration(days=days)))


DAILY = spec_from_dict({
    "name": "daily_load", "frequency": "1d", "timestamp": {"column": "day", "timezone": "America/New_York"},
    "group": {"column": "zone"}, "target": {"column": "load_mwh", "min": 0},
    "features": {"numeric": [{"column": "temperature_c", "min": -60, "max": 60}, {"column": "relative_humidity", "min": 0, "max": 100}], "temperature": "temperature_c"},
    "calendar": {"holidays_country": "US"},
    "preparation": {"horizon": "24h", "lags": ["24h", "48h", "7d"], "rolling_windows": ["7d"]},
})


def daily_frame(first: date, days: int, drift: float) -> pl.DataFrame:
    """Daily totals (load) and means (weather) of the simulator's hourly subregions, stamped
    at each local midnight."""
    hourly = simulate_frame(HOURLY, SimulationConfig(start=first, days=days + 1, groups=4, drift=drift, defects=False))
    local_day = pl.col(HOURLY.timestamp).dt.convert_time_zone(DAILY.timezone).dt.date().alias("d")
    daily = hourly.group_by(local_day, pl.col(HOURLY.group).alias("zone")).agg(
        pl.col(HOURLY.target.column).sum().alias("load_mwh"), pl.col("temperature_c").mean(), pl.col("relative_humidity").mean(), pl.len().alias("n")
    )
    daily = daily.filter((pl.col("n") >= 23) & (pl.col("d") >= first) & (pl.col("d") < first + timedelta(days=days)))
    day = pl.col("d").cast(pl.Datetime("us")).dt.replace_time_zone(DAILY.timezone).dt.convert_time_zone("UTC").alias("day")
    return daily.select(day, "zone", "load_mwh", "temperature_c", "relative_humidity").sort("zone", "day")


@pytest.fixture(scope="module")
def hourly() -> Scenario:
    return scenario(HOURLY, hourly_frame, 400, CONFIG)


@pytest.fixture(scope="module")
def half_hourly() -> Scenario:
    return scenario(HALF_HOURLY, half_hourly_frame, 120, CONFIG)


@pytest.fixture(scope="module")
def daily() -> Scenario:
    return scenario(DAILY, daily_frame, 420, WEEKLY)


def verdicts(s: Scenario, first: date, batches: int, days: int, drift: float, config: DriftConfig) -> list[dict]:
    out = []
    for i in range(batches):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out.append(judge_batch(s.scored(first + timedelta(days=i * days), days, drift), s.reference, s.spec, config))
    return out


def assert_clean(verdict: dict) -> None:
    """Every figure finite (JSON without NaN) and the contract's keys."""
    json.dumps(verdict, allow_nan=False)
    assert set(verdict) == {
        "features", "reference", "weighted_drift", "weighted_drift_threshold", "prediction_drift", "realized", "retrain",
        "reasons", "top_features", "root_causes",
    }
    assert set(verdict["realized"]) == {"rows", "mae", "reference_mae", "ratio", "ci_low", "ci_high", "tested", "why_not"}
    assert math.isfinite(verdict["weighted_drift"])


# ---------------------------------------------------------------- hourly subregions


def test_hourly_ordinary_days_mostly_do_not_retrain(hourly):
    """Fifteen ordinary days after the champion's data: at most one says retrain (alpha 2 %)."""
    out = verdicts(hourly, START + timedelta(days=400), 15, 1, 0.0, CONFIG)
    for v in out:
        assert_clean(v)
    assert sum(v["retrain"] for v in out) <= 1, [v["reasons"] for v in out if v["retrain"]]
    assert {v["reference"]["kind"] for v in out} == {"seasonal"}
    assert "same hours of the week" in out[0]["reference"]["description"]


def test_hourly_calendar_group_and_baselines_are_not_judged(hourly):
    v = verdicts(hourly, START + timedelta(days=400), 1, 1, 0.0, CONFIG)[0]
    judged = {r["feature"] for r in v["features"]}
    assert "temperature_c" in judged and "load_mw_lag_24h" in judged
    assert not judged & {"hour", "day_of_week", "day_of_year_sin", "is_holiday", HOURLY.group, "baseline_day_before", "load_mw"}


def test_hourly_a_12_degree_shift_retrains_on_the_first_day(hourly):
    v = verdicts(hourly, START + timedelta(days=400), 1, 1, 12.0, CONFIG)[0]
    assert_clean(v)
    assert v["retrain"] and v["weighted_drift"] > v["weighted_drift_threshold"]
    assert "importance-weighted drift" in v["reasons"][0] and "temperature_c" in v["reasons"][0]
    assert v["root_causes"][0]["feature"].startswith("temperature_c")


def doubled(scored: pl.DataFrame, spec) -> pl.DataFrame:
    """The same batch with every error twice as large."""
    y, p = pl.col(spec.target.column), pl.col("prediction")
    return scored.with_columns((y + 2 * (p - y)).alias("prediction"))


def test_doubled_realized_error_retrains_with_enough_labelled_rows(hourly):
    """Two weeks of doubled error: a day's MAE varies too much for one day to be evidence."""
    scored = hourly.scored(START + timedelta(days=400), 14)
    calm = judge_batch(scored, hourly.reference, HOURLY, CONFIG)
    worse = judge_batch(doubled(scored, HOURLY), hourly.reference, HOURLY, CONFIG)
    assert calm["realized"]["tested"] and not calm["retrain"]
    assert worse["realized"]["tested"] and worse["retrain"]
    assert worse["realized"]["ratio"] == pytest.approx(2 * calm["realized"]["ratio"])
    assert worse["realized"]["ci_low"] > 1 + CONFIG.realized_mae_tolerance > calm["realized"]["ci_low"]
    assert any(r.startswith("realized MAE") for r in worse["reasons"])


def test_doubled_realized_error_with_too_few_labelled_rows_is_not_tested(hourly):
    def first_12_labelled(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(pl.when(pl.int_range(pl.len()) < 12).then(pl.col(HOURLY.target.column)).alias(HOURLY.target.column))

    scored = hourly.scored(START + timedelta(days=400), 7)
    v = judge_batch(first_12_labelled(doubled(scored, HOURLY)), hourly.reference, HOURLY, CONFIG)
    assert_clean(v)
    assert not v["realized"]["tested"] and v["realized"]["rows"] == 12 and "12 labelled rows" in v["realized"]["why_not"]
    # untested, yet reported: the ratio of those 12 rows, twice what it is with the errors as they were
    as_they_were = judge_batch(first_12_labelled(scored), hourly.reference, HOURLY, CONFIG)["realized"]
    assert not v["retrain"] and v["realized"]["ratio"] == pytest.approx(2 * as_they_were["ratio"])


# ---------------------------------------------------------------- a 30-minute single series


def test_half_hourly_single_series(half_hourly):
    first = START + timedelta(days=120)
    calm = verdicts(half_hourly, first, 10, 1, 0.0, CONFIG)
    assert sum(v["retrain"] for v in calm) <= 1, [v["reasons"] for v in calm if v["retrain"]]
    shifted = verdicts(half_hourly, first, 2, 1, 12.0, CONFIG)
    assert any(v["retrain"] for v in shifted)
    for v in calm + shifted:
        assert_clean(v)
        assert v["realized"]["rows"] == 48 and v["realized"]["tested"]


# ---------------------------------------------------------------- daily data per group, weekly batches


def test_daily_weekly_batches(daily):
    first = START + timedelta(days=420)
    calm = verdicts(daily, first, 6, 7, 0.0, WEEKLY)
    assert sum(v["retrain"] for v in calm) <= 1, [v["reasons"] for v in calm if v["retrain"]]
    shifted = verdicts(daily, first, 1, 7, 12.0, WEEKLY)[0]
    assert shifted["retrain"] and shifted["weighted_drift"] > shifted["weighted_drift_threshold"]
    for v in [*calm, shifted]:
        assert_clean(v)


# ---------------------------------------------------------------- nothing or almost nothing to judge


def test_an_unscored_batch_says_so(hourly):
    scored = hourly.scored(START + timedelta(days=400), 1)
    for empty in (scored.head(0), scored.with_columns(pl.lit(None, dtype=pl.Float64).alias("prediction"))):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            v = judge_batch(empty, hourly.reference, HOURLY, CONFIG)
        assert_clean(v)
        assert not v["retrain"] and v["reasons"] == [NOTHING_TO_JUDGE] and v["features"] == [] and v["weighted_drift"] == 0.0


def test_one_row_and_unlabelled_batches_are_finite(hourly):
    scored = hourly.scored(START + timedelta(days=400), 1)
    unlabelled = scored.with_columns(pl.lit(None, dtype=pl.Float64).alias(HOURLY.target.column))
    for batch in (scored.head(1), unlabelled):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            v = judge_batch(batch, hourly.reference, HOURLY, CONFIG)
        assert_clean(v)
        assert not v["realized"]["tested"]


def test_a_reference_without_history_or_calibration_still_judges(hourly):
    """An old version's reference (no calibration, two training rows, no recent rows): judged
    on the fly, never NaN."""
    ref = hourly.reference
    bare = type(ref)(version="0", train_sample=ref.train_sample.head(2), recent=ref.recent.head(0), profile=ref.profile, importance={}, scales={})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calibration = calibrate(bare, HOURLY, CONFIG)
        v = judge_batch(hourly.scored(START + timedelta(days=400), 1), bare, HOURLY, CONFIG)
    json.dumps(calibration, allow_nan=False)
    assert_clean(v)
    assert v["reference"]["kind"] == "recent" and not v["realized"]["tested"]


def test_the_calibration_is_json_and_measures_both_references(hourly):
    calibration = hourly.reference.calibration
    json.dumps(calibration, allow_nan=False)
    day = calibration["drift"]["24"]
    assert day["seasonal"]["windows"] >= 10 and day["recent"]["windows"] >= 10
    assert day["seasonal"]["threshold"] >= day["seasonal"]["median"] > 0
    assert calibration["realized"]["windows"] >= CONFIG.min_error_windows
