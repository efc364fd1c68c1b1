"""How core.drift chooses the rows a batch is compared with (seasonal or recent reference) and
how `calibrate` measures the no-drift distribution of its statistics (`_drift_null`), on tiny
hand-placed frames whose answers are worked out in each test.

These rules sit in private helpers because through `judge_batch` / `calibrate` they need a year
of history per case and show only as a shifted quantile; each helper is called directly here
with frames built by the module's own clock helper (`_with_clock`), exactly as the public
functions build them."""

from __future__ import annotations

import math
import statistics
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from scipy.stats import wasserstein_distance

from mlops_assets.core import drift
from mlops_assets.core.drift import DriftConfig
from mlops_assets.core.reference import ReferenceData
from mlops_assets_tests.core.test_drift_decision import SPEC

T0 = datetime(2023, 1, 1, tzinfo=timezone.utc)  # a Sunday, day 1 of the year


def at(day: int, hour: float = 0.0) -> datetime:
    return T0 + timedelta(days=day, hours=hour)


def clocked(times: list[datetime], values: list[float] | None = None) -> pl.DataFrame:
    """Rows of one series (no group column: group "all") with the clock columns core.drift adds."""
    frame = pl.DataFrame({"ts": times, "x": values if values is not None else [0.0] * len(times)},
                         schema={"ts": pl.Datetime("us", "UTC"), "x": pl.Float64})  # fmt: skip
    return drift._with_clock(frame, SPEC, ["x"])


def doys(days: list[int]) -> pl.DataFrame:
    return pl.DataFrame({drift._DOY: days}, schema={drift._DOY: pl.Int32})


def reference_with_recent(times: list[datetime] | None) -> ReferenceData:
    recent = None if times is None else pl.DataFrame({"ts": times}, schema={"ts": pl.Datetime("us", "UTC")})
    return ReferenceData("1", pl.DataFrame(), recent, {}, {}, {})


def upper(values: list[float], level: float, log: bool) -> dict:
    """Reference for the calibrated threshold: the larger of the empirical `level` quantile and
    that of a normal fit (of the logs when `log`), with the sample's size, median and max."""
    fit_on = [math.log(v) for v in values] if log else values
    fitted = statistics.NormalDist(statistics.mean(fit_on), statistics.stdev(fit_on)).inv_cdf(level)
    return {
        "threshold": max(float(np.quantile(values, level)), math.exp(fitted) if log else fitted),
        "windows": len(values), "median": statistics.median(values), "max": max(values),
    }


# --------------------------------------------------------------------------------------------
# days of the year near the batch's


@pytest.mark.parametrize(("days", "half_width", "expected"), [
    ({100}, 0, [100]),
    ({1}, 1, [1, 2, 366]),  # circular: 1 January's neighbour is day 366
    ({366}, 1.5, [1, 2, 364, 365, 366]),  # a half-width of 1.5 reaches 2 days
    ({10, 20}, 1, [9, 10, 11, 19, 20, 21]),
])  # fmt: skip
def test_near_days_are_the_days_of_the_year_within_the_half_width_around_the_turn_of_the_year(days, half_width, expected):
    assert drift._near_days(days, half_width) == expected


# --------------------------------------------------------------------------------------------
# the recent reference and its description


def test_the_recent_reference_is_described_with_its_rows_span_and_why_it_was_chosen():
    recent = clocked([at(3, 5), at(1, 2), at(2)])
    ref, info = drift._recent_reference(recent, DriftConfig())
    assert ref is recent
    assert info == {
        "kind": "recent", "rows": 3, "from": "2023-01-02 02:00:00+00:00", "to": "2023-01-04 05:00:00+00:00",
        "description": "the champion's most recent rows (fewer than 200 rows within ±14 days of the batch's day of the year)",
    }  # fmt: skip


def test_an_empty_recent_reference_has_no_span():
    _, info = drift._recent_reference(clocked([]), DriftConfig(min_reference_rows=50, seasonal_window_days=2.5))
    assert info == {
        "kind": "recent", "rows": 0, "from": None, "to": None,
        "description": "the champion's most recent rows (fewer than 50 rows within ±2.5 days of the batch's day of the year)",
    }  # fmt: skip


# --------------------------------------------------------------------------------------------
# the seasonal reference


def four_a_day(days: range) -> list[datetime]:
    return [at(d, h) for d in days for h in (0, 6, 12, 18)]


def test_the_seasonal_reference_keeps_rows_near_in_the_year_and_away_from_the_batch_by_the_gap():
    """Batch: day index 20 (day of year 21), 4 rows. ±3 days of the year: indices 17..23; rows
    within the 1-day gap of the batch (19..21) are left out: 17, 18, 22, 23 = 16 rows, 8 on each
    side. No other day of the batch's weekday is near: no narrowing to the same hours. Exactly
    `min_reference_rows` (16) rows with 8 = 16 // 2 on each side is enough."""
    pool = clocked(four_a_day(range(40)))
    batch = clocked(four_a_day(range(20, 21)))
    config = DriftConfig(seasonal_window_days=3, min_reference_rows=16)
    ref, info = drift._seasonal_reference(pool, batch, config, timedelta(days=1))
    assert ref.get_column(drift._TS).to_list() == four_a_day(range(17, 19)) + four_a_day(range(22, 24))
    assert info == {
        "kind": "seasonal", "rows": 16, "from": "2023-01-18 00:00:00+00:00", "to": "2023-01-24 18:00:00+00:00",
        "description": "the champion's rows within ±3 days of the batch's day of the year (any year)",
    }  # fmt: skip
    assert drift._seasonal_reference(pool, batch, DriftConfig(seasonal_window_days=3, min_reference_rows=17), timedelta(days=1)) is None


@pytest.mark.parametrize(("least_rows", "narrowed"), [(8, True), (9, False)])
def test_a_short_batch_is_compared_with_the_same_hours_of_the_week_when_there_are_enough_of_them(least_rows, narrowed):
    """±7 days around index 20, gap 1 day: indices 13..18 and 22..27, 48 rows; of them the
    batch's weekday and hours are indices 13 and 27: 8 rows, kept when 8 are enough."""
    pool = clocked(four_a_day(range(40)))
    batch = clocked(four_a_day(range(20, 21)))
    ref, info = drift._seasonal_reference(pool, batch, DriftConfig(seasonal_window_days=7, min_reference_rows=least_rows), timedelta(days=1))
    window = "within ±7 days of the batch's day of the year (any year)"
    if narrowed:
        assert ref.get_column(drift._TS).to_list() == four_a_day(range(13, 14)) + four_a_day(range(27, 28))
        assert info["description"] == f"the champion's rows {window} at the same hours of the week"
    else:
        assert ref.height == 48 and info["description"] == f"the champion's rows {window}"


def test_a_batch_shorter_than_six_days_is_narrowed_to_its_hours_of_the_week_and_one_of_six_is_not():
    """Batch rows at index 20 noon and index 26 (gap 0, as for a batch). Near rows: index 17 and
    18 at 06:00, 19 at 11:00 and noon (index 26's weekday), 27 at noon (index 20's weekday), 28
    at 06:00. Ending at 11:00 (5 days 23 h) the batch's hours of the week are 19 at 11:00 and 27
    at noon; ending at noon (6 days) it is compared with every near row."""
    pool = clocked([at(17, 6), at(18, 6), at(19, 11), at(19, 12), at(27, 12), at(28, 6)])
    config = DriftConfig(seasonal_window_days=3, min_reference_rows=2)
    shorter = drift._seasonal_reference(pool, clocked([at(20, 12), at(26, 11)]), config, timedelta(0))
    assert shorter[0].get_column(drift._TS).to_list() == [at(19, 11), at(27, 12)]
    six = drift._seasonal_reference(pool, clocked([at(20, 12), at(26, 12)]), config, timedelta(0))
    assert six[0].get_column(drift._TS).to_list() == [at(17, 6), at(18, 6), at(19, 11), at(19, 12), at(27, 12), at(28, 6)]


@pytest.mark.parametrize(("least_rows", "earlier", "later", "chosen"), [
    (5, 2, 3, True),  # 5 // 2 = 2 rows needed on each side
    (6, 2, 4, False),  # 6 // 2 = 3 rows needed on each side
    (6, 3, 3, True),
])  # fmt: skip
def test_the_seasonal_reference_needs_half_its_least_rows_on_each_side_of_the_batch(least_rows, earlier, later, chosen):
    """Batch: index 20, 01:00-04:00; rows at index 17 (earlier in the year) and 23 (later)."""
    pool = clocked([at(17, h) for h in range(earlier)] + [at(23, h) for h in range(later)])
    batch = clocked([at(20, h) for h in range(1, 5)])
    found = drift._seasonal_reference(pool, batch, DriftConfig(seasonal_window_days=3, min_reference_rows=least_rows), timedelta(days=1))
    assert (found is not None and found[0].height) == (earlier + later if chosen else False)


# --------------------------------------------------------------------------------------------
# rows on both sides of the batch's day of the year


@pytest.mark.parametrize(("rows", "batch", "least", "expected"), [
    ([99, 101], [100], 1, True),  # one day either side
    ([99, 100], [100], 1, False),  # the batch's own day is on neither side
    ([100, 101], [100], 1, False),
    ([99, 100, 101, 102], [100], 2, False),  # one earlier, two later
    ([98, 99, 100, 101], [100], 2, False),  # two earlier, one later
    ([98, 99, 101, 102], [100], 2, True),  # exactly `least` on each side
    ([98, 99, 101, 102], [100], 3, False),
    ([366, 184], [1], 1, False),  # 183 days away is on neither side
    ([366, 183], [1], 1, True),  # 31 December is before 1 January (circular)
])  # fmt: skip
def test_both_sides_counts_rows_earlier_and_later_in_the_year_than_the_batchs_middle_day(rows, batch, least, expected):
    assert drift._both_sides(doys(rows), doys(batch), least) is expected


# --------------------------------------------------------------------------------------------
# the calibrated threshold of a no-drift sample


def test_a_no_drift_sample_of_weighted_drifts_is_fitted_log_normally_by_default():
    """Scores below 1 (logs negative): the log-normal fit is far over the largest value."""
    values = [0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.6, 0.9]
    expected = upper(values, 0.99, log=True)
    assert expected["threshold"] > upper(values, 0.99, log=False)["threshold"] > max(values)
    assert drift._upper(values, 0.99) == pytest.approx(expected, rel=1e-12)


def test_a_no_drift_sample_of_standardised_scores_is_fitted_normally():
    values = [-1.5, -1.0, -0.6, -0.2, 0.0, 0.1, 0.4, 0.9, 1.3, 2.0, float("nan")]
    expected = upper(values[:-1], 0.99, log=False)
    assert expected["threshold"] > max(values[:-1])
    assert drift._upper(values, 0.99, log=False) == pytest.approx(expected, rel=1e-12)


def test_a_no_drift_sample_of_widely_spread_scores_keeps_its_empirical_quantile_when_it_is_higher():
    """The median 1.0 is over the normal fit's median, the mean -99.1."""
    values = [-1000.0] + [1.0] * 9
    assert drift._upper(values, 0.5, log=False) == pytest.approx({"threshold": 1.0, "windows": 10, "median": 1.0, "max": 1.0}, rel=1e-12)


def test_a_threshold_needs_ten_finite_no_drift_windows():
    assert drift._upper([0.1 * k for k in range(1, 10)] + [float("inf")], 0.9) is None
    assert drift._upper([0.1 * k for k in range(1, 11)], 0.9)["windows"] == 10


# --------------------------------------------------------------------------------------------
# calibration windows


def test_calibration_windows_start_at_local_midnights_and_fit_before_the_pools_last_row_plus_one_step():
    """Hourly spec: a window of 24 h starting at midnight fits when it ends by the last row + 1 h."""
    to_23h = clocked([T0 + timedelta(hours=h) for h in range(72)])  # 1 Jan 00:00 .. 3 Jan 23:00
    assert drift._day_starts(to_23h, SPEC, timedelta(hours=24), 90) == [at(0), at(1), at(2)]
    to_12h = clocked([T0 + timedelta(hours=h) for h in range(61)])  # .. 3 Jan 12:00
    assert drift._day_starts(to_12h, SPEC, timedelta(hours=24), 90) == [at(0), at(1)]


def test_a_pool_of_one_row_has_one_window_and_an_empty_pool_none():
    assert drift._day_starts(clocked([at(0)]), SPEC, timedelta(hours=1), 90) == [at(0)]
    assert drift._day_starts(clocked([]), SPEC, timedelta(hours=1), 90) == []


@pytest.mark.parametrize(("count", "expected"), [(3, [0, 5, 10]), (4, [0, 3, 7, 10]), (11, list(range(11))), (20, list(range(11)))])
def test_calibration_windows_are_spread_evenly_over_the_pool(count, expected):
    """11 midnights: `count` of them at evenly spaced positions 0 .. 10 (rounded)."""
    pool = clocked([at(d) for d in range(11)])
    assert drift._day_starts(pool, SPEC, timedelta(hours=1), count) == [at(d) for d in expected]


@pytest.mark.parametrize(("recent", "span"), [
    (None, timedelta(days=28)),
    ([], timedelta(days=28)),
    ([at(5)], timedelta(days=28)),
    ([at(5), at(8, 6)], timedelta(days=3, hours=6)),
    ([at(5), at(5, 6), at(5, 1)], timedelta(days=1)),  # at least a day
])  # fmt: skip
def test_the_recent_reference_of_a_calibration_window_spans_as_long_as_the_champions_recent_rows(recent, span):
    assert drift._recent_span(reference_with_recent(recent), SPEC) == span


def test_recent_rows_without_the_timestamp_span_28_days():
    ref = ReferenceData("1", pl.DataFrame(), pl.DataFrame({"when": [at(0), at(3)]}), {}, {}, {})
    assert drift._recent_span(ref, SPEC) == timedelta(days=28)


# --------------------------------------------------------------------------------------------
# the no-drift distribution (`_drift_null`)

VALUES = np.random.default_rng(5).normal(0.0, 1.0, 60)


def twice_a_day(days: int) -> pl.DataFrame:
    """Rows at 00:00 and 12:00 of each day, values from VALUES."""
    return clocked([at(d, h) for d in range(days) for h in (0, 12)], VALUES[: 2 * days].tolist())


def score(ref: np.ndarray, cur: np.ndarray) -> float:
    return min(wasserstein_distance(ref, cur) / (np.std(ref) or 1.0), 10.0)


def same(got, expected, rel: float = 1e-9) -> bool:
    """Equal nested dicts and lists, floats to `rel`: scipy's Wasserstein distance and core.drift's
    area between the CDFs add the same terms in a different order."""
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(same(got[k], expected[k], rel) for k in got)
    if isinstance(got, list) and isinstance(expected, list):
        return len(got) == len(expected) and all(same(a, b, rel) for a, b in zip(got, expected))
    if isinstance(expected, float):
        return math.isclose(got, expected, rel_tol=rel)
    return got == expected


def no_drift(scores: list[float], level: float) -> tuple[dict, dict, dict]:
    """(weighted-drift entry, the feature's [mean, sd] of log score, largest-z entry) of a single
    feature of weight 1: its z are its log scores standardised by their own mean and sd."""
    logs = [math.log(s) for s in scores]
    mean, sd = statistics.mean(logs), statistics.stdev(logs)
    return upper(scores, level, log=True), {"x": [mean, sd]}, upper([(v - mean) / sd for v in logs], level, log=False)


def test_the_no_drift_distribution_judges_each_day_against_the_span_before_it_beyond_the_gap():
    """20 days, rows at 00:00 and 12:00; windows of 24 h start at days 0..18 (day 19 ends after
    its last row + 1 h). Gap 1 day, recent span 1 day: day i is compared with day i - 2's two
    rows (from start - 2 days inclusive to start - 1 day exclusive), so days 2..18 are judged.
    Too few rows for a seasonal reference (200 needed)."""
    pool = twice_a_day(20)
    config = DriftConfig(calibration_gap_days=1.0)
    level = 1 - config.alpha / 3
    got = drift._drift_null(pool, reference_with_recent([at(30), at(30, 6)]), SPEC, config, timedelta(hours=24), ["x"], [], {"x": 1.0})
    scores = [score(VALUES[2 * i - 4: 2 * i - 2], VALUES[2 * i: 2 * i + 2]) for i in range(2, 19)]
    weighted, spreads, largest = no_drift(scores, level)
    assert same(got, {
        "hours": 24.0, "seasonal": None, "recent": weighted,
        "feature_log_scores": {"seasonal": {}, "recent": spreads},
        "largest_feature_z": {"seasonal": None, "recent": largest},
    })  # fmt: skip


def test_the_no_drift_distribution_judges_each_window_against_its_seasonal_reference_too():
    """As above with a seasonal reference from any day of the year given 2 rows: for day i the
    rows more than the gap away on both sides exist for i in 2..17, and the batch's hours of the
    week are the days i +- 7 and i +- 14: 16 windows, each against those days' rows."""
    pool = twice_a_day(20)
    config = DriftConfig(calibration_gap_days=1.0, seasonal_window_days=366, min_reference_rows=2)
    level = 1 - config.alpha / 3
    got = drift._drift_null(pool, reference_with_recent([at(30), at(30, 6)]), SPEC, config, timedelta(hours=24), ["x"], [], {"x": 1.0})
    same_hours = [np.concatenate([VALUES[2 * j: 2 * j + 2] for j in range(20) if j != i and (j - i) % 7 == 0]) for i in range(2, 18)]
    scores = [score(ref, VALUES[2 * i: 2 * i + 2]) for ref, i in zip(same_hours, range(2, 18))]
    weighted, spreads, largest = no_drift(scores, level)
    assert same(got["seasonal"], weighted)
    assert same(got["feature_log_scores"]["seasonal"], spreads)
    assert same(got["largest_feature_z"]["seasonal"], largest)
    assert got["recent"]["windows"] == 17


def test_calibration_windows_without_rows_are_skipped_and_the_next_ones_measured():
    """30 days: even days have rows at 00:00 and 12:00, odd days at 06:00 and 18:00. Windows of
    1 h at each midnight: odd days' are empty, even days' hold one row, judged against day
    i - 2's two rows (gap 1 day, span 1 day): days 2, 4, .., 28, 14 windows."""
    hours = [(d, h) for d in range(30) for h in ((0, 12) if d % 2 == 0 else (6, 18))]
    pool = clocked([at(d, h) for d, h in hours], VALUES[:60].tolist())
    config = DriftConfig(calibration_gap_days=1.0)
    got = drift._drift_null(pool, reference_with_recent([at(40), at(40, 6)]), SPEC, config, timedelta(hours=1), ["x"], [], {"x": 1.0})
    scores = [score(VALUES[2 * i - 4: 2 * i - 2], VALUES[2 * i: 2 * i + 1]) for i in range(2, 29, 2)]
    assert got["hours"] == 1.0
    assert same(got["recent"], upper(scores, 1 - config.alpha / 3, log=True))
