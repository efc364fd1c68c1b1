"""The calendar columns on the local wall clock, compared with Python's own datetime arithmetic
for every row (time zones with DST and a half-hour offset, 15-minute to daily data), and how
many temperature values a rolling mean of the temperature needs."""

import math
from datetime import datetime, timedelta, timezone
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
