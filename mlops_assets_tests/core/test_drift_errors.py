"""The calibration output, the error windows and the realized-error test of core.drift on
champions whose errors are set row by row: one group at a load of 100, every hour of a day
off by the same small amount (a multiple of 1/256, so every error and sum is exact), the
expected numbers computed from those errors by hand or by the module docstring's recipe."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import fields
from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from scipy import stats

from mlops_assets.core.drift import DriftConfig, calibrate, judge_batch, psi
from mlops_assets.core.profile import bin_fractions, quantile_bin_edges
from mlops_assets.core.reference import ReferenceData
from mlops_assets.core.spec import spec_from_dict
from mlops_assets_tests.core.test_drift_decision import SPEC, T0

BASE = 1 / 64  # error of a day with factor 1: a day's summed error stays below 1
LOAD = 100.0
# Daily error factors of the champion's recent test rows: correlated from one day to the next.
FACTORS = [1.0, 1.25, 1.5, 1.5, 1.25, 1.0, 0.75, 0.75, 1.0, 1.25]
CONFIG = DriftConfig(calibration_hours=(), min_labelled_rows=24, min_error_windows=7)
NO_DRIFT_CALIBRATION = {"drift": {}}  # judge_batch then needs no calibration run
SPEC_NO_GROUP = spec_from_dict({
    "name": "single", "timestamp": {"column": "ts", "timezone": "UTC"}, "target": {"column": "load"},
    "features": {"numeric": ["temp", "humidity"]},
    "preparation": {"horizon": "24h", "lags": ["24h"], "rolling_windows": ["24h"]},
})  # fmt: skip


def hourly(first_day: int, factors: list[float], zone: str | None = "north") -> pl.DataFrame:
    """24 rows a day from day `first_day` after T0, one day per factor, each row's forecast
    BASE x the day's factor above a load of 100."""
    hours = np.arange(first_day * 24, (first_day + len(factors)) * 24)
    error = np.repeat(np.asarray(factors, float) * BASE, 24)
    frame = pl.DataFrame({
        "ts": [T0 + timedelta(hours=int(h)) for h in hours], "load": np.full(hours.size, LOAD),
        "temp": 10 + (hours % 24) / 2, "humidity": 50.0 + hours % 7, "prediction": LOAD + error,
    }).with_columns(pl.col("ts").dt.cast_time_unit("us"))  # fmt: skip
    return frame.with_columns(pl.lit(zone).alias("zone")) if zone else frame


def champion(recent: pl.DataFrame | None, calibration: dict | None = None, importance: dict | None = None,
             zone: str | None = "north") -> ReferenceData:  # fmt: skip
    """A champion trained on days 0-13 whose recent test rows are `recent`."""
    train = hourly(0, [1.0] * 14, zone).drop("prediction")
    calibration = NO_DRIFT_CALIBRATION if calibration is None else calibration
    return ReferenceData("1", train, recent, {}, importance or {"temp": 1.0}, {}, calibration)


def spread_of(windows: list[list[float]]) -> dict[str, float]:
    """The module docstring's recipe for consecutive windows of one group (each a list of its
    rows' errors): log(window error / the group's mean error x rows), windows with under half
    the median rows or no error left out; their count, mean, SD and lag-1 autocorrelation
    (clipped to [0, 0.9])."""
    every = [e for w in windows for e in w]
    mean_error = statistics.fmean(every) if every else 0.0
    median = statistics.median([len(w) for w in windows]) if windows else 0
    kept = [w for w in windows if len(w) >= median / 2 and sum(w) > 0 and mean_error > 0]
    logs = [math.log(sum(w) / (mean_error * len(w))) for w in kept]
    rho = 0.0
    if len(logs) > 2 and len(set(logs[1:])) > 1 and len(set(logs[:-1])) > 1:
        rho = statistics.correlation(logs[:-1], logs[1:])
    return {
        "windows": len(logs), "mean_log_ratio": statistics.fmean(logs) if logs else 0.0,
        "sd_log_ratio": statistics.stdev(logs) if len(logs) > 1 else 0.0, "autocorrelation": min(max(rho, 0.0), 0.9),
    }


def assert_close(actual: dict, expected: dict, rel: float) -> None:
    """Same keys; floats to `rel`, everything else (None, bools, counts, strings) exactly."""
    assert actual.keys() == expected.keys()
    for key, want in expected.items():
        assert actual[key] == (pytest.approx(want, rel=rel) if isinstance(want, float) else want), key


def days_of(factors: list[float]) -> list[list[float]]:
    return [[f * BASE] * 24 for f in factors]


def realized_spread(recent: pl.DataFrame | None, spec=SPEC) -> dict:
    """calibrate's realized part: daily windows (checked here) and their spread (returned)."""
    realized = dict(calibrate(champion(recent, zone="north" if spec is SPEC else None), spec, CONFIG)["realized"])
    assert realized.pop("window_hours") == 24.0
    return realized


# ---------------------------------------------------------------- calibrate's output


def test_the_calibration_holds_exactly_its_documented_parts_and_survives_json():
    config = DriftConfig(calibration_hours=(), alpha=0.03)
    calibration = calibrate(champion(hourly(14, FACTORS), importance={"temp": 3.0, "humidity": 1.0}), SPEC, config)
    assert set(calibration) == {"alpha", "features", "weights", "drift", "realized", "config"}
    assert calibration["alpha"] == 0.03 and calibration["drift"] == {}
    assert calibration["features"] == ["temp", "humidity"]
    assert calibration["weights"] == {"temp": 0.75, "humidity": 0.25}
    assert calibration["realized"] == pytest.approx({"window_hours": 24.0, **spread_of(days_of(FACTORS))}, rel=1e-12)
    expected_config = {f.name: getattr(config, f.name) for f in fields(config)} | {"calibration_hours": []}
    assert calibration["config"] == expected_config and type(calibration["config"]["calibration_hours"]) is list
    assert json.loads(json.dumps(calibration)) == calibration  # stored with the reference as it is


# ---------------------------------------------------------------- the spread of the error ratio


@pytest.mark.parametrize(
    "factors, expected",
    [
        # one window: its ratio is 1 and nothing varies
        ([1.0], {"windows": 1, "mean_log_ratio": 0.0, "sd_log_ratio": 0.0, "autocorrelation": 0.0}),
        # ratios 1/2 and 3/2: SD of two values is their gap / sqrt(2); no autocorrelation from two windows
        ([1.0, 3.0], {"windows": 2, "mean_log_ratio": math.log(0.75) / 2,
                      "sd_log_ratio": math.log(3) / math.sqrt(2), "autocorrelation": 0.0}),  # fmt: skip
        # rising ratios 1/2, 1, 3/2: the two lag pairs lie on a rising line (correlation 1), clipped to 0.9
        ([1.0, 2.0, 3.0], {"windows": 3, "mean_log_ratio": math.log(0.75) / 3,
                           "sd_log_ratio": statistics.stdev([math.log(0.5), 0.0, math.log(1.5)]),
                           "autocorrelation": 0.9}),  # fmt: skip
        # up then down: correlation -1, clipped to 0
        ([1.0, 3.0, 1.0], {"windows": 3, "mean_log_ratio": (2 * math.log(0.6) + math.log(1.8)) / 3,
                           "sd_log_ratio": statistics.stdev([math.log(0.6), math.log(1.8), math.log(0.6)]),
                           "autocorrelation": 0.0}),  # fmt: skip
        # ten days that move slowly: an autocorrelation inside (0, 0.9), as the recipe computes it
        (FACTORS, spread_of(days_of(FACTORS))),
    ],
    ids=["one-day", "two-days", "rising", "up-and-down", "ten-days"],
)
def test_the_daily_error_ratio_spread_of_the_recent_rows(factors, expected):
    assert 0.0 < spread_of(days_of(FACTORS))["autocorrelation"] < 0.9
    assert realized_spread(hourly(14, factors)) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_a_single_labelled_row_is_one_window():
    one = hourly(14, [1.0]).head(1)
    assert realized_spread(one) == {"windows": 1, "mean_log_ratio": 0.0, "sd_log_ratio": 0.0, "autocorrelation": 0.0}


@pytest.mark.parametrize(
    "recent",
    # Built in the test, not at collection: polars work at import starts its thread pool, and
    # a mutant forked from that process (mutmut's fork server) would deadlock.
    [
        lambda: None,
        lambda: hourly(14, [1.0]).head(0),
        lambda: pl.DataFrame({"ts": [], "zone": [], "load": [], "prediction": []}),  # built from empty lists: untyped columns
        lambda: hourly(14, FACTORS).drop("prediction"),
        lambda: hourly(14, FACTORS).drop("load"),
        lambda: hourly(14, FACTORS).with_columns(pl.lit(None, dtype=pl.Float64).alias("load")),
    ],
    ids=["none", "no-rows", "untyped-empty", "no-forecasts", "no-target", "unlabelled"],
)
def test_recent_rows_without_labelled_forecasts_have_no_error_windows(recent):
    recent = recent()
    assert realized_spread(recent) == {"windows": 0, "mean_log_ratio": 0.0, "sd_log_ratio": 0.0, "autocorrelation": 0.0}


@pytest.mark.parametrize("rows, kept", [(11, False), (12, True)])
def test_a_window_with_under_half_the_median_rows_is_left_out(rows, kept):
    """Eight full days (median 24 rows) and a last day of 11 or 12 rows; the partial day's
    errors still count in the group's mean error."""
    factors = [1.0, 1.25, 1.5, 1.0, 0.75, 1.0, 1.25, 1.5]
    recent = hourly(14, [*factors, 2.0]).head(24 * len(factors) + rows)
    windows = [*days_of(factors), [2.0 * BASE] * rows]
    expected = spread_of(windows)
    assert expected["windows"] == len(factors) + kept
    assert realized_spread(recent) == pytest.approx(expected, rel=1e-12)


def test_a_day_without_error_is_left_out_of_the_windows():
    """A perfect day would have a log ratio of minus infinity; it still lowers the mean error."""
    factors = [1.0, 1.25, 0.0, 1.5, 1.0, 0.75, 1.25, 1.0]
    expected = spread_of(days_of(factors))
    assert expected["windows"] == 7 and math.isfinite(expected["mean_log_ratio"])
    assert realized_spread(hourly(14, factors)) == pytest.approx(expected, rel=1e-12)


def test_a_forecast_or_target_that_is_not_a_number_is_an_unlabelled_row():
    """Columns read as text: a value that does not parse is left out, the others count."""
    clean = hourly(14, FACTORS)
    text = clean.with_columns(pl.col("prediction").cast(pl.String), pl.col("load").cast(pl.String))
    bad = text.head(2).with_columns(pl.Series("prediction", ["n/a", "101"]), pl.Series("load", ["100", "?"]))
    assert realized_spread(pl.concat([text, bad])) == pytest.approx(spread_of(days_of(FACTORS)), rel=1e-12)


def test_a_series_without_groups_is_measured_as_one_group():
    recent = hourly(14, FACTORS, zone=None)
    assert realized_spread(recent, SPEC_NO_GROUP) == pytest.approx(spread_of(days_of(FACTORS)), rel=1e-12)


# ---------------------------------------------------------------- the realized-error test


def expected_realized(factors: list[float], batch_factor: float, days: int) -> dict:
    """The module docstring's bound for a batch of `days` whole days at `batch_factor`
    against recent rows at `factors` (daily windows)."""
    spread = spread_of(days_of(factors))
    mae, reference_mae = batch_factor * BASE, statistics.fmean(factors) * BASE
    rho, n = spread["autocorrelation"], spread["windows"]
    inflation = (1 + rho) / (1 - rho) if days > 1 else 1.0
    sd = spread["sd_log_ratio"] * math.sqrt(inflation / days + 1 / n)
    bound = stats.t.ppf(1 - CONFIG.alpha / 3, n - 1) * sd
    center = math.log(mae / reference_mae) - spread["mean_log_ratio"]
    return {"rows": 24 * days, "mae": mae, "reference_mae": reference_mae, "ratio": mae / reference_mae,
            "ci_low": math.exp(center - bound), "ci_high": math.exp(center + bound),
            "tested": True, "why_not": None}  # fmt: skip


@pytest.mark.parametrize("days", [1, 2, 3])
def test_the_realized_error_bound_shrinks_with_days_and_widens_with_their_autocorrelation(days):
    """One day: the day's own spread (no autocorrelation). Two or more: the daily spread
    shrunk by the number of days, widened by (1 + rho) / (1 - rho)."""
    v = judge_batch(hourly(24, [2.0] * days), champion(hourly(14, FACTORS)), SPEC, CONFIG)["realized"]
    assert_close(v, expected_realized(FACTORS, 2.0, days), rel=1e-12)


def test_a_realized_error_not_tested_still_reports_its_rows_and_ratio():
    batch = hourly(24, [2.0]).with_columns(pl.when(pl.int_range(pl.len()) < 10).then(pl.col("load")).alias("load"))
    v = judge_batch(batch, champion(hourly(14, FACTORS)), SPEC, CONFIG)["realized"]
    assert v == {
        "rows": 10, "mae": 2.0 * BASE, "reference_mae": pytest.approx(statistics.fmean(FACTORS) * BASE, rel=1e-12),
        "ratio": pytest.approx(2.0 / statistics.fmean(FACTORS), rel=1e-12),
        "ci_low": None, "ci_high": None, "tested": False,
        "why_not": "10 labelled rows of known groups; the test needs 24",
    }  # fmt: skip


def test_an_unlabelled_batch_reports_no_rows_and_no_errors():
    batch = hourly(24, [2.0]).with_columns(pl.lit(None, dtype=pl.Float64).alias("load"))
    v = judge_batch(batch, champion(hourly(14, FACTORS)), SPEC, CONFIG)
    assert v["realized"] == {
        "rows": 0, "mae": None, "reference_mae": None, "ratio": None, "ci_low": None, "ci_high": None, "tested": False,
        "why_not": "0 labelled rows of known groups; the test needs 24",
    }  # fmt: skip
    assert v["reasons"][-1] == "realized error not tested: 0 labelled rows of known groups; the test needs 24"


@pytest.mark.parametrize("labelled, tested", [(24, True), (23, False)])
def test_the_realized_error_is_tested_from_exactly_min_labelled_rows(labelled, tested):
    labels = pl.when(pl.int_range(pl.len()) < labelled).then(pl.col("load"))
    batch = hourly(24, [2.0, 2.0]).with_columns(labels.alias("load"))
    v = judge_batch(batch, champion(hourly(14, FACTORS)), SPEC, CONFIG)["realized"]
    assert v["rows"] == labelled and v["tested"] is tested
    assert v["why_not"] == (None if tested else "23 labelled rows of known groups; the test needs 24")


@pytest.mark.parametrize("windows, tested", [(7, True), (6, False)])
def test_the_realized_error_is_tested_from_exactly_min_error_windows(windows, tested):
    factors = FACTORS[:windows]
    v = judge_batch(hourly(24, [2.0]), champion(hourly(14, factors)), SPEC, CONFIG)["realized"]
    if tested:
        assert_close(v, expected_realized(factors, 2.0, 1), rel=1e-12)
    else:
        assert not v["tested"] and v["ci_low"] is None
        assert v["why_not"] == "the reference has 6 windows of 1 day, 0:00:00; the test needs 7"


def test_a_champion_without_recent_error_gives_no_ratio():
    v = judge_batch(hourly(24, [2.0]), champion(hourly(14, [0.0] * 10)), SPEC, CONFIG)["realized"]
    assert v == {
        "rows": 24, "mae": 2.0 * BASE, "reference_mae": 0.0, "ratio": None, "ci_low": None, "ci_high": None,
        "tested": False,
        "why_not": "the champion's reference error is 0 or the batch's error is 0",
    }  # fmt: skip


@pytest.mark.parametrize(
    "recent",
    [lambda: None, lambda: hourly(14, FACTORS).drop("prediction")],
    ids=["no-recent-rows", "recent-rows-without-forecasts"],
)
def test_a_champion_without_recent_forecasts_is_not_tested_and_has_no_forecast_drift(recent):
    v = judge_batch(hourly(24, [2.0]), champion(recent()), SPEC, CONFIG)
    assert v["realized"] == {
        "rows": 0, "mae": None, "reference_mae": None, "ratio": None, "ci_low": None, "ci_high": None, "tested": False,
        "why_not": "the champion's reference has no labelled recent rows",
    }  # fmt: skip
    assert v["prediction_drift"] == {}


def test_a_batch_of_one_labelled_row_is_counted_and_its_forecast_compared():
    recent = hourly(14, FACTORS)
    v = judge_batch(hourly(24, [2.0]).head(1), champion(recent), SPEC, CONFIG)
    assert v["realized"]["rows"] == 1 and v["realized"]["mae"] == 2.0 * BASE
    assert v["realized"]["why_not"] == "1 labelled rows of known groups; the test needs 24"
    ref, cur = recent.get_column("prediction").to_numpy(), np.array([LOAD + 2.0 * BASE])
    assert v["prediction_drift"]["ks"] == pytest.approx(stats.ks_2samp(ref, cur).statistic, rel=1e-12)
    wasserstein = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert v["prediction_drift"]["wasserstein"] == pytest.approx(wasserstein, rel=1e-12)


def test_the_target_read_as_text_counts_its_numbers_only():
    batch = hourly(24, [2.0, 2.0]).with_columns(pl.col("load").cast(pl.String))
    unreadable = pl.when(pl.int_range(pl.len()) < 3).then(pl.lit("n/a")).otherwise(pl.col("load"))
    batch = batch.with_columns(unreadable.alias("load"))
    v = judge_batch(batch, champion(hourly(14, FACTORS)), SPEC, CONFIG)["realized"]
    assert v["rows"] == 45 and v["mae"] == 2.0 * BASE and v["tested"]


def test_a_series_without_groups_is_tested_as_one_group():
    reference = champion(hourly(14, FACTORS, zone=None), zone=None)
    v = judge_batch(hourly(24, [2.0, 2.0], zone=None), reference, SPEC_NO_GROUP, CONFIG)["realized"]
    assert_close(v, expected_realized(FACTORS, 2.0, 2), rel=1e-12)


def test_rows_without_the_group_column_are_the_group_all_for_the_features_and_the_error_alike():
    """The champion's only group is labelled "all"; a batch without the group column is read
    as that group by the feature comparison and by the realized-error test."""
    reference = champion(hourly(14, FACTORS, zone="all"), zone="all")
    v = judge_batch(hourly(24, [2.0, 2.0], zone=None), reference, SPEC, CONFIG)
    assert [r["feature"] for r in v["features"]] == ["temp", "humidity"]
    assert_close(v["realized"], expected_realized(FACTORS, 2.0, 2), rel=1e-12)


# ---------------------------------------------------------------- forecast drift


@pytest.mark.parametrize("recent_rows, measured", [(1, False), (2, True)])
def test_the_forecasts_drift_needs_two_recent_forecasts(recent_rows, measured):
    recent = hourly(14, [1.0, 3.0]).gather([0, 30][:recent_rows])
    v = judge_batch(hourly(24, [2.0]), champion(recent), SPEC, CONFIG)
    if not measured:
        assert v["prediction_drift"] == {}
        return
    ref, cur = recent.get_column("prediction").to_numpy(), hourly(24, [2.0]).get_column("prediction").to_numpy()
    edges = quantile_bin_edges(ref, SPEC.quantile_bins)
    assert v["prediction_drift"] == pytest.approx({
        "ks": stats.ks_2samp(ref, cur).statistic, "psi": psi(bin_fractions(ref, edges), cur, edges),
        "wasserstein": stats.wasserstein_distance(ref, cur) / np.std(ref),
    }, rel=1e-12)  # fmt: skip


# ---------------------------------------------------------------- weighted drift and feature spreads


def test_a_judged_feature_without_a_stored_weight_does_not_count_in_the_weighted_drift():
    """A calibration stored when only the temperature was judged: the humidity (shifted) is
    compared and reported, but the weighted drift is the temperature's score alone."""
    batch = hourly(24, [1.0]).with_columns(pl.col("humidity") + 5.0)
    reference = champion(hourly(14, FACTORS), calibration={"drift": {}, "weights": {"temp": 1.0}})
    v = judge_batch(batch, reference, SPEC, CONFIG)
    scores = {r["feature"]: r["score"] for r in v["features"]}
    assert set(scores) == {"temp", "humidity"} and scores["humidity"] > 0.5
    assert v["weighted_drift"] == scores["temp"]


def test_a_champion_whose_features_cannot_be_compared_has_no_spreads_and_a_zero_largest_shift_threshold():
    """Features without any value (a dead sensor): every calibration window compares no
    feature, so no feature has an ordinary shift and the largest standardised shift of every
    window is 0."""
    nothing = pl.lit(None, dtype=pl.Float64)
    dead = hourly(0, [1.0] * 24).with_columns(nothing.alias("temp"), nothing.alias("humidity"))
    reference = ReferenceData("1", dead.filter(pl.col("ts") < T0 + timedelta(days=16)).drop("prediction"),
                              dead.filter(pl.col("ts") >= T0 + timedelta(days=16)), {}, {"temp": 1.0}, {})  # fmt: skip
    config = DriftConfig(calibration_hours=(24.0,), calibration_windows=30, calibration_gap_days=1.0)
    drift = calibrate(reference, SPEC, config)["drift"]["24"]
    assert drift["feature_log_scores"] == {"seasonal": {}, "recent": {}}
    for kind in ("seasonal", "recent"):
        z = drift["largest_feature_z"][kind]
        assert z["windows"] >= 10 and (z["threshold"], z["median"], z["max"]) == (0.0, 0.0, 0.0), kind


def test_a_features_ordinary_shift_is_the_mean_and_sd_of_its_log_scores_over_ten_or_more_windows():
    """Called directly: calibrate only reports the result, not the per-window scores it was
    computed from, so the rule (at least MIN_NULL_WINDOWS windows, sample SD, scores below
    1 kept as they are, a feature without spread left out) is checked on the helper."""
    from mlops_assets.core.drift import MIN_NULL_WINDOWS, _log_spreads

    ten = [0.05, 0.1, 0.2, 0.15, 0.3, 0.12, 0.08, 0.25, 0.18, 0.11]
    assert len(ten) == MIN_NULL_WINDOWS
    windows = [{"seen": s, "flat": 1.0, "rare": s} if i else {"seen": s, "flat": 1.0} for i, s in enumerate(ten)]
    logs = [math.log(s) for s in ten]
    assert statistics.stdev(logs) < 1
    assert _log_spreads(windows) == {"seen": pytest.approx([statistics.fmean(logs), statistics.stdev(logs)], rel=1e-12)}


@pytest.mark.parametrize("constant", [0.4, 1e-12, 0.1, 3.7])
def test_a_feature_whose_no_drift_score_never_varies_has_no_ordinary_spread(constant):
    """Ten identical scores have a standard deviation of rounding noise (1e-16, not 0); such a
    feature must be left out like an exactly constant one, or any batch a hair above the
    constant would be "far beyond its ordinary shift" at a z of 1e14."""
    from mlops_assets.core.drift import _log_spreads

    windows = [{"flat": constant, "seen": s} for s in (0.05, 0.1, 0.2, 0.15, 0.3, 0.12, 0.08, 0.25, 0.18, 0.11)]
    assert list(_log_spreads(windows)) == ["seen"]


@pytest.mark.parametrize(
    ("mean_log", "sd", "kept"),
    [
        (10.0, 5e-9, False),  # below 1e-9 x |mean| = 1e-8: noise of a constant score
        (10.0, 2e-8, True),  # above it
        (0.5, 1.5e-9, True),  # |mean| under 1: the floor is 1e-9 itself
        (0.5, 0.5e-9, False),
    ],
)
def test_the_spread_floor_is_relative_to_the_size_of_the_mean_log_score(mean_log, sd, kept):
    from mlops_assets.core.drift import _log_spreads

    a = sd / math.sqrt(10 / 9)  # ten scores alternating +-a around the mean have this sample SD
    windows = [{"f": math.exp(mean_log + (a if i % 2 else -a))} for i in range(10)]
    assert ("f" in _log_spreads(windows)) is kept
