"""Small, exact test data: hourly series per group with a known level per group."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl

from mlops_assets.core.spec import DatasetSpec

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def hourly_frame(spec: DatasetSpec, groups: list[str] | None, hours: int, start_hour: int = 0, seed: int = 0) -> pl.DataFrame:
    """Typed frame with spec columns; group i's load is around 1000*(i+1) plus a daily cycle."""
    rng = np.random.default_rng(seed)
    ts = [T0 + timedelta(hours=h) for h in range(start_hour, start_hour + hours)]
    parts = []
    for i, group in enumerate(groups or [None]):
        hour = np.arange(start_hour, start_hour + hours)
        load = 1000.0 * (i + 1) + 100 * np.sin(hour / 24 * 2 * np.pi) + rng.normal(0, 5, hours)
        data = {spec.timestamp: ts, spec.target.column: load}
        for j, col in enumerate(spec.numeric_features):
            lo = col.min if col.min is not None else 0.0
            hi = col.max if col.max is not None else lo + 100
            data[col.column] = np.clip(lo + (hi - lo) * (0.3 + 0.1 * np.sin(hour / 24 + j)), lo, hi)
        if group is not None:
            data[spec.group] = [group] * hours
        parts.append(pl.DataFrame(data))
    frame = pl.concat(parts).with_columns(pl.col(spec.timestamp).dt.replace_time_zone("UTC").dt.cast_time_unit("us"))
    return frame.select(spec.required_columns)


def to_csv_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.with_columns(pl.col(pl.Datetime).dt.strftime("%Y-%m-%dT%H:%M:%S%:z")).write_csv(buffer)
    return buffer.getvalue()
