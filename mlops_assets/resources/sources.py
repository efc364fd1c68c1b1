"""HTTP clients of the real sources (EIA v2, Open-Meteo archive) and their configuration.

Every call has a timeout; 429 and 5xx answers are retried with exponential backoff, honouring
`Retry-After` (capped). The EIA key travels only in the request: errors name the URL without
it, excerpts and urllib3's debug lines have it replaced by ***."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import dagster as dg
import polars as pl
import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from mlops_assets.core.sources.config import SourcesConfig, load_sources_config
from mlops_assets.core.sources.eia import MAX_PAGE_LENGTH, collect_pages, demand_frame, demand_params, demand_path, page_rows
from mlops_assets.core.sources.errors import SourceError
from mlops_assets.core.sources.weather import ARCHIVE_PATH, archive_params, weather_frame

RETRY_STATUSES = (429, 500, 502, 503, 504)
EXCERPT_CHARS = 300
MASK = "***"
# urllib3 writes full request URLs (query included) at DEBUG.
URL_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry")


class _ExponentialRetry(Retry):
    """Backoff before every retry, the first included: base, 2 x base, 4 x base, ..."""

    def get_backoff_time(self) -> float:
        failures = len(self.history)
        return 0.0 if failures == 0 else min(self.backoff_max, self.backoff_factor * 2 ** (failures - 1))


class _MaskSecret(logging.Filter):
    def __init__(self, secret: str):
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, MASK), ()
        return True


@contextlib.contextmanager
def _masked_logs(secret: str) -> Iterator[None]:
    if not secret:
        yield
        return
    masks = [(logging.getLogger(name), _MaskSecret(secret)) for name in URL_LOGGERS]
    for logger, mask in masks:
        logger.addFilter(mask)
    try:
        yield
    finally:
        for logger, mask in masks:
            logger.removeFilter(mask)


def _reason(error: requests.RequestException) -> str:
    """What went wrong underneath (a refused connection, a read timeout), not urllib3's
    "Max retries exceeded with url: ..." wrapper."""
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return f"{type(reason).__name__}: {reason}" if reason is not None else f"{type(error).__name__}: {error}"


def _mask(text: str, secret: str) -> str:
    return text.replace(secret, MASK) if secret else text


@dataclass
class Fetched:
    """A source's frame for one day and what it took: HTTP requests (retries included) and
    the endpoint asked (without the key)."""

    frame: pl.DataFrame
    requests: int
    endpoint: str
    pages: int = 1


class HttpSource(dg.ConfigurableResource):
    """A JSON-over-HTTP source: base URL, timeout per request, retries and their backoff."""

    base_url: str
    timeout_seconds: float = 30.0
    retries: int = 4
    backoff_seconds: float = 1.0
    max_retry_after_seconds: int = 120

    def _session(self) -> requests.Session:
        retry = _ExponentialRetry(
            total=self.retries, status_forcelist=RETRY_STATUSES, allowed_methods=["GET"], backoff_factor=self.backoff_seconds,
            respect_retry_after_header=True, retry_after_max=self.max_retry_after_seconds, raise_on_status=False,
        )
        session = requests.Session()
        session.mount("http://", HTTPAdapter(max_retries=retry))
        session.mount("https://", HTTPAdapter(max_retries=retry))
        return session

    def url(self, path: str) -> str:
        return f"{self.base_url.rstrip('/')}/{path.lstrip('/')}"

    def get_json(
        self, session: requests.Session, path: str, params: list[tuple[str, str]], secret: tuple[str, str] | None = None
    ) -> tuple[Any, int, str]:
        """(parsed JSON, requests made, URL without the secret); SourceError for anything else
        than a JSON 200 answer after the retries."""
        url = self.url(path)
        where = requests.Request("GET", url, params=params).prepare().url or url
        key = secret[1] if secret else ""
        try:
            with _masked_logs(key):
                response = session.get(url, params=[*params, *([secret] if secret else [])], timeout=self.timeout_seconds)
        except requests.RequestException as error:
            # Raised without its cause: the original exception's text holds the full URL.
            raise SourceError(f"GET {where} failed after {self.retries} retries: {_mask(_reason(error), key)[:EXCERPT_CHARS]}") from None
        history = getattr(getattr(response.raw, "retries", None), "history", ())
        attempts = 1 + len(history or ())
        if response.status_code != 200:
            raise SourceError(self._status_text(where, response, key, attempts))
        try:
            return response.json(), attempts, where
        except ValueError:
            raise SourceError(f"GET {where} answered 200 but not JSON: {_mask(response.text, key)[:EXCERPT_CHARS]!r}") from None

    def _status_text(self, where: str, response: requests.Response, key: str, attempts: int) -> str:
        hint = ""
        if response.status_code in (401, 403) and key:
            hint = " (the API key was refused: check EIA_API_KEY, see docs/sources.md)"
        elif attempts > 1:
            hint = f" (after {attempts} attempts)"
        excerpt = _mask(response.text, key)[:EXCERPT_CHARS]
        return f"HTTP {response.status_code} {response.reason}{hint} from GET {where}: {excerpt!r}"


class EiaClient(HttpSource):
    """EIA API v2 (https://api.eia.gov/v2): hourly demand per subregion, paged."""

    base_url: str = "https://api.eia.gov/v2"
    api_key: str = ""
    page_length: int = MAX_PAGE_LENGTH

    def fetch_demand(self, config: SourcesConfig, day: date) -> Fetched:
        """Every subregion's hourly demand of the UTC `day`, read page by page up to `total`."""
        if not self.api_key:
            raise SourceError("EIA_API_KEY is not set: get a free key at https://www.eia.gov/opendata/register.php (docs/sources.md)")
        session = self._session()
        counts = {"requests": 0}
        endpoint = ""

        def fetch_page(offset: int) -> tuple[int, list[dict[str, Any]], str]:
            nonlocal endpoint
            params = demand_params(config, day, offset, self.page_length)
            payload, attempts, where = self.get_json(session, demand_path(config), params, ("api_key", self.api_key))
            counts["requests"] += attempts
            endpoint = endpoint or where
            total, rows = page_rows(payload, where)
            return total, rows, where

        with session:
            rows, pages = collect_pages(fetch_page, self.page_length)
        return Fetched(demand_frame(rows, endpoint), counts["requests"], endpoint, pages)


class WeatherClient(HttpSource):
    """Open-Meteo historical weather API (no key): one request per subregion and day."""

    base_url: str = "https://archive-api.open-meteo.com/v1"

    def fetch_weather(self, config: SourcesConfig, day: date) -> Fetched:
        frames, requests_made, endpoint = [], 0, ""
        with self._session() as session:
            for subregion in config.subregions:
                payload, attempts, where = self.get_json(session, ARCHIVE_PATH, archive_params(subregion, day, config.variables))
                frames.append(weather_frame(payload, subregion.subba, config.variables, where))
                requests_made += attempts
                endpoint = endpoint or where
        return Fetched(pl.concat(frames), requests_made, endpoint, len(frames))


class SourcesSettings(dg.ConfigurableResource):
    """The sources configuration (YAML): MLOPS_SOURCES_CONFIG, else the example shipped in the
    package (mlops_assets/specs/sources/nyiso.yaml)."""

    path: str = ""

    def load(self) -> SourcesConfig:
        return load_sources_config(self.path or None)
