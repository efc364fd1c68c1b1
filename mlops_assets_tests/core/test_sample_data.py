"""The real-shaped datasets have the properties the acceptance tests and the accuracy
benchmark rely on."""

from datetime import date

import numpy as np
import polars as pl

from mlops_assets.core.sample_data import ZONES, delivery_files, demand_series, zone_loads


def test_demand_is_seeded_regular_and_has_a_few_missing_readings():
    one = demand_series(days=60, frequency="30m", seed=3)
    assert one.equals(demand_series(days=60, frequency="30m", seed=3))
    assert not one.equals(demand_series(days=60, frequency="30m", seed=4))
    assert one.columns == ["settlement_date", "demand_mw", "temperature_c"]
    steps = one.get_column("settlement_date").diff().drop_nulls().dt.total_minutes()
    assert steps.min() == 30 and steps.max() == 60  # one reading never delivered: one gap
    assert 60 * 48 - one.height == 2 and 0 < one.get_column("demand_mw").null_count() <= 4
    minutes = set(demand_series(days=2, frequency="15m", missing=0).get_column("settlement_date").dt.minute().to_list())
    assert minutes == {0, 15, 30, 45}


def test_demand_follows_temperature_on_both_sides_and_drops_on_state_holidays():
    frame = demand_series(start=date(2023, 1, 1), days=365, missing=0).with_columns(
        pl.col("settlement_date").dt.date().alias("day"), pl.col("settlement_date").dt.hour().alias("hour")
    )
    noon = frame.filter(pl.col("hour") == 14).with_columns(pl.col("temperature_c").cut([8, 14, 20, 28]).alias("band"))
    by_band = noon.group_by("band").agg(pl.col("demand_mw").mean()).sort("band").get_column("demand_mw").to_list()
    assert by_band[0] > by_band[2] < by_band[-1]  # heating when cold, cooling when hot
    daily = frame.group_by("day").agg(pl.col("demand_mw").mean()).sort("day")
    tuesdays = daily.filter(pl.col("day").is_in([date(2023, 10, 31), date(2023, 11, 7), date(2023, 11, 14)]))
    before, cup_day, after = tuesdays.get_column("demand_mw").to_list()
    assert cup_day < 0.93 * min(before, after)  # Melbourne Cup: a VIC holiday, not a national one


def test_zones_have_awkward_labels_different_scales_a_net_load_crossing_zero_and_a_late_start():
    frame = zone_loads(days=200, missing=12)
    stats = frame.group_by("zone").agg(
        pl.col("net_load_mw").min().alias("low"), pl.col("net_load_mw").mean().alias("mean"),
        pl.col("timestamp").min().alias("first"),
    )
    assert set(stats.get_column("zone")) == {z.label for z in ZONES} and "R&D <1>" in stats.get_column("zone")
    net = stats.filter(pl.col("zone") == "Solar & Town (net)").row(0, named=True)
    assert net["low"] < 0 < net["mean"]
    means = stats.get_column("mean").to_numpy()
    assert means.max() / means.min() > 20
    assert stats.get_column("first").n_unique() == 2
    assert frame.null_count().sum_horizontal().item() == 12


def test_delivery_files_split_by_local_day_or_month_and_write_na():
    frame = zone_loads(start=date(2023, 1, 30), days=3, missing=3)
    daily = delivery_files(frame, "timestamp", "zones", "1d", null_value="NA")
    assert [name for name, _ in daily] == ["zones_2023-01-30.csv", "zones_2023-01-31.csv", "zones_2023-02-01.csv"]
    text = b"".join(data for _, data in daily).decode()
    assert text.count(",NA") == 3 and "2023-01-31T00:00:00+01:00" in text
    monthly = delivery_files(frame, "timestamp", "zones", "1mo")
    assert [name for name, _ in monthly] == ["zones_2023-01.csv", "zones_2023-02.csv"]
    back = pl.concat([pl.read_csv(data, null_values=["NA"]) for _, data in daily])
    assert back.height == frame.height
    assert np.isclose(back.get_column("net_load_mw").sum(), frame.get_column("net_load_mw").sum())
