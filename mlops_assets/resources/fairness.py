import dagster as dg

from mlops_assets.core.fairness import BiasConfig


class FairnessSettings(dg.ConfigurableResource):
    """Which bias rule decides (`normalized` or the seed's `original`), its thresholds, the
    minimum test rows per group, bootstrap draws, and how much overall MAE mitigation may cost."""

    rule: str = "normalized"
    original_threshold: float = 1.5
    normalized_threshold: float = 1.0
    min_group_rows: int = 24
    bootstrap: int = 200
    mitigation_tolerance: float = 0.05
    seed: int = 42

    def config(self) -> BiasConfig:
        return BiasConfig(**self.model_dump(exclude={"mitigation_tolerance"}))
