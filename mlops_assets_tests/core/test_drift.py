import numpy as np
import polars as pl
import pytest
from scipy import stats

from mlops_assets.core.drift import DriftConfig, categorical_drift, ks_statistic, psi, retrain_verdict, wasserstein_normalized
from mlops_assets.core.profile import bin_fractions, quantile_bin_edges

RNG = np.random.default_rng(11)


def test_ks_agrees_with_scipy():
    a, b = RNG.normal(0, 1, 3000), RNG.normal(0.2, 1.1, 2000)
    d, p = ks_statistic(a, b)
    ref = stats.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(ref.statistic, abs=1e-12) and p == pytest.approx(ref.pvalue, rel=1e-6)


def test_wasserstein_agrees_with_scipy_and_is_normalised():
    a, b = RNG.normal(10, 2, 1000), RNG.normal(11, 2, 800)
    assert wasserstein_normalized(a, b) == pytest.approx(stats.wasserstein_distance(a, b) / np.std(a))
    assert wasserstein_normalized(np.array([0.0, 2.0]), np.array([1.0, 3.0])) == pytest.approx(1.0)  # shift 1, std 1


def test_psi_hand_computed():
    # Reference 50/50 around edge 0; current 80/20: (0.8-0.5)ln(0.8/0.5) + (0.2-0.5)ln(0.2/0.5)
    current = np.array([-1.0] * 8 + [1.0] * 2)
    expected = 0.3 * np.log(1.6) + (-0.3) * np.log(0.4)
    assert psi([0.5, 0.5], current, [0.0]) == pytest.approx(expected)
    same = RNG.normal(0, 1, 5000)
    edges = quantile_bin_edges(same, 10)
    assert psi(bin_fractions(same, edges), same, edges) == pytest.approx(0.0, abs=1e-12)


def test_psi_flags_a_shift_and_not_noise():
    ref = RNG.normal(20, 5, 20000)
    edges = quantile_bin_edges(ref, 10)
    assert psi(bin_fractions(ref, edges), RNG.normal(20, 5, 2000), edges) < 0.05
    assert psi(bin_fractions(ref, edges), RNG.normal(30, 5, 2000), edges) > 0.5


def test_categorical_drift():
    js_same, p_same = categorical_drift({"a": 0.5, "b": 0.5}, ["a", "b"] * 100)
    js_new, p_new = categorical_drift({"a": 0.5, "b": 0.5}, ["c"] * 100)
    assert js_same < 0.01 < js_new and p_new < 1e-6 < p_same


def test_retrain_verdict_and_root_causes():
    rows = [{"feature": "temp", "score": 1.2, "drifted": True}, {"feature": "hour", "score": 0.01, "drifted": False}]  # score: shift in SDs
    importance = {"hour": 0.7, "temp": 0.2, "lag": 0.1}
    verdict = retrain_verdict(rows, importance, None, None, DriftConfig(top_k=2))
    assert verdict["retrain"] and "top-2 feature(s) drifted: ['temp']" in verdict["reasons"][0]
    assert verdict["root_causes"][0]["feature"] == "temp"
    calm = retrain_verdict([{**rows[0], "score": 0.01, "drifted": False}, rows[1]], importance, 10.0, 10.0, DriftConfig())
    assert not calm["retrain"]
    worse = retrain_verdict([], importance, 11.5, 10.0, DriftConfig())
    assert worse["retrain"] and "realized MAE" in worse["reasons"][0]


def test_feature_drift_needs_both_psi_and_a_material_shift_and_skips_what_cannot_be_compared():
    from mlops_assets.core.drift import feature_drift, ks_and_wasserstein
    from mlops_assets.core.profile import categorical_profile, numeric_profile

    ref = RNG.normal(0, 1, 2000)
    wide = np.r_[ref, [1000.0] * 5]  # a few huge values: a reference SD of ~50
    shifted = ref[:500] + 1.0
    profile = {"columns": {
        "x": numeric_profile(pl.Series(ref), 10), "w": numeric_profile(pl.Series(wide), 10), "c": categorical_profile(pl.Series(["a", "b"] * 50)),
        "only_reference": numeric_profile(pl.Series(ref), 10), "no_values": numeric_profile(pl.Series(ref), 10),
    }}  # fmt: skip
    reference = {"x": ref, "w": wide, "c": np.array(["a", "b"] * 50), "only_reference": ref, "no_values": ref}
    current = {"x": np.r_[shifted, np.nan, np.inf], "w": shifted, "c": np.array(["c"] * 50), "no_values": np.array([np.nan]), "unprofiled": shifted}
    rows = {r["feature"]: r for r in feature_drift(profile, reference, current, DriftConfig())}
    assert list(rows) == ["x", "w", "c"]
    d, p, w = ks_and_wasserstein(ref, shifted)
    assert (rows["x"]["ks"], rows["x"]["ks_pvalue"], rows["x"]["wasserstein"], rows["x"]["score"]) == (d, p, w, w)
    assert rows["x"]["psi"] == psi(profile["columns"]["x"]["bin_fractions"], shifted, profile["columns"]["x"]["bin_edges"])
    assert rows["x"]["drifted"] and rows["x"]["psi"] > 0.2 and w > 0.25
    assert rows["w"]["psi"] > 0.2 and rows["w"]["wasserstein"] < 0.25 and not rows["w"]["drifted"]
    assert rows["c"]["kind"] == "categorical" and rows["c"]["drifted"] and rows["c"]["score"] == rows["c"]["js"] > 0.1


def test_retrain_verdict_caps_a_score_at_ten_sds_and_ranks_five_root_causes():
    rows = [{"feature": f"f{i}", "score": float(i), "drifted": False} for i in range(7)] + [{"feature": "wild", "score": 50.0, "drifted": True}]
    importance = {**{f"f{i}": 0.01 for i in range(7)}, "wild": 0.1}
    verdict = retrain_verdict(rows, importance, 5.0, 0.0, DriftConfig(top_k=1, weighted_threshold=1.5))
    assert verdict["weighted_drift"] == pytest.approx(0.1 * 10 + 0.01 * sum(range(7)))
    assert verdict["top_features"] == ["wild"] and verdict["reasons"] == ["top-1 feature(s) drifted: ['wild']"]
    assert [c["feature"] for c in verdict["root_causes"]] == ["wild", "f6", "f5", "f4", "f3"]
    assert verdict["root_causes"][0] == {"feature": "wild", "drift": 50.0, "importance": 0.1, "rank_score": 5.0}
    within = retrain_verdict([], {}, 10.99, 10.0, DriftConfig(realized_mae_tolerance=0.10))
    assert not within["retrain"] and within["reasons"] == ["no retrain trigger fired"]
    assert retrain_verdict([], {}, 11.01, 10.0, DriftConfig(realized_mae_tolerance=0.10))["retrain"]
    heavy = retrain_verdict([{"feature": "a", "score": 3.0, "drifted": False}], {"a": 0.1}, None, None, DriftConfig(weighted_threshold=0.25))
    assert heavy["reasons"] == ["importance-weighted drift 0.300 > 0.25"]
