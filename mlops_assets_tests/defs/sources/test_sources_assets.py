"""The `sources` assets and checks run as Dagster runs them (`sources_job`, one UTC day per
partition) against the local stand-in server; their files then go through ingestion."""

from datetime import datetime, timedelta, timezone

import dagster as dg
import polars as pl
import pytest

from mlops_assets.core.spec import load_spec
from mlops_assets.runner import ingest_landed, run_job
from mlops_assets_tests.defs.sources.conftest import SMALL_SUBREGIONS, write_sources_config
from mlops_assets_tests.sources_server import UNITS, demand_value, weather_value

SPEC = load_spec()
UTC = timezone.utc
COLUMNS = {"temperature_2m": "temperature_c", "relative_humidity_2m": "relative_humidity", "wind_speed_10m": "wind_speed_ms",
           "cloud_cover": "cloud_cover", "precipitation": "precipitation_mm"}
LATITUDE = {s["subba"]: s["latitude"] for s in SMALL_SUBREGIONS}


def utc_hours(day: str) -> list[datetime]:
    first = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return [first + timedelta(hours=h) for h in range(24)]


def run_day(instance, day: str):
    from mlops_assets.definitions import build_definitions

    defs = build_definitions("local")
    return defs, defs.resolve_job_def("sources_job").execute_in_process(partition_key=day, instance=instance, raise_on_error=False)


def checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def landed(mlops_home, day: str) -> pl.DataFrame:
    return pl.read_csv(mlops_home / "landing" / f"eia_NYIS_{day}.csv", infer_schema_length=0)


def test_a_day_lands_with_its_metadata_checks_and_the_servers_values(source_server, small_sources, instance, mlops_home, monkeypatch):
    monkeypatch.setenv("MLOPS_EIA_PAGE_LENGTH", "20")  # 48 rows: three pages
    _, result = run_day(instance, "2024-01-01")
    assert result.success
    demand = result.asset_materializations_for_node("eia_demand")[0].metadata
    assert (demand["requests"].value, demand["pages"].value, demand["rows"].value, demand["missing_hours"].value) == (3, 3, 48, 0)
    assert demand["first_hour_utc"].value == "2024-01-01 00:00:00+00:00" and demand["last_hour_utc"].value == "2024-01-01 23:00:00+00:00"
    weather = result.asset_materializations_for_node("weather_observations")[0].metadata
    assert (weather["requests"].value, weather["rows"].value, weather["missing_hours"].value) == (2, 2 * 24 * 5, 0)
    evaluations = checks(result)
    assert len(evaluations) == 6 and all(e.passed for e in evaluations.values())

    frame = landed(mlops_home, "2024-01-01")
    assert frame.columns == SPEC.required_columns
    assert frame.group_by(SPEC.group).len().sort(SPEC.group).rows() == [("ZONA", 24), ("ZONJ", 24)]
    expected = []
    for subba in ("ZONA", "ZONJ"):
        for hour in utc_hours("2024-01-01"):
            features = [str(weather_value(v, LATITUDE[subba], hour)) for v in COLUMNS]
            expected.append((subba, hour.isoformat(), f"{float(demand_value(subba, hour))}", *features))
    assert frame.select(SPEC.group, SPEC.timestamp, SPEC.target.column, *COLUMNS.values()).rows() == expected


def test_missing_hours_are_listed_left_empty_and_ingested(source_server, small_sources, instance, mlops_home):
    hours = utc_hours("2024-01-02")
    source_server.missing_demand |= {("ZONA", hours[5]), ("ZONA", hours[6])}
    source_server.missing_weather |= {(LATITUDE["ZONJ"], hours[10])}
    defs, result = run_day(instance, "2024-01-02")
    assert result.success
    evaluations = checks(result)
    demand_gaps = evaluations["eia_demand_complete_hours"]
    assert not demand_gaps.passed and demand_gaps.severity == dg.AssetCheckSeverity.WARN
    assert "2 missing hours" in demand_gaps.description and "ZONA 05:00-06:00" in demand_gaps.description
    weather_gaps = evaluations["weather_observations_complete_hours"]
    assert not weather_gaps.passed and "ZONJ/temperature_2m 10:00" in weather_gaps.description
    assert result.asset_materializations_for_node("eia_demand")[0].metadata["missing_hours"].value == 2

    frame = landed(mlops_home, "2024-01-02")
    assert frame.group_by(SPEC.group).len().sort(SPEC.group).rows() == [("ZONA", 24), ("ZONJ", 24)]
    empty = frame.filter(pl.col(SPEC.target.column).is_null())
    assert empty.select(SPEC.group, SPEC.timestamp).rows() == [("ZONA", hours[5].isoformat()), ("ZONA", hours[6].isoformat())]
    assert frame.filter((pl.col(SPEC.group) == "ZONJ") & pl.col("temperature_c").is_null())[SPEC.timestamp].to_list() == [hours[10].isoformat()]

    ingested = ingest_landed(defs, instance)
    assert len(ingested.succeeded) == 1 and not ingested.quarantined
    clean = instance.get_latest_materialization_event(dg.AssetKey("clean_load")).asset_materialization
    assert clean.metadata["dagster/row_count"].value == 48


def test_a_subregion_without_any_demand_blocks_the_day(source_server, small_sources, instance, mlops_home):
    source_server.missing_demand |= {("ZONJ", hour) for hour in utc_hours("2024-01-01")}
    _, result = run_day(instance, "2024-01-01")
    assert not result.success
    blocked = checks(result)["eia_demand_complete_hours"]
    assert not blocked.passed and blocked.severity == dg.AssetCheckSeverity.ERROR and "ZONJ" in blocked.description
    assert result.asset_materializations_for_node("source_batch_file") == []
    assert not (mlops_home / "landing" / "eia_NYIS_2024-01-01.csv").exists()


def test_a_day_without_weather_yet_lands_with_empty_features(source_server, small_sources, instance, mlops_home):
    source_server.missing_weather |= {(LATITUDE["ZONJ"], hour) for hour in utc_hours("2024-01-01")}
    _, result = run_day(instance, "2024-01-01")
    assert result.success
    gaps = checks(result)["weather_observations_complete_hours"]
    assert not gaps.passed and gaps.severity == dg.AssetCheckSeverity.WARN and gaps.metadata["missing_hours"].value == 5 * 24
    zonj = landed(mlops_home, "2024-01-01").filter(pl.col(SPEC.group) == "ZONJ")
    assert zonj.height == 24 and zonj.select(COLUMNS.values()).null_count().row(0) == (24,) * 5
    assert zonj[SPEC.target.column].null_count() == 0


def test_an_hour_sent_twice_blocks_the_day(source_server, small_sources, instance, mlops_home):
    hour = utc_hours("2024-01-01")[8]
    source_server.duplicated_demand.add(("ZONJ", hour))
    _, result = run_day(instance, "2024-01-01")
    assert not result.success
    unique = checks(result)["eia_demand_unique_hours"]
    assert not unique.passed and unique.severity == dg.AssetCheckSeverity.ERROR
    assert unique.description == "1 keys (subregion, time_utc) appear more than once"
    assert unique.metadata["duplicated_keys"].value == 1
    assert not (mlops_home / "landing" / "eia_NYIS_2024-01-01.csv").exists()


def test_weather_in_other_units_than_configured_blocks_the_day(source_server, tmp_path, monkeypatch, instance, mlops_home):
    write_sources_config(tmp_path / "fahrenheit.yaml", monkeypatch, units={"temperature_2m": "°F"})
    _, result = run_day(instance, "2024-01-01")
    assert not result.success
    schema = checks(result)["weather_observations_schema_and_units"]
    assert not schema.passed and "temperature_2m: unit '°C', expected '°F'" in schema.description
    assert not (mlops_home / "landing" / "eia_NYIS_2024-01-01.csv").exists()


@pytest.mark.parametrize("day", ["2024-03-10", "2024-11-03"])  # New York's DST changes
def test_a_dst_day_in_the_subregions_zone_is_24_utc_hours_and_ingested_unshifted(source_server, small_sources, instance, mlops_home, day):
    defs, result = run_day(instance, day)
    assert result.success
    local = result.asset_materializations_for_node("eia_demand")[0].metadata["local_day"].value
    assert "EST" in local and "EDT" in local
    frame = landed(mlops_home, day)
    assert frame.filter(pl.col(SPEC.group) == "ZONA")[SPEC.timestamp].to_list() == [h.isoformat() for h in utc_hours(day)]

    ingested = ingest_landed(defs, instance)
    assert len(ingested.succeeded) == 1
    clean = pl.read_parquet(mlops_home / "storage" / "clean_load" / f"{ingested.succeeded[0]}.parquet")
    zona = clean.filter(pl.col(SPEC.group) == "ZONA").sort(SPEC.timestamp)
    assert zona[SPEC.timestamp].to_list() == utc_hours(day)
    assert zona[SPEC.target.column].to_list() == [float(demand_value("ZONA", h)) for h in utc_hours(day)]


def test_a_revised_day_lands_again_and_wins_an_unchanged_one_is_no_new_batch(source_server, small_sources, instance, mlops_home):
    noon = utc_hours("2024-01-01")[12]
    defs, first = run_day(instance, "2024-01-01")
    assert first.success and len(ingest_landed(defs, instance).succeeded) == 1

    revised_value = demand_value("ZONA", noon) + 7.0  # the API revises a recent hour (plausibly: no spike)
    source_server.revised[("ZONA", noon)] = revised_value
    _, again = run_day(instance, "2024-01-01")
    revised = ingest_landed(defs, instance)
    assert again.success and len(revised.succeeded) == 1
    assert sorted(p.name for p in (mlops_home / "landing").iterdir()) == ["eia_NYIS_2024-01-01.csv"]

    _, unchanged = run_day(instance, "2024-01-01")
    repeat = ingest_landed(defs, instance)
    assert unchanged.success and repeat.succeeded == [] and repeat.duplicates == ["eia_NYIS_2024-01-01.csv"]

    history = run_job(defs, "preparation_job", instance, asset_selection={dg.AssetKey("load_history")}).output_for_node("load_history")
    at_noon = history.filter(pl.col(SPEC.timestamp) == noon).sort(SPEC.group)
    assert at_noon[SPEC.target.column].to_list() == [revised_value, float(demand_value("ZONJ", noon))]
    assert history.height == 48


def test_the_schedule_is_off_and_fetches_yesterday(defs):
    schedule = defs.resolve_schedule_def("daily_sources_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED and schedule.description
    assert schedule.job_name == "sources_job"
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2024, 1, 2, 7, tzinfo=UTC))
    requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == ["2024-01-01"]
    graph = defs.resolve_asset_graph()
    sources = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).group_name == "sources"}
    assert sources == {"eia_demand", "weather_observations", "source_batch_file"}


def test_the_eia_key_is_read_from_the_environment_at_run_time(mlops_home, monkeypatch):
    from mlops_assets.definitions import build_definitions

    monkeypatch.setenv("EIA_API_KEY", "value-only-in-the-environment")
    eia = build_definitions("local").resources["eia"]
    assert isinstance(eia.api_key, dg.EnvVar) and eia.api_key == "EIA_API_KEY"
