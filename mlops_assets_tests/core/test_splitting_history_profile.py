from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from mlops_assets.core.history import content_hash, merge_batches
from mlops_assets.core.profile import bin_fractions, build_profile
from mlops_assets.core.splitting import SplitError, split_is_time_ordered, time_split
from mlops_assets.core.spec import load_spec
from mlops_assets_tests.builders import hourly_frame

SPEC = load_spec()
Y, TS, G = SPEC.target.column, SPEC.timestamp, SPEC.group


def test_split_is_time_ordered_and_shares_boundaries():
    frame = hourly_frame(SPEC, ["A", "B", "C"], 100).sample(fraction=1.0, shuffle=True, seed=1)
    train, validation, test, bounds = time_split(frame, SPEC)
    assert train.get_column(TS).max() < validation.get_column(TS).min()
    assert validation.get_column(TS).max() < test.get_column(TS).min()
    assert train.height + validation.height + test.height == frame.height
    for part in (train, validation, test):
        assert part.get_column(G).n_unique() == 3
    assert split_is_time_ordered(train, validation, test, TS)[0]
    assert bounds.validation_start == str(validation.get_column(TS).min())


def test_time_order_rule_catches_overlap_and_empty_split():
    frame = hourly_frame(SPEC, ["A"], 100)
    ok, text = split_is_time_ordered(frame.slice(0, 60), frame.slice(50, 20), frame.slice(80, 20), TS)
    assert not ok and "OVERLAP" in text
    assert not split_is_time_ordered(frame, frame.head(0), frame, TS)[0]


def test_time_order_rule_is_strict_and_names_the_ranges():
    frame = hourly_frame(SPEC, ["A"], 30)
    train, validation, test = frame.slice(0, 10), frame.slice(10, 10), frame.slice(20, 10)
    ok, text = split_is_time_ordered(train, validation, test, TS)
    ranges = ", ".join(f"{n} {p.get_column(TS).min()} .. {p.get_column(TS).max()}" for n, p in zip(("train", "validation", "test"), (train, validation, test)))
    assert ok and text == f"time-ordered: {ranges}"
    assert not split_is_time_ordered(frame.slice(0, 11), validation, test, TS)[0]  # a shared first validation hour
    assert not split_is_time_ordered(train, frame.slice(10, 11), test, TS)[0]  # a shared first test hour
    assert not split_is_time_ordered(train, frame.slice(10, 12), test, TS)[0]  # validation reaches into test


def test_too_little_data_to_split():
    with pytest.raises(SplitError, match="land more history"):
        time_split(hourly_frame(SPEC, ["A"], 2), SPEC)


def test_three_timestamps_are_enough_for_one_in_each_part():
    """The smallest split there is: train, validation and test one timestamp each (both groups)."""
    spec = replace(SPEC, train_fraction=0.34, validation_fraction=0.33)
    train, validation, test, _ = time_split(hourly_frame(SPEC, ["A", "B"], 3), spec)
    assert [part.get_column(TS).n_unique() for part in (train, validation, test)] == [1, 1, 1]
    assert [part.height for part in (train, validation, test)] == [2, 2, 2]


def test_shares_that_leave_no_test_period_are_refused_not_an_index_error():
    """Spec validation forbids it; a spec built in code without validation must still be refused."""
    no_test = replace(SPEC, train_fraction=0.5, validation_fraction=0.5)
    with pytest.raises(SplitError, match="test 0%"):
        time_split(hourly_frame(SPEC, ["A"], 10), no_test)


def test_merge_latest_batch_wins_and_version_follows_content():
    first = hourly_frame(SPEC, ["A", "B"], 48)
    correction = first.filter(pl.col(TS) == first.get_column(TS).max()).with_columns(pl.lit(5.0).alias(Y))
    merged, report = merge_batches([("b1", first), ("b2", correction)], SPEC)
    assert merged.height == 96 and report.superseded_rows == 2
    assert merged.filter(pl.col(TS) == first.get_column(TS).max()).get_column(Y).to_list() == [5.0, 5.0]
    # The same two batches in the other order: the first batch's values win back.
    reordered, _ = merge_batches([("b2", correction), ("b1", first)], SPEC)
    assert 5.0 not in reordered.get_column(Y).to_list()
    assert report.data_version == content_hash(merged) != content_hash(reordered)
    # Regions sharing an hour are not duplicates of each other.
    assert merged.filter(pl.col(TS) == first.get_column(TS).min()).height == 2


def test_profile_bins_and_fractions():
    frame = hourly_frame(SPEC, ["A", "B"], 200)
    profile = build_profile(frame, numeric=[Y], categorical=[G], bins=10, group=G, timestamp=TS)
    stats = profile["columns"][Y]
    assert len(stats["bin_edges"]) == 9 and abs(sum(stats["bin_fractions"]) - 1) < 1e-9
    assert max(stats["bin_fractions"]) < 0.15  # quantile bins hold about a tenth each
    assert profile["columns"][G]["categories"] == {"A": 0.5, "B": 0.5}
    assert profile["group_rows"] == {"A": 200, "B": 200}
    assert stats["mean"] == pytest.approx(frame.get_column(Y).mean())


def test_bin_fractions_use_the_reference_edges():
    assert bin_fractions(np.array([0.0, 1.0, 2.0, 3.0]), [1.5]) == [0.5, 0.5]
    assert bin_fractions(np.array([5.0, 6.0]), [1.5]) == [0.0, 1.0]
