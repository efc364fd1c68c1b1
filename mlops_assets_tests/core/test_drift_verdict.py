"""How judge_batch assembles its verdict (core.drift): which calibrated threshold a batch is
held to, where the reference rows come from, when a trigger fires and what the verdict says.

The frames are tiny and hand-made so that the answers are exact. One group ("north"); the
champion's rows of each numeric feature are a training row at 0 and recent rows at -1 and 1:
their mean is 0 and their standard deviation 1, so the standardised values are the values
themselves, and a batch at 0 and 2 is the recent reference shifted by exactly 1 of its
(population) standard deviations: a score of exactly 1.0. The calibrations are written by
hand, so every threshold is known."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from mlops_assets.core.drift import NO_KNOWN_GROUP, NO_TRIGGER, NOTHING_TO_JUDGE, DriftConfig, judge_batch
from mlops_assets.core.reference import ReferenceData
from mlops_assets_tests.core.test_drift_decision import SPEC, T0, empty_verdict

RECENT_ONLY = DriftConfig(min_reference_rows=1000)  # no seasonal reference: the recent rows decide
LEVEL = "99.3%"  # 1 - alpha/3 with alpha = 0.02
RECENT_DESCRIPTION = "the champion's most recent rows (fewer than 1000 rows within ±14 days of the batch's day of the year)"
NO_LABELLED_RECENT = "realized error not tested: the champion's reference has no labelled recent rows"


def at(hours: list[float], **columns: list) -> pl.DataFrame:
    """Rows of group "north" at `hours` after T0 with the given columns."""
    ts = [T0 + timedelta(hours=h) for h in hours]
    return pl.DataFrame({"ts": ts, "zone": ["north"] * len(ts), **columns}).with_columns(pl.col("ts").dt.cast_time_unit("us"))


def scored(hours: list[float], **columns: list) -> pl.DataFrame:
    """A scored batch: the columns, a forecast of 10 and no target yet."""
    n = len(hours)
    return at(hours, **columns, prediction=[10.0] * n, load=pl.Series([None] * n, dtype=pl.Float64))


def champion(calibration: dict, importance: dict | None = None, features: tuple[str, ...] = ("x", "y")) -> ReferenceData:
    """Each feature: a training row at 0, recent rows at -1 and 1 (hours 1 and 2)."""
    train = at([0], **{f: [0.0] for f in features})
    recent = at([1, 2], **{f: [-1.0, 1.0] for f in features})
    return ReferenceData("1", train, recent, {}, importance or {}, {}, calibration)


def drift(hours: str, **by_kind: dict) -> dict:
    """A calibration measured for one batch length: the weighted-drift entry of each kind."""
    return {hours: {"hours": float(hours), **by_kind}}


def entry(threshold: float) -> dict:
    return {"threshold": threshold, "windows": 12, "median": 0.1, "max": 0.2}


# ---------------------------------------------------------------------------------------------
# the weighted-drift trigger


@pytest.mark.parametrize(
    ("threshold", "retrain"),
    [(np.nextafter(0.5, 0.0), True), (0.5, False), (np.nextafter(0.5, 1.0), False)],
)
def test_the_weighted_drift_triggers_only_strictly_above_its_threshold(threshold, retrain):
    """x moves by exactly 1 reference SD, y not at all; half the weight each: 0.5. The
    recent reference keeps both of its rows (the trigger is judged on two rows)."""
    calibration = {"weights": {"x": 0.5, "y": 0.5}, "drift": drift("2", recent=entry(float(threshold)))}
    v = judge_batch(scored([10, 11], x=[0.0, 2.0], y=[-1.0, 1.0]), champion(calibration), SPEC, RECENT_ONLY)
    assert [(r["feature"], r["score"]) for r in v["features"]] == [("x", 1.0), ("y", 0.0)]
    assert v["weighted_drift"] == 0.5 and v["weighted_drift_threshold"] == threshold
    assert v["retrain"] is retrain
    if retrain:
        assert v["reasons"][0].startswith(
            f"importance-weighted drift 0.500 > 0.500 ({LEVEL} quantile of 12 no-drift windows of 2 h (recent reference)); "
            "drifted: "
        )
    else:
        assert v["reasons"] == [NO_TRIGGER, NO_LABELLED_RECENT]


def test_the_calibrated_weights_are_used_rather_than_the_importance():
    calibration = {"weights": {"x": 0.25, "y": 0.75}, "drift": drift("2", recent=entry(100.0))}
    v = judge_batch(scored([10, 11], x=[0.0, 2.0], y=[-1.0, 1.0]), champion(calibration, {"x": 0.5, "y": 0.5}), SPEC, RECENT_ONLY)
    assert v["weighted_drift"] == 0.25


def test_without_calibrated_weights_the_importance_shares_weigh_the_features():
    """Importance 3 : 1, renormalised: x weighs 0.75 (equal weights would give 0.5)."""
    calibration = {"drift": drift("2", recent=entry(100.0))}
    v = judge_batch(scored([10, 11], x=[0.0, 2.0], y=[-1.0, 1.0]), champion(calibration, {"x": 3.0, "y": 1.0}), SPEC, RECENT_ONLY)
    assert v["weighted_drift"] == 0.75


# ---------------------------------------------------------------------------------------------
# which calibrated batch length and which kind of reference a threshold comes from


@pytest.mark.parametrize(("batch_hours", "threshold"), [(24, 36.0), (23, 24.0)])
def test_a_calibration_measured_on_exactly_one_and_a_half_times_the_batch_length_is_used(batch_hours, threshold):
    """24 hourly rows last 24 h (the last row's hour counts): 36 h = 1.5 x 24 h still fits;
    23 rows last 23 h and 1.5 x 23 h = 34.5 h does not, so the 24 h calibration is used."""
    measured = {**drift("24", recent=entry(24.0)), **drift("36", recent=entry(36.0))}
    calibration = {"weights": {"x": 0.5, "y": 0.5}, "drift": measured}
    hours = list(range(10, 10 + batch_hours))
    batch = scored(hours, x=[0.0, 2.0] * (batch_hours // 2) + [0.0] * (batch_hours % 2), y=[0.0] * batch_hours)
    v = judge_batch(batch, champion(calibration), SPEC, RECENT_ONLY)
    assert v["weighted_drift_threshold"] == threshold


def test_a_batch_shorter_than_every_calibration_uses_the_shortest_one():
    measured = {**drift("168", recent=entry(9.0)), **drift("48", recent=entry(7.0))}
    calibration = {"weights": {"x": 0.5, "y": 0.5}, "drift": measured}
    v = judge_batch(scored([10, 11], x=[0.0, 2.0], y=[-1.0, 1.0]), champion(calibration), SPEC, RECENT_ONLY)
    assert v["weighted_drift_threshold"] == 7.0
    assert v["reasons"] == [NO_TRIGGER, NO_LABELLED_RECENT]


def test_a_recent_reference_without_its_own_calibration_borrows_the_seasonal_thresholds():
    """Only the seasonal reference was calibrated. Feature x's no-drift log score has mean
    log 0.5 and SD 1, the largest-feature threshold is 0 SD: its limit is a score of 0.5, and x
    (score 1, log score (log 1 - log 0.5) / 1 = 0.7 SD above its mean) is far beyond it."""
    seasonal = {
        "hours": 2.0, "seasonal": entry(5.0), "recent": None,
        "largest_feature_z": {"seasonal": entry(0.0), "recent": None},
        "feature_log_scores": {"seasonal": {"x": [float(np.log(0.5)), 1.0]}, "recent": {}},
    }  # fmt: skip
    calibration = {"weights": {"x": 0.5, "y": 0.5}, "drift": {"2": seasonal}}
    v = judge_batch(scored([10, 11], x=[0.0, 2.0], y=[-1.0, 1.0]), champion(calibration), SPEC, RECENT_ONLY)
    assert v["reference"]["kind"] == "recent"
    assert v["weighted_drift_threshold"] == 5.0 and v["weighted_drift"] == 0.5
    assert [(r["feature"], r["drifted"]) for r in v["features"]] == [("x", True), ("y", False)]
    assert v["reasons"] == [
        f"feature x shifted far beyond its ordinary shift (log score 0.7 SD above its no-drift mean > 0.0, the {LEVEL} "
        "quantile of the largest feature on no-drift windows)",
        NO_LABELLED_RECENT,
    ]
    assert v["retrain"] is True


# ---------------------------------------------------------------------------------------------
# the reference rows


def test_recent_rows_at_the_batch_own_first_and_last_instant_are_not_its_reference():
    """Recent rows at hours 1, 2, 10 and 11; the batch covers hours 10 to 11."""
    calibration = {"weights": {"x": 1.0}, "drift": drift("2", recent=entry(100.0))}
    reference = ReferenceData("1", at([0], x=[0.0]), at([1, 2, 10, 11], x=[-1.0, 1.0, 5.0, 6.0]), {}, {}, {}, calibration)
    v = judge_batch(scored([10, 11], x=[0.0, 2.0]), reference, SPEC, RECENT_ONLY)
    assert v["reference"] == {
        "kind": "recent", "rows": 2, "from": str(T0 + timedelta(hours=1)), "to": str(T0 + timedelta(hours=2)),
        "description": RECENT_DESCRIPTION,
    }  # fmt: skip


def test_the_seasonal_reference_of_a_batch_includes_the_champions_rows_right_next_to_it():
    """A batch on 11 January 00:00-01:00; the champion's rows on 6 January, at 23:00 the day
    before the batch, at 05:00 the same day and on 16 January: all four within 14 days of the
    day of the year, two before it and one after (none at the same hours of the week)."""
    calibration = {"weights": {"x": 1.0}, "drift": drift("2", seasonal=entry(100.0))}
    days = [5 * 24, 10 * 24 - 1, 10 * 24 + 5, 15 * 24]
    train = at(days, x=[-1.0, 0.0, 1.0, 0.5])
    reference = ReferenceData("1", train, train.clear(), {}, {}, {}, calibration)
    v = judge_batch(scored([240, 241], x=[0.0, 2.0]), reference, SPEC, DriftConfig(min_reference_rows=2))
    assert v["reference"] == {
        "kind": "seasonal", "rows": 4, "from": str(T0 + timedelta(hours=days[0])), "to": str(T0 + timedelta(hours=days[-1])),
        "description": "the champion's rows within ±14 days of the batch's day of the year (any year)",
    }  # fmt: skip


def test_a_reference_of_two_rows_is_compared():
    calibration = {"weights": {"x": 1.0}, "drift": drift("2", recent=entry(100.0))}
    v = judge_batch(scored([10, 11], x=[0.0, 2.0]), champion(calibration, features=("x",)), SPEC, RECENT_ONLY)
    assert [(r["feature"], r["score"]) for r in v["features"]] == [("x", 1.0)]
    assert v["reference"]["rows"] == 2 and v["reference"]["description"] == RECENT_DESCRIPTION


def test_a_reference_of_one_row_compares_nothing_and_says_so():
    """One recent row (a numeric and a categorical value): nothing is compared, not even
    the category, and the reference's description says why the verdict has no features."""
    calibration = {"weights": {"x": 0.5, "c": 0.5}, "drift": drift("2", recent=entry(0.5))}
    reference = ReferenceData("1", at([0], x=[0.0], c=["a"]), at([1], x=[1.0], c=["a"]), {}, {}, {}, calibration)
    v = judge_batch(scored([10, 11], x=[0.0, 2.0], c=["b", "b"]), reference, SPEC, RECENT_ONLY)
    assert v["features"] == [] and v["weighted_drift"] == 0.0 and v["weighted_drift_threshold"] == 0.5
    hour = str(T0 + timedelta(hours=1))
    assert v["reference"] == {
        "kind": "recent", "rows": 1, "from": hour, "to": hour,
        "description": f"{RECENT_DESCRIPTION}; no feature could be compared (1 rows)",
    }  # fmt: skip
    assert v["retrain"] is False and v["reasons"] == [NO_TRIGGER, NO_LABELLED_RECENT]


# ---------------------------------------------------------------------------------------------
# many features: five named, five root causes


def six_features(shifts: list[float]) -> dict:
    """Features f1..f6 shifted by `shifts` reference SDs; each feature's limit is a score of 1
    (no-drift log score mean 0, SD 1, largest-feature threshold 0); weighted threshold 1."""
    names = [f"f{i}" for i in range(1, 7)]
    calibration = {
        "weights": {f: 1 / 6 for f in names},
        "drift": drift(
            "2", recent=entry(1.0), largest_feature_z={"recent": entry(0.0)},
            feature_log_scores={"recent": {f: [0.0, 1.0] for f in names}},
        ),  # fmt: skip
    }
    reference = champion(calibration, {f: 1.0 for f in names}, features=tuple(names))
    batch = scored([10, 11], **{f: [-1.0 + s, 1.0 + s] for f, s in zip(names, shifts)})
    return judge_batch(batch, reference, SPEC, RECENT_ONLY)


def test_the_weighted_trigger_names_the_five_most_shifted_drifted_features():
    v = six_features([1.5, 2.0, 2.5, 3.0, 3.5, 4.0])
    assert all(r["drifted"] for r in v["features"])
    assert v["reasons"][0].startswith("importance-weighted drift ")
    assert v["reasons"][0].endswith("(recent reference)); drifted: ['f6', 'f5', 'f4', 'f3', 'f2']")
    assert len(v["root_causes"]) == 6  # every drifted feature is a root cause


def test_without_drifted_features_the_five_largest_shifts_are_the_root_causes():
    v = six_features([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert not any(r["drifted"] for r in v["features"]) and v["retrain"] is False
    assert [c["feature"] for c in v["root_causes"]] == ["f6", "f5", "f4", "f3", "f2"]


# ---------------------------------------------------------------------------------------------
# the realized-error trigger


def labelled(hours: list[float], error: float) -> pl.DataFrame:
    """Rows forecast 10 + h % 5 whose target is `error` above the forecast (exact in floats)."""
    prediction = [10.0 + h % 5 for h in hours]
    return at(hours, x=[-1.0, 1.0] * (len(hours) // 2), prediction=prediction, load=[p + error for p in prediction])


@pytest.mark.parametrize(("tolerance", "degraded"), [(0.99, True), (1.0, False), (1.01, False), (0.5, True)])
def test_the_realized_error_triggers_only_when_its_lower_bound_is_strictly_above_one_plus_the_tolerance(tolerance, degraded):
    """The champion's recent error is 1 in every hour of three days (its daily log ratios
    are all 0: no spread), the batch's error 2: the ratio and its lower bound are exactly 2."""
    calibration = {"weights": {"x": 1.0}, "drift": drift("24", recent=entry(100.0))}
    reference = ReferenceData("1", at([0], x=[0.0]), labelled(list(range(72)), 1.0), {}, {}, {}, calibration)
    config = DriftConfig(min_reference_rows=1000, min_error_windows=3, realized_mae_tolerance=tolerance)
    v = judge_batch(labelled(list(range(96, 120)), 2.0), reference, SPEC, config)
    realized = v["realized"]
    assert (realized["rows"], realized["mae"], realized["reference_mae"], realized["ratio"]) == (24, 2.0, 1.0, 2.0)
    assert realized["tested"] is True and realized["ci_low"] == 2.0 == realized["ci_high"]
    assert v["retrain"] is degraded
    if degraded:
        assert v["reasons"] == [
            f"realized MAE 2 is 2.00 x the champion's 1 on its recent test rows; {LEVEL} lower bound 2.00 > {1 + tolerance:.2f}"
        ]
    else:
        assert v["reasons"] == [NO_TRIGGER]


# ---------------------------------------------------------------------------------------------
# what cannot be judged


def test_forecasts_that_are_not_numbers_are_left_out_of_the_batch():
    """A forecast column read as text: the row whose forecast is not a number is dropped, the
    other two are judged (x at 0 and 2: a shift of exactly 1 reference SD)."""
    calibration = {"weights": {"x": 1.0}, "drift": drift("2", recent=entry(100.0))}
    batch = at([10, 11, 12], x=[0.0, 2.0, 50.0], prediction=["10", "10.5", "n/a"], load=pl.Series([None] * 3, dtype=pl.Float64))
    reference = champion(calibration, features=("x",))
    v = judge_batch(batch, reference, SPEC, RECENT_ONLY)
    assert [(r["feature"], r["score"]) for r in v["features"]] == [("x", 1.0)] and v["weighted_drift"] == 1.0
    unreadable = batch.filter(pl.col("prediction") == "n/a")
    assert judge_batch(unreadable, reference, SPEC, RECENT_ONLY)["reasons"] == [NOTHING_TO_JUDGE]


@pytest.mark.parametrize(
    ("batch", "why"),
    [
        (lambda: scored([10, 11], x=[0.0, 2.0]).with_columns(pl.lit("east").alias("zone")), NO_KNOWN_GROUP),
        (lambda: scored([10, 11], x=[0.0, 2.0]).drop("ts"), NOTHING_TO_JUDGE),
    ],
    ids=["only-new-groups", "no-timestamp"],
)
def test_a_batch_that_cannot_be_judged_gets_the_whole_empty_verdict(batch, why):
    calibration = {"weights": {"x": 1.0}, "drift": drift("2", recent=entry(100.0))}
    v = judge_batch(batch(), champion(calibration, {"x": 1.0}, features=("x",)), SPEC, RECENT_ONLY)
    assert v == empty_verdict(why)
