"""A batch without drift leads to no retraining request; a batch simulated with `--drift`
on temperature is flagged, the sensor requests retraining once, and that run ends in a
new champion or a recorded refusal."""

from datetime import timedelta

import dagster as dg
import pytest

from mlops_assets.core.simulate import DEFAULT_START, SimulationConfig, write_batches
from mlops_assets.core.spec import load_spec
from mlops_assets.defs.monitoring.sensors import drift_sensor
from mlops_assets_tests.pipeline import local_platform

SPEC = load_spec()
HISTORY_DAYS = 40


@pytest.fixture(scope="module")
def monitored(tmp_path_factory):
    from mlops_assets.runner import ingest_landed, run_job

    home = tmp_path_factory.mktemp("monitoring") / "mlops"
    with local_platform(home) as (defs, instance):
        landing = home / "landing"
        write_batches(SPEC, SimulationConfig(days=HISTORY_DAYS, groups=3), landing)
        ingest_landed(defs, instance)
        first = run_job(defs, "training_job", instance)
        assert first.success
        # Both batches re-deliver days of the test period (fresh readings, so new content):
        # one as it was, one 15 °C hotter.
        day = DEFAULT_START + timedelta(days=HISTORY_DAYS - 5)
        [calm] = write_batches(SPEC, SimulationConfig(start=day, days=5, groups=3, defects=False), landing / "calm")
        [hot] = write_batches(SPEC, SimulationConfig(start=day, days=5, groups=3, defects=False, drift=15.0), landing / "hot")
        calm.rename(landing / "calm.csv")
        hot.rename(landing / "hot.csv")
        summary = ingest_landed(defs, instance)
        keys = {key.split("__")[0]: key for key in summary.succeeded}
        job = defs.resolve_job_def("monitoring_job")
        reports = {label: job.execute_in_process(partition_key=keys[label], instance=instance).output_for_node("drift_report") for label in ("calm", "hot")}
        yield {"defs": defs, "instance": instance, "reports": reports, "run_job": run_job, "keys": keys, "home": home}


def evaluate(instance, cursor=None):
    with dg.build_sensor_context(instance=instance, cursor=cursor) as context:
        return drift_sensor(context)


def test_batch_without_drift_is_not_flagged(monitored):
    calm = monitored["reports"]["calm"]
    assert not calm["retrain"], calm["reasons"]
    temperature = next(r for r in calm["features"] if r["feature"] == "temperature_c")
    assert not temperature["drifted"]


def test_drifted_batch_is_flagged_with_temperature_as_a_root_cause(monitored):
    hot = monitored["reports"]["hot"]
    assert hot["retrain"], hot["reasons"]
    temperature = next(r for r in hot["features"] if r["feature"] == "temperature_c")
    assert temperature["drifted"] and temperature["psi"] > 0.2 and temperature["wasserstein"] > 0.25
    assert "temperature_c" in [c["feature"] for c in hot["root_causes"]]
    assert hot["prediction_drift"]["psi"] >= 0 and hot["realized_mae"] is not None
    mat = monitored["instance"].get_latest_materialization_event(dg.AssetKey("drift_report")).asset_materialization
    assert mat.metadata["psi/temperature_c"].value > 0.2 and mat.metadata["retrain_flag"].value == 1


def test_sensor_requests_retraining_once_and_it_ends_in_a_decision(monitored):
    instance, defs = monitored["instance"], monitored["defs"]
    first = evaluate(instance)
    assert len(first.run_requests) == 1  # the calm batch asks for nothing
    request = first.run_requests[0]
    assert request.run_key.startswith("drift:") and request.tags["mlops/trigger"].startswith("drift_sensor:")
    assert evaluate(instance, first.cursor).run_requests == []

    before = len(defs.resources["mlflow_tracking"].registry().history())
    defs.resolve_job_def("training_job").execute_in_process(instance=instance, tags=request.tags, raise_on_error=False)
    history = defs.resources["mlflow_tracking"].registry().history()[before:]
    assert history and history[0]["trigger"].startswith("drift_sensor:")
    assert history[-1]["action"] in ("promote", "refuse")


def test_drift_report_compares_with_a_bounded_reference(monitored):
    """The per-batch cost must not grow with the history: the champion's reference predictions
    come from the newest `prediction_reference_days` of the test set only, and the training
    reference from at most `reference_rows` rows."""
    import polars as pl

    from mlops_assets.defs.monitoring.assets import drift_report
    from mlops_assets.resources.monitoring import DriftSettings

    defs, instance, home = monitored["defs"], monitored["instance"], monitored["home"]
    resources = {**defs.resources, "drift": DriftSettings(prediction_reference_days=2, reference_rows=50)}
    result = dg.materialize(
        defs.assets, selection=[drift_report], partition_key=monitored["keys"]["calm"], instance=instance, resources=resources
    )
    report = result.output_for_node("drift_report")["reference"]

    test_set = pl.read_parquet(home / "storage" / "test_set.parquet")
    ts = pl.col(SPEC.timestamp)
    newest = test_set.filter(ts > ts.max() - pl.duration(days=2))
    assert 0 < newest.height < test_set.height  # the window really cuts the test set here
    assert report["test_rows"] == newest.height
    assert report["test_to"] == str(test_set.get_column(SPEC.timestamp).max())
    assert report["test_from"] == str(newest.get_column(SPEC.timestamp).min())
    train_rows = pl.scan_parquet(home / "storage" / "train_set.parquet").select(pl.len()).collect().item()
    assert train_rows > 100 and report["training_rows"] <= 2 * 50
    # the defaults keep the whole (short) test set of this small history
    assert monitored["reports"]["calm"]["reference"]["test_rows"] == test_set.height


def test_monitoring_follows_the_champion_alias_when_it_moves(monitored):
    """The monitoring steps keep a loaded model per registry version (bench/incremental.py):
    moving `champion` to another version must switch the model the next batch is scored with."""
    defs, instance = monitored["defs"], monitored["instance"]
    registry = defs.resources["mlflow_tracking"].registry()
    versions = sorted(int(v.version) for v in registry.client.search_model_versions(f"name='{registry.name}'"))
    assert len(versions) >= 2, "the sensor test's retraining registers a second version"
    monitoring = defs.resolve_job_def("monitoring_job")
    key = monitored["keys"]["calm"]
    before = monitoring.execute_in_process(partition_key=key, instance=instance)
    current = before.output_for_node("drift_report")["champion_version"]
    other = str(next(v for v in versions if str(v) != current))

    moved = defs.resolve_job_def("manual_promotion_job").execute_in_process(
        instance=instance, run_config={"ops": {"champion_model": {"config": {"action": "force_promote", "reason": "test: move the alias", "version": other}}}}
    )
    assert moved.success and registry.alias_version("champion") == other
    after = monitoring.execute_in_process(partition_key=key, instance=instance)
    assert after.output_for_node("drift_report")["champion_version"] == other
    assert set(after.output_for_node("batch_predictions").get_column("model_version").to_list()) == {other}
    assert set(before.output_for_node("batch_predictions").get_column("model_version").to_list()) == {current}
    # and the predictions are that version's, not the previously loaded model's
    import mlflow.pyfunc
    import numpy as np

    from mlops_assets.core.models.data import input_columns

    scored = after.output_for_node("batch_predictions")
    inputs = scored.select(input_columns(SPEC)).to_pandas()
    inputs[SPEC.timestamp] = inputs[SPEC.timestamp].dt.tz_convert("UTC").dt.tz_localize(None)
    expected = np.asarray(mlflow.pyfunc.load_model(registry.model_uri(other)).predict(inputs), float)
    np.testing.assert_allclose(scored.get_column("prediction").to_numpy(), expected, rtol=1e-9)


def test_a_batch_with_no_scored_rows_is_judged_as_nothing_to_judge_without_warnings(monitored):
    """A batch a month after the history: no row has the lags it needs, so nothing is scored;
    the drift report says so, asks for no retraining and computes nothing on empty arrays."""
    import warnings

    from mlops_assets.runner import ingest_landed

    defs, instance, home = monitored["defs"], monitored["instance"], monitored["home"]
    day = DEFAULT_START + timedelta(days=HISTORY_DAYS + 30)
    [late] = write_batches(SPEC, SimulationConfig(start=day, days=1, groups=3, defects=False), home / "landing" / "late")
    late.rename(home / "landing" / "late.csv")
    [key] = [k for k in ingest_landed(defs, instance).succeeded if k.startswith("late")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = defs.resolve_job_def("monitoring_job").execute_in_process(partition_key=key, instance=instance)
    report = result.output_for_node("drift_report")
    assert result.output_for_node("batch_predictions").height == 0
    assert not report["retrain"] and report["reasons"] == ["no rows scored: nothing to judge"] and report["rows_scored"] == 0
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
