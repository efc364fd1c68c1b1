from pathlib import Path

import pytest
import yaml

from mlops_assets_tests.sources_server import EIA_KEY, SourceServer

SMALL_SUBREGIONS = [
    {"subba": "ZONA", "name": "West", "latitude": 42.89, "longitude": -78.88, "timezone": "America/New_York"},
    {"subba": "ZONJ", "name": "New York City", "latitude": 40.71, "longitude": -74.01, "timezone": "America/New_York"},
]


@pytest.fixture
def source_server(mlops_home, monkeypatch):
    """The local stand-in for EIA and Open-Meteo, with the environment pointing at it (tiny
    backoff, the test key)."""
    with SourceServer() as server:
        monkeypatch.setenv("MLOPS_EIA_BASE_URL", server.eia_base_url)
        monkeypatch.setenv("MLOPS_WEATHER_BASE_URL", server.weather_base_url)
        monkeypatch.setenv("EIA_API_KEY", EIA_KEY)
        monkeypatch.setenv("MLOPS_SOURCES_BACKOFF_SECONDS", "0.01")
        monkeypatch.delenv("MLOPS_SOURCES_CONFIG", raising=False)
        monkeypatch.delenv("MLOPS_EIA_PAGE_LENGTH", raising=False)
        yield server


def write_sources_config(path: Path, monkeypatch, subregions=SMALL_SUBREGIONS, units: dict | None = None) -> Path:
    """The shipped configuration with other subregions (and units), as MLOPS_SOURCES_CONFIG."""
    from mlops_assets.core.sources.config import default_sources_path

    raw = yaml.safe_load(default_sources_path().read_text())
    raw["subregions"] = subregions
    for variable in raw["weather"]["variables"]:
        variable["unit"] = (units or {}).get(variable["name"], variable["unit"])
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    monkeypatch.setenv("MLOPS_SOURCES_CONFIG", str(path))
    return path


@pytest.fixture
def small_sources(tmp_path, monkeypatch) -> Path:
    """Two subregions (ZONA, ZONJ) instead of eleven."""
    return write_sources_config(tmp_path / "sources.yaml", monkeypatch)
