"""Properties of the time split over random frames (property_data.py): any frequency, a single
series or 1..4 groups sharing or not sharing timestamps, any valid train / validation shares."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlops_assets.core.splitting import SplitError, split_is_time_ordered, time_split
from mlops_assets_tests.core.property_data import History, histories

ROW = "__row"


@st.composite
def shares(draw) -> tuple[float, float]:
    """(train_fraction, validation_fraction), both positive, leaving a positive test share."""
    train = draw(st.floats(0.05, 0.9))
    return train, draw(st.floats(0.01, 0.99 - train))


def split_frame(history: History) -> pl.DataFrame:
    return history.frame().with_row_index(ROW)


@given(data=st.data())
def test_splits_are_time_ordered_and_hold_every_row_once(data: st.DataObject):
    history = data.draw(histories(max_positions=30))
    train_share, validation_share = data.draw(shares())
    spec = dataclasses.replace(history.spec, train_fraction=train_share, validation_fraction=validation_share)
    frame = split_frame(history)
    stamps = frame.get_column(spec.timestamp).unique().sort().to_list()
    n = len(stamps)
    # Parts as shares of the distinct timestamps, rounded down: train, validation, test.
    cut_validation, cut_test = int(n * train_share), int(n * (train_share + validation_share))
    if min(cut_validation, cut_test - cut_validation, n - cut_test) < 1:
        with pytest.raises(SplitError, match=f"{n} distinct timestamps"):
            time_split(frame, spec)
        return
    train, validation, test, bounds = time_split(frame, spec)
    rows = pl.concat([train, validation, test]).get_column(ROW).sort().to_list()
    assert rows == list(range(frame.height)), "a row is lost or appears in two parts"
    parts = [part.get_column(spec.timestamp).unique().sort().to_list() for part in (train, validation, test)]
    assert parts == [stamps[:cut_validation], stamps[cut_validation:cut_test], stamps[cut_test:]]
    assert bounds.as_dict() == {
        "train_start": str(stamps[0]), "validation_start": str(stamps[cut_validation]),
        "test_start": str(stamps[cut_test]), "test_end": str(stamps[-1]),
    }  # fmt: skip
    assert split_is_time_ordered(train, validation, test, spec.timestamp)[0]


@given(data=st.data())
def test_the_leakage_rule_holds_exactly_when_the_parts_are_in_time_order(data: st.DataObject):
    """Rows dealt to three parts at random: ordered iff no part is empty, max(train) < min(validation)
    and max(validation) < min(test)."""
    history = data.draw(histories(max_positions=12))
    ts = history.spec.timestamp
    frame = split_frame(history)
    assignment = data.draw(st.lists(st.integers(0, 2), min_size=frame.height, max_size=frame.height))
    parts = [frame.filter(pl.Series([a == p for a in assignment])) for p in range(3)]
    stamps = [part.get_column(ts).to_list() for part in parts]
    ordered = all(stamps) and max(stamps[0]) < min(stamps[1]) and max(stamps[1]) < min(stamps[2])
    ok, text = split_is_time_ordered(*parts, ts)
    assert ok == bool(ordered), text
    assert text.startswith("time-ordered" if ordered else ("empty split(s)" if not all(stamps) else "OVERLAP"))
