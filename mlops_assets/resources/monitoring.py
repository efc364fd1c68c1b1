import dagster as dg

from mlops_assets.core.drift import DriftConfig


class DriftSettings(dg.ConfigurableResource):
    """Drift measures and the retrain decision: `alpha` is the share of batches that say
    retrain when nothing drifted (half for feature drift, half for realized error); feature
    drift is judged against the champion's rows of the same season (±`seasonal_window_days`,
    the same hours of the week when there are `min_reference_rows` of them) or else its most
    recent rows; the realized-error test needs `min_labelled_rows` labelled rows and fires when
    the error is worse than `realized_mae_tolerance` with confidence 1 - alpha/2."""

    psi_threshold: float = 0.2
    wasserstein_threshold: float = 0.25
    js_threshold: float = 0.1
    top_k: int = 3
    # Used only when the champion's reference has no calibration.
    weighted_threshold: float = 0.25
    realized_mae_tolerance: float = 0.10
    min_rows: int = 24
    alpha: float = 0.02
    seasonal_window_days: float = 14.0
    min_reference_rows: int = 200
    min_labelled_rows: int = 24
    min_error_windows: int = 7
    calibration_windows: int = 90
    calibration_gap_days: float = 7.0
    calibration_hours: list[float] = [24.0, 168.0]
    # How much of the training data each batch is compared with; both bound the per-batch cost,
    # so it does not grow with the history (bench/incremental.py).
    reference_rows: int = 100_000
    prediction_reference_days: int = 28
    # drift_sensor starts at most one training_job per cool-down, however many batches say retrain.
    retrain_cooldown_hours: float = 24.0
    # Prediction intervals: where each version's adapted calibration lives (default
    # <storage>/intervals), and when realized coverage is a retrain reason: below the nominal
    # level by more than `coverage_tolerance` in each of the last `coverage_shortfall_batches`
    # labelled batches.
    interval_state_dir: str = ""
    coverage_tolerance: float = 0.05
    coverage_shortfall_batches: int = 3

    def interval_state_root(self) -> str:
        from mlops_assets import settings

        return self.interval_state_dir or f"{settings.storage_dir()}/intervals"

    def config(self) -> DriftConfig:
        values = self.model_dump(exclude={
            "reference_rows", "prediction_reference_days", "retrain_cooldown_hours", "interval_state_dir", "coverage_tolerance",
            "coverage_shortfall_batches",
        })
        return DriftConfig(**{**values, "calibration_hours": tuple(values["calibration_hours"])})
