"""Randomized hyperparameter search with time-ordered cross-validation folds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy import stats


@dataclass
class SearchResult:
    best_params: dict[str, Any]
    best_cv_rmse: float
    cv_results: pl.DataFrame  # one row per candidate: param_<name> columns, mean/std CV RMSE, rank


def time_folds(timestamps: np.ndarray, n_splits: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds on distinct timestamps (TimeSeriesSplit semantics), so all
    groups' rows of one hour fall in the same fold and validation is always later."""
    from sklearn.model_selection import TimeSeriesSplit

    unique = np.unique(timestamps)
    if len(unique) < n_splits + 1:
        raise ValueError(f"{len(unique)} distinct timestamps cannot make {n_splits} time-series folds")
    folds = []
    for train_idx, test_idx in TimeSeriesSplit(n_splits=n_splits).split(unique):
        cut, end = unique[test_idx[0]], unique[test_idx[-1]]
        folds.append((np.flatnonzero(timestamps < cut), np.flatnonzero((timestamps >= cut) & (timestamps <= end))))
    return folds


def distributions(space: dict[str, Any]) -> dict[str, Any]:
    """Config → scipy distributions: a list is a choice; {low, high, log} a continuous range."""
    out = {}
    for name, spec in space.items():
        if isinstance(spec, list):
            out[name] = spec
        elif isinstance(spec, dict) and {"low", "high"} <= set(spec):
            lo, hi = float(spec["low"]), float(spec["high"])
            out[name] = stats.loguniform(lo, hi) if spec.get("log") else stats.uniform(lo, hi - lo)
        else:
            raise ValueError(f"search space entry {name!r} must be a list or {{low, high[, log]}}, not {spec!r}")
    return out


def randomized_search(
    estimator, space: dict[str, Any], X, y: np.ndarray, timestamps: np.ndarray, *, n_iter: int, n_splits: int, seed: int, prefix: str,
    parallel_fits: int = 1,
) -> SearchResult:
    """Search `space` (keys without `prefix`, the pipeline step name) scored by RMSE.

    `parallel_fits` fits run at once, as threads of this process: XGBoost and the linear
    algebra release the GIL, nothing is copied to worker processes, and each fit keeps to one
    thread of its own (BLAS and OpenMP pools limited to 1), so the cores are not oversubscribed."""
    from joblib import parallel_backend
    from sklearn.model_selection import RandomizedSearchCV
    from threadpoolctl import threadpool_limits

    search = RandomizedSearchCV(
        estimator,
        {f"{prefix}__{k}": v for k, v in distributions(space).items()},
        n_iter=n_iter,
        cv=time_folds(timestamps, n_splits),
        scoring="neg_root_mean_squared_error",
        random_state=seed,
        refit=False,
        n_jobs=parallel_fits,
        error_score="raise",
    )
    if parallel_fits > 1:
        with parallel_backend("threading", n_jobs=parallel_fits), threadpool_limits(1):
            search.fit(X, y)
    else:
        search.fit(X, y)
    res = search.cv_results_
    table = pl.DataFrame(
        {
            **{f"param_{k.split('__', 1)[1]}": [float(v) if isinstance(v, (int, float, np.number)) else str(v) for v in res[f"param_{k}"]] for k in search.param_distributions},
            "mean_cv_rmse": -res["mean_test_score"],
            "std_cv_rmse": res["std_test_score"],
            "rank": res["rank_test_score"],
        }
    )
    best = {k.split("__", 1)[1]: _plain(v) for k, v in search.best_params_.items()}
    return SearchResult(best_params=best, best_cv_rmse=float(-search.best_score_), cv_results=table.sort("rank"))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
