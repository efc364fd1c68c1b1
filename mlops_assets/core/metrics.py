"""Regression metrics, overall and per group."""

from __future__ import annotations

import numpy as np
import polars as pl

METRICS = ("rmse", "mae", "mse", "r2", "mape")


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, MSE, R2 and MAPE (percent; rows with a zero target are left out of MAPE).
    Empty input gives NaN everywhere, which every gate treats as a failure."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    n = int(y_true.size)
    if n == 0:
        return {**{m: float("nan") for m in METRICS}, "n": 0}
    err = y_pred - y_true
    mse = float(np.mean(err**2))
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    nonzero = y_true != 0
    return {
        "rmse": float(np.sqrt(mse)),
        "mae": float(np.mean(np.abs(err))),
        "mse": mse,
        "r2": float(1 - np.sum(err**2) / ss_tot) if ss_tot > 0 else float("nan"),
        "mape": float(np.mean(np.abs(err[nonzero] / y_true[nonzero])) * 100) if nonzero.any() else float("nan"),
        "n": n,
    }


def metrics_by_group(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray | None) -> pl.DataFrame:
    """One row per group (or one row `<all>` for single-series data)."""
    groups = np.full(len(y_true), "<all>") if groups is None else np.asarray(groups).astype(str)
    rows = []
    for group in sorted(set(groups.tolist())):
        mask = groups == group
        rows.append({"group": group, **regression_metrics(np.asarray(y_true)[mask], np.asarray(y_pred)[mask])})
    return pl.DataFrame(rows)


def prefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {f"{prefix}_{k}": v for k, v in metrics.items() if k in METRICS}
