"""EIA API v2: hourly demand per subregion (EIA-930, route region-sub-ba-data).

`frequency=hourly` periods are UTC hours written "2024-01-01T05"; `local-hourly` ones carry
their offset ("2024-01-01T00-05") and are converted to UTC. Pages are read with
offset/length until the response's `total` is reached: a short page before that is an error,
never a silent truncation."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

import polars as pl

from mlops_assets.core.sources.config import SourcesConfig
from mlops_assets.core.sources.errors import SourceError
from mlops_assets.core.sources.hours import day_hours

MAX_PAGE_LENGTH = 5000
DEMAND_SCHEMA = {
    "subregion": pl.String, "subregion_name": pl.String, "time_utc": pl.Datetime("us", "UTC"), "value": pl.Float64, "unit": pl.String,
}
_PERIOD = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2})(?::00)?(?:([+-])(\d{2}):?(\d{2})?)?$")


def demand_path(config: SourcesConfig) -> str:
    return f"{config.route}/data/"


def demand_params(config: SourcesConfig, day: date, offset: int, length: int) -> list[tuple[str, str]]:
    """Query parameters of one page of a UTC day's demand (the API key is added by the client)."""
    if not 0 < length <= MAX_PAGE_LENGTH:
        raise ValueError(f"page length {length} is outside 1..{MAX_PAGE_LENGTH} (the API's limit)")
    hours = day_hours(day)
    params = [("frequency", "hourly"), ("data[]", "value"), ("facets[parent][]", config.parent)]
    params += [("facets[subba][]", code) for code in config.subba_codes]
    params += [
        ("start", hours[0].strftime("%Y-%m-%dT%H")), ("end", hours[-1].strftime("%Y-%m-%dT%H")),
        # A total order, so that pages never overlap or skip a row.
        ("sort[0][column]", "period"), ("sort[0][direction]", "asc"),
        ("sort[1][column]", "subba"), ("sort[1][direction]", "asc"),
        ("offset", str(offset)), ("length", str(length)),
    ]
    return params


def page_rows(payload: Any, where: str) -> tuple[int, list[dict[str, Any]]]:
    """(total, rows) of one response page; SourceError if it is not the documented shape."""
    response = payload.get("response") if isinstance(payload, dict) else None
    if not isinstance(response, dict) or not isinstance(response.get("data"), list) or "total" not in response:
        raise SourceError(f"{where}: not an EIA v2 data response (no response.total / response.data): {str(payload)[:300]}")
    try:
        total = int(response["total"])
    except (TypeError, ValueError) as exc:
        raise SourceError(f"{where}: response.total {response['total']!r} is not a number") from exc
    return total, response["data"]


def collect_pages(fetch_page: Callable[[int], tuple[int, list[dict[str, Any]], str]], length: int) -> tuple[list[dict[str, Any]], int]:
    """Every row, reading pages (`fetch_page(offset)` -> (total, rows, where)) until `total`
    rows were read. Returns (rows, pages read)."""
    rows: list[dict[str, Any]] = []
    first_total: int | None = None
    pages = 0
    while True:
        total, page, where = fetch_page(len(rows))
        pages += 1
        first_total = total if first_total is None else first_total
        if total != first_total:
            raise SourceError(f"{where}: the total changed from {first_total} to {total} while paging; fetch the day again")
        rows += page
        if len(rows) > total:
            raise SourceError(f"{where}: {len(rows)} rows read, more than the reported total {total}")
        if len(rows) == total:
            return rows, pages
        if len(page) < length:
            raise SourceError(
                f"{where}: short page: {len(page)} rows at offset {len(rows) - len(page)} (page length {length}), "
                f"but only {len(rows)} of the reported total {total} were read"
            )


def parse_period(text: Any) -> datetime:
    """An EIA hourly period as an aware UTC datetime."""
    match = _PERIOD.match(str(text))
    if not match:
        raise ValueError(f"period {text!r} is not an hourly EIA period (YYYY-MM-DDTHH)")
    day, hour, sign, off_h, off_m = match.groups()
    local = datetime.fromisoformat(f"{day}T{hour}:00:00")
    offset = timedelta(hours=int(off_h or 0), minutes=int(off_m or 0)) * (-1 if sign == "-" else 1)
    return (local - offset).replace(tzinfo=timezone.utc)


def _value(raw: Any) -> float | None:
    return None if raw in (None, "") else float(raw)


def demand_frame(rows: list[dict[str, Any]], where: str) -> pl.DataFrame:
    """Rows of the API as a frame: subregion, its name, UTC hour, value and its unit."""
    try:
        records = [
            {
                "subregion": str(row["subba"]), "subregion_name": str(row.get("subba-name") or row["subba"]),
                "time_utc": parse_period(row["period"]), "value": _value(row.get("value")), "unit": str(row.get("value-units") or ""),
            }
            for row in rows
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceError(f"{where}: a data row is not in the documented shape ({type(exc).__name__}: {exc})") from exc
    return pl.DataFrame(records, schema=DEMAND_SCHEMA).sort("subregion", "time_utc")
