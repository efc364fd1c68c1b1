"""Open-Meteo historical weather (archive API): hourly variables at one coordinate, in GMT.

The frame is long (subregion, hour, variable, value, unit), so the units the API reports
stay next to the values they describe and are checked before anything is joined."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import polars as pl

from mlops_assets.core.sources.config import Subregion, WeatherVariable
from mlops_assets.core.sources.errors import SourceError

ARCHIVE_PATH = "archive"
WEATHER_SCHEMA = {
    "subregion": pl.String, "time_utc": pl.Datetime("us", "UTC"), "variable": pl.String, "value": pl.Float64, "unit": pl.String,
}


def archive_params(subregion: Subregion, day: date, variables: tuple[WeatherVariable, ...]) -> list[tuple[str, str]]:
    """One UTC day at the subregion's coordinate, SI units (°C, m/s, mm)."""
    return [
        ("latitude", f"{subregion.latitude:g}"), ("longitude", f"{subregion.longitude:g}"),
        ("start_date", day.isoformat()), ("end_date", day.isoformat()),
        ("hourly", ",".join(v.name for v in variables)),
        ("timezone", "GMT"), ("wind_speed_unit", "ms"), ("temperature_unit", "celsius"), ("precipitation_unit", "mm"),
    ]


def _hour(text: Any) -> datetime:
    return datetime.fromisoformat(str(text)).replace(tzinfo=timezone.utc)


def weather_frame(payload: Any, subregion: str, variables: tuple[WeatherVariable, ...], where: str) -> pl.DataFrame:
    """The response's hourly arrays as long rows; SourceError if it is not the documented shape
    or not in UTC."""
    hourly = payload.get("hourly") if isinstance(payload, dict) else None
    if not isinstance(hourly, dict) or not isinstance(hourly.get("time"), list):
        raise SourceError(f"{where}: not an Open-Meteo response (no hourly.time): {str(payload)[:300]}")
    if payload.get("utc_offset_seconds", 0) != 0:
        raise SourceError(f"{where}: times are not in UTC (utc_offset_seconds={payload['utc_offset_seconds']})")
    units = payload.get("hourly_units") or {}
    try:
        hours = [_hour(t) for t in hourly["time"]]
    except ValueError as exc:
        raise SourceError(f"{where}: hourly.time holds a value that is not an ISO time ({exc})") from exc
    records = []
    for variable in variables:
        values = hourly.get(variable.name)
        if not isinstance(values, list) or len(values) != len(hours):
            raise SourceError(f"{where}: hourly.{variable.name} is missing or not as long as hourly.time")
        unit = str(units.get(variable.name, ""))
        records += [
            {"subregion": subregion, "time_utc": h, "variable": variable.name, "value": None if v is None else float(v), "unit": unit}
            for h, v in zip(hours, values)
        ]
    return pl.DataFrame(records, schema=WEATHER_SCHEMA)
