import subprocess
import sys
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("mlflow", "shap", "keras", "xgboost", "fairlearn", "sklearn", "jax", "pandas", "pandera")
CONTRACT_ASSETS = {
    "raw_load", "clean_load", "load_history", "features", "train_set", "validation_set", "test_set", "data_profile",
    "xgboost_model", "linear_model", "lstm_model", "candidate_model", "hyperparameter_sensitivity", "bias_report",
    "fair_model", "shap_summary", "model_evaluation", "registered_model", "champion_model", "batch_predictions", "drift_report",
}


def test_dagster_validates_the_workspace(mlops_home):
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All code locations passed validation" in done.stdout + done.stderr


def test_code_location_loads_without_ml_libraries(mlops_home):
    probe = "import sys, mlops_assets.definitions; print(','.join(m for m in %r if m in sys.modules))" % (HEAVY,)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_contract_names(defs):
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert CONTRACT_ASSETS <= keys
    sensors = {s.name for s in defs.sensors}
    assert {"new_data_sensor", "drift_sensor", "check_failure_alert_sensor", "run_failure_alert_sensor"} <= sensors
    for job in ("training_job", "rollback_job"):
        assert defs.resolve_job_def(job)
    schedules = {s.name: s for s in defs.schedules}
    assert {"daily_monitoring_schedule", "weekly_retraining_schedule"} <= set(schedules)
    assert all(s.default_status == dg.DefaultScheduleStatus.STOPPED for s in schedules.values())


def test_unknown_deployment_is_refused(mlops_home):
    import pytest

    from mlops_assets.definitions import build_definitions

    with pytest.raises(ValueError, match="MLOPS_DEPLOYMENT"):
        build_definitions("moon")


def test_gate_thresholds_come_from_the_environment(mlops_home, monkeypatch):
    from mlops_assets.definitions import build_definitions

    policy = build_definitions("local").resources["promotion"].policy()
    assert (policy.min_skill, policy.max_mape, policy.min_r2) == (0.0, None, None)
    monkeypatch.setenv("MLOPS_MIN_SKILL", "0.2")
    monkeypatch.setenv("MLOPS_MAX_MAPE", "5")
    policy = build_definitions("local").resources["promotion"].policy()
    assert (policy.min_skill, policy.max_mape, policy.min_r2) == (0.2, 5.0, None)


def test_links_point_at_the_ui_addresses_from_the_environment(mlops_home, monkeypatch):
    """Run links in alerts and MLflow links in metadata follow MLOPS_DAGSTER_URL and
    MLOPS_MLFLOW_URL (a UI on another port or host), defaulting to the ports `make ui` and
    `make mlflow-ui` use."""
    from mlops_assets.definitions import build_definitions

    monkeypatch.delenv("MLOPS_DAGSTER_URL", raising=False)
    monkeypatch.delenv("MLOPS_MLFLOW_URL", raising=False)
    resources = build_definitions("local").resources
    assert resources["alerts"].run_url("r1") == "http://127.0.0.1:3000/runs/r1"
    assert resources["mlflow_tracking"].model_version_url("2").startswith("http://127.0.0.1:5000/#/models/")
    monkeypatch.setenv("MLOPS_DAGSTER_URL", "http://127.0.0.1:3999/")
    monkeypatch.setenv("MLOPS_MLFLOW_URL", "https://mlflow.example.org")
    resources = build_definitions("local").resources
    assert resources["alerts"].run_url("r1") == "http://127.0.0.1:3999/runs/r1"
    assert resources["mlflow_tracking"].dagster_ui_url == "http://127.0.0.1:3999"
    assert resources["mlflow_tracking"].model_version_url("2").startswith("https://mlflow.example.org/#/models/")
