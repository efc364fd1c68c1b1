"""Bias mitigation by re-weighting: re-train the candidate with group weights, keep the
result only when it shrinks the largest gap at an acceptable cost in overall error.

The decision is made on the validation split with train-only fits of the candidate's
hyperparameters (the candidate's own train-only fit included), so no variant has seen the rows
it is judged on. A chosen re-weighted variant is then refitted on train + validation, like every
registered model; a kept candidate is returned as it came (already refitted by training). Test
figures are reported, never used to choose: those of the chosen variant are its final model's,
the others' their train-only fits'."""

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
    forecaster: Any  # the model that would be registered (chosen variant) or its train-only fit
    validation: dict[str, Any]  # bias report on validation (train-only fit)
    test: dict[str, Any]  # bias report on test (of `forecaster`)
    validation_mae: float
    test_mae: float
    train_only: Any = None  # the train-only fit the validation figures come from


def fitted_on_train_only(forecaster: Any) -> bool:
    return getattr(forecaster, "fit_info", {}).get("fitted_on", "train") == "train"


def retrain_weighted(forecaster: Any, data: ModelData, weights: np.ndarray | None, config: TrainingConfig) -> Any:
    """`forecaster`'s hyperparameters fitted on the training split with per-row weights."""
    from mlops_assets.core.models.sequence import train_lstm
    from mlops_assets.core.models.tabular import refit_with_weights

    if forecaster.kind == "lstm":
        return train_lstm(data, config, sample_weight=weights)[0]
    return refit_with_weights(forecaster, data, weights, config)


def _test_report(variant: Variant, forecaster: Any, data: ModelData, bias: BiasConfig, expected: list[str]) -> None:
    pred = forecaster.predict(data.test.X)
    variant.forecaster = forecaster
    variant.test = bias_report(data.test.y, pred, data.test.groups, bias, expected)
    variant.test_mae = regression_metrics(data.test.y, pred)["mae"]


def score_variant(name: str, forecaster: Any, data: ModelData, bias: BiasConfig, expected: list[str]) -> Variant:
    val_pred = forecaster.predict(data.validation.X)
    validation = bias_report(data.validation.y, val_pred, data.validation.groups, bias, expected)
    variant = Variant(
        name=name, forecaster=forecaster, validation=validation, test={},
        validation_mae=regression_metrics(data.validation.y, val_pred)["mae"], test_mae=float("nan"), train_only=forecaster,
    )
    _test_report(variant, forecaster, data, bias, expected)
    return variant


def relative_errors(report: dict[str, Any]) -> dict[str, float]:
    return {r["group"]: r["nmae"] for r in report["groups"] if r.get("nmae") is not None}


def mitigate(candidate: Any, data: ModelData, config: TrainingConfig, bias: BiasConfig, tolerance: float, expected: list[str]) -> tuple[Variant, list[Variant], str]:
    """(chosen variant, all variants incl. the candidate, reason)."""
    from mlops_assets.core.models.evaluation import refit

    train_only = candidate if fitted_on_train_only(candidate) else retrain_weighted(candidate, data, None, config)
    base = score_variant("candidate", train_only, data, bias, expected)
    variants = [base]
    errors = relative_errors(base.validation)
    for scheme in SCHEMES:
        weights = group_weights(data.train.groups, scheme, errors)
        variants.append(score_variant(scheme, retrain_weighted(candidate, data, weights, config), data, bias, expected))
    acceptable = [
        v for v in variants[1:]
        if v.validation["largest_abs_gap"] < base.validation["largest_abs_gap"] and v.validation_mae <= base.validation_mae * (1 + tolerance)
    ]
    if not acceptable:
        _test_report(base, candidate, data, bias, expected)
        return base, variants, (
            f"kept the candidate: no re-weighting shrank the largest validation gap "
            f"({base.validation['largest_abs_gap']:.4g}) within the {tolerance:.0%} overall-MAE tolerance"
        )
    best = min(acceptable, key=lambda v: v.validation["largest_abs_gap"])
    if not fitted_on_train_only(candidate):
        groups = data.train_and_validation().groups
        final = refit(best.train_only, data, config, group_weights(groups, best.name, errors))
        _test_report(best, final, data, bias, expected)
    return best, variants, (
        f"{best.name} weights: largest validation gap {base.validation['largest_abs_gap']:.4g} -> "
        f"{best.validation['largest_abs_gap']:.4g}, validation MAE {base.validation_mae:.4g} -> {best.validation_mae:.4g} "
        f"(tolerance {tolerance:.0%})"
    )
