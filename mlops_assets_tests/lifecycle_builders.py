"""Test data with groups that start late and stop early, at any frequency of the spec."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl

from mlops_assets.core.spec import DatasetSpec
from mlops_assets_tests.builders import T0, weather_anomaly


def series_frame(spec: DatasetSpec, groups: list[str] | None, days: float, seed: int = 0) -> pl.DataFrame:
    """Typed frame with the spec's columns at the spec's frequency for `days` days from T0: group i
    around 1000*(i+1) with a daily cycle and a response to the first numeric feature (as
    `builders.hourly_frame`, whose values it reproduces for hourly data)."""
    step = spec.frequency_hours
    n = int(round(days * 24 / step))
    hour = np.arange(n) * step
    ts = [T0 + timedelta(hours=float(h)) for h in hour]
    anomaly = weather_anomaly(int(hour[-1]) // 24 + 1, seed)[(hour // 24).astype(int)] if n else np.zeros(0)
    rng = np.random.default_rng(seed)
    weather, response = {}, np.zeros(n)
    for j, col in enumerate(spec.numeric_features):
        lo = col.min if col.min is not None else 0.0
        hi = col.max if col.max is not None else lo + 100
        swing = (hi - lo) * 0.1 * np.sin(hour / 24 + j) + (3 * anomaly if j == 0 else 0)
        weather[col.column] = np.clip(lo + (hi - lo) * 0.3 + swing, lo, hi)
        if j == 0:
            response = 5 * (weather[col.column] - lo - (hi - lo) * 0.3)
    parts = []
    for i, group in enumerate(groups or [None]):
        load = (i + 1) * (1000.0 + response) + 100 * np.sin(hour / 24 * 2 * np.pi) + rng.normal(0, 5, n)
        data = {spec.timestamp: ts, spec.target.column: load, **weather}
        if group is not None:
            data[spec.group] = [group] * n
        parts.append(pl.DataFrame(data))
    frame = pl.concat(parts).with_columns(pl.col(spec.timestamp).dt.replace_time_zone("UTC").dt.cast_time_unit("us"))
    return frame.select(spec.required_columns)


def with_lifecycle(
    frame: pl.DataFrame, spec: DatasetSpec, starts: dict[str, float] | None = None, stops: dict[str, float] | None = None
) -> pl.DataFrame:
    """`frame` where group g reports only from `starts[g]` days after T0 (inclusive) and before
    `stops[g]` days after T0."""
    ts, group = pl.col(spec.timestamp), pl.col(spec.group)
    keep = pl.lit(True)
    for g, day in (starts or {}).items():
        keep = keep & ~((group == g) & (ts < T0 + timedelta(days=day)))
    for g, day in (stops or {}).items():
        keep = keep & ~((group == g) & (ts >= T0 + timedelta(days=day)))
    return frame.filter(keep)
