"""The code location: assets, checks, sensors, jobs and the resources of the deployment."""

import os
import warnings

import dagster as dg

from mlops_assets import settings
from mlops_assets.defs.alerts.sensors import check_failure_alert_sensor, run_failure_alert_sensor
from mlops_assets.defs.explainability.assets import shap_summary
from mlops_assets.defs.fairness.assets import bias_report, fair_model
from mlops_assets.defs.ingestion.assets import clean_load, raw_load
from mlops_assets.defs.ingestion.sensors import new_data_sensor
from mlops_assets.defs.jobs import executor_from_env, ingestion_job, manual_promotion_job, monitoring_job, preparation_job, rollback_job, training_job
from mlops_assets.defs.monitoring.assets import batch_predictions, drift_report
from mlops_assets.defs.monitoring.reference import monitoring_reference
from mlops_assets.defs.monitoring.rescore import rescore_sensor
from mlops_assets.defs.monitoring.sensors import drift_sensor
from mlops_assets.defs.schedules import daily_monitoring_schedule, weekly_retraining_schedule
from mlops_assets.defs.registry.assets import champion_model, model_evaluation, registered_model
from mlops_assets.defs.preparation import checks as preparation_checks
from mlops_assets.defs.preparation.assets import data_profile, features, load_history, splits
from mlops_assets.defs.training.assets import candidate_model, hyperparameter_sensitivity, linear_model, lstm_model, xgboost_model
from mlops_assets.resources.alerts import AlertChannels
from mlops_assets.resources.dataset import DatasetSpecResource
from mlops_assets.resources.fairness import FairnessSettings
from mlops_assets.resources.gcs import is_gcs
from mlops_assets.resources.landing import LandingZone
from mlops_assets.resources.monitoring import DriftSettings
from mlops_assets.resources.promotion import PromotionSettings
from mlops_assets.resources.tables import TableStorage
from mlops_assets.resources.tracking import MlflowTracking
from mlops_assets.resources.training import TrainingSettings

DEPLOYMENT_ENV_VAR = "MLOPS_DEPLOYMENT"
# Data versions on outputs are a beta API we rely on deliberately; say so once, here.
warnings.filterwarnings("ignore", category=dg.BetaWarning)


def local_resources() -> dict:
    """Embedded default: everything under MLOPS_HOME on this machine."""
    storage = settings.storage_dir()
    home = settings.mlops_home()
    return {
        "io_manager": TableStorage(base_dir=storage),
        "landing": LandingZone(
            root=settings.landing_dir(),
            archive_root=f"{storage}/raw_files",
            quarantine_root=settings.quarantine_dir(),
            settle_seconds=float(os.environ.get("MLOPS_SETTLE_SECONDS", "2")),
            max_file_bytes=int(os.environ.get("MLOPS_MAX_FILE_BYTES", str(512 * 1024 * 1024))),
            max_columns=int(os.environ.get("MLOPS_MAX_COLUMNS", "1000")),
        ),
        "dataset": DatasetSpecResource(path=os.environ.get("MLOPS_DATASET_SPEC", "")),
        "training": TrainingSettings(profile=os.environ.get("MLOPS_PROFILE", "full"), config_path=os.environ.get("MLOPS_TRAINING_CONFIG", "")),
        "alerts": alert_channels(home),
        "drift": DriftSettings(),
        "promotion": promotion_settings(),
        "fairness": FairnessSettings(rule=os.environ.get("MLOPS_BIAS_RULE", "normalized")),
        "mlflow_tracking": MlflowTracking(
            # Not MLFLOW_TRACKING_URI: mlflow.set_tracking_uri() writes that variable, so it would leak between stores.
            tracking_uri=os.environ.get("MLOPS_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}",
            artifact_root=os.environ.get("MLOPS_ARTIFACT_ROOT") or str(home / "mlartifacts"),
            experiment=os.environ.get("MLOPS_EXPERIMENT", "load_forecasting"),
            mlflow_ui_url=settings.mlflow_url(),
            dagster_ui_url=settings.dagster_url(),
        ),
    }


def promotion_settings() -> PromotionSettings:
    """The gate's thresholds; MAPE and R2 apply only when their variable is set."""
    env = os.environ.get
    optional = {name: float(env(var)) for name, var in (("max_mape", "MLOPS_MAX_MAPE"), ("min_r2", "MLOPS_MIN_R2")) if env(var)}
    return PromotionSettings(
        margin=float(env("MLOPS_PROMOTION_MARGIN", "0.02")), min_skill=float(env("MLOPS_MIN_SKILL", "0.0")), **optional
    )


def alert_channels(home) -> AlertChannels:
    """Channels switch on when their settings are in the environment; secrets stay there."""
    env = os.environ.get
    return AlertChannels(
        log_file=env("MLOPS_ALERT_LOG") or str(home / "alerts.log"),
        dagster_ui_url=settings.dagster_url(),
        smtp_host=env("MLOPS_SMTP_HOST", ""),
        smtp_port=int(env("MLOPS_SMTP_PORT", "25")),
        smtp_from=env("MLOPS_SMTP_FROM", "mlops-assets@localhost"),
        smtp_to=env("MLOPS_SMTP_TO", ""),
        smtp_user=env("MLOPS_SMTP_USER", ""),
        smtp_password=dg.EnvVar("MLOPS_SMTP_PASSWORD") if env("MLOPS_SMTP_PASSWORD") else "",
        webhook_url=env("MLOPS_ALERT_WEBHOOK_URL", ""),
        slack_webhook_url=dg.EnvVar("MLOPS_SLACK_WEBHOOK_URL") if env("MLOPS_SLACK_WEBHOOK_URL") else "",
    )


def production_resources() -> dict:
    """Postgres-backed MLflow server and explicit locations; nothing falls back to local files."""
    required = ("MLOPS_TRACKING_URI", "MLOPS_ARTIFACT_ROOT", "MLOPS_LANDING_DIR", "MLOPS_QUARANTINE_DIR", "MLOPS_STORAGE_DIR")
    missing = [name for name in required if not os.environ.get(name)]
    if missing:
        raise ValueError(f"{DEPLOYMENT_ENV_VAR}=production needs {missing} in the environment (see deploy/production.env.template)")
    resources = local_resources()
    if is_gcs(resources["landing"].root):
        # A gs:// landing zone is listed through dagster-gcp's GCSResource (imported only then: it is slow to load).
        # gs:// storage, archive and quarantine go through UPath/gcsfs, gs:// MLflow artifacts through google-cloud-storage.
        from mlops_assets.resources.gcs_landing import gcs_landing

        resources["landing"] = gcs_landing(resources["landing"])
    return resources


RESOURCES_BY_DEPLOYMENT = {"local": local_resources, "production": production_resources}


def build_resources(deployment: str | None = None) -> dict:
    deployment = deployment or os.environ.get(DEPLOYMENT_ENV_VAR, "local")
    if deployment not in RESOURCES_BY_DEPLOYMENT:
        raise ValueError(f"{DEPLOYMENT_ENV_VAR}={deployment!r}: choose one of {sorted(RESOURCES_BY_DEPLOYMENT)}")
    return RESOURCES_BY_DEPLOYMENT[deployment]()


preparation_automation_sensor = dg.AutomationConditionSensorDefinition(
    "preparation_automation_sensor",
    target=dg.AssetSelection.groups("preparation", "monitoring"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Rebuilds history, features, splits and profile once after new batches are cleaned; predicts and reports drift for each new batch.",
)


def build_definitions(deployment: str | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[
            raw_load, clean_load, load_history, features, splits, data_profile,
            xgboost_model, linear_model, lstm_model, candidate_model, hyperparameter_sensitivity,
            bias_report, fair_model, shap_summary, model_evaluation, registered_model, monitoring_reference,
            champion_model, batch_predictions, drift_report,
        ],
        # Every check declared in the preparation module, so a new check cannot be left out here.
        asset_checks=dg.load_asset_checks_from_modules([preparation_checks]),
        jobs=[ingestion_job, preparation_job, training_job, rollback_job, manual_promotion_job, monitoring_job],
        schedules=[daily_monitoring_schedule, weekly_retraining_schedule],
        sensors=[
            new_data_sensor,
            preparation_automation_sensor,
            drift_sensor,
            rescore_sensor,
            check_failure_alert_sensor,
            run_failure_alert_sensor,
        ],
        resources=build_resources(deployment),
        executor=executor_from_env(),
    )


defs = build_definitions()
