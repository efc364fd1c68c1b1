"""Forecast metrics against the two baselines, MAPE only where it means something, and group
labels that MLflow and file systems accept."""

import re

import numpy as np
import pytest

from mlops_assets.core.metrics import (
    baseline_metrics,
    comparison,
    forecast_metrics,
    group_key_table,
    group_scales,
    mase_scale,
    metrics_by_group,
    regression_metrics,
    safe_key,
)
from mlops_assets.core.promotion import PromotionPolicy, performance_threshold

# Four rows with both baselines, a fifth without seasonal naive (left out of every comparison).
Y = np.array([10.0, 12.0, 14.0, 16.0, 20.0])
P = np.array([11.0, 12.0, 13.0, 18.0, 30.0])
BASE = {
    "seasonal_naive": np.array([8.0, 12.0, 17.0, 16.0, np.nan]),
    "day_before": np.array([10.0, 10.0, 14.0, 20.0, 19.0]),
}
# Training split: |seasonal naive - y| = 1, 2, 0, 0, 0 -> in-sample scale 0.6.
Y_TRAIN, SNAIVE_TRAIN = np.array([5.0, 7.0, 9.0, 11.0, 13.0]), np.array([4.0, 9.0, 9.0, 11.0, 13.0])


def test_mase_and_skill_match_a_hand_computed_example():
    scale = mase_scale(Y_TRAIN, SNAIVE_TRAIN)
    assert scale == pytest.approx(0.6)
    m = forecast_metrics(Y, P, BASE, scale)
    assert m["mae"] == pytest.approx((1 + 0 + 1 + 2 + 10) / 5)  # every scored row
    assert m["baseline_rows"] == 4 and m["compared_mae"] == pytest.approx(1.0)
    assert m["seasonal_naive_mae"] == pytest.approx(1.25) and m["day_before_mae"] == pytest.approx(1.5)
    assert m["skill"] == pytest.approx(1 - 1.0 / 1.25)
    assert m["skill_day_before"] == pytest.approx(1 - 1.0 / 1.5)
    assert m["mase"] == pytest.approx(2.8 / 0.6)


def test_baselines_are_scored_on_the_same_rows_as_the_model():
    base = baseline_metrics(Y, BASE, 0.6)
    assert base["seasonal_naive"]["n"] == base["day_before"]["n"] == 4
    assert base["seasonal_naive"]["mae"] == pytest.approx(1.25)
    assert base["seasonal_naive"]["skill"] == pytest.approx(0.0)
    assert base["day_before"]["rmse"] == pytest.approx(np.sqrt((0 + 4 + 0 + 16) / 4))
    assert base["day_before"]["skill"] == pytest.approx(1 - 1.5 / 1.25)
    both = comparison(Y, P, BASE, 0.6)
    assert both["model"]["n"] == 4 and both["model"]["mae"] == pytest.approx(1.0)
    assert both["model"]["mase"] == pytest.approx(1.0 / 0.6)


def test_without_baselines_skill_and_mase_are_nan_and_the_gate_refuses():
    m = forecast_metrics(Y, P)
    assert np.isnan(m["skill"]) and np.isnan(m["mase"]) and m["baseline_rows"] == 0
    many = {**m, "n": 500}
    assert not performance_threshold(many, PromotionPolicy()).passed


def test_the_gate_refuses_the_seasonal_naive_forecast_itself_and_passes_a_better_one():
    rng = np.random.default_rng(0)
    y = 100 + rng.normal(0, 10, 200)
    base = {"seasonal_naive": y + rng.normal(0, 5, 200), "day_before": y + rng.normal(0, 4, 200)}
    naive = forecast_metrics(y, base["seasonal_naive"], base, 5.0)
    assert naive["skill"] == pytest.approx(0.0)
    assert not performance_threshold(naive, PromotionPolicy()).passed
    better = forecast_metrics(y, y + rng.normal(0, 1, 200), base, 5.0)
    verdict = performance_threshold(better, PromotionPolicy())
    assert better["skill"] > 0.5 and verdict.passed and "vs seasonal naive" in verdict.reason


def test_mape_is_absent_with_a_reason_when_the_target_crosses_zero():
    y = np.array([-5.0, 3.0, 10.0, 12.0])
    m = regression_metrics(y, y + 1)
    assert np.isnan(m["mape"]) and "not strictly positive (min -5)" in m["mape_absent_reason"]
    near_zero = np.r_[np.full(95, 100.0), np.full(5, 0.5)]  # 1st percentile 0.5 < 10 % of the median 100
    m = regression_metrics(near_zero, near_zero + 1)
    assert np.isnan(m["mape"]) and "comes near zero" in m["mape_absent_reason"]
    positive = regression_metrics(np.array([100.0, 200.0]), np.array([110.0, 180.0]))
    assert positive["mape"] == pytest.approx(10.0) and positive["mape_absent_reason"] is None


def test_a_single_series_is_labelled_all_and_scaled_by_its_training_error():
    table = metrics_by_group(Y, P, None, BASE, {"all": 0.6})
    assert table.get_column("group").to_list() == ["all"]
    row = table.row(0, named=True)
    assert row["skill"] == pytest.approx(0.2) and row["mase"] == pytest.approx(2.8 / 0.6)
    assert row["baseline_seasonal_naive_mae"] == pytest.approx(1.25)
    assert row["baseline_day_before_rmse"] == pytest.approx(np.sqrt(5))


def test_group_metrics_use_each_groups_rows_and_scale():
    groups = np.array(["b", "a", "b", "a", "a"])
    y_train, snaive_train = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 6.0, 4.0])
    scales = group_scales(y_train, snaive_train, np.array(["a", "b", "a", "b"]))
    assert scales == {"overall": pytest.approx(1.0), "by_group": {"a": pytest.approx(2.0), "b": pytest.approx(0.0)}}
    table = metrics_by_group(Y, P, groups, BASE, {"a": 2.0, "b": 0.5})
    a = table.filter(table["group"] == "a").row(0, named=True)
    # group a: rows 1, 3, 4 -> errors 0, 2, 10; compared rows 1, 3: model 0 and 2, seasonal naive 0 and 0
    assert a["mae"] == pytest.approx(4.0) and a["mase"] == pytest.approx(2.0) and a["baseline_rows"] == 2
    assert np.isnan(a["skill"])  # seasonal naive is perfect on a's compared rows: no skill can be defined
    b = table.filter(table["group"] == "b").row(0, named=True)
    assert b["skill"] == pytest.approx(1 - 1.0 / 2.5) and b["mase"] == pytest.approx(1.0 / 0.5)


AWKWARD = ["Zürich (Nord)/A", "R&D <1>", "O'Brien", "R&D (1)", "a b", "", "all", "x_y-1.2"]


def test_safe_keys_are_accepted_names_unique_and_reversible():
    keys = [safe_key(label) for label in AWKWARD]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", k) for k in keys)
    assert len(set(keys)) == len(AWKWARD)
    assert safe_key("all") == "all" and safe_key("x_y-1.2") == "x_y-1.2"  # clean labels stay as they are
    assert safe_key("Zürich (Nord)/A").startswith("Zurich_Nord_A_")
    table = group_key_table(AWKWARD + ["O'Brien"])
    assert table.height == len(AWKWARD)
    assert dict(zip(table["key"], table["group"])) == dict(zip(keys, AWKWARD))
