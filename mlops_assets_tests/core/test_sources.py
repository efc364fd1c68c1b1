"""The pure side of the real sources: paging, parsing, the checks' findings, the join into a
batch named by whichever dataset spec is loaded, and the sources configuration."""

from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest

from mlops_assets.core.sources.checks import duplicate_keys, gap_table, missing_hours, schema_problems, unit_problems
from mlops_assets.core.sources.config import SourcesConfigError, load_sources_config, sources_from_dict
from mlops_assets.core.sources.eia import DEMAND_SCHEMA, collect_pages, demand_frame, demand_params, page_rows, parse_period
from mlops_assets.core.sources.errors import SourceError
from mlops_assets.core.sources.hours import hour_ranges, local_span
from mlops_assets.core.sources.landing import batch_csv, landing_frame, unfed_columns
from mlops_assets.core.sources.weather import weather_frame
from mlops_assets.core.spec import load_spec, spec_from_dict

UTC = timezone.utc
DAY = date(2024, 1, 1)


def config(subbas=("ZONA", "ZONJ"), variables=None):
    variables = variables or [{"name": "temperature_2m", "unit": "°C", "column": "temperature_c"}]
    return sources_from_dict({
        "eia": {"parent": "NYIS"},
        "weather": {"variables": variables},
        "subregions": [{"subba": s, "latitude": 40 + i, "longitude": -74, "timezone": "America/New_York"} for i, s in enumerate(subbas)],
    })


def test_hourly_periods_are_utc_and_local_hourly_ones_are_converted():
    assert parse_period("2024-01-01T05") == datetime(2024, 1, 1, 5, tzinfo=UTC)
    assert parse_period("2024-03-10T03-04") == datetime(2024, 3, 10, 7, tzinfo=UTC)
    assert parse_period("2024-01-01T00+01:00") == datetime(2023, 12, 31, 23, tzinfo=UTC)
    with pytest.raises(ValueError, match="not an hourly EIA period"):
        parse_period("2024-01-01")


def test_day_request_covers_the_utc_day_sorted_with_every_subregion():
    params = demand_params(config(), DAY, offset=40, length=20)
    assert ("start", "2024-01-01T00") in params and ("end", "2024-01-01T23") in params
    assert [v for k, v in params if k == "facets[subba][]"] == ["ZONA", "ZONJ"]
    assert ("offset", "40") in params and ("length", "20") in params and ("frequency", "hourly") in params
    assert ("sort[0][column]", "period") in params
    with pytest.raises(ValueError, match="5000"):
        demand_params(config(), DAY, 0, 5001)


def pages_of(rows: list[int], length: int, total: int | None = None, short_at: int | None = None):
    """A page function over `rows` (as the API pages them), recording the offsets asked."""
    asked = []

    def fetch(offset: int):
        asked.append(offset)
        page = rows[offset : offset + length]
        if short_at is not None and offset == short_at:
            page = page[:-1]
        return (len(rows) if total is None else total), page, f"page@{offset}"

    return fetch, asked


def test_pages_are_read_until_the_total_without_losing_a_row():
    rows = list(range(47))
    fetch, asked = pages_of(rows, 20)
    read, pages = collect_pages(fetch, 20)
    assert read == rows and pages == 3 and asked == [0, 20, 40]


def test_a_short_page_before_the_total_is_an_error_not_a_truncation():
    fetch, _ = pages_of(list(range(47)), 20, short_at=20)
    with pytest.raises(SourceError, match="short page: 19 rows at offset 20.*39 of the reported total 47"):
        collect_pages(fetch, 20)


def test_a_total_that_changes_or_is_exceeded_is_an_error():
    calls = iter([(30, list(range(20)), "a"), (31, list(range(10)), "b")])
    with pytest.raises(SourceError, match="total changed from 30 to 31"):
        collect_pages(lambda offset: next(calls), 20)
    with pytest.raises(SourceError, match="more than the reported total 5"):
        collect_pages(lambda offset: (5, list(range(6)), "c"), 20)


def test_a_response_not_in_the_documented_shape_is_named():
    with pytest.raises(SourceError, match="not an EIA v2 data response"):
        page_rows({"error": "nope"}, "http://x/data/")
    total, rows = page_rows({"response": {"total": "2", "data": [{}, {}]}}, "w")
    assert total == 2 and len(rows) == 2


def test_demand_rows_become_typed_utc_rows():
    rows = [
        {"period": "2024-01-01T01", "subba": "ZONA", "subba-name": "West", "parent": "NYIS", "value": "1500", "value-units": "megawatthours"},
        {"period": "2024-01-01T00", "subba": "ZONA", "subba-name": "West", "parent": "NYIS", "value": None, "value-units": "megawatthours"},
    ]
    frame = demand_frame(rows, "w")
    assert frame.schema == pl.Schema(DEMAND_SCHEMA)
    assert frame["time_utc"].to_list() == [datetime(2024, 1, 1, 0, tzinfo=UTC), datetime(2024, 1, 1, 1, tzinfo=UTC)]
    assert frame["value"].to_list() == [None, 1500.0]
    with pytest.raises(SourceError, match="documented shape"):
        demand_frame([{"period": "2024-01-01T00"}], "w")


def open_meteo(times, values, units="°C", offset=0):
    return {"utc_offset_seconds": offset, "hourly_units": {"time": "iso8601", "temperature_2m": units},
            "hourly": {"time": times, "temperature_2m": values}}


def test_weather_arrays_become_long_utc_rows_with_their_units():
    variables = config().variables
    frame = weather_frame(open_meteo(["2024-01-01T00:00", "2024-01-01T01:00"], [1.5, None]), "ZONA", variables, "w")
    assert frame.rows() == [
        ("ZONA", datetime(2024, 1, 1, 0, tzinfo=UTC), "temperature_2m", 1.5, "°C"),
        ("ZONA", datetime(2024, 1, 1, 1, tzinfo=UTC), "temperature_2m", None, "°C"),
    ]
    with pytest.raises(SourceError, match="not in UTC"):
        weather_frame(open_meteo(["2024-01-01T00:00"], [1.0], offset=3600), "ZONA", variables, "w")
    with pytest.raises(SourceError, match="not as long as hourly.time"):
        weather_frame(open_meteo(["2024-01-01T00:00"], [1.0, 2.0]), "ZONA", variables, "w")


def demand_rows(hours_by_subba: dict[str, list[int]], unit="megawatthours", day=DAY) -> pl.DataFrame:
    first = datetime(day.year, day.month, day.day, tzinfo=UTC)
    records = [
        {"subregion": s, "subregion_name": s, "time_utc": first + timedelta(hours=h), "value": float(1000 + h), "unit": unit}
        for s, hours in hours_by_subba.items() for h in hours
    ]
    return pl.DataFrame(records, schema=DEMAND_SCHEMA)


def test_missing_hours_are_found_and_listed_as_ranges():
    frame = demand_rows({"ZONA": [h for h in range(24) if h not in (5, 6, 7, 13)], "ZONJ": list(range(24))})
    frame = frame.with_columns(pl.when(pl.col("time_utc").dt.hour() == 20).then(None).otherwise(pl.col("value")).alias("value"))
    gaps = missing_hours(frame, pl.DataFrame({"subregion": ["ZONA", "ZONJ"]}), DAY)
    table = gap_table(gaps, ["subregion"])
    assert table.rows() == [("ZONA", 5, "05:00-07:00, 13:00, 20:00"), ("ZONJ", 1, "20:00")]


def test_schema_units_and_duplicates_are_reported():
    frame = demand_rows({"ZONA": [0, 1, 1]}, unit="megawatts")
    assert schema_problems(frame, DEMAND_SCHEMA, DAY) == []
    assert schema_problems(frame, DEMAND_SCHEMA, date(2024, 1, 2)) == ["3 rows lie outside the UTC day 2024-01-02"]
    assert schema_problems(frame.drop("unit"), DEMAND_SCHEMA, DAY) == ["column unit is missing"]
    assert unit_problems(frame, {"value": "megawatthours"}, None) == ["unit 'megawatts' found, expected 'megawatthours'"]
    assert duplicate_keys(frame, ["subregion", "time_utc"]).rows() == [("ZONA", datetime(2024, 1, 1, 1, tzinfo=UTC), 2)]


def test_hour_ranges_and_local_span_across_a_dst_change():
    first = datetime(2024, 1, 1, tzinfo=UTC)
    assert hour_ranges([first + timedelta(hours=h) for h in (0, 1, 2, 9)]) == "00:00-02:00, 09:00"
    assert local_span(date(2024, 3, 10), "America/New_York") == "2024-03-09 19:00 EST to 2024-03-10 19:00 EDT"


def weather_rows(subbas, day=DAY):
    first = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return pl.DataFrame(
        [{"subregion": s, "time_utc": first + timedelta(hours=h), "variable": "temperature_2m", "value": h / 2, "unit": "°C"} for s in subbas for h in range(24)]
    )


def test_the_batch_has_the_loaded_specs_names_and_24_rows_per_subregion():
    spec = spec_from_dict({
        "name": "mine", "timestamp": {"column": "ts", "timezone": "Europe/Berlin"}, "group": {"column": "zone"},
        "target": {"column": "demand"}, "features": {"numeric": [{"column": "temp"}]},
    })
    cfg = config(variables=[{"name": "temperature_2m", "unit": "°C", "column": "temp"}])
    frame = landing_frame(demand_rows({"ZONA": list(range(23)), "ZONJ": list(range(24))}), weather_rows(["ZONA", "ZONJ"]), spec, cfg, DAY)
    assert frame.columns == ["zone", "ts", "demand", "temp"]
    assert frame.group_by("zone").len().sort("zone").rows() == [("ZONA", 24), ("ZONJ", 24)]
    last = frame.filter((pl.col("zone") == "ZONA") & (pl.col("ts").dt.hour() == 23))
    assert last["demand"].to_list() == [None] and last["temp"].to_list() == [11.5]
    text = batch_csv(frame, spec).decode()
    assert text.splitlines()[1] == "ZONA,2024-01-01T00:00:00+00:00,1000.0,0.0"


def test_spec_columns_no_source_fills_are_refused():
    spec = load_spec()
    cfg = config()  # feeds only temperature_c
    assert unfed_columns(spec, cfg) == ["relative_humidity", "wind_speed_ms", "cloud_cover", "precipitation_mm"]
    with pytest.raises(ValueError, match="relative_humidity"):
        landing_frame(demand_rows({"ZONA": [0]}), weather_rows(["ZONA"]), spec, cfg, DAY)


def test_the_shipped_configuration_feeds_the_shipped_spec():
    shipped = load_sources_config()
    assert shipped.parent == "NYIS" and shipped.subba_codes == [f"ZON{c}" for c in "ABCDEFGHIJK"]
    assert unfed_columns(load_spec(), shipped) == []


def test_a_bad_configuration_names_the_field():
    with pytest.raises(SourcesConfigError, match="timezone 'Mars/Base' is not a known time zone"):
        sources_from_dict({"eia": {"parent": "X"}, "weather": {"variables": [{"name": "a", "unit": "b", "column": "c"}]},
                           "subregions": [{"subba": "Z", "latitude": 1, "longitude": 2, "timezone": "Mars/Base"}]})
    with pytest.raises(SourcesConfigError, match="repeats"):
        config(subbas=("ZONA", "ZONA"))
    with pytest.raises(SourcesConfigError, match="eia.parent is required"):
        sources_from_dict({"eia": {"route": "x"}, "weather": {}, "subregions": []})
