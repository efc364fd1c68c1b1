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


def _logged_forecaster(pyfunc_model: Any) -> Any:
    """What the pyfunc wrapper predicts with: a `GroupRouter` for a grouped model logged since
    the group fallback, the bare forecaster otherwise. Takes a loaded pyfunc model or the
    `ForecastModel` itself."""
    python_model = pyfunc_model.unwrap_python_model() if hasattr(pyfunc_model, "unwrap_python_model") else pyfunc_model
    return python_model.forecaster


def _router(pyfunc_model: Any) -> Any:
    from mlops_assets.core.models.fallback import GroupRouter

    forecaster = _logged_forecaster(pyfunc_model)
    return forecaster if isinstance(forecaster, GroupRouter) else None


def load_forecaster(model_uri: str):
    """The fitted primary forecaster behind a logged model (for re-training, mitigation and
    explanations): the model itself, never the group fallback around it."""
    import mlflow.pyfunc

    from mlops_assets.core.models.fallback import primary_of

    return primary_of(_logged_forecaster(mlflow.pyfunc.load_model(model_uri)))


def served_by(pyfunc_model: Any, frame: Any):
    """numpy array of "model" / "fallback" per row of `frame`: which part of the logged model
    forecasts it. All "model" for a single series or a model logged without a group fallback."""
    import numpy as np
    import pandas as pd

    router = _router(pyfunc_model)
    if router is None:
        return np.full(len(frame), "model", dtype=object)
    return router.served_by(pd.DataFrame(frame)).astype(object)


def known_groups(pyfunc_model: Any) -> list[str] | None:
    """The groups the model forecasts itself (the rest go to the fallback); None for a single
    series or a model logged without a group fallback."""
    router = _router(pyfunc_model)
    return None if router is None else list(router.known)


def interval_calibrator(pyfunc_model: Any):
    """The calibrated interval logged with the model (core/intervals.py), or None for a model
    logged before intervals."""
    return getattr(_logged_forecaster(pyfunc_model), "interval_calibrator", None)


def predict_interval(pyfunc_model: Any, frame: Any, calibrator: Any = None) -> tuple[Any, Any, Any]:
    """(prediction, lower, upper) for the rows of `frame`: the model's forecast and its interval
    from `calibrator` (default: the one logged with the model; NaN bounds without one)."""
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(frame)
    predictions = np.asarray(pyfunc_model.predict(frame), dtype=float)
    calibrator = calibrator if calibrator is not None else interval_calibrator(pyfunc_model)
    if calibrator is None:
        missing = np.full(len(predictions), np.nan)
        return predictions, missing, missing.copy()
    lower, upper = calibrator.interval(predictions, frame)
    return predictions, lower, upper
