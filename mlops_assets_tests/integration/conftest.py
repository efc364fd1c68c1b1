"""Shared fixtures for the production shape on this machine's Postgres: fresh databases per
test module, a real `mlflow server` with a Postgres backend store on 127.0.0.1, the
production environment, and helpers to start and stop server processes cleanly.

Without Postgres the tests using these fixtures skip with the reason; with
MLOPS_REQUIRE_SERVICES=1 (CI) a missing Postgres is a failure.

`emulator` starts a GCS emulator (gcp-storage-emulator) on 127.0.0.1 with the bucket
`GCS_BUCKET`, for the gs:// tests; without the package it skips (fails under CI) likewise."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG = {
    "host": os.environ.get("MLOPS_TEST_PG_HOST", "127.0.0.1"),
    "port": int(os.environ.get("MLOPS_TEST_PG_PORT", "5432")),
    "user": os.environ.get("MLOPS_TEST_PG_USER", "postgres"),
}


def _admin():
    import psycopg2

    conn = psycopg2.connect(dbname="postgres", connect_timeout=5, **PG)
    conn.autocommit = True
    return conn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a new server could listen on the port (connections in TIME_WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
        return True


def wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    """Poll `url` until it answers; fail with the log's tail if the process dies or time runs out."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"{process.args[0]} exited with {process.returncode}: {log.read_text()[-3000:]}")
            time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {timeout_s:.0f} s: {log.read_text()[-3000:]}")


class ServerProcess:
    """A server started as a subprocess, output to a log file, stopped with its whole tree."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT):
        self.name, self.log = name, log
        self._log_file = open(log, "w")
        self.process = subprocess.Popen(args, stdout=self._log_file, stderr=subprocess.STDOUT, env=env, cwd=cwd)

    def stop(self, timeout_s: float = 60) -> list[str]:
        """SIGTERM the server (it stops its own children: code servers, run workers), wait,
        and return what is still alive after the timeout (then killed)."""
        import psutil

        if self.process.poll() is not None:
            self._log_file.close()
            return []
        try:
            tree = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
        _, alive = psutil.wait_procs(tree, timeout=max(1.0, timeout_s / 4))
        leftovers = [f"{p.pid} {' '.join(p.cmdline()[:4])}" for p in alive if _running(p)]
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=10)
        self._log_file.close()
        return leftovers


def _running(process) -> bool:
    import psutil

    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def python_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment with the venv's bin first on PATH (the servers' own subprocesses),
    without the MLflow URIs an earlier in-process run may have left in os.environ."""
    inherited = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    return {**inherited, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(extra or {})}


@pytest.fixture(scope="module")
def databases():
    """Two fresh databases (Dagster instance, MLflow backend) for this module, dropped after."""
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


@pytest.fixture(scope="module")
def mlflow_server(databases, tmp_path_factory):
    """`mlflow server` on a free loopback port, backend store in this module's database."""
    port = free_port()
    artifacts = tmp_path_factory.mktemp("pg") / "mlartifacts"
    backend = f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{databases['mlflow']}"
    log = artifacts.parent / "mlflow-server.log"
    server = ServerProcess(
        "mlflow server",
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--backend-store-uri", backend,
         "--artifacts-destination", str(artifacts), "--serve-artifacts", "--workers", "1"],
        python_env(), log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", server.process, log, 180)
        yield {"url": url, "artifacts": artifacts, "port": port, "server": server}
    finally:
        server.stop(timeout_s=30)


def production_env(home: Path, databases: dict, mlflow_server: dict) -> dict[str, str]:
    """The production settings (deploy/production.env.template) for a throwaway home."""
    return {
        "MLOPS_DEPLOYMENT": "production", "MLOPS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"),
        "MLOPS_PROFILE": "fast", "MLOPS_SETTLE_SECONDS": "0", "MLOPS_PG_HOST": PG["host"], "MLOPS_PG_PORT": str(PG["port"]),
        "MLOPS_PG_USER": PG["user"], "MLOPS_PG_PASSWORD": "", "MLOPS_PG_DAGSTER_DB": databases["dagster"],
        "MLOPS_TRACKING_URI": mlflow_server["url"], "MLOPS_ARTIFACT_ROOT": str(mlflow_server["artifacts"]),
        "MLOPS_LANDING_DIR": str(home / "landing"), "MLOPS_QUARANTINE_DIR": str(home / "quarantine"),
        "MLOPS_STORAGE_DIR": str(home / "storage"),
    }


def make_production_home(home: Path) -> Path:
    """Folders of a production home and DAGSTER_HOME holding deploy/dagster.yaml; returns DAGSTER_HOME."""
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    for folder in ("landing", "quarantine", "storage"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    return dagster_home


# ---------------------------------------------------------------- GCS emulator

GCS_BUCKET = "mlops-test"


def gcs_production_env(home: Path, prefix: str) -> dict[str, str]:
    """The production settings with landing, quarantine, storage and MLflow artifacts under the
    gs:// `prefix`; MLflow tracking and Dagster in SQLite under the local `home`."""
    return {
        "MLOPS_DEPLOYMENT": "production", "MLOPS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"),
        "MLOPS_PROFILE": "fast", "MLOPS_SETTLE_SECONDS": "0",
        "MLOPS_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}", "MLOPS_ARTIFACT_ROOT": f"{prefix}/mlartifacts",
        "MLOPS_LANDING_DIR": f"{prefix}/landing", "MLOPS_QUARANTINE_DIR": f"{prefix}/quarantine", "MLOPS_STORAGE_DIR": f"{prefix}/storage",
    }


def services_unavailable(reason: str):
    """Skip with the reason; under MLOPS_REQUIRE_SERVICES=1 (CI) fail instead."""
    if os.environ.get("MLOPS_REQUIRE_SERVICES") == "1":
        pytest.fail(f"MLOPS_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """`gcp-storage-emulator start --in-memory` on a free loopback port, with the bucket made.
    While it runs, STORAGE_EMULATOR_HOST points every Google client at it (subprocesses
    inherit it), and the GCE metadata host points at a closed loopback port, so no credential
    lookup leaves 127.0.0.1."""
    if importlib.util.find_spec("gcp_storage_emulator") is None:
        services_unavailable("gcp-storage-emulator is not installed (pip install -e '.[test]')")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("gcs") / "emulator.log"
    log = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--quiet"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_emulator(url, process, log_path)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("STORAGE_EMULATOR_HOST", url)
            mp.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
            mp.setenv("GCE_METADATA_IP", "127.0.0.1:9")
            mp.setenv("NO_GCE_CHECK", "true")
            mp.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
            from google.cloud import storage

            storage.Client().create_bucket(GCS_BUCKET)
            yield {"url": url, "process": process}
    finally:
        # SIGINT is the emulator's own clean shutdown, but its single-threaded HTTP server waits
        # for every client to close its keep-alive connection (pooled sessions in this process
        # may not have): after a grace period it is killed. What matters is that nothing is left.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        log.close()
    assert process.returncode is not None and port_is_free(port), f"the emulator on port {port} is still running: {log_path.read_text()[-2000:]}"


def _wait_for_emulator(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        with contextlib.suppress(OSError):
            if urllib.request.urlopen(url, timeout=2).read() == b"OK":
                return
        if process.poll() is not None:
            services_unavailable(f"gcp-storage-emulator exited with {process.returncode}: {log_path.read_text()[-1000:]}")
        time.sleep(0.2)
    process.kill()
    services_unavailable(f"gcp-storage-emulator did not answer on {url} within 30 s")


# test_production_servers.py is one story on one deployment (land, sense, train, promote, stop):
# pytest-randomly shuffles every module; this one is put back in file order after it.
STORY_MODULES = ("test_production_servers.py",)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list) -> None:
    for name in STORY_MODULES:
        positions = [i for i, item in enumerate(items) if item.path.name == name]
        story = sorted((items[i] for i in positions), key=lambda item: item.reportinfo()[1] or 0)
        for i, item in zip(positions, story):
            items[i] = item
