"""Missing values as real exports write them: tokens, per-column allow_missing, NaN in Parquet."""

import io
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest

from mlops_assets.core.cleaning import clean_batch
from mlops_assets.core.features import build_features
from mlops_assets.core.ingest import BatchError, parse_batch
from mlops_assets.core.schemas import validate_clean
from mlops_assets.core.spec import spec_from_dict

LABELS = ["Zürich (Nord)/A 'x'", 'Genève "Centre", Süd', "São Paulo & <Leste>"]


def spec_for(**changes):
    raw = {
        "name": "meters",
        "frequency": "1h",
        "timestamp": {"column": "time", "timezone": "Europe/Zurich"},
        "group": {"column": "site"},
        "target": {"column": "net_kw"},  # crosses zero: solar export
        "features": {"numeric": [{"column": "temp", "min": -40, "max": 50}, {"column": "wind"}]},
        "preparation": {"lags": ["24h", "48h", "7d"]},
        **changes,
    }
    return spec_from_dict(raw, source="meters.yaml")


def meters_csv(days=10, na_rows=(5, 30, 31, 100), wind_missing=0.0, temp_na_row: int | None = 200) -> bytes:
    """Hourly multi-site CSV written as R writes it: naive local times, "NA" for missing."""
    rng = np.random.default_rng(7)
    start = datetime(2024, 1, 8, tzinfo=timezone.utc)
    n = days * 24
    rows = []
    for g, label in enumerate(LABELS):
        for i in range(n):
            t = start + timedelta(hours=i)
            local = t.astimezone(ZoneInfo("Europe/Zurich")).strftime("%Y-%m-%d %H:%M:%S")
            net = 40 * np.sin(2 * np.pi * (i % 24 - 6) / 24) + 10 * g + rng.normal(0, 2)
            temp = 2 + 5 * np.sin(2 * np.pi * (i % 24 - 9) / 24)
            wind = "NA" if rng.random() < wind_missing else f"{rng.uniform(0, 10):.2f}"
            net_text = "NA" if i in na_rows else f"{net:.2f}"
            rows.append((local, label, net_text, "NA" if i == temp_na_row else f"{temp:.2f}", wind))
    frame = pl.DataFrame(rows, schema=["time", "site", "net_kw", "temp", "wind"], orient="row")
    return frame.write_csv().encode()


def test_na_tokens_in_a_multi_group_csv_are_missing_not_a_quarantine():
    spec = spec_for()
    clean, report = clean_batch(parse_batch("meters.csv", meters_csv()), spec, "meters.csv")
    validate_clean(clean, spec, "meters.csv")
    assert sorted(clean.get_column("site").unique().to_list()) == sorted(LABELS)
    assert report.missing_tokens == {"net_kw": 12, "temp": 3}
    assert report.null_counts == {"net_kw": 12, "temp": 3} and report.mostly_missing == {}
    assert report.rows_out == 3 * 240 and report.reconciles()
    frame, features = build_features(clean, spec)
    assert sorted(frame.get_column("site").unique().to_list()) == sorted(LABELS)
    # Missing targets: a 2-hour gap is filled for lags only, rows without a target are not training rows.
    assert features.missing_target_values == 12 and features.interpolated_target_points == 12
    assert frame.get_column("net_kw").null_count() == 0
    # A missing feature value stays null in the features.
    assert frame.get_column("temp").null_count() == 3 and features.feature_null_counts["temp"] == 3


def test_a_mostly_missing_column_is_a_warning_in_the_report():
    clean, report = clean_batch(parse_batch("m.csv", meters_csv(wind_missing=0.8)), spec_for(), "m.csv")
    assert set(report.mostly_missing) == {"wind"} and 0.7 < report.mostly_missing["wind"] < 0.9
    assert clean.height == 720


def test_missing_where_not_allowed_names_file_rows_and_column():
    spec = spec_for(features={"numeric": [{"column": "temp", "allow_missing": False}, "wind"]})
    with pytest.raises(BatchError) as info:
        clean_batch(parse_batch("meters.csv", meters_csv()), spec, "meters.csv")
    error = info.value
    assert (error.kind, error.columns, error.file) == ("missing_values", ["temp"], "meters.csv")
    assert error.rows == [201, 441, 681]  # hour 200 of each site, 1-based data rows


def test_tokens_are_the_spec_s_own_and_compared_after_strip():
    spec = spec_for(missing_values=["-", "n/a"])
    raw = parse_batch("x.csv", meters_csv(na_rows=(), temp_na_row=None))
    raw = raw.with_columns(
        pl.when(pl.col("_row") == 3).then(pl.lit(" n/a ")).when(pl.col("_row") == 4).then(pl.lit("-"))
        .otherwise(pl.col("wind")).alias("wind")
    )
    clean, report = clean_batch(raw, spec, "x.csv")
    assert report.missing_tokens == {"wind": 2}
    # "NA" is not a token of this spec: it is a wrong value.
    with pytest.raises(BatchError) as info:
        clean_batch(parse_batch("y.csv", meters_csv()), spec, "y.csv")
    assert info.value.kind == "wrong_type" and info.value.columns == ["net_kw", "temp"]


def test_nan_in_parquet_is_missing_but_inf_is_not():
    spec = spec_for()
    clean, _ = clean_batch(parse_batch("m.csv", meters_csv(na_rows=(), temp_na_row=None)), spec, "m.csv")
    typed = clean.with_columns(pl.col("time").dt.convert_time_zone("UTC"))
    eighth = pl.int_range(pl.len()) == 7
    with_nan = typed.with_columns(pl.when(eighth).then(float("nan")).otherwise(pl.col("wind")).alias("wind"))
    buffer = io.BytesIO()
    with_nan.write_parquet(buffer)
    out, report = clean_batch(parse_batch("m.parquet", buffer.getvalue()), spec, "m.parquet")
    assert report.missing_tokens == {"wind": 1} and out.get_column("wind").null_count() == 1
    with_inf = typed.with_columns(pl.when(eighth).then(float("inf")).otherwise(pl.col("wind")).alias("wind"))
    buffer = io.BytesIO()
    with_inf.write_parquet(buffer)
    with pytest.raises(BatchError) as info:
        clean_batch(parse_batch("m.parquet", buffer.getvalue()), spec, "m.parquet")
    assert (info.value.kind, info.value.rows) == ("non_finite", [8])


def test_schema_accepts_nulls_only_where_allowed():
    spec = spec_for(features={"numeric": [{"column": "temp", "allow_missing": False}, "wind"]})
    clean, _ = clean_batch(parse_batch("m.csv", meters_csv(na_rows=(), temp_na_row=None)), spec, "m.csv")
    validate_clean(clean.with_columns(pl.lit(None, pl.Float64).alias("wind")), spec, "history")
    with pytest.raises(BatchError) as info:
        validate_clean(clean.with_columns(pl.lit(None, pl.Float64).alias("temp")), spec, "history")
    assert info.value.columns == ["temp"]
