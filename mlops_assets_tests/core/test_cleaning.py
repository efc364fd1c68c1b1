import polars as pl
import pytest

from mlops_assets.core.cleaning import clean_batch
from mlops_assets.core.ingest import BatchError, parse_batch
from mlops_assets.core.schemas import validate_clean
from mlops_assets.core.spec import load_spec
from mlops_assets_tests.builders import hourly_frame, to_csv_bytes

SPEC = load_spec()
Y, TS, G = SPEC.target.column, SPEC.timestamp, SPEC.group


def parsed(frame: pl.DataFrame) -> pl.DataFrame:
    return parse_batch("batch.csv", to_csv_bytes(frame))


def test_clean_batch_types_and_reconciles():
    clean, report = clean_batch(parsed(hourly_frame(SPEC, ["A", "B"], 48)), SPEC, "batch.csv")
    assert clean.schema[TS] == pl.Datetime("us", "UTC") and clean.schema[Y] == pl.Float64
    assert report.rows_in == report.rows_out == 96 and report.reconciles()
    validate_clean(clean, SPEC, "batch.csv")


def test_naive_local_timestamps_become_utc():
    raw = pl.DataFrame({"_row": [1], TS: ["2024-07-01 12:00:00"], G: ["A"], Y: ["5"], **{c: ["1"] for c in SPEC.numeric_columns}})
    clean, _ = clean_batch(raw, SPEC, "f.csv")
    assert str(clean.get_column(TS)[0]) == "2024-07-01 16:00:00+00:00"  # New York is UTC-4 in July


def test_duplicates_keep_the_last_row_and_are_counted():
    frame = hourly_frame(SPEC, ["A"], 3)
    corrected = frame.head(1).with_columns(pl.lit(777.0).alias(Y))
    exact = frame.slice(1, 1)
    clean, report = clean_batch(parsed(pl.concat([frame, corrected, exact])), SPEC, "f.csv")
    assert clean.height == 3 and clean.get_column(Y)[0] == 777.0
    assert (report.exact_duplicates_dropped, report.conflicting_duplicates_dropped) == (1, 1)
    assert report.rows_in == report.rows_out + report.duplicates_dropped


def test_negative_readings_and_spikes_are_nulled_and_counted():
    frame = hourly_frame(SPEC, ["A", "B"], 72)
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(-30.0)
        .when(pl.int_range(pl.len()) == 10).then(pl.col(Y) * 8)
        .otherwise(pl.col(Y)).alias(Y)
    )
    clean, report = clean_batch(parsed(frame), SPEC, "f.csv")
    assert report.out_of_range_nulled == {Y: 1} and report.spikes_nulled == 1
    assert clean.get_column(Y).null_count() == 2 and clean.height == 144


def test_gaps_are_reported():
    frame = hourly_frame(SPEC, ["A"], 24).filter(~pl.int_range(pl.len()).is_in([3, 4, 5]))
    _, report = clean_batch(parsed(frame), SPEC, "f.csv")
    assert report.missing_steps == 3 and report.largest_gap_hours == 4.0


def _error(frame: pl.DataFrame) -> BatchError:
    with pytest.raises(BatchError) as info:
        clean_batch(parse_batch("f.csv", to_csv_bytes(frame)) if TS in frame.columns and frame.schema[TS] != pl.String else frame, SPEC, "f.csv")
    return info.value


def test_missing_column_is_named():
    error = _error(hourly_frame(SPEC, ["A"], 5).drop("cloud_cover"))
    assert error.kind == "missing_columns" and error.columns == ["cloud_cover"]


def test_wrong_type_names_rows_and_column():
    raw = parsed(hourly_frame(SPEC, ["A"], 5)).with_columns(
        pl.when(pl.col("_row").is_in([2, 4])).then(pl.lit("n/a")).otherwise(pl.col("temperature_c")).alias("temperature_c")
    )
    error = _error(raw)
    assert (error.kind, error.rows, error.columns) == ("wrong_type", [2, 4], ["temperature_c"])


def test_unparseable_timestamps_name_rows():
    raw = parsed(hourly_frame(SPEC, ["A"], 3)).with_columns(
        pl.when(pl.col("_row") == 3).then(pl.lit("31/02/2024 25:61")).otherwise(pl.col(TS)).alias(TS)
    )
    error = _error(raw)
    assert (error.kind, error.rows, error.columns) == ("unparseable_timestamps", [3], [TS])


def test_out_of_range_feature_rejects_batch():
    raw = parsed(hourly_frame(SPEC, ["A"], 4)).with_columns(
        pl.when(pl.col("_row") == 2).then(pl.lit("500")).otherwise(pl.col("temperature_c")).alias("temperature_c")
    )
    error = _error(raw)
    assert (error.kind, error.rows, error.columns) == ("out_of_range", [2], ["temperature_c"])


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_values_reject_batch(value):
    raw = parsed(hourly_frame(SPEC, ["A"], 4)).with_columns(
        pl.when(pl.col("_row") == 3).then(pl.lit(value)).otherwise(pl.col("wind_speed_ms")).alias("wind_speed_ms")
    )
    error = _error(raw)
    assert (error.kind, error.rows, error.columns) == ("non_finite", [3], ["wind_speed_ms"])


def test_all_null_target_rejects_batch():
    raw = parsed(hourly_frame(SPEC, ["A"], 4)).with_columns(pl.lit(None, pl.String).alias(Y))
    assert _error(raw).kind == "all_null_target"


def test_off_grid_timestamps_reject_batch():
    raw = parsed(hourly_frame(SPEC, ["A"], 2)).with_columns(
        pl.when(pl.col("_row") == 2).then(pl.lit("2024-01-01T00:30:00+00:00")).otherwise(pl.col(TS)).alias(TS)
    )
    assert _error(raw).kind == "off_grid_timestamps"


def test_pandera_rejects_duplicate_keys_in_history():
    clean, _ = clean_batch(parsed(hourly_frame(SPEC, ["A"], 3)), SPEC, "f.csv")
    with pytest.raises(BatchError) as info:
        validate_clean(pl.concat([clean, clean.head(1)]), SPEC, "history")
    assert info.value.kind == "schema" and "multiple_fields_uniqueness" in info.value.message
