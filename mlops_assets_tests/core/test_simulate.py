from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mlops_assets.core.simulate import (
    CORRUPT_KINDS,
    DEFAULT_START,
    SimulationConfig,
    group_names,
    simulate_batches,
    simulate_frame,
    write_batches,
    write_corrupt,
)
from mlops_assets.core.spec import DatasetSpec, load_spec, spec_from_dict


@pytest.fixture(scope="module")
def spec() -> DatasetSpec:
    return load_spec()


@pytest.fixture(scope="module")
def month(spec: DatasetSpec) -> pl.DataFrame:
    """Four clean weeks of six groups."""
    return simulate_frame(spec, SimulationConfig(days=28, groups=6, defects=False))


def _local(frame: pl.DataFrame, spec: DatasetSpec) -> pl.DataFrame:
    local = pl.col(spec.timestamp).dt.convert_time_zone(spec.timezone)
    return frame.with_columns(local.dt.hour().alias("hour"), local.dt.weekday().alias("weekday"))


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_same_seed_writes_the_same_bytes(spec, tmp_path):
    config = SimulationConfig(days=3, groups=3, batch_days=1)
    write_batches(spec, config, tmp_path / "a")
    write_batches(spec, config, tmp_path / "b")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert len(_files(tmp_path / "a")) == 3


def test_other_seed_gives_other_data(spec):
    a = simulate_frame(spec, SimulationConfig(days=2, groups=2, seed=1))
    b = simulate_frame(spec, SimulationConfig(days=2, groups=2, seed=2))
    assert not a.equals(b)


def test_values_do_not_depend_on_batching(spec):
    config = SimulationConfig(days=4, groups=3, defects=False)
    whole = simulate_batches(spec, config)
    daily = simulate_batches(spec, SimulationConfig(days=4, groups=3, defects=False, batch_days=1))
    assert len(whole) == 1 and len(daily) == 4
    assert pl.concat([f for _, f in daily]).equals(whole[0][1])
    assert whole[0][1].equals(simulate_frame(spec, config))


def test_defects_do_not_depend_on_batching(spec):
    """Apart from the re-sent rows of the day before, daily files hold the one-file rows."""
    config = SimulationConfig(start=date(2024, 2, 1), days=4, groups=3, batch_days=1)
    batches = simulate_batches(spec, config)
    own = [f.filter(pl.col(spec.timestamp).dt.date() == date.fromisoformat(n.split("_")[1])) for n, f in batches]
    assert pl.concat(own).equals(simulate_frame(spec, config))


@pytest.mark.parametrize(
    "start, days, later", [(date(2024, 3, 1), 10, 4), (date(2024, 12, 20), 20, 10), (date(2023, 12, 20), 20, 5)]
)
def test_values_do_not_depend_on_start_or_group_count(spec, start, days, later):
    a = simulate_frame(spec, SimulationConfig(start=start, days=days, groups=3))
    b = simulate_frame(spec, SimulationConfig(start=start + timedelta(days=later), days=3, groups=5))
    b = b.filter(pl.col(spec.group).is_in(group_names(3)))
    overlap = a.filter(pl.col(spec.timestamp) >= b.get_column(spec.timestamp).min())
    assert overlap.head(b.height).equals(b)


def test_columns_are_the_spec_columns(spec, month):
    assert month.columns == spec.required_columns
    assert month.schema[spec.timestamp] == pl.Datetime("us", "UTC")
    assert month.get_column(spec.timestamp).is_sorted()
    assert month.get_column(spec.timestamp).min().date() == DEFAULT_START
    assert month.height == 28 * 24 * 6


def test_csv_timestamps_are_utc_iso_text(spec, tmp_path):
    (path,) = write_batches(spec, SimulationConfig(days=1, groups=1), tmp_path)
    assert path.name == "load_2024-01-01_2024-01-01.csv"
    header, first = path.read_text().splitlines()[:2]
    assert header.split(",") == spec.required_columns
    assert "2024-01-01T00:00:00+00:00" in first


def test_parquet_has_a_utc_datetime(spec, tmp_path):
    paths = write_batches(spec, SimulationConfig(days=2, groups=2, batch_days=1, file_format="parquet"), tmp_path)
    assert [p.name for p in paths] == ["load_2024-01-01_2024-01-01.parquet", "load_2024-01-02_2024-01-02.parquet"]
    frame = pl.read_parquet(paths[0])
    assert frame.columns == spec.required_columns
    assert frame.schema[spec.timestamp] == pl.Datetime("us", "UTC")


def test_files_are_written_without_leftovers_and_sort_by_date(spec, tmp_path):
    paths = write_batches(spec, SimulationConfig(start=date(2024, 1, 30), days=5, groups=1, batch_days=2), tmp_path)
    assert [p.name for p in paths] == sorted(p.name for p in paths)
    assert [p.name for p in paths][-1] == "load_2024-02-03_2024-02-03.csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in paths]


def test_group_names():
    names = group_names(200)
    assert len(set(names)) == 200
    assert names[:2] == ["ZONA_NORTH", "ZONA_SOUTH"]
    assert group_names(5) == names[:5]


def test_groups_have_distinct_scales(spec, month):
    means = month.group_by(spec.group).agg(pl.col(spec.target.column).mean()).get_column(spec.target.column)
    assert month.get_column(spec.group).n_unique() == 6
    assert means.n_unique() == 6
    assert means.max() / means.min() > 5
    assert 300 < means.min() and means.max() < 40_000


def test_load_has_daily_and_weekly_seasonality(spec, month):
    y = pl.col(spec.target.column)
    local = _local(month, spec).with_columns((y / y.mean().over(spec.group)).alias("rel"))

    def mean(mask: pl.Expr) -> float:
        return local.filter(mask).get_column("rel").mean()

    assert mean(pl.col("weekday") <= 5) > mean(pl.col("weekday") >= 6) * 1.05
    assert mean(pl.col("hour").is_between(9, 20)) > mean(pl.col("hour") == 3) * 1.1


def test_load_follows_cold_weather(spec):
    """Winter load is above autumn load: heating dominates in every group's climate."""
    jan = simulate_frame(spec, SimulationConfig(start=date(2024, 1, 8), days=14, groups=4, defects=False))
    oct_ = simulate_frame(spec, SimulationConfig(start=date(2024, 10, 7), days=14, groups=4, defects=False))
    y, t = spec.target.column, spec.numeric_columns[0]
    assert jan.get_column(t).mean() < oct_.get_column(t).mean() - 5
    assert jan.get_column(y).mean() > oct_.get_column(y).mean()


def test_weather_is_autocorrelated_and_plausible(spec, month):
    temp, humid, wind, cloud, rain = spec.numeric_columns
    for _, part in month.group_by(spec.group):
        x = part.get_column(temp).to_numpy()
        assert np.corrcoef(x[:-1], x[1:])[0, 1] > 0.8
        assert np.corrcoef(x, part.get_column(humid).to_numpy())[0, 1] < 0
    assert (month.get_column(rain) == 0).mean() > 0.7
    # wind is a speed (the length of a wind vector), not a signed component clipped at zero
    assert (month.get_column(wind) == 0).mean() < 0.01
    means = month.group_by(spec.group).agg(pl.col(wind).mean()).get_column(wind)
    assert means.min() > 2.5 * 0.8 and means.max() < 6.5 * 1.2  # each group's scale: 2.5-6.5 m/s


def test_weather_stays_within_spec_ranges(spec):
    frame = simulate_frame(spec, SimulationConfig(start=date(2024, 6, 1), days=60, groups=12, drift=8.0))
    for col in spec.numeric_features:
        values = frame.get_column(col.column)
        assert values.null_count() == 0
        assert values.min() >= col.min and values.max() <= col.max, col.column


def test_defects_when_enabled(spec):
    config = SimulationConfig(days=30, groups=8, batch_days=1)
    frame = simulate_frame(spec, config)
    keys = spec.key_columns
    assert frame.select(pl.struct(keys).is_duplicated().any()).item()
    assert frame.unique(keys).height < 30 * 24 * 8
    assert (frame.get_column(spec.target.column) < 0).any()
    batches = simulate_batches(spec, config)
    second = batches[1][1]
    resent = second.filter(pl.col(spec.timestamp).dt.date() == DEFAULT_START)
    assert resent.get_column(spec.group).n_unique() == 8
    assert 3 * 8 <= resent.height <= 6 * 8
    first = batches[0][1].unique(keys).join(resent, on=keys, suffix="_new")
    change = (first.get_column(spec.target.column + "_new") / first.get_column(spec.target.column) - 1).abs()
    assert ((change > 0.009) & (change < 0.031)).mean() > 0.9


def test_first_batch_after_the_default_start_corrects_the_day_before(spec):
    (name, frame), *_ = simulate_batches(spec, SimulationConfig(start=date(2024, 3, 1), days=2, groups=2, batch_days=1))
    assert name.startswith("load_2024-03-01")
    assert frame.get_column(spec.timestamp).min().date() == date(2024, 2, 29)


def test_no_defects_when_disabled(spec, month):
    assert not month.select(pl.struct(spec.key_columns).is_duplicated().any()).item()
    assert month.get_column(spec.target.column).min() > 0
    days = simulate_batches(spec, SimulationConfig(days=3, groups=2, batch_days=1, defects=False))
    assert all(f.height == 24 * 2 for _, f in days)


def test_drift_shifts_temperature_and_load(spec):
    base = SimulationConfig(start=date(2024, 7, 1), days=14, groups=4, defects=False)
    shifted = SimulationConfig(start=date(2024, 7, 1), days=14, groups=4, defects=False, drift=3.0)
    a, b = simulate_frame(spec, base), simulate_frame(spec, shifted)
    temp, y = spec.numeric_columns[0], spec.target.column
    assert b.get_column(temp).mean() - a.get_column(temp).mean() == pytest.approx(3.0, abs=0.2)
    assert b.get_column(y).mean() > a.get_column(y).mean() * 1.03


@pytest.mark.parametrize("kind", CORRUPT_KINDS)
def test_every_corrupt_kind_writes_a_file(spec, tmp_path, kind):
    path = write_corrupt(spec, kind, tmp_path, SimulationConfig(start=date(2024, 5, 2)))
    assert path.parent == tmp_path and path.name.startswith(f"corrupt_{kind}_2024-05-02.")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    data = path.read_bytes()
    assert (data == b"") == (kind == "empty")


def test_corrupt_files_have_their_defect(spec, tmp_path):
    def text(kind: str) -> str:
        return write_corrupt(spec, kind, tmp_path).read_text(encoding="utf-8")

    y, temp = spec.target.column, spec.numeric_columns[0]
    assert y not in text("missing_column").splitlines()[0]
    assert "n/a-sensor" in text("wrong_type")
    assert len(text("header_only").splitlines()) == 1
    assert not text("truncated").endswith("\n")
    assert text("duplicate_columns").splitlines()[0].split(",").count(y) == 2
    assert "31/02/2024 25:61" in text("unparseable_timestamps")
    assert pl.read_csv(write_corrupt(spec, "all_null_target", tmp_path)).get_column(y).null_count() > 0
    assert pl.read_csv(write_corrupt(spec, "out_of_range", tmp_path)).get_column(temp).max() == 500.0
    raw = write_corrupt(spec, "not_utf8", tmp_path).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert b"\xe9" in raw and raw.index(b"\xe9") > raw.index(b"\n")
    assert pl.read_parquet(write_corrupt(spec, "parquet_wrong_schema", tmp_path)).columns == ["foo", "bar"]


def test_unknown_corrupt_kind_names_the_valid_ones(spec, tmp_path):
    with pytest.raises(ValueError, match="missing_column"):
        write_corrupt(spec, "bogus", tmp_path)


@pytest.mark.parametrize(
    "changes", [{"days": 0}, {"groups": 0}, {"batch_days": 0}, {"file_format": "json"}, {"seed": -1}]
)
def test_invalid_config_is_rejected(changes):
    with pytest.raises(ValueError):
        SimulationConfig(**changes)


def _custom_spec(group: str | None) -> DatasetSpec:
    return spec_from_dict(
        {
            "name": "custom",
            "timestamp": {"column": "ts", "timezone": "Europe/Berlin"},
            "group": group,
            "target": {"column": "demand", "min": 0, "max": 5000},
            "features": {
                "numeric": [
                    {"column": "temp", "min": -40, "max": 50},
                    {"column": "wind", "min": 0, "max": 60},
                    {"column": "pressure_hpa", "min": 900, "max": 1100},
                    "free_signal",
                ],
                "categorical": ["segment"],
            },
            "calendar": {"holidays_country": "DE"},
        }
    )


def test_spec_with_other_column_names(tmp_path):
    spec = _custom_spec("site")
    frame = simulate_frame(spec, SimulationConfig(days=3, groups=3))
    assert frame.columns == spec.required_columns
    assert frame.get_column("pressure_hpa").is_between(900, 1100).all()
    assert frame.get_column("free_signal").std() > 0
    assert frame.get_column("segment").n_unique() > 1
    clean = simulate_frame(spec, SimulationConfig(days=14, groups=1, defects=False))
    x = clean.get_column("pressure_hpa").to_numpy()
    assert np.corrcoef(x[:-1], x[1:])[0, 1] > 0.8
    write_batches(spec, SimulationConfig(days=2, groups=2, batch_days=1), tmp_path)
    for kind in CORRUPT_KINDS:
        write_corrupt(spec, kind, tmp_path)
    assert len(list(tmp_path.iterdir())) == 2 + len(CORRUPT_KINDS)


def test_target_fits_its_range_and_only_defects_leave_it():
    """Group sizes shrink to the target's max (5000) so no peak is clipped at the bound; with
    defects every reading is the true one, its negation or a spike of 5-10 times it."""
    spec = _custom_spec("site")
    config = {"days": 30, "groups": 8}
    truth = simulate_frame(spec, SimulationConfig(**config, defects=False)).get_column("demand")
    assert truth.min() > 0 and truth.max() < 5000
    observed = simulate_frame(spec, SimulationConfig(**config)).join(
        simulate_frame(spec, SimulationConfig(**config, defects=False)), on=["ts", "site"], suffix="_true"
    )
    ratio = (pl.col("demand") / pl.col("demand_true")).round(6)
    kinds = observed.select(
        (ratio == 1).sum().alias("true"), (ratio == -1).sum().alias("negated"),
        ratio.is_between(5, 10).sum().alias("spiked"), pl.len().alias("rows"),
    ).row(0, named=True)
    assert kinds["spiked"] > 0 and kinds["negated"] > 0
    assert kinds["true"] + kinds["negated"] + kinds["spiked"] == kinds["rows"]
    assert observed.get_column("demand").max() > 5000  # spikes do leave the range


def test_single_series_spec():
    spec = _custom_spec(None)
    batches = simulate_batches(spec, SimulationConfig(days=2, groups=5, batch_days=1, defects=False))
    assert [f.columns for _, f in batches] == [spec.required_columns] * 2
    assert [f.height for _, f in batches] == [24, 24]
