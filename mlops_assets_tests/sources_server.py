"""A local stand-in for the EIA API v2 and the Open-Meteo archive API, answering in their
documented shapes from deterministic values (`demand_value`, `weather_value`), on a real
`ThreadingHTTPServer` at 127.0.0.1 (port 0). Faults are scripted: error statuses (with
Retry-After), short pages, missing, duplicated and revised hours, a wrong key."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

EIA_KEY = "test-key-4f1c9a7e2b"
EIA_PREFIX = "/v2/"
WEATHER_PATH = "/v1/archive"
UNITS = {"temperature_2m": "°C", "relative_humidity_2m": "%", "wind_speed_10m": "m/s", "cloud_cover": "%", "precipitation": "mm"}


def demand_value(subba: str, hour: datetime) -> int:
    """Load of a subregion in an hour: distinct per subregion, hour and day."""
    return 1000 * (ord(subba[-1]) - ord("A") + 1) + 10 * hour.hour + hour.day


def weather_value(variable: str, latitude: float, hour: datetime) -> float:
    base = {"temperature_2m": -5.0, "relative_humidity_2m": 40.0, "wind_speed_10m": 1.0, "cloud_cover": 10.0, "precipitation": 0.0}
    return round(base[variable] + (hour.hour % 12) * 0.5 + (latitude - 40) * 0.1, 2)


def _hour(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H").replace(tzinfo=timezone.utc)


@dataclass
class Fault:
    api: str  # "eia" or "weather"
    status: int
    times: int = 1
    retry_after: str | None = None


@dataclass
class SourceServer:
    """Start with `with SourceServer() as server:`; `eia_base_url` and `weather_base_url` point
    the clients at it. `requests` records (api, params, status) of every request."""

    key: str = EIA_KEY
    short_pages: bool = False
    missing_demand: set[tuple[str, datetime]] = field(default_factory=set)
    missing_weather: set[tuple[float, datetime]] = field(default_factory=set)
    revised: dict[tuple[str, datetime], float] = field(default_factory=dict)
    duplicated_demand: set[tuple[str, datetime]] = field(default_factory=set)
    faults: deque = field(default_factory=deque)
    requests: list[dict] = field(default_factory=list)

    def fail(self, api: str, status: int, times: int = 1, retry_after: str | None = None) -> None:
        self.faults.append(Fault(api, status, times, retry_after))

    def __enter__(self) -> SourceServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                server._answer(self)

            def log_message(self, *args):  # quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def eia_base_url(self) -> str:
        return f"{self.base}/v2"

    @property
    def weather_base_url(self) -> str:
        return f"{self.base}/v1"

    def eia_requests(self) -> list[dict]:
        return [r for r in self.requests if r["api"] == "eia"]

    # -- answering ------------------------------------------------------------------------
    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        params = parse_qs(url.query, keep_blank_values=True)
        api = "eia" if url.path.startswith(EIA_PREFIX) else "weather" if url.path == WEATHER_PATH else "unknown"
        status, body, headers = self._fault(api) or self._route(api, url.path, params)
        self.requests.append({"api": api, "path": url.path, "params": params, "status": status})
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _fault(self, api: str):
        if not self.faults or self.faults[0].api != api:
            return None
        fault = self.faults[0]
        fault.times -= 1
        if fault.times <= 0:
            self.faults.popleft()
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        return fault.status, {"error": f"scripted HTTP {fault.status}"}, headers

    def _route(self, api: str, path: str, params: dict):
        if api == "eia":
            return self._eia(path, params)
        if api == "weather":
            return self._weather(params)
        return 404, {"error": f"no route {path}"}, {}

    def _eia(self, path: str, params: dict):
        if params.get("api_key", [""])[0] != self.key:
            # What EIA answers for a wrong key.
            return 403, {"error": {"code": "API_KEY_INVALID", "message": "An invalid api_key has been supplied. Please check the api_key."}}, {}
        if not path.endswith("/data/") or params.get("frequency") != ["hourly"] or params.get("data[]") != ["value"]:
            return 400, {"error": "expected .../data/ with frequency=hourly and data[]=value"}, {}
        offset, length = int(params.get("offset", ["0"])[0]), int(params.get("length", ["5000"])[0])
        if length > 5000:
            return 400, {"error": "length must be at most 5000"}, {}
        rows = self._demand_rows(params)
        page = rows[offset : offset + length]
        if self.short_pages and offset + length < len(rows):
            page = page[:-1]
        response = {
            "total": str(len(rows)), "dateFormat": 'YYYY-MM-DD"T"HH24', "frequency": "hourly", "data": page,
            "description": "Hourly demand by subregion for the Lower 48 (EIA-930).",
        }
        request = {"command": path, "params": {k: v for k, v in params.items() if k != "api_key"}}
        return 200, {"response": response, "request": request, "apiVersion": "2.1.8"}, {}

    def _demand_rows(self, params: dict) -> list[dict]:
        parent = params.get("facets[parent][]", ["NYIS"])[0]
        start, end = _hour(params["start"][0]), _hour(params["end"][0])
        rows = []
        hour = start
        while hour <= end:
            for subba in sorted(params.get("facets[subba][]", [])):
                if (subba, hour) in self.missing_demand:
                    continue
                value = self.revised.get((subba, hour), demand_value(subba, hour))
                row = {
                    "period": hour.strftime("%Y-%m-%dT%H"), "subba": subba, "subba-name": f"Zone {subba[-1]}",
                    "parent": parent, "parent-name": "New York Independent System Operator",
                    "value": str(value), "value-units": "megawatthours",
                }
                rows += [row, row] if (subba, hour) in self.duplicated_demand else [row]
            hour += timedelta(hours=1)
        return rows

    def _weather(self, params: dict):
        if params.get("timezone") != ["GMT"] or params.get("wind_speed_unit") != ["ms"]:
            return 400, {"error": True, "reason": "expected timezone=GMT and wind_speed_unit=ms"}, {}
        latitude, longitude = float(params["latitude"][0]), float(params["longitude"][0])
        variables = params["hourly"][0].split(",")
        first = datetime.fromisoformat(params["start_date"][0]).replace(tzinfo=timezone.utc)
        last = datetime.fromisoformat(params["end_date"][0]).replace(tzinfo=timezone.utc) + timedelta(hours=23)
        hours = [first + timedelta(hours=h) for h in range(int((last - first).total_seconds() // 3600) + 1)]
        hourly = {"time": [h.strftime("%Y-%m-%dT%H:%M") for h in hours]}
        for variable in variables:
            hourly[variable] = [None if (latitude, h) in self.missing_weather else weather_value(variable, latitude, h) for h in hours]
        body = {
            "latitude": latitude, "longitude": longitude, "generationtime_ms": 0.5, "utc_offset_seconds": 0,
            "timezone": "GMT", "timezone_abbreviation": "GMT", "elevation": 20.0,
            "hourly_units": {"time": "iso8601", **{v: UNITS[v] for v in variables}}, "hourly": hourly,
        }
        return 200, body, {}
