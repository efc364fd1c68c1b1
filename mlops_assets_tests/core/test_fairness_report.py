"""Exact contents of the bias report: every key and value of the single-series, empty and
grouped verdicts recomputed by hand (errors, gaps, limits, bootstrap intervals), the
boundaries of the flagging rule, the lifecycle listing, the training weights and the report
table."""

import math

import numpy as np
import polars as pl
import pytest

from mlops_assets.core.fairness import (
    BiasConfig,
    bias_report,
    group_weights,
    naive_scales,
    overall_errors,
    report_table,
    uses_scales,
)
from mlops_assets_tests.compare import assert_same

REPORT_KEYS = {
    "rule", "grouped", "threshold", "overall", "excluded_rows", "overall_mae", "overall_nmae", "normalized_by",
    "limit", "biased", "passed", "flagged", "missing_groups", "reasons", "groups", "largest_abs_gap",
    "new_groups", "retired_groups",
}
ROW_KEYS = {"group", "mae", "rmse", "mape", "count", "nmae", "gap", "gap_ci_low", "gap_ci_high", "limit", "status"}
TABLE_COLUMNS = ["group", "count", "mae", "rmse", "mape", "nmae", "gap", "gap_ci_low", "gap_ci_high", "status"]
SINGLE = "single series: nothing to compare"
WAPE = "mean |actual| (WAPE)"


def nan_overall():
    return {"mae": math.nan, "rmse": math.nan, "mape": math.nan, "nmae": math.nan, "count": 0}


def bootstrap_interval(y, p, g, rule, draws, seed, group):
    """The 2.5 / 97.5 percentiles of a group's bootstrapped gap, resampling rows within each
    group of at least 2 rows, groups in sorted order, from one generator."""
    rng = np.random.default_rng(seed)
    err_sum, act_sum, size = {}, {}, {}
    for name in sorted(set(g)):
        err, act = np.abs(p - y)[g == name], np.abs(y)[g == name]
        if len(err) < 2:
            continue
        idx = rng.integers(0, len(err), size=(draws, len(err)))
        err_sum[name], act_sum[name], size[name] = err[idx].sum(axis=1), act[idx].sum(axis=1), len(err)
    if rule == "normalized":
        gap = err_sum[group] / act_sum[group] - sum(err_sum.values()) / sum(act_sum.values())
    else:
        gap = err_sum[group] / size[group] - sum(err_sum.values()) / sum(size.values())
    return np.percentile(gap, [2.5, 97.5])


def three_groups():
    """30 interleaved rows of groups a, b, c (c much worse), and two rows without an actual or
    a prediction."""
    rng = np.random.default_rng(3)
    g = np.array(list("abc") * 10)
    y = rng.uniform(50, 150, 30)
    p = y + rng.normal(0, 1, 30) * np.where(g == "c", 40.0, 2.0)
    return np.r_[y, np.nan, 80.0], np.r_[p, 80.0, np.nan], np.concatenate([g, ["a", "b"]])


def constant_groups(errors: dict[str, tuple[int, float]]):
    """Rows with actual 1 and a constant absolute error per group: every bootstrap draw gives
    the point gap, and every number is exact in binary."""
    g = np.concatenate([[name] * n for name, (n, _) in errors.items()])
    y = np.ones(len(g))
    p = y + np.concatenate([[e] * n for _, (n, e) in errors.items()])
    return y, p, g


def statuses(report):
    return {r["group"]: r["status"] for r in report["groups"]}


def test_single_series_report_holds_the_overall_errors_and_its_reason_names_a_finite_mape():
    report = bias_report([100.0, 110.0, np.nan, 90.0], [101.0, 108.0, 95.0, 93.0], None, BiasConfig())
    mape = 100 * np.mean([1 / 100, 2 / 110, 3 / 90])
    overall = {"mae": 2.0, "rmse": math.sqrt(14 / 3), "mape": mape, "nmae": 6 / 300, "count": 3}
    assert_same(report, {
        "rule": "normalized", "grouped": False, "verdict": SINGLE, "threshold": 1.0, "overall": overall,
        "overall_mae": 2.0, "overall_nmae": 0.02, "limit": None, "biased": False, "passed": True,
        "flagged": [], "missing_groups": [], "groups": [], "largest_abs_gap": 0.0, "excluded_rows": 1,
        "reasons": [f"{SINGLE} (overall on 3 test rows: MAE 2, RMSE 2.16, MAPE 2.05%)"],
    })


def test_single_series_reason_leaves_out_mape_where_the_target_crosses_zero():
    report = bias_report(np.array([-10.0, 10.0, 20.0]), np.array([-8.0, 11.0, 20.0]), None, BiasConfig(rule="original"))
    assert report["rule"] == "original" and report["threshold"] == 1.5 and report["excluded_rows"] == 0
    assert math.isnan(report["overall"]["mape"]) and report["overall_nmae"] == pytest.approx(3 / 40)
    assert report["reasons"] == [f"{SINGLE} (overall on 3 test rows: MAE 1, RMSE 1.291)"]


def test_single_series_with_one_scored_row_passes():
    report = bias_report(np.array([5.0]), np.array([6.0]), None, BiasConfig())
    assert report["passed"] and report["overall"]["count"] == 1 and report["overall_mae"] == 1.0


def test_single_series_without_scored_rows_fails_as_empty_test_data():
    report = bias_report(np.array([np.nan, 3.0]), np.array([1.0, np.nan]), None, BiasConfig())
    assert_same(report, {
        "rule": "normalized", "grouped": False, "verdict": SINGLE, "threshold": 1.0, "overall": nan_overall(),
        "overall_mae": math.nan, "overall_nmae": math.nan, "limit": None, "biased": False, "passed": False,
        "flagged": [], "missing_groups": [], "groups": [], "largest_abs_gap": 0.0, "excluded_rows": 2,
        "reasons": ["empty test data"],
    })


def test_missing_values_given_as_none_are_excluded_not_an_error():
    report = bias_report([1.0, None, 3.0, 4.0], [1.5, 2.0, None, 4.0], None, BiasConfig())
    assert report["excluded_rows"] == 2 and report["overall"]["count"] == 2 and report["overall_mae"] == 0.25


def test_grouped_report_without_scored_rows_has_exactly_the_empty_verdict():
    report = bias_report(np.array([np.nan, 2.0, np.nan]), np.array([1.0, np.nan, np.nan]), np.array(["a", "b", "c"]), BiasConfig())
    assert_same(report, {
        "rule": "normalized", "grouped": True, "biased": False, "passed": False, "reasons": ["empty test data"],
        "groups": [], "flagged": [], "missing_groups": [], "largest_abs_gap": 0.0, "limit": None,
        "excluded_rows": 3, "new_groups": [], "retired_groups": [],
    })


def test_overall_errors_of_no_rows_are_nan_with_count_zero():
    assert_same(overall_errors(np.array([]), np.array([])), nan_overall())


def test_overall_errors_relative_mae_is_total_absolute_error_over_total_absolute_actual():
    y, p = np.array([-4.0, 2.0, 10.0]), np.array([-1.0, 2.0, 9.0])
    assert_same(overall_errors(y, p), {"mae": 4 / 3, "rmse": math.sqrt(10 / 3), "mape": math.nan, "nmae": 4 / 16, "count": 3})
    zeros = overall_errors(np.zeros(3), np.ones(3))
    assert math.isnan(zeros["nmae"]) and zeros["mae"] == 1.0 and zeros["count"] == 3


def test_grouped_report_under_the_normalized_rule_matches_a_recomputation():
    y, p, g = three_groups()
    config = BiasConfig(min_group_rows=10)
    report = bias_report(y, p, g, config, expected_groups=["a", "b", "c", "z"])
    keep = np.isfinite(y) & np.isfinite(p)
    y, p, g = y[keep], p[keep], g[keep]
    err = np.abs(p - y)
    overall_nmae = err.sum() / np.abs(y).sum()
    limit = 1.0 * overall_nmae
    assert set(report) == REPORT_KEYS
    assert report["rule"] == "normalized" and report["grouped"] is True and report["threshold"] == 1.0
    assert report["excluded_rows"] == 2 and report["normalized_by"] == WAPE
    assert report["overall_mae"] == pytest.approx(err.mean()) and report["overall_nmae"] == pytest.approx(overall_nmae)
    assert report["limit"] == pytest.approx(limit)
    assert_same(report["overall"], overall_errors(y, p))
    rows = {r["group"]: r for r in report["groups"]}
    assert list(rows) == ["a", "b", "c", "z"]
    for name in "abc":
        m = g == name
        row = rows[name]
        assert set(row) == ROW_KEYS
        nmae = err[m].sum() / np.abs(y[m]).sum()
        assert row["count"] == 10 and row["mae"] == pytest.approx(err[m].mean())
        assert row["rmse"] == pytest.approx(np.sqrt(np.mean((p[m] - y[m]) ** 2)))
        assert row["mape"] == pytest.approx(100 * np.mean(err[m] / y[m]))
        assert row["nmae"] == pytest.approx(nmae) and row["gap"] == pytest.approx(nmae - overall_nmae)
        assert row["limit"] == pytest.approx(limit)
        low, high = bootstrap_interval(y, p, g, "normalized", config.bootstrap, config.seed, name)
        assert (row["gap_ci_low"], row["gap_ci_high"]) == (pytest.approx(low), pytest.approx(high))
        assert row["gap_ci_low"] < row["gap"] < row["gap_ci_high"]
    assert rows["z"] == {"group": "z", "count": 0, "status": "missing_from_test"}
    assert statuses(report) == {"a": "ok", "b": "ok", "c": "biased", "z": "missing_from_test"}
    assert rows["c"]["gap_ci_low"] > limit
    assert report["flagged"] == ["c"] and report["biased"] is True and report["passed"] is False
    assert report["missing_groups"] == ["z"] and report["new_groups"] == [] and report["retired_groups"] == []
    assert report["largest_abs_gap"] == pytest.approx(max(abs(rows[n]["gap"]) for n in "abc"))
    c = rows["c"]
    assert report["reasons"] == [
        f"group c: normalized MAE gap {c['gap']:+.4g} (95% CI {c['gap_ci_low']:+.4g}..{c['gap_ci_high']:+.4g}) beyond ±{limit:.4g}",
        "group z: no rows in the test period",
    ]


def test_grouped_report_under_the_original_rule_measures_gaps_in_mae():
    y, p, g = three_groups()
    config = BiasConfig(rule="original", min_group_rows=10)
    report = bias_report(y, p, g, config)
    keep = np.isfinite(y) & np.isfinite(p)
    y, p, g = y[keep], p[keep], g[keep]
    overall_mae = np.abs(p - y).mean()
    limit = 1.5 * overall_mae
    assert report["limit"] == pytest.approx(limit) and report["threshold"] == 1.5 and report["rule"] == "original"
    for row in report["groups"]:
        m = g == row["group"]
        assert row["gap"] == pytest.approx(np.abs(p[m] - y[m]).mean() - overall_mae)
        low, high = bootstrap_interval(y, p, g, "original", config.bootstrap, config.seed, row["group"])
        assert (row["gap_ci_low"], row["gap_ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert statuses(report) == {"a": "ok", "b": "ok", "c": "within_noise"}
    assert report["passed"] and not report["biased"] and report["flagged"] == []
    assert report["reasons"] == [f"no group beyond the original rule (limit ±{limit:.4g})"]


def test_bootstrap_interval_is_reproducible_and_depends_on_the_seed():
    y, p, g = three_groups()
    first = bias_report(y, p, g, BiasConfig(min_group_rows=10))["groups"]
    again = bias_report(y, p, g, BiasConfig(min_group_rows=10))["groups"]
    other = bias_report(y, p, g, BiasConfig(min_group_rows=10, seed=7))["groups"]
    assert first == again
    assert [r["gap_ci_low"] for r in first] != [r["gap_ci_low"] for r in other]
    assert [r["gap"] for r in first] == [r["gap"] for r in other]


def test_a_gap_exactly_at_the_limit_is_not_flagged_on_either_side():
    y, p, g = constant_groups({"a": (4, 1.0), "b": (12, 0.0)})
    at_limit = bias_report(y, p, g, BiasConfig(normalized_threshold=3.0, min_group_rows=2))
    rows = {r["group"]: r for r in at_limit["groups"]}
    assert at_limit["overall_nmae"] == 0.25 and at_limit["limit"] == 0.75
    assert rows["a"]["gap"] == 0.75 and rows["a"]["gap_ci_low"] == 0.75 and rows["a"]["status"] == "ok"
    assert at_limit["passed"] and at_limit["flagged"] == []
    assert at_limit["reasons"] == ["no group beyond the normalized rule (limit ±0.75)"]
    below = bias_report(y, p, g, BiasConfig(min_group_rows=2))
    rows = {r["group"]: r for r in below["groups"]}
    assert below["limit"] == 0.25 and rows["b"]["gap"] == -0.25 and rows["b"]["gap_ci_high"] == -0.25
    assert statuses(below) == {"a": "biased", "b": "ok"} and below["flagged"] == ["a"]


def test_a_group_much_better_than_the_rest_is_flagged_with_its_negative_gap():
    y, p, g = constant_groups({"a": (4, 1.0), "b": (12, 0.0)})
    report = bias_report(y, p, g, BiasConfig(normalized_threshold=0.5, min_group_rows=2))
    rows = {r["group"]: r for r in report["groups"]}
    assert report["limit"] == 0.125 and rows["b"]["gap"] == -0.25 and rows["b"]["gap_ci_high"] == -0.25
    assert statuses(report) == {"a": "biased", "b": "biased"} and report["flagged"] == ["a", "b"]
    assert report["largest_abs_gap"] == 0.75


def test_a_zero_gap_is_never_flagged_whatever_the_limit():
    y, p, g = constant_groups({"a": (4, 0.5), "b": (4, 0.5)})
    report = bias_report(y, p, g, BiasConfig(normalized_threshold=-0.5, min_group_rows=2))
    assert report["limit"] == -0.25
    assert [(r["gap"], r["gap_ci_low"], r["gap_ci_high"]) for r in report["groups"]] == [(0.0, 0.0, 0.0)] * 2
    assert statuses(report) == {"a": "within_noise", "b": "within_noise"} and not report["biased"]
    assert report["largest_abs_gap"] == 0.0


def test_a_group_of_two_rows_is_bootstrapped_and_a_group_of_one_row_is_not():
    y = np.array([10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0])
    p = np.array([11.0, 9.0, 12.0, 10.5, 13.0, 20.0, 14.0])
    g = np.array(["a", "a", "a", "b", "b", "c", "a"])
    config = BiasConfig(min_group_rows=1)
    report = bias_report(y, p, g, config)
    rows = {r["group"]: r for r in report["groups"]}
    assert math.isnan(rows["c"]["gap_ci_low"]) and math.isnan(rows["c"]["gap_ci_high"])
    assert rows["c"]["status"] == "within_noise"
    for name in "ab":
        low, high = bootstrap_interval(y, p, g, "normalized", config.bootstrap, config.seed, name)
        assert (rows[name]["gap_ci_low"], rows[name]["gap_ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert rows["b"]["count"] == 2 and rows["b"]["gap_ci_low"] < rows["b"]["gap_ci_high"]


def test_too_few_rows_alone_make_the_report_fail():
    y, p, g = constant_groups({"a": (4, 0.5), "b": (3, 0.5)})
    report = bias_report(y, p, g, BiasConfig(min_group_rows=4))
    assert statuses(report) == {"a": "ok", "b": "too_few_rows"}
    assert not report["passed"] and not report["biased"] and report["missing_groups"] == []
    assert report["reasons"] == ["group b: 3 test rows < 4"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_targets_that_are_all_zero_have_no_relative_error():
    y, g = np.zeros(6), np.array(["a", "a", "a", "b", "b", "b"])
    report = bias_report(y, np.ones(6), g, BiasConfig(min_group_rows=2))
    assert math.isnan(report["overall_nmae"]) and math.isnan(report["limit"]) and report["overall_mae"] == 1.0
    assert all(math.isnan(r["nmae"]) and math.isnan(r["gap"]) for r in report["groups"])


def test_every_group_near_zero_is_named_when_training_scales_are_used():
    y = np.r_[np.linspace(-5, 5, 8), np.linspace(-3, 3, 8), np.full(8, 100.0)]
    g = np.repeat(["n1", "n2", "plain"], 8)
    report = bias_report(y, y + 1.0, g, BiasConfig(min_group_rows=2), scales={"n1": 2.0, "n2": 2.0, "plain": 2.0})
    assert report["normalized_by"] == "seasonal-naive MAE on training (MASE): the target of n1, n2 reaches or crosses zero"
    assert report["overall_nmae"] == pytest.approx(0.5) and [r["nmae"] for r in report["groups"]] == [0.5] * 3


def test_an_unknown_rule_is_rejected_by_name():
    with pytest.raises(ValueError, match=r"bias rule 'strict': choose one of \('original', 'normalized'\)"):
        bias_report(np.ones(2), np.ones(2), None, BiasConfig(rule="strict"))


def test_listed_groups_show_their_errors_and_a_reason_and_roles_may_be_left_out():
    y, p, g = constant_groups({"a": (4, 0.5), "b": (4, 0.5)})
    y, p, g = np.r_[y, 10.0, 20.0], np.r_[p, 12.0, 20.0], np.concatenate([g, ["new", "new"]])
    report = bias_report(y, p, g, BiasConfig(min_group_rows=2), expected_groups={"new": ["new"], "retired": ["old"]})
    rows = {r["group"]: r for r in report["groups"]}
    assert_same(rows["new"], {"group": "new", "mae": 1.0, "rmse": math.sqrt(2), "mape": 10.0, "count": 2, "status": "new_group"})
    assert rows["old"] == {"group": "old", "count": 0, "status": "retired"}
    assert report["reasons"][:2] == [
        "group new: new group, too young to be judged; 2 test rows, listed, not judged",
        "group old: retired group (no recent data); 0 test rows, listed, not judged",
    ]
    assert report["passed"] and report["missing_groups"] == []
    bare = bias_report(y[:8], p[:8], g[:8], BiasConfig(min_group_rows=2), expected_groups={})
    assert bare["passed"] and bare["new_groups"] == [] and bare["retired_groups"] == []


def test_uses_scales_only_when_every_scale_is_a_positive_float():
    assert uses_scales({"a": 0.5, "b": 3.0}, ["a", "b"])
    assert not uses_scales({"a": 0.0, "b": 3.0}, ["a", "b"])
    assert not uses_scales({"a": 0.5}, ["a", "b"])


def test_naive_scales_leave_out_groups_without_a_scale():
    frame = pl.DataFrame({
        "zone": ["a", "a", "b", "b", "c", "c"],
        "y": [10.0, 20.0, 5.0, 6.0, 1.0, 2.0],
        "naive": [12.0, 16.0, None, None, float("nan"), 2.0],
    })
    assert naive_scales(frame, "y", "naive", "zone") == {"a": 3.0}
    assert naive_scales(frame, "y", "naive", None) == {}


def test_balanced_weights_give_every_group_the_same_total_weight():
    w = group_weights(np.array(["a", "b", "a", "a"]), "balanced")
    assert w == pytest.approx([2 / 3, 2, 2 / 3, 2 / 3]) and w.mean() == pytest.approx(1.0)


def test_error_aware_weights_follow_the_relative_error_to_the_power_and_average_one():
    g = np.array(["a", "a", "a", "b"])
    w = group_weights(g, "error_aware", {"a": 0.1, "b": 0.3})
    assert w == pytest.approx([2 / 3, 2 / 3, 2 / 3, 2]) and w.mean() == pytest.approx(1.0)
    squared = group_weights(g, "error_aware", {"a": 0.1, "b": 0.3}, power=2.0)
    assert squared == pytest.approx([1 / 3, 1 / 3, 1 / 3, 3]) and squared.mean() == pytest.approx(1.0)


def test_error_aware_weights_give_a_group_without_an_error_the_mean_error():
    w = group_weights(np.array(["a", "b", "c"]), "error_aware", {"a": 0.1, "b": 0.3})
    assert w == pytest.approx([0.5, 1.5, 1.0])


def test_group_weights_reject_a_missing_error_table_and_an_unknown_scheme_by_name():
    with pytest.raises(ValueError, match="^error_aware weights need per-group validation errors$"):
        group_weights(np.array(["a"]), "error_aware")
    with pytest.raises(ValueError, match="^unknown weighting scheme 'uniform'$"):
        group_weights(np.array(["a"]), "uniform")


def test_report_table_has_one_row_per_group_in_fixed_columns():
    y, p, g = constant_groups({"a": (4, 1.0), "b": (12, 0.0)})
    report = bias_report(y, p, g, BiasConfig(min_group_rows=2), expected_groups=["a", "b", "z"])
    table = report_table(report)
    assert table.columns == TABLE_COLUMNS and table.schema["count"] == pl.Int64
    assert table.rows() == [
        ("a", 4, 1.0, 1.0, 100.0, 1.0, 0.75, 0.75, 0.75, "biased"),
        ("b", 12, 0.0, 0.0, 0.0, 0.0, -0.25, -0.25, -0.25, "ok"),
        ("z", 0, None, None, None, None, None, None, None, "missing_from_test"),
    ]


def test_report_table_of_an_empty_report_keeps_the_columns():
    table = report_table(bias_report(np.array([]), np.array([]), np.array([]), BiasConfig()))
    assert table.columns == TABLE_COLUMNS and table.height == 0
