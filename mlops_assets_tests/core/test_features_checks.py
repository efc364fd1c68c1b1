"""The independent feature checks (`lag_mismatches`, `values_after_cutoff`), the serving
history reach (`lookback_hours`) and `batch_features`, on small hand-built frames whose
expected answers follow from the arithmetic written next to them."""

import warnings
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from mlops_assets.core.features import (
    batch_features,
    build_features,
    lag_mismatches,
    lookback_hours,
    values_after_cutoff,
)
from mlops_assets.core.spec import spec_from_dict

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
SCHEMA = {"site": pl.String, "ts": pl.Datetime("us", "UTC")}


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def spec(frequency="1h", group=None, lags=("24h",), rolling=("3h",), temperature=False, observed=(), max_interpolate=None):
    raw = {
        "name": "checks",
        "frequency": frequency,
        "timestamp": "ts",
        "group": group,
        "target": "y",
        "preparation": {"horizon": "24h", "lags": list(lags), "rolling_windows": list(rolling)},
    }
    numeric = [{"column": c, "known_in_advance": False} for c in observed]
    if temperature:
        numeric.append("temp")
        raw["features"] = {"numeric": numeric, "temperature": "temp"}
    elif numeric:
        raw["features"] = {"numeric": numeric}
    if max_interpolate is not None:
        raw["cleaning"] = {"max_interpolate": max_interpolate}
    return spec_from_dict(raw, source="checks.yaml")


def frame(rows: list[tuple], columns: list[str]) -> pl.DataFrame:
    schema = {c: SCHEMA.get(c, pl.Float64) for c in columns}
    return pl.DataFrame(rows, schema=schema, orient="row")


# --- _close: the tolerance both checks use, 1e-9 * (1 + |expected|) ---------------------


@pytest.mark.parametrize(
    "expected, value, mismatches",
    [
        (0.0, 1e-9, 0),  # exactly at the tolerance 1e-9 * (1 + 0): still the same value
        (0.0, -1e-9, 0),
        (0.0, 1.5e-9, 1),  # just past it
        (1000.0, 1000.0 + 1e-7, 0),  # tolerance grows with the value: 1e-9 * 1001 = 1.001e-6
        (1000.0, 1000.0 + 2e-6, 1),
    ],
)
def test_a_lag_counts_as_its_source_within_a_relative_tolerance(expected, value, mismatches):
    s = spec()
    history = frame([(at(0), expected)], ["ts", "y"])
    features = frame([(at(24), value)], ["ts", "y_lag_24h"])
    assert lag_mismatches(features, history, s) == {"y_lag_24h": mismatches}


# --- columns absent from the features are skipped, later ones still checked -------------


def test_lag_mismatches_skips_an_absent_lag_column_and_checks_the_next():
    s = spec(lags=("24h", "48h"))
    history = frame([(at(0), 5.0), (at(24), 7.0)], ["ts", "y"])
    # Only the 48 h lag is present: at 48 h it must be 5.0 (the value at 0 h); 6.0 is wrong.
    features = frame([(at(48), 6.0)], ["ts", "y_lag_48h"])
    assert lag_mismatches(features, history, s) == {"y_lag_48h": 1}


def test_values_after_cutoff_skips_an_absent_lag_column_and_checks_the_next():
    s = spec(lags=("24h", "48h"))
    history = frame([(at(0), 5.0), (at(24), 7.0)], ["ts", "y"])
    # 7.0 in the 48 h lag at 48 h is the value at 24 h = t - 24 h; its own source (0 h) says 5.0.
    features = frame([(at(48), 7.0)], ["ts", "y_lag_48h"])
    assert values_after_cutoff(features, history, s) == {"y_lag_48h": 1}


# --- gap fills in the target lags: carried forward or linear, never past t - horizon -----


@pytest.mark.parametrize(
    "prev, after, value, late",
    [
        (10.0, 20.0, 15.0, 0),  # linear fill between the neighbours, rising
        (20.0, 10.0, 15.0, 0),  # and falling
        (10.0, 20.0, 25.0, 1),  # outside them
        (10.0, 20.0, 10.0, 0),  # carried forward
        (1.0, 0.0, 0.0, 0),  # exactly the lower neighbour
        (1.0, 0.0, -1e-9, 0),  # lower bound 0 - 1e-9 * (1 + 0), exactly
        (1.0, 0.0, -1.5e-9, 1),  # just below it
        (2000.0, 1000.0, 1000.0 - 1e-7, 0),  # slack 1e-9 * (1 + 1000) = 1.001e-6 below 1000
        (-1.0, 0.0, 0.0, 0),  # exactly the upper neighbour
        (-1.0, 0.0, 1e-9, 0),  # upper bound 0 + 1e-9 * (1 + 0), exactly
        (-1.0, 0.0, 1.5e-9, 1),  # just above it
        (1000.0, 2000.0, 2000.0 + 1e-7, 0),  # slack 1e-9 * 2001 above 2000
    ],
)
def test_a_gap_fill_between_neighbours_no_later_than_the_cutoff_is_accounted_for(prev, after, value, late):
    """Lag 25 h, horizon 24 h: the source at t - 25 h is missing and the next reading is at
    t - 24 h, exactly the cutoff, so a value between the two neighbours may be a linear fill."""
    s = spec(lags=("25h",))
    history = frame([(at(0), prev), (at(1), None), (at(2), after)], ["ts", "y"])
    features = frame([(at(26), value)], ["ts", "y_lag_25h"])
    assert values_after_cutoff(features, history, s) == {"y_lag_25h": late}


@pytest.mark.parametrize("value, late", [(15.0, 1), (10.0, 0)])
def test_a_fill_towards_a_reading_after_the_cutoff_is_late(value, late):
    """Lag 24 h = horizon: the next reading after the gap (t - 23 h) comes after the cutoff,
    so only carrying the last reading forward is allowed."""
    s = spec(lags=("24h",))
    history = frame([(at(0), 10.0), (at(1), None), (at(2), 20.0)], ["ts", "y"])
    features = frame([(at(25), value)], ["ts", "y_lag_24h"])
    assert values_after_cutoff(features, history, s) == {"y_lag_24h": late}


@pytest.mark.parametrize("value, late", [(10.0, 0), (300.0, 1)])
def test_gap_neighbours_come_from_the_same_group(value, late):
    """Group "A/ö 1" misses 01:00; group "B" starts at 01:00 at a much higher level. A value
    between A's last reading (10) and B's reading at the cutoff (600) is not a fill of A."""
    s = spec(group="site")
    history = frame(
        [("A/ö 1", at(0), 10.0), ("A/ö 1", at(1), None), ("A/ö 1", at(2), 11.0), ("B", at(1), 600.0), ("B", at(2), 700.0)],
        ["site", "ts", "y"],
    )
    features = frame([("A/ö 1", at(25), value), ("B", at(25), 600.0)], ["site", "ts", "y_lag_24h"])
    assert values_after_cutoff(features, history, s) == {"y_lag_24h": late}


def test_a_lag_value_for_a_group_without_any_history_is_late():
    s = spec(group="site")
    history = frame([("A", at(0), 10.0)], ["site", "ts", "y"])
    features = frame([("A", at(24), 10.0), ("C", at(24), 10.0)], ["site", "ts", "y_lag_24h"])
    assert values_after_cutoff(features, history, s) == {"y_lag_24h": 1}


# --- lookback_hours: longest reach + horizon + longest window + max interpolate (+1 day daily)


@pytest.mark.parametrize(
    "kwargs, hours",
    [
        # lag 336 h beats the 168 h baseline: 336 + 24 + 24 + 3
        ({"lags": ("24h", "336h"), "rolling": ("24h",)}, 387),
        # no rolling window, no temperature: 168 (baseline) + 24 + 0 + 3
        ({"lags": ("24h",), "rolling": ()}, 195),
        # daily: 168 + 24 + 168 + 0 + 24 (a local day can be 25 h)
        ({"frequency": "1d", "lags": ("1d", "7d"), "rolling": ("7d",)}, 384),
        # 15 min with temperature windows up to 24 h: 168 + 24 + 24 + 0.5 = 216.5, rounded up
        ({"frequency": "15min", "rolling": ("2h",), "temperature": True, "max_interpolate": "30min"}, 217),
        ({"frequency": "30min", "lags": ("24h", "48h"), "rolling": ("1h",), "max_interpolate": "1h"}, 194),
    ],
)
def test_lookback_hours_adds_up_the_reach_of_every_feature(kwargs, hours):
    assert lookback_hours(spec(**kwargs)) == hours


# --- batch_features ------------------------------------------------------------------------


def _window_and_batch(target_dtype):
    window = frame([(at(h), float(h)) for h in range(50)], ["ts", "y"])  # y = hours since T0
    batch = pl.DataFrame({"ts": [at(50), at(51), at(52)], "y": [7, 8, 9]}, schema={"ts": SCHEMA["ts"], "y": target_dtype})
    return window, batch


def test_a_batch_whose_target_was_read_as_integers_gets_its_features():
    s = spec()
    window, batch = _window_and_batch(pl.Int64)
    served = batch_features(window, batch, s)
    assert served.get_column("y").to_list() == [7.0, 8.0, 9.0]
    assert served.get_column("y_lag_24h").to_list() == [26.0, 27.0, 28.0]  # y at 26 h, 27 h, 28 h


def test_batch_features_return_no_more_rows_than_the_batch_has():
    """A row given twice is scored once per occurrence, not once per pair of copies."""
    s = spec()
    window, batch = _window_and_batch(pl.Float64)
    twice = pl.concat([batch, batch.head(1)])
    served = batch_features(window, twice, s)
    assert served.height == 4
    assert sorted(served.get_column("ts").to_list()) == [at(50), at(50), at(51), at(52)]


def test_build_features_agrees_with_the_checks_on_a_grouped_gap():
    s = spec(group="site", lags=("24h", "48h"))
    rows = [(g, at(h), None if (g == "A" and h == 30) else float(h + (0 if g == "A" else 1000))) for g in ("A", "B") for h in range(80)]
    history = frame(rows, ["site", "ts", "y"])
    features, _ = build_features(history, s)
    assert lag_mismatches(features, history, s) == {"y_lag_24h": 0, "y_lag_48h": 0}
    assert values_after_cutoff(features, history, s) == {"y_lag_24h": 0, "y_lag_48h": 0}


def test_the_grouped_leak_check_runs_without_warnings():
    """The check sorts its own frames; polars cannot verify sortedness within `by` groups and
    would warn on every run of the asset check if asked to."""
    s = spec(group="site")
    history = frame([(g, at(h), float(h)) for g in ("north", "south") for h in range(30)], ["site", "ts", "y"])
    features = frame([(g, at(h), float(h - 24)) for g in ("north", "south") for h in range(24, 30)], ["site", "ts", "y_lag_24h"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert values_after_cutoff(features, history, s) == {"y_lag_24h": 0}
    assert [str(w.message) for w in caught] == []
