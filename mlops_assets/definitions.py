"""The code location: assets, checks, sensors, jobs and the resources of the deployment."""

import os
import re
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
from mlops_assets.defs.registry.sensors import champion_alias_sensor
from mlops_assets.defs.schedules import daily_monitoring_schedule, weekly_retraining_schedule
from mlops_assets.defs.sources import checks as sources_checks
from mlops_assets.defs.sources.assets import eia_demand, source_batch_file, weather_observations
from mlops_assets.defs.sources.jobs import daily_sources_schedule, sources_job
from mlops_assets.defs.registry.assets import champion_model, model_evaluation, registered_model
from mlops_assets.defs.registry.model_card import model_card
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
from mlops_assets.resources.sources import EiaClient, SourcesSettings, WeatherClient
from mlops_assets.resources.tables import TableStorage
from mlops_assets.resources.tracking import MlflowTracking
from mlops_assets.resources.training import TrainingSettings

DEPLOYMENT_ENV_VAR = "MLOPS_DEPLOYMENT"
OWNERS_ENV_VAR = "MLOPS_ASSET_OWNERS"
DEFAULT_OWNERS = "team:ml-platform"
DOMAIN_TAG = "domain"
# Data versions on outputs are a beta API we rely on deliberately; say so once, here.
warnings.filterwarnings("ignore", category=dg.BetaWarning)


def local_resources() -> dict:
    """Embedded default: everything under MLOPS_HOME on this machine."""
    storage = settings.storage_dir()
    home = settings.mlops_home()
    return {
        "io_manager": TableStorage(base_dir=storage, spec_path=os.environ.get("MLOPS_DATASET_SPEC", "")),
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
        "drift": DriftSettings(interval_state_dir=f"{storage}/intervals"),
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
        **source_clients(),
    }


def source_clients() -> dict:
    """The real sources: EIA (key from EIA_API_KEY, resolved at run time) and Open-Meteo;
    base URLs overridable (MLOPS_EIA_BASE_URL, MLOPS_WEATHER_BASE_URL), as are retries."""
    env = os.environ.get
    http = {
        "timeout_seconds": float(env("MLOPS_SOURCES_TIMEOUT_SECONDS", "30")),
        "retries": int(env("MLOPS_SOURCES_RETRIES", "4")),
        "backoff_seconds": float(env("MLOPS_SOURCES_BACKOFF_SECONDS", "1")),
    }
    return {
        "eia": EiaClient(
            base_url=env("MLOPS_EIA_BASE_URL") or "https://api.eia.gov/v2",
            api_key=dg.EnvVar("EIA_API_KEY") if env("EIA_API_KEY") else "",
            page_length=int(env("MLOPS_EIA_PAGE_LENGTH", "5000")),
            **http,
        ),
        "weather": WeatherClient(base_url=env("MLOPS_WEATHER_BASE_URL") or "https://archive-api.open-meteo.com/v1", **http),
        "sources": SourcesSettings(path=env("MLOPS_SOURCES_CONFIG", "")),
    }


def promotion_settings() -> PromotionSettings:
    """The gate's thresholds; MAPE and R2 apply only when their variable is set."""
    env = os.environ.get
    optional = {name: float(env(var)) for name, var in (("max_mape", "MLOPS_MAX_MAPE"), ("min_r2", "MLOPS_MIN_R2")) if env(var)}
    return PromotionSettings(
        margin=float(env("MLOPS_PROMOTION_MARGIN", "0.02")), min_skill=float(env("MLOPS_MIN_SKILL", "0.0")),
        coverage_tolerance=float(env("MLOPS_COVERAGE_TOLERANCE", "0.05")), **optional
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


def asset_owners(env=None) -> list[str]:
    """The owners of every asset, from MLOPS_ASSET_OWNERS (comma-separated; default
    team:ml-platform). Dagster accepts an email address or "team:<name>"."""
    env = os.environ if env is None else env
    text = env.get(OWNERS_ENV_VAR) or DEFAULT_OWNERS
    owners = list(dict.fromkeys(o.strip() for o in text.split(",") if o.strip()))
    bad = [o for o in owners if not _valid_owner(o)]
    if bad or not owners:
        raise ValueError(
            f"{OWNERS_ENV_VAR}={text!r}: {bad or 'no owner'} is not an owner; give comma-separated email addresses "
            "or team names written team:<name> (e.g. team:ml-platform,jane@example.com)"
        )
    return owners


def _valid_owner(owner: str) -> bool:
    """Dagster's rule: an email address, or "team:" followed by a name."""
    if owner.startswith("team:"):
        return len(owner) > len("team:") and not any(c.isspace() for c in owner)
    return re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", owner) is not None


def with_owners_and_domain(assets: list, owners: list[str]) -> list:
    """Every asset with the platform's owners (added to its own) and a `domain` tag naming its
    group (an asset's own `domain` tag wins)."""

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        tags = {} if DOMAIN_TAG in spec.tags else {DOMAIN_TAG: spec.group_name or "default"}
        return spec.merge_attributes(owners=[o for o in owners if o not in spec.owners], tags=tags)

    return list(dg.map_asset_specs(apply, assets))


preparation_automation_sensor = dg.AutomationConditionSensorDefinition(
    "preparation_automation_sensor",
    target=dg.AssetSelection.groups("preparation", "monitoring"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Rebuilds history, features, splits and profile once after new batches are cleaned; predicts and reports drift for each new batch.",
)


def build_definitions(deployment: str | None = None) -> dg.Definitions:
    assets = [
        raw_load, clean_load, load_history, features, splits, data_profile,
        xgboost_model, linear_model, lstm_model, candidate_model, hyperparameter_sensitivity,
        bias_report, fair_model, shap_summary, model_evaluation, registered_model, monitoring_reference,
        model_card, champion_model, batch_predictions, drift_report,
        eia_demand, weather_observations, source_batch_file,
    ]
    return dg.Definitions(
        # Owners and a domain tag on every asset, from here (MLOPS_ASSET_OWNERS).
        assets=with_owners_and_domain(assets, asset_owners()),
        # Every check declared in the preparation and sources modules, so a new check cannot be left out here.
        asset_checks=dg.load_asset_checks_from_modules([preparation_checks, sources_checks]),
        jobs=[ingestion_job, preparation_job, training_job, rollback_job, manual_promotion_job, monitoring_job, sources_job],
        schedules=[daily_monitoring_schedule, weekly_retraining_schedule, daily_sources_schedule],
        sensors=[
            new_data_sensor,
            preparation_automation_sensor,
            drift_sensor,
            rescore_sensor,
            check_failure_alert_sensor,
            run_failure_alert_sensor,
            champion_alias_sensor,
        ],
        resources=build_resources(deployment),
        executor=executor_from_env(),
    )


defs = build_definitions()
