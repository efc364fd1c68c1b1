"""Turning split frames into model inputs (pandas, as scikit-learn and MLflow expect)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl

from mlops_assets.core.features import categorical_columns, feature_columns
from mlops_assets.core.spec import DatasetSpec


@dataclass
class Split:
    X: pd.DataFrame
    y: np.ndarray
    timestamps: np.ndarray
    groups: np.ndarray | None

    def __len__(self) -> int:
        return len(self.y)


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


def model_columns(spec: DatasetSpec) -> list[str]:
    """Every column `to_split` reads."""
    return list(dict.fromkeys([*input_columns(spec), spec.target.column, *([spec.group] if spec.group else [])]))


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
        y=ordered.get_column(spec.target.column).to_numpy().astype(float),
        timestamps=ordered.get_column(spec.timestamp).to_numpy(),
        groups=ordered.get_column(spec.group).to_numpy().astype(str) if spec.group else None,
    )


def model_data(train: pl.DataFrame | pl.LazyFrame, validation: pl.DataFrame, test: pl.DataFrame, spec: DatasetSpec, max_train_rows: int | None = None) -> ModelData:
    """Pandas inputs for the three splits; the training split cut to its newest
    `max_train_rows` rows (whole hours) and to the model's columns before conversion: given a
    lazy scan, the cut rows are never read."""
    categorical = categorical_columns(spec)
    features = feature_columns(spec)
    train = train.lazy().select(model_columns(spec))
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
    )
