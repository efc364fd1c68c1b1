import numpy as np
import pytest

from mlops_assets.core.promotion import (
    PromotionPolicy,
    Verdict,
    bias_verdict,
    champion_changed,
    no_regression_vs_champion,
    paired_bootstrap,
    performance_threshold,
    recorded_champion,
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


# Exact verdicts: the check's name, the outcome and the reason a user reads.

SUMMARY = "skill 0.31 vs seasonal naive (min > 0.00), MASE 0.62, MAE 12.3 vs day-before 15.1, on 1,344 rows"


def test_a_verdict_reads_as_a_tag_and_a_record():
    assert Verdict("serving_smoke_test", True, "ok").short() == "pass: ok"
    assert Verdict("serving_smoke_test", False, "no answer").short() == "FAIL: no answer"
    assert Verdict("bias_within_threshold", False, "gap").to_dict() == {"check": "bias_within_threshold", "passed": False, "reason": "gap"}


@pytest.mark.parametrize(
    "metrics, reason",
    [
        ({**GOOD, "n": 47}, "47 test rows < 48: too little test data to judge"),
        ({k: v for k, v in GOOD.items() if k != "n"}, "0 test rows < 48: too little test data to judge"),
        ({**GOOD, "rmse": None}, "metrics missing or NaN: ['rmse'] (skill needs the seasonal-naive baseline on the test rows)"),
        ({**GOOD, "baseline_rows": 47}, "47 test rows with both baselines < 48: too little test data to judge"),
        ({k: v for k, v in GOOD.items() if k != "baseline_rows"}, "0 test rows with both baselines < 48: too little test data to judge"),
    ],
)
def test_performance_threshold_refusals_are_exact(metrics, reason):
    assert performance_threshold(metrics, POLICY) == Verdict("performance_threshold", False, reason)


def test_exactly_the_minimum_test_rows_is_enough():
    verdict = performance_threshold({**GOOD, "n": 48, "baseline_rows": 48}, POLICY)
    assert verdict == Verdict("performance_threshold", True, SUMMARY.replace("1,344 rows", "48 rows"))


def test_mape_and_r2_at_their_thresholds_pass_and_every_failure_is_listed_skill_first():
    at_limits = performance_threshold({**GOOD, "mape": 15.0, "r2": 0.5}, PromotionPolicy(max_mape=15.0, min_r2=0.5))
    assert at_limits == Verdict("performance_threshold", True, f"{SUMMARY}; MAPE 15.00% (max 15.00%); R2 0.500 (min 0.500)")
    everything_bad = {**GOOD, "skill": -0.1, "mape": 40.0, "r2": float("nan")}
    verdict = performance_threshold(everything_bad, PromotionPolicy(max_mape=15.0, min_r2=0.5))
    expected = [
        "skill -0.10 not above 0.00: no better than seasonal naive", "MAPE 40.00% > max 15.00%", "R2 missing or NaN",
        SUMMARY.replace("skill 0.31", "skill -0.10"),
    ]
    assert verdict == Verdict("performance_threshold", False, "; ".join(expected))
    no_mape = performance_threshold({**GOOD, "mape": None}, PromotionPolicy(max_mape=15.0))
    assert no_mape == Verdict("performance_threshold", False, f"MAPE missing or NaN; {SUMMARY}")


def test_the_reason_falls_back_to_the_model_mae_and_shows_what_is_missing():
    metrics = {**GOOD, "mae": 123456.0, "mase": float("inf"), "day_before_mae": None}
    del metrics["compared_mae"]
    verdict = performance_threshold(metrics, POLICY)
    expected = "skill 0.31 vs seasonal naive (min > 0.00), MASE inf, MAE 1.235e+05 vs day-before n/a, on 1,344 rows"
    assert verdict == Verdict("performance_threshold", True, expected)
    large = performance_threshold({**GOOD, "compared_mae": 234567.0, "day_before_mae": 345678.0}, POLICY)
    assert "MAE 2.346e+05 vs day-before 3.457e+05" in large.reason


def test_the_margin_is_a_share_of_the_champion_mae_not_the_challenger():
    # Allowed: 50 % of the champion's MAE 10 = 5; of the challenger's MAE 16 it would be 8.
    policy = PromotionPolicy(margin=0.5)
    verdict = no_regression_vs_champion(evaluation(16.0, 10.0, (6.0, 5.5, 6.5)), policy)
    reason = "MAE 16 vs champion v3 10: difference +6 (95% CI +5.5..+6.5), allowed ≤ +5 (margin +50.0%)"
    assert verdict == Verdict("no_regression_vs_champion", False, reason)
    assert no_regression_vs_champion(evaluation(14.0, 10.0, (4.0, 3.5, 4.5)), policy).passed


def test_a_negative_margin_demands_an_improvement():
    # margin -5 %: the challenger must beat the champion's MAE 10 by at least 0.5.
    policy = PromotionPolicy(margin=-0.05)
    slightly_better = no_regression_vs_champion(evaluation(9.6, 10.0, (-0.4, -0.6, -0.2)), policy)
    reason = "MAE 9.6 vs champion v3 10: difference -0.4 (95% CI -0.6..-0.2), allowed ≤ -0.5 (margin -5.0%)"
    assert slightly_better == Verdict("no_regression_vs_champion", False, reason)
    clearly_better = no_regression_vs_champion(evaluation(9.0, 10.0, (-1.0, -1.3, -0.7)), policy)
    assert clearly_better.passed and clearly_better.reason.endswith("allowed ≤ -0.5 (margin -5.0%)")
    interval_too_wide = no_regression_vs_champion(evaluation(9.0, 10.0, (-1.0, -1.6, -0.4)), policy)
    assert not interval_too_wide.passed


def test_a_difference_or_interval_end_exactly_at_the_allowance_passes():
    # margin 2 % of the champion's MAE 10: allowed 0.2
    assert no_regression_vs_champion(evaluation(10.2, 10.0, (0.2, 0.1, 0.2)), POLICY).passed
    assert no_regression_vs_champion(evaluation(10.2, 10.0, (0.2, 0.1, 0.2 + 1e-9)), POLICY).passed is False
    assert no_regression_vs_champion(evaluation(10.2, 10.0, (0.2 + 1e-9, 0.1, 0.15)), POLICY).passed is False


@pytest.mark.parametrize(
    "new_mae, old_mae, n, reason",
    [
        (10.0, None, 1344, "no champion yet: value thresholds decide the first model"),
        (float("nan"), 10.0, 1344, "MAE missing or NaN for the challenger or the champion"),
        (10.0, float("nan"), 1344, "MAE missing or NaN for the challenger or the champion"),
        (10.0, 10.0, 0, "MAE missing or NaN for the challenger or the champion"),
    ],
)
def test_no_regression_without_a_comparison(new_mae, old_mae, n, reason):
    case = evaluation(new_mae, old_mae, (0.0, 0.0, 0.0))
    case["challenger"]["metrics"]["n"] = n
    assert no_regression_vs_champion(case, POLICY) == Verdict("no_regression_vs_champion", old_mae is None, reason)


def test_the_bootstrap_interval_is_the_95_percent_percentile_interval():
    # Difference ~ N(0, 1) over 400 rows: the interval is mean ± 1.96 standard errors.
    rng = np.random.default_rng(3)
    new = 5.0 + rng.normal(0, 1, 400)
    old = np.full(400, 5.0)
    diff, low, high = paired_bootstrap(new, old, 10_000, 11)
    standard_error = np.std(new - 5.0) / np.sqrt(400)
    assert diff == pytest.approx(np.mean(new - 5.0))
    assert (low - diff) / standard_error == pytest.approx(-1.96, abs=0.06)
    assert (high - diff) / standard_error == pytest.approx(1.96, abs=0.06)


def test_the_bootstrap_resamples_every_row_and_is_reproducible():
    # All of the difference sits in the first row: resampling 4 rows draws it 0-4 times.
    assert paired_bootstrap([4.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], 2000, 0) == (1.0, 0.0, 3.0)
    assert paired_bootstrap([2.5], [-1.0], 10, 0) == (1.5, 1.5, 1.5)
    rng = np.random.default_rng(5)
    new, old = rng.normal(0, 2, 50), rng.normal(0, 2, 50)
    assert paired_bootstrap(new, old, 200, 9) == paired_bootstrap(new, old, 200, 9)
    assert all(np.isnan(paired_bootstrap([], [], 10, 1)))


def test_signature_verdicts_are_exact():
    name = "signature_and_schema"
    assert signature_and_schema(["a", "b"], True, ["a", "b"]) == Verdict(name, True, "signature has the 2 expected inputs and an output schema")
    assert signature_and_schema(None, True, ["a"]) == Verdict(name, False, "the model version has no signature")
    extra = signature_and_schema(["a", "b", "c"], True, ["a", "b"])
    assert extra == Verdict(name, False, "signature mismatch: missing [], unexpected ['c'], output schema present")
    no_output = signature_and_schema(["a", "b"], False, ["a", "b"])
    assert no_output == Verdict(name, False, "signature mismatch: missing [], unexpected [], output schema missing")
    missing = signature_and_schema(["a"], True, ["a", "b"])
    assert missing == Verdict(name, False, "signature mismatch: missing ['b'], unexpected [], output schema present")


def test_bias_verdict_follows_the_fairness_report():
    name = "bias_within_threshold"
    assert bias_verdict({"passed": True, "reasons": ["gap 0.02 ≤ 0.10", "ratio ok"]}) == Verdict(name, True, "gap 0.02 ≤ 0.10; ratio ok")
    assert bias_verdict({"passed": False, "reasons": ["group E: gap"]}) == Verdict(name, False, "group E: gap")
    assert bias_verdict({"passed": True, "reasons": []}) == Verdict(name, True, "no reasons recorded")
    assert bias_verdict({}) == Verdict(name, False, "no reasons recorded")


def test_serving_verdicts_are_exact():
    name = "serving_smoke_test"
    ok = serving_verdict({"predictions": [1.0, 2], "seconds": 1.25}, 2)
    assert ok == Verdict(name, True, "fresh process loaded the version and returned 2/2 finite predictions in 1.2s")
    short = serving_verdict({"predictions": [1.0], "seconds": 3.0}, 2)
    assert short == Verdict(name, False, "fresh process loaded the version and returned 1/2 finite predictions in 3.0s")
    non_finite = serving_verdict({"predictions": [1.0, float("inf")], "seconds": 1.0}, 2)
    assert non_finite == Verdict(name, False, "fresh process loaded the version and returned 2/2 NON-FINITE predictions in 1.0s")
    failed = serving_verdict({"error": "ImportError: xgboost", "seconds": 2.0}, 2)
    assert failed == Verdict(name, False, "loading or predicting in a fresh process failed: ImportError: xgboost")
    untimed = serving_verdict({"predictions": [1.0, 2.0]}, 2)
    assert untimed == Verdict(name, True, "fresh process loaded the version and returned 2/2 finite predictions in nans")


@pytest.mark.parametrize(
    "compared, current, reason",
    [
        ("1", "1", None),
        (None, None, None),
        ("1", "2", "champion changed from v1 to v2 during evaluation"),
        (None, "2", "champion changed from none to v2 during evaluation"),
        ("1", None, "champion changed from v1 to none during evaluation"),
    ],
)
def test_compare_and_set_names_the_champion_that_changed(compared, current, reason):
    assert champion_changed(compared, current) == reason


def test_rollback_target_is_the_one_below_the_top_of_a_deep_stack():
    history = [{"action": "promote", "version": v} for v in ("1", "2", "4")]
    assert rollback_target(history) == ("4", "2")
    with pytest.raises(ValueError) as one:
        rollback_target(history[:1])
    assert str(one.value) == "nothing to roll back to: fewer than two versions have served"
    with pytest.raises(ValueError) as none:
        rollback_target([{"action": "refuse", "version": "1"}])
    assert str(none.value) == "no champion has been promoted yet"


def move(action: str, version: str | None) -> dict:
    return {"action": action, "version": version}


def test_a_move_made_outside_the_platform_serves_like_a_promotion():
    history = [move("promote", "1"), move("promote", "2"), move("external", "1"), move("refuse", "3")]
    assert serving_stack(history) == ["1", "2", "1"]
    assert rollback_target(history) == ("1", "2")
    assert serving_stack([move("promote", "1"), move("external", "1")]) == ["1"]  # the same version is not pushed twice
    assert serving_stack([move("promote", "1"), move("external", None)]) == ["1"]  # a removed alias serves nothing new


@pytest.mark.parametrize(
    ("history", "champion"),
    [
        ([], None),
        ([move("approve", "1"), move("refuse", "2")], None),
        ([move("promote", "1"), move("approve", "2")], "1"),
        ([move("promote", "1"), move("force_promote", "2"), move("refuse", "3")], "2"),
        ([move("promote", "1"), move("promote", "2"), move("rollback", "1"), move("unchanged", "2")], "1"),
        ([move("promote", "1"), move("external", "4")], "4"),
        ([move("promote", "1"), move("external", None)], None),
    ],
)
def test_the_recorded_champion_is_where_the_last_move_left_the_alias(history, champion):
    assert recorded_champion(history) == champion
