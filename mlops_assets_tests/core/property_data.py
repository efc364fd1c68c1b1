"""Hypothesis strategies for the property tests (core/test_properties_*.py): dataset specs of
every supported frequency, several time zones, odd column names, with or without a group
column; and histories on the spec's grid, with odd group labels, gaps and missing values.

A history is held as plain Python (group label -> grid position -> value), so a test can
compute what the platform should return without polars: position i is the i-th step after
the start (for daily data the i-th local calendar day, whatever its length in hours)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import settings
from hypothesis import strategies as st

from mlops_assets.core.spec import DatasetSpec, spec_from_dict

STEPS = {"15min": timedelta(minutes=15), "30min": timedelta(minutes=30), "1h": timedelta(hours=1), "1d": timedelta(days=1)}
# Asia/Kolkata (+05:30) puts the hours at :30 UTC; the others change clocks near the start days.
ZONES = ("UTC", "Europe/Berlin", "Australia/Melbourne", "America/New_York", "Asia/Kolkata")
START_DAYS = (date(2024, 3, 29), date(2024, 4, 5), date(2024, 10, 26), date(2024, 11, 2), date(2024, 6, 10))
TIMESTAMP_NAMES = ("ts", "Zeit stempel", "時刻")
TARGET_NAMES = ("load", "load (MW)", "Verbrauch_ä", "2024")
GROUP_NAMES = ("region", "site id", "région", "0")
FEATURE_NAMES = ("reading", "temp °C")
ODD_LABELS = ("NA", "null", "None", "nan", "0", "00", "1.0", "-1", "a b", "Zürich", "東京", "🙂", ' "quoted", ')
LABEL_CHARS = "aZ09 _-.,;'\"éß東🙂"
SINGLE = None  # the label of a single series (no group column)


def labels(blank_allowed: bool) -> st.SearchStrategy[str]:
    """Group labels: tokens that look missing, numbers as text, unicode, spaces, CSV quoting;
    empty or blank ones only where `blank_allowed` (a batch file may not have them)."""
    drawn = st.one_of(st.sampled_from(ODD_LABELS), st.text(alphabet=LABEL_CHARS, max_size=5))
    if blank_allowed:
        return st.one_of(drawn, st.sampled_from(("", " ", "  ")))
    return drawn.filter(lambda s: s.strip() != "")


FREQUENCIES = sorted(STEPS)
GROUPING = (True, False)  # 1..4 groups in a group column; a single series without one


every_frequency_and_grouping = pytest.mark.parametrize(
    "frequency, grouped",
    [(f, g) for f in FREQUENCIES for g in GROUPING],
    ids=[f"{f}-{'groups' if g else 'single'}" for f in FREQUENCIES for g in GROUPING],
)


def per_case() -> settings:
    """Examples of a test parametrized over frequency and grouping (8 cases): a third of the
    profile's count each, at least 8 (10 in the suite profile)."""
    return settings(max_examples=max(8, settings.default.max_examples // 3))


@st.composite
def specs(draw, frequency: str | None = None, grouped: bool | None = None, max_lag_steps: int = 12) -> DatasetSpec:
    """A valid spec: the given frequency or any supported one, horizon 1..4 steps, 1..3 lags of horizon..12 steps,
    interpolation of 0..horizon-1 steps, an observed-only feature, no spike nulling."""
    frequency = frequency or draw(st.sampled_from(FREQUENCIES))
    step_hours = STEPS[frequency].total_seconds() / 3600
    horizon = draw(st.integers(1, 4))
    lags = draw(st.lists(st.integers(horizon, max(horizon, max_lag_steps)), min_size=1, max_size=3, unique=True))
    with_group = draw(st.sampled_from((True, False))) if grouped is None else grouped
    raw = {
        "name": "property",
        "frequency": frequency,
        "timestamp": {"column": draw(st.sampled_from(TIMESTAMP_NAMES)), "timezone": draw(st.sampled_from(ZONES))},
        "group": draw(st.sampled_from(GROUP_NAMES)) if with_group else None,
        "target": {"column": draw(st.sampled_from(TARGET_NAMES))},
        "features": {"numeric": [{"column": draw(st.sampled_from(FEATURE_NAMES)), "known_in_advance": False}]},
        "preparation": {
            "horizon": horizon * step_hours,
            "lags": [k * step_hours for k in lags],
            "rolling_windows": [2 * step_hours],
        },
        "cleaning": {"max_interpolate": draw(st.integers(0, horizon - 1)) * step_hours, "spike_mad_threshold": None},
    }
    return spec_from_dict(raw, source="property.yaml")


@dataclass
class History:
    """Per group label (None for a single series): grid position -> (target, observed feature)."""

    spec: DatasetSpec
    start: date
    rows: dict[str | None, dict[int, tuple[float | None, float | None]]] = field(default_factory=dict)

    def at(self, position: int) -> datetime:
        """The UTC instant of a grid position: whole steps after the start day's local midnight,
        or for daily data that local calendar day's midnight."""
        zone = ZoneInfo(self.spec.timezone)
        if self.spec.is_daily:
            return datetime.combine(self.start + timedelta(days=position), time(0), tzinfo=zone).astimezone(timezone.utc)
        midnight = datetime.combine(self.start, time(0), tzinfo=zone).astimezone(timezone.utc)
        return midnight + position * self.spec.frequency_delta

    def target(self, label: str | None) -> dict[int, float | None]:
        return {p: y for p, (y, _) in self.rows[label].items()}

    def feature(self, label: str | None) -> dict[int, float | None]:
        return {p: x for p, (_, x) in self.rows[label].items()}

    def frame(self) -> pl.DataFrame:
        spec = self.spec
        feature = spec.observed_only_columns[0]
        cells = [(label, self.at(p), y, x) for label, series in self.rows.items() for p, (y, x) in series.items()]
        columns = {
            spec.timestamp: pl.Series([c[1] for c in cells], dtype=pl.Datetime("us", "UTC")),
            spec.target.column: pl.Series([c[2] for c in cells], dtype=pl.Float64),
            feature: pl.Series([c[3] for c in cells], dtype=pl.Float64),
        }
        if spec.group:
            columns[spec.group] = pl.Series([c[0] for c in cells], dtype=pl.String)
        return pl.DataFrame(columns).select(spec.required_columns).sort(spec.key_columns)

    def labelled(self, frame: pl.DataFrame) -> list[tuple[str | None, int, dict]]:
        """(group label, grid position, row) for each row of a platform frame with the spec's keys."""
        position = {self.at(p): p for series in self.rows.values() for p in range(min(series) - 50, max(series) + 50)}
        group = self.spec.group
        return [(row[group] if group else SINGLE, position[row[self.spec.timestamp]], row) for row in frame.iter_rows(named=True)]


values = st.one_of(
    st.none(),
    st.integers(-1000, 1000).map(float),
    st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False),
)


@st.composite
def histories(draw, frequency: str | None = None, grouped: bool | None = None, blank_labels: bool = True, max_positions: int = 40) -> History:
    """1..4 groups (or one series), each starting at its own position with its own gaps, and
    targets and feature values that are sometimes missing."""
    spec = draw(specs(frequency, grouped))
    count = draw(st.integers(1, 4)) if spec.group else 1
    names = draw(st.lists(labels(blank_labels), min_size=count, max_size=count, unique=True)) if spec.group else [SINGLE]
    history = History(spec, draw(st.sampled_from(START_DAYS)))
    for label in names:
        offset = draw(st.integers(0, 8))
        length = draw(st.integers(1, max_positions))
        dropped = draw(st.sets(st.integers(1, length - 1), max_size=length // 3)) if length > 1 else set()
        positions = [p for p in range(length) if p not in dropped]
        history.rows[label] = {offset + p: (draw(values), draw(values)) for p in positions}
    return history
