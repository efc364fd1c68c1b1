"""A candidate logged into a real local MLflow store: awkward group labels become safe metric
keys with a mapping table, a single series is "all", and every run carries MASE, skill and both
baselines on the same test rows, recomputed here from the split frames."""

from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from mlops_assets.core.features import build_features
from mlops_assets.core.metrics import safe_key
from mlops_assets.core.models.data import model_data
from mlops_assets.core.models.evaluation import evaluate, refit
from mlops_assets.core.models.tabular import train_linear
from mlops_assets.core.splitting import time_split
from mlops_assets.core.spec import load_spec
from mlops_assets.core.training_config import load_training_config
from mlops_assets_tests.builders import hourly_frame

SPEC = load_spec()
FAST = load_training_config("fast")
AWKWARD = ["Zürich (Nord)/A", "R&D <1>", "O'Brien"]


def with_baselines(features: pl.DataFrame, spec) -> pl.DataFrame:
    """The baseline columns (target 7 days / 1 day earlier, same group) where the feature frame
    does not carry them yet."""
    if "baseline_seasonal_naive" in features.columns:
        return features
    y, ts = spec.target.column, spec.timestamp
    out = features
    for name, days in (("baseline_seasonal_naive", 7), ("baseline_day_before", 1)):
        earlier = features.select(*spec.key_columns, pl.col(y).alias(name))
        earlier = earlier.with_columns(pl.col(ts) + pl.duration(days=days))
        out = out.join(earlier, on=spec.key_columns, how="left")
    return out


def prepared(spec, groups):
    features, _ = build_features(hourly_frame(spec, groups, 24 * 40), spec)
    train, validation, test, _ = time_split(with_baselines(features, spec), spec)
    return model_data(train, validation, test, spec), test


@pytest.fixture
def mlflow_store(tmp_path):
    import mlflow

    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("candidates", artifact_location=(tmp_path / "artifacts").as_uri())
    yield mlflow.MlflowClient(uri), experiment
    mlflow.set_tracking_uri(previous)


def log(data, experiment):
    import mlflow

    from mlops_assets.defs.training.tracking import log_candidate

    forecaster, search, extra = train_linear(data, FAST)
    final = refit(forecaster, data, FAST)
    evaluation = evaluate(forecaster, data, final=final)
    with mlflow.start_run(experiment_id=experiment) as run:
        info = log_candidate(
            kind="linear", forecaster=final, data=data, evaluation=evaluation, params=search.best_params, extra=extra,
            search_table=search.cv_results, config=FAST, data_versions={"test_set": "abc"}, fit_seconds=1.0,
        )
    return run.info.run_id, info, evaluation


def test_awkward_group_labels_are_logged_under_safe_keys_with_the_mapping(mlflow_store, tmp_path):
    client, experiment = mlflow_store
    data, test = prepared(SPEC, AWKWARD)
    run_id, _, evaluation = log(data, experiment)
    metrics = client.get_run(run_id).data.metrics
    for label in AWKWARD:
        for m in ("mae", "rmse", "skill", "mase"):
            assert f"test_group_{m}/{safe_key(label)}" in metrics
    keys = pl.read_csv(client.download_artifacts(run_id, "tables/group_keys.csv", str(tmp_path)))
    assert dict(zip(keys["key"], keys["group"])) == {safe_key(label): label for label in AWKWARD}
    by_group = pl.read_csv(client.download_artifacts(run_id, "tables/test_by_group.csv", str(tmp_path)))
    assert sorted(by_group["group"].to_list()) == sorted(AWKWARD)  # tables keep the labels as they are
    row = evaluation["test_by_group"].filter(pl.col("group") == "R&D <1>").row(0, named=True)
    assert metrics[f"test_group_skill/{safe_key('R&D <1>')}"] == pytest.approx(row["skill"])
    # Logged with the group fallback: the groups the model serves itself, and the rule.
    import json

    record = json.loads(open(client.download_artifacts(run_id, "group_fallback.json", str(tmp_path))).read())
    assert record["known_groups"] == sorted(AWKWARD) and record["known_min_rows"] == 168
    assert client.get_run(run_id).data.tags["group_fallback"] == "true"


def test_a_single_series_run_has_skill_mase_and_both_baselines_recomputed_from_the_split(mlflow_store, tmp_path):
    import mlflow

    client, experiment = mlflow_store
    spec = replace(SPEC, group=None)
    data, test = prepared(spec, None)
    run_id, info, _ = log(data, experiment)
    run = client.get_run(run_id)
    metrics = run.data.metrics
    assert "test_group_mae/all" in metrics and not any("<all>" in k for k in metrics)
    assert run.data.tags["fitted_on"] == "train+validation"
    assert "group_fallback" not in run.data.tags  # a single series is logged as it is

    frame = test.sort(spec.timestamp)
    y = frame[spec.target.column].to_numpy()
    snaive, day_before = frame["baseline_seasonal_naive"].to_numpy(), frame["baseline_day_before"].to_numpy()
    inputs = frame.select(spec.timestamp, *data.feature_columns).to_pandas()
    inputs[spec.timestamp] = inputs[spec.timestamp].dt.tz_localize(None)
    predictions = np.asarray(mlflow.pyfunc.load_model(info.model_uri).predict(inputs), float)
    rows = np.isfinite(snaive) & np.isfinite(day_before)
    assert rows.sum() > 48
    model_mae = np.mean(np.abs(predictions[rows] - y[rows]))
    assert metrics["test_skill"] == pytest.approx(1 - model_mae / np.mean(np.abs(snaive[rows] - y[rows])), rel=1e-6)
    assert metrics["baseline_seasonal_naive_mae"] == pytest.approx(np.mean(np.abs(snaive[rows] - y[rows])))
    assert metrics["baseline_day_before_rmse"] == pytest.approx(np.sqrt(np.mean((day_before[rows] - y[rows]) ** 2)))
    train = data.train
    scale = np.nanmean(np.abs(train.baseline("seasonal_naive") - train.y))
    assert metrics["test_mase"] == pytest.approx(np.mean(np.abs(predictions - y)) / scale, rel=1e-6)
    assert metrics["test_baseline_rows"] == rows.sum()
    assert "tables/test_vs_baselines.csv" in {f.path for f in client.list_artifacts(run_id, "tables")}


def test_mape_is_not_logged_for_a_target_that_crosses_zero(mlflow_store):
    client, experiment = mlflow_store
    spec = replace(SPEC, group=None)
    net_load = hourly_frame(spec, None, 24 * 40).with_columns(pl.col(spec.target.column) - 1000.0)
    features, _ = build_features(net_load, spec)
    train, validation, test, _ = time_split(with_baselines(features, spec), spec)
    data = model_data(train, validation, test, spec)
    assert data.test.y.min() < 0 < data.test.y.max()
    run_id, _, evaluation = log(data, experiment)
    assert "not strictly positive" in evaluation["test"]["mape_absent_reason"]
    metrics = client.get_run(run_id).data.metrics
    assert "test_mape" not in metrics and "test_skill" in metrics and "test_mase" in metrics
