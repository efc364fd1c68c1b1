"""Promotion gates, the champion alias, forced promotion, rollback and the real model server.

One story, in order: v1 passes and becomes champion; v2 (a deliberately weak model) fails
`no_regression_vs_champion` and champion stays; v3 is force-promoted from the CLI; rollback
returns to v1 (the previously serving version, not the numerically previous v2), and a
restarted `mlflow models serve` answers with v1."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import polars as pl
import pytest

from mlops_assets.core.features import feature_columns
from mlops_assets.core.spec import load_spec
from mlops_assets_tests.builders import hourly_frame
from mlops_assets_tests.pipeline import land, local_platform

SPEC = load_spec()
WEAK = """fast:
  xgboost_space: {n_estimators: [2], max_depth: [1], learning_rate: [0.01], min_child_weight: [1], reg_alpha: [0.0], reg_lambda: [1.0]}
  xgboost_iterations: 1
  linear_space: {alpha: [1000000000.0]}
  linear_iterations: 1
  lstm_epochs: 1
"""


def alerts(home) -> list[dict]:
    path = home / "alerts.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def checks(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key.to_user_string() == "registered_model"}


def cli(home, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLOPS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"), "MLOPS_PROFILE": "fast"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, "-m", "mlops_assets.cli", *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    from mlops_assets.runner import ingest_landed, run_job

    home = tmp_path_factory.mktemp("registry") / "mlops"
    weak = home.parent / "weak.yaml"
    weak.write_text(WEAK)
    reseeded = home.parent / "seed7.yaml"
    reseeded.write_text("fast:\n  seed: 7\n")
    runs = {}
    with local_platform(home) as (defs, instance):
        land(home, "history.csv", hourly_frame(SPEC, ["A", "B", "C"], 24 * 30))
        ingest_landed(defs, instance)
        runs["v1"] = run_job(defs, "training_job", instance)
    with local_platform(home, {"MLOPS_TRAINING_CONFIG": str(weak)}) as (defs, instance):
        runs["v2"] = run_job(defs, "training_job", instance)
    with local_platform(home, {"MLOPS_TRAINING_CONFIG": str(reseeded), "MLOPS_PROMOTION_MARGIN": "-1"}) as (defs, instance):
        runs["v3"] = run_job(defs, "training_job", instance)
        registry = defs.resources["mlflow_tracking"].registry()
        yield {
            "home": home, "runs": runs, "registry": registry, "tracking_uri": defs.resources["mlflow_tracking"].tracking_uri,
            "champion": registry.alias_version("champion"),
        }


def test_first_model_passes_every_check_and_becomes_champion(story):
    first = story["runs"]["v1"]
    assert first.success
    verdicts = checks(first)
    assert set(verdicts) == {"performance_threshold", "no_regression_vs_champion", "bias_within_threshold", "interval_coverage", "signature_and_schema", "serving_smoke_test"}
    assert all(v.passed for v in verdicts.values())
    assert "no champion yet" in verdicts["no_regression_vs_champion"].description
    assert "vs seasonal naive (min > 0.00)" in verdicts["performance_threshold"].description
    evaluation = first.output_for_node("model_evaluation")
    compared = evaluation["challenger"]["metrics"]["baseline_rows"]
    assert compared >= 48 and {b["n"] for b in evaluation["baselines"].values()} == {compared}
    assert evaluation["challenger"]["metrics"]["skill"] > 0
    history = story["registry"].history()
    assert [(h["action"], h["version"]) for h in history[:2]] == [("approve", "1"), ("promote", "1")]
    assert story["registry"].version_tags("1")["check.serving_smoke_test"].startswith("pass")


def test_worse_model_fails_no_regression_and_champion_stays(story):
    second = story["runs"]["v2"]
    assert second.success  # a refusal is an outcome: the run succeeds, champion_model does not materialize
    assert "champion_model" not in {e.asset_key.to_user_string() for e in second.get_asset_materialization_events()}
    verdict = checks(second)["no_regression_vs_champion"]
    assert not verdict.passed and "vs champion v1" in verdict.description and "95% CI" in verdict.description
    refusal = [h for h in story["registry"].history() if h["version"] == "2"]
    assert refusal[0]["action"] == "refuse" and "no_regression_vs_champion" in refusal[0]["reason"]
    assert story["registry"].version_tags("2")["check.no_regression_vs_champion"].startswith("FAIL")
    assert story["champion"] == "1"  # after v2 and v3 (refused with a margin of -100 %)


def test_a_refused_run_never_moved_the_alias(story):
    actions = [(h["action"], h["version"]) for h in story["registry"].history()]
    assert ("promote", "2") not in actions and ("force_promote", "2") not in actions


# Later steps of the story, each a fixture on the one before: whichever test asks first, they run in order.
@pytest.fixture(scope="module")
def forced(story):
    """v3 force-promoted from the CLI, then a promotion without --force tried."""
    before = len(alerts(story["home"]))
    done = cli(story["home"], "promote", "--version", "3", "--force", "--reason", "hotfix for the holiday peak")
    champion, entry = story["registry"].alias_version("champion"), story["registry"].history()[-1]
    refused = cli(story["home"], "promote", "--version", "3", "--reason", "no force")
    return {"done": done, "champion": champion, "entry": entry, "refused": refused, "alerts": alerts(story["home"])[before:]}


def test_forced_promotion_is_recorded(forced):
    done = forced["done"]
    assert done.returncode == 0, done.stdout + done.stderr
    assert forced["champion"] == "3"
    [line] = done.stdout.splitlines()  # one line with its duration, nothing from the libraries
    assert line.startswith("force promote champion is now v3 (force_promote v3, previous champion v1)") and done.stderr == ""
    entry = forced["entry"]
    assert (entry["action"], entry["version"], entry["previous_champion"], entry["reason"]) == ("force_promote", "3", "1", "hotfix for the holiday peak")
    assert "cli" in entry["trigger"]
    refused = forced["refused"]
    assert refused.returncode != 0 and "--force" in refused.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_and_predict(story, records: list[dict]) -> dict:
    port = _free_port()
    env = {**os.environ, "MLOPS_HOME": str(story["home"]), "DAGSTER_HOME": str(story["home"] / "dagster_home")}
    server = subprocess.Popen([sys.executable, "-m", "mlops_assets.cli", "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, f"the server on port {port} did not answer /ping (exit code {server.poll()})"
                time.sleep(0.5)
        body = json.dumps({"dataframe_records": records}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # uvicorn waits for requests in flight; do not hide why we got here
            server.kill()
            server.wait(timeout=30)


def _test_frame(story) -> pl.DataFrame:
    test_set = pl.read_parquet(story["home"] / "storage" / "test_set.parquet").head(24)
    return test_set.select(SPEC.timestamp, *feature_columns(SPEC)).with_columns(pl.col(SPEC.timestamp).dt.strftime("%Y-%m-%dT%H:%M:%S"))


@pytest.fixture(scope="module")
def rolled_back(story, forced):
    """The server's answers with v3 serving, a rollback from the CLI, the server's answers after it."""
    records = _test_frame(story).to_dicts()
    served_before = _serve_and_predict(story, records)
    before = len(alerts(story["home"]))
    done = cli(story["home"], "rollback", "--reason", "v3 misses the evening peak")
    champion, entry = story["registry"].alias_version("champion"), story["registry"].history()[-1]
    new_alerts = alerts(story["home"])[before:]
    served_after = _serve_and_predict(story, records)
    status = cli(story["home"], "status")
    return {
        "served_before": served_before, "done": done, "champion": champion, "entry": entry, "alerts": new_alerts,
        "served_after": served_after, "status": status,
    }


def test_rollback_returns_to_the_previously_serving_version_and_the_server_follows(story, rolled_back):
    import mlflow.pyfunc

    frame = _test_frame(story)
    mlflow.set_tracking_uri(story["tracking_uri"])
    expected = {v: np.asarray(mlflow.pyfunc.load_model(f"models:/load_forecaster/{v}").predict(frame.to_pandas()), float) for v in ("1", "3")}
    assert not np.allclose(expected["1"], expected["3"])

    assert np.allclose(rolled_back["served_before"]["predictions"], expected["3"], rtol=1e-6)
    done = rolled_back["done"]
    assert done.returncode == 0, done.stdout + done.stderr
    assert rolled_back["champion"] == "1"  # not v2, the numerically previous
    entry = rolled_back["entry"]
    assert (entry["action"], entry["version"], entry["previous_champion"]) == ("rollback", "1", "3")
    assert np.allclose(rolled_back["served_after"]["predictions"], expected["1"], rtol=1e-6)


def test_served_response_carries_the_champions_interval(story, rolled_back):
    """Each row's interval, from the interval logged with the serving version (no labelled
    batch has moved it here), at the version's level."""
    import mlflow.pyfunc

    from mlops_assets.core.pyfunc_model import predict_interval

    frame = _test_frame(story).to_pandas()
    mlflow.set_tracking_uri(story["tracking_uri"])
    _, lower, upper = predict_interval(mlflow.pyfunc.load_model("models:/load_forecaster/1"), frame)
    served = rolled_back["served_after"]
    assert served["interval_level"] == 0.8 and served["model_version"] == "1"
    assert np.allclose(served["prediction_lower"], lower, rtol=1e-6) and np.allclose(served["prediction_upper"], upper, rtol=1e-6)
    point = np.asarray(served["predictions"])
    assert np.all(np.asarray(served["prediction_lower"]) < point) and np.all(point < np.asarray(served["prediction_upper"]))

    status = rolled_back["status"]
    assert "champion     1" in status.stdout and "rollback" in status.stdout


def test_rollbacks_and_forced_promotions_raise_a_warn_alert(forced, rolled_back):
    """Each move of the alias that bypasses the gates (forced from the CLI, rolled back from the
    CLI) sends one WARN alert naming both versions and the reason given; the refused `promote`
    without --force sends none."""
    seen = [(a["severity"], a["kind"], a["title"], a["reason"], a["asset"]) for a in forced["alerts"]]
    assert seen == [("WARN", "force_promote", "force_promote: champion v1 -> v3", "hotfix for the holiday peak", "champion_model")]
    seen = [(a["severity"], a["kind"], a["title"], a["reason"], a["asset"]) for a in rolled_back["alerts"]]
    assert seen == [("WARN", "rollback", "rollback: champion v3 -> v1", "v3 misses the evening peak", "champion_model")]
