"""Acceptance: daily data through `mlops-assets run` (fast profile), as a utility's settlement
feed delivers it: one row per zone and local day (energy in MWh, the day's mean weather), in
Europe/Zurich, so a day is 23 or 25 hours long twice a year. Five zones with awkward labels:
one starts late, one stops two months before the end. The history arrives as monthly files,
then a week as daily files, which a second `run` scores."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from mlops_assets.core.sample_data import ZONES, delivery_files, zone_loads
from mlops_assets_tests.acceptance.platform import champion_or_override, explain, land, partitions, run_cli, stored, write_spec

pytestmark = pytest.mark.slow
CHECKS = {"performance_threshold", "no_regression_vs_champion", "bias_within_threshold", "interval_coverage", "signature_and_schema", "serving_smoke_test"}
STOPPED = "O'Brien"
LATE = next(z.label for z in ZONES if z.starts_after > 0)
EASTER_MONDAY = date(2022, 4, 18)  # a Zurich cantonal holiday (not a national one)
LAST_WEEK = 7


def daily_energy(days: int) -> pl.DataFrame:
    """zone_loads summed per zone and local day; a day missing more than one hour is dropped,
    and the stopped zone's last 60 days are gone."""
    hourly = zone_loads(start=date(2022, 1, 3), days=days, seed=4, missing=0)
    day = pl.col("timestamp").dt.truncate("1d").alias("date")
    daily = (
        hourly.group_by("zone", day)
        .agg(
            pl.col("net_load_mw").sum().round(1).alias("energy_mwh"), pl.col("temperature_c").mean().round(1),
            pl.col("humidity").mean().round(1), pl.len().alias("hours"),
        )
        .filter(pl.col("hours") >= 23).drop("hours").sort("zone", "date")
    )  # fmt: skip
    stop = daily.get_column("date").max() - timedelta(days=60)
    return daily.filter((pl.col("zone") != STOPPED) | (pl.col("date") < stop))


@pytest.fixture(scope="module")
def daily(tmp_path_factory):
    home = tmp_path_factory.mktemp("daily") / "mlops"
    spec_path = write_spec(
        home, "hourly_multi_group.yaml", name="zone_daily_energy", frequency="1d",
        timestamp={"column": "date", "timezone": "Europe/Zurich"},
        target={"column": "energy_mwh", "min": -1e6, "max": 1e7, "allow_missing": True},
        cleaning={"spike_mad_threshold": 12, "max_interpolate": "0h", "min_rows_per_group": 1},
        preparation={"horizon": "1d", "lags": ["1d", "7d"], "rolling_windows": ["7d", "28d"], "retire_after": "21d"},
    )  # fmt: skip
    raw = daily_energy(days=420)
    cut = raw.get_column("date").max() - timedelta(days=LAST_WEEK - 1)
    history, week = raw.filter(pl.col("date") < cut), raw.filter(pl.col("date") >= cut)
    land(home, delivery_files(history, "date", "zones", "1mo"))
    first = run_cli(home, spec_path, "run")
    before = partitions(home, "clean_load")
    gate = champion_or_override(home, spec_path)
    land(home, delivery_files(week, "date", "zones", "1d"))
    second = run_cli(home, spec_path, "run", "--no-train")
    return {"home": home, "raw": raw, "history": history, "week": week, "first": first, "second": second, "before": before, "gate": gate}


def local_day(column: str = "date") -> pl.Expr:
    return pl.col(column).dt.convert_time_zone("Europe/Zurich").dt.date()


def test_monthly_files_are_ingested_not_quarantined(daily):
    assert daily["first"].returncode == 0, explain(daily["first"])
    assert not list((daily["home"] / "quarantine").glob("*/reason.json"))
    months = daily["history"].select(local_day().dt.strftime("%Y-%m")).n_unique()
    assert len(daily["before"]) == months


def test_features_are_one_row_per_zone_and_local_midnight(daily):
    features = stored(daily["home"], "features")
    local = features.with_columns(pl.col("date").dt.convert_time_zone("Europe/Zurich").alias("local"))
    assert local.get_column("local").dt.hour().unique().to_list() == [0]
    # Across both DST changes the step in local days is exactly one: the UTC step is 23 h or 25 h.
    steps = local.sort("zone", "date").select(pl.col("local").dt.date().diff().over("zone").dt.total_days()).drop_nulls()
    assert steps.to_series().unique().to_list() == [1]
    utc_hours = local.sort("zone", "date").select(pl.col("date").diff().over("zone").dt.total_hours()).drop_nulls()
    assert set(utc_hours.to_series().unique().to_list()) == {23, 24, 25}


def test_lags_are_the_same_zones_energy_one_and_seven_local_days_before(daily):
    features = stored(daily["home"], "features").with_columns(local_day().alias("day"))
    raw = daily["history"].select("zone", local_day().alias("day"), pl.col("energy_mwh").alias("truth"))
    for column, days in (("energy_mwh_lag_24h", 1), ("energy_mwh_lag_168h", 7)):
        rows = features.select("zone", (pl.col("day") - timedelta(days=days)).alias("day"), pl.col(column))
        joined = rows.join(raw, on=["zone", "day"], how="inner")
        assert joined.height > 1500, column
        assert joined.get_column(column).null_count() == 0, column
        assert (joined.get_column(column) - joined.get_column("truth")).abs().max() < 1e-6, column


def test_a_cantonal_holiday_is_a_holiday_on_its_local_day(daily):
    features = stored(daily["home"], "features").with_columns(local_day().alias("day"))
    flags = dict(features.group_by("day").agg(pl.col("is_holiday").max()).iter_rows())
    assert flags[EASTER_MONDAY] == 1 and flags[EASTER_MONDAY + timedelta(days=1)] == 0


def test_every_gate_gives_a_verdict_and_the_stopped_zone_is_listed_not_judged(daily):
    registered = stored(daily["home"], "registered_model")
    assert {v["check"] for v in registered["verdicts"]} == CHECKS
    report = stored(daily["home"], "bias_report")
    status = {g["group"]: g["status"] for g in report["groups"]}
    assert report["retired_groups"] == [STOPPED] and status[STOPPED] == "retired"
    # The late zone has a year of data by the test period: it is judged like the others.
    assert status[LATE] in ("ok", "within_noise", "biased")
    assert set(status) == {z.label for z in ZONES}


def test_each_daily_file_of_the_last_week_is_scored_by_the_champion(daily):
    second, home = daily["second"], daily["home"]
    assert second.returncode == 0, explain(second)
    new = sorted(set(partitions(home, "clean_load")) - set(daily["before"]))
    assert len(new) == LAST_WEEK, explain(second)
    active = daily["week"].get_column("zone").n_unique()
    for key in new:
        predictions = stored(home, f"batch_predictions/{key}")
        assert predictions.height == active and predictions.get_column("prediction").is_finite().all(), key
        assert stored(home, f"drift_report/{key}")["rows_scored"] == active, key
