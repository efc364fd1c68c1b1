"""Materialize the training and explainability assets once on small data, then read back
what MLflow recorded and check it against values recomputed here."""

import dagster as dg
import numpy as np
import polars as pl
import pytest

from mlops_assets.core.features import feature_columns
from mlops_assets.core.history import content_hash
from mlops_assets.core.spec import load_spec
from mlops_assets_tests.pipeline import trained_platform

SPEC = load_spec()
KINDS = ("xgboost", "linear", "lstm")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    home = tmp_path_factory.mktemp("training") / "mlops"
    with trained_platform(home) as (defs, instance, result):
        yield {"home": home, "defs": defs, "instance": instance, "result": result}


def mlflow_client(trained):
    return trained["defs"].resources["mlflow_tracking"].client()


def test_training_job_succeeds_with_every_asset(trained):
    result = trained["result"]
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"xgboost_model", "linear_model", "lstm_model", "candidate_model", "hyperparameter_sensitivity", "bias_report", "fair_model", "shap_summary"} <= materialized


def test_balanced_data_is_not_flagged_and_the_candidate_is_the_fair_model(trained):
    result = trained["result"]
    report = result.output_for_node("bias_report")
    assert report["grouped"] and not report["biased"] and report["passed"]
    assert {row["group"] for row in report["groups"]} == {"A", "B", "C"}
    fair = result.output_for_node("fair_model")
    assert fair["model_uri"] == result.output_for_node("candidate_model")["model_uri"]
    assert fair["mitigation"]["applied"] is False and "no group flagged" in fair["mitigation"]["reason"]
    check = {e.check_name: e for e in result.get_asset_check_evaluations()}["bias_within_threshold"]
    assert check.passed and "no group beyond" in check.description


@pytest.mark.parametrize("kind", KINDS)
def test_each_candidate_run_records_params_metrics_and_provenance(trained, kind):
    summary = trained["result"].output_for_node(f"{kind}_model")
    run = mlflow_client(trained).get_run(summary["run_id"])
    assert run.data.tags["dagster.run_id"] == trained["result"].run_id
    assert run.data.tags["model_kind"] == kind and run.data.tags["code_version"]
    assert run.data.tags["env.pkg.mlflow"] == "3.17.2"
    params = run.data.params
    assert params["seed"] == "42" and params["profile"] == "fast"
    test_set = pl.read_parquet(trained["home"] / "storage" / "test_set.parquet")
    assert params["data_version.test_set"] == content_hash(test_set)
    for metric in ("rmse", "mae", "mse", "r2", "mape", "mase", "skill"):
        assert f"validation_{metric}" in run.data.metrics and f"test_{metric}" in run.data.metrics
    for baseline in ("seasonal_naive", "day_before"):
        assert f"baseline_{baseline}_mae" in run.data.metrics and f"baseline_{baseline}_rmse" in run.data.metrics
    assert "test_group_mae/A" in run.data.metrics and "test_group_skill/C" in run.data.metrics
    assert run.data.tags["fitted_on"] == "train+validation"  # the logged model is the refit on train + validation
    validation_rows = pl.read_parquet(trained["home"] / "storage" / "validation_set.parquet").height
    assert summary["fit_info"]["rows"] == run.data.metrics["train_rows"] + validation_rows
    train_rows = pl.read_parquet(trained["home"] / "storage" / "train_set.parquet").height
    assert params["max_train_rows"] == "None"  # the fast profile does not cap training rows
    assert run.data.metrics["train_rows"] == run.data.metrics["train_rows_available"] == train_rows
    if kind != "lstm":
        assert {p for p in params if p.startswith("hp.")} and "cv_rmse_mean" in run.data.metrics
    materialization = trained["instance"].get_latest_materialization_event(dg.AssetKey(f"{kind}_model")).asset_materialization
    assert summary["run_id"] in materialization.metadata["mlflow_run"].value
    table = materialization.metadata["test_vs_baselines"]
    assert isinstance(table, dg.TableMetadataValue) and table.schema.columns[0].name == "forecast"
    assert [r.data["forecast"] for r in table.records] == [kind, "seasonal_naive", "day_before"]
    assert all(len(repr(r.data["mae"])) <= 12 for r in table.records)  # rounded to significant digits


@pytest.mark.parametrize("kind", KINDS)
def test_logged_model_round_trips_through_pyfunc_and_metrics_recompute(trained, kind):
    import mlflow

    summary = trained["result"].output_for_node(f"{kind}_model")
    mlflow_client(trained)
    model = mlflow.pyfunc.load_model(summary["model_uri"])
    test_set = pl.read_parquet(trained["home"] / "storage" / "test_set.parquet").sort([SPEC.timestamp, SPEC.group])
    frame = test_set.select(SPEC.timestamp, *feature_columns(SPEC)).to_pandas()
    frame[SPEC.timestamp] = frame[SPEC.timestamp].dt.tz_localize(None)
    predictions = np.asarray(model.predict(frame), dtype=float)
    actual = test_set.get_column(SPEC.target.column).to_numpy()
    rmse = float(np.sqrt(np.mean((predictions - actual) ** 2)))
    logged = mlflow_client(trained).get_run(summary["run_id"]).data.metrics["test_rmse"]
    assert rmse == pytest.approx(logged, rel=1e-6)
    # the signature the registry gate checks: exactly the served inputs, and one output
    assert model.metadata.get_input_schema().input_names() == [SPEC.timestamp, *feature_columns(SPEC)]
    assert len(model.metadata.get_output_schema().inputs) == 1


def test_candidate_is_the_best_on_validation(trained):
    result = trained["result"]
    candidate = result.output_for_node("candidate_model")
    scores = {k: result.output_for_node(f"{k}_model")["metrics"]["validation"]["rmse"] for k in KINDS}
    assert candidate["kind"] == min(scores, key=scores.get)
    assert len(candidate["comparison"]) == 3
    for row in candidate["comparison"]:
        test = result.output_for_node(f"{row['model']}_model")["metrics"]["test"]
        assert row["test_skill"] == test["skill"] and row["test_day_before_mae"] == test["day_before_mae"]


def test_sensitivity_and_shap_artifacts_are_in_mlflow(trained, tmp_path):
    result = trained["result"]
    client = mlflow_client(trained)
    sensitivity = result.output_for_node("hyperparameter_sensitivity")
    names = {row["hyperparameter"] for row in sensitivity["table"]}
    assert {"learning_rate", "max_depth", "alpha"} <= names
    files = {f.path for f in client.list_artifacts(sensitivity["mlflow_run_id"], "plots")}
    assert files == {"plots/hyperparameter_sensitivity.png"}

    shap = result.output_for_node("shap_summary")
    candidate = result.output_for_node("candidate_model")
    assert shap["model_uri"] == candidate["model_uri"]
    plots = {f.path for f in client.list_artifacts(candidate["run_id"], "plots")}
    assert {"plots/shap_beeswarm.png", "plots/shap_bar.png", "plots/bias_gaps.png"} <= plots
    local = client.download_artifacts(candidate["run_id"], "plots/shap_bar.png", str(tmp_path))
    assert open(local, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    features = {row["feature"] for row in shap["importance"]}
    assert features == set(feature_columns(SPEC))
    meta = trained["instance"].get_latest_materialization_event(dg.AssetKey("shap_summary")).asset_materialization.metadata
    assert meta["beeswarm"].value.startswith("![SHAP beeswarm](data:image/png;base64,")
