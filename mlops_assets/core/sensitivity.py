"""How much each searched hyperparameter moves the cross-validated score."""

from __future__ import annotations

import numpy as np
import polars as pl


def sensitivity_table(cv_results: pl.DataFrame, model: str) -> pl.DataFrame:
    """Per hyperparameter: Spearman correlation with mean CV RMSE, and the spread of mean CV
    RMSE between the best and worst third of the values tried (the effect size)."""
    from scipy import stats

    rows = []
    score = cv_results.get_column("mean_cv_rmse").to_numpy()
    for col in [c for c in cv_results.columns if c.startswith("param_")]:
        values = cv_results.get_column(col)
        if not values.dtype.is_numeric():
            continue
        x = values.to_numpy().astype(float)
        distinct = len(np.unique(x))
        rho = float(stats.spearmanr(x, score).statistic) if distinct > 1 and len(x) > 2 else float("nan")
        order = np.argsort(x)
        thirds = [chunk for chunk in np.array_split(score[order], 3) if chunk.size]
        effect = float(max(c.mean() for c in thirds) - min(c.mean() for c in thirds)) if len(thirds) > 1 else 0.0
        rows.append(
            {
                "model": model,
                "hyperparameter": col.removeprefix("param_"),
                "tried": len(x),
                "distinct_values": distinct,
                "spearman_rho": rho,
                "cv_rmse_spread": effect,
                "best_value": float(x[int(np.argmin(score))]),
            }
        )
    return pl.DataFrame(rows)
