"""Regional calendars, holiday proximity, and observed-only features that never reach a row
at t except as lags of at least the horizon."""

from datetime import date, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from mlops_assets.core.features import (
    build_features,
    feature_columns,
    lag_mismatches,
    observed_lag_columns,
    values_after_cutoff,
)
from mlops_assets.core.spec import SpecError, spec_from_dict


def history(spec, days: int, start=datetime(2024, 10, 20, tzinfo=timezone.utc), price=True) -> pl.DataFrame:
    """A typed (clean) single series: one value per step, with a price that moves every step."""
    every = spec.frequency_delta
    n = int(timedelta(days=days) / every)
    stamps = pl.datetime_range(start, start + every * (n - 1), every, time_zone="UTC", eager=True)
    i = np.arange(n, dtype=float)
    data = {spec.timestamp: stamps, "demand": 5000 + 500 * np.sin(i / 7.0) + i, "temp": 20 + np.cos(i / 5.0)}
    if price:
        data["price"] = 50 + 30 * np.sin(i / 3.0) + i / 10
    frame = pl.DataFrame(data).with_columns(pl.col(spec.timestamp).dt.cast_time_unit("us"))
    return frame.select(c for c in spec.required_columns if c in frame.columns)


def au_spec(subdivision: str, **calendar):
    return spec_from_dict(
        {
            "name": "nem",
            "frequency": "30min",
            "timestamp": {"column": "settlement_date", "timezone": "Australia/Melbourne"},
            "target": {"column": "demand"},
            "features": {"numeric": ["temp", {"column": "price", "known_in_advance": False}]},
            "calendar": {"holidays_country": "AU", "holidays_subdivision": subdivision, **calendar},
        },
        source="nem.yaml",
    )


def flags_on(frame: pl.DataFrame, spec, day: date) -> tuple:
    local = pl.col(spec.timestamp).dt.convert_time_zone(spec.timezone).dt.date()
    rows = frame.filter(local == day).select("is_holiday", "is_day_before_holiday", "is_day_after_holiday").unique()
    assert rows.height == 1, rows
    return rows.row(0)


def test_state_holidays_melbourne_cup_is_victorian_only():
    vic, nsw = au_spec("VIC"), au_spec("NSW")
    vic_frame, _ = build_features(history(vic, 30), vic)
    nsw_frame, _ = build_features(history(nsw, 30), nsw)
    assert flags_on(vic_frame, vic, date(2024, 11, 5)) == (1, 0, 0)  # Melbourne Cup Day
    assert flags_on(vic_frame, vic, date(2024, 11, 4)) == (0, 1, 0)
    assert flags_on(vic_frame, vic, date(2024, 11, 6)) == (0, 0, 1)
    assert flags_on(nsw_frame, nsw, date(2024, 11, 5)) == (0, 0, 0)


def test_new_york_lincolns_birthday_and_a_users_holiday_file(tmp_path):
    (tmp_path / "closures.csv").write_text("date,name\n2024-02-20,plant shutdown\n")
    base = {
        "name": "ny", "timestamp": {"column": "t", "timezone": "America/New_York"}, "target": "demand",
        "features": {"numeric": ["temp"]},
    }  # fmt: skip
    spec_file = tmp_path / "specs" / "ny.yaml"
    spec_file.parent.mkdir()
    ny = spec_from_dict({**base, "calendar": {"holidays_country": "US", "holidays_subdivision": "NY",
                                              "holidays_file": "../closures.csv"}}, source=str(spec_file))
    us = spec_from_dict({**base, "calendar": {"holidays_country": "US"}}, source=str(spec_file))
    start = datetime(2024, 1, 20, tzinfo=timezone.utc)
    ny_frame, _ = build_features(history(ny, 35, start, price=False), ny)
    us_frame, _ = build_features(history(us, 35, start, price=False), us)
    assert flags_on(ny_frame, ny, date(2024, 2, 12))[0] == 1 and flags_on(us_frame, us, date(2024, 2, 12))[0] == 0
    assert flags_on(ny_frame, ny, date(2024, 2, 20))[0] == 1 and flags_on(us_frame, us, date(2024, 2, 20))[0] == 0
    assert flags_on(us_frame, us, date(2024, 2, 19)) == (1, 0, 0)  # Washington's Birthday, national


def test_a_holiday_column_in_the_data_is_a_known_feature_ored_into_is_holiday():
    spec = spec_from_dict(
        {"name": "h", "timestamp": {"column": "t", "timezone": "UTC"}, "target": "demand",
         "features": {"numeric": ["temp"]}, "calendar": {"holiday_column": "school_break"}}
    )  # fmt: skip
    assert "school_break" in spec.known_numeric_columns and "school_break" in feature_columns(spec)
    frame = history(spec, 20, price=False)
    marked = pl.col("t").dt.date() == date(2024, 11, 1)
    at_ten = marked & (pl.col("t").dt.hour() == 10)
    frame = frame.with_columns(pl.when(at_ten).then(1.0).otherwise(0.0).alias("school_break"))
    out, _ = build_features(frame, spec)
    assert flags_on(out, spec, date(2024, 11, 1)) == (1, 0, 0)
    assert flags_on(out, spec, date(2024, 10, 31)) == (0, 1, 0) and flags_on(out, spec, date(2024, 11, 2)) == (0, 0, 1)


@pytest.mark.parametrize(
    "calendar, message",
    [
        ({"holidays_country": "AU", "holidays_subdivision": "Victoria"}, r"nem.yaml: .*'Victoria'.*allowed: \['ACT'"),
        ({"holidays_country": "XX"}, "nem.yaml: .*'XX' is not a country code"),
        ({"holidays_subdivision": "VIC"}, "needs calendar.holidays_country"),
        ({"holidays_file": "nowhere.csv"}, "holidays_file .*nowhere.csv does not exist"),
    ],
)
def test_unknown_calendars_are_refused_at_load(calendar, message):
    raw = {"name": "nem", "timestamp": "t", "target": "y", "calendar": calendar}
    with pytest.raises(SpecError, match=message):
        spec_from_dict(raw, source="/specs/nem.yaml")


def test_observed_only_feature_is_never_an_input_at_t():
    spec = au_spec("VIC")
    assert spec.observed_only_columns == ["price"] and "price" not in feature_columns(spec)
    assert observed_lag_columns(spec) == ["price_lag_24h", "price_lag_48h", "price_lag_168h"]
    data = history(spec, 30)
    frame, _ = build_features(data, spec)
    assert "price" not in frame.columns
    # The lag at t is the price exactly 24 h earlier, never the price at t.
    at = data.select("settlement_date", "price")
    joined = frame.select("settlement_date", "price_lag_24h").join(at, on="settlement_date")
    assert (joined.get_column("price_lag_24h") != joined.get_column("price")).all()
    earlier = at.with_columns(pl.col("settlement_date") + timedelta(hours=24))
    joined = frame.select("settlement_date", "price_lag_24h").join(earlier, on="settlement_date")
    assert joined.height == frame.height and (joined.get_column("price_lag_24h") == joined.get_column("price")).all()
    assert sum(lag_mismatches(frame, data, spec).values()) == 0
    assert values_after_cutoff(frame, data, spec) == dict.fromkeys(
        [f"demand_lag_{h}" for h in ("24h", "48h", "168h")] + observed_lag_columns(spec), 0
    )


def test_cutoff_check_catches_a_value_from_after_t_minus_horizon():
    spec = au_spec("VIC")
    data = history(spec, 30)
    frame, _ = build_features(data, spec)
    leaked = frame.drop("price_lag_48h").join(
        data.select("settlement_date", pl.col("price").alias("price_lag_48h")), on="settlement_date"
    )
    late = values_after_cutoff(leaked, data, spec)
    assert late["price_lag_48h"] == frame.height and late["price_lag_24h"] == 0
    # The target one step later (t - 23.5 h) in the 24 h lag: after the cutoff.
    shifted = frame.with_columns(pl.col("demand_lag_24h").shift(-1))
    assert values_after_cutoff(shifted, data, spec)["demand_lag_24h"] >= frame.height - 1


def test_gap_fills_for_lags_use_no_value_after_the_cutoff():
    """A missing target just before t - horizon is carried forward in the 24 h lag (the next
    reading is after the cutoff) but may be interpolated in the 48 h lag (it is not)."""
    spec = au_spec("VIC")
    data = history(spec, 30)
    gap = data.get_column("settlement_date")[500]
    holey = data.with_columns(
        pl.when(pl.col("settlement_date").is_between(gap, gap + timedelta(minutes=30))).then(None)
        .otherwise(pl.col("demand")).alias("demand")
    )
    frame, report = build_features(holey, spec)
    assert report.interpolated_target_points == 2
    before = data.filter(pl.col("settlement_date") == gap - timedelta(minutes=30)).get_column("demand").item()
    after = data.filter(pl.col("settlement_date") == gap + timedelta(hours=1)).get_column("demand").item()
    row = frame.filter(pl.col("settlement_date") == gap + timedelta(hours=24)).row(0, named=True)
    assert row["demand_lag_24h"] == before  # carried forward: the next reading is at t - 23 h
    row = frame.filter(pl.col("settlement_date") == gap + timedelta(hours=48)).row(0, named=True)
    assert row["demand_lag_48h"] == pytest.approx(before + (after - before) / 3)  # linear fill, all before t - 24 h
    assert sum(values_after_cutoff(frame, holey, spec).values()) == 0
    # Linear interpolation in the 24 h lag would use the reading at t - 23 h: caught.
    tampered = frame.with_columns(
        pl.when(pl.col("settlement_date") == gap + timedelta(hours=24))
        .then(before + (after - before) / 3).otherwise(pl.col("demand_lag_24h")).alias("demand_lag_24h")
    )
    assert values_after_cutoff(tampered, holey, spec)["demand_lag_24h"] == 1
