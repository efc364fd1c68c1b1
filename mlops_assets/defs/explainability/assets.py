"""Explainability: SHAP for the model that goes to the registry."""


import time

import dagster as dg
import polars as pl

from mlops_assets.defs.metadata import table_metadata, png_markdown
from mlops_assets.defs.training.tracking import log_png, log_table
from mlops_assets.resources.dataset import DatasetSpecResource
from mlops_assets.resources.tracking import MlflowTracking
from mlops_assets.resources.training import TrainingSettings

MODEL_TO_EXPLAIN = "fair_model"
LSTM_MAX_ROWS = 100  # permutation SHAP costs one forward pass per feature per row


@dg.asset(
    group_name="explainability",
    kinds={"shap", "mlflow"},
    ins={"model": dg.AssetIn(MODEL_TO_EXPLAIN), "test_set": dg.AssetIn(), "train_set": dg.AssetIn()},
)
def shap_summary(context: dg.AssetExecutionContext, model: dict, test_set: pl.DataFrame, train_set: pl.DataFrame, dataset: DatasetSpecResource, training: TrainingSettings, mlflow_tracking: MlflowTracking):
    """SHAP importances of the model headed for the registry, on a seeded sample of the test
    set: a table of mean |SHAP| per feature (categories folded), beeswarm and bar plots, all
    logged to the model's own MLflow run."""
    from mlops_assets.core.explain import explain, summary_plots
    from mlops_assets.core.models.data import to_split
    from mlops_assets.core.pyfunc_model import load_forecaster

    spec, config = dataset.load(), training.load()
    forecaster = load_forecaster(model["model_uri"])
    rows = min(config.shap_sample_rows, LSTM_MAX_ROWS if forecaster.kind == "lstm" else config.shap_sample_rows, test_set.height)
    sample = to_split(test_set.sample(n=rows, seed=config.seed), spec).X
    background = to_split(train_set.sample(n=min(config.shap_background_rows, train_set.height), seed=config.seed), spec).X
    started = time.perf_counter()
    explanation = explain(forecaster, sample, background, [c for c in forecaster.feature_columns if c in (spec.group, *spec.categorical_features)], seed=config.seed)
    seconds = time.perf_counter() - started
    table = explanation.importance()
    beeswarm, bar = summary_plots(explanation)
    # Stored with the model's own run, so the explanation travels with the model version.
    with mlflow_tracking.resume_run(model["run_id"]) as run:
        import mlflow

        mlflow.set_tags({"shap.method": explanation.method, "shap.dagster_run_id": context.run_id})
        mlflow.log_metrics({"shap_seconds": seconds, "shap_sample_rows": rows})
        log_table(table, "shap_importance.csv")
        log_png(beeswarm, "shap_beeswarm.png")
        log_png(bar, "shap_bar.png")
    return dg.Output(
        {"model_uri": model["model_uri"], "kind": forecaster.kind, "method": explanation.method, "rows": rows, "importance": table.to_dicts(), "mlflow_run_id": run.info.run_id},
        metadata={
            "method": explanation.method,
            "sample_rows": rows,
            "seconds": round(seconds, 2),
            "importance": table_metadata(table),
            "beeswarm": png_markdown(beeswarm, "SHAP beeswarm"),
            "bar": png_markdown(bar, "mean |SHAP|"),
            "top_feature": table.get_column("feature")[0],
            "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(model["run_id"])),
        },
    )

