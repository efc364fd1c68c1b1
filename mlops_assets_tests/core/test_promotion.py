import numpy as np
import pytest

from mlops_assets.core.promotion import (
    PromotionPolicy,
    bias_verdict,
    no_regression_vs_champion,
    paired_bootstrap,
    performance_threshold,
    rollback_target,
    serving_stack,
    serving_verdict,
    signature_and_schema,
)

POLICY = PromotionPolicy()
GOOD = {
    "mape": 4.0, "mape_absent_reason": None, "r2": 0.9, "mae": 10.0, "rmse": 12.0, "n": 1344,
    "skill": 0.31, "mase": 0.62, "compared_mae": 12.3, "day_before_mae": 15.1, "baseline_rows": 1344,
}


def test_performance_threshold_passes_and_explains():
    verdict = performance_threshold(GOOD, POLICY)
    assert verdict.passed
    expected = "skill 0.31 vs seasonal naive (min > 0.00), MASE 0.62, MAE 12.3 vs day-before 15.1, on 1,344 rows"
    assert verdict.reason == expected


@pytest.mark.parametrize("skill, passed", [(0.0, False), (-0.2, False), (0.001, True)])
def test_skill_must_be_above_the_minimum(skill, passed):
    verdict = performance_threshold({**GOOD, "skill": skill}, POLICY)
    assert verdict.passed is passed
    if not passed:
        assert verdict.reason.startswith(f"skill {skill:.2f} not above 0.00: no better than seasonal naive")
    stricter = performance_threshold({**GOOD, "skill": 0.31}, PromotionPolicy(min_skill=0.31))
    assert not stricter.passed and "not above 0.31" in stricter.reason


@pytest.mark.parametrize(
    "metrics, words",
    [
        ({**GOOD, "skill": float("nan")}, "NaN: ['skill']"),
        ({k: v for k, v in GOOD.items() if k != "skill"}, "missing or NaN: ['skill']"),
        ({**GOOD, "n": 3}, "3 test rows < 48: too little test data"),
        ({**GOOD, "n": 0}, "too little test data"),
        ({**GOOD, "baseline_rows": 47}, "47 test rows with both baselines < 48"),
        ({**GOOD, "mae": float("nan")}, "['mae']"),
    ],
)
def test_performance_threshold_fails_on_bad_or_missing_metrics(metrics, words):
    verdict = performance_threshold(metrics, POLICY)
    assert not verdict.passed and words in verdict.reason


def test_mape_and_r2_thresholds_are_options():
    bad_mape = {**GOOD, "mape": 40.0, "r2": -1.5}
    assert performance_threshold(bad_mape, POLICY).passed  # not used by default
    verdict = performance_threshold(bad_mape, PromotionPolicy(max_mape=15.0))
    assert not verdict.passed and verdict.reason.startswith("MAPE 40.00% > max 15.00%")
    verdict = performance_threshold(bad_mape, PromotionPolicy(min_r2=0.5))
    assert not verdict.passed and verdict.reason.startswith("R2 -1.500 < min 0.500")
    ok = performance_threshold(GOOD, PromotionPolicy(max_mape=15.0, min_r2=0.5))
    assert ok.passed and ok.reason.endswith("; MAPE 4.00% (max 15.00%); R2 0.900 (min 0.500)")


def test_an_absent_mape_is_explained_not_failed():
    reason = "target not strictly positive (min -3): MAPE is meaningless where it reaches or crosses zero"
    crossing = {**GOOD, "mape": float("nan"), "mape_absent_reason": reason}
    verdict = performance_threshold(crossing, PromotionPolicy(max_mape=15.0))
    assert verdict.passed and f"MAPE threshold not applied: {reason}" in verdict.reason
    unexplained = {**GOOD, "mape": float("nan"), "mape_absent_reason": None}
    verdict = performance_threshold(unexplained, PromotionPolicy(max_mape=15.0))
    assert not verdict.passed and "MAPE missing or NaN" in verdict.reason


def evaluation(new_mae: float, old_mae: float | None, diff=None):
    return {
        "challenger": {"metrics": {**GOOD, "mae": new_mae}},
        "champion": None if old_mae is None else {"version": "3", "metrics": {**GOOD, "mae": old_mae}},
        "paired_difference": diff,
    }


def test_no_regression_uses_signed_margin_and_interval():
    assert no_regression_vs_champion(evaluation(10.0, None), POLICY).passed
    assert no_regression_vs_champion(evaluation(10.1, 10.0, (0.1, -0.05, 0.15)), POLICY).passed  # within +2 %
    worse = no_regression_vs_champion(evaluation(10.5, 10.0, (0.5, 0.3, 0.7)), POLICY)
    assert not worse.passed and "vs champion v3" in worse.reason
    unsure = no_regression_vs_champion(evaluation(10.1, 10.0, (0.1, -0.2, 0.4)), POLICY)
    assert not unsure.passed  # the interval's upper end says it may be worse than allowed
    assert not no_regression_vs_champion(evaluation(float("nan"), 10.0, (0, 0, 0)), POLICY).passed


def test_paired_bootstrap_matches_the_mean_difference():
    rng = np.random.default_rng(0)
    old = rng.normal(0, 10, 2000)
    new = old * 0.9
    diff, low, high = paired_bootstrap(new, old, 500, 1)
    assert diff == pytest.approx(np.mean(np.abs(new)) - np.mean(np.abs(old)))
    assert low < diff < high < 0
    assert np.isnan(paired_bootstrap(np.array([]), np.array([]), 10, 1)[0])


def test_signature_bias_and_serving_verdicts():
    assert signature_and_schema(["a", "b"], True, ["a", "b"]).passed
    assert not signature_and_schema(["a"], True, ["a", "b"]).passed
    assert not signature_and_schema(None, False, ["a"]).passed
    assert not bias_verdict({"passed": False, "reasons": ["group E: gap"]}).passed
    assert serving_verdict({"predictions": [1.0, 2.0], "seconds": 1.0}, 2).passed
    assert not serving_verdict({"predictions": [1.0, float("nan")], "seconds": 1.0}, 2).passed
    assert not serving_verdict({"error": "ImportError"}, 2).passed


def test_rollback_goes_to_the_previously_serving_version_not_the_previous_number():
    history = [
        {"action": "approve", "version": "1"}, {"action": "promote", "version": "1"},
        {"action": "refuse", "version": "2"},
        {"action": "force_promote", "version": "3"},
    ]
    assert serving_stack(history) == ["1", "3"]
    assert rollback_target(history) == ("3", "1")
    after = history + [{"action": "rollback", "version": "1"}]
    with pytest.raises(ValueError, match="nothing to roll back"):
        rollback_target(after)
    with pytest.raises(ValueError, match="no champion"):
        rollback_target([])
