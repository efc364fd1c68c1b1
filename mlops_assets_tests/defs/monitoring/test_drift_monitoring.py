"""A batch without drift leads to no retraining request; a batch simulated with `--drift`
on temperature is flagged, the sensor requests retraining once, and that run ends in a
new champion (v2). The later steps of the story are module fixtures chained in order."""

from datetime import timedelta

import dagster as dg
import pytest

from mlops_assets.core.simulate import DEFAULT_START, SimulationConfig, write_batches
from mlops_assets.core.spec import load_spec
from mlops_assets.defs.monitoring.sensors import drift_sensor
from mlops_assets_tests.pipeline import land, local_platform

SPEC = load_spec()
HISTORY_DAYS = 40
# What the training that drift_sensor requests decides, as (action, version) history entries:
# v2, trained on the history with the hot days, is no worse than v1 on the same test rows.
DRIFT_RETRAINING_DECISION = [("approve", "2"), ("promote", "2")]


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
    from mlops_assets.resources.monitoring import DriftSettings

    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"drift": DriftSettings()}) as context:
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
    # 15 °C hotter in February: far less heating, so the forecasts themselves move; the calm
    # re-delivery of the champion's own test days leaves them where they were.
    calm = monitored["reports"]["calm"]
    assert hot["prediction_drift"]["psi"] > 0.2 > 0.05 > calm["prediction_drift"]["psi"], (hot["prediction_drift"], calm["prediction_drift"])
    # the realized error is the batch's MAE over its labelled, scored rows
    import polars as pl

    scored = pl.read_parquet(monitored["home"] / "storage" / "batch_predictions" / f"{monitored['keys']['hot']}.parquet")
    errors = (scored.get_column(SPEC.target.column) - scored.get_column("prediction")).abs().drop_nulls()
    assert errors.len() == 3 * 24 * 5 and hot["realized_mae"] == pytest.approx(errors.mean(), rel=1e-9)
    meta = _materializations(monitored["instance"], "drift_report", monitored["keys"]["hot"])[0]
    assert meta["retrain_flag"].value == 1 and meta["retrain"].value and meta["drifted_features"].value >= 1
    features = {row.data["feature"]: row.data for row in meta["features"].records}
    assert features["temperature_c"]["psi"] > 0.2 and features["temperature_c"]["verdict"] == "DRIFTED"
    assert meta["features"].schema.columns[0].description  # the table says what its columns mean
    # a few headline numbers, rounded: no 16-digit floats, no flat per-feature entries
    assert not [key for key in meta if "/" in key] and len(meta) <= 25
    assert all(len(repr(value.value)) <= 12 for value in meta.values() if isinstance(value.value, float))


# The later steps of the story, each a module fixture on the step before it: whichever test asks
# first, the steps run once and in this order (bounded reference -> drift retraining -> a batch
# landed before its history -> a new group -> the alias moved); the tests check what each recorded.


@pytest.fixture(scope="module")
def bounded(monitored):
    """The calm batch judged against v1's reference stored with 2 days and 50 training rows;
    the reference is stored again with the defaults afterwards."""
    import polars as pl

    from mlops_assets.defs.monitoring.assets import drift_report
    from mlops_assets.defs.monitoring.reference import monitoring_reference
    from mlops_assets.resources.monitoring import DriftSettings

    defs, instance, home = monitored["defs"], monitored["instance"], monitored["home"]
    small = {**defs.resources, "drift": DriftSettings(prediction_reference_days=2, reference_rows=50)}
    stored = dg.materialize(defs.assets, selection=[monitoring_reference], instance=instance, resources=small)
    result = dg.materialize(
        defs.assets, selection=[drift_report], partition_key=monitored["keys"]["calm"], instance=instance, resources=defs.resources
    )
    dg.materialize(defs.assets, selection=[monitoring_reference], instance=instance, resources=defs.resources)  # back to the defaults
    return {
        "stored": stored.output_for_node("monitoring_reference"), "report": result.output_for_node("drift_report")["reference"],
        "meta": _materializations(instance, "drift_report", monitored["keys"]["calm"])[0],
        "test_set": pl.read_parquet(home / "storage" / "test_set.parquet"),
        "train_rows": pl.scan_parquet(home / "storage" / "train_set.parquet").select(pl.len()).collect().item(),
    }


def test_drift_report_compares_with_the_champions_bounded_reference(monitored, bounded):
    """The per-batch cost must not grow with the history: the reference stored with the version
    holds at most `reference_rows` training rows and the newest `prediction_reference_days` of
    its test rows with its own forecast; drift_report compares with exactly that."""
    import polars as pl

    assert bounded["stored"]["version"] == "1"
    report, test_set = bounded["report"], bounded["test_set"]
    ts = pl.col(SPEC.timestamp)
    newest = test_set.filter(ts > ts.max() - pl.duration(days=2))
    assert 0 < newest.height < test_set.height  # the window really cuts the test set here
    assert report["version"] == "1" and report["recent_rows"] == newest.height
    assert report["recent_to"] == str(test_set.get_column(SPEC.timestamp).max())
    assert report["recent_from"] == str(newest.get_column(SPEC.timestamp).min())
    every_kth = -(-bounded["train_rows"] // 50)  # every k-th training row, k = ceil(rows / 50): about 50 rows
    assert bounded["train_rows"] > 100 and report["training_rows"] == -(-bounded["train_rows"] // every_kth) <= 50
    # the defaults keep the whole (short) test set of this small history
    assert monitored["reports"]["calm"]["reference"]["recent_rows"] == test_set.height
    meta = bounded["meta"]
    assert meta["reference_version"].value == "1" and f"recent test rows: {newest.height} (" in meta["reference"].value


@pytest.fixture(scope="module")
def retrained(monitored, bounded):
    """drift_sensor evaluated twice, and the training its request asks for."""
    instance, defs = monitored["instance"], monitored["defs"]
    registry = defs.resources["mlflow_tracking"].registry()
    first = evaluate(instance)
    again = evaluate(instance, first.cursor)
    before = len(registry.history())
    if len(first.run_requests) == 1:
        defs.resolve_job_def("training_job").execute_in_process(instance=instance, tags=first.run_requests[0].tags, raise_on_error=False)
    return {"first": first, "again": again, "history": registry.history()[before:], "champion": registry.alias_version("champion")}


def test_sensor_requests_retraining_once_and_it_ends_in_a_decision(retrained):
    first = retrained["first"]
    assert len(first.run_requests) == 1  # the calm batch asks for nothing
    request = first.run_requests[0]
    assert request.run_key.startswith("drift:") and request.tags["mlops/trigger"].startswith("drift_sensor:")
    assert retrained["again"].run_requests == []

    history = retrained["history"]
    assert history and all(h["trigger"].startswith("drift_sensor:") for h in history)
    assert [(h["action"], h["version"]) for h in history] == DRIFT_RETRAINING_DECISION
    assert retrained["champion"] == DRIFT_RETRAINING_DECISION[-1][1]


def _land_days(monitored, name: str, first_day: int, days: int, extra: dict[str, int] | None = None) -> str:
    """Ingest one batch file of the 3 groups for days [first_day, first_day + days) after the
    simulation start, plus `extra` groups (label -> first day of that group); its batch key."""
    import polars as pl

    from mlops_assets.core.simulate import group_names, simulate_frame
    from mlops_assets.runner import ingest_landed

    extra = extra or {}
    config = SimulationConfig(start=DEFAULT_START + timedelta(days=first_day), days=days, groups=3 + len(extra), defects=False)
    frame = simulate_frame(SPEC, config)
    names = group_names(3 + len(extra))
    parts = [frame.filter(pl.col(SPEC.group).is_in(names[:3]))]
    for (label, start), name in zip(extra.items(), names[3:]):
        since = DEFAULT_START + timedelta(days=start)
        rows = frame.filter((pl.col(SPEC.group) == name) & (pl.col(SPEC.timestamp).dt.date() >= since))
        parts.append(rows.with_columns(pl.lit(label).alias(SPEC.group)))
    land(monitored["home"], f"{name}.csv", pl.concat(parts))
    [key] = [k for k in ingest_landed(monitored["defs"], monitored["instance"]).succeeded if k.startswith(name)]
    return key


def _materializations(instance, asset: str, key: str):
    wanted = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[key])
    return [r.asset_materialization.metadata for r in instance.fetch_materializations(wanted, limit=10).records]


def rescore(instance, cursor=None):
    from mlops_assets.defs.monitoring.rescore import rescore_sensor

    with dg.build_sensor_context(instance=instance, cursor=cursor) as context:
        return rescore_sensor(context)


@pytest.fixture(scope="module")
def rescored(monitored, retrained):
    """Day H+1 landed and monitored before day H; then day H landed, the history prepared again,
    rescore_sensor asked and the batch monitored again."""
    import warnings

    defs, instance = monitored["defs"], monitored["instance"]
    monitoring = defs.resolve_job_def("monitoring_job")
    early = _land_days(monitored, "early", HISTORY_DAYS + 1, 1)
    drift_cursor = evaluate(instance).cursor
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = monitoring.execute_in_process(partition_key=early, instance=instance)
    steps = {
        "early": early, "runtime_warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)],
        "first_scored": first.output_for_node("batch_predictions").height, "first_meta": _materializations(instance, "batch_predictions", early)[0],
        "first_report": first.output_for_node("drift_report"), "judged": evaluate(instance, drift_cursor), "waiting": rescore(instance),
    }
    _land_days(monitored, "gap", HISTORY_DAYS, 1)
    steps["prepared"] = monitored["run_job"](defs, "preparation_job", instance).success
    steps["arrived"] = arrived = rescore(instance, steps["waiting"].cursor)
    requests = [r for r in arrived.run_requests if r.partition_key == early]
    steps["requests"] = requests
    if len(requests) == 1:
        again = monitoring.execute_in_process(partition_key=early, instance=instance, tags=requests[0].tags)
        steps.update(meta=_materializations(instance, "batch_predictions", early)[0], report=again.output_for_node("drift_report"))
        steps["after"] = rescore(instance, arrived.cursor)
    steps["champion"] = defs.resources["mlflow_tracking"].registry().alias_version("champion")
    return steps


def test_a_batch_landed_before_its_history_is_not_scored_then_rescored_when_the_history_arrives(rescored):
    """Day H+1 lands before day H (the day after the history): none of its rows has the 24 h
    lag, so nothing is scored, the report says so without NaN or RuntimeWarning and asks for no
    retraining. Once day H is in load_history, rescore_sensor requests the batch once, and
    re-materializing scores every row."""
    import math

    early = rescored["early"]
    assert rescored["runtime_warnings"] == []
    assert rescored["first_scored"] == 0
    meta = rescored["first_meta"]
    assert meta["rows_scored"].value == 0 and meta["rows_awaiting_history"].value == 3 * 24
    report = rescored["first_report"]
    assert report["reasons"] == ["not scored: waiting for history"] and not report["retrain"]
    assert report["rows_awaiting_history"] == 72 and math.isfinite(report["weighted_drift"])
    judged = rescored["judged"]  # no retraining: nothing waits for one
    assert judged.run_requests == [] and judged.skip_reason.skip_message == "no drift report says retrain"
    assert rescored["waiting"].run_requests == []  # the history has not changed since it was scored

    assert rescored["prepared"]
    [request] = rescored["requests"]
    from mlops_assets.defs.monitoring.rescore import rescore_sensor

    assert request.run_key.startswith(f"rescore:{early}:") and (request.job_name or rescore_sensor.job_name) == "monitoring_job"
    meta = rescored["meta"]
    assert meta["rows_scored"].value == 72 and meta["rows_awaiting_history"].value == 0
    report = rescored["report"]
    assert report["rows_scored"] == 72 and report["reasons"] != ["not scored: waiting for history"]
    assert rescored["after"].run_requests == []  # requested once: not again


def test_drift_report_after_a_preparation_refresh_uses_the_champions_own_reference(monitored, rescored):
    """The splits were rebuilt on more data by the step before; the report is still judged
    against the reference stored with the champion's version, not the refreshed test set."""
    import polars as pl

    from mlops_assets.defs.monitoring.reference import load_reference

    defs, home = monitored["defs"], monitored["home"]
    tracking = defs.resources["mlflow_tracking"]
    champion = rescored["champion"]
    stored = load_reference(tracking, champion)
    used = rescored["report"]["reference"]
    assert used["version"] == champion == rescored["report"]["champion_version"]
    assert used["recent_to"] == stored.describe(SPEC.timestamp)["recent_to"] and used["recent_rows"] == stored.recent.height
    assert used["data_versions"] == stored.data_versions and used["data_versions"]["test_set"]
    refreshed = pl.read_parquet(home / "storage" / "test_set.parquet").get_column(SPEC.timestamp)
    assert str(refreshed.max()) > used["recent_to"]  # the refreshed test set reaches the new days
    tags = tracking.registry().version_tags(champion)
    assert tags["reference.uri"].startswith("runs:/") and tags["data_version.test_set"] == stored.data_versions["test_set"]


NEW_LABEL = "Zone A/B (ö)"


@pytest.fixture(scope="module")
def new_group(monitored, rescored):
    """Two days with a group the champion never saw, monitored; then one more day of it."""
    defs, instance = monitored["defs"], monitored["instance"]
    monitoring = defs.resolve_job_def("monitoring_job")
    key = _land_days(monitored, "newgroup", HISTORY_DAYS + 2, 2, extra={NEW_LABEL: HISTORY_DAYS + 2})
    result = monitoring.execute_in_process(partition_key=key, instance=instance)
    later = _land_days(monitored, "newgroup_next", HISTORY_DAYS + 4, 1, extra={NEW_LABEL: HISTORY_DAYS + 4})
    monitoring.execute_in_process(partition_key=later, instance=instance)
    return {"key": key, "result": result, "later": later, "alerts": (monitored["home"] / "alerts.log").read_text()}


def test_a_new_group_is_marked_served_by_the_fallback_and_alerted_once(monitored, new_group):
    """A group the champion never saw: its rows with the 24 h lag are scored and marked
    new_group (served by the fallback), its first day is never scorable (not awaited), it is named in both
    assets' metadata and in one WARN alert, not again for the next batch."""
    import json

    import polars as pl

    instance = monitored["instance"]
    label, key, result = NEW_LABEL, new_group["key"], new_group["result"]
    scored = result.output_for_node("batch_predictions")
    new = scored.filter(pl.col("new_group"))
    assert set(new.get_column(SPEC.group).to_list()) == {label} and new.height == 24
    assert set(scored.filter(~pl.col("new_group")).get_column("served_by").to_list()) == {"model"}
    assert set(new.get_column("served_by").to_list()) == {"fallback"}
    meta = _materializations(instance, "batch_predictions", key)[0]
    assert meta["new_groups"].value == [label] and meta["rows_before_group_history"].value == 24
    assert meta["rows_awaiting_history"].value == 0  # its first day can never have the 24 h lag: nothing to wait for
    assert result.output_for_node("drift_report")["new_groups"] == [label]

    later = new_group["later"]
    assert _materializations(instance, "batch_predictions", later)[0]["new_groups"].value == [label]
    records = [json.loads(line) for line in new_group["alerts"].splitlines()]
    alerts = [r for r in records if r.get("key") == f"new_group:{label}"]
    assert len(alerts) == 1 and alerts[0]["severity"] == "WARN" and label in alerts[0]["title"]


@pytest.fixture(scope="module")
def alias_moved(monitored, new_group):
    """The calm batch monitored, `champion` force-promoted to another version, the batch monitored again."""
    defs, instance = monitored["defs"], monitored["instance"]
    registry = defs.resources["mlflow_tracking"].registry()
    versions = sorted(int(v.version) for v in registry.client.search_model_versions(f"name='{registry.name}'"))
    monitoring = defs.resolve_job_def("monitoring_job")
    key = monitored["keys"]["calm"]
    before = monitoring.execute_in_process(partition_key=key, instance=instance)
    current = before.output_for_node("drift_report")["champion_version"]
    other = str(next(v for v in versions if str(v) != current))
    moved = defs.resolve_job_def("manual_promotion_job").execute_in_process(
        instance=instance, run_config={"ops": {"champion_model": {"config": {"action": "force_promote", "reason": "test: move the alias", "version": other}}}}
    )
    champion = registry.alias_version("champion")
    after = monitoring.execute_in_process(partition_key=key, instance=instance)
    return {"versions": versions, "before": before, "current": current, "other": other, "moved": moved, "champion": champion, "after": after}


def test_monitoring_follows_the_champion_alias_when_it_moves(monitored, alias_moved):
    """The monitoring steps keep a loaded model per registry version (bench/incremental.py):
    moving `champion` to another version must switch the model the next batch is scored with."""
    registry = monitored["defs"].resources["mlflow_tracking"].registry()
    assert len(alias_moved["versions"]) >= 2, "the drift retraining registers a second version"
    before, current, other, after = alias_moved["before"], alias_moved["current"], alias_moved["other"], alias_moved["after"]
    assert alias_moved["moved"].success and alias_moved["champion"] == other
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
