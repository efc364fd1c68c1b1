"""Properties of the feature build over random histories (property_data.py): any frequency
(15 min, 30 min, hourly, daily across daylight-saving changes), a single series or 1..4
groups with odd labels, gaps and missing values.

The expected values are computed here from grid positions in plain Python, not with the
platform's own checks: a lag of k steps at position i reads position i - k of the same group."""

from __future__ import annotations

import math
from datetime import timedelta

import polars as pl
from polars.testing import assert_frame_equal
from hypothesis import given
from hypothesis import strategies as st

from mlops_assets.core.features import BASELINE_HOURS, batch_features, build_features, complete_grid, lookback_hours
from mlops_assets.core.spec import duration_label
from mlops_assets_tests.core.property_data import History, every_frequency_and_grouping, histories, per_case


def filled(target: dict[int, float | None], j: int, k: int, horizon: int, limit: int) -> float | None:
    """What the lag input holds at position j for a lag of k steps: the observed value; in a
    gap of at most `limit` steps after an observed value, the linear fill when the next
    observed value is no later than t - horizon (j + k - horizon), else the carried value;
    otherwise (outside the group's span, a longer gap, no earlier value) nothing."""
    observed = {p: y for p, y in target.items() if y is not None}
    if j in observed:
        return observed[j]
    if not min(target) <= j <= max(target):
        return None
    before = max((p for p in observed if p < j), default=None)
    after = min((p for p in observed if p > j), default=None)
    gap = (after if after is not None else max(target) + 1) - (before if before is not None else min(target) - 1) - 1
    if before is None or gap > limit:
        return None
    if after is not None and after - j <= k - horizon:
        return observed[before] + (observed[after] - observed[before]) * (j - before) / (after - before)
    return observed[before]


def same(value: float | None, expected: float | None, exact: bool) -> bool:
    if value is None or expected is None:
        return value is None and expected is None
    return value == expected if exact else math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-9)


@every_frequency_and_grouping
@per_case()
@given(data=st.data())
def test_every_lag_is_the_same_groups_value_exactly_that_long_before_or_null(frequency: str, grouped: bool, data: st.DataObject):
    history = data.draw(histories(frequency, grouped))
    spec = history.spec
    y, x = spec.target.column, spec.observed_only_columns[0]
    horizon, limit = spec.steps(spec.horizon_hours), spec.steps(spec.max_interpolate_hours)
    frame, _ = build_features(history.frame(), spec)
    for label, i, row in history.labelled(frame):
        target, feature = history.target(label), history.feature(label)
        for hours in spec.lags_hours:
            k, name = spec.steps(hours), duration_label(hours)
            exact = target.get(i - k) is not None
            expected = filled(target, i - k, k, horizon, limit)
            assert same(row[f"{y}_lag_{name}"], expected, exact), (label, i, k, row[f"{y}_lag_{name}"], expected)
            assert same(row[f"{x}_lag_{name}"], feature.get(i - k), exact=True), (label, i, k)
        for column, hours in BASELINE_HOURS.items():
            assert same(row[column], target.get(i - spec.steps(hours)), exact=True), (label, i, column)


@every_frequency_and_grouping
@per_case()
@given(data=st.data())
def test_feature_rows_are_exactly_the_observed_rows_with_the_shortest_lag(frequency: str, grouped: bool, data: st.DataObject):
    history = data.draw(histories(frequency, grouped))
    spec = history.spec
    horizon, limit = spec.steps(spec.horizon_hours), spec.steps(spec.max_interpolate_hours)
    k = spec.steps(min(spec.lags_hours))
    frame, report = build_features(history.frame(), spec)
    expected = {
        (label, i)
        for label in history.rows
        for i, y in history.target(label).items()
        if y is not None and filled(history.target(label), i - k, k, horizon, limit) is not None
    }
    got = [(label, i) for label, i, _ in history.labelled(frame)]
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    assert report.rows_out == len(expected)
    assert frame.get_column(spec.target.column).to_list() == [row[spec.target.column] for *_, row in history.labelled(frame)]


@every_frequency_and_grouping
@per_case()
@given(data=st.data())
def test_the_complete_grid_has_every_step_of_each_group_once_and_keeps_its_values(frequency: str, grouped: bool, data: st.DataObject):
    history = data.draw(histories(frequency, grouped))
    spec = history.spec
    grid = complete_grid(history.frame(), spec)
    cells = history.labelled(grid)
    expected = {(label, i) for label, series in history.rows.items() for i in range(min(series), max(series) + 1)}
    keys = [(label, i) for label, i, _ in cells]
    assert len(keys) == len(set(keys)), "a grid step appears twice"
    assert set(keys) == expected, "a grid step is missing or lies outside its group's span"
    for label, i, row in cells:
        assert row[spec.target.column] == history.target(label).get(i), (label, i)
    ts = pl.col(spec.timestamp)
    ordered = grid.select((ts.diff() > 0).over(spec.group) if spec.group else ts.diff() > 0).to_series().drop_nulls()
    assert ordered.all(), "the grid is not in time order within a group"


@every_frequency_and_grouping
@per_case()
@given(data=st.data())
def test_a_batch_scored_on_its_lookback_window_gets_the_features_of_the_whole_history(
    frequency: str, grouped: bool, data: st.DataObject
):
    """Serving builds a batch's features on the history window `lookback_hours` long before it
    (as the monitoring assets do); training builds them on the whole history. They agree."""
    history = data.draw(histories(frequency, grouped))
    spec, ts = history.spec, pl.col(history.spec.timestamp)
    frame = history.frame()
    cut = history.at(data.draw(st.integers(0, max(max(s) for s in history.rows.values()))))
    batch, before = frame.filter(ts >= cut), frame.filter(ts < cut)
    window = before.filter(ts >= cut - timedelta(hours=lookback_hours(spec)))
    served = batch_features(window, batch, spec)
    trained, _ = build_features(frame, spec, require_target=False)
    trained = trained.join(batch.select(spec.key_columns), on=spec.key_columns, how="semi")
    rolling = [c for c in served.columns if "_roll_" in c]
    assert_frame_equal(served.drop(rolling), trained.drop(rolling))
    assert_frame_equal(served.select(rolling), trained.select(rolling), rtol=1e-6, atol=1e-6)
