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


def test_single_series_verdict_shows_overall_errors_and_leaves_out_missing_actuals():
    y = np.array([100.0, 110.0, np.nan, 90.0])
    p = np.array([101.0, 108.0, 95.0, 93.0])
    report = bias_report(y, p, None, BiasConfig())
    assert report["passed"] and not report["biased"] and report["verdict"] == "single series: nothing to compare"
    assert report["overall"]["count"] == 3 and report["excluded_rows"] == 1
    assert report["overall"]["mae"] == pytest.approx(2.0) and report["largest_abs_gap"] == 0.0
    assert "MAE 2," in report["reasons"][0] and report["reasons"][0].startswith("single series: nothing to compare")
    assert not bias_report(np.array([np.nan]), np.array([1.0]), None, BiasConfig())["passed"]


AWKWARD = ["Zürich (Nord)/A", "R&D <1>", "O'Brien", 'say "hi"']


def test_awkward_group_labels_are_kept_as_they_are():
    y, p, g = grouped(dict.fromkeys(AWKWARD, 100.0), 60, dict.fromkeys(AWKWARD, 1.0))
    report = bias_report(y, p, g, BiasConfig())
    assert sorted(r["group"] for r in report["groups"]) == sorted(AWKWARD) and report["passed"]
    assert report["overall"]["count"] == 240


def test_mape_is_absent_for_a_group_whose_target_crosses_zero():
    y = np.r_[np.linspace(-50, 50, 48), np.full(48, 100.0)]
    g = np.r_[["net"] * 48, ["plain"] * 48]
    report = bias_report(y, y + 1.0, g, BiasConfig())
    mape = {r["group"]: r["mape"] for r in report["groups"]}
    assert np.isnan(mape["net"]) and mape["plain"] == pytest.approx(1.0)


def test_gap_plot_draws_awkward_labels():
    from mlops_assets.core.plots import axis_labels, gap_plot

    png = gap_plot([*AWKWARD, "cost $5"], [0.1] * 5, [0.0] * 5, [0.2] * 5, 0.5, {"R&D <1>"}, "gaps")
    assert png.startswith(b"\x89PNG") and axis_labels(["cost $5"]) == [r"cost \$5"]


def test_markdown_tables_show_labels_as_written():
    import polars as pl

    from mlops_assets.defs.metadata import markdown_table

    text = markdown_table(pl.DataFrame({"group": ["a|b", "R&D <1>"], "mae": [1.0, float("nan")]})).value
    assert "a\\|b" in text and "R&D \\<1\\>" in text and "n/a" in text


def test_normalized_rule_with_training_scales_does_not_flag_a_net_load_near_zero():
    """Same forecastability everywhere (MAE half the seasonal-naive MAE), but one group's
    target swings around zero: by WAPE it looks many times worse and is flagged; scaled by its
    seasonal-naive MAE from training (MASE) it is not."""
    import polars as pl

    from mlops_assets.core.fairness import naive_scales

    rng = np.random.default_rng(5)
    hours = np.arange(600)
    levels = {"town": 1000.0 + 200 * np.sin(hours / 24 * 2 * np.pi), "net (solar)": 40 * np.sin(hours / 24 * 2 * np.pi)}
    scale = {"town": 40.0, "net (solar)": 4.0}
    y = np.concatenate(list(levels.values()))
    g = np.repeat(list(levels), len(hours))
    p = y + np.concatenate([rng.normal(0, scale[k] * 0.5 * np.sqrt(np.pi / 2), len(hours)) for k in levels])
    assert bias_report(y, p, g, BiasConfig())["flagged"] == ["net (solar)"]
    naive = y + np.concatenate([rng.choice([-1, 1], len(hours)) * scale[k] for k in levels])
    train = pl.DataFrame({"zone": g, "y": y, "naive": naive})
    scales = naive_scales(train.lazy(), "y", "naive", "zone")
    assert scales == pytest.approx(scale)
    report = bias_report(y, p, g, BiasConfig(), scales=scales)
    assert report["flagged"] == [] and report["passed"]
    assert "(MASE): the target of net (solar)" in report["normalized_by"]
    assert bias_report(y, p, g, BiasConfig(), scales={"town": 40.0})["normalized_by"].endswith("(WAPE)")  # never a mix


def test_normalized_rule_keeps_wape_while_every_target_is_far_from_zero():
    y, p, g = grouped({"a": 100.0, "b": 100.0, "c": 100.0}, 200, {"a": 1.0, "b": 1.0, "c": 25.0})
    noisy_everywhere = {"a": 1.0, "b": 1.0, "c": 25.0}  # c as hard for seasonal naive as for the model
    report = bias_report(y, p, g, BiasConfig(), scales=noisy_everywhere)
    assert report["normalized_by"].endswith("(WAPE)") and report["flagged"] == ["c"]


def test_new_and_retired_groups_are_listed_not_judged_while_established_ones_still_fail():
    y, p, g = grouped({"a": 100, "b": 100}, 100, {"a": 1, "b": 1})
    # A new group with 3 test rows and terrible errors, and a retired group with no test rows.
    y, p, g = np.r_[y, [100.0] * 3], np.r_[p, [400.0] * 3], np.r_["0", g, ["Zone A/B (ö)"] * 3]
    roles = {"established": ["a", "b"], "new": ["Zone A/B (ö)"], "retired": ["gone"]}
    report = bias_report(y, p, g, BiasConfig(), expected_groups=roles)
    rows = {r["group"]: r for r in report["groups"]}
    assert report["passed"] and not report["flagged"] and report["missing_groups"] == []
    assert rows["Zone A/B (ö)"]["status"] == "new_group" and rows["Zone A/B (ö)"]["count"] == 3
    assert rows["Zone A/B (ö)"]["mae"] == pytest.approx(300.0) and rows["gone"] == {"group": "gone", "count": 0, "status": "retired"}
    assert report["new_groups"] == ["Zone A/B (ö)"] and report["retired_groups"] == ["gone"]
    assert "group Zone A/B (ö): new group, too young to be judged; 3 test rows, listed, not judged" in report["reasons"]
    # The new group's errors are left out of the overall error the gaps are measured against.
    alone = bias_report(y[:200], p[:200], g[:200], BiasConfig(), expected_groups=["a", "b"])
    assert report["overall_mae"] == alone["overall_mae"] and report["largest_abs_gap"] == alone["largest_abs_gap"]
    # Without the roles the same data fails: the new group has too few rows, the retired one is missing.
    assert not bias_report(y, p, g, BiasConfig(), expected_groups=["a", "b", "gone", "Zone A/B (ö)"])["passed"]
    # An established group missing from the test data still fails, whatever else is listed.
    missing = bias_report(y, p, g, BiasConfig(), expected_groups={**roles, "established": ["a", "b", "c"]})
    assert not missing["passed"] and missing["missing_groups"] == ["c"]
