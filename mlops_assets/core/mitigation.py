"""Bias mitigation by re-weighting: re-train the candidate with group weights, keep the
result only when it shrinks the largest gap at an acceptable cost in overall error.

The decision is made on the validation split; test figures are reported, never used to choose."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlops_assets.core.fairness import BiasConfig, bias_report, group_weights
from mlops_assets.core.metrics import regression_metrics
from mlops_assets.core.models.data import ModelData
from mlops_assets.core.training_config import TrainingConfig

SCHEMES = ("balanced", "error_aware")


@dataclass
class Variant:
    name: str
    forecaster: Any
    validation: dict[str, Any]  # bias report on validation
    test: dict[str, Any]  # bias report on test
    validation_mae: float
    test_mae: float


def retrain_weighted(forecaster: Any, data: ModelData, weights: np.ndarray, config: TrainingConfig) -> Any:
    from mlops_assets.core.models.sequence import train_lstm
    from mlops_assets.core.models.tabular import refit_with_weights

    if forecaster.kind == "lstm":
        return train_lstm(data, config, sample_weight=weights)[0]
    return refit_with_weights(forecaster, data, weights, config)


def score_variant(name: str, forecaster: Any, data: ModelData, bias: BiasConfig, expected: list[str]) -> Variant:
    val_pred = forecaster.predict(data.validation.X)
    test_pred = forecaster.predict(data.test.X)
    return Variant(
        name=name,
        forecaster=forecaster,
        validation=bias_report(data.validation.y, val_pred, data.validation.groups, bias, expected),
        test=bias_report(data.test.y, test_pred, data.test.groups, bias, expected),
        validation_mae=regression_metrics(data.validation.y, val_pred)["mae"],
        test_mae=regression_metrics(data.test.y, test_pred)["mae"],
    )


def relative_errors(report: dict[str, Any]) -> dict[str, float]:
    return {r["group"]: r["nmae"] for r in report["groups"] if r.get("nmae") is not None}


def mitigate(candidate: Any, data: ModelData, config: TrainingConfig, bias: BiasConfig, tolerance: float, expected: list[str]) -> tuple[Variant, list[Variant], str]:
    """(chosen variant, all variants incl. the candidate, reason)."""
    base = score_variant("candidate", candidate, data, bias, expected)
    variants = [base]
    for scheme in SCHEMES:
        weights = group_weights(data.train.groups, scheme, relative_errors(base.validation))
        variants.append(score_variant(scheme, retrain_weighted(candidate, data, weights, config), data, bias, expected))
    acceptable = [
        v for v in variants[1:]
        if v.validation["largest_abs_gap"] < base.validation["largest_abs_gap"] and v.validation_mae <= base.validation_mae * (1 + tolerance)
    ]
    if not acceptable:
        return base, variants, (
            f"kept the candidate: no re-weighting shrank the largest validation gap "
            f"({base.validation['largest_abs_gap']:.4g}) within the {tolerance:.0%} overall-MAE tolerance"
        )
    best = min(acceptable, key=lambda v: v.validation["largest_abs_gap"])
    return best, variants, (
        f"{best.name} weights: largest validation gap {base.validation['largest_abs_gap']:.4g} -> "
        f"{best.validation['largest_abs_gap']:.4g}, validation MAE {base.validation_mae:.4g} -> {best.validation_mae:.4g} "
        f"(tolerance {tolerance:.0%})"
    )
