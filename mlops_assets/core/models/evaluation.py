"""Scoring forecasters on the validation and test splits next to the two baselines, and
refitting the chosen hyperparameters on train + validation.

Selection uses the validation metrics of the train-only fit; the test metrics are those of the
model that is logged and registered, the refit on train + validation (`final`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from mlops_assets.core.metrics import comparison, forecast_metrics, metrics_by_group
from mlops_assets.core.models.data import ModelData, Split
from mlops_assets.core.training_config import TrainingConfig


def score_split(
    forecaster: Any, split: Split, scales: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], pl.DataFrame, np.ndarray]:
    """(overall metrics, metrics by group, predictions); MASE scaled by `scales` from training."""
    scales = scales or {}
    predictions = np.asarray(forecaster.predict(split.X), dtype=float)
    overall = forecast_metrics(split.y, predictions, split.baselines, scales.get("overall"))
    by_group = metrics_by_group(split.y, predictions, split.groups, split.baselines, scales.get("by_group"))
    return overall, by_group, predictions


def evaluate(forecaster: Any, data: ModelData, final: Any = None) -> dict[str, Any]:
    """Validation metrics of `forecaster` (the train-only fit), test metrics of `final` (the
    refit on train + validation; `forecaster` itself when None), and the baselines on the same
    test rows."""
    scales = data.mase_scales()
    val, val_groups, val_pred = score_split(forecaster, data.validation, scales)
    test, test_groups, test_pred = score_split(final if final is not None else forecaster, data.test, scales)
    compared = comparison(data.test.y, test_pred, data.test.baselines, scales.get("overall"))
    return {
        "validation": val, "test": test, "validation_by_group": val_groups, "test_by_group": test_groups,
        "validation_predictions": val_pred, "test_predictions": test_pred, "test_comparison": compared, "mase_scales": scales,
    }


def calibrate_intervals(data: ModelData, validation_predictions: np.ndarray, config: TrainingConfig) -> Any:
    """The interval calibrator of a model (core/intervals.py): its train-only fit's errors on
    the validation split, scaled by each row's level of target lags, per group."""
    from mlops_assets.core.intervals import fit_calibrator
    from mlops_assets.core.models.fallback import ColumnRoles

    return fit_calibrator(
        data.validation.y, validation_predictions, data.validation.X, level=config.interval_level, group=data.group,
        scale_columns=ColumnRoles.of(data).level, window=config.interval_window, gamma=config.interval_gamma,
    )


def refit(forecaster: Any, data: ModelData, config: TrainingConfig, weights: np.ndarray | None = None) -> Any:
    """The registered model: `forecaster`'s hyperparameters fitted on train + validation."""
    if forecaster.kind == "lstm":
        from mlops_assets.core.models.sequence import refit_lstm

        return refit_lstm(forecaster, data, config, weights)
    from mlops_assets.core.models.tabular import refit_tabular

    return refit_tabular(forecaster, data, weights)


def baseline_table(compared: dict[str, dict[str, Any]], model: str = "model") -> pl.DataFrame:
    """Model vs seasonal naive vs day-before on the same rows (`comparison`): MAE, RMSE, MASE, skill."""
    cols = ("mae", "rmse", "mase", "skill", "n")
    rows = [{"forecast": model if name == "model" else name, **{k: m.get(k) for k in cols}} for name, m in compared.items()]
    schema = {"forecast": pl.String, **{k: pl.Float64 for k in cols[:-1]}, "n": pl.Int64}
    return pl.DataFrame(rows, schema=schema)
