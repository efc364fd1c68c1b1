"""Logging a trained candidate to MLflow: everything needed to reproduce and compare it."""

from __future__ import annotations

import json
import math
import os
import tempfile
from typing import TYPE_CHECKING, Any

import dagster as dg
import polars as pl

from mlops_assets.core.metrics import group_key_table, prefixed, safe_key
from mlops_assets.core.provenance import code_version, environment, pip_requirements
from mlops_assets.core.training_config import TrainingConfig

if TYPE_CHECKING:
    from mlops_assets.core.models.data import ModelData


def log_table(frame: pl.DataFrame, name: str) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, name)
        frame.write_csv(path)
        mlflow.log_artifact(path, artifact_path="tables")


def log_png(png: bytes, name: str) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, name)
        with open(path, "wb") as fh:
            fh.write(png)
        mlflow.log_artifact(path, artifact_path="plots")


def recorded_data_versions(context: dg.AssetExecutionContext, names: tuple[str, ...]) -> dict[str, str]:
    """The data version each input was stored with (`splits` records the content hash of every
    split), so a run's provenance needs no pass over a lazily read training split."""
    versions = {}
    for name in names:
        event = context.instance.get_latest_materialization_event(dg.AssetKey(name))
        version = event.asset_materialization.tags.get("dagster/data_version") if event and event.asset_materialization else None
        if not version:
            raise dg.Failure(f"{name} has no recorded data version: materialize it (and `splits`) again")
        versions[name] = version
    return versions


def run_provenance(config: TrainingConfig, data_versions: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(params, tags) every run records: seed, profile, data and code versions, environment."""
    params = {"seed": config.seed, "profile": config.profile, **{f"data_version.{k}": v for k, v in data_versions.items()}}
    tags = {"code_version": code_version(), **{f"env.{k}": v for k, v in environment().items()}}
    return params, tags


def log_model(forecaster: Any, data: ModelData, seed: int = 0) -> Any:
    """Log the forecaster as a pyfunc with signature and input example; returns ModelInfo. This
    is the one place models are logged (candidates and the fair model): a grouped model is
    logged with its group fallback (`core/models/fallback.py`), and the groups it knows and the
    fallback's rule are recorded in the run."""
    import joblib
    import mlflow
    from mlflow.models import infer_signature

    from mlops_assets.core.models.fallback import GroupRouter, with_group_fallback
    from mlops_assets.core.pyfunc_model import PIP_PACKAGES, ForecastModel

    forecaster = with_group_fallback(forecaster, data, seed)
    if isinstance(forecaster, GroupRouter):
        mlflow.log_dict(_fallback_record(forecaster), "group_fallback.json")
        mlflow.set_tags({"group_fallback": "true", "known_groups": str(len(forecaster.known))})
    example = data.test.X.head(48).reset_index(drop=True)
    signature = infer_signature(example, forecaster.predict(example))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "forecaster.joblib")
        joblib.dump(forecaster, path)
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=ForecastModel(),
            artifacts={"forecaster": path},
            signature=signature,
            input_example=example.head(5),
            pip_requirements=pip_requirements(PIP_PACKAGES),
        )


def _fallback_record(router: Any) -> dict[str, Any]:
    from mlops_assets.core.models.fallback import KNOWN_MIN_HOURS

    return {
        "known_groups": list(router.known), "known_min_rows": router.min_rows,
        "rule": f"a group is known with at least {KNOWN_MIN_HOURS:g} h of rows ({router.min_rows} rows) in the rows the model was fitted on; other groups are served by the fallback",
        "fallback": router.fallback.fit_info,
    }


GROUP_METRICS = ("rmse", "mae", "mape", "mase", "skill")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def evaluation_metrics(evaluation: dict[str, Any]) -> dict[str, float]:
    """The MLflow metrics of an evaluation: validation and test metrics, the test skill against
    the day before, both baselines on the same test rows, and per group (label via `safe_key`)."""
    test = evaluation["test"]
    metrics = {**prefixed(evaluation["validation"], "validation"), **prefixed(test, "test")}
    metrics.update(test_skill_day_before=test.get("skill_day_before"), test_baseline_rows=test.get("baseline_rows"))
    for name, m in evaluation.get("test_comparison", {}).items():
        if name != "model":
            metrics.update({f"baseline_{name}_{k}": m.get(k) for k in ("mae", "rmse", "mase")})
    for row in evaluation["test_by_group"].iter_rows(named=True):
        metrics.update({f"test_group_{m}/{safe_key(row['group'])}": row.get(m) for m in GROUP_METRICS})
    return {k: float(v) for k, v in metrics.items() if _finite(v)}


def log_candidate(
    *, kind: str, forecaster: Any, data: ModelData, evaluation: dict[str, Any], params: dict[str, Any],
    extra: dict[str, Any], search_table: pl.DataFrame | None, config: TrainingConfig, data_versions: dict[str, str],
    fit_seconds: float,
) -> Any:
    """Inside an active MLflow run: params, CV, metrics overall, per group and against the
    baselines, the group-key mapping, and the model. `forecaster` is the model logged (the refit
    on train + validation); the validation metrics come from its train-only fit."""
    import mlflow

    from mlops_assets.core.models.evaluation import baseline_table

    base_params, tags = run_provenance(config, data_versions)
    fitted_on = getattr(forecaster, "fit_info", {}).get("fitted_on", "train")
    mlflow.set_tags({**tags, "model_kind": kind, "fitted_on": fitted_on})
    mlflow.log_params({**base_params, **{f"hp.{k}": v for k, v in params.items()}, "features": len(data.feature_columns), "max_train_rows": config.max_train_rows})
    features = {"feature_columns": data.feature_columns, "categorical": data.categorical, "temperature": data.temperature}
    mlflow.log_dict(features, "features.json")
    metrics = {
        **evaluation_metrics(evaluation), "fit_seconds": fit_seconds, "train_rows": len(data.train),
        "train_rows_available": data.train_rows_available,
    }
    metrics.update({k: float(v) for k, v in extra.items() if _finite(v)})
    if search_table is not None:
        best = search_table.row(0, named=True)
        metrics.update({"cv_rmse_mean": best["mean_cv_rmse"], "cv_rmse_std": best["std_cv_rmse"]})
        log_table(search_table, "cv_results.csv")
    mlflow.log_metrics({k: v for k, v in metrics.items() if _finite(v)})
    log_table(evaluation["validation_by_group"], "validation_by_group.csv")
    log_table(evaluation["test_by_group"], "test_by_group.csv")
    labels = [*evaluation["validation_by_group"]["group"].to_list(), *evaluation["test_by_group"]["group"].to_list()]
    log_table(group_key_table(labels), "group_keys.csv")
    if evaluation.get("test_comparison"):
        log_table(baseline_table(evaluation["test_comparison"], kind), "test_vs_baselines.csv")
    details = {**extra, "fit_info": getattr(forecaster, "fit_info", {}), "mase_scales": evaluation.get("mase_scales")}
    mlflow.log_text(json.dumps(details, default=str, indent=1), "training_details.json")
    return log_model(forecaster, data, config.seed)
