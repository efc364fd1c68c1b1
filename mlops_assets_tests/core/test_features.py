from datetime import timedelta

import polars as pl

from mlops_assets.core.features import build_features, feature_columns, lag_columns, lag_mismatches
from mlops_assets.core.spec import load_spec, spec_from_dict
from mlops_assets_tests.builders import T0, hourly_frame

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


# A group's life cycle: a new group joins once it has the shortest lag's history.
def _late_group_history(start_day: int = 10, days: int = 14):
    history = hourly_frame(SPEC, ["A", "B", "Zone A/B (ö)"], 24 * days)
    first = T0 + timedelta(days=start_day)
    return history.filter((pl.col(G) != "Zone A/B (ö)") | (pl.col(TS) >= first)), first


def test_a_new_group_is_a_feature_row_after_one_day_with_its_long_lags_null():
    from mlops_assets.core.features import required_lag_hours

    history, first = _late_group_history()
    frame, report = build_features(history, SPEC)
    new = frame.filter(pl.col(G) == "Zone A/B (ö)").sort(TS)
    assert required_lag_hours(SPEC) == 24
    assert new.get_column(TS).min() == first + timedelta(hours=24) and new.height == 3 * 24
    assert new.get_column(f"{Y}_lag_24h").null_count() == 0
    assert new.get_column(f"{Y}_lag_168h").null_count() == new.height  # a week of history it does not have
    assert new.get_column(f"{Y}_lag_48h").null_count() == 24
    assert new.get_column("baseline_seasonal_naive").null_count() == new.height
    # Every group's first day has no 24 h lag and is dropped; the days before a week of history
    # are kept with partial history (A and B: days 2 to 7; the new group: all its rows).
    assert report.rows_without_required_history == 3 * 24
    assert report.rows_with_partial_history == 2 * 24 * 6 + new.height
    assert report.rows_out == frame.height == 2 * 24 * 13 + new.height
    assert sum(lag_mismatches(frame, history, SPEC).values()) == 0


def test_required_feature_columns_are_group_calendar_shortest_lag_and_strict_known_features():
    from mlops_assets.core.features import calendar_columns, required_feature_columns

    spec = spec_from_dict({
        "name": "s", "timestamp": "ts", "group": "site", "target": "y",
        "features": {"numeric": [{"column": "temp", "allow_missing": False}, "humidity",
                                 {"column": "price", "allow_missing": False, "known_in_advance": False}]},
        "preparation": {"lags": ["48h", "24h", "7d"]},
    })
    required = required_feature_columns(spec)
    assert required == ["site", *calendar_columns(spec), "y_lag_24h", "temp"]
    assert set(required) <= set(feature_columns(spec))
    single = spec_from_dict({"name": "s", "timestamp": "ts", "target": "y"})
    assert required_feature_columns(single) == [*calendar_columns(single), "y_lag_24h"]


def test_batch_features_score_a_young_group_and_leave_out_one_without_history():
    from mlops_assets.core.features import batch_features

    history, first = _late_group_history(start_day=12)
    cut = history.get_column(TS).max() - timedelta(hours=23)
    window, batch = history.filter(pl.col(TS) < cut), history.filter(pl.col(TS) >= cut)
    brand_new = batch.filter(pl.col(G) == "A").with_columns(pl.lit("only today").alias(G))
    scored = batch_features(window, pl.concat([batch, brand_new]).with_columns(pl.lit(None, dtype=pl.Float64).alias(Y)), SPEC)
    counts = dict(scored.group_by(G).len().iter_rows())
    assert counts == {"A": 24, "B": 24, "Zone A/B (ö)": 24}  # "only today" has no 24 h of history: not scored
    young = scored.filter(pl.col(G) == "Zone A/B (ö)")
    assert young.get_column(f"{Y}_lag_24h").null_count() == 0 and young.get_column(f"{Y}_lag_168h").null_count() == 24


def test_leak_checks_still_catch_a_future_value_in_a_partial_row_and_a_dropped_lag():
    from mlops_assets.core.features import values_after_cutoff

    history, _ = _late_group_history()
    frame, _ = build_features(history, SPEC)
    assert sum(values_after_cutoff(frame, history, SPEC).values()) == 0
    young = pl.col(G) == "Zone A/B (ö)"
    # The week lag the new group does not have, filled with the value observed at t itself.
    leaked = frame.with_columns(pl.when(young).then(pl.col(Y)).otherwise(pl.col(f"{Y}_lag_168h")).alias(f"{Y}_lag_168h"))
    assert values_after_cutoff(leaked, history, SPEC)[f"{Y}_lag_168h"] == 3 * 24
    # A lag nulled although the group's history has the value: a mismatch, not a silent gap.
    dropped = frame.with_columns(pl.when(pl.col(G) == "A").then(None).otherwise(pl.col(f"{Y}_lag_48h")).alias(f"{Y}_lag_48h"))
    assert lag_mismatches(dropped, history, SPEC)[f"{Y}_lag_48h"] == frame.filter(pl.col(G) == "A").height - 24
