"""Scoring a fitted forecaster on the validation and test splits."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from mlops_assets.core.metrics import metrics_by_group, regression_metrics
from mlops_assets.core.models.data import ModelData, Split


def score_split(forecaster: Any, split: Split) -> tuple[dict[str, float], pl.DataFrame, np.ndarray]:
    predictions = np.asarray(forecaster.predict(split.X), dtype=float)
    return regression_metrics(split.y, predictions), metrics_by_group(split.y, predictions, split.groups), predictions


def evaluate(forecaster: Any, data: ModelData) -> dict[str, Any]:
    val, val_groups, _ = score_split(forecaster, data.validation)
    test, test_groups, test_pred = score_split(forecaster, data.test)
    return {"validation": val, "test": test, "validation_by_group": val_groups, "test_by_group": test_groups, "test_predictions": test_pred}
