"""The MLflow pyfunc that every candidate is logged as: preprocessing included, the same
input (timestamp + features) for all model families. Imported only where MLflow is used."""

from __future__ import annotations

import joblib
import mlflow.pyfunc
import numpy as np
import pandas as pd

PIP_PACKAGES = ("mlops_assets", "mlflow", "scikit-learn", "xgboost", "keras", "jax", "jaxlib", "pandas", "numpy", "polars", "joblib")


class ForecastModel(mlflow.pyfunc.PythonModel):
    """Loads the fitted forecaster from the run's artifacts (our own store only)."""

    def load_context(self, context) -> None:
        self.forecaster = joblib.load(context.artifacts["forecaster"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        frame = pd.DataFrame(model_input).copy()
        ts = getattr(self.forecaster, "timestamp", None)
        if ts and ts in frame.columns:
            frame[ts] = pd.to_datetime(frame[ts], utc=True).dt.tz_localize(None)
        group = getattr(self.forecaster, "group", None)
        if group and group in frame.columns:
            frame[group] = frame[group].astype(str)
        return self.forecaster.predict(frame)


def load_forecaster(model_uri: str):
    """The fitted forecaster behind a logged model (for re-training and explanations)."""
    return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().forecaster
