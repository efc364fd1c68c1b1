"""Training configuration: search spaces and effort, in a `fast` profile for tests and a
`full` one for the demo and benchmarks. A YAML file (MLOPS_TRAINING_CONFIG) can override
any field of either profile.

`max_train_rows` caps the training rows every model family sees (search, refit, LSTM,
re-weighted fair-model refits): the newest whole hours of the training split are kept, so
every group keeps its most recent history and the split stays time-ordered; validation and
test are never cut. None = all rows. It bounds memory (the one-hot design matrix and its
per-fold copies grow with the rows) and is logged to MLflow with the rows actually used."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

PROFILE_ENV_VAR = "MLOPS_PROFILE"
CONFIG_ENV_VAR = "MLOPS_TRAINING_CONFIG"

XGBOOST_SPACE: dict[str, Any] = {
    "learning_rate": {"low": 0.02, "high": 0.3, "log": True},
    "n_estimators": [100, 200, 400],
    "max_depth": [3, 4, 6, 8],
    "min_child_weight": [1, 3, 5, 10],
    "reg_alpha": {"low": 1e-4, "high": 1.0, "log": True},
    "reg_lambda": {"low": 1e-2, "high": 10.0, "log": True},
}
LINEAR_SPACE: dict[str, Any] = {"alpha": {"low": 1e-3, "high": 100.0, "log": True}}


@dataclass(frozen=True)
class TrainingConfig:
    profile: str = "full"
    seed: int = 42
    selection_metric: str = "rmse"
    cv_splits: int = 3
    xgboost_iterations: int = 8
    xgboost_space: dict[str, Any] = field(default_factory=lambda: dict(XGBOOST_SPACE))
    early_stopping_rounds: int = 30
    linear_iterations: int = 8
    linear_space: dict[str, Any] = field(default_factory=lambda: dict(LINEAR_SPACE))
    lstm_window_hours: float = 24.0  # the LSTM's look-back in time, converted to steps of the data's frequency
    lstm_units: int = 32
    lstm_epochs: int = 8
    lstm_batch_size: int = 256
    lstm_patience: int = 3
    lstm_max_train_rows: int = 60_000
    shap_sample_rows: int = 1000
    shap_background_rows: int = 200
    nthread: int = 2  # threads of one XGBoost fit outside the search (the final fits)
    # Search fits run side by side as threads, each single-threaded: on small data one thread
    # per fit beats two threads per fit (OpenMP's barriers cost more than they save, and spin
    # when another process holds a core). 1 = one fit at a time with `nthread` threads.
    parallel_fits: int = 2
    # Prediction intervals (core/intervals.py): nominal level, scores kept per group, ACI step.
    interval_level: float = 0.8
    interval_window: int = 720
    interval_gamma: float = 0.2
    # 250k rows: a 1M-row series' training split (~690k rows) peaks under 2 GB in one process;
    # the demo's default and 100k sizes (<= 70k training rows) are not cut.
    max_train_rows: int | None = 250_000


FAST = TrainingConfig(
    profile="fast",
    cv_splits=3,
    xgboost_iterations=3,
    xgboost_space={**XGBOOST_SPACE, "n_estimators": [30, 60], "max_depth": [3, 4]},
    early_stopping_rounds=10,
    linear_iterations=3,
    lstm_window_hours=6.0,
    lstm_units=8,
    lstm_epochs=2,
    lstm_patience=1,
    lstm_max_train_rows=5_000,
    shap_sample_rows=100,
    shap_background_rows=50,
    max_train_rows=None,
)
PROFILES = {"full": TrainingConfig(), "fast": FAST}
MIN_WINDOW_STEPS = 2


def window_steps(hours: float, frequency: timedelta | None) -> int:
    """`hours` of look-back as whole steps of `frequency` (hourly when unknown), at least two."""
    step = (frequency or timedelta(hours=1)).total_seconds()
    return max(MIN_WINDOW_STEPS, round(hours * 3600 / step))


def load_training_config(profile: str | None = None, path: str | None = None) -> TrainingConfig:
    profile = profile or os.environ.get(PROFILE_ENV_VAR, "full")
    if profile not in PROFILES:
        raise ValueError(f"{PROFILE_ENV_VAR}={profile!r}: choose one of {sorted(PROFILES)}")
    config = PROFILES[profile]
    path = path or os.environ.get(CONFIG_ENV_VAR)
    if path:
        overrides = (yaml.safe_load(Path(path).read_text()) or {}).get(profile, {})
        unknown = set(overrides) - set(TrainingConfig.__dataclass_fields__)
        if unknown:
            hint = " (`lstm_window` rows became `lstm_window_hours`)" if "lstm_window" in unknown else ""
            raise ValueError(f"{path}: unknown training settings {sorted(unknown)}{hint}")
        config = replace(config, **overrides)
    if config.max_train_rows is not None and (not isinstance(config.max_train_rows, int) or config.max_train_rows < 1):
        raise ValueError(f"max_train_rows must be a positive whole number of rows or null (all rows), not {config.max_train_rows!r}")
    return config
