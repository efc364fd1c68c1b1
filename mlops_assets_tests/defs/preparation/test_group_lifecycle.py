"""Groups that stop and start, through ingestion and `preparation_job`: a group silent for longer
than `retire_after` is retired (listed, alerted once, not required in every split); a group that
appears late is in `features` after one day of history and listed as new; a single series and
half-hourly data go through the same way."""

import json
from datetime import timedelta

import dagster as dg
import polars as pl
import yaml

from mlops_assets.core.spec import load_spec
from mlops_assets.runner import ingest_landed, run_job
from mlops_assets_tests.builders import T0, to_csv_bytes
from mlops_assets_tests.lifecycle_builders import series_frame, with_lifecycle

SPEC = load_spec()
LABEL = "Zone A/B (ö)"
PREPARATION_CHECKS = (
    "history_matches_schema", "lags_stay_in_group", "no_observed_value_after_cutoff", "split_is_time_ordered_check",
    "groups_in_every_split",
)


def checks_by_name(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def history_metadata(instance) -> dict:
    mat = instance.get_latest_materialization_event(dg.AssetKey("load_history")).asset_materialization
    return {k: v.value for k, v in mat.metadata.items()}


def table_rows(table: dg.TableMetadataValue) -> dict[str, dict]:
    """The rows of a table metadata value by their first column ("group")."""
    assert [c.name for c in table.schema.columns][:1] == ["group"]
    return {row.data["group"]: dict(row.data) for row in table.records}


def alerts(home) -> list[dict]:
    path = home / "alerts.log"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def build(monkeypatch, tmp_path, spec_dict: dict | None = None):
    from mlops_assets.definitions import build_definitions

    if spec_dict is not None:
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump(spec_dict, allow_unicode=True), encoding="utf-8")
        monkeypatch.setenv("MLOPS_DATASET_SPEC", str(path))
    return build_definitions("local")


def test_a_group_that_stops_is_retired_with_one_alert_and_preparation_passes(
    monkeypatch, tmp_path, mlops_home, landing_dir, instance
):
    defs = build(monkeypatch, tmp_path)
    # 30 days; B stops after day 18: silent for 12 days, longer than the 4.5-day test split and than
    # retire_after (7 days).
    frame = with_lifecycle(series_frame(SPEC, ["A", "B", "C"], 30), SPEC, stops={"B": 18})
    (landing_dir / "history.csv").write_bytes(to_csv_bytes(frame))
    assert [key.split("__")[0] for key in ingest_landed(defs, instance).succeeded] == ["history"]
    result = run_job(defs, "preparation_job", instance)
    assert result.success
    checks = checks_by_name(result)
    for name in PREPARATION_CHECKS:
        assert checks[name].passed, (name, checks[name].description)
    split_check = checks["groups_in_every_split"]
    assert split_check.metadata["retired_groups"].value == ["B"] and split_check.metadata["new_groups"].value == []
    assert "retired groups (listed, not required): ['B']" in split_check.description
    test = result.output_for_node("splits", "test_set")
    assert "B" not in test.get_column(SPEC.group).unique().to_list()

    meta = history_metadata(instance)
    assert meta["groups_active"] == 2 and meta["groups_retired"] == 1 and meta["retired_groups"] == ["B"]
    assert table_rows(meta["group_lifecycle"])["B"] == {
        "group": "B", "first_timestamp": "2024-01-01 00:00:00+00:00", "last_timestamp": "2024-01-18 23:00:00+00:00",
        "rows": 432, "status": "retired",
    }
    [alert] = alerts(mlops_home)
    assert alert["kind"] == "group_retired" and alert["severity"] == "WARN" and alert["asset"] == "load_history"
    assert alert["key"] == "retired_group:B:2024-01-18T23:00:00+00:00" and "retire_after (168h)" in alert["reason"]

    # Materializing again sends no second alert.
    assert run_job(defs, "preparation_job", instance).success
    assert len(alerts(mlops_home)) == 1

    # B reports again: active, nothing more to alert, every group in every split again later on.
    back = series_frame(SPEC, ["A", "B", "C"], 31).filter(pl.col(SPEC.timestamp) >= T0 + timedelta(days=30))
    (landing_dir / "day31.csv").write_bytes(to_csv_bytes(back))
    assert [key.split("__")[0] for key in ingest_landed(defs, instance).succeeded] == ["day31"]
    assert run_job(defs, "preparation_job", instance, asset_selection={dg.AssetKey("load_history")}).success
    meta = history_metadata(instance)
    assert meta["groups_retired"] == 0 and meta["retired_groups"] == [] and len(alerts(mlops_home)) == 1


HALF_HOURLY = {
    "name": "zones",
    "frequency": "30min",
    "timestamp": {"column": "ts", "timezone": "Europe/Zurich"},
    "group": {"column": "zone"},
    "target": {"column": "mw", "min": 0, "max": 50000},
    "features": {"numeric": [{"column": "temperature_c", "min": -40, "max": 50}], "temperature": "temperature_c"},
    "calendar": {"holidays_country": "CH"},
    "preparation": {"horizon": "24h", "lags": ["24h", "48h", "7d"], "rolling_windows": ["24h", "7d"], "retire_after": "3d"},
}


def test_half_hourly_a_late_group_with_an_odd_label_joins_after_one_day_and_a_stopped_one_retires(
    monkeypatch, tmp_path, mlops_home, landing_dir, instance
):
    defs = build(monkeypatch, tmp_path, HALF_HOURLY)
    spec = load_spec(tmp_path / "spec.yaml")
    # 16 days of half-hours: the test split is the last 2.4 days. LABEL starts on day 13, "gone"
    # stops after day 11 (5 days silent > retire_after 3d).
    frame = with_lifecycle(series_frame(spec, ["A", LABEL, "gone"], 16), spec, starts={LABEL: 13}, stops={"gone": 11})
    (landing_dir / "zones.csv").write_bytes(to_csv_bytes(frame))
    assert [key.split("__")[0] for key in ingest_landed(defs, instance).succeeded] == ["zones"]
    result = run_job(defs, "preparation_job", instance)
    assert result.success
    checks = checks_by_name(result)
    for name in PREPARATION_CHECKS:
        assert checks[name].passed, (name, checks[name].description)
    split_check = checks["groups_in_every_split"]
    assert split_check.metadata["new_groups"].value == [LABEL] and split_check.metadata["retired_groups"].value == ["gone"]
    assert f"new groups (listed, not required): ['{LABEL}']" in split_check.description

    features = result.output_for_node("features")
    young = features.filter(pl.col("zone") == LABEL).sort("ts")
    assert young.get_column("ts").min() == T0 + timedelta(days=14)  # one day of history, not a week
    assert young.height == 2 * 48 and young.get_column("mw_lag_24h").null_count() == 0
    assert young.get_column("mw_lag_168h").null_count() == young.height
    mat = instance.get_latest_materialization_event(dg.AssetKey("features")).asset_materialization
    assert mat.metadata["rows_without_required_history"].value == 3 * 48
    assert mat.metadata["rows_with_partial_history"].value >= young.height
    [alert] = alerts(mlops_home)
    assert alert["key"] == "retired_group:gone:2024-01-11T23:30:00+00:00"
    assert table_rows(history_metadata(instance)["group_lifecycle"])[LABEL]["status"] == "active"  # the odd label as written


def test_a_single_series_is_one_active_series_through_preparation(monkeypatch, tmp_path, mlops_home, landing_dir, instance):
    spec_path = SPEC.source.replace("electricity_load", "half_hourly_demand")
    monkeypatch.setenv("MLOPS_DATASET_SPEC", spec_path)
    defs = build(monkeypatch, tmp_path)
    spec = load_spec(spec_path)
    frame = series_frame(spec, None, 12)
    # A 9-day-old gap in the middle would retire a group; a single series is never retired.
    frame = frame.filter((pl.col(spec.timestamp) < T0 + timedelta(days=2)) | (pl.col(spec.timestamp) >= T0 + timedelta(days=3)))
    (landing_dir / "demand.csv").write_bytes(to_csv_bytes(frame))
    assert [key.split("__")[0] for key in ingest_landed(defs, instance).succeeded] == ["demand"]
    result = run_job(defs, "preparation_job", instance)
    assert result.success
    checks = checks_by_name(result)
    for name in PREPARATION_CHECKS:
        assert checks[name].passed, (name, checks[name].description)
    meta = history_metadata(instance)
    assert meta["groups_active"] == 1 and meta["groups_retired"] == 0
    assert table_rows(meta["group_lifecycle"])["all"] == {
        "group": "all", "first_timestamp": "2024-01-01 00:00:00+00:00", "last_timestamp": "2024-01-12 23:30:00+00:00",
        "rows": 528, "status": "active",
    }
    assert alerts(mlops_home) == []
