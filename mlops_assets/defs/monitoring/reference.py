"""The monitoring reference of each registered version, stored with it in MLflow."""

import functools
import tempfile

import dagster as dg
import polars as pl

from mlops_assets.resources.dataset import DatasetSpecResource
from mlops_assets.resources.monitoring import DriftSettings
from mlops_assets.resources.tracking import MlflowTracking

ARTIFACT_DIR = "monitoring_reference"
URI_TAG = "reference.uri"


@functools.lru_cache(maxsize=2)
def load_model(tracking_uri: str, model_uri: str):
    """The pyfunc model at a version URI; `tracking_uri` (the process-wide store MlflowTracking
    set up) is part of the cache key, so two stores never share an entry."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(model_uri)


def pandas_inputs(frame: pl.DataFrame, spec):
    """The model's input columns of `frame` as the pyfunc signature expects them (naive UTC)."""
    from mlops_assets.core.models.data import input_columns

    pdf = frame.select(input_columns(spec)).to_pandas()
    pdf[spec.timestamp] = pdf[spec.timestamp].dt.tz_convert("UTC").dt.tz_localize(None)
    return pdf


def _recorded_version(context: dg.AssetExecutionContext, name: str) -> str | None:
    event = context.instance.get_latest_materialization_event(dg.AssetKey(name))
    return event.asset_materialization.tags.get("dagster/data_version") if event and event.asset_materialization else None


@dg.asset(
    group_name="registry",
    kinds={"mlflow", "parquet"},
    ins={
        "registered_model": dg.AssetIn(),
        "train_set": dg.AssetIn(metadata={"lazy": True}),
        "test_set": dg.AssetIn(),
        "data_profile": dg.AssetIn(),
        "shap_summary": dg.AssetIn(),
        "fair_model": dg.AssetIn(),
    },
)
def monitoring_reference(context: dg.AssetExecutionContext, registered_model: dict, train_set: pl.LazyFrame, test_set: pl.DataFrame, data_profile: dict, shap_summary: dict, fair_model: dict, dataset: DatasetSpecResource, drift: DriftSettings, mlflow_tracking: MlflowTracking):
    """What the version just registered is monitored against, for as long as it serves: an
    evenly spaced sample of its training rows (at most `reference_rows`), the newest
    `prediction_reference_days` of its test rows with its own forecast of them, its training
    profile, SHAP shares, MASE scales, false-alarm calibration and the data versions of its
    splits and profile. Logged as artifacts of the version's MLflow run; the version is tagged
    `reference.uri` and `data_version.*`."""
    from mlops_assets.core.drift import calibrate
    from mlops_assets.core.features import feature_columns
    from mlops_assets.core.reference import build_reference

    spec, version = dataset.load(), str(registered_model["version"])
    model = load_model(mlflow_tracking.tracking_uri, registered_model["model_uri"])
    versions = {**fair_model.get("data_versions", {}), "data_profile": _recorded_version(context, "data_profile") or "unknown"}
    reference = build_reference(
        version, train_set, test_set, lambda rows: model.predict(pandas_inputs(rows, spec)),
        columns=[*spec.key_columns, *feature_columns(spec), spec.target.column], timestamp=spec.timestamp,
        profile=data_profile, importance={r["feature"]: r["share"] for r in shap_summary["importance"]},
        scales=fair_model.get("mase_scales") or {}, data_versions=versions,
        reference_rows=drift.reference_rows, recent_days=drift.prediction_reference_days,
    )
    reference.calibration = calibrate(reference, spec, drift.config())
    uri = _log(reference, registered_model["run_id"], f"{ARTIFACT_DIR}/{context.run_id[:8]}", mlflow_tracking)
    mlflow_tracking.registry().tag_version(version, {URI_TAG: uri, **{f"data_version.{k}": v for k, v in versions.items()}})
    described = {**reference.describe(spec.timestamp), "uri": uri, "calibrated": bool(reference.calibration)}
    return dg.Output(
        described,
        metadata={
            "version": version, "reference_uri": uri, "training_rows": reference.train_sample.height,
            "recent_rows": reference.recent.height, "recent_from": described["recent_from"] or "none",
            "recent_to": described["recent_to"] or "none", "calibrated": bool(reference.calibration),
            "data_versions": dg.MetadataValue.json(versions),
        },
    )


def _log(reference, run_id: str, artifact_path: str, mlflow_tracking: MlflowTracking) -> str:
    """Log the reference's files to `run_id` under `artifact_path`; their `runs:/` URI."""
    from mlops_assets.core.reference import write_reference

    with tempfile.TemporaryDirectory() as tmp:
        write_reference(reference, tmp)
        mlflow_tracking.client().log_artifacts(run_id, tmp, artifact_path=artifact_path)
    return f"runs:/{run_id}/{artifact_path}"


def load_reference(mlflow_tracking: MlflowTracking, version: str):
    """The ReferenceData stored with `version` (None for a version registered without one).
    The tag is read on every call; the files are read once per process and URI."""
    tags = mlflow_tracking.registry().version_tags(str(version))
    uri = tags.get(URI_TAG)
    return _download(mlflow_tracking.tracking_uri, uri) if uri else None


@functools.lru_cache(maxsize=4)
def _download(tracking_uri: str, uri: str):
    import mlflow.artifacts

    from mlops_assets.core.reference import read_reference

    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp, tracking_uri=tracking_uri)
        return read_reference(local)
