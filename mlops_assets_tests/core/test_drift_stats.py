"""The drift statistics of core/drift.py and the rows they make, checked against values
computed independently (by hand, or with scipy's own KS, Wasserstein and chi-square): the
legacy fixed-threshold `feature_drift` / `retrain_verdict`, and the feature rows, weights and
root causes `judge_batch` / `calibrate` report for a tiny champion whose numbers are exact
(its feature x has mean 0 and standard deviation 1, so standardising leaves it unchanged)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chisquare, ks_2samp, wasserstein_distance

from mlops_assets.core.drift import (
    PSI_EPSILON,
    DriftConfig,
    calibrate,
    categorical_drift,
    feature_drift,
    judge_batch,
    ks_and_wasserstein,
    retrain_verdict,
)
from mlops_assets.core.reference import ReferenceData
from mlops_assets.core.spec import spec_from_dict

SPEC = spec_from_dict({
    "name": "tiny", "timestamp": {"column": "ts", "timezone": "UTC"}, "target": {"column": "y"},
    "features": {"numeric": ["x"], "categorical": ["c"]},
})  # fmt: skip
T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
UNCALIBRATED = {"drift": {}}  # measured nothing: the configured thresholds decide
EXACT = dict(rel=1e-12)


def hourly(first_hour: int, x: list, c: list) -> pl.DataFrame:
    return pl.DataFrame(
        {"ts": [T0 + timedelta(hours=first_hour + i) for i in range(len(x))], "y": [1.0] * len(x), "x": x, "c": c},
        schema={"ts": pl.Datetime("us", "UTC"), "y": pl.Float64, "x": pl.Float64, "c": pl.String},
    )


def champion(recent_x: list, recent_c: list, importance: dict | None = None, calibration: dict | None = None) -> ReferenceData:
    """Too few rows for a seasonal reference: a batch is compared with the recent rows. The
    training row x = 0 makes the pooled x (recent values +-1 in equal numbers) mean 0, SD 1."""
    train = hourly(0, [0.0], ["a"])
    recent = hourly(100, recent_x, recent_c)
    return ReferenceData("1", train, recent, {}, importance if importance is not None else {"x": 0.5, "c": 0.5}, {},
                         calibration if calibration is not None else UNCALIBRATED)  # fmt: skip


def batch(x: list, c: list) -> pl.DataFrame:
    return hourly(200, x, c).with_columns(pl.lit(1.0).alias("prediction"))


def judged_rows(scored: pl.DataFrame, reference: ReferenceData, config: DriftConfig = DriftConfig()) -> dict[str, dict]:
    return {r["feature"]: r for r in judge_batch(scored, reference, SPEC, config)["features"]}


def calibration_with_limits(x_log_mean: float, c_log_mean: float) -> dict:
    """A hand-made calibration of 24 h batches against the recent reference: weighted-drift
    threshold 100 (never reached here), largest-feature threshold z = 2, each feature's no-drift
    log score [mean, SD 1]: a feature's limit is exp(mean + 2)."""
    return {"drift": {"24": {
        "hours": 24.0, "recent": {"threshold": 100.0, "windows": 10}, "seasonal": None,
        "feature_log_scores": {"recent": {"x": [x_log_mean, 1.0], "c": [c_log_mean, 1.0]}},
        "largest_feature_z": {"recent": {"threshold": 2.0, "windows": 10}},
    }}}  # fmt: skip


def smoothed(fractions: list[float]) -> np.ndarray:
    p = np.asarray(fractions) + PSI_EPSILON
    return p / p.sum()


# --------------------------------------------------------------------------------------------
# the statistics


def test_a_constant_reference_leaves_the_wasserstein_distance_in_the_datas_units():
    """Reference SD 0: the area between the CDFs (2) is divided by 1, not by the SD."""
    d, p, w = ks_and_wasserstein(np.array([1.0, 1.0]), np.array([3.0]))
    assert (d, w) == (1.0, 2.0)


def test_integer_coded_categories_match_the_profiles_string_keys():
    js, p = categorical_drift({"1": 0.5, "2": 0.5}, [1, 2, 1, 2])
    assert (js, p) == (0.0, 1.0)


def test_a_reference_category_absent_from_the_batch_counts_zero():
    js, p = categorical_drift({"a": 0.5, "b": 0.5}, ["a"] * 4)
    assert js == pytest.approx(jensenshannon([0.5, 0.5], [1.0, 0.0], base=2), **EXACT)
    assert p == pytest.approx(chisquare([4.0, 0.0], [2.0, 2.0]).pvalue, **EXACT)


def test_the_chi_square_expects_the_reference_proportions_not_equal_counts():
    js, p = categorical_drift({"a": 0.75, "b": 0.25}, ["a", "a", "a", "b"])
    expected = smoothed([0.75, 0.25])
    assert js == pytest.approx(jensenshannon(expected, [0.75, 0.25], base=2), **EXACT)
    assert p == pytest.approx(chisquare([3.0, 1.0], expected * 4).pvalue, **EXACT)
    assert p > 0.99


@pytest.mark.parametrize("k", [6, 7, 12, 14, 22, 24, 35])
def test_a_batch_in_exactly_the_reference_proportions_has_a_distance_of_zero_not_nan(k):
    """The divergence of two equal distributions can round a hair below zero; its square root
    must not turn that into NaN (scipy's jensenshannon does, for 14, 22 or 24 categories)."""
    cats = [f"c{i:02d}" for i in range(k)]
    js, p = categorical_drift({c: 1 / k for c in cats}, cats * 3)
    assert 0.0 <= js < 1e-7 and p == pytest.approx(1.0, **EXACT)


# --------------------------------------------------------------------------------------------
# the legacy fixed-threshold rows (feature_drift) and verdict (retrain_verdict)

SPLIT_AT_ZERO = {"kind": "numeric", "bin_edges": [0.0], "bin_fractions": [0.5, 0.5]}


def test_feature_drift_skips_columns_it_cannot_compare_and_judges_the_rest():
    """Columns missing from the batch, without finite values in the batch or in the reference
    come first: each is skipped, the columns after them are still judged (one reference value
    is enough)."""
    profile = {"columns": {"missing": SPLIT_AT_ZERO, "no_values": SPLIT_AT_ZERO, "no_reference": SPLIT_AT_ZERO,
                           "single": SPLIT_AT_ZERO, "x": SPLIT_AT_ZERO}}  # fmt: skip
    reference = {"missing": np.array([1.0]), "no_values": np.array([1.0]), "no_reference": np.array([np.nan, np.inf]),
                 "single": np.array([1.0]), "x": np.array([-1.0, 1.0])}  # fmt: skip
    current = {"no_values": np.array([np.nan]), "no_reference": np.array([1.0]), "single": np.array([1.0, 2.0]), "x": np.array([1.0])}
    rows = feature_drift(profile, reference, current, DriftConfig())
    assert [r["feature"] for r in rows] == ["single", "x"]


def test_feature_drift_row_of_a_numeric_column_holds_ks_psi_and_wasserstein():
    """Reference half each side of the edge 0, the batch all above it: PSI
    (eps - 0.5) ln(eps / 0.5) + (1 - 0.5) ln(1 / 0.5)."""
    reference, current = np.array([-1.0, 1.0]), np.array([0.5, 0.5, 3.0, 3.0])
    [row] = feature_drift({"columns": {"x": SPLIT_AT_ZERO}}, {"x": reference}, {"x": current}, DriftConfig())
    ks = ks_2samp(reference, current, method="asymp")
    w = wasserstein_distance(reference, current) / np.std(reference)
    assert row == {
        "feature": "x", "kind": "numeric", "ks": pytest.approx(ks.statistic, **EXACT), "ks_pvalue": pytest.approx(ks.pvalue, **EXACT),
        "psi": pytest.approx((PSI_EPSILON - 0.5) * math.log(PSI_EPSILON / 0.5) + 0.5 * math.log(2.0), **EXACT),
        "wasserstein": pytest.approx(w, **EXACT), "js": None, "chi2_pvalue": None, "drifted": True,
        "score": pytest.approx(w, **EXACT),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("current", "config", "drifted"),
    [
        # the same bin proportions (PSI exactly 0), shifted by half a reference SD
        (np.array([-0.5, 0.5]), DriftConfig(psi_threshold=0.0, wasserstein_threshold=0.25), False),
        (np.array([-0.5, 0.5]), DriftConfig(psi_threshold=-1e-9, wasserstein_threshold=0.25), True),
        # all above the edge (PSI large), a shift of exactly 2 reference SDs
        (np.array([2.0, 2.0]), DriftConfig(wasserstein_threshold=2.0), False),
        (np.array([2.0, 2.0]), DriftConfig(wasserstein_threshold=1.999), True),
    ],
)
def test_feature_drift_needs_psi_and_wasserstein_strictly_above_their_thresholds(current, config, drifted):
    [row] = feature_drift({"columns": {"x": SPLIT_AT_ZERO}}, {"x": np.array([-1.0, 1.0])}, {"x": current}, config)
    assert row["drifted"] is drifted


def one_a_three_b_against_three_quarters_a() -> dict:
    """The categorical row of a batch a, b, b, b against reference fractions 0.75 / 0.25
    (smoothed by PSI_EPSILON): the same whether judged by feature_drift or judge_batch."""
    expected = smoothed([0.75, 0.25])
    js = jensenshannon(expected, [0.25, 0.75], base=2)
    return {
        "feature": "c", "kind": "categorical", "ks": None, "ks_pvalue": None, "psi": None, "wasserstein": None,
        "js": pytest.approx(js, **EXACT), "chi2_pvalue": pytest.approx(chisquare([1.0, 3.0], expected * 4).pvalue, **EXACT),
        "drifted": True, "score": pytest.approx(js, **EXACT),
    }  # fmt: skip


def test_feature_drift_row_of_a_categorical_column_holds_js_and_chi_square():
    profile = {"columns": {"c": {"kind": "categorical", "categories": {"a": 0.75, "b": 0.25}}}}
    [row] = feature_drift(profile, {"c": np.array(["a", "b"])}, {"c": np.array(["a", "b", "b", "b"])}, DriftConfig())
    assert row == one_a_three_b_against_three_quarters_a()


def test_feature_drift_a_js_distance_at_the_threshold_is_not_drift():
    profile = {"columns": {"c": {"kind": "categorical", "categories": {"a": 0.5, "b": 0.5}}}}
    [row] = feature_drift(profile, {"c": np.array(["a", "b"])}, {"c": np.array(["b", "a"])}, DriftConfig(js_threshold=0.0))
    assert (row["js"], row["drifted"]) == (0.0, False)


def test_retrain_verdict_a_feature_without_importance_weighs_nothing():
    rows = [{"feature": "a", "score": 2.0, "drifted": False}, {"feature": "ghost", "score": 3.0, "drifted": False}]
    verdict = retrain_verdict(rows, {"a": 0.5}, None, None, DriftConfig(weighted_threshold=5.0))
    assert verdict["weighted_drift"] == 1.0
    assert verdict["root_causes"] == [
        {"feature": "a", "drift": 2.0, "importance": 0.5, "rank_score": 1.0},
        {"feature": "ghost", "drift": 3.0, "importance": 0.0, "rank_score": 0.0},
    ]


@pytest.mark.parametrize(("score", "retrain"), [(0.5, False), (0.5000001, True)])
def test_retrain_verdict_a_weighted_drift_at_the_threshold_does_not_retrain(score, retrain):
    verdict = retrain_verdict([{"feature": "a", "score": score, "drifted": False}], {"a": 0.5}, None, None, DriftConfig(weighted_threshold=0.25))
    assert verdict["retrain"] is retrain


@pytest.mark.parametrize(("realized", "retrain"), [(15.0, False), (15.000001, True)])
def test_retrain_verdict_a_realized_mae_at_the_tolerance_does_not_retrain(realized, retrain):
    verdict = retrain_verdict([], {}, realized, 10.0, DriftConfig(realized_mae_tolerance=0.5))
    assert verdict["retrain"] is retrain


def test_retrain_verdict_names_the_realized_mae_bound():
    verdict = retrain_verdict([], {}, 11.5, 10.0, DriftConfig(realized_mae_tolerance=0.10))
    assert verdict["reasons"] == ["realized MAE 11.5 > test MAE 10 x 1.10"]


# --------------------------------------------------------------------------------------------
# judge_batch's feature rows against a tiny champion (recent x: -1, -1, 1, 1; c: a, a, b, b)


def tiny(importance: dict | None = None, calibration: dict | None = None) -> ReferenceData:
    return champion([-1.0, -1.0, 1.0, 1.0], ["a", "a", "b", "b"], importance, calibration)


def test_judge_batch_row_of_a_numeric_column_holds_ks_psi_and_wasserstein():
    """The batch x (0, 0, 2, 2) is the reference shifted by one SD: KS 0.5, Wasserstein 1, and
    the values fall in the 4th and last of the reference's decile bins (edges -1, -0.6, 0,
    0.6, 1) where the reference's fall in the 2nd and last: PSI 2 (0.5 - eps) ln(0.5 / eps)."""
    reference, current = [-1.0, -1.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]
    row = judged_rows(batch(current, ["a", "a", "b", "b"]), tiny())["x"]
    ks = ks_2samp(reference, current, method="asymp")
    assert row == {
        "feature": "x", "kind": "numeric", "ks": 0.5, "ks_pvalue": pytest.approx(ks.pvalue, **EXACT),
        "psi": pytest.approx(2 * (0.5 - PSI_EPSILON) * math.log(0.5 / PSI_EPSILON), **EXACT), "wasserstein": 1.0,
        "js": None, "chi2_pvalue": None, "drifted": True, "score": 1.0,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("current", "config", "drifted"),
    [
        # a shift of exactly 1 reference SD, PSI far above 0.2
        ([0.0, 0.0, 2.0, 2.0], DriftConfig(wasserstein_threshold=1.0), False),
        ([0.0, 0.0, 2.0, 2.0], DriftConfig(wasserstein_threshold=0.999), True),
        # the reference's bins in its proportions (PSI exactly 0), shifted by 1 SD
        ([-1.0, -1.0, 3.0, 3.0], DriftConfig(psi_threshold=0.0), False),
        ([-1.0, -1.0, 3.0, 3.0], DriftConfig(psi_threshold=-1e-9), True),
    ],
)
def test_judge_batch_uncalibrated_needs_psi_and_wasserstein_strictly_above_their_thresholds(current, config, drifted):
    assert judged_rows(batch(current, ["a", "a", "b", "b"]), tiny(), config)["x"]["drifted"] is drifted


@pytest.mark.parametrize(("shift", "drifted"), [(1.0, False), (2.0, True)])
def test_judge_batch_a_score_at_its_calibrated_limit_is_not_drifted(shift, drifted):
    """x's limit is exp(-2 + 2 x 1) = 1: a shift of exactly 1 SD is not beyond it."""
    current = [-1.0 + shift, -1.0 + shift, 1.0 + shift, 1.0 + shift]
    verdict = judge_batch(batch(current, ["a", "a", "b", "b"]), tiny(calibration=calibration_with_limits(-2.0, -3.0)), SPEC, DriftConfig())
    x = next(r for r in verdict["features"] if r["feature"] == "x")
    assert (x["score"], x["drifted"], verdict["retrain"]) == (shift, drifted, drifted)


def test_judge_batch_a_category_is_judged_against_its_calibrated_limit_not_the_configured_threshold():
    """c's limit is exp(-3 + 2) = 0.37; the batch's JS distance 0.22 is above js_threshold 0.1."""
    rows = judged_rows(batch([-1.0, -1.0, 1.0, 1.0], ["a", "a", "a", "b"]), tiny(calibration=calibration_with_limits(-2.0, -3.0)))
    assert rows["c"]["js"] == pytest.approx(jensenshannon([0.5, 0.5], [0.75, 0.25], base=2), **EXACT)
    assert rows["c"]["drifted"] is False


def test_judge_batch_categorical_row_with_fractions_of_the_reference_rows():
    """Reference tariff a, a, a, b: fractions 0.75 and 0.25, smoothed by PSI_EPSILON."""
    reference = champion([-1.0, -1.0, 1.0, 1.0], ["a", "a", "a", "b"])
    row = judged_rows(batch([-1.0, -1.0, 1.0, 1.0], ["a", "b", "b", "b"]), reference)["c"]
    assert row == one_a_three_b_against_three_quarters_a()


def test_judge_batch_a_single_category_on_both_sides_is_no_drift_with_p_value_one():
    """One category: the chi-square test has no degree of freedom (scipy's p-value is NaN)."""
    reference = champion([-1.0, -1.0, 1.0, 1.0], ["a"] * 4)
    row = judged_rows(batch([-1.0, 1.0, 1.0], ["a"] * 3), reference)["c"]
    assert (row["js"], row["chi2_pvalue"], row["drifted"], row["score"]) == (0.0, 1.0, False, 0.0)


@pytest.mark.parametrize(("js_threshold", "drifted"), [(0.0, False), (-1e-9, True)])
def test_judge_batch_a_js_distance_at_the_threshold_is_not_drift(js_threshold, drifted):
    row = judged_rows(batch([-1.0, 1.0], ["b", "a"]), tiny(), DriftConfig(js_threshold=js_threshold))["c"]
    assert (row["js"], row["drifted"]) == (0.0, drifted)


def test_judge_batch_leaves_out_columns_without_values_in_the_batch():
    x_only = batch([0.0, 1.0], [None, None])
    c_only = batch([None, None], ["a", "b"])
    assert list(judged_rows(x_only, tiny())) == ["x"]
    assert list(judged_rows(c_only, tiny())) == ["c"]


def test_judge_batch_two_reference_values_are_enough():
    two = champion([-1.0, 1.0], ["a", "b"])
    assert list(judged_rows(batch([0.0, 2.0], ["a", "b"]), two)) == ["x", "c"]


def test_judge_batch_root_causes_give_a_feature_without_finite_importance_zero():
    verdict = judge_batch(batch([0.0, 0.0, 2.0, 2.0], ["a", "a", "b", "b"]), tiny(importance={"c": 0.5, "x": float("nan")}), SPEC, DriftConfig())
    x = next(c for c in verdict["root_causes"] if c["feature"] == "x")
    assert x == {"feature": "x", "drift": 1.0, "importance": 0.0, "rank_score": 0.0, "drifted": True}
    missing = judge_batch(batch([0.0, 0.0, 2.0, 2.0], ["a", "a", "b", "b"]), tiny(importance={"c": 0.5}), SPEC, DriftConfig())
    assert next(c for c in missing["root_causes"] if c["feature"] == "x")["importance"] == 0.0


@pytest.mark.parametrize(
    ("importance", "weights"),
    [
        ({"x": 0.3, "c": 0.1}, {"x": 0.75, "c": 0.25}),  # shares summing to less than 1, renormalised
        ({"x": 3.0, "c": 1.0, "other": 4.0}, {"x": 0.75, "c": 0.25}),  # only the judged columns count
        ({"x": float("nan"), "c": 0.5}, {"x": 0.0, "c": 1.0}),  # a NaN importance counts 0
    ],
)
def test_calibrate_weights_are_the_judged_columns_importance_shares(importance, weights):
    config = DriftConfig(calibration_hours=(24.0,), calibration_windows=0)
    assert calibrate(tiny(importance=importance), SPEC, config)["weights"] == pytest.approx(weights, **EXACT)
