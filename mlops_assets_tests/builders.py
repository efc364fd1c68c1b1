"""Small, exact test data: hourly series per group with a known level per group."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl

from mlops_assets.core.spec import DatasetSpec

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def weather_anomaly(days: int, seed: int) -> np.ndarray:
    """A day-level weather anomaly (AR(1), the same for every group and for any start hour of
    the same seed)."""
    rng = np.random.default_rng(10_000 + seed)
    out = np.zeros(days)
    for d in range(1, days):
        out[d] = 0.6 * out[d - 1] + rng.normal()
    return out


def hourly_frame(spec: DatasetSpec, groups: list[str] | None, hours: int, start_hour: int = 0, seed: int = 0) -> pl.DataFrame:
    """Typed frame with spec columns; group i's load is around 1000*(i+1) plus a daily cycle and
    a response to the first numeric feature (weather: a slow swing plus a day-level anomaly),
    which yesterday's or last week's load cannot know and today's weather forecast can."""
    rng = np.random.default_rng(seed)
    ts = [T0 + timedelta(hours=h) for h in range(start_hour, start_hour + hours)]
    hour = np.arange(start_hour, start_hour + hours)
    anomaly = weather_anomaly(int(hour[-1]) // 24 + 1, seed)[hour // 24] if hours else np.zeros(0)
    weather, response = {}, np.zeros(hours)
    for j, col in enumerate(spec.numeric_features):
        lo = col.min if col.min is not None else 0.0
        hi = col.max if col.max is not None else lo + 100
        swing = (hi - lo) * 0.1 * np.sin(hour / 24 + j) + (3 * anomaly if j == 0 else 0)
        weather[col.column] = np.clip(lo + (hi - lo) * 0.3 + swing, lo, hi)
        if j == 0:
            response = 5 * (weather[col.column] - lo - (hi - lo) * 0.3)
    parts = []
    for i, group in enumerate(groups or [None]):
        load = (i + 1) * (1000.0 + response) + 100 * np.sin(hour / 24 * 2 * np.pi) + rng.normal(0, 5, hours)
        data = {spec.timestamp: ts, spec.target.column: load, **weather}
        if group is not None:
            data[spec.group] = [group] * hours
        parts.append(pl.DataFrame(data))
    frame = pl.concat(parts).with_columns(pl.col(spec.timestamp).dt.replace_time_zone("UTC").dt.cast_time_unit("us"))
    return frame.select(spec.required_columns)


def to_csv_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.with_columns(pl.col(pl.Datetime).dt.strftime("%Y-%m-%dT%H:%M:%S%:z")).write_csv(buffer)
    return buffer.getvalue()
