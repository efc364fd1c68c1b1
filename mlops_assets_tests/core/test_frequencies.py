"""Real-shaped data at other frequencies, through the public entry points: CSV bytes ->
parse_batch -> clean_batch -> build_features, with lags checked against the raw series."""

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mlops_assets.core.cleaning import clean_batch
from mlops_assets.core.features import (
    BASELINE_COLUMNS,
    build_features,
    feature_columns,
    lag_mismatches,
    values_after_cutoff,
)
from mlops_assets.core.ingest import parse_batch
from mlops_assets.core.spec import SpecError, spec_from_dict


def demand_csv(start: datetime, periods: int, every: timedelta, zone: str, seed: int = 0, missing=()) -> bytes:
    """A single series as an exporter writes it: ISO timestamps with the local offset,
    temperature-driven demand with a daily cycle, "NA" where a reading is missing."""
    rng = np.random.default_rng(seed)
    if every == timedelta(days=1):  # daily data: local midnights (23 or 25 h apart at a DST change)
        first = start.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
        stamps = pl.datetime_range(first, first + every * (periods - 1), "1d", time_zone=zone, eager=True)
    else:
        stamps = pl.datetime_range(start, start + every * (periods - 1), every, time_zone="UTC", eager=True)
    hours = np.arange(periods) * every.total_seconds() / 3600
    temperature = 15 + 8 * np.sin(2 * np.pi * (hours - 9) / 24) + rng.normal(0, 1, periods)
    daily = 600 * np.sin(2 * np.pi * (hours - 6) / 24)
    demand = 5000 + 90 * np.abs(temperature - 18) + daily + rng.normal(0, 20, periods)
    text = [f"{v:.1f}" for v in demand]
    for i in missing:
        text[i] = "NA"
    frame = pl.DataFrame({"settlement_date": stamps, "demand_mw": text, "temperature_c": np.round(temperature, 2)})
    frame = frame.with_columns(pl.col("settlement_date").dt.convert_time_zone(zone).dt.strftime("%Y-%m-%dT%H:%M:%S%:z"))
    return frame.write_csv().encode()


def single_series_spec(frequency: str, zone: str, **extra) -> object:
    raw = {
        "name": "demand",
        "frequency": frequency,
        "timestamp": {"column": "settlement_date", "timezone": zone},
        "group": None,
        "target": {"column": "demand_mw", "min": 0},
        "features": {"numeric": [{"column": "temperature_c", "min": -20, "max": 50}], "temperature": "temperature_c"},
        "preparation": {"horizon": "24h", "lags": ["24h", "48h", "7d"], "rolling_windows": ["24h", "7d"]},
        **extra,
    }
    return spec_from_dict(raw, source="demand.yaml")


def raw_values(data: bytes) -> pl.DataFrame:
    """The raw series read independently of the platform: UTC instant -> value (null if NA)."""
    raw = pl.read_csv(data, infer_schema=False)
    return raw.select(
        pl.col("settlement_date").str.to_datetime("%Y-%m-%dT%H:%M:%S%:z").dt.convert_time_zone("UTC").alias("t"),
        pl.col("demand_mw").cast(pl.Float64, strict=False).alias("raw"),
    )


def lag_equals_raw(frame: pl.DataFrame, raw: pl.DataFrame, column: str, delta: timedelta) -> int:
    """Rows compared where the raw value `delta` earlier exists; asserts exact equality."""
    probe = frame.select("settlement_date", column).with_columns((pl.col("settlement_date") - delta).alias("t"))
    joined = probe.join(raw.drop_nulls("raw"), on="t", how="inner")
    assert (joined.get_column(column) == joined.get_column("raw")).all(), column
    return joined.height


@pytest.mark.parametrize(
    "frequency, every, zone, start",
    [
        # 30 min across the end of daylight saving in Melbourne (2024-04-07 03:00 -> 02:00).
        ("30min", timedelta(minutes=30), "Australia/Melbourne", datetime(2024, 3, 20, 13, tzinfo=timezone.utc)),
        ("PT15M", timedelta(minutes=15), "Europe/Berlin", datetime(2024, 3, 20, 23, tzinfo=timezone.utc)),
    ],
)
def test_sub_hourly_single_series_lags_are_exact_in_time(frequency, every, zone, start):
    spec = single_series_spec(frequency, zone)
    assert spec.frequency == {"30min": "30m", "PT15M": "15m"}[frequency] and spec.group is None
    periods = int(timedelta(days=12) / every)
    gap = int(periods * 0.7)
    data = demand_csv(start, periods, every, zone, missing=(gap, gap + 1, int(periods * 0.9)))
    clean, report = clean_batch(parse_batch("demand.csv", data), spec, "demand.csv")
    assert report.missing_tokens == {"demand_mw": 3} and report.rows_out == periods and report.missing_steps == 0
    frame, features = build_features(clean, spec)
    raw = raw_values(data)
    compared = {col: lag_equals_raw(frame, raw, col, timedelta(hours=h)) for col, h in
                (("demand_mw_lag_24h", 24), ("demand_mw_lag_48h", 48), ("demand_mw_lag_168h", 168))}
    assert min(compared.values()) > 0
    assert features.rows_out == periods - int(timedelta(days=1) / every) - 3  # the 24 h lag is the required history
    assert sum(lag_mismatches(frame, clean, spec).values()) == 0
    assert sum(values_after_cutoff(frame, clean, spec).values()) == 0
    # Seasonal naive and day-before baselines are the raw target a week and a day earlier.
    lag_equals_raw(frame, raw, "baseline_seasonal_naive", timedelta(days=7))
    lag_equals_raw(frame, raw, "baseline_day_before", timedelta(days=1))
    probe = frame.select("baseline_day_before", (pl.col("settlement_date") - timedelta(days=1)).alias("t"))
    unobserved = probe.join(raw.filter(pl.col("raw").is_null()), on="t")
    assert unobserved.height == 3 and unobserved.get_column("baseline_day_before").null_count() == 3  # never filled
    assert set(BASELINE_COLUMNS).isdisjoint(feature_columns(spec))
    # Calendar at the data's resolution: :00 and :30 (or :15) differ.
    first_two = frame.head(2)
    assert first_two.get_column("minute_of_day_sin").n_unique() == 2
    assert first_two.get_column("hour").n_unique() == 1
    # Rolling temperature over 24 h ends at t (a forecast known in advance).
    window = int(timedelta(hours=24) / every)
    temps = clean.get_column("temperature_c")
    last = frame.tail(1).get_column("temperature_c_roll_mean_24h").item()
    assert last == pytest.approx(temps.tail(window).mean())


def test_daily_series_in_a_dst_zone_uses_local_days():
    dates = pl.date_range(datetime(2024, 1, 1), datetime(2024, 12, 31), "1d", eager=True)
    rng = np.random.default_rng(3)
    values = 100 + 10 * np.sin(np.arange(len(dates)) * 2 * np.pi / 7) + rng.normal(0, 1, len(dates))
    frame = pl.DataFrame({"day": dates.cast(pl.String), "sales": np.round(values, 3)})
    frame = frame.filter(pl.col("day") != "2024-06-15")  # one day never delivered
    spec = spec_from_dict(
        {
            "name": "shop",
            "frequency": "daily",
            "timestamp": {"column": "day", "timezone": "America/New_York"},
            "target": "sales",
            "calendar": {"holidays_country": "US"},
            "preparation": {"lags": ["1d", "2d", "7d"], "horizon": "1d"},
        },
        source="shop.yaml",
    )
    assert spec.frequency == "1d" and spec.rolling_windows_hours == (168,) and spec.max_interpolate_hours == 0
    clean, report = clean_batch(parse_batch("shop.csv", frame.write_csv().encode()), spec, "shop.csv")
    assert report.missing_steps == 1 and report.largest_gap_hours == 48
    local = clean.get_column("day").dt.convert_time_zone("America/New_York")
    assert (local.dt.hour() == 0).all()  # local midnights, EST and EDT alike
    features, feature_report = build_features(clean, spec)
    assert feature_report.grid_rows == 366
    # Across the spring change (a 23 h day) and the autumn one (25 h): the previous local day.
    by_day = dict(zip(frame.get_column("day"), frame.get_column("sales")))
    checked = 0
    for day in ("2024-03-11", "2024-03-12", "2024-11-04", "2024-11-05"):
        row = features.filter(pl.col("day").dt.convert_time_zone("America/New_York").dt.date().cast(pl.String) == day)
        previous = (datetime.fromisoformat(day) - timedelta(days=1)).date().isoformat()
        week = (datetime.fromisoformat(day) - timedelta(days=7)).date().isoformat()
        assert row.get_column("sales_lag_24h").item() == by_day[previous]
        assert row.get_column("baseline_seasonal_naive").item() == by_day[week]
        checked += 1
    assert checked == 4
    assert sum(lag_mismatches(features, clean, spec).values()) == 0
    assert sum(values_after_cutoff(features, clean, spec).values()) == 0
    assert "hour" not in feature_columns(spec) and "minute_of_day_sin" not in feature_columns(spec)
    local_day = pl.col("day").dt.convert_time_zone("America/New_York").dt.date()
    july4 = features.filter(local_day == datetime(2024, 7, 4).date())
    assert july4.select("is_holiday", "is_day_before_holiday", "is_day_after_holiday").row(0) == (1, 0, 0)


def test_daily_rows_not_at_local_midnight_are_off_grid():
    spec = spec_from_dict({"name": "d", "frequency": "1d", "timestamp": {"column": "t", "timezone": "Europe/Berlin"},
                           "target": "y", "preparation": {"lags": ["1d"], "horizon": "1d", "rolling_windows": ["7d"]}})
    raw = pl.DataFrame({"_row": [1, 2], "t": ["2024-03-30T00:00:00+01:00", "2024-03-31T00:00:00Z"], "y": ["1", "2"]})
    from mlops_assets.core.ingest import BatchError

    with pytest.raises(BatchError) as info:
        clean_batch(raw, spec, "d.csv")
    assert info.value.kind == "off_grid_timestamps" and info.value.rows == [2]


@pytest.mark.parametrize(
    "frequency, prep, message",
    [
        ("1d", {"lags": ["36h", "48h"], "horizon": "24h"}, "36h is not a whole number of 1d steps"),
        ("1d", {"lags": ["1d"], "horizon": "1d", "rolling_windows": ["24h"]}, "shorter than 2 steps"),
        ("1h", {"lags": [24], "rolling_windows": ["90min"]}, "90min is not a whole number of 1h steps"),
        ("30min", {"lags": ["24h"], "horizon": "45min"}, "45min is not a whole number"),
        ("1h", {"lags": ["24h"], "lags_hours": [24]}, "not both"),
    ],
)
def test_durations_must_be_whole_steps(frequency, prep, message):
    raw = {"name": "x", "frequency": frequency, "timestamp": "ts", "target": "y", "preparation": prep}
    with pytest.raises(SpecError, match=message) as info:
        spec_from_dict(raw, source="mine.yaml")
    assert "mine.yaml" in str(info.value)


def test_durations_in_any_spelling_and_old_keys_agree():
    base = {"name": "x", "timestamp": "ts", "target": "y"}
    new = spec_from_dict({**base, "frequency": "30T", "cleaning": {"max_interpolate": "90min"},
                          "preparation": {"horizon": "PT24H", "lags": ["1d", "48h", "7d"],
                                          "rolling_windows": [24, "7d"]}})
    old = spec_from_dict({**base, "frequency": "30min", "cleaning": {"max_interpolate_hours": 1.5},
                          "preparation": {"horizon_hours": 24, "lags_hours": [24, 48, 168],
                                          "rolling_windows_hours": [24, 168]}})
    assert new == old and new.lags_hours == (24, 48, 168) and new.max_interpolate_hours == 1.5
    assert new.steps(new.max_interpolate_hours) == 3 and new.steps(168) == 336


@pytest.mark.parametrize("frequency, every", [("30min", timedelta(minutes=30)), ("1d", timedelta(days=1))])
def test_batch_features_from_the_lookback_window_match_the_full_build(frequency, every):
    """Monitoring builds a batch's features from only `lookback_hours` of history before it."""
    from mlops_assets.core.features import batch_features, lookback_hours

    zone = "Australia/Melbourne"
    preparation = {"horizon": "1d", "lags": ["1d", "2d", "7d"], "rolling_windows": ["7d"]}
    spec = single_series_spec(frequency, zone, preparation=preparation)
    periods = int(timedelta(days=40 if frequency == "1d" else 12) / every)
    start = datetime(2024, 3, 20, 13, tzinfo=timezone.utc)
    clean, _ = clean_batch(parse_batch("d.csv", demand_csv(start, periods, every, zone)), spec, "d.csv")
    full, _ = build_features(clean, spec)
    cut = clean.get_column("settlement_date")[-int(timedelta(days=1) / every) - 1]
    ts = pl.col("settlement_date")
    window = clean.filter((ts >= cut - timedelta(hours=lookback_hours(spec))) & (ts < cut))
    batch = clean.filter(ts >= cut)
    served = batch_features(window, batch, spec)
    expected = full.filter(ts >= cut)
    assert served.height == batch.height == expected.height
    # Rolling sums start elsewhere in the two builds: equal up to float rounding.
    assert_frame_equal(served.select(feature_columns(spec)), expected.select(feature_columns(spec)), rel_tol=1e-9)


def test_daily_series_where_a_day_starts_at_one_in_the_morning():
    """America/Santiago jumps from 00:00 to 01:00 on 2024-09-08: that day starts at 01:00."""
    spec = spec_from_dict(
        {"name": "cl", "frequency": "1d", "timestamp": {"column": "day", "timezone": "America/Santiago"},
         "target": "sales", "features": {"numeric": [{"column": "visits", "known_in_advance": False}]},
         "preparation": {"lags": ["1d", "7d"], "horizon": "1d"}}
    )  # fmt: skip
    days = pl.date_range(datetime(2024, 8, 20), datetime(2024, 9, 20), "1d", eager=True)
    frame = pl.DataFrame({"day": days.cast(pl.String), "sales": [float(i) for i in range(len(days))],
                          "visits": [float(10 * i) for i in range(len(days))]})  # fmt: skip
    frame = frame.filter(pl.col("day") != "2024-09-09")
    clean, _ = clean_batch(parse_batch("cl.csv", frame.write_csv().encode()), spec, "cl.csv")
    start = clean.filter(pl.col("sales") == 19.0).get_column("day").item()  # 2024-09-08
    assert str(start.astimezone(ZoneInfo("America/Santiago"))) == "2024-09-08 01:00:00-03:00"
    features, report = build_features(clean, spec)
    assert report.grid_rows == len(days)
    local = pl.col("day").dt.convert_time_zone("America/Santiago").dt.date().cast(pl.String)
    row = features.filter(local == "2024-09-08").row(0, named=True)
    assert (row["sales_lag_24h"], row["visits_lag_24h"], row["baseline_day_before"]) == (18.0, 180.0, 18.0)
    assert features.filter(local == "2024-09-10").height == 0  # its day before was never delivered
    assert features.filter(local == "2024-09-15").get_column("sales_lag_168h").item() == 19.0
    assert sum(lag_mismatches(features, clean, spec).values()) == 0
    assert sum(values_after_cutoff(features, clean, spec).values()) == 0


def test_temperature_means_cover_recent_hours_where_the_frequency_allows():
    """3, 6, 12 and 24 h (and the spec's windows) at 30 min; only whole windows of >= 2 days at 1d."""
    from mlops_assets.core.features import temperature_columns

    half_hourly = single_series_spec("30min", "Australia/Melbourne")
    assert temperature_columns(half_hourly) == [f"temperature_c_roll_mean_{w}" for w in ("3h", "6h", "12h", "24h", "168h")]
    daily = single_series_spec("1d", "Australia/Melbourne", preparation={"horizon": "1d", "lags": ["1d", "7d"], "rolling_windows": ["7d"]})
    assert temperature_columns(daily) == ["temperature_c_roll_mean_168h"]
    assert set(temperature_columns(half_hourly)) <= set(feature_columns(half_hourly))
