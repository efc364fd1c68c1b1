"""The HTTP clients against a real local server speaking the APIs' documented shapes: paging,
retries on 429 and 5xx (honouring Retry-After), timeouts, and errors that name the URL,
status and an excerpt but never the key."""

import logging
import socket
import time
from datetime import date, datetime, timedelta, timezone

import pytest

from mlops_assets.core.sources.config import sources_from_dict
from mlops_assets.core.sources.errors import SourceError
from mlops_assets.resources.sources import EiaClient, WeatherClient
from mlops_assets_tests.sources_server import EIA_KEY, UNITS, SourceServer, demand_value, weather_value

DAY = date(2024, 1, 1)
SUBBAS = ["ZONA", "ZONJ"]
CONFIG = sources_from_dict({
    "eia": {"parent": "NYIS"},
    "weather": {"variables": [{"name": n, "unit": u, "column": n} for n, u in UNITS.items()]},
    "subregions": [{"subba": s, "latitude": 40.5 + i, "longitude": -74, "timezone": "America/New_York"} for i, s in enumerate(SUBBAS)],
})


@pytest.fixture
def server():
    with SourceServer() as running:
        yield running


def eia(server, **overrides) -> EiaClient:
    settings = {"base_url": server.eia_base_url, "api_key": EIA_KEY, "backoff_seconds": 0.01, "timeout_seconds": 5, "page_length": 20}
    return EiaClient(**{**settings, **overrides})


def expected_demand(day=DAY) -> set[tuple]:
    first = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return {(s, first + timedelta(hours=h), float(demand_value(s, first + timedelta(hours=h)))) for s in SUBBAS for h in range(24)}


def test_a_day_over_three_pages_loses_no_row_at_the_page_boundaries(server):
    fetched = eia(server).fetch_demand(CONFIG, DAY)
    offsets = [r["params"]["offset"][0] for r in server.eia_requests()]
    assert offsets == ["0", "20", "40"] and fetched.pages == 3 and fetched.requests == 3
    rows = set(fetched.frame.select("subregion", "time_utc", "value").rows())
    assert fetched.frame.height == 48 and rows == expected_demand()
    assert set(fetched.frame["unit"]) == {"megawatthours"}


def test_429_is_retried_after_the_time_retry_after_asks(server):
    server.fail("eia", 429, retry_after="1")
    started = time.monotonic()
    fetched = eia(server, page_length=5000).fetch_demand(CONFIG, DAY)
    assert time.monotonic() - started >= 1.0
    assert [r["status"] for r in server.eia_requests()] == [429, 200] and fetched.requests == 2
    assert set(fetched.frame.select("subregion", "time_utc", "value").rows()) == expected_demand()


def test_500_is_retried_with_backoff_then_succeeds(server):
    server.fail("weather", 500, times=2)
    fetched = WeatherClient(base_url=server.weather_base_url, backoff_seconds=0.01).fetch_weather(CONFIG, DAY)
    assert [r["status"] for r in server.requests] == [500, 500, 200, 200] and fetched.requests == 4
    hour = datetime(2024, 1, 1, 7, tzinfo=timezone.utc)
    frame = fetched.frame
    row = frame.filter((frame["subregion"] == "ZONJ") & (frame["time_utc"] == hour) & (frame["variable"] == "cloud_cover"))
    assert row["value"].to_list() == [weather_value("cloud_cover", 41.5, hour)] and row["unit"].to_list() == ["%"]
    assert frame.height == 2 * 24 * len(UNITS)


def test_a_5xx_that_persists_names_url_status_and_excerpt(server):
    server.fail("eia", 503, times=10)
    with pytest.raises(SourceError) as raised:
        eia(server, retries=2).fetch_demand(CONFIG, DAY)
    text = str(raised.value)
    assert "HTTP 503" in text and "/v2/electricity/rto/region-sub-ba-data/data/?frequency=hourly" in text
    assert "after 3 attempts" in text and "scripted HTTP 503" in text and EIA_KEY not in text
    assert len(server.eia_requests()) == 3


def test_a_short_page_before_the_total_is_an_error(server):
    server.short_pages = True
    with pytest.raises(SourceError, match=r"short page: 19 rows at offset 0 \(page length 20\).*19 of the reported total 48"):
        eia(server).fetch_demand(CONFIG, DAY)


def test_a_wrong_key_gives_a_clear_error_without_the_key(server):
    wrong = "wrong-key-5b7d1e"
    with pytest.raises(SourceError) as raised:
        eia(server, api_key=wrong).fetch_demand(CONFIG, DAY)
    text = str(raised.value)
    assert "HTTP 403" in text and "API_KEY_INVALID" in text and "check EIA_API_KEY" in text and wrong not in text
    assert len(server.eia_requests()) == 1  # a refused key is not retried


def test_a_missing_key_is_refused_before_any_request(server):
    with pytest.raises(SourceError, match="EIA_API_KEY is not set"):
        eia(server, api_key="").fetch_demand(CONFIG, DAY)
    assert server.requests == []


def test_the_key_never_reaches_logs_even_at_debug(server, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    server.fail("eia", 500)
    eia(server).fetch_demand(CONFIG, DAY)
    assert "region-sub-ba-data" in caplog.text and "api_key=***" in caplog.text  # urllib3's request lines, masked
    assert EIA_KEY not in caplog.text


def test_an_unreachable_server_is_named_without_the_key():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    client = EiaClient(base_url=f"http://127.0.0.1:{port}/v2", api_key=EIA_KEY, retries=1, backoff_seconds=0.01, timeout_seconds=2)
    with pytest.raises(SourceError) as raised:
        client.fetch_demand(CONFIG, DAY)
    text = str(raised.value)
    assert f"127.0.0.1:{port}/v2/electricity" in text and "Connection refused" in text and EIA_KEY not in text
    assert raised.value.__suppress_context__  # the original exception (with the full URL) is not chained


def test_a_server_that_never_answers_times_out():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections (backlog) but never answers
        client = WeatherClient(base_url=f"http://127.0.0.1:{silent.getsockname()[1]}/v1", retries=0, timeout_seconds=0.3)
        started = time.monotonic()
        with pytest.raises(SourceError, match="ReadTimeoutError.*Read timed out"):
            client.fetch_weather(CONFIG, DAY)
    assert time.monotonic() - started < 3
