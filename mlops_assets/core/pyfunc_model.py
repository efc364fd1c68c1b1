"""The MLflow pyfunc that every candidate is logged as: preprocessing included, the same
input (timestamp + features) for all model families.

Importing this module does not import mlflow: `ForecastModel` (an `mlflow.pyfunc.PythonModel`)
is built on first use. Logged models refer to it by this module and name, which is where pickle
looks it up, so models logged before stay loadable."""

from typing import Any

PIP_PACKAGES = ("mlops_assets", "mlflow", "scikit-learn", "xgboost", "keras", "jax", "jaxlib", "pandas", "numpy", "polars", "joblib")


def __getattr__(name: str) -> Any:
    if name == "ForecastModel":
        globals()["ForecastModel"] = model_class = _forecast_model_class()
        return model_class
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _forecast_model_class() -> type:
    import joblib
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd

    # Annotations are evaluated here (no `from __future__ import annotations` in this module):
    # MLflow reads predict's type hints, and np/pd are local names.
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

    # Pickled by reference (module + name), as when it was a module-level class.
    ForecastModel.__module__, ForecastModel.__qualname__ = __name__, "ForecastModel"
    return ForecastModel


def load_forecaster(model_uri: str):
    """The fitted forecaster behind a logged model (for re-training and explanations)."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().forecaster
