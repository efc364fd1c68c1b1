"""The production shape on this machine's Postgres: the Dagster instance from deploy/dagster.yaml
and an `mlflow server` with a Postgres backend store, both real, on 127.0.0.1.

Without Postgres these tests skip with the reason; with MLOPS_REQUIRE_SERVICES=1 (CI) a
missing Postgres is a failure."""

import dagster as dg
import pytest

from mlops_assets.core.spec import load_spec
from mlops_assets_tests.builders import hourly_frame
from mlops_assets_tests.integration.conftest import make_production_home, production_env
from mlops_assets_tests.pipeline import land


@pytest.fixture(scope="module")
def production(databases, mlflow_server, tmp_path_factory):
    """The production definitions and the Postgres-backed instance, in this test process."""
    home = tmp_path_factory.mktemp("prod") / "mlops"
    dagster_home = make_production_home(home)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in production_env(home, databases, mlflow_server).items():
            mp.setenv(key, value)
        from mlops_assets import settings
        from mlops_assets.definitions import build_definitions

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
