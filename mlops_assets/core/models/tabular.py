"""XGBoost and regularised linear regression as scikit-learn pipelines: preprocessing
(fitted on training rows only) travels with the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlops_assets.core.models.data import ModelData
from mlops_assets.core.models.search import SearchResult, randomized_search
from mlops_assets.core.training_config import TrainingConfig


@dataclass
class TabularForecaster:
    """A fitted pipeline plus the columns it reads; `predict` takes a pandas frame."""

    pipeline: Any
    feature_columns: list[str]
    kind: str

    def predict(self, frame, chunk_rows: int = 100_000) -> np.ndarray:
        """Row by row independent, so predicted in chunks: the dense one-hot matrix of a large
        frame is never built whole."""
        X = frame[self.feature_columns]
        if len(X) <= chunk_rows:
            return np.asarray(self.pipeline.predict(X), dtype=float)
        return np.concatenate([np.asarray(self.pipeline.predict(X.iloc[start : start + chunk_rows]), dtype=float) for start in range(0, len(X), chunk_rows)])


def preprocessor(data: ModelData, scale: bool):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]) if scale else "passthrough"
    return ColumnTransformer(
        [
            ("groups", OneHotEncoder(handle_unknown="ignore", sparse_output=False), data.categorical),
            ("numeric", numeric, data.numeric),
        ],
        verbose_feature_names_out=False,
    )


def xgboost_pipeline(data: ModelData, config: TrainingConfig, **params):
    from sklearn.pipeline import Pipeline
    from xgboost import XGBRegressor

    model = XGBRegressor(tree_method="hist", random_state=config.seed, n_jobs=config.nthread, **params)
    return Pipeline([("prep", preprocessor(data, scale=False)), ("model", model)])


def linear_pipeline(data: ModelData, config: TrainingConfig, **params):
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline

    return Pipeline([("prep", preprocessor(data, scale=True)), ("model", Ridge(**params))])


def train_xgboost(data: ModelData, config: TrainingConfig) -> tuple[TabularForecaster, SearchResult, dict[str, Any]]:
    """Randomized search with time-series CV, then a refit on train with early stopping on validation."""
    X = data.train.X[data.feature_columns]
    search = randomized_search(
        xgboost_pipeline(data, config), config.xgboost_space, X, data.train.y, data.train.timestamps,
        n_iter=config.xgboost_iterations, n_splits=config.cv_splits, seed=config.seed, prefix="model",
    )
    pipeline = xgboost_pipeline(data, config, early_stopping_rounds=config.early_stopping_rounds, **search.best_params)
    prep = pipeline.named_steps["prep"].fit(X)
    X_val = prep.transform(data.validation.X[data.feature_columns])
    pipeline.named_steps["model"].fit(prep.transform(X), data.train.y, eval_set=[(X_val, data.validation.y)], verbose=False)
    booster = pipeline.named_steps["model"]
    extra = {"best_iteration": int(booster.best_iteration), "n_estimators_searched": search.best_params.get("n_estimators")}
    return TabularForecaster(pipeline, data.feature_columns, "xgboost"), search, extra


def train_linear(data: ModelData, config: TrainingConfig) -> tuple[TabularForecaster, SearchResult, dict[str, Any]]:
    X = data.train.X[data.feature_columns]
    search = randomized_search(
        linear_pipeline(data, config), config.linear_space, X, data.train.y, data.train.timestamps,
        n_iter=config.linear_iterations, n_splits=config.cv_splits, seed=config.seed, prefix="model",
    )
    pipeline = linear_pipeline(data, config, **search.best_params).fit(X, data.train.y)
    return TabularForecaster(pipeline, data.feature_columns, "linear"), search, {}


def refit_with_weights(forecaster: TabularForecaster, data: ModelData, weights: np.ndarray, config: TrainingConfig) -> TabularForecaster:
    """The same pipeline and hyperparameters, fitted again with per-row sample weights."""
    from sklearn.base import clone

    pipeline = clone(forecaster.pipeline)
    X = data.train.X[data.feature_columns]
    if forecaster.kind == "xgboost":
        prep = pipeline.named_steps["prep"].fit(X)
        X_val = prep.transform(data.validation.X[data.feature_columns])
        pipeline.named_steps["model"].fit(prep.transform(X), data.train.y, sample_weight=weights, eval_set=[(X_val, data.validation.y)], verbose=False)
    else:
        pipeline.fit(X, data.train.y, model__sample_weight=weights)
    return TabularForecaster(pipeline, forecaster.feature_columns, forecaster.kind)
