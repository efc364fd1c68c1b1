"""The calendar columns on the local wall clock, compared with Python's own datetime arithmetic
for every row (time zones with DST and a half-hour offset, 15-minute to daily data), and how
many temperature values a rolling mean of the temperature needs."""

import math
import os
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from mlops_assets.core.features import build_features
from mlops_assets.core.spec import spec_from_dict

TAU = 2 * math.pi


def spec_for(frequency: str, zone: str, lag: str, temperature: bool = False):
    numeric = [{"column": "temp", "known_in_advance": True}] if temperature else []
    return spec_from_dict({
        "name": "calendar", "frequency": frequency, "timestamp": {"column": "ts", "timezone": zone}, "target": "y",
        "features": {"numeric": numeric, "temperature": "temp" if temperature else None},
        "preparation": {"horizon": lag, "lags": [lag], "rolling_windows": []}, "cleaning": {"max_interpolate": "0h"},
    })  # fmt: skip


def expected_calendar(instant: datetime, zone: str) -> dict:
    wall = instant.astimezone(ZoneInfo(zone))
    minute = (wall.hour * 60 + wall.minute) / 1440
    week = (wall.weekday() + minute) / 7  # weekday(): Monday 0
    year = wall.timetuple().tm_yday / 365.25
    return {
        "hour": wall.hour, "day_of_week": wall.isoweekday(), "month": wall.month, "day_of_year": wall.timetuple().tm_yday,
        "is_weekend": int(wall.isoweekday() >= 6),
        "minute_of_day_sin": math.sin(minute * TAU), "minute_of_day_cos": math.cos(minute * TAU),
        "week_sin": math.sin(week * TAU), "week_cos": math.cos(week * TAU),
        "day_of_year_sin": math.sin(year * TAU), "day_of_year_cos": math.cos(year * TAU),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("frequency", "zone", "lag", "start", "steps"),
    [
        ("15min", "Australia/Adelaide", "1h", datetime(2024, 4, 6, 12, tzinfo=timezone.utc), 200),  # +10:30 -> +9:30 on 7 April
        ("30min", "Europe/Berlin", "1h", datetime(2024, 3, 30, 20, tzinfo=timezone.utc), 150),  # spring forward on 31 March
        ("1h", "America/New_York", "24h", datetime(2023, 12, 29, tzinfo=timezone.utc), 24 * 6),  # across the new year
    ],
)
def test_calendar_columns_are_the_local_wall_clock_of_each_row(frequency, zone, lag, start, steps):
    spec = spec_for(frequency, zone, lag)
    stamps = [start + i * spec.frequency_delta for i in range(steps)]
    history = pl.DataFrame({"ts": stamps, "y": [float(i) for i in range(steps)]}).with_columns(pl.col("ts").dt.cast_time_unit("us"))
    out, _ = build_features(history, spec)
    assert out.height > steps // 2
    for row in out.iter_rows(named=True):
        want = expected_calendar(row["ts"], zone)
        got = {k: row[k] for k in want}
        assert got == pytest.approx(want, abs=1e-12), row["ts"]


def test_daily_data_has_the_day_level_calendar_only():
    spec = spec_for("1d", "Europe/Zurich", "24h")
    tz = ZoneInfo("Europe/Zurich")
    stamps = [datetime(2024, 2, 20, tzinfo=tz) + timedelta(days=i) for i in range(60)]  # local midnights across DST
    history = pl.DataFrame({"ts": stamps, "y": [float(i) for i in range(60)]}).with_columns(pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("us"))
    out, _ = build_features(history, spec)
    assert "hour" not in out.columns and "minute_of_day_sin" not in out.columns
    for row in out.iter_rows(named=True):
        want = {k: v for k, v in expected_calendar(row["ts"], "Europe/Zurich").items() if k not in ("hour", "minute_of_day_sin", "minute_of_day_cos")}
        assert {k: row[k] for k in want} == pytest.approx(want, abs=1e-12), row["ts"]


@pytest.mark.parametrize(("present", "expected"), [(3, 4.0), (2, None)])
def test_a_temperature_rolling_mean_needs_half_its_window(present, expected):
    """Hourly, the 6 h temperature mean at the last row: 6 values in its window, of which only
    the last `present` are known (3 of 6 is half: a mean; 2 is not: null)."""
    spec = spec_for("1h", "UTC", "24h", temperature=True)
    n = 40
    stamps = [datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(hours=i) for i in range(n)]
    temp = [None] * (n - present) + [3.0, 4.0, 5.0][-present:]
    history = pl.DataFrame({"ts": stamps, "y": [float(i) for i in range(n)], "temp": pl.Series(temp, dtype=pl.Float64)})
    out, _ = build_features(history.with_columns(pl.col("ts").dt.cast_time_unit("us")), spec)
    last = out.sort("ts").tail(1).row(0, named=True)
    assert last["temp_roll_mean_6h"] == (pytest.approx(expected, rel=1e-12) if expected is not None else None)


def daily_flags(spec, days: list, **columns) -> dict:
    """{local date: (is_holiday, is_day_before_holiday, is_day_after_holiday)} of hourly rows at
    noon UTC on `days` (the lag is 24 h: every row from the second day on is kept)."""
    stamps = [datetime(d.year, d.month, d.day, 12, tzinfo=timezone.utc) for d in days]
    data = {"ts": stamps, "y": [float(i) for i in range(len(days))], **columns}
    out, _ = build_features(pl.DataFrame(data).with_columns(pl.col("ts").dt.cast_time_unit("us")), spec)
    cols = ("is_holiday", "is_day_before_holiday", "is_day_after_holiday")
    return {row["ts"].date(): tuple(row[c] for c in cols) for row in out.iter_rows(named=True)}


def holiday_spec(extra: dict, group: str | None = None, numeric: list | None = None):
    return spec_from_dict({
        "name": "holidays", "frequency": "1d", "timestamp": {"column": "ts", "timezone": "UTC"}, "target": "y",
        "group": group, "features": {"numeric": numeric or []}, "calendar": extra,
        "preparation": {"horizon": "24h", "lags": ["24h"], "rolling_windows": []}, "cleaning": {"max_interpolate": "0h"},
    })  # fmt: skip


def test_holidays_of_the_neighbouring_years_flag_the_first_and_last_days():
    """US New Year's Day 2022 fell on a Saturday and was observed on Friday 31 December 2021, a
    holiday of the year before the data; 1 January 2025 is a holiday of the year after it."""
    hourly = spec_from_dict({
        "name": "holidays", "frequency": "1h", "timestamp": "ts", "target": "y", "calendar": {"holidays_country": "US"},
        "preparation": {"horizon": "1h", "lags": ["1h"], "rolling_windows": []}, "cleaning": {"max_interpolate": "0h"},
    })  # fmt: skip
    stamps = [datetime(2022, 1, 1, tzinfo=timezone.utc) + timedelta(hours=i) for i in range(30)]  # no row of 2021
    out, _ = build_features(pl.DataFrame({"ts": stamps, "y": [float(i) for i in range(30)]}).with_columns(pl.col("ts").dt.cast_time_unit("us")), hourly)
    flags = {(r["is_holiday"], r["is_day_before_holiday"], r["is_day_after_holiday"]) for r in out.iter_rows(named=True) if r["ts"].day == 1}
    assert flags == {(1, 0, 1)}
    spec = holiday_spec({"holidays_country": "US"})
    last = [date(2024, 12, 28) + timedelta(days=i) for i in range(4)]
    assert daily_flags(spec, last)[date(2024, 12, 31)] == (0, 1, 0)


@pytest.mark.parametrize(("value", "flag"), [(0.5, 1), (0.49, 0)])
def test_a_holiday_column_marks_a_day_from_one_half(value, flag):
    spec = holiday_spec({"holiday_column": "closed"})
    days = [date(2024, 3, 1) + timedelta(days=i) for i in range(5)]
    flags = daily_flags(spec, days, closed=[0.0, 0.0, value, 0.0, 0.0])
    assert [flags[d] for d in days[1:]] == [(0, flag, 0), (flag, 0, 0), (0, 0, flag), (0, 0, 0)]


def test_a_holiday_column_marks_only_its_own_groups_days_and_nothing_past_the_data():
    """Group a is closed on 3 March, b never: b gets no flag, and neither group's first or
    last day is flagged for a neighbour outside the data."""
    spec = holiday_spec({"holiday_column": "closed"}, group="site")
    days = [date(2024, 3, 1) + timedelta(days=i) for i in range(5)]
    stamps = [datetime(d.year, d.month, d.day, 12, tzinfo=timezone.utc) for d in days] * 2
    frame = pl.DataFrame({
        "ts": stamps, "site": ["a"] * 5 + ["b"] * 5, "y": [float(i) for i in range(10)],
        "closed": [0.0, 0.0, 1.0, 0.0, 0.0] + [0.0] * 5,
    }).with_columns(pl.col("ts").dt.cast_time_unit("us"))  # fmt: skip
    out, _ = build_features(frame, spec)
    flags = {(r["site"], r["ts"].date()): (r["is_holiday"], r["is_day_before_holiday"], r["is_day_after_holiday"]) for r in out.iter_rows(named=True)}
    assert [flags["a", d] for d in days[1:]] == [(0, 1, 0), (1, 0, 0), (0, 0, 1), (0, 0, 0)]
    assert [flags["b", d] for d in days[1:]] == [(0, 0, 0)] * 4


def test_a_rewritten_holidays_file_is_read_again(tmp_path):
    path = tmp_path / "closures.csv"
    path.write_text("date\n2024-03-03\n")
    spec = holiday_spec({"holidays_file": str(path)})
    days = [date(2024, 3, 1) + timedelta(days=i) for i in range(5)]
    assert daily_flags(spec, days)[date(2024, 3, 3)] == (1, 0, 0)
    path.write_text("date\n2024-03-04\n")
    os.utime(path, (1_000_000_000, 1_000_000_000))  # a different modification time, whatever the clock's resolution
    assert daily_flags(spec, days)[date(2024, 3, 3)] == (0, 1, 0)


def test_features_come_out_in_group_then_time_order_whatever_the_input_order():
    """The frame's content hash is its data version: the same history in any row order must
    give the same rows in the same order (groups by label, then time)."""
    spec = spec_from_dict({
        "name": "order", "frequency": "1h", "timestamp": "ts", "group": "site", "target": "y",
        "preparation": {"horizon": "1h", "lags": ["1h"], "rolling_windows": []}, "cleaning": {"max_interpolate": "0h"},
    })  # fmt: skip
    sites = [f"s{i:02d}" for i in range(40)]
    stamps = [datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(hours=h) for h in range(6)]
    rows = [(t, s, float(i)) for i, (s, t) in enumerate((s, t) for s in sites for t in stamps)]
    frame = pl.DataFrame(rows, schema={"ts": pl.Datetime("us", "UTC"), "site": pl.String, "y": pl.Float64}, orient="row")
    out, _ = build_features(frame.sample(fraction=1.0, shuffle=True, seed=3), spec)
    assert out.select("site", "ts").rows() == [(s, t) for s in sites for t in stamps[1:]]


@pytest.mark.parametrize(("frequency", "hours", "expected"), [("15min", 24, 96), ("30min", 1, 2), ("1d", 48, 2)])
def test_a_duration_is_a_whole_number_of_steps(frequency, hours, expected):
    from mlops_assets.core.features import steps

    assert steps(spec_for(frequency, "UTC", "24h"), hours) == expected


def test_a_temperature_window_of_exactly_two_steps_is_kept():
    """Half-hourly with a rolling window of 1 h (two steps, the least the spec allows): a 1 h
    temperature mean, next to the 3, 6, 12 and 24 h ones."""
    spec = spec_from_dict({
        "name": "w", "frequency": "30min", "timestamp": "ts", "target": "y",
        "features": {"numeric": [{"column": "temp", "known_in_advance": True}], "temperature": "temp"},
        "preparation": {"horizon": "1h", "lags": ["1h"], "rolling_windows": ["1h"]}, "cleaning": {"max_interpolate": "0h"},
    })  # fmt: skip
    from mlops_assets.core.features import temperature_columns

    assert temperature_columns(spec) == [f"temp_roll_mean_{w}" for w in ("1h", "3h", "6h", "12h", "24h")]


def test_the_categorical_inputs_are_the_group_and_the_categorical_features():
    from mlops_assets.core.features import categorical_columns

    grouped = spec_from_dict({"name": "c", "timestamp": "ts", "group": "site", "target": "y", "features": {"categorical": ["tariff"]}})
    single = spec_from_dict({"name": "c", "timestamp": "ts", "target": "y", "features": {"categorical": ["tariff"]}})
    assert (categorical_columns(grouped), categorical_columns(single)) == (["site", "tariff"], ["tariff"])
