import dagster as dg

from mlops_assets.core.drift import DriftConfig


class DriftSettings(dg.ConfigurableResource):
    """Drift thresholds and the retrain triggers (top-k SHAP features, weighted score, realized MAE)."""

    psi_threshold: float = 0.2
    wasserstein_threshold: float = 0.25
    js_threshold: float = 0.1
    top_k: int = 3
    weighted_threshold: float = 0.25
    realized_mae_tolerance: float = 0.10
    # How much of the training data each batch is compared with; both bound the per-batch cost,
    # so it does not grow with the history (bench/incremental.py).
    reference_rows: int = 100_000
    prediction_reference_days: int = 28

    def config(self) -> DriftConfig:
        return DriftConfig(**self.model_dump(exclude={"reference_rows", "prediction_reference_days"}))
