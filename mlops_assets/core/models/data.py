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


def model_data(train: pl.DataFrame, validation: pl.DataFrame, test: pl.DataFrame, spec: DatasetSpec) -> ModelData:
    categorical = categorical_columns(spec)
    features = feature_columns(spec)
    return ModelData(
        train=to_split(train, spec),
        validation=to_split(validation, spec),
        test=to_split(test, spec),
        feature_columns=features,
        categorical=categorical,
        numeric=[c for c in features if c not in categorical],
        timestamp=spec.timestamp,
        group=spec.group,
    )
