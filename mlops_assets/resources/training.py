import dagster as dg

from mlops_assets.core.training_config import TrainingConfig, load_training_config


class TrainingSettings(dg.ConfigurableResource):
    """Which training profile runs: `full` (demo, benchmarks) or `fast` (tests); optional YAML overrides."""

    profile: str = "full"
    config_path: str = ""

    def load(self) -> TrainingConfig:
        return load_training_config(self.profile, self.config_path or None)
