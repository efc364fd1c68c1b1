"""The adapted prediction interval of each champion version: calibrated at training (logged with
the model), then moved by every labelled batch it scores (core/intervals.py). One JSON file
per version under `DriftSettings.interval_state_root()`: the calibrator and, per batch, the
realized coverage and width of the intervals given before its labels were seen."""

import json
from datetime import datetime, timezone
from typing import Any

import numpy as np

from mlops_assets.core.intervals import IntervalCalibrator, batch_coverage
from mlops_assets.resources.gcs import storage_path
from mlops_assets.resources.landing import write_atomic
from mlops_assets.resources.monitoring import DriftSettings


def _path(drift: DriftSettings, version: str):
    return storage_path(drift.interval_state_root()) / f"v{version}.json"


def read_state(drift: DriftSettings, version: str) -> dict[str, Any] | None:
    """The stored state of `version` (None: no batch has been recorded for it)."""
    path = _path(drift, version)
    return json.loads(path.read_text()) if path.exists() else None


def current_calibrator(drift: DriftSettings, version: str, model: Any) -> IntervalCalibrator | None:
    """The version's interval as adapted so far (the one logged with the model before any
    labelled batch; None for a model logged without one)."""
    from mlops_assets.core.pyfunc_model import interval_calibrator

    state = read_state(drift, version)
    if state is not None:
        return IntervalCalibrator.from_dict(state["calibrator"])
    return interval_calibrator(model)


def record_batch(
    drift: DriftSettings, version: str, model: Any, batch: str, first_timestamp: str, y: np.ndarray, predictions: np.ndarray,
    lower: np.ndarray, upper: np.ndarray, frame: Any,
) -> list[dict[str, Any]]:
    """Record a labelled batch: its realized coverage (of the intervals it was given), and the
    calibrator moved by its scores. A batch recorded before (a re-run) changes nothing. Returns
    every recorded batch of the version, in time order."""
    from mlops_assets.locks import hold

    with hold(f"intervals-v{version}", f"recording batch {batch}"):
        state = read_state(drift, version)
        calibrator = current_calibrator(drift, version, model)
        if calibrator is None:
            return []
        batches = (state or {}).get("batches", [])
        if any(b["batch"] == batch for b in batches):
            return batches
        realized = batch_coverage(y, lower, upper)
        if realized["rows"]:
            calibrator = calibrator.updated(y, predictions, frame)
        entry = {
            "batch": batch, "first_timestamp": first_timestamp, **realized, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "alpha": calibrator.alpha.get("__all__", calibrator.nominal_alpha),
        }
        batches = sorted([*batches, entry], key=lambda b: (b["first_timestamp"], b["batch"]))
        state = {"version": version, "level": calibrator.level, "calibrator": calibrator.to_dict(), "batches": batches}
        write_atomic(_path(drift, version), json.dumps(state).encode())
        return batches
