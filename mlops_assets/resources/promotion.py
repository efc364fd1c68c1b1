import dagster as dg

from mlops_assets.core.promotion import PromotionPolicy


class PromotionSettings(dg.ConfigurableResource):
    """Value thresholds for a first model; margin and bootstrap for comparing with the champion."""

    max_mape: float = 15.0
    min_r2: float = 0.5
    min_test_rows: int = 48
    margin: float = 0.02
    bootstrap: int = 1000
    seed: int = 42
    smoke_rows: int = 48

    def policy(self) -> PromotionPolicy:
        return PromotionPolicy(**self.model_dump(exclude={"smoke_rows"}))
