"""Reference statistics of the training data: the baseline for drift and serving checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def quantile_bin_edges(values: np.ndarray, bins: int) -> list[float]:
    """Interior edges at the reference's quantiles (deduplicated); the outer bins are open,
    so a current sample is binned with exactly the same edges."""
    if values.size == 0:
        return []
    edges = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    return [float(e) for e in np.unique(edges)]


def bin_fractions(values: np.ndarray, edges: list[float]) -> list[float]:
    counts = np.bincount(np.searchsorted(np.asarray(edges), values, side="right"), minlength=len(edges) + 1)
    total = counts.sum()
    return [float(c / total) if total else 0.0 for c in counts]


def numeric_profile(series: pl.Series, bins: int) -> dict[str, Any]:
    values = series.drop_nulls().cast(pl.Float64).to_numpy()
    edges = quantile_bin_edges(values, bins)
    stats: dict[str, Any] = {
        "kind": "numeric",
        "dtype": str(series.dtype),
        "count": int(values.size),
        "null_fraction": float(series.null_count() / len(series)) if len(series) else 0.0,
        "mean": float(values.mean()) if values.size else None,
        "std": float(values.std(ddof=1)) if values.size > 1 else None,
        "min": float(values.min()) if values.size else None,
        "max": float(values.max()) if values.size else None,
        "quantiles": {f"p{int(q * 100):02d}": float(np.quantile(values, q)) for q in QUANTILES} if values.size else {},
        "bin_edges": edges,
        "bin_fractions": bin_fractions(values, edges),
    }
    return stats


def categorical_profile(series: pl.Series) -> dict[str, Any]:
    counts = series.drop_nulls().cast(pl.String).value_counts(sort=True)
    total = int(counts.get_column("count").sum()) if counts.height else 0
    return {
        "kind": "categorical",
        "dtype": str(series.dtype),
        "count": total,
        "null_fraction": float(series.null_count() / len(series)) if len(series) else 0.0,
        "categories": {str(k): float(v / total) for k, v in counts.iter_rows()} if total else {},
    }


def build_profile(train: pl.DataFrame, *, numeric: list[str], categorical: list[str], bins: int, group: str | None, timestamp: str) -> dict[str, Any]:
    """Per-column statistics, quantile bins and the inferred schema of the training data."""
    columns = {name: numeric_profile(train.get_column(name), bins) for name in numeric}
    columns.update({name: categorical_profile(train.get_column(name)) for name in categorical})
    group_rows = (
        {str(k): int(v) for k, v in train.get_column(group).value_counts().iter_rows()} if group else {"all": train.height}
    )
    return {
        "rows": train.height,
        "schema": {name: str(dtype) for name, dtype in train.schema.items()},
        "time_range": [str(train.get_column(timestamp).min()), str(train.get_column(timestamp).max())],
        "group_rows": group_rows,
        "columns": columns,
    }


def profile_table(profile: dict[str, Any]) -> pl.DataFrame:
    """One row per column, for display."""
    rows = []
    for name, stats in profile["columns"].items():
        rows.append(
            {
                "column": name,
                "kind": stats["kind"],
                "null_fraction": round(stats["null_fraction"], 4),
                "mean": None if stats.get("mean") is None else round(stats["mean"], 3),
                "std": None if stats.get("std") is None else round(stats["std"], 3),
                "min": stats.get("min"),
                "max": stats.get("max"),
                "bins_or_categories": len(stats.get("bin_edges", [])) + 1 if stats["kind"] == "numeric" else len(stats["categories"]),
            }
        )
    return pl.DataFrame(rows)
