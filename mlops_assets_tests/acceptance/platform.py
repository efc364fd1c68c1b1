"""A user's own data through `mlops-assets run`, in a subprocess, on a throwaway MLOPS_HOME:
specs, landing, and reading back what the run stored (Dagster storage, MLflow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import yaml

SPECS = Path(__file__).resolve().parents[2] / "mlops_assets" / "specs"

def write_spec(home: Path, shipped: str, **overrides: Any) -> Path:
    """The shipped example spec with top-level keys overridden, written into `home`."""
    raw = yaml.safe_load((SPECS / shipped).read_text())
    raw.update(overrides)
    home.mkdir(parents=True, exist_ok=True)
    out = home / f"spec_{shipped}"
    out.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    return out


def land(home: Path, files: list[tuple[str, bytes]]) -> None:
    landing = home / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    for name, data in files:
        (landing / name).write_bytes(data)


def run_cli(home: Path, spec: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """`mlops-assets <args>` as a user runs it, fast profile, on `home`."""
    env = {
        **os.environ, "MLOPS_HOME": str(home), "MLOPS_PROFILE": "fast", "MLOPS_SETTLE_SECONDS": "0",
        "MLOPS_DATASET_SPEC": str(spec), "KERAS_BACKEND": "jax",
    }
    for leaked in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(leaked, None)
    for leaked in ("MLOPS_LANDING_DIR", "MLOPS_STORAGE_DIR", "MLOPS_QUARANTINE_DIR"):
        env.pop(leaked, None)
    command = [sys.executable, "-m", "mlops_assets.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


def explain(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"


def stored(home: Path, name: str) -> Any:
    """An asset value as the run stored it: a frame (.parquet) or a document (.json)."""
    base = home / "storage" / name
    if base.with_suffix(".parquet").exists():
        return pl.read_parquet(base.with_suffix(".parquet"))
    return json.loads(base.with_suffix(".json").read_text())


def partitions(home: Path, name: str) -> list[str]:
    """Partition keys stored for a partitioned asset."""
    folder = home / "storage" / name
    return sorted(p.stem for p in folder.iterdir()) if folder.exists() else []


def mlflow_client(home: Path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def run_metric_keys(home: Path) -> set[str]:
    """Every metric name of every MLflow run in the store."""
    client = mlflow_client(home)
    keys: set[str] = set()
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id], max_results=500):
            keys |= set(run.data.metrics)
    return keys


def lag_errors(
    features: pl.DataFrame, raw: pl.DataFrame, timestamp: str, target: str, group: str | None, lags: dict[str, float]
) -> dict[str, int]:
    """For each lag column: rows whose value differs from the raw series `hours` earlier (same
    group), counted where the raw series has that reading; and how many rows were compared."""
    from datetime import timedelta

    keys = [group] if group else []
    utc = pl.col(timestamp).dt.convert_time_zone("UTC")
    truth = raw.filter(pl.col(target).is_not_null()).select(*keys, utc.alias("__t"), pl.col(target).alias("__raw"))
    out = {}
    for column, hours in lags.items():
        rows = features.select(*keys, (utc - timedelta(hours=hours)).alias("__t"), pl.col(column))
        joined = rows.join(truth, on=[*keys, "__t"], how="inner")
        lagged = joined.get_column(column)
        out[column] = int(((lagged - joined.get_column("__raw")).abs() > 1e-6).sum() + lagged.null_count())
        out[f"{column}:compared"] = joined.height
    return out


def champion_or_override(home: Path, spec_path: Path) -> dict:
    """After the first run: whether its version passed the gates; if it was refused, the audited
    override makes it champion so the second run has a model to monitor with (the gate's
    outcome is asserted on its own)."""
    registered = stored(home, "registered_model") if (home / "storage" / "registered_model.json").exists() else None
    if registered is None or registered["passed"]:
        return {"registered": registered, "override": None}
    reason = "acceptance: monitor a refused version"
    version = str(registered["version"])
    override = run_cli(home, spec_path, "promote", "--version", version, "--force", "--reason", reason)
    return {"registered": registered, "override": override}
