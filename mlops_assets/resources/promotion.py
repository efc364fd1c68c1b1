import dagster as dg

from mlops_assets.core.promotion import PromotionPolicy


class PromotionSettings(dg.ConfigurableResource):
    """Value thresholds for every model: skill against seasonal naive above `min_skill`;
    `max_mape` / `min_r2` optional (None = not used). Margin and bootstrap for comparing with
    the champion. Tolerance of the prediction intervals' test coverage."""

    min_skill: float = 0.0
    max_mape: float | None = None
    min_r2: float | None = None
    min_test_rows: int = 48
    margin: float = 0.02
    bootstrap: int = 1000
    seed: int = 42
    smoke_rows: int = 48
    # interval_coverage: test coverage within this many points of the nominal level, overall
    # and in every group with at least `coverage_min_group_rows` test rows.
    coverage_tolerance: float = 0.05
    coverage_min_group_rows: int = 48

    def policy(self) -> PromotionPolicy:
        return PromotionPolicy(**self.model_dump(exclude={"smoke_rows", "coverage_tolerance", "coverage_min_group_rows"}))
