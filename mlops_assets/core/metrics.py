"""Forecast metrics, overall and per group, next to the two baselines a forecaster would beat.

- MAPE only where it means something: every target > 0 and its 1st percentile at least
  `MAPE_MIN_SHARE` (10 %) of its median. Otherwise `mape` is NaN and `mape_absent_reason` says why
  (a net load crossing zero, or values near zero that would dominate the mean).
- Baselines, read from the split frames: `seasonal_naive` (the target one week earlier) and
  `day_before` (one day earlier). They are compared on the same rows: those with an actual and
  both baselines (`baseline_rows`).
- skill = 1 - MAE(model) / MAE(seasonal naive) on those rows: > 0 beats the baseline.
- MASE = MAE(model, all scored rows) / `mase_scale`, the in-sample seasonal-naive MAE of the
  training split (Hyndman's definition: the scale comes from training, so MASE is comparable
  across test windows). NaN when no scale is given.
- Labels: a single series is labelled "all"; wherever a label becomes a key (MLflow metric names,
  file names) it goes through `safe_key`, with the mapping logged as `tables/group_keys.csv`."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

import numpy as np
import polars as pl

METRICS = ("rmse", "mae", "mse", "r2", "mape", "mase", "skill")
BASELINES = ("seasonal_naive", "day_before")
SINGLE_SERIES_LABEL = "all"
MAPE_MIN_SHARE = 0.10
NAN = float("nan")


def _mape(y: np.ndarray, err: np.ndarray) -> tuple[float, str | None]:
    """(MAPE %, None) or (NaN, why it is absent)."""
    if y.size == 0:
        return NAN, "no rows"
    if np.min(y) <= 0:
        return NAN, (
            f"target not strictly positive (min {np.min(y):.4g}): MAPE is meaningless where it reaches or crosses zero"
        )
    low, median = float(np.percentile(y, 1)), float(np.median(y))
    if low < MAPE_MIN_SHARE * median:
        return NAN, (
            f"target comes near zero (1st percentile {low:.4g} < {MAPE_MIN_SHARE:.0%} of the median {median:.4g}): "
            "the smallest values would dominate MAPE"
        )
    return float(np.mean(np.abs(err / y)) * 100), None


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """RMSE, MAE, MSE, R2, MAPE (%, see the rule above) with `mape_absent_reason` (None when
    present), and n. Rows without an actual are not scored; empty input gives NaN everywhere,
    which every gate treats as a failure."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    keep = np.isfinite(y_true)
    y_true, y_pred = y_true[keep], y_pred[keep]
    n = int(y_true.size)
    if n == 0:
        return {"rmse": NAN, "mae": NAN, "mse": NAN, "r2": NAN, "mape": NAN, "mape_absent_reason": "no rows", "n": 0}
    err = y_pred - y_true
    mse = float(np.mean(err**2))
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    mape, reason = _mape(y_true, err)
    return {
        "rmse": float(np.sqrt(mse)),
        "mae": float(np.mean(np.abs(err))),
        "mse": mse,
        "r2": float(1 - np.sum(err**2) / ss_tot) if ss_tot > 0 else NAN,
        "mape": mape,
        "mape_absent_reason": reason,
        "n": n,
    }


def _baseline(baselines: dict[str, np.ndarray] | None, name: str, n: int) -> np.ndarray:
    values = None if baselines is None else baselines.get(name)
    return np.full(n, NAN) if values is None else np.asarray(values, dtype=float)


def compared_rows(y_true: np.ndarray, baselines: dict[str, np.ndarray] | None) -> np.ndarray:
    """Rows where the actual and both baselines exist: every baseline comparison uses these."""
    y_true = np.asarray(y_true, dtype=float)
    keep = np.isfinite(y_true)
    for name in BASELINES:
        keep &= np.isfinite(_baseline(baselines, name, len(y_true)))
    return keep


def _mae(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.abs(p - y))) if y.size else NAN


def _ratio(a: float, b: float) -> float:
    return a / b if b and np.isfinite(a) and np.isfinite(b) else NAN


def mase_scale(y_train: np.ndarray, seasonal_naive_train: np.ndarray | None) -> float:
    """In-sample MAE of the seasonal-naive forecast on the training rows (NaN when unavailable)."""
    if seasonal_naive_train is None:
        return NAN
    err = np.asarray(seasonal_naive_train, float) - np.asarray(y_train, float)
    err = err[np.isfinite(err)]
    return float(np.mean(np.abs(err))) if err.size else NAN


def forecast_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, baselines: dict[str, np.ndarray] | None = None, scale: float | None = None,
) -> dict[str, Any]:
    """`regression_metrics` plus MASE, skill against seasonal naive and against the day before,
    and the MAEs of model and baselines on the compared rows (`baseline_rows` of them)."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    out = regression_metrics(y_true, y_pred)
    rows = compared_rows(y_true, baselines)
    model_mae = _mae(y_pred[rows], y_true[rows])
    maes = {name: _mae(_baseline(baselines, name, len(y_true))[rows], y_true[rows]) for name in BASELINES}
    out.update(
        mase=_ratio(out["mae"], NAN if scale is None else scale),
        skill=1 - _ratio(model_mae, maes["seasonal_naive"]),
        skill_day_before=1 - _ratio(model_mae, maes["day_before"]),
        baseline_rows=int(rows.sum()),
        compared_mae=model_mae,
        seasonal_naive_mae=maes["seasonal_naive"],
        day_before_mae=maes["day_before"],
    )
    return out


def baseline_metrics(
    y_true: np.ndarray, baselines: dict[str, np.ndarray] | None, scale: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Each baseline as if it were a model, on the compared rows: {name: metrics}. A baseline's
    skill against seasonal naive is 0 for seasonal naive itself."""
    y_true = np.asarray(y_true, float)
    rows = compared_rows(y_true, baselines)
    picked = {k: _baseline(baselines, k, len(y_true))[rows] for k in BASELINES}
    return {name: forecast_metrics(y_true[rows], picked[name], picked, scale) for name in BASELINES}


def comparison(
    y_true: np.ndarray, y_pred: np.ndarray, baselines: dict[str, np.ndarray] | None, scale: float | None = None,
) -> dict[str, dict[str, Any]]:
    """{"model", "seasonal_naive", "day_before": metrics}, all on the compared rows."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    rows = compared_rows(y_true, baselines)
    picked = {k: _baseline(baselines, k, len(y_true))[rows] for k in BASELINES}
    model = forecast_metrics(y_true[rows], y_pred[rows], picked, scale)
    return {"model": model, **baseline_metrics(y_true, baselines, scale)}


def group_labels(groups: np.ndarray | None, n: int) -> np.ndarray:
    """Group labels as strings; a single series is labelled "all"."""
    return np.full(n, SINGLE_SERIES_LABEL, dtype=object) if groups is None else np.asarray(groups).astype(str)


def _subset(baselines: dict[str, np.ndarray] | None, mask: np.ndarray) -> dict[str, np.ndarray] | None:
    return None if baselines is None else {k: np.asarray(v, float)[mask] for k, v in baselines.items() if v is not None}


def metrics_by_group(
    y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray | None,
    baselines: dict[str, np.ndarray] | None = None, scales: dict[str, float] | None = None,
) -> pl.DataFrame:
    """One row per group (one row "all" for a single series): `forecast_metrics` with each
    group's own MASE scale, and the baselines' MAE/RMSE on the group's compared rows."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    labels = group_labels(groups, len(y_true))
    rows = []
    for group in sorted(set(labels.tolist())):
        mask = labels == group
        part = _subset(baselines, mask)
        m = forecast_metrics(y_true[mask], y_pred[mask], part, (scales or {}).get(group))
        base = baseline_metrics(y_true[mask], part)
        rows.append({
            "group": group, **m,
            **{f"baseline_{name}_{k}": base[name][k] for name in BASELINES for k in ("mae", "rmse")},
        })
    return pl.DataFrame(rows, infer_schema_length=None)


def group_scales(
    y_train: np.ndarray, seasonal_naive_train: np.ndarray | None, groups: np.ndarray | None,
) -> dict[str, Any]:
    """MASE scales from the training split: {"overall": float, "by_group": {label: float}}."""
    labels = group_labels(groups, len(y_train))
    y = np.asarray(y_train, float)
    snaive = None if seasonal_naive_train is None else np.asarray(seasonal_naive_train, float)
    return {
        "overall": mase_scale(y, snaive),
        "by_group": {
            g: mase_scale(y[labels == g], None if snaive is None else snaive[labels == g])
            for g in sorted(set(labels.tolist()))
        },
    }


def prefixed(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    return {f"{prefix}_{k}": v for k, v in metrics.items() if k in METRICS}


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_key(label: Any) -> str:
    """A key MLflow metric names and file systems accept: ASCII letters, digits and `._-`.
    Labels already like that are kept; any other gets a 6-hex hash of the original appended, so
    "R&D <1>" and "R&D (1)" stay apart. Reversed through `group_key_table`."""
    label = str(label)
    ascii_label = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    key = _UNSAFE.sub("_", ascii_label).strip("_") or "group"
    return key if key == label else f"{key}_{hashlib.sha1(label.encode()).hexdigest()[:6]}"


def group_key_table(labels: list[Any]) -> pl.DataFrame:
    """The reversible mapping label -> key (logged as tables/group_keys.csv)."""
    unique = sorted({str(label) for label in labels})
    keys = [safe_key(label) for label in unique]
    return pl.DataFrame({"group": unique, "key": keys}, schema={"group": pl.String, "key": pl.String})
