"""Training: three candidate model families, the chosen candidate, and hyperparameter sensitivity."""


import time
from typing import Any

import dagster as dg
import polars as pl

from mlops_assets.core.metrics import METRICS
from mlops_assets.core.plots import sensitivity_plot
from mlops_assets.core.sensitivity import sensitivity_table
from mlops_assets.defs.metadata import counts, png_markdown, table_metadata
from mlops_assets.defs.training.tracking import log_candidate, log_datasets, log_png, log_table, recorded_data_versions, run_provenance
from mlops_assets.resources.dataset import DatasetSpecResource
from mlops_assets.resources.tracking import MlflowTracking
from mlops_assets.resources.training import TrainingSettings

SPLITS = ("train_set", "validation_set", "test_set")


def _train(kind: str, context, splits: dict[str, pl.DataFrame | pl.LazyFrame], dataset, training, mlflow_tracking) -> dg.Output:
    """Train, evaluate and log one candidate; freed memory is handed back to the OS before and
    after (it matters when every step shares one process: see core/models/memory.py)."""
    from mlops_assets.core.models.memory import release_memory

    release_memory()
    try:
        return _train_and_log(kind, context, splits, dataset, training, mlflow_tracking)
    finally:
        release_memory()


def _train_and_log(kind: str, context, splits: dict[str, pl.DataFrame | pl.LazyFrame], dataset, training, mlflow_tracking) -> dg.Output:
    """Fit on train (search, early stopping on validation), score validation with that fit (what
    selection uses), refit the chosen hyperparameters on train + validation, score test with the
    refit (what is logged and registered), next to both baselines on the same test rows."""
    from mlops_assets.core.models.data import model_data
    from mlops_assets.core.models.evaluation import baseline_table, evaluate

    spec, config = dataset.load(), training.load()
    data = model_data(splits["train_set"], splits["validation_set"], splits["test_set"], spec, config.max_train_rows)
    versions = recorded_data_versions(context, SPLITS)
    asset = f"{kind}_model"
    # A nested run of the training's MLflow run that ends when the training ends: its duration is the training time.
    with mlflow_tracking.start_run(context, asset, run_name=f"{kind}-{context.run_id[:8]}") as run:
        log_datasets(context, versions, mlflow_tracking.dagster_ui_url)
        started = time.perf_counter()
        forecaster, final, search, params, extra = _fit(kind, data, config)
        fit_seconds = time.perf_counter() - started
        mlflow_tracking.training_ended(run)
        evaluation = evaluate(forecaster, data, final=final)
        info = log_candidate(
            kind=kind, forecaster=final, data=data, evaluation=evaluation, params=params, extra=extra,
            search_table=search.cv_results if search else None, config=config, data_versions=versions, fit_seconds=fit_seconds,
        )
    summary = {
        "kind": kind,
        "run_id": run.info.run_id,
        "model_uri": info.model_uri,
        "params": params,
        "metrics": {"validation": evaluation["validation"], "test": evaluation["test"]},
        "test_by_group": evaluation["test_by_group"].to_dicts(),
        "test_comparison": evaluation["test_comparison"],
        "mase_scales": evaluation["mase_scales"],
        "fit_info": final.fit_info,
        "search": search.cv_results.to_dicts() if search else [],
        "searched": sorted((config.xgboost_space if kind == "xgboost" else config.linear_space).keys()) if search else [],
        "data_versions": versions,
        "fit_seconds": fit_seconds,
        "train_rows": len(data.train),
        "seed": config.seed,
        "profile": config.profile,
    }
    return dg.Output(
        summary,
        metadata={
            "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(run.info.run_id)),
            "model_uri": info.model_uri,
            # Headline numbers to plot over time; every metric of both splits is in `metrics`.
            **counts({f"validation_{config.selection_metric}": evaluation["validation"].get(config.selection_metric)}),
            **counts({f"test_{k}": evaluation["test"].get(k) for k in HEADLINE_METRICS}),
            "metrics": table_metadata(_metrics_table(evaluation)),
            "fit_seconds": round(fit_seconds, 2),
            "train_rows": len(data.train),
            "train_rows_available": data.train_rows_available,
            "max_train_rows": str(config.max_train_rows),
            "params": dg.MetadataValue.json(params),
            "test_by_group": table_metadata(evaluation["test_by_group"]),
            "test_vs_baselines": table_metadata(baseline_table(evaluation["test_comparison"], kind)),
            "fitted_on": f"train + validation ({final.fit_info['rows']} rows); validation metrics: the train-only fit",
        },
    )


# The test metrics shown as single numbers on a candidate (the rest are in its `metrics` table).
HEADLINE_METRICS = ("mae", "rmse", "mape", "skill")


def _metrics_table(evaluation: dict) -> pl.DataFrame:
    """One row per split (validation: the train-only fit; test: the refit), one column per metric."""
    return pl.DataFrame(
        [{"split": split, **{m: evaluation[split].get(m) for m in METRICS}} for split in ("validation", "test")],
        schema={"split": pl.String, **{m: pl.Float64 for m in METRICS}},
    )


def _fit(kind: str, data, config) -> tuple[Any, Any, Any, dict[str, Any], dict[str, Any]]:
    """The training: (train-only fit, refit on train + validation, search or None, params,
    extra), both fits wrapped with their group fallback (scored as served: rows of groups a fit
    does not know go to the fallback)."""
    from mlops_assets.core.models.evaluation import refit
    from mlops_assets.core.models.fallback import with_group_fallback
    from mlops_assets.core.models.sequence import train_lstm
    from mlops_assets.core.models.tabular import train_linear, train_xgboost

    search = None
    if kind == "lstm":
        forecaster, extra = train_lstm(data, config)
        params = {
            "window_hours": config.lstm_window_hours, "window_steps": forecaster.window, "units": config.lstm_units,
            "epochs": config.lstm_epochs, "best_epoch": extra["best_epoch"], "batch_size": config.lstm_batch_size,
        }
    else:
        forecaster, search, extra = (train_xgboost if kind == "xgboost" else train_linear)(data, config)
        params = search.best_params
    final = refit(forecaster, data, config)
    extra = {**extra, "refit_rows": final.fit_info["rows"], "degree_day_balance": _balance(final)}
    # The train-only fit only scores validation: its fallback is fitted only if a validation row needs it.
    forecaster, final = with_group_fallback(forecaster, data, config.seed, serves=data.validation), with_group_fallback(final, data, config.seed)
    return forecaster, final, search, params, extra


def _balance(forecaster) -> float | None:
    """The degree-day balance temperature the final model learned (None without temperature)."""
    prep = forecaster.prep if forecaster.kind == "lstm" else forecaster.pipeline.named_steps["prep"]
    return getattr(prep, "balance_", None)


# The training split is scanned, not read: only the newest `max_train_rows` hours are loaded.
_COMMON = dict(group_name="training", ins={name: dg.AssetIn(name, metadata={"lazy": name == "train_set"}) for name in SPLITS})


@dg.asset(kinds={"xgboost", "mlflow"}, **_COMMON)
def xgboost_model(context: dg.AssetExecutionContext, dataset: DatasetSpecResource, training: TrainingSettings, mlflow_tracking: MlflowTracking, **splits):
    """Gradient-boosted trees (`hist`): randomized search over learning rate, trees, depth,
    child weight and L1/L2 with time-series CV on train, a train fit with early stopping on
    validation (its validation metrics select the candidate), then the logged model: refit on
    train + validation with n_estimators = best iteration + 1. Test metrics are the refit's,
    next to seasonal naive and day-before on the same rows. Degree days when the spec names a
    temperature column; missing values stay NaN (native)."""
    return _train("xgboost", context, splits, dataset, training, mlflow_tracking)


@dg.asset(kinds={"scikitlearn", "mlflow"}, **_COMMON)
def linear_model(context: dg.AssetExecutionContext, dataset: DatasetSpecResource, training: TrainingSettings, mlflow_tracking: MlflowTracking, **splits):
    """Ridge regression: groups one-hot encoded, one-hot time-of-day slot (also on days off) and
    day of week for daily and weekly shapes, degree days, numerics imputed (training medians) and
    scaled; alpha chosen by randomized search with time-series CV on train (validation metrics of
    that train fit select the candidate); the logged model is refit on train + validation with
    that alpha, and its test metrics are reported next to both baselines on the same rows."""
    return _train("linear", context, splits, dataset, training, mlflow_tracking)


@dg.asset(kinds={"keras", "mlflow"}, **_COMMON)
def lstm_model(context: dg.AssetExecutionContext, dataset: DatasetSpecResource, training: TrainingSettings, mlflow_tracking: MlflowTracking, **splits):
    """Keras 3 LSTM (JAX) over per-group windows of `lstm_window_hours` (converted to steps of
    the data's frequency); the same calendar features as the others plus degree days; inputs
    imputed and scaled; Huber loss; early stopping on validation chooses the epochs (validation
    metrics of that train fit select the candidate); the logged model is trained afresh on
    train + validation for those epochs, and its test metrics are reported with the baselines."""
    return _train("lstm", context, splits, dataset, training, mlflow_tracking)


# Test figures on the rows that have both baselines, shown next to each candidate.
COMPARED_METRICS = ("skill_day_before", "compared_mae", "seasonal_naive_mae", "day_before_mae")


def _metric_better(metric: str, a: float, b: float) -> bool:
    return a > b if metric == "r2" else a < b


@dg.asset(group_name="training", kinds={"mlflow"})
def candidate_model(context: dg.AssetExecutionContext, xgboost_model: dict, linear_model: dict, lstm_model: dict, training: TrainingSettings):
    """The candidate with the best validation score (metric from the training config; validation
    scores come from the train-only fits). The comparison shows every candidate's test metrics
    (of its refit on train + validation) next to seasonal naive and day-before on the same rows."""
    metric = training.load().selection_metric
    candidates = [xgboost_model, linear_model, lstm_model]
    usable = [c for c in candidates if c["metrics"]["validation"][metric] == c["metrics"]["validation"][metric]]
    if not usable:
        raise dg.Failure(f"no candidate has a validation {metric}: every one is NaN")
    best = usable[0]
    for cand in usable[1:]:
        if _metric_better(metric, cand["metrics"]["validation"][metric], best["metrics"]["validation"][metric]):
            best = cand
    table = pl.DataFrame(
        [
            {
                "model": c["kind"], **{f"val_{m}": c["metrics"]["validation"].get(m) for m in METRICS},
                **{f"test_{m}": c["metrics"]["test"].get(m) for m in METRICS},
                **{f"test_{k}": c["metrics"]["test"].get(k) for k in COMPARED_METRICS},
                "fit_seconds": c["fit_seconds"], "chosen": c is best,
            }
            for c in candidates
        ],
        infer_schema_length=None,
    )
    return dg.Output(
        {**best, "selection_metric": metric, "comparison": table.to_dicts()},
        metadata={
            "chosen": best["kind"],
            "selection_metric": f"validation {metric}",
            "comparison": table_metadata(table),
            "model_uri": best["model_uri"],
        },
    )


@dg.asset(group_name="training", kinds={"mlflow"})
def hyperparameter_sensitivity(context: dg.AssetExecutionContext, xgboost_model: dict, linear_model: dict, training: TrainingSettings, mlflow_tracking: MlflowTracking):
    """For each searched hyperparameter: how the mean CV RMSE moves with it (rank correlation
    and spread between its best and worst third), with one scatter panel per parameter."""
    config = training.load()
    results = {m["kind"]: pl.DataFrame(m["search"]) for m in (xgboost_model, linear_model) if m["search"]}
    table = pl.concat([sensitivity_table(frame, kind) for kind, frame in results.items()], how="diagonal_relaxed")
    log_params = {k for space in (config.xgboost_space, config.linear_space) for k, v in space.items() if isinstance(v, dict) and v.get("log")}
    png = sensitivity_plot(results, log_params)
    with mlflow_tracking.start_run(context, "hyperparameter_sensitivity") as run:
        import mlflow

        params, tags = run_provenance(config, xgboost_model["data_versions"])
        mlflow.set_tags(tags)
        mlflow.log_params(params)
        log_table(table, "hyperparameter_sensitivity.csv")
        log_png(png, "hyperparameter_sensitivity.png")
    return dg.Output(
        {"table": table.to_dicts(), "mlflow_run_id": run.info.run_id},
        metadata={
            "sensitivity": table_metadata(table),
            "plot": png_markdown(png, "CV RMSE against each hyperparameter"),
            "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(run.info.run_id)),
        },
    )
