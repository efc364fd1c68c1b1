"""Request latency of `mlops-assets serve` (request checks + group fallback) against the plain
`mlflow models serve` of the same model, both real processes on 127.0.0.1.

    python bench/serving_latency.py [--kind xgboost] [--requests 200] [--out bench/results/serving_latency.json]

A champion is trained on the demo simulator's data (8 subregions, 120 days, cleaned as a
landed batch), logged by the training's own `log_model` (so it carries the group fallback),
registered in a throwaway MLflow store and given the alias `champion`. Both servers load
`models:/load_forecaster@champion`. Each request is a `dataframe_records` JSON body of 1 or
1,000 test rows, sent over one kept-alive connection after a warm-up; latency is the client's
wall time from sending to the whole answer read. Both servers' predictions are compared.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import load_average, load_note, machine_info, now_utc  # noqa: E402

DEFAULT_OUT = ROOT / "bench" / "results" / "serving_latency.json"
NAME = "load_forecaster"
SIZES = (1, 1000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_champion(home: Path, kind: str) -> list[dict]:
    """Train, log (with the group fallback), register as champion; returns test rows as records."""
    import mlflow
    import polars as pl

    from mlops_assets.core.cleaning import clean_batch
    from mlops_assets.core.features import build_features, feature_columns
    from mlops_assets.core.ingest import parse_batch
    from mlops_assets.core.models.data import model_data
    from mlops_assets.core.models.evaluation import refit
    from mlops_assets.core.models.tabular import train_linear, train_xgboost
    from mlops_assets.core.sample_data import to_csv
    from mlops_assets.core.simulate import SimulationConfig, simulate_frame
    from mlops_assets.core.spec import load_spec
    from mlops_assets.core.splitting import time_split
    from mlops_assets.core.training_config import load_training_config
    from mlops_assets.defs.training.tracking import log_model
    from mlops_assets.resources.tracking import MlflowTracking

    spec, config = load_spec(), load_training_config("fast")
    raw = simulate_frame(spec, SimulationConfig(start=date(2024, 1, 1), days=120, groups=8, seed=7))
    clean = clean_batch(parse_batch("sim.csv", to_csv(raw)), spec, "sim.csv")[0]
    features, _ = build_features(clean, spec)
    train, validation, test, _ = time_split(features, spec)
    data = model_data(train, validation, test, spec)
    model = (train_xgboost if kind == "xgboost" else train_linear)(data, config)[0]
    final = refit(model, data, config)
    tracking = MlflowTracking(tracking_uri=f"sqlite:///{home / 'mlflow.db'}", artifact_root=str(home / "mlartifacts"))
    client = tracking.client()
    with mlflow.start_run(experiment_id=tracking.experiment_id()):
        info = log_model(final, data, config.seed)
    mlflow.register_model(info.model_uri, NAME)
    client.set_registered_model_alias(NAME, "champion", "1")
    rows = test.select(spec.timestamp, *feature_columns(spec)).with_columns(pl.col(spec.timestamp).dt.strftime("%Y-%m-%dT%H:%M:%S"))
    return rows.head(max(SIZES)).to_dicts()


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(command, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(port: int, process: subprocess.Popen, log: Path, timeout_s: float = 240) -> float:
    started = time.perf_counter()
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        if process.poll() is not None or time.perf_counter() - started > timeout_s:
            raise RuntimeError(f"server on {port} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.25)


def stop(process: subprocess.Popen) -> None:
    import signal

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def measure(port: int, body: bytes, requests: int, warmup: int) -> tuple[dict[str, float], dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json"}
    times, answer = [], {}
    for i in range(warmup + requests):
        started = time.perf_counter()
        connection.request("POST", "/invocations", body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {payload[:500]!r}")
        if i >= warmup:
            times.append(elapsed * 1000)
        answer = json.loads(payload)
    connection.close()
    ms = np.asarray(times)
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "mean_ms": round(float(ms.mean()), 2), "requests": len(ms),
    }, answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", default="xgboost", choices=("xgboost", "linear"))
    parser.add_argument("--requests", type=int, default=200, help="Measured requests per size (1,000-row: a quarter).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    from mlops_assets.serving import serve_command

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "mlops"
        home.mkdir()
        print("training and registering the champion ...", flush=True)
        records = build_champion(home, args.kind)
        bin_dir = str(Path(sys.executable).parent)
        env = {**os.environ, "MLOPS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        env.pop("MLFLOW_TRACKING_URI", None)
        ours_port, plain_port = free_port(), free_port()
        tracking = f"sqlite:///{home / 'mlflow.db'}"
        servers = {
            "mlops-assets serve": (
                [sys.executable, "-m", "mlops_assets.cli", "serve", "--port", str(ours_port), "--reload-seconds", "0"], ours_port,
            ),
            "mlflow models serve": (serve_command(f"models:/{NAME}@champion", "127.0.0.1", plain_port), plain_port),
        }
        results: dict[str, Any] = {}
        predictions: dict[str, list] = {}
        loads = [load_average()]
        for name, (command, port) in servers.items():
            log = home / f"{port}.log"
            process = start(command, {**env, "MLFLOW_TRACKING_URI": tracking, "MLFLOW_REGISTRY_URI": tracking} if "mlflow" in name else env, log)
            try:
                ready = wait_ready(port, process, log)
                results[name] = {"startup_seconds": round(ready, 1)}
                for size in SIZES:
                    body = json.dumps({"dataframe_records": records[:size]}).encode()
                    count = args.requests if size == 1 else max(10, args.requests // 4)
                    stats, answer = measure(port, body, count, warmup=5)
                    results[name][f"{size}_rows"] = stats
                    predictions[f"{name}/{size}"] = answer["predictions"]
                    print(f"{name:>20} {size:>5} rows: p50 {stats['p50_ms']} ms, p99 {stats['p99_ms']} ms", flush=True)
                    loads.append(load_average())
            finally:
                stop(process)
        same = all(
            np.allclose(predictions[f"mlops-assets serve/{size}"], predictions[f"mlflow models serve/{size}"], rtol=1e-9)
            for size in SIZES
        )
    report = {
        "what": "client-side latency per /invocations request (dataframe_records JSON), one kept-alive connection",
        "model": args.kind, "results": results, "same_predictions": bool(same),
        "overhead_p50_ms": {
            f"{size}_rows": round(results["mlops-assets serve"][f"{size}_rows"]["p50_ms"] - results["mlflow models serve"][f"{size}_rows"]["p50_ms"], 2)
            for size in SIZES
        },
        "when": now_utc(), "machine": machine_info(("mlflow", "uvicorn", "starlette", "xgboost")), "load": load_note(loads),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: report[k] for k in ("results", "same_predictions", "overhead_p50_ms")}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
