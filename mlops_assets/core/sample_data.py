"""Real-shaped datasets for tests, benchmarks and the walk-through: seeded, pure polars/numpy.

- `demand_series`: one sub-hourly series (30 or 15 min) of temperature-driven system demand in
  Victoria, Australia: daily and weekly profiles, an annual cycle, heating and cooling around
  balance temperatures, state holidays (Labour Day, Melbourne Cup, ...) lowering the load,
  autocorrelated weather and noise, and a few missing readings. Columns of
  `specs/half_hourly_demand.yaml`: settlement_date (local time with offset), demand_mw, temperature_c.
- `zone_loads`: an hourly multi-group set: zones with awkward labels and different scales, one
  net-load zone whose target crosses zero (rooftop solar), a zone that starts late and a
  handful of missing readings (written as `NA`). Columns of `specs/hourly_multi_group.yaml`:
  timestamp, zone, net_load_mw, temperature_c, humidity.
- `delivery_files`: a frame split into daily or monthly CSV files (bytes), as a feed delivers them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

DEMAND_TIMEZONE = "Australia/Melbourne"
ZONES_TIMEZONE = "Europe/Zurich"
TEXT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%:z"


@dataclass(frozen=True)
class Zone:
    """One zone of `zone_loads`: its label, mean load (MW), temperature sensitivity and, for a
    net-load zone, the rooftop solar capacity (MW) subtracted from its load."""

    label: str
    level: float
    heating: float = 0.02  # share of level per degree below 14 °C
    cooling: float = 0.03  # share of level per degree above 20 °C
    solar_mw: float = 0.0
    starts_after: float = 0.0  # fraction of the period before the zone's first reading


ZONES = (
    Zone("Zürich (Nord)/A", 820.0),
    Zone("R&D <1>", 95.0, heating=0.01, cooling=0.04),
    Zone("O'Brien", 2400.0, heating=0.025, cooling=0.02),
    Zone("Solar & Town (net)", 60.0, solar_mw=140.0),
    Zone("Østby \"new\"", 310.0, starts_after=0.3),
)


def _steps(start: date, days: int, step: timedelta, tz: str) -> pl.Series:
    """Regular instants from local midnight of `start` for `days` days, in zone `tz`."""
    midnight = pl.Series([datetime(start.year, start.month, start.day)]).dt.replace_time_zone(tz)
    first = midnight.dt.convert_time_zone("UTC")[0]
    n = int(timedelta(days=days) / step)
    ts = pl.datetime_range(first, first + step * (n - 1), interval=step, eager=True, time_zone="UTC")
    return ts.dt.convert_time_zone(tz).dt.cast_time_unit("us")


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    """A stationary AR(1) series with standard deviation `sd`."""
    shocks = rng.normal(0.0, sd * np.sqrt(1 - phi**2), n)
    out = np.empty(n)
    out[0] = rng.normal(0.0, sd)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + shocks[i]
    return out


def _smooth(values: np.ndarray, phi: float) -> np.ndarray:
    """Exponential smoothing: the building stock's thermal inertia."""
    out = np.empty_like(values)
    out[0] = values[0]
    for i in range(1, len(values)):
        out[i] = phi * out[i - 1] + (1 - phi) * values[i]
    return out


def _clock(ts: pl.Series) -> dict[str, np.ndarray]:
    """Local hour of day (fractional) and day of year."""
    return {
        "hour": (ts.dt.hour() + ts.dt.minute() / 60).to_numpy().astype(float),
        "doy": ts.dt.ordinal_day().to_numpy().astype(float),
    }


def _temperature(
    rng: np.random.Generator, clock: dict[str, np.ndarray], per_hour: int, mean: float, annual: float, daily: float,
    south: bool,
) -> np.ndarray:
    """Annual and daily cycles plus weather systems lasting days (AR(1)); hot spells in summer."""
    peak_doy = 25 if south else 200
    season = np.cos(2 * np.pi * (clock["doy"] - peak_doy) / 365.25)
    summer = np.clip(season, 0, None)
    cycle = np.cos(2 * np.pi * (clock["hour"] - 15) / 24)
    weather = _ar1(rng, len(season), np.exp(-1 / (36 * per_hour)), 3.0)
    hot_spells = summer * np.clip(weather, 0, None) * 1.2
    daily_cycle = daily * (1 + 0.4 * summer) * cycle
    return mean + annual * season + daily_cycle + weather + hot_spells + rng.normal(0, 0.3, len(season))


def _off_days(ts: pl.Series, country: str, subdivision: str | None) -> np.ndarray:
    """Weekends and public holidays of the region (observed days included)."""
    import holidays

    days = ts.dt.date()
    years = list(range(days.min().year, days.max().year + 1))
    listed = holidays.country_holidays(country, subdiv=subdivision, years=years, observed=True)
    listed = pl.Series(sorted(listed), dtype=pl.Date)
    return ((ts.dt.weekday() >= 6) | days.is_in(listed.implode())).to_numpy()


def _day_shape(hour: np.ndarray, off_day: np.ndarray) -> np.ndarray:
    """Relative load by local time: overnight trough, morning ramp, evening peak; days off rise
    later and lower."""
    def bump(centre: float, width: float) -> np.ndarray:
        return np.exp(-(((hour - centre) / width) ** 2))

    workday = 0.82 + 0.16 * bump(8.5, 1.8) + 0.22 * bump(18.5, 2.6) + 0.12 * bump(13, 4.0)
    day_off = 0.80 + 0.08 * bump(10.5, 2.5) + 0.17 * bump(18.5, 2.8) + 0.06 * bump(13, 4.0)
    night = 0.06 * np.exp(-((hour - 3.5) / 2.0) ** 2)
    return np.where(off_day, day_off * 0.93, workday) - night


def _drop_and_blank(frame: pl.DataFrame, rng: np.random.Generator, gaps: int, blanks: dict[str, int]) -> pl.DataFrame:
    """`gaps` rows removed (readings never delivered) and `blanks[col]` values set missing."""
    n = frame.height
    keep = np.ones(n, bool)
    keep[rng.choice(np.arange(1, n - 1), size=min(gaps, n - 2), replace=False)] = False
    out = frame.filter(pl.Series(keep))
    for col, count in blanks.items():
        mask = np.zeros(out.height, bool)
        mask[rng.choice(out.height, size=min(count, out.height), replace=False)] = True
        out = out.with_columns(pl.when(pl.Series(mask)).then(None).otherwise(pl.col(col)).alias(col))
    return out


def demand_series(
    start: date = date(2023, 1, 1), days: int = 400, frequency: str = "30m", seed: int = 0, missing: int = 6
) -> pl.DataFrame:
    """Victorian system demand (MW) and Melbourne temperature (°C) at `frequency` ("30m" or
    "15m"). Demand follows local time; heating below about 15 °C and cooling above about 21 °C
    act on the smoothed temperature (cooling only while people are awake); VIC state
    holidays and weekends take a day-off profile; a slow trend and AR(1) noise (about 1.5 %)
    remain unexplained. `missing` readings are lost: a third as absent rows, the rest blank."""
    rng = np.random.default_rng(seed)
    step = pl.Series([frequency]).str.extract(r"(\d+)").cast(pl.Int64)[0]
    delta = timedelta(minutes=int(step))
    per_hour = int(timedelta(hours=1) / delta)
    ts = _steps(start, days, delta, DEMAND_TIMEZONE)
    clock = _clock(ts)
    temp = _temperature(rng, clock, per_hour, mean=15.5, annual=4.5, daily=4.5, south=True)
    felt = _smooth(temp, np.exp(-1 / (4 * per_hour)))
    off_day = _off_days(ts, "AU", "VIC")
    awake = 1 / (1 + np.exp(-(clock["hour"] - 8) * 1.2)) - 1 / (1 + np.exp(-(clock["hour"] - 23) * 1.2))
    heating = 95 * np.clip(15.0 - felt, 0, None)
    cooling = (140 * np.clip(felt - 21.0, 0, None) + 9 * np.clip(felt - 28.0, 0, None) ** 2) * (0.35 + 0.65 * awake)
    years = np.arange(len(ts)) / (365.25 * 24 * per_hour)
    base = 4700 * (1 - 0.015 * years) * _day_shape(clock["hour"], off_day)
    noise = 1 + _ar1(rng, len(ts), np.exp(-1 / (3 * per_hour)), 0.012) + rng.normal(0, 0.004, len(ts))
    demand = (base + heating + cooling) * noise
    frame = pl.DataFrame({"settlement_date": ts, "demand_mw": np.round(demand, 2), "temperature_c": np.round(temp, 1)})
    blanks = {"demand_mw": missing - missing // 3, "temperature_c": 2 if missing else 0}
    return _drop_and_blank(frame, rng, gaps=missing // 3, blanks=blanks)


def _solar(clock: dict[str, np.ndarray], clouds: np.ndarray) -> np.ndarray:
    """Share of rooftop capacity generating: daylight bell, longer and higher in summer."""
    season = np.cos(2 * np.pi * (clock["doy"] - 172) / 365.25)
    half_day = 4.2 + 1.8 * season
    bell = np.clip(np.cos(np.pi / 2 * (clock["hour"] - 12.5) / half_day), 0, None) ** 1.5
    return bell * (0.75 + 0.25 * season) * (1 - 0.7 * clouds)


def zone_loads(
    start: date = date(2023, 1, 1), days: int = 365, seed: int = 1, zones: tuple[Zone, ...] = ZONES, missing: int = 12
) -> pl.DataFrame:
    """Hourly load (MW) per zone with temperature (°C) and humidity (%), in local time of
    Europe/Zurich. Zones share the weather (with local offsets) and differ in scale and
    sensitivity; a zone with `solar_mw` reports net load, below zero on sunny middays. About
    `missing` readings are missing across target, humidity and temperature."""
    rng = np.random.default_rng(seed)
    ts = _steps(start, days, timedelta(hours=1), ZONES_TIMEZONE)
    clock = _clock(ts)
    shared = _temperature(rng, clock, 1, mean=10.5, annual=8.5, daily=4.0, south=False)
    clouds = 1 / (1 + np.exp(-_ar1(rng, len(ts), np.exp(-1 / 18), 1.6)))
    off_day = _off_days(ts, "CH", "ZH")
    shape = _day_shape(clock["hour"], off_day)
    parts = []
    for i, zone in enumerate(zones):
        temp = shared + rng.normal(0, 0.6) + rng.normal(0, 0.4, len(ts))
        felt = _smooth(temp, np.exp(-1 / 5))
        sensitivity = 1 + zone.heating * np.clip(14 - felt, 0, None) + zone.cooling * np.clip(felt - 20, 0, None)
        noise = 1 + _ar1(rng, len(ts), np.exp(-1 / 4), 0.02)
        load = zone.level * shape * sensitivity * noise - zone.solar_mw * _solar(clock, clouds)
        humidity = np.clip(70 - 1.6 * (temp - shared.mean()) + 12 * (clouds - 0.5) + rng.normal(0, 4, len(ts)), 15, 100)
        part = pl.DataFrame({
            "timestamp": ts, "zone": zone.label, "net_load_mw": np.round(load, 2),
            "temperature_c": np.round(temp, 1), "humidity": np.round(humidity, 1),
        })
        parts.append(part.slice(int(zone.starts_after * len(ts))))
    frame = pl.concat(parts)
    third = missing // 3
    blanks = {"net_load_mw": missing - 2 * third, "humidity": third, "temperature_c": third}
    return _drop_and_blank(frame, rng, gaps=0, blanks=blanks)


def to_csv(frame: pl.DataFrame, null_value: str = "") -> bytes:
    """CSV bytes with timestamps as ISO-8601 local times with their offset."""
    buffer = io.BytesIO()
    frame.with_columns(pl.col(pl.Datetime).dt.strftime(TEXT_TIME_FORMAT)).write_csv(buffer, null_value=null_value)
    return buffer.getvalue()


def delivery_files(
    frame: pl.DataFrame, timestamp: str, prefix: str, every: str = "1d", null_value: str = ""
) -> list[tuple[str, bytes]]:
    """The frame as a feed delivers it: one CSV per local day (`every="1d"`) or month ("1mo"),
    named `<prefix>_<YYYY-MM-DD>.csv` / `<prefix>_<YYYY-MM>.csv`, missing values as `null_value`."""
    if every not in ("1d", "1mo"):
        raise ValueError(f"every={every!r}: choose 1d or 1mo")
    label = "%Y-%m-%d" if every == "1d" else "%Y-%m"
    keyed = frame.with_columns(pl.col(timestamp).dt.strftime(label).alias("__file"))
    return [
        (f"{prefix}_{key}.csv", to_csv(part.drop("__file"), null_value))
        for (key,), part in sorted(keyed.partition_by("__file", as_dict=True, maintain_order=True).items())
    ]
