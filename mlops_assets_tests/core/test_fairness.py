from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_assets.core.fairness import BiasConfig, bias_report, group_weights, metric_frame
from mlops_assets.core.mitigation import mitigate
from mlops_assets.core.models.data import ModelData, Split
from mlops_assets.core.training_config import load_training_config

RNG = np.random.default_rng(7)


def grouped(levels: dict[str, float], n: int, noise: dict[str, float]):
    groups = np.repeat(list(levels), n)
    y = np.concatenate([np.full(n, lvl) + RNG.normal(0, lvl * 0.05, n) for lvl in levels.values()])
    p = y + np.concatenate([RNG.normal(0, noise[g], n) for g in levels])
    return y, p, groups


def test_metric_frame_matches_direct_computation():
    y, p, g = grouped({"a": 100, "b": 200}, 50, {"a": 1, "b": 5})
    table = metric_frame(y, p, g)
    mask = g == "b"
    row = table.filter(table["group"] == "b").row(0, named=True)
    assert row["mae"] == pytest.approx(np.mean(np.abs(p[mask] - y[mask])))
    assert row["rmse"] == pytest.approx(np.sqrt(np.mean((p[mask] - y[mask]) ** 2)))
    assert row["count"] == 50


def test_a_deliberately_worse_group_is_flagged():
    levels = {g: 1000.0 for g in "abcdef"}
    y, p, g = grouped(levels, 200, {**{k: 5.0 for k in "abcde"}, "f": 120.0})
    report = bias_report(y, p, g, BiasConfig())
    assert report["biased"] and report["flagged"] == ["f"] and not report["passed"]
    assert any("group f" in r for r in report["reasons"])
    row = next(r for r in report["groups"] if r["group"] == "f")
    assert row["gap_ci_low"] > report["limit"]


def test_balanced_data_is_not_flagged():
    y, p, g = grouped({"a": 500, "b": 1500, "c": 900}, 300, {"a": 10, "b": 30, "c": 18})
    report = bias_report(y, p, g, BiasConfig())
    assert not report["biased"] and report["passed"] and report["flagged"] == []


def test_original_rule_flags_big_groups_the_normalized_rule_does_not():
    # Same relative error everywhere; one group is 40x larger, so its absolute MAE is too.
    levels = {"small1": 100, "small2": 100, "small3": 100, "small4": 100, "huge": 4000}
    y, p, g = grouped(levels, 300, {k: v * 0.02 for k, v in levels.items()})
    assert bias_report(y, p, g, BiasConfig(rule="original"))["flagged"] == ["huge"]
    assert bias_report(y, p, g, BiasConfig(rule="normalized"))["flagged"] == []


def test_noise_in_a_small_group_is_not_called_bias():
    y, p, g = grouped({"a": 100, "b": 100, "c": 100}, 400, {"a": 2, "b": 2, "c": 2})
    small_y, small_p = np.array([100.0, 100, 100, 100, 100]), np.array([100.0, 100, 100, 100, 160])
    report = bias_report(np.r_[y, small_y], np.r_[p, small_p], np.r_["0", g, ["d"] * 5], BiasConfig(min_group_rows=5))
    row = next(r for r in report["groups"] if r["group"] == "d")
    assert abs(row["gap"]) > report["limit"] and row["status"] == "within_noise" and not report["biased"]


def test_single_series_passes_with_that_reason():
    report = bias_report(np.ones(10), np.ones(10), None, BiasConfig())
    assert report["passed"] and not report["grouped"] and "single series" in report["reasons"][0]


def test_too_few_rows_and_missing_groups_fail_and_are_reported():
    y, p, g = grouped({"a": 100, "b": 100}, 100, {"a": 1, "b": 1})
    report = bias_report(np.r_[y, [100.0] * 3], np.r_[p, [100.0] * 3], np.r_["0", g, ["tiny"] * 3], BiasConfig(), expected_groups=["a", "b", "gone", "tiny"])
    statuses = {r["group"]: r["status"] for r in report["groups"]}
    assert statuses["tiny"] == "too_few_rows" and statuses["gone"] == "missing_from_test"
    assert not report["passed"] and not report["biased"]
    assert any("gone: no rows in the test period" in r for r in report["reasons"])


def test_empty_test_data_fails():
    assert not bias_report(np.array([]), np.array([]), np.array([]), BiasConfig())["passed"]


def test_group_weights():
    g = np.array(["a"] * 90 + ["b"] * 10)
    w = group_weights(g, "balanced")
    assert w[g == "a"].sum() == pytest.approx(w[g == "b"].sum()) and w.mean() == pytest.approx(1)
    w2 = group_weights(g, "error_aware", {"a": 0.1, "b": 0.3})
    assert w2[g == "b"][0] == pytest.approx(3 * w2[g == "a"][0])


def _split(groups: np.ndarray, x: np.ndarray, y: np.ndarray, start: datetime) -> Split:
    ts = np.array([start + timedelta(hours=i) for i in range(len(y))], dtype="datetime64[us]")
    return Split(X=pd.DataFrame({"t": ts, "g": groups, "x": x}), y=y, timestamps=ts, groups=groups)


def test_reweighting_shrinks_the_gap_of_an_underrepresented_group():
    """Ridge shrinks the offset of a rare group ('c', 30 training rows) towards the others;
    balanced weights give 'c' the effective sample size to learn its own offset."""
    def make(n_major: int, n_minor: int, start: datetime) -> Split:
        g = np.array(["a"] * n_major + ["b"] * n_major + ["c"] * n_minor)
        x = RNG.uniform(0, 10, len(g))
        y = 100 + x + np.where(g == "c", 30.0, 0.0) + RNG.normal(0, 0.5, len(g))
        order = RNG.permutation(len(g))
        return _split(g[order], x[order], y[order], start)

    data = ModelData(
        train=make(600, 30, datetime(2024, 1, 1)), validation=make(200, 60, datetime(2024, 3, 1)), test=make(200, 60, datetime(2024, 4, 1)),
        feature_columns=["g", "x"], categorical=["g"], numeric=["x"], timestamp="t", group="g",
    )
    from mlops_assets.core.models.tabular import train_linear

    config = replace(load_training_config("fast"), linear_space={"alpha": [50.0]}, linear_iterations=1)
    candidate, _, _ = train_linear(data, config)
    chosen, variants, reason = mitigate(candidate, data, config, BiasConfig(normalized_threshold=0.5, min_group_rows=10), tolerance=0.05, expected=["a", "b", "c"])
    before = variants[0]
    assert "c" in before.test["flagged"]
    assert chosen.name in ("balanced", "error_aware"), reason
    assert chosen.test["largest_abs_gap"] < before.test["largest_abs_gap"] / 2
    assert chosen.validation_mae <= before.validation_mae * 1.05
    assert not chosen.test["flagged"]


def test_mitigation_keeps_the_candidate_when_weights_cannot_help():
    def make(start: datetime) -> Split:
        g = np.array(["a"] * 200 + ["b"] * 200)
        x = RNG.uniform(0, 10, 400)
        y = 100 + x + np.where(g == "b", RNG.normal(0, 30, 400), 0)  # pure noise in b
        return _split(g, x, y, start)

    data = ModelData(make(datetime(2024, 1, 1)), make(datetime(2024, 2, 1)), make(datetime(2024, 3, 1)), ["g", "x"], ["g"], ["x"], "t", "g")
    from mlops_assets.core.models.tabular import train_linear

    config = load_training_config("fast")
    candidate, _, _ = train_linear(data, config)
    chosen, _, reason = mitigate(candidate, data, config, BiasConfig(normalized_threshold=0.2), tolerance=0.0, expected=["a", "b"])
    assert chosen.name == "candidate" and reason.startswith("kept the candidate")
