import polars as pl
import pytest

from mlops_assets.core.cleaning import clean_batch
from mlops_assets.core.ingest import BatchError, parse_batch
from mlops_assets.core.schemas import validate_clean
from mlops_assets.core.spec import load_spec, spec_from_dict
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


# ---------------------------------------------------------------- daylight saving changes
# Local times without an offset, through the entry points `raw_load` and `clean_load` call
# (parse_batch, clean_batch), in America/New_York (the demo spec's zone).


def dst_csv(stamps: list[str], groups: tuple[str, ...] = ("A", "B")) -> bytes:
    frame = pl.read_csv(to_csv_bytes(hourly_frame(SPEC, list(groups), len(stamps))), infer_schema=False)
    return frame.with_columns(pl.Series(TS, stamps * len(groups))).write_csv().encode()


def dst_error(data: bytes) -> BatchError:
    with pytest.raises(BatchError) as info:
        clean_batch(parse_batch("dst.csv", data), SPEC, "dst.csv")
    return info.value


def test_a_nonexistent_local_time_is_named_as_spring_forward():
    error = dst_error(dst_csv(["2025-03-09 01:00", "2025-03-09 02:30", "2025-03-09 03:00"]))
    assert (error.kind, error.rows, error.columns) == ("nonexistent_local_times", [2, 5], [TS])
    assert "nonexistent local time 2025-03-09 02:30 in America/New_York (spring forward) at row 2, column period" in str(error)
    assert "cannot read" not in str(error)


def test_a_lone_ambiguous_local_time_is_named_as_fall_back():
    error = dst_error(dst_csv(["2025-11-02 00:30", "2025-11-02 01:30", "2025-11-02 02:30"]))
    assert (error.kind, error.rows, error.columns) == ("ambiguous_local_times", [2, 5], [TS])
    assert "ambiguous local time 2025-11-02 01:30 in America/New_York (fall back) at row 2, column period" in str(error)


def test_the_repeated_hour_in_order_is_the_first_then_the_second_pass():
    """Hourly data through the fall-back change writes 01:00 twice: read in file order as
    01:00 EDT (05:00 UTC) then 01:00 EST (06:00 UTC), per group, so no row is lost."""
    stamps = ["2025-11-02 00:00", "2025-11-02 01:00", "2025-11-02 01:00", "2025-11-02 02:00"]
    clean, report = clean_batch(parse_batch("dst.csv", dst_csv(stamps)), SPEC, "dst.csv")
    utc = clean.filter(pl.col(G) == "B").get_column(TS).dt.strftime("%H:%M").to_list()
    assert utc == ["04:00", "05:00", "06:00", "07:00"]
    assert clean.height == 8 and report.duplicates_dropped == 0 and report.missing_steps == 0


def test_a_time_repeated_three_times_is_rejected():
    stamps = ["2025-11-02 00:00", "2025-11-02 01:00", "2025-11-02 01:00", "2025-11-02 01:00", "2025-11-02 02:00"]
    error = dst_error(dst_csv(stamps, ("A",)))
    assert error.kind == "ambiguous_local_times" and error.rows == [2, 3, 4]
    assert "appears 3 time(s)" in str(error)


def test_explicit_offsets_in_the_repeated_hour_are_never_ambiguous():
    stamps = ["2025-11-02T01:00:00-04:00", "2025-11-02T01:00:00-05:00", "2025-11-02T02:00:00-05:00"]
    clean, _ = clean_batch(parse_batch("dst.csv", dst_csv(stamps, ("A",))), SPEC, "dst.csv")
    assert clean.get_column(TS).dt.strftime("%H:%M").to_list() == ["05:00", "06:00", "07:00"]


def test_a_half_hourly_single_series_repeats_both_half_hours():
    spec = spec_from_dict({
        "name": "demand", "frequency": "30min", "timestamp": {"column": "t", "timezone": "America/New_York"}, "group": None,
        "target": {"column": "y", "min": 0}, "features": {"numeric": [{"column": "x"}]},
        "preparation": {"horizon": "24h", "lags": ["24h"], "rolling_windows": ["24h"]},
    })
    wall = ["00:30", "01:00", "01:30", "01:00", "01:30", "02:00"]
    data = pl.DataFrame({"t": [f"2025-11-02 {w}" for w in wall], "y": ["5"] * 6, "x": ["1"] * 6}).write_csv().encode()
    clean, _ = clean_batch(parse_batch("d.csv", data), spec, "d.csv")
    assert clean.get_column("t").dt.strftime("%H:%M").to_list() == ["04:30", "05:00", "05:30", "06:00", "06:30", "07:00"]


def test_naive_parquet_datetimes_get_the_same_rules():
    import io

    frame = hourly_frame(SPEC, ["A"], 3).with_columns(
        pl.Series(TS, ["2025-03-09 01:00", "2025-03-09 02:00", "2025-03-09 03:00"]).str.strptime(pl.Datetime("us"))
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    with pytest.raises(BatchError) as info:
        clean_batch(parse_batch("dst.parquet", buffer.getvalue()), SPEC, "dst.parquet")
    assert info.value.kind == "nonexistent_local_times" and info.value.rows == [2]
    assert "nonexistent local time 2025-03-09 02:00 in America/New_York (spring forward) at row 2" in str(info.value)
