"""The sources configuration (YAML): which balancing authority and subregions to pull from
EIA, where each subregion's weather is observed, and which spec column each weather variable
feeds."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mlops_assets.core.spec import read_yaml


SOURCES_ENV_VAR = "MLOPS_SOURCES_CONFIG"
DEFAULT_ROUTE = "electricity/rto/region-sub-ba-data"
DEFAULT_DEMAND_UNIT = "megawatthours"


class SourcesConfigError(ValueError):
    """The sources configuration is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class Subregion:
    """An EIA subregion (`subba` code) and the point whose weather stands for it."""

    subba: str
    name: str
    latitude: float
    longitude: float
    timezone: str


@dataclass(frozen=True)
class WeatherVariable:
    """An Open-Meteo hourly variable, the unit it must come in, and the spec column it fills."""

    name: str
    unit: str
    column: str


@dataclass(frozen=True)
class SourcesConfig:
    parent: str
    subregions: tuple[Subregion, ...]
    variables: tuple[WeatherVariable, ...]
    route: str = DEFAULT_ROUTE
    demand_unit: str = DEFAULT_DEMAND_UNIT
    source: str = "<memory>"

    @property
    def subba_codes(self) -> list[str]:
        return [s.subba for s in self.subregions]


def default_sources_path() -> Path:
    """MLOPS_SOURCES_CONFIG, else the example shipped in the package."""
    if os.environ.get(SOURCES_ENV_VAR):
        return Path(os.environ[SOURCES_ENV_VAR])
    return Path(str(resources.files("mlops_assets") / "specs" / "sources" / "nyiso.yaml"))


def load_sources_config(path: str | os.PathLike[str] | None = None) -> SourcesConfig:
    path = Path(path) if path else default_sources_path()
    return sources_from_dict(read_yaml(path, "sources configuration", SourcesConfigError), source=str(path))


def _need(raw: dict[str, Any], key: str, where: str, source: str) -> Any:
    if not isinstance(raw, dict) or raw.get(key) in (None, "", []):
        raise SourcesConfigError(f"{source}: {f'{where}.{key}' if where else key} is required")
    return raw[key]


def _subregion(raw: Any, index: int, source: str) -> Subregion:
    where = f"subregions[{index}]"
    zone = str(raw.get("timezone", "UTC")) if isinstance(raw, dict) else "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SourcesConfigError(f"{source}: {where}.timezone {zone!r} is not a known time zone") from exc
    try:
        latitude, longitude = float(_need(raw, "latitude", where, source)), float(_need(raw, "longitude", where, source))
    except (TypeError, ValueError) as exc:
        raise SourcesConfigError(f"{source}: {where} latitude and longitude must be numbers") from exc
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise SourcesConfigError(f"{source}: {where} ({latitude}, {longitude}) is not a coordinate")
    subba = str(_need(raw, "subba", where, source))
    return Subregion(subba, str(raw.get("name", subba)), latitude, longitude, zone)


def _variable(raw: Any, index: int, source: str) -> WeatherVariable:
    where = f"weather.variables[{index}]"
    return WeatherVariable(
        str(_need(raw, "name", where, source)), str(_need(raw, "unit", where, source)), str(_need(raw, "column", where, source))
    )


def sources_from_dict(raw: Any, source: str = "<memory>") -> SourcesConfig:
    eia = _need(raw, "eia", "", source)
    parent = str(_need(eia, "parent", "eia", source))
    subregions = tuple(_subregion(r, i, source) for i, r in enumerate(_need(raw, "subregions", "", source)))
    weather = _need(raw, "weather", "", source)
    variables = tuple(_variable(r, i, source) for i, r in enumerate(_need(weather, "variables", "weather", source)))
    repeated = {"subregions[].subba": [s.subba for s in subregions], "weather.variables[].column": [v.column for v in variables]}
    for label, values in repeated.items():
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise SourcesConfigError(f"{source}: {label} repeats {dupes}")
    return SourcesConfig(
        parent=parent,
        subregions=subregions,
        variables=variables,
        route=str(eia.get("route", DEFAULT_ROUTE)).strip("/"),
        demand_unit=str(eia.get("demand_unit", DEFAULT_DEMAND_UNIT)),
        source=source,
    )
