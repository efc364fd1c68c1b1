"""Acceptance: weeks of operation through `mlops-assets run` (fast profile, small data) with
zones that stop and start.

One hourly multi-zone set (the shipped `hourly_multi_group.yaml`, awkward labels) where a zone
stops reporting three weeks before the end and a zone nobody has seen starts after the first
training. The first run trains and promotes although the stopped zone has no test rows (it is
retired, alerted once); a file with the new zone is scored with the group-agnostic fallback,
marked per row and alerted once; once the new zone reaches the validation window a retraining
runs (nothing stalls) and the registered model knows it."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from mlops_assets.core.sample_data import ZONES, ZONES_TIMEZONE, Zone, to_csv, zone_loads
from mlops_assets_tests.acceptance.platform import explain, land, mlflow_client, partitions, run_cli, stored, write_spec

pytestmark = pytest.mark.slow
START = date(2023, 1, 9)
DAYS = 60  # the new zone needs a week of rows before the test window to be known to a retrained model
FIRST_DAYS = 40  # history of the first run; the new zone starts on this day
STOPPED = ZONES[1].label  # "R&D <1>": stops after day 18, 22 days (> retire_after 7d) before the first run's end
NEW = "Neu/Zone (ö) #2"


def _day(n: int) -> datetime:
    return datetime(START.year, START.month, START.day, tzinfo=ZoneInfo(ZONES_TIMEZONE)) + timedelta(days=n)


def _alerts(home, kind: str) -> list[dict]:
    path = home / "alerts.log"
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [r for r in records if r["kind"] == kind]


@pytest.fixture(scope="module")
def operation(tmp_path_factory):
    home = tmp_path_factory.mktemp("operations") / "mlops"
    spec_path = write_spec(home, "hourly_multi_group.yaml")
    zones = (*ZONES[:4], Zone(NEW, 1500.0, starts_after=FIRST_DAYS / DAYS))
    frame = zone_loads(start=START, days=DAYS, seed=3, zones=zones, missing=6)
    ts, zone = pl.col("timestamp"), pl.col("zone")
    frame = frame.filter(~((zone == STOPPED) & (ts >= _day(18))))
    first, later = frame.filter(ts < _day(FIRST_DAYS)), frame.filter(ts >= _day(FIRST_DAYS))
    land(home, [("zones_history.csv", to_csv(first))])
    trained = run_cli(home, spec_path, "run")
    registered_first = stored(home, "registered_model")
    retired_after_first = _alerts(home, "group_retired")
    land(home, [("zones_new_zone.csv", to_csv(later))])
    monitored = run_cli(home, spec_path, "run", "--no-train")
    retrained = run_cli(home, spec_path, "run", "--train")
    return {
        "home": home, "trained": trained, "registered_first": registered_first, "retired_after_first": retired_after_first,
        "monitored": monitored, "retrained": retrained,
    }


def test_a_stopped_zone_is_retired_once_and_training_still_promotes(operation):
    assert operation["trained"].returncode == 0, explain(operation["trained"])
    registered = operation["registered_first"]
    assert registered["passed"], registered["verdicts"]
    assert "champion: v1" in operation["trained"].stdout, explain(operation["trained"])
    retired = operation["retired_after_first"]
    assert [a["key"].split(":")[1] for a in retired] == [STOPPED], retired
    # Later runs rebuild the history again: still the one alert.
    assert len(_alerts(operation["home"], "group_retired")) == 1


def test_a_new_zone_is_served_by_the_fallback_marked_per_row_and_alerted_once(operation):
    home = operation["home"]
    assert operation["monitored"].returncode == 0, explain(operation["monitored"])
    batch = next(key for key in partitions(home, "batch_predictions") if key.startswith("zones_new_zone"))
    predictions = pl.read_parquet(home / "storage" / "batch_predictions" / f"{batch}.parquet")
    new_rows = predictions.filter(pl.col("zone") == NEW)
    known_rows = predictions.filter(pl.col("zone") != NEW)
    assert new_rows.height > 0 and known_rows.height > 0
    assert new_rows.get_column("new_group").all() and (new_rows.get_column("served_by") == "fallback").all()
    assert not known_rows.get_column("new_group").any() and (known_rows.get_column("served_by") == "model").all()
    assert new_rows.get_column("prediction").is_finite().all()
    alerts = _alerts(home, "new_group")
    assert len(alerts) == 1 and NEW in alerts[0]["title"], alerts
    report = json.loads((home / "storage" / "drift_report" / f"{batch}.json").read_text())
    assert NEW in json.dumps(report, ensure_ascii=False)


def test_the_new_zone_enters_training_once_it_has_history(operation):
    from mlops_assets.core.pyfunc_model import known_groups

    home = operation["home"]
    assert operation["retrained"].returncode == 0, explain(operation["retrained"])
    registered = stored(home, "registered_model")
    assert registered["version"] != operation["registered_first"]["version"], explain(operation["retrained"])
    import mlflow.pyfunc

    client = mlflow_client(home)
    mlflow.set_tracking_uri(client._tracking_client.tracking_uri)
    mlflow.set_registry_uri(client._tracking_client.tracking_uri)
    model = mlflow.pyfunc.load_model(registered["model_uri"])
    assert NEW in (known_groups(model) or []), known_groups(model)
    assert len(_alerts(home, "new_group")) == 1
