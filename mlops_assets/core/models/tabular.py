"""XGBoost and regularised linear regression as scikit-learn pipelines: preprocessing (fitted
on the rows the model is fitted on) travels with the model.

`ForecastDesign` is the `prep` step of every family. What each family gets on top of the
feature columns:
- degree days (all three, when the spec names a temperature column): heating and cooling
  degrees of the temperature and of its rolling means against one balance temperature fitted on
  the training rows (`fit_balance`);
- ridge: one-hot of the local time-of-day slot (at least 30 min wide), of the slot on days off
  (weekend or holiday) and of the day of week, so it can draw daily and weekly load shapes
  linearly; and the temperature's degree days per slot (the response depends on the hour);
- ridge and LSTM: missing values imputed with training medians, then scaled; XGBoost keeps NaN
  (it routes missing values natively).
Its output names are the feature each column comes from (repeated for one-hot and degree-day
columns), so SHAP values fold back onto the features the spec declares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from mlops_assets.core.models.data import ModelData, Split
from mlops_assets.core.models.search import SearchResult, randomized_search
from mlops_assets.core.training_config import TrainingConfig

# Local time of day from the calendar columns, in order of preference: (sin, cos) pairs of the
# day's cycle, else the local hour.
_DAY_CYCLES = (
    ("minute_of_day_sin", "minute_of_day_cos"), ("minute_sin", "minute_cos"),
    ("time_of_day_sin", "time_of_day_cos"), ("hour_sin", "hour_cos"),
)
_OFF_DAY = ("is_weekend", "is_holiday")
# Ridge's time-of-day slots are at least this wide: 48 a day at most, so the one-hot design
# matrix of 5- or 15-minute data stays as narrow as that of half-hourly data.
MIN_SLOT_MINUTES = 30.0
# Scaled inputs of ridge and the LSTM are bounded to this many training SDs.
MAX_SCALED = 10.0


def fit_balance(
    temperature: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None, candidates: int = 41,
) -> float:
    """The balance temperature of a piecewise-linear fit y ~ a + b*max(T_b - T, 0) + c*max(T - T_b, 0),
    T_b searched over the 5th..95th temperature percentiles, minimising the squared residual.
    With groups, each group's mean target is removed first (levels differ, the shape is shared)."""
    t, y = np.asarray(temperature, float), np.asarray(y, float)
    keep = np.isfinite(t) & np.isfinite(y)
    t, y = t[keep], y[keep]
    if groups is not None:
        labels = np.asarray(groups).astype(str)[keep]
        means = pd.Series(y).groupby(labels).transform("mean").to_numpy()
        y = y - means
    if t.size < 10 or np.unique(t).size < 3:
        return float(np.median(t)) if t.size else 18.0
    best, best_sse = float(np.median(t)), np.inf
    for balance in np.unique(np.quantile(t, np.linspace(0.05, 0.95, candidates))):
        design = np.column_stack([np.ones_like(t), np.maximum(balance - t, 0), np.maximum(t - balance, 0)])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        sse = float(np.sum((design @ coef - y) ** 2))
        if sse < best_sse:
            best, best_sse = float(balance), sse
    return best


def local_minute_of_day(X: pd.DataFrame) -> tuple[np.ndarray | None, str | None]:
    """(minute of the local day per row, the column it was read from) from the calendar columns."""
    for sin, cos in _DAY_CYCLES:
        if sin in X.columns and cos in X.columns:
            angle = np.mod(np.arctan2(X[sin].to_numpy(float), X[cos].to_numpy(float)), 2 * np.pi)
            return angle / (2 * np.pi) * 1440.0, sin
    if "hour" in X.columns:
        return X["hour"].to_numpy(float) * 60.0, "hour"
    return None, None


class ForecastDesign(TransformerMixin, BaseEstimator):
    """Feature columns -> model matrix (see the module docstring). Fitted attributes:
    `balance_` (°, or None), `columns_` (the inner ColumnTransformer), `names_` (source feature
    of each output column)."""

    def __init__(
        self, categorical=(), numeric=(), temperature=None, group=None, calendar_onehot=False, scale=False,
        step_minutes=60.0,
    ):
        self.categorical = categorical
        self.numeric = numeric
        self.temperature = temperature
        self.group = group
        self.calendar_onehot = calendar_onehot
        self.scale = scale
        self.step_minutes = step_minutes

    @property
    def _slot_minutes(self) -> float:
        return max(float(self.step_minutes), MIN_SLOT_MINUTES)

    def _derived(self, X: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[str]], dict[str, str]]:
        """(frame with derived columns, {"onehot"/"numeric": derived names}, derived -> source)."""
        columns: dict[str, np.ndarray] = {}
        derived, source = {"onehot": [], "numeric": []}, {}
        slot = self._calendar(X, columns, derived, source) if self.calendar_onehot else None
        if self.balance_ is not None:
            self._degree_days(X, columns, derived, source, slot)
        if not columns:
            return X, derived, source
        return pd.concat([X, pd.DataFrame(columns, index=X.index)], axis=1), derived, source

    def _temperature_columns(self, X: pd.DataFrame) -> list[str]:
        """The temperature and its rolling means (the building stock responds with inertia)."""
        means = [c for c in self.numeric if c.startswith(f"{self.temperature}_roll_mean_") and c in X.columns]
        return [self.temperature, *means]

    def _degree_days(
        self, X: pd.DataFrame, columns: dict, derived: dict, source: dict, slot: np.ndarray | None,
    ) -> None:
        """Heating and cooling degrees of each temperature column; with slots, those of the
        temperature itself also per time-of-day slot (cooling matters while people are awake)."""
        for col in self._temperature_columns(X):
            t = X[col].to_numpy(float)
            degrees = {"heating": np.maximum(self.balance_ - t, 0.0), "cooling": np.maximum(t - self.balance_, 0.0)}
            for kind, values in degrees.items():
                names = [f"__{kind}_degrees_{col}"]
                columns[names[0]] = values
                if slot is not None and col == self.temperature:
                    slots = round(1440 / self._slot_minutes)
                    by_slot = np.eye(slots)[slot] * values[:, None]
                    names += [f"__{kind}_slot_{s}" for s in range(slots)]
                    columns.update(zip(names[1:], by_slot.T))
                derived["numeric"] += names
                source.update(dict.fromkeys(names, col))

    def _calendar(self, X: pd.DataFrame, columns: dict, derived: dict, source: dict) -> np.ndarray | None:
        """One-hot time-of-day slot, slot on days off, and day of week; returns the slots."""
        slot = None
        minutes, column = local_minute_of_day(X)
        if minutes is not None:
            step, width = float(self.step_minutes), self._slot_minutes
            on_grid = np.round(np.nan_to_num(minutes, nan=0.0) / step) * step  # sin/cos round trips are inexact
            slot = np.floor(on_grid / width).astype(int) % max(1, round(1440 / width))
            off = np.zeros(len(X), dtype=bool)
            for col in _OFF_DAY:
                if col in X.columns:
                    off |= X[col].fillna(0).to_numpy(float) > 0
            columns.update({"__slot": slot, "__slot_off_day": np.where(off, slot, -1)})
            derived["onehot"] += ["__slot", "__slot_off_day"]
            source.update({"__slot": column, "__slot_off_day": column})
        if "day_of_week" in X.columns:
            columns["__day_of_week"] = X["day_of_week"].fillna(-1).astype(int).to_numpy()
            derived["onehot"].append("__day_of_week")
            source["__day_of_week"] = "day_of_week"
        return slot

    def fit(self, X: pd.DataFrame, y=None):
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

        has_temperature = bool(self.temperature) and self.temperature in X.columns and y is not None
        groups = X[self.group].to_numpy() if self.group and self.group in X.columns else None
        self.balance_ = fit_balance(X[self.temperature].to_numpy(float), y, groups) if has_temperature else None
        frame, derived, source = self._derived(X)
        numeric = [*self.numeric, *derived["numeric"]]
        numeric_step = (
            Pipeline([
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
                # A column nearly constant in training (a degree-day slot of a mild season) would put a
                # cold test hour thousands of SDs out and a linear model with it: bound the extrapolation.
                ("bound", FunctionTransformer(np.clip, kw_args={"a_min": -MAX_SCALED, "a_max": MAX_SCALED},
                                              feature_names_out="one-to-one")),
            ])
            if self.scale else "passthrough"
        )
        onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        self.columns_ = ColumnTransformer(
            [
                ("groups", onehot, list(self.categorical)),
                ("calendar", onehot, derived["onehot"]),
                ("numeric", numeric_step, numeric),
            ],
            verbose_feature_names_out=True,
        ).fit(frame, y)
        self.names_ = [self._source(name, source) for name in self.columns_.get_feature_names_out()]
        return self

    def _source(self, name: str, source: dict[str, str]) -> str:
        step, column = name.split("__", 1)
        if step == "numeric":
            return source.get(column, column)
        if step == "groups":
            return next(c for c in self.categorical if column.startswith(f"{c}_"))
        return next(source[d] for d in sorted(source, key=len, reverse=True) if column.startswith(f"{d}_"))

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.columns_.transform(self._derived(X)[0]), dtype=float)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray(self.names_, dtype=object)


@dataclass
class TabularForecaster:
    """A fitted pipeline plus the columns it reads; `predict` takes a pandas frame. `fit_info`
    says what it was fitted on ("train" or "train+validation", rows, first/last timestamp) and
    the early-stopping iteration of an XGBoost train-only fit."""

    pipeline: Any
    feature_columns: list[str]
    kind: str
    fit_info: dict[str, Any] = field(default_factory=dict)

    def predict(self, frame, chunk_rows: int = 100_000) -> np.ndarray:
        """Row by row independent, so predicted in chunks: the dense one-hot matrix of a large
        frame is never built whole."""
        X = frame[self.feature_columns]
        if len(X) <= chunk_rows:
            return np.asarray(self.pipeline.predict(X), dtype=float)
        return np.concatenate([
            np.asarray(self.pipeline.predict(X.iloc[start : start + chunk_rows]), dtype=float)
            for start in range(0, len(X), chunk_rows)
        ])


def fit_record(split: Split, fitted_on: str) -> dict[str, Any]:
    """What a model was fitted on: "train" or "train+validation", rows, first and last timestamp."""
    first, last = (str(split.timestamps.min()), str(split.timestamps.max())) if len(split) else (None, None)
    return {"fitted_on": fitted_on, "rows": len(split), "first_timestamp": first, "last_timestamp": last}


def preprocessor(data: ModelData, scale: bool, calendar_onehot: bool = False) -> ForecastDesign:
    step = data.frequency.total_seconds() / 60 if data.frequency else 60.0
    return ForecastDesign(
        list(data.categorical), list(data.numeric), data.temperature, data.group, calendar_onehot, scale, step,
    )


def xgboost_pipeline(data: ModelData, config: TrainingConfig, **params):
    from sklearn.pipeline import Pipeline
    from xgboost import XGBRegressor

    model = XGBRegressor(tree_method="hist", random_state=config.seed, n_jobs=config.nthread, **params)
    return Pipeline([("prep", preprocessor(data, scale=False)), ("model", model)])


def linear_pipeline(data: ModelData, config: TrainingConfig, **params):
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline

    return Pipeline([("prep", preprocessor(data, scale=True, calendar_onehot=True)), ("model", Ridge(**params))])


def _fit_xgboost_early_stopping(pipeline, data: ModelData, weights: np.ndarray | None = None) -> None:
    X = data.train.X[data.feature_columns]
    prep = pipeline.named_steps["prep"].fit(X, data.train.y)
    X_val = prep.transform(data.validation.X[data.feature_columns])
    pipeline.named_steps["model"].fit(
        prep.transform(X), data.train.y, sample_weight=weights, eval_set=[(X_val, data.validation.y)], verbose=False,
    )


def train_xgboost(data: ModelData, config: TrainingConfig) -> tuple[TabularForecaster, SearchResult, dict[str, Any]]:
    """Randomized search with time-series CV, then a fit on train with early stopping on validation."""
    X = data.train.X[data.feature_columns]
    # Fits run side by side in the search: each one single-threaded.
    threads = 1 if config.parallel_fits > 1 else config.nthread
    search = randomized_search(
        xgboost_pipeline(data, config).set_params(model__n_jobs=threads), config.xgboost_space, X, data.train.y, data.train.timestamps,
        n_iter=config.xgboost_iterations, n_splits=config.cv_splits, seed=config.seed, prefix="model", parallel_fits=config.parallel_fits,
    )
    pipeline = xgboost_pipeline(data, config, early_stopping_rounds=config.early_stopping_rounds, **search.best_params)
    _fit_xgboost_early_stopping(pipeline, data)
    best = int(pipeline.named_steps["model"].best_iteration)
    extra = {"best_iteration": best, "n_estimators_searched": search.best_params.get("n_estimators")}
    info = {**fit_record(data.train, "train"), "best_iteration": best}
    return TabularForecaster(pipeline, data.feature_columns, "xgboost", info), search, extra


def train_linear(data: ModelData, config: TrainingConfig) -> tuple[TabularForecaster, SearchResult, dict[str, Any]]:
    X = data.train.X[data.feature_columns]
    search = randomized_search(
        linear_pipeline(data, config), config.linear_space, X, data.train.y, data.train.timestamps,
        n_iter=config.linear_iterations, n_splits=config.cv_splits, seed=config.seed, prefix="model", parallel_fits=config.parallel_fits,
    )
    pipeline = linear_pipeline(data, config, **search.best_params).fit(X, data.train.y)
    return TabularForecaster(pipeline, data.feature_columns, "linear", fit_record(data.train, "train")), search, {}


def refit_with_weights(
    forecaster: TabularForecaster, data: ModelData, weights: np.ndarray | None, config: TrainingConfig,
) -> TabularForecaster:
    """The same pipeline and hyperparameters fitted again on the training split, with per-row
    sample weights (XGBoost: early stopping on validation when the pipeline uses it)."""
    from sklearn.base import clone

    pipeline = clone(forecaster.pipeline)
    info = fit_record(data.train, "train")
    if forecaster.kind == "xgboost" and pipeline.named_steps["model"].get_params().get("early_stopping_rounds"):
        _fit_xgboost_early_stopping(pipeline, data, weights)
        info["best_iteration"] = int(pipeline.named_steps["model"].best_iteration)
    else:
        pipeline.fit(data.train.X[forecaster.feature_columns], data.train.y, model__sample_weight=weights)
        info["best_iteration"] = forecaster.fit_info.get("best_iteration")
    return TabularForecaster(pipeline, forecaster.feature_columns, forecaster.kind, info)


def refit_tabular(
    forecaster: TabularForecaster, data: ModelData, weights: np.ndarray | None = None,
) -> TabularForecaster:
    """The chosen hyperparameters fitted on train + validation (test untouched): XGBoost with
    n_estimators = best_iteration + 1 of the early-stopped train-only fit and no early stopping;
    ridge with its alpha. `weights` are per row of train + validation."""
    from sklearn.base import clone

    pipeline = clone(forecaster.pipeline)
    best = forecaster.fit_info.get("best_iteration")
    if forecaster.kind == "xgboost":
        trees = {"model__n_estimators": best + 1} if best is not None else {}
        pipeline.set_params(model__early_stopping_rounds=None, **trees)
    split = data.train_and_validation()
    pipeline.fit(split.X[forecaster.feature_columns], split.y, model__sample_weight=weights)
    info = {**fit_record(split, "train+validation"), "best_iteration": best}
    return TabularForecaster(pipeline, forecaster.feature_columns, forecaster.kind, info)
