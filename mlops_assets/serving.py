"""Serving: the smoke test in a fresh process, and `mlflow models serve` on the champion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

SMOKE_TIMEOUT_S = 300


def smoke_test(model_uri: str, tracking_uri: str, sample: pd.DataFrame) -> dict:
    """Load `model_uri` through pyfunc in a new Python process and predict `sample`."""
    with tempfile.TemporaryDirectory() as tmp:
        sample_path = Path(tmp) / "sample.parquet"
        sample.to_parquet(sample_path)
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_REGISTRY_URI": tracking_uri, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax")}
        started = time.perf_counter()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "mlops_assets.serving", model_uri, str(sample_path)],
                capture_output=True, text=True, timeout=SMOKE_TIMEOUT_S, env=env,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"no answer within {SMOKE_TIMEOUT_S}s"}
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            return {"error": (done.stderr.strip().splitlines() or ["exit code %d" % done.returncode])[-1][:500], "seconds": seconds}
        return {**json.loads(done.stdout.strip().splitlines()[-1]), "seconds": seconds}


def serve_command(model_uri: str, host: str, port: int) -> list[str]:
    return [str(Path(sys.executable).with_name("mlflow")), "models", "serve", "-m", model_uri, "-h", host, "-p", str(port), "--env-manager", "local"]


def _child(model_uri: str, sample_path: str) -> None:
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(model_uri)
    predictions = model.predict(pd.read_parquet(sample_path))
    print(json.dumps({"predictions": [float(p) for p in list(predictions)]}))


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
