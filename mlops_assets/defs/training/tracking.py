"""Logging a trained candidate to MLflow: everything needed to reproduce and compare it."""

from __future__ import annotations

import functools
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


# The context each split is logged with as an MLflow dataset input.
DATASET_CONTEXTS = {"train_set": "training", "validation_set": "validation", "test_set": "test"}
DAGSTER_SOURCE_TYPE = "dagster_asset"
# polars dtype (as Dagster's column schema spells it) -> MLflow DataType name; others: string.
_MLFLOW_TYPES = (
    ("Float64", "double"), ("Float32", "float"), ("Int64", "long"), ("UInt64", "long"), ("UInt32", "long"),
    ("Int", "integer"), ("UInt", "integer"), ("Boolean", "boolean"), ("Datetime", "datetime"), ("Date", "datetime"),
)


def _mlflow_type(dtype: str) -> str:
    return next((name for prefix, name in _MLFLOW_TYPES if dtype.startswith(prefix)), "string")


@functools.cache
def _dataset_classes() -> tuple[type, type]:
    """(DagsterAssetSource, AssetDataset), defined on first use: mlflow is not imported when the
    code location loads."""
    from mlflow.data.dataset_source import DatasetSource
    from mlflow.data.dataset_source_registry import register_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    class DagsterAssetSource(DatasetSource):
        """A Dagster asset: `dagster://asset/<key>`, where it is stored and its page in the UI."""

        def __init__(self, uri: str, storage_path: str | None = None, dagster_url: str | None = None):
            self.uri, self.storage_path, self.dagster_url = uri, storage_path, dagster_url

        @staticmethod
        def _get_source_type() -> str:
            return DAGSTER_SOURCE_TYPE

        def load(self, dst_path=None) -> str:
            return self.storage_path or self.uri

        @staticmethod
        def _can_resolve(raw_source: Any) -> bool:
            return isinstance(raw_source, str) and raw_source.startswith("dagster://asset/")

        @classmethod
        def _resolve(cls, raw_source: Any) -> "DagsterAssetSource":
            return cls(raw_source)

        def to_dict(self) -> dict[str, Any]:
            return {k: v for k, v in {"uri": self.uri, "storage_path": self.storage_path, "dagster_url": self.dagster_url}.items() if v}

        @classmethod
        def from_dict(cls, source_dict: dict[Any, Any]) -> "DagsterAssetSource":
            return cls(source_dict["uri"], source_dict.get("storage_path"), source_dict.get("dagster_url"))

    class AssetDataset(MetaDataset):
        """A stored split described, not copied: schema, row count and its data version as digest."""

        def __init__(self, source, name: str, digest: str, schema, rows: int | None):
            self._rows = rows
            super().__init__(source, name=name, digest=digest, schema=schema)

        @property
        def profile(self) -> dict[str, int] | None:
            return {"num_rows": self._rows} if self._rows is not None else None

        def to_dict(self) -> dict[str, str]:
            config = super().to_dict()
            if self.profile:
                config["profile"] = json.dumps(self.profile)
            return config

    register_dataset_source(DagsterAssetSource)  # so mlflow.data.get_source() reads it back
    return DagsterAssetSource, AssetDataset


def asset_dataset(name: str, version: str, metadata: dict[str, Any], dagster_ui_url: str = "") -> Any:
    """An MLflow dataset for a stored asset: digest = its Dagster data version, source = the
    asset (`dagster://asset/<key>`, its storage path), schema and rows from its metadata."""
    from mlflow.types import ColSpec, Schema

    source_class, dataset_class = _dataset_classes()
    path = metadata.get("path")
    column_schema = metadata.get("dagster/column_schema")
    rows = metadata.get("dagster/row_count")
    schema = None
    if column_schema is not None and column_schema.value.columns:
        schema = Schema([ColSpec(type=_mlflow_type(str(c.type)), name=c.name) for c in column_schema.value.columns])
    source = source_class(
        f"dagster://asset/{name}", str(path.value) if path is not None else None,
        f"{dagster_ui_url.rstrip('/')}/assets/{name}" if dagster_ui_url else None,
    )
    return dataset_class(source, name=name, digest=version[:36], schema=schema, rows=int(rows.value) if rows is not None else None)


def log_datasets(context: dg.AssetExecutionContext, versions: dict[str, str], dagster_ui_url: str = "") -> None:
    """In the active run: each split it used as a dataset input (`mlflow.log_input`, context
    training/validation/test), described by its latest materialization -- the one whose data
    version `recorded_data_versions` read -- and never copied."""
    import mlflow

    for name, version in versions.items():
        event = context.instance.get_latest_materialization_event(dg.AssetKey(name))
        metadata = dict(event.asset_materialization.metadata) if event and event.asset_materialization else {}
        mlflow.log_input(asset_dataset(name, version, metadata, dagster_ui_url), context=DATASET_CONTEXTS.get(name, name))


def step_started_ms(context: dg.AssetExecutionContext) -> int | None:
    """When this step started (its STEP_START event), in ms; None if not found."""
    records = context.instance.get_records_for_run(context.run_id, of_type=dg.DagsterEventType.STEP_START).records
    times = [r.event_log_entry.timestamp for r in records if r.event_log_entry.step_key == str(context.op_handle)]
    return int(max(times) * 1000) if times else None


def evaluation_run_metrics(result: dict[str, Any]) -> dict[str, float]:
    """`model_evaluation`'s numbers as MLflow metrics: challenger_*, champion_*, the baselines'
    and the paired MAE difference with its interval."""
    parts = {"challenger": result["challenger"]["metrics"], "champion": (result.get("champion") or {}).get("metrics", {})}
    parts.update({f"baseline_{name}": m for name, m in (result.get("baselines") or {}).items()})
    metrics = {"test_rows": result.get("rows")}
    metrics.update({f"{part}_{k}": v for part, values in parts.items() for k, v in values.items()})
    if result.get("paired_difference"):
        diff, low, high = result["paired_difference"]
        metrics.update(mae_difference=diff, mae_difference_ci_low=low, mae_difference_ci_high=high)
    return {k: float(v) for k, v in metrics.items() if _finite(v)}


def log_evaluation_run(mlflow_tracking: Any, context: dg.AssetExecutionContext, result: dict[str, Any], table: pl.DataFrame | None = None) -> str:
    """`model_evaluation` as a nested run of the training run, from the step's start: metrics
    (`evaluation_run_metrics`), the comparison table, the whole result, and the test set as
    its input. Returns the run id."""
    import mlflow

    versions = recorded_data_versions(context, ("test_set",))
    tags = {"compared_champion": result.get("compared_champion") or "none", "challenger_model_uri": result["challenger"]["model_uri"]}
    with mlflow_tracking.start_run(
        context, "model_evaluation", run_name=f"evaluation-{context.run_id[:8]}", tags=tags, started_ms=step_started_ms(context)
    ) as run:
        log_datasets(context, versions, mlflow_tracking.dagster_ui_url)
        mlflow.log_metrics(evaluation_run_metrics(result))
        mlflow.log_text(json.dumps(result, default=str, indent=1), "evaluation.json")
        if table is not None:
            log_table(table, "comparison.csv")
    return run.info.run_id


def run_provenance(config: TrainingConfig, data_versions: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(params, tags) every run records: seed, profile, data and code versions, environment."""
    params = {"seed": config.seed, "profile": config.profile, **{f"data_version.{k}": v for k, v in data_versions.items()}}
    tags = {"code_version": code_version(), **{f"env.{k}": v for k, v in environment().items()}}
    return params, tags


def log_model(forecaster: Any, data: ModelData, seed: int = 0, intervals: Any = None) -> Any:
    """Log the forecaster as a pyfunc with signature and input example; returns ModelInfo. This
    is the one place models are logged (candidates and the fair model): a grouped model is
    logged with its group fallback (`core/models/fallback.py`), and the groups it knows and the
    fallback's rule are recorded in the run. `intervals` (core/intervals.py) travels with the
    model: `core.pyfunc_model.predict_interval` reads it."""
    import joblib
    import mlflow
    from mlflow.models import infer_signature

    from mlops_assets.core.models.fallback import GroupRouter, with_group_fallback
    from mlops_assets.core.pyfunc_model import PIP_PACKAGES, ForecastModel

    forecaster = with_group_fallback(forecaster, data, seed)
    if intervals is not None:
        forecaster.interval_calibrator = intervals
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
    fit_seconds: float, calibration_predictions: Any = None,
) -> Any:
    """Inside an active MLflow run: params, CV, metrics overall, per group and against the
    baselines, the group-key mapping, the prediction intervals' test coverage, and the model.
    `forecaster` is the model logged (the refit on train + validation); the validation metrics
    come from its train-only fit, and so do the validation forecasts its intervals are
    calibrated on (`calibration_predictions`, default the evaluation's)."""
    import mlflow

    from mlops_assets.core.models.evaluation import baseline_table, calibrate_intervals

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
    predictions = evaluation["validation_predictions"] if calibration_predictions is None else calibration_predictions
    intervals = calibrate_intervals(data, predictions, config)
    mlflow.log_metrics(interval_metrics(intervals, evaluation["test_predictions"], data))
    return log_model(forecaster, data, config.seed, intervals)


def interval_metrics(intervals: Any, test_predictions: Any, data: ModelData) -> dict[str, float]:
    """Test coverage, mean width and pinball loss of the calibrated intervals around the
    logged model's test forecasts."""
    from mlops_assets.core.intervals import coverage_report

    lower, upper = intervals.interval(test_predictions, data.test.X)
    report = coverage_report(data.test.y, lower, upper, None, intervals.level, 0)
    names = {"coverage": "test_interval_coverage", "mean_width": "test_interval_width", "pinball_loss": "test_pinball_loss"}
    return {name: float(report[key]) for key, name in names.items() if _finite(report[key])}
