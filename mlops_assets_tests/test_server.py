"""`mlops-assets serve`: a real server process on 127.0.0.1 in front of a champion in a real
MLflow store, checking every request before the model sees it.

The champion is logged by the training's own `log_model` (so it carries the group fallback)
and registered with alias `champion`; a second version is logged the way models were logged
before the fallback existed (a bare forecaster), to check that such models still serve."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np
import polars as pl
import pytest

from mlops_assets.core.features import build_features, feature_columns, required_lag_column
from mlops_assets.core.models.data import model_data, to_split
from mlops_assets.core.models.evaluation import refit
from mlops_assets.core.models.tabular import train_linear
from mlops_assets.core.spec import load_spec
from mlops_assets.core.splitting import time_split
from mlops_assets.core.training_config import load_training_config
from mlops_assets_tests.builders import hourly_frame

SPEC = load_spec()
FAST = load_training_config("fast")
ODD = "Zone A/B (ö)"
NAME = "load_forecaster"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_old_style(forecaster, data):
    """How every model was logged before the group fallback: the bare forecaster."""
    import joblib
    import mlflow
    from mlflow.models import infer_signature

    from mlops_assets.core.pyfunc_model import ForecastModel

    example = data.test.X.head(48).reset_index(drop=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "forecaster.joblib")
        joblib.dump(forecaster, path)
        return mlflow.pyfunc.log_model(
            name="model", python_model=ForecastModel(), artifacts={"forecaster": path},
            signature=infer_signature(example, forecaster.predict(example)), input_example=example.head(5),
        )


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    import mlflow

    from mlops_assets.defs.training.tracking import log_model
    from mlops_assets.resources.tracking import MlflowTracking

    home = tmp_path_factory.mktemp("serve") / "mlops"
    home.mkdir()
    history = hourly_frame(SPEC, ["A", "B", ODD], 24 * 30)
    features, _ = build_features(history, SPEC)
    train, validation, test, _ = time_split(features, SPEC)
    data = model_data(train, validation, test, SPEC)
    model, _, _ = train_linear(data, FAST)
    final = refit(model, data, FAST)
    tracking = MlflowTracking(tracking_uri=f"sqlite:///{home / 'mlflow.db'}", artifact_root=str(home / "mlartifacts"))
    client = tracking.client()
    with mlflow.start_run(experiment_id=tracking.experiment_id()):
        routed = log_model(final, data)
    with mlflow.start_run(experiment_id=tracking.experiment_id()):
        old = _log_old_style(final, data)
    for info in (routed, old):
        mlflow.register_model(info.model_uri, NAME)
    client.set_registered_model_alias(NAME, "champion", "1")
    # A group ten times larger than any trained one, never seen by the champion.
    big = hourly_frame(SPEC, [f"g{i}" for i in range(30)], 24 * 30).filter(pl.col(SPEC.group) == "g29")
    unseen, _ = build_features(big.with_columns(pl.lit("Neu-Zone").alias(SPEC.group)), SPEC)
    return {"home": home, "client": client, "test": test, "unseen": unseen, "tracking_uri": tracking.tracking_uri}


@pytest.fixture(scope="module")
def server(store):
    port = _free_port()
    env = {**os.environ, "MLOPS_HOME": str(store["home"]), "DAGSTER_HOME": str(store["home"] / "dagster_home")}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = open(store["home"] / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlops_assets.cli", "serve", "--port", str(port), "--reload-seconds", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/ping", timeout=2)
                break
            except OSError:
                assert process.poll() is None, (store["home"] / "server.log").read_text()
                assert time.time() < deadline, "the server did not answer /ping"
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        log.close()


def _records(frame: pl.DataFrame) -> list[dict]:
    return frame.select(SPEC.timestamp, *feature_columns(SPEC)).with_columns(
        pl.col(SPEC.timestamp).dt.strftime("%Y-%m-%dT%H:%M:%S")
    ).to_dicts()


def post(url: str, payload) -> tuple[int, dict]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _refused(url: str, records: list[dict]) -> dict:
    status, body = post(url, {"dataframe_records": records})
    assert status == 400, body
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    return body


def test_a_good_request_gets_the_same_predictions_as_pyfunc(store, server):
    import mlflow.pyfunc

    rows = store["test"].head(24)
    records = _records(rows)
    status, body = post(server, {"dataframe_records": records})
    assert status == 200, body
    mlflow.set_tracking_uri(store["tracking_uri"])
    frame = to_split(rows, SPEC).X  # what the model was trained on: naive UTC timestamps
    expected = mlflow.pyfunc.load_model(f"models:/{NAME}/1").predict(frame)
    assert np.allclose(body["predictions"], expected, rtol=1e-9)
    assert body["served_by"] == ["model"] * 24 and body["new_group"] == [False] * 24 and body["model_version"] == "1"
    columns = list(records[0])
    split = {"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in records]}}
    assert post(server, split)[1]["predictions"] == body["predictions"]


def test_a_null_required_lag_is_refused_naming_column_and_row(server, store):
    records = _records(store["test"].head(5))
    lag = required_lag_column(SPEC)
    records[3][lag] = None
    body = _refused(server, records)
    assert lag in body["message"] and "row 3" in body["message"] and "required" in body["message"]
    assert body["problems"][0] == {"row": 3, "column": lag, "problem": "is null, and it is a required feature", "value": None}
    del records[3][lag]
    for r in records:
        r.pop(lag, None)
    missing = _refused(server, records)
    assert lag in missing["message"] and "missing" in missing["message"]


def test_a_longer_lag_may_be_null_a_new_groups_first_week(server, store):
    records = _records(store["test"].head(3))
    records[1][f"{SPEC.target.column}_lag_168h"] = None
    status, body = post(server, {"dataframe_records": records})
    assert status == 200, body
    assert len(body["predictions"]) == 3 and np.isfinite(np.asarray(body["predictions"], float)).all(), body
    assert body["served_by"] == ["model"] * 3  # the model itself answers the row with the null lag


def test_a_value_outside_the_spec_range_is_refused_naming_column_and_row(server, store):
    records = _records(store["test"].head(4))
    records[2]["temperature_c"] = 75.0  # spec: -60..60
    body = _refused(server, records)
    assert "'temperature_c'" in body["message"] and "row 2" in body["message"] and "maximum 60" in body["message"]
    records = _records(store["test"].head(4))
    records[1][f"{SPEC.target.column}_lag_24h"] = -5.0  # the target's range: 0..100000
    body = _refused(server, records)
    assert f"{SPEC.target.column}_lag_24h" in body["message"] and "row 1" in body["message"] and "minimum 0" in body["message"]


def test_a_wrong_type_is_refused(server, store):
    records = _records(store["test"].head(3))
    records[0]["relative_humidity"] = "humid"
    body = _refused(server, records)
    assert "'relative_humidity'" in body["message"] and "row 0" in body["message"] and "not a number" in body["message"]
    records = _records(store["test"].head(3))
    records[2][SPEC.timestamp] = "yesterday at noon"
    body = _refused(server, records)
    assert f"'{SPEC.timestamp}'" in body["message"] and "row 2" in body["message"] and "timestamp" in body["message"]


def test_an_empty_group_label_is_refused(server, store):
    records = _records(store["test"].head(3))
    records[1][SPEC.group] = "  "
    body = _refused(server, records)
    assert f"'{SPEC.group}'" in body["message"] and "row 1" in body["message"] and "empty" in body["message"]


def test_malformed_requests_get_mlflow_style_errors(server):
    status, body = post(server, b"{not json")
    assert status == 400 and body["error_code"] == "BAD_REQUEST" and "JSON" in body["message"]
    status, body = post(server, {"instances": [1, 2]})
    assert status == 400 and "dataframe_split" in body["message"]


def test_an_unseen_group_is_served_by_the_fallback_marked_for_that_row_only(server, store):
    known = _records(store["test"].head(4))
    new = _records(store["unseen"].tail(1))
    status, body = post(server, {"dataframe_records": [*known[:2], *new, *known[2:]]})
    assert status == 200, body
    assert body["served_by"] == ["model", "model", "fallback", "model", "model"]
    assert body["new_group"] == [False, False, True, False, False]
    truth = store["unseen"].tail(1).get_column(SPEC.target.column).item()
    assert abs(body["predictions"][2] - truth) / truth < 0.1  # a 30x larger group, on its own scale


def test_ping_and_version(server):
    assert urllib.request.urlopen(f"{server}/ping", timeout=5).status == 200
    version = json.loads(urllib.request.urlopen(f"{server}/version", timeout=5).read())
    assert version["model"] == NAME and version["model_version"] == "1"


def test_pyfunc_helpers_on_a_logged_router(store):
    """known_groups / served_by read the logged router; load_forecaster gives SHAP, mitigation
    and retraining the primary model, which forecasts known rows exactly as the router does."""
    import mlflow.pyfunc

    from mlops_assets.core.models.fallback import GroupRouter
    from mlops_assets.core.pyfunc_model import known_groups, load_forecaster, served_by

    mlflow.set_tracking_uri(store["tracking_uri"])
    uri = f"models:/{NAME}/1"
    model = mlflow.pyfunc.load_model(uri)
    assert known_groups(model) == sorted(["A", "B", ODD])
    rows = pl.concat([store["test"].head(2), store["unseen"].tail(1)], how="diagonal_relaxed")
    X = to_split(rows, SPEC).X
    assert list(served_by(model, X)) == ["model", "model", "fallback"]
    primary = load_forecaster(uri)
    assert not isinstance(primary, GroupRouter) and primary.kind == "linear"
    assert np.array_equal(primary.predict(X.head(2)), model.predict(X.head(2)))


def _move_alias_and_wait(server: str, store, version: str) -> None:
    store["client"].set_registered_model_alias(NAME, "champion", version)
    deadline = time.time() + 60
    while json.loads(urllib.request.urlopen(f"{server}/version", timeout=5).read())["model_version"] != version:
        assert time.time() < deadline, f"the server did not follow the alias to v{version}"
        time.sleep(0.5)


def test_the_server_follows_the_alias_to_a_model_logged_without_a_fallback(server, store):
    """Moves the alias to v2 (logged the old way); the server reloads it, and such a model
    serves every row itself (served_by "model", new_group unknown). The alias goes back to v1
    afterwards, so the other tests of this module may run after this one."""
    from mlops_assets.core.pyfunc_model import known_groups, served_by

    import mlflow.pyfunc

    mlflow.set_tracking_uri(store["tracking_uri"])
    old = mlflow.pyfunc.load_model(f"models:/{NAME}/2")
    frame = to_split(store["test"].head(3), SPEC).X
    assert known_groups(old) is None and list(served_by(old, frame)) == ["model"] * 3
    try:
        _move_alias_and_wait(server, store, "2")
        records = [*_records(store["test"].head(2)), *_records(store["unseen"].tail(1))]
        status, body = post(server, {"dataframe_records": records})
        assert status == 200 and body["model_version"] == "2"
        assert body["served_by"] == ["model"] * 3 and body["new_group"] == [None] * 3
    finally:
        _move_alias_and_wait(server, store, "1")
