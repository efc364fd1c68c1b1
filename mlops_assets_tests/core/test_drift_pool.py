"""The champion's rows drift is judged against (core.drift: the pool, its clock columns and the
per-group standardisation), on a handful of hand-placed rows whose answers are computed here
independently: which rows a batch is compared with, in UTC, and the numeric values in units
of their group's spread."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from scipy import stats

from mlops_assets.core.drift import NO_KNOWN_GROUP, DriftConfig, judge_batch
from mlops_assets.core.reference import ReferenceData
from mlops_assets.core.spec import spec_from_dict

SPEC = spec_from_dict({
    "name": "pool", "timestamp": {"column": "ts", "timezone": "UTC"}, "group": "zone",
    "target": {"column": "load"}, "features": {"numeric": ["x"], "categorical": ["c"]},
})  # fmt: skip
SINGLE = spec_from_dict({"name": "single", "timestamp": {"column": "ts", "timezone": "UTC"}, "target": {"column": "load"}, "features": {"numeric": ["x"]}})
# A seasonal reference needs 4 rows (2 on each side of the batch's day), within a week of it in the year.
CONFIG = DriftConfig(min_reference_rows=4, seasonal_window_days=7.0)
UTC = timezone.utc
BATCH_DAY = datetime(2023, 1, 20, tzinfo=UTC)
NOT_SEASONAL = "fewer than 4 rows within ±7 days of the batch's day of the year"


def frame(stamps: list[datetime], x: list, zones: list[str] | None = None, c: list[str] | None = None) -> pl.DataFrame:
    """Rows of the champion's data or of a batch: timestamp, group, target, forecast, x (and c)."""
    columns = {"ts": stamps, "load": [1.0] * len(stamps), "prediction": [1.0] * len(stamps), "x": x}
    if zones is not None:
        columns["zone"] = zones
    if c is not None:
        columns["c"] = c
    return pl.DataFrame(columns).with_columns(pl.col("ts").dt.cast_time_unit("us"))


def hours_before(day: datetime, count: int) -> list[datetime]:
    """`count` hourly stamps ending a day before `day` (the same season, one side of it only:
    never a seasonal reference, so the batch is compared with the champion's recent rows)."""
    return [day - timedelta(days=1, hours=count - i) for i in range(count)]


def champion(train: pl.DataFrame, recent: pl.DataFrame, profile: dict | None = None) -> ReferenceData:
    """A champion calibrated on nothing (its thresholds are the configured ones) that weighs x and c alike."""
    return ReferenceData("1", train.drop("prediction"), recent, profile or {}, {"x": 0.5, "c": 0.5}, {}, {"drift": {}})


def feature(verdict: dict, name: str) -> dict:
    return next(r for r in verdict["features"] if r["feature"] == name)


def expected_shift(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """(KS statistic, Wasserstein-1 over the reference's SD) by scipy."""
    scale = float(np.std(reference)) or 1.0
    return float(stats.ks_2samp(reference, current, method="asymp").statistic), float(stats.wasserstein_distance(reference, current)) / scale


def standardise(values: dict[str, list[float | None]], pool: dict[str, list[float | None]]) -> np.ndarray:
    """Each group's values minus the group's mean in the pool, over its sample SD (ddof 1);
    an SD that is 0 or unknown counts as 1, an unknown mean as 0; groups absent from the pool
    and missing values are left out."""
    out = []
    for group, xs in values.items():
        if group not in pool:
            continue
        known = np.array([v for v in pool[group] if v is not None], float)
        mean = known.mean() if known.size else 0.0
        sd = known.std(ddof=1) if known.size > 1 else 0.0
        out += [(v - mean) / (sd if sd > 0 else 1.0) for v in xs if v is not None]
    return np.array(out)


def rows_of(groups: dict[str, list[float | None]], stamps: list[datetime]) -> pl.DataFrame:
    """One row per value, groups in turn, on consecutive `stamps`."""
    zones = [g for g, xs in groups.items() for _ in xs]
    return frame(stamps[: len(zones)], [v for xs in groups.values() for v in xs], zones)


# --------------------------------------------------------------------------------------------
# the rows compared with a batch, on the UTC clock


def test_the_champions_rows_in_another_time_zone_are_placed_in_utc():
    """Recent rows stamped in Tokyo (UTC+9), training rows without a zone (read as UTC): the
    reference reports its span in UTC, so 09:00 in Tokyo is 00:00 UTC."""
    tokyo = [datetime(2023, 1, 10, 9 + h) for h in range(6)]
    recent = frame(tokyo, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], ["a"] * 6).with_columns(pl.col("ts").dt.replace_time_zone("Asia/Tokyo"))
    train = frame([datetime(2023, 1, 9, h) for h in range(6)], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], ["a"] * 6)
    batch = frame([BATCH_DAY + timedelta(hours=h) for h in range(3)], [1.0, 2.0, 3.0], ["a"] * 3)
    info = judge_batch(batch, champion(train, recent), SPEC, CONFIG)["reference"]
    assert (info["kind"], info["rows"], info["from"], info["to"]) == ("recent", 6, "2023-01-10 00:00:00+00:00", "2023-01-10 05:00:00+00:00")


def test_a_champion_without_recent_rows_compares_nothing_and_says_so():
    train = frame(hours_before(BATCH_DAY, 6), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], ["a"] * 6)
    recent = train.head(0)
    batch = frame([BATCH_DAY + timedelta(hours=h) for h in range(3)], [1.0, 2.0, 3.0], ["a"] * 3)
    v = judge_batch(batch, champion(train, recent), SPEC, CONFIG)
    assert v["reference"] == {
        "kind": "recent", "rows": 0, "from": None, "to": None,
        "description": f"the champion's most recent rows ({NOT_SEASONAL}); no feature could be compared (0 rows)",
    }  # fmt: skip
    assert (v["features"], v["weighted_drift"], v["retrain"]) == ([], 0.0, False)


# 2023-01-18 is a Wednesday, day 18 of the year; its season: days 11 to 25 of any year.
WEDNESDAYS = [datetime(y, 1, d, tzinfo=UTC) for y, d in ((2021, 13), (2021, 20), (2022, 12), (2022, 19))]
OTHER_HOURS = [
    datetime(2022, 1, 18, 23, 40, tzinfo=UTC),  # Tuesday 23:40, just before a Wednesday 00:03
    datetime(2022, 1, 20, 10, 0, tzinfo=UTC),  # Thursday, at the batch's time of day
    datetime(2022, 1, 19, 11, 0, tzinfo=UTC),  # Wednesday, the batch's minute of another hour
    datetime(2022, 1, 19, 3, 3, tzinfo=UTC),
    datetime(2021, 1, 14, 0, 3, tzinfo=UTC),  # Thursday
    datetime(2022, 1, 5, 10, 0, tzinfo=UTC),  # a Wednesday out of season
]


def test_a_short_batch_is_compared_with_the_seasons_rows_at_its_own_minutes_of_the_week():
    same = [day + timedelta(hours=h, minutes=m) for day in WEDNESDAYS for h, m in ((0, 3), (10, 0))]
    stamps = sorted(same + OTHER_HOURS)
    train = frame(stamps, [float(i) for i in range(len(stamps))], ["a"] * len(stamps))
    recent = frame(hours_before(datetime(2023, 1, 18, tzinfo=UTC), 3), [0.0, 1.0, 2.0], ["a"] * 3)
    batch = frame([datetime(2023, 1, 18, 0, 3, tzinfo=UTC), datetime(2023, 1, 18, 10, 0, tzinfo=UTC)], [1.0, 2.0], ["a"] * 2)
    info = judge_batch(batch, champion(train, recent), SPEC, CONFIG)["reference"]
    assert (info["kind"], info["rows"], info["from"], info["to"]) == ("seasonal", 8, str(same[0]), str(same[-1]))
    assert info["description"].endswith("at the same hours of the week")


# --------------------------------------------------------------------------------------------
# groups and columns the rows lack


def test_a_single_series_is_judged_as_one_group():
    pool = [0.0, 1.0, 2.0, 4.0, 8.0, 16.0]
    train = frame(hours_before(BATCH_DAY, 6), pool)
    batch = frame([BATCH_DAY + timedelta(hours=h) for h in range(3)], [5.0, 9.0, 30.0])
    ref = ReferenceData("1", train.drop("prediction"), train, {}, {"x": 1.0}, {}, {"drift": {}})
    row = feature(judge_batch(batch, ref, SINGLE, CONFIG), "x")
    both = {"all": pool + pool}  # the training rows and the recent rows are the same six
    ks, w = expected_shift(standardise({"all": pool}, both), standardise({"all": [5.0, 9.0, 30.0]}, both))
    assert (row["ks"], row["wasserstein"]) == pytest.approx((ks, w), rel=1e-12)


def test_a_batch_without_the_group_column_has_no_row_of_a_known_group():
    train = frame(hours_before(BATCH_DAY, 6), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], ["a"] * 6)
    batch = frame([BATCH_DAY + timedelta(hours=h) for h in range(3)], [1.0, 2.0, 3.0])
    assert judge_batch(batch, champion(train, train), SPEC, CONFIG)["reasons"] == [NO_KNOWN_GROUP]


def test_a_batch_without_a_judged_column_is_judged_on_the_others():
    stamps = hours_before(BATCH_DAY, 6)
    train = frame(stamps, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], ["a"] * 6, c=["p", "q"] * 3)
    batch = frame([BATCH_DAY + timedelta(hours=h) for h in range(3)], [1.0, 2.0, 3.0], ["a"] * 3)  # no c
    v = judge_batch(batch, champion(train, train), SPEC, CONFIG)
    assert [r["feature"] for r in v["features"]] == ["x"]


def test_a_champion_whose_recent_rows_lack_a_categorical_column_is_judged_against_what_they_have():
    """The training rows carry the category c as text, the recent rows do not have c at all:
    the pool is both, c is not compared (the recent reference has none of it), x is."""
    train = frame(hours_before(datetime(2023, 1, 10, tzinfo=UTC), 4), [0.0, 2.0, 4.0, 6.0], ["a"] * 4, c=["p", "q"] * 2)
    recent = frame(hours_before(BATCH_DAY, 4), [1.0, 3.0, 5.0, 7.0], ["a"] * 4)
    batch = frame([BATCH_DAY + timedelta(hours=h) for h in range(3)], [2.0, 5.0, 9.0], ["a"] * 3, c=["p"] * 3)
    v = judge_batch(batch, champion(train, recent), SPEC, CONFIG)
    assert [r["feature"] for r in v["features"]] == ["x"]
    pool = {"a": [0.0, 2.0, 4.0, 6.0, 1.0, 3.0, 5.0, 7.0]}
    ks, w = expected_shift(standardise({"a": [1.0, 3.0, 5.0, 7.0]}, pool), standardise({"a": [2.0, 5.0, 9.0]}, pool))
    assert (feature(v, "x")["ks"], feature(v, "x")["wasserstein"]) == pytest.approx((ks, w), rel=1e-12)


def test_a_numeric_feature_recorded_as_text_is_read_as_numbers_and_unreadable_entries_as_missing():
    profile = {"columns": {"x": {"kind": "numeric"}}}
    values = ["0", "1", "n/a", "3", "4", "6"]
    train = frame(hours_before(BATCH_DAY, 6), values, ["a"] * 6)
    batch = frame([BATCH_DAY + timedelta(hours=h) for h in range(3)], ["2", "7", "?"], ["a"] * 3)
    row = feature(judge_batch(batch, champion(train, train, profile), SPEC, CONFIG), "x")
    readable = [0.0, 1.0, 3.0, 4.0, 6.0]
    pool = {"a": readable + readable}
    ks, w = expected_shift(standardise({"a": readable}, pool), standardise({"a": [2.0, 7.0]}, pool))
    assert (row["ks"], row["wasserstein"]) == pytest.approx((ks, w), rel=1e-12)


# --------------------------------------------------------------------------------------------
# numeric values in units of their group's spread

STANDARDISATION = {
    # two groups of very different levels and spreads: each centred on its own mean
    "levels": ({"a": [10.0, 11.0, 13.0, 16.0], "b": [100.0, 140.0, 180.0, 260.0]}, {"a": [12.0, 14.0], "b": [150.0, 300.0]}),
    # a group whose spread is under 1 is still divided by it
    "narrow spread": ({"a": [0.0, 0.2, 0.5, 0.6], "b": [0.0, 10.0, 30.0, 50.0]}, {"a": [0.4, 0.9], "b": [5.0, 60.0]}),
    # a constant group: its values only centred (an SD of 0 counts as 1)
    "constant group": ({"a": [3.0, 3.0, 3.0, 3.0], "b": [0.0, 10.0, 30.0, 50.0]}, {"a": [3.0, 4.5], "b": [5.0, 60.0]}),
    # a group without any value of x in the champion's rows: its batch values are kept as they are
    "group without values": ({"a": [0.0, 2.0, 5.0, 9.0], "b": [None, None]}, {"a": [1.0, 6.0], "b": [0.5, 3.0, 4.0]}),
}


@pytest.mark.parametrize("recent, batch", STANDARDISATION.values(), ids=STANDARDISATION.keys())
def test_numeric_values_are_compared_in_units_of_their_groups_spread(recent, batch):
    stamps = hours_before(BATCH_DAY, 12)
    ref = rows_of(recent, stamps)
    later = [BATCH_DAY + timedelta(hours=h) for h in range(12)]
    row = feature(judge_batch(rows_of(batch, later), champion(ref, ref), SPEC, CONFIG), "x")
    pool = {g: xs + xs for g, xs in recent.items()}  # the training rows and the recent rows are the same
    ks, w = expected_shift(standardise(recent, pool), standardise(batch, pool))
    assert (row["ks"], row["wasserstein"]) == pytest.approx((ks, w), rel=1e-12)


# --------------------------------------------------------------------------------------------
# the helpers' own columns, which no verdict shows


def test_the_clock_columns_are_the_local_day_of_the_year_and_minute_of_the_week_from_monday():
    """Private `_with_clock`: a verdict only shows which rows share a minute of the week with
    the batch, not how the minutes are numbered; the numbering (Monday 00:00 is 0, on the
    spec's local clock) and the single series' label "all" (core.lifecycle) are seen here only."""
    from zoneinfo import ZoneInfo

    from mlops_assets.core.drift import _with_clock
    from mlops_assets.core.lifecycle import SINGLE_SERIES_LABEL

    tokyo = spec_from_dict({"name": "t", "timestamp": {"column": "ts", "timezone": "Asia/Tokyo"}, "target": {"column": "load"}})
    stamps = [datetime(2023, 1, 1, 15, 0), datetime(2023, 1, 2, 15, 5), datetime(2023, 1, 4, 4, 30), datetime(2023, 1, 8, 14, 59)]
    out = _with_clock(pl.DataFrame({"ts": stamps, "x": [1.0, 2.0, 3.0, 4.0]}), tokyo, ["x"])
    local = [t.replace(tzinfo=UTC).astimezone(ZoneInfo("Asia/Tokyo")) for t in stamps]
    assert out.get_column("__slot").to_list() == [t.weekday() * 1440 + t.hour * 60 + t.minute for t in local] == [0, 1445, 2 * 1440 + 810, 10079]
    assert out.get_column("__doy").to_list() == [t.timetuple().tm_yday for t in local] == [2, 3, 4, 8]
    assert out.get_column("__group").to_list() == [SINGLE_SERIES_LABEL] * 4 == ["all"] * 4


def test_standardising_keeps_the_frames_own_columns():
    """Private `_standardised`: what becomes of its group and scale columns is not read by any
    verdict; the frame comes back with its own columns only, numeric ones standardised."""
    from mlops_assets.core.drift import _standardised

    rows = pl.DataFrame({"__ts": [1, 2, 3], "__group": ["a", "a", "b"], "x": [1.0, 3.0, 7.0]})
    scales = pl.DataFrame({"__group": ["a", "b"], "x__mean": [2.0, 5.0], "x__sd": [2.0, 4.0]})
    out = _standardised(rows, scales, ["x"])
    assert out.columns == ["__ts", "__group", "x"]
    assert out.get_column("x").to_list() == [-0.5, 0.5, 0.5]


def test_a_champion_with_a_categorical_dtype_column_its_recent_rows_lack_is_judged():
    """A training column of polars dtype Categorical, absent from the recent rows: the missing
    column is filled with untyped nulls, so the pool takes the training column's dtype (a
    Float64 filler has no common type with it and the judgement crashed)."""
    train = frame(hours_before(datetime(2023, 1, 10, tzinfo=UTC), 4), [0.0, 2.0, 4.0, 6.0], ["a"] * 4, c=["p", "q"] * 2)
    train = train.with_columns(pl.col("c").cast(pl.Categorical))
    recent = frame(hours_before(BATCH_DAY, 4), [1.0, 3.0, 5.0, 7.0], ["a"] * 4)
    batch = frame([BATCH_DAY + timedelta(hours=h) for h in range(3)], [2.0, 5.0, 9.0], ["a"] * 3, c=["p"] * 3)
    v = judge_batch(batch, champion(train, recent), SPEC, CONFIG)
    assert [r["feature"] for r in v["features"]] == ["x"]


def test_without_a_profile_a_categorical_dtype_column_is_judged_as_a_category():
    from mlops_assets.core.drift import judged_columns

    train = frame(hours_before(BATCH_DAY, 4), [0.0, 2.0, 4.0, 6.0], ["a"] * 4, c=["p", "q"] * 2)
    for dtype in (pl.String, pl.Categorical, pl.Enum(["p", "q"])):
        reference = champion(train.with_columns(pl.col("c").cast(dtype)), train)
        assert judged_columns(reference, SPEC) == (["x"], ["c"]), dtype


def test_recent_rows_without_a_timestamp_are_left_out_of_the_realized_error_too():
    """The pool skips recent rows that carry no timestamp; the realized-error test must skip
    them the same way (it raised ColumnNotFoundError)."""
    train = frame(hours_before(BATCH_DAY, 4), [0.0, 2.0, 4.0, 6.0], ["a"] * 4)
    batch = frame([BATCH_DAY + timedelta(hours=h) for h in range(3)], [2.0, 5.0, 9.0], ["a"] * 3)
    v = judge_batch(batch, champion(train, train.drop("ts")), SPEC, CONFIG)
    assert v["realized"]["tested"] is False


def test_a_feature_stored_as_integers_in_training_and_floats_in_recent_rows_is_pooled():
    """An integer-valued feature (a count) read as Int64 in the training sample and as Float64
    in the recent rows: the pool takes the common type, and the batch is judged against both."""
    train = frame(hours_before(datetime(2023, 1, 10, tzinfo=UTC), 4), [0, 2, 4, 6], ["a"] * 4)
    recent = frame(hours_before(BATCH_DAY, 4), [1.0, 3.0, 5.0, 7.0], ["a"] * 4)
    batch = frame([BATCH_DAY + timedelta(hours=h) for h in range(3)], [2.0, 5.0, 9.0], ["a"] * 3)
    assert train.schema["x"] == pl.Int64 and recent.schema["x"] == pl.Float64
    v = judge_batch(batch, champion(train, recent), SPEC, CONFIG)
    pool = {"a": [0.0, 2.0, 4.0, 6.0, 1.0, 3.0, 5.0, 7.0]}
    ks, w = expected_shift(standardise({"a": [1.0, 3.0, 5.0, 7.0]}, pool), standardise({"a": [2.0, 5.0, 9.0]}, pool))
    assert (feature(v, "x")["ks"], feature(v, "x")["wasserstein"]) == pytest.approx((ks, w), rel=1e-12)
