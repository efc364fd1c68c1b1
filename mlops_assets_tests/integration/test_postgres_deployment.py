"""The production shape on this machine's Postgres: the Dagster instance from deploy/dagster.yaml
and an `mlflow server` with a Postgres backend store, both real, on 127.0.0.1.

Without Postgres these tests skip with the reason; with MLOPS_REQUIRE_SERVICES=1 (CI) a
missing Postgres is a failure."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.core.spec import load_spec
from mlops_assets_tests.builders import hourly_frame
from mlops_assets_tests.pipeline import land

ROOT = Path(__file__).resolve().parents[2]
PG = {"host": os.environ.get("MLOPS_TEST_PG_HOST", "127.0.0.1"), "port": int(os.environ.get("MLOPS_TEST_PG_PORT", "5432")), "user": os.environ.get("MLOPS_TEST_PG_USER", "postgres")}


def _admin():
    import psycopg2

    conn = psycopg2.connect(dbname="postgres", connect_timeout=5, **PG)
    conn.autocommit = True
    return conn


@pytest.fixture(scope="module")
def databases():
    try:
        conn = _admin()
    except Exception as exc:  # any connection failure means: no Postgres here
        reason = f"Postgres not reachable at {PG['host']}:{PG['port']} as {PG['user']}: {str(exc).strip()[:200]}"
        if os.environ.get("MLOPS_REQUIRE_SERVICES") == "1":
            pytest.fail(f"MLOPS_REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    prefix = f"mlops_it_{uuid.uuid4().hex[:8]}"
    names = {"dagster": f"{prefix}_dagster", "mlflow": f"{prefix}_mlflow"}
    with conn.cursor() as cur:
        for name in names.values():
            cur.execute(f'CREATE DATABASE "{name}"')
    yield names
    with conn.cursor() as cur:
        for name in names.values():
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(databases, tmp_path_factory):
    port = _free_port()
    artifacts = tmp_path_factory.mktemp("pg") / "mlartifacts"
    backend = f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{databases['mlflow']}"
    log = open(artifacts.parent / "mlflow-server.log", "w")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", backend, "--artifacts-destination", str(artifacts), "--serve-artifacts", "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if server.poll() is not None:
                pytest.fail(f"mlflow server exited: {(artifacts.parent / 'mlflow-server.log').read_text()[-2000:]}")
            time.sleep(1)
    else:
        server.terminate()
        pytest.fail("mlflow server did not answer /health within 180 s")
    yield {"url": url, "artifacts": artifacts}
    server.terminate()
    server.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def production(databases, mlflow_server, tmp_path_factory):
    home = tmp_path_factory.mktemp("prod") / "mlops"
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {
        "MLOPS_DEPLOYMENT": "production", "MLOPS_HOME": str(home), "DAGSTER_HOME": str(dagster_home), "MLOPS_PROFILE": "fast",
        "MLOPS_SETTLE_SECONDS": "0", "MLOPS_PG_HOST": PG["host"], "MLOPS_PG_PORT": str(PG["port"]), "MLOPS_PG_USER": PG["user"],
        "MLOPS_PG_PASSWORD": "", "MLOPS_PG_DAGSTER_DB": databases["dagster"], "MLOPS_TRACKING_URI": mlflow_server["url"],
        "MLOPS_ARTIFACT_ROOT": str(mlflow_server["artifacts"]), "MLOPS_LANDING_DIR": str(home / "landing"),
        "MLOPS_QUARANTINE_DIR": str(home / "quarantine"), "MLOPS_STORAGE_DIR": str(home / "storage"),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        from mlops_assets import settings
        from mlops_assets.definitions import build_definitions

        for folder in ("landing", "quarantine", "storage"):
            (home / folder).mkdir(parents=True, exist_ok=True)
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            yield {"home": home, "defs": build_definitions(), "instance": instance, "settings": settings}


def test_production_refuses_to_fall_back_to_local_files(monkeypatch):
    from mlops_assets.definitions import build_definitions

    monkeypatch.delenv("MLOPS_TRACKING_URI", raising=False)
    with pytest.raises(ValueError, match="MLOPS_TRACKING_URI"):
        build_definitions("production")


def test_graph_runs_on_postgres_and_the_mlflow_server(production):
    from mlops_assets.runner import ingest_landed, run_job

    instance, defs = production["instance"], production["defs"]
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    land(production["home"], "history.csv", hourly_frame(load_spec(), ["A", "B", "C"], 24 * 30))
    ingested = ingest_landed(defs, instance)
    assert len(ingested.succeeded) == 1
    result = run_job(defs, "training_job", instance)
    assert result.success
    runs = instance.get_runs()
    assert {r.job_name for r in runs} == {"ingestion_job", "training_job"}
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    tracking = defs.resources["mlflow_tracking"]
    assert tracking.tracking_uri.startswith("http://127.0.0.1:")
    registry = tracking.registry()
    assert registry.alias_version("champion") == "1"
    run_id = result.output_for_node("xgboost_model")["run_id"]
    assert tracking.client().get_run(run_id).data.tags["dagster.run_id"] == result.run_id
