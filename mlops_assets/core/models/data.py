"""Turning split frames into model inputs (pandas, as scikit-learn and MLflow expect)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pandas as pd
import polars as pl

from mlops_assets.core import features as _features
from mlops_assets.core.features import categorical_columns, feature_columns
from mlops_assets.core.metrics import BASELINES, group_scales
from mlops_assets.core.spec import DatasetSpec

# The baseline forecasts carried in the split frames (not model inputs), by metric name.
BASELINE_COLUMNS: tuple[str, ...] = tuple(
    getattr(_features, "BASELINE_COLUMNS", ("baseline_seasonal_naive", "baseline_day_before"))
)


@dataclass
class Split:
    """Model inputs `X` (timestamp + features), the target, and per row its timestamp, group and
    the baseline forecasts {"seasonal_naive": ..., "day_before": ...} (NaN where unavailable)."""

    X: pd.DataFrame
    y: np.ndarray
    timestamps: np.ndarray
    groups: np.ndarray | None
    baselines: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def baseline(self, name: str) -> np.ndarray:
        values = self.baselines.get(name)
        return np.full(len(self), np.nan) if values is None else values


def combine(first: Split, second: Split) -> Split:
    """`first` followed by `second` (train then validation: still time-ordered)."""
    return Split(
        X=pd.concat([first.X, second.X], ignore_index=True),
        y=np.concatenate([first.y, second.y]),
        timestamps=np.concatenate([first.timestamps, second.timestamps]),
        groups=None if first.groups is None else np.concatenate([first.groups, second.groups]),
        baselines={name: np.concatenate([first.baseline(name), second.baseline(name)]) for name in BASELINES},
    )


@dataclass
class ModelData:
    """Model inputs keep the timestamp column (sequence models order by it); tabular models
    use `feature_columns` only."""

    train: Split
    validation: Split
    test: Split
    feature_columns: list[str]
    categorical: list[str]
    numeric: list[str]
    timestamp: str
    group: str | None
    train_rows_available: int = 0  # training rows before `max_train_rows` (len(train) = rows used)
    frequency: timedelta | None = None  # the data's step (None: hourly)
    temperature: str | None = None  # the spec's temperature column: degree days when set
    target: str | None = None  # the spec's target column (its lags are named after it)

    def train_and_validation(self) -> Split:
        """What the registered model is refitted on (the test split stays untouched)."""
        return combine(self.train, self.validation)

    def mase_scales(self) -> dict:
        """MASE scales from the training split: {"overall": float, "by_group": {label: float}}."""
        return group_scales(self.train.y, self.train.baseline("seasonal_naive"), self.train.groups)


def newest_rows(frame: pl.DataFrame | pl.LazyFrame, timestamp: str, max_rows: int | None) -> pl.DataFrame:
    """The newest whole timestamps of `frame` holding at most `max_rows` rows: every group
    keeps its most recent history and all groups of one hour stay together. The whole frame
    when it fits (or `max_rows` is None); at least the newest timestamp otherwise. A lazy frame
    (a Parquet scan) is read only for the rows kept."""
    lazy = frame.lazy()
    if max_rows is None:
        return lazy.collect()
    per_hour = lazy.group_by(timestamp).len().sort(timestamp, descending=True).collect()
    if per_hour.get_column("len").sum() <= max_rows:
        return lazy.collect()
    fits = per_hour.filter(pl.col("len").cum_sum() <= max_rows)
    cut = (fits if fits.height else per_hour.head(1)).get_column(timestamp).min()
    return lazy.filter(pl.col(timestamp) >= cut).collect()


def model_columns(spec: DatasetSpec, available: list[str] | None = None) -> list[str]:
    """Every column `to_split` reads (the baseline columns only where `available` has them)."""
    baselines = [c for c in BASELINE_COLUMNS if available is None or c in available]
    group = [spec.group] if spec.group else []
    return list(dict.fromkeys([*input_columns(spec), spec.target.column, *group, *baselines]))


def input_columns(spec: DatasetSpec) -> list[str]:
    """What a served model receives: the timestamp plus the features (group included)."""
    return [spec.timestamp, *feature_columns(spec)]


def to_split(frame: pl.DataFrame, spec: DatasetSpec) -> Split:
    ordered = frame.sort([spec.timestamp, *([spec.group] if spec.group else [])])
    pdf = ordered.select(input_columns(spec)).to_pandas()
    for col in categorical_columns(spec):
        pdf[col] = pdf[col].astype(str)
    pdf[spec.timestamp] = pdf[spec.timestamp].dt.tz_convert("UTC").dt.tz_localize(None)
    return Split(
        X=pdf,
        y=ordered.get_column(spec.target.column).cast(pl.Float64).fill_null(float("nan")).to_numpy(),
        timestamps=ordered.get_column(spec.timestamp).to_numpy(),
        groups=ordered.get_column(spec.group).to_numpy().astype(str) if spec.group else None,
        baselines=_baselines(ordered),
    )


def _baselines(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """Baseline columns as float arrays (NaN where null); absent columns (older frames) are
    left out, which every metric reads as "baseline unavailable"."""
    return {
        name: frame.get_column(f"baseline_{name}").cast(pl.Float64).fill_null(float("nan")).to_numpy()
        for name in BASELINES
        if f"baseline_{name}" in frame.columns
    }


def model_data(train: pl.DataFrame | pl.LazyFrame, validation: pl.DataFrame, test: pl.DataFrame, spec: DatasetSpec, max_train_rows: int | None = None) -> ModelData:
    """Pandas inputs for the three splits; the training split cut to its newest
    `max_train_rows` rows (whole hours) and to the model's columns before conversion: given a
    lazy scan, the cut rows are never read."""
    categorical = categorical_columns(spec)
    features = feature_columns(spec)
    train = train.lazy()
    train = train.select(model_columns(spec, train.collect_schema().names()))
    available = train.select(pl.len()).collect().item()
    return ModelData(
        train=to_split(newest_rows(train, spec.timestamp, max_train_rows), spec),
        validation=to_split(validation, spec),
        test=to_split(test, spec),
        feature_columns=features,
        categorical=categorical,
        numeric=[c for c in features if c not in categorical],
        timestamp=spec.timestamp,
        group=spec.group,
        train_rows_available=available,
        frequency=spec.frequency_delta,
        temperature=getattr(spec, "temperature_column", None),
        target=spec.target.column,
    )
