import polars as pl

from mlops_assets.core.features import build_features, feature_columns, lag_columns, lag_mismatches
from mlops_assets.core.spec import load_spec, spec_from_dict
from mlops_assets_tests.builders import hourly_frame

SPEC = load_spec()
Y, TS, G = SPEC.target.column, SPEC.timestamp, SPEC.group


def test_no_lag_crosses_groups():
    history = hourly_frame(SPEC, ["A", "B", "C"], 24 * 12)
    frame, _ = build_features(history, SPEC)
    # Group levels are ~1000, ~2000, ~3000 and their ranges do not overlap: a lag (or rolling
    # mean) read from a neighbouring group would fall outside the group's own range.
    for group in ["A", "B", "C"]:
        own = history.filter(pl.col(G) == group).get_column(Y)
        part = frame.filter(pl.col(G) == group)
        for col in lag_columns(SPEC):
            if "_std_" in col:
                continue
            values = part.get_column(col)
            assert own.min() <= values.min() and values.max() <= own.max(), (group, col)
    assert sum(lag_mismatches(frame, history, SPEC).values()) == 0


def test_lag_is_the_value_exactly_lag_hours_earlier():
    history = hourly_frame(SPEC, ["A", "B"], 24 * 10)
    frame, _ = build_features(history, SPEC)
    row = frame.filter(pl.col(G) == "B").row(0, named=True)
    earlier = history.filter((pl.col(G) == "B") & (pl.col(TS) == row[TS] - pl.duration(hours=24))).get_column(Y).item()
    assert row[f"{Y}_lag_24h"] == earlier


def test_lag_mismatches_detects_a_lag_from_another_group():
    history = hourly_frame(SPEC, ["A", "B"], 24 * 10)
    frame, _ = build_features(history, SPEC)
    swapped = frame.with_columns(pl.col(f"{Y}_lag_24h").reverse())
    assert lag_mismatches(swapped, history, SPEC)[f"{Y}_lag_24h"] > 0


def test_missing_hours_are_lagged_by_time_not_by_row():
    history = hourly_frame(SPEC, ["A"], 24 * 10)
    holey = history.filter(~pl.int_range(pl.len()).is_between(100, 130))
    frame, report = build_features(holey, SPEC)
    assert report.grid_rows == history.height
    assert sum(lag_mismatches(frame, holey, SPEC).values()) == 0
    # Rows whose own target is missing are not training rows.
    assert frame.filter(pl.col(TS).is_in(history.slice(100, 31).get_column(TS).implode())).height == 0


def test_short_gaps_are_interpolated_for_lags_only():
    history = hourly_frame(SPEC, ["A"], 24 * 10)
    holey = history.with_columns(pl.when(pl.int_range(pl.len()) == 50).then(None).otherwise(pl.col(Y)).alias(Y))
    frame, report = build_features(holey, SPEC)
    assert report.interpolated_target_points == 1
    target_ts = history.get_column(TS)[50]
    assert frame.filter(pl.col(TS) == target_ts).height == 0
    lagged = frame.filter(pl.col(TS) == target_ts + pl.duration(hours=24)).get_column(f"{Y}_lag_24h")
    assert lagged.null_count() == 0


def test_calendar_is_local_and_has_holidays():
    history = hourly_frame(SPEC, ["A"], 24 * 30)
    frame, _ = build_features(history, SPEC)
    jan15 = frame.filter(pl.col(TS) == pl.datetime(2024, 1, 15, 17, time_zone="UTC"))
    assert jan15.get_column("hour").item() == 12  # 17:00 UTC is noon in New York in winter
    assert jan15.get_column("is_holiday").item() == 1  # Martin Luther King Jr. Day
    assert frame.columns[: len(SPEC.key_columns)] == SPEC.key_columns
    assert set(feature_columns(SPEC)) <= set(frame.columns) and G in feature_columns(SPEC)


def test_single_series_without_group():
    spec = spec_from_dict({"name": "one", "timestamp": {"column": "ts"}, "target": {"column": "y"}, "features": {"numeric": ["x"]}})
    history = hourly_frame(spec, None, 24 * 10)
    frame, report = build_features(history, spec)
    assert report.rows_out > 0 and sum(lag_mismatches(frame, history, spec).values()) == 0
