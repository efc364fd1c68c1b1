"""Demo data: hourly electricity load per grid subregion with weather, landed as batch files.

Column names come from the `DatasetSpec`, so the same generator feeds any spec with a
target and numeric features. Every value is a function of (seed, group index, UTC hour)
only: random streams are drawn per group and calendar year (neighbouring years are
cross-faded over the last week of December), so how a range is cut into batches, where it
starts and how many groups it has never change a value.

Feed defects (gaps, duplicates, spikes, negative readings, late corrections) and
deliberately broken files (`write_corrupt`) exercise the ingestion and cleaning code.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import holidays
import numpy as np
import polars as pl

from mlops_assets.core.spec import ColumnSpec, DatasetSpec

CORRUPT_KINDS: tuple[str, ...] = (
    "missing_column",
    "wrong_type",
    "empty",
    "header_only",
    "truncated",
    "not_utf8",
    "all_null_target",
    "duplicate_columns",
    "unparseable_timestamps",
    "out_of_range",
    "parquet_wrong_schema",
)
DEFAULT_START = date(2024, 1, 1)
FILE_FORMATS = ("csv", "parquet")
FILE_PREFIX = "load"
TIMESTAMP_TEXT_FORMAT = "%Y-%m-%dT%H:%M:%S%:z"

# Feed defect rates, per row.
MISSING_RATE = 0.005
DUPLICATE_RATE = 0.003
SPIKE_RATE = 0.0005
NEGATIVE_RATE = 0.0005

Arrays = dict[str, np.ndarray]
_FADE_HOURS = 168
_H = "__sim_hour"
_G = "__sim_group"
_BASE_NAMES = (
    "NORTH", "SOUTH", "EAST", "WEST", "CENTRAL", "COAST", "VALLEY", "HIGHLANDS",
    "METRO", "LAKES", "PLAINS", "HARBOR", "DELTA", "RIDGE", "PRAIRIE", "BASIN",
    "MESA", "PIEDMONT", "TIDEWATER", "UPSTATE",
)  # fmt: skip

# Latent AR(1) streams: index -> lag-1 autocorrelation. Generic features use one more each.
_TEMP, _HUMID, _WIND_U, _WIND_V, _CLOUD, _RAIN, _LOAD = range(7)
_PHIS = (0.985, 0.95, 0.97, 0.97, 0.96, 0.9, 0.9)
_GENERIC_PHI = 0.97
# Uniform streams for defects.
_MISSING, _DUPLICATE, _SPIKE, _NEGATIVE, _MAGNITUDE = range(5)


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate and how to cut it into files.

    `drift` shifts temperature by `drift` °C; load follows through its temperature
    sensitivity and is also scaled by (1 + 0.02 * drift); humidity and cloud cover move
    mildly. `batch_days=None` writes one file for the whole range.
    """

    start: date = DEFAULT_START
    days: int = 7
    groups: int = 8
    seed: int = 42
    drift: float = 0.0
    defects: bool = True
    batch_days: int | None = None
    file_format: str = "csv"

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"days must be at least 1, not {self.days}")
        if self.groups < 1:
            raise ValueError(f"groups must be at least 1, not {self.groups}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, not {self.seed}")
        if self.batch_days is not None and self.batch_days < 1:
            raise ValueError(f"batch_days must be at least 1 or None, not {self.batch_days}")
        if self.file_format not in FILE_FORMATS:
            raise ValueError(f"file_format must be one of {FILE_FORMATS}, not {self.file_format!r}")

    @property
    def end(self) -> date:
        """The first day after the simulated range."""
        return _day(self.start) + timedelta(days=self.days)


def group_names(n: int) -> list[str]:
    """`n` distinct subregion names, the same for every call: ZONA_NORTH, ZONA_SOUTH, ...,
    then ZONA_NORTH_2, ... once the base list is used up."""
    names = []
    for i in range(n):
        rnd, base = divmod(i, len(_BASE_NAMES))
        names.append(f"ZONA_{_BASE_NAMES[base]}" + (f"_{rnd + 1}" if rnd else ""))
    return names


def simulate_frame(spec: DatasetSpec, config: SimulationConfig) -> pl.DataFrame:
    """Hourly rows for [start, start + days) and all groups, sorted by time.

    Columns are exactly `spec.required_columns`; the timestamp is a UTC `Datetime`. With
    `config.defects` the rows carry the feed defects (missing hours, exact duplicates,
    spikes, negative readings); late corrections belong to batch files and are added by
    `simulate_batches`.
    """
    t0, t1 = _utc(config.start), _utc(config.end)
    clean = _clean_frame(spec, config, t0, t1)
    observed = _inject_defects(clean, spec, config) if config.defects else clean
    return observed.select(spec.required_columns)


def simulate_batches(spec: DatasetSpec, config: SimulationConfig) -> list[tuple[str, pl.DataFrame]]:
    """(file name, frame) per batch of `config.batch_days` days, in date order.

    With defects, each batch except a first one starting on or before `DEFAULT_START`
    also re-sends the last 3-6 hours per group of the day before it with the load revised
    by 1-3%: files overlap on (group, timestamp) and the later file holds the truth.
    """
    day0, step = _day(config.start), config.batch_days or config.days
    firsts = [day0 + timedelta(days=d) for d in range(0, config.days, step)]
    clean = _clean_frame(spec, config, _utc(day0 - timedelta(days=1)), _utc(config.end))
    h_start = _hour(_utc(day0))
    observed = clean.filter(pl.col(_H) >= h_start)
    if config.defects:
        observed = _inject_defects(observed, spec, config)
    batch = ((pl.col(_H) - h_start) // (24 * step)).alias("__batch")
    parts = [observed.with_columns(batch)]
    if config.defects:
        resent = [(i, first) for i, first in enumerate(firsts) if i > 0 or first > DEFAULT_START]
        parts.insert(0, _corrections(clean, spec, config, resent))
    frames = pl.concat(parts).partition_by("__batch", as_dict=True, maintain_order=True)
    batches = []
    for i, first in enumerate(firsts):
        last = min(first + timedelta(days=step), config.end) - timedelta(days=1)
        name = f"{FILE_PREFIX}_{first.isoformat()}_{last.isoformat()}.{config.file_format}"
        batches.append((name, frames[(i,)].select(spec.required_columns)))
    return batches


def batch_files(spec: DatasetSpec, config: SimulationConfig) -> list[tuple[str, bytes]]:
    """(file name, file bytes in `config.file_format`) per batch of `simulate_batches`."""
    return [(name, _to_bytes(frame, spec, config.file_format)) for name, frame in simulate_batches(spec, config)]


def write_batches(spec: DatasetSpec, config: SimulationConfig, landing_dir: Path) -> list[Path]:
    """Write the batch files of `simulate_batches` into the local folder `landing_dir`
    atomically; return their paths."""
    return [_write_atomic(Path(landing_dir) / name, data) for name, data in batch_files(spec, config)]


def write_corrupt(spec: DatasetSpec, kind: str, landing_dir: Path, config: SimulationConfig | None = None) -> Path:
    """Write one deliberately broken file of `kind` (see `corrupt_file`) into the local folder `landing_dir`."""
    name, data = corrupt_file(spec, kind, config)
    return _write_atomic(Path(landing_dir) / name, data)


def corrupt_file(spec: DatasetSpec, kind: str, config: SimulationConfig | None = None) -> tuple[str, bytes]:
    """(file name, bytes) of one deliberately broken file of `kind` (see `CORRUPT_KINDS`).

    The file is one day of two groups from `config.start`, valid except for the defect.
    """
    if kind not in CORRUPT_KINDS:
        raise ValueError(f"unknown corrupt kind {kind!r}; valid kinds: {', '.join(CORRUPT_KINDS)}")
    config = config or SimulationConfig()
    small = SimulationConfig(
        start=config.start, days=1, groups=min(2, config.groups), seed=config.seed, drift=config.drift, defects=False
    )
    frame = simulate_frame(spec, small)
    suffix = "parquet" if kind == "parquet_wrong_schema" else "csv"
    name = f"corrupt_{kind}_{_day(config.start).isoformat()}.{suffix}"
    return name, _CORRUPTERS[kind](frame, spec)


# ---------------------------------------------------------------- time grid


def _day(value: date) -> date:
    return value.date() if isinstance(value, datetime) else value


def _utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _hour(moment: datetime) -> int:
    """Hours since the Unix epoch: the time index every random stream is keyed on."""
    return int(moment.timestamp()) // 3600


def _year_start(year: int) -> int:
    return _hour(datetime(year, 1, 1, tzinfo=UTC))


def _year_of(hour: int) -> int:
    return datetime.fromtimestamp(hour * 3600, UTC).year


# ---------------------------------------------------------------- random streams


def _ar1(shocks: np.ndarray, phis: np.ndarray) -> np.ndarray:
    """Unit-variance AR(1) along axis 0; the first row is a stationary draw, so no burn-in."""
    out = shocks * np.sqrt(1.0 - phis**2)
    out[0] = shocks[0]
    for t in range(1, len(out)):
        out[t] += phis * out[t - 1]
    return out


def _year_latents(seed: int, groups: int, year: int, phis: np.ndarray) -> np.ndarray:
    """Latent streams (hours, groups, streams) for [Jan 1 - fade, next Jan 1) of `year`."""
    n = _year_start(year + 1) - _year_start(year) + _FADE_HOURS
    # Streams are drawn row by row, so adding streams for extra features leaves the others unchanged.
    shocks = np.stack([np.random.default_rng([seed, g, year]).standard_normal((len(phis), n)) for g in range(groups)])
    return _ar1(np.ascontiguousarray(shocks.transpose(2, 0, 1)), phis)


def _latents(seed: int, groups: int, phis: np.ndarray, h0: int, h1: int) -> np.ndarray:
    """Unit-variance AR(1) streams (hours, groups, streams) for hours [h0, h1).

    Each year has its own stream; over the last `_FADE_HOURS` of a year it is cross-faded
    into the next year's with cos/sin weights, which keeps the variance at one.
    """
    cache: dict[int, np.ndarray] = {}

    def year_latents(year: int) -> np.ndarray:
        if year not in cache:
            cache[year] = _year_latents(seed, groups, year, phis)
        return cache[year]

    out = np.empty((h1 - h0, groups, len(phis)))
    for year in range(_year_of(h0), _year_of(h1 - 1) + 1):
        origin, fade_from = _year_start(year) - _FADE_HOURS, _year_start(year + 1) - _FADE_HOURS
        lo, hi = max(h0, _year_start(year)), min(h1, _year_start(year + 1))
        out[lo - h0 : hi - h0] = year_latents(year)[lo - origin : hi - origin]
        if hi > fade_from:
            a = max(lo, fade_from)
            theta = (np.arange(a, hi) - fade_from + 1) / (_FADE_HOURS + 1) * (np.pi / 2)
            nxt = year_latents(year + 1)[a - fade_from : hi - fade_from]
            cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
            out[a - h0 : hi - h0] = cos * out[a - h0 : hi - h0] + sin * nxt
    return out


def _uniforms(seed: int, groups: int, streams: int, h0: int, h1: int) -> np.ndarray:
    """Independent uniforms (hours, groups, streams) for hours [h0, h1), keyed like the latents."""
    out = np.empty((h1 - h0, groups, streams))
    for year in range(_year_of(h0), _year_of(h1 - 1) + 1):
        start = _year_start(year)
        lo, hi = max(h0, start), min(h1, _year_start(year + 1))
        for g in range(groups):
            draws = np.random.default_rng([seed, g, year, 1]).random((streams, _year_start(year + 1) - start))
            out[lo - h0 : hi - h0, g] = draws[:, lo - start : hi - start].T
    return out


def _group_params(seed: int, groups: int, scale_range: tuple[float, float]) -> Arrays:
    """Per-group constants: size, temperature sensitivity, climate."""
    u = np.array([np.random.default_rng([seed, g]).random(10) for g in range(groups)]).T
    lo, hi = scale_range
    # Golden-ratio spacing spreads the sizes of any number of groups over the whole range.
    frac = (np.arange(groups) * 0.6180339887 + 0.15 * u[0]) % 1.0
    return {
        "scale": np.exp(np.log(lo) + frac * (np.log(hi) - np.log(lo))),
        "heat": 0.012 + 0.018 * u[1],
        "cool": 0.015 + 0.025 * u[2],
        "temp_mean": 4.0 + 16.0 * u[3],
        "temp_amp": 6.0 + 8.0 * u[4],
        "diurnal_amp": 3.0 + 4.0 * u[5],
        "humid_logit": 0.1 + 0.8 * u[6],
        "wind_scale": 2.5 + 4.0 * u[7],
        "cloud_bias": -0.6 + 1.0 * u[8],
        "noise": 0.01 + 0.02 * u[9],
    }


def _scale_range(spec: DatasetSpec) -> tuple[float, float]:
    """Group sizes of 500-20,000, lowered when the target's max would cut the peaks off."""
    hi = 20_000.0 if spec.target.max is None else max(min(20_000.0, spec.target.max / 2.5), 1e-6)
    return hi / 40.0, hi


# ---------------------------------------------------------------- the clean truth


def _calendar(spec: DatasetSpec, h0: int, h1: int) -> Arrays:
    """Local hour, weekday, day of year and holiday flag per hour, as (hours, 1) columns."""
    utc = pl.Series(np.arange(h0, h1, dtype=np.int64) * 3600)
    local = pl.from_epoch(utc, time_unit="s").dt.replace_time_zone("UTC").dt.convert_time_zone(spec.timezone)
    days = local.dt.date()
    years = range(days.min().year, days.max().year + 1)
    off = holidays.country_holidays(spec.holidays_country or "US", years=years)
    cal = {
        "hour": (local.dt.hour() + local.dt.minute() / 60).to_numpy(),
        "weekday": local.dt.weekday().to_numpy(),
        "doy": local.dt.ordinal_day().to_numpy(),
        "holiday": days.is_in(list(off.keys())).to_numpy(),
    }
    return {k: v.astype(float)[:, None] for k, v in cal.items()}


def _weather(z: np.ndarray, cal: Arrays, p: Arrays, drift: float) -> Arrays:
    """Temperature, humidity, wind, cloud cover and precipitation, each (hours, groups)."""
    season = np.cos(2 * np.pi * (cal["doy"] - 20) / 365.25)
    diurnal = np.cos(2 * np.pi * (cal["hour"] - 15) / 24)
    cloud = 100 / (1 + np.exp(-(1.4 * z[..., _CLOUD] + p["cloud_bias"]))) - 0.5 * drift
    climate = p["temp_mean"] - p["temp_amp"] * season
    # Clear skies widen the day-night swing.
    weather_part = p["diurnal_amp"] * (1 - 0.4 * cloud / 100) * diurnal + 2.8 * z[..., _TEMP]
    temperature = climate + weather_part + drift
    humid_logit = p["humid_logit"] + 0.45 * z[..., _HUMID] + 0.01 * (cloud - 50) - 0.13 * weather_part
    wind = p["wind_scale"] * np.hypot(z[..., _WIND_U], z[..., _WIND_V]) / np.sqrt(np.pi / 2) * (1 + 0.2 * diurnal)
    wet = 0.75 * z[..., _CLOUD] + 0.66 * z[..., _RAIN]
    return {
        "temperature": temperature,
        "humidity": np.clip(100 / (1 + np.exp(-humid_logit)) - drift, 1, 100),
        "wind": wind,
        "cloud": np.clip(cloud, 0, 100),
        "precipitation": np.where(wet > 1.35, 0.2 + 2.5 * np.clip(wet - 1.35, 0, None) ** 1.5, 0.0),
    }


def _daily_profile(hour: np.ndarray) -> np.ndarray:
    """Night trough, morning and (higher) evening peak, by local hour."""

    def bump(mu: float, sd: float) -> np.ndarray:
        d = (hour - mu + 12) % 24 - 12
        return np.exp(-0.5 * (d / sd) ** 2)

    return 0.72 + 0.16 * bump(8, 2) + 0.28 * bump(18.5, 2.5) + 0.12 * bump(13, 3.5)


def _load(z: np.ndarray, cal: Arrays, p: Arrays, temperature: np.ndarray, drift: float) -> np.ndarray:
    """Load per (hour, group): size x daily x weekly x holiday x heating/cooling x noise."""
    weekly = np.select([cal["weekday"] == 6, cal["weekday"] == 7], [0.9, 0.85], 1.0)
    weekly = np.where(cal["holiday"] > 0, np.minimum(weekly, 0.86), weekly)
    lighting = 1 + 0.03 * np.cos(2 * np.pi * (cal["doy"] - 355) / 365.25)
    comfort = 1 + p["heat"] * np.clip(15 - temperature, 0, None) + p["cool"] * np.clip(temperature - 20, 0, None)
    noise = 1 + p["noise"] * z[..., _LOAD]
    return p["scale"] * _daily_profile(cal["hour"]) * weekly * lighting * comfort * (1 + 0.02 * drift) * noise


def _generic(z: np.ndarray, col: ColumnSpec) -> np.ndarray:
    """An AR(1) series centred in the column's range (or around 0 / near its one bound)."""
    if col.min is not None and col.max is not None:
        centre, spread = (col.min + col.max) / 2, (col.max - col.min) / 8
    elif col.min is not None:
        centre, spread = col.min + 50, 10.0
    elif col.max is not None:
        centre, spread = col.max - 50, 10.0
    else:
        centre, spread = 0.0, 10.0
    return centre + spread * z


# (word in the column name, generator, decimals) for features after the first.
_KNOWN = (
    ("humid", "humidity", 1),
    ("wind", "wind", 1),
    ("cloud", "cloud", 0),
    ("precip", "precipitation", 1),
    ("rain", "precipitation", 1),
)


def _feature_values(spec: DatasetSpec, z: np.ndarray, weather: Arrays) -> Arrays:
    """Values per numeric feature: the first is temperature, known names map to their
    generator, others get their own AR(1) stream; rounded and kept within the spec's range."""
    out = {}
    for j, col in enumerate(spec.numeric_features):
        known = [(key, d) for word, key, d in _KNOWN if word in col.column.lower()]
        if j == 0:
            values, decimals = weather["temperature"], 1
        elif known:
            values, decimals = weather[known[0][0]], known[0][1]
        else:
            values, decimals = _generic(z[..., len(_PHIS) + j], col), 2
        out[col.column] = _bounded(values, col, decimals)
    return out


def _bounded(values: np.ndarray, col: ColumnSpec, decimals: int) -> np.ndarray:
    # Adding 0.0 turns -0.0 into 0.0, which would otherwise be written as "-0.0".
    rounded = np.round(values, decimals) + 0.0
    return np.clip(rounded, col.min if col.min is not None else -np.inf, col.max if col.max is not None else np.inf)


def _categories(spec: DatasetSpec, groups: int) -> dict[str, list[str]]:
    """One fixed category per group and categorical column."""
    return {c: [f"{c}_{'ABC'[(g + j) % 3]}" for g in range(groups)] for j, c in enumerate(spec.categorical_features)}


def _group_count(spec: DatasetSpec, config: SimulationConfig) -> int:
    return config.groups if spec.group else 1


def _clean_frame(spec: DatasetSpec, config: SimulationConfig, t0: datetime, t1: datetime) -> pl.DataFrame:
    """The defect-free truth for [t0, t1), time-major, with internal hour and group index columns."""
    h0, h1, groups = _hour(t0), _hour(t1), _group_count(spec, config)
    phis = np.array([*_PHIS, *[_GENERIC_PHI] * len(spec.numeric_features)])
    z = _latents(config.seed, groups, phis, h0, h1)
    cal = _calendar(spec, h0, h1)
    params = _group_params(config.seed, groups, _scale_range(spec))
    weather = _weather(z, cal, params, config.drift)
    load = _load(z, cal, params, weather["temperature"], config.drift)
    columns = {spec.target.column: _bounded(load, spec.target, 1), **_feature_values(spec, z, weather)}
    hours = np.arange(h0, h1, dtype=np.int64)
    frame = pl.DataFrame(
        {
            _H: np.repeat(hours, groups),
            _G: np.tile(np.arange(groups, dtype=np.int64), len(hours)),
            **{name: values.reshape(-1) for name, values in columns.items()},
        }
    )
    stamp = pl.from_epoch(pl.col(_H) * 3600, time_unit="s").dt.replace_time_zone("UTC").dt.cast_time_unit("us")
    text = {c: pl.Series(v).gather(frame.get_column(_G)) for c, v in _categories(spec, groups).items()}
    if spec.group:
        text[spec.group] = pl.Series(group_names(groups)).gather(frame.get_column(_G))
    return frame.with_columns(stamp.alias(spec.timestamp), *[s.alias(c) for c, s in text.items()])


# ---------------------------------------------------------------- defects


def _inject_defects(frame: pl.DataFrame, spec: DatasetSpec, config: SimulationConfig) -> pl.DataFrame:
    """Spikes, negative readings, dropped rows and exact duplicates, keyed on (group, hour)."""
    h0, h1 = frame.get_column(_H).min(), frame.get_column(_H).max() + 1
    groups = _group_count(spec, config)
    u = _uniforms(config.seed, groups, 5, h0, h1).reshape(-1, 5)
    y = pl.col(spec.target.column)
    spike, negative = u[:, _SPIKE] < SPIKE_RATE, u[:, _NEGATIVE] < NEGATIVE_RATE
    marked = frame.with_columns(
        pl.when(pl.Series(spike)).then((y * pl.Series(5 + 5 * u[:, _MAGNITUDE])).round(1))
        .when(pl.Series(negative)).then(-y)
        .otherwise(y)
        .alias(spec.target.column),
        pl.Series("__keep", u[:, _MISSING] >= MISSING_RATE),
        pl.Series("__dup", u[:, _DUPLICATE] < DUPLICATE_RATE),
    ).filter("__keep")
    doubled = pl.concat([marked, marked.filter("__dup")]).sort(_H, _G, maintain_order=True)
    return doubled.drop("__keep", "__dup")


def _corrections(
    clean: pl.DataFrame, spec: DatasetSpec, config: SimulationConfig, batches: list[tuple[int, date]]
) -> pl.DataFrame:
    """Re-sent rows for each (batch index, first day): the last 3-6 hours per group of the
    day before, load revised by +-1-3%, tagged with the batch index."""
    groups = _group_count(spec, config)
    keys: dict[str, list] = {"__batch": [], _H: [], _G: [], "__factor": []}
    for i, first in batches:
        end = _hour(_utc(first))
        # One row of draws per group, so a group's corrections do not depend on the group count.
        u = np.random.default_rng([config.seed, first.toordinal(), 2]).random((groups, 13))
        for g in range(groups):
            k = 3 + int(u[g, 0] * 4)
            keys["__batch"] += [i] * k
            keys[_H] += list(range(end - k, end))
            keys[_G] += [g] * k
            keys["__factor"] += list(1 + np.where(u[g, 1 : k + 1] < 0.5, -1, 1) * (0.01 + 0.02 * u[g, 7 : k + 7]))
    table = pl.DataFrame(keys, schema={"__batch": pl.Int64, _H: pl.Int64, _G: pl.Int64, "__factor": pl.Float64})
    revised = (pl.col(spec.target.column) * pl.col("__factor")).round(1)
    joined = clean.join(table, on=[_H, _G], how="inner")
    return joined.with_columns(revised).drop("__factor").sort("__batch", _H, _G)


# ---------------------------------------------------------------- files


def _csv_text(frame: pl.DataFrame, spec: DatasetSpec) -> str:
    ts = pl.col(spec.timestamp)
    if isinstance(frame.schema[spec.timestamp], pl.Datetime):
        frame = frame.with_columns(ts.dt.strftime(TIMESTAMP_TEXT_FORMAT))
    return frame.write_csv()


def _to_bytes(frame: pl.DataFrame, spec: DatasetSpec, file_format: str) -> bytes:
    if file_format == "csv":
        return _csv_text(frame, spec).encode("utf-8")
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def _write_atomic(path: Path, data: bytes) -> Path:
    """Write to a hidden temporary name in the same directory, then rename: a watcher never
    sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------- corrupt files


def _some_rows(frame: pl.DataFrame) -> pl.Series:
    """Every fifth row from the second: several rows, not all."""
    return pl.Series((np.arange(frame.height) % 5) == 1)


def _missing_column(frame: pl.DataFrame, spec: DatasetSpec) -> bytes:
    return _csv_text(frame.drop(spec.target.column), spec).encode()


def _wrong_type(frame: pl.DataFrame, spec: DatasetSpec) -> bytes:
    name = spec.numeric_columns[0] if spec.numeric_columns else spec.target.column
    words = pl.when(_some_rows(frame)).then(pl.lit("n/a-sensor")).otherwise(pl.col(name).cast(pl.String))
    return _csv_text(frame.with_columns(words.alias(name)), spec).encode()


def _empty(frame: pl.DataFrame, spec: DatasetSpec) -> bytes:
    return b""


def _header_only(frame: pl.DataFrame, spec: DatasetSpec) -> bytes:
    return _csv_text(frame.clear(), spec).encode()


def _truncated(frame: pl.DataFrame, spec: DatasetSpec) -> bytes:
    lines = _csv_text(frame, spec).split("\n")
    cut_row = len(lines) // 2
    row = lines[cut_row]
    cut = max(min(len(row) // 2, row.rfind(",")), 1)
    return "\n".join([*lines[:cut_row], row[:cut]]).encode()


def _not_utf8(frame: pl.DataFrame, spec: DatasetSpec) -> bytes:
    name = spec.key_columns[0]
    rows = np.arange(frame.height)
    middle = pl.Series((rows >= frame.height // 3) & (rows < frame.height // 2))
    text = pl.col(name).cast(pl.String)
    accented = pl.when(middle).then(pl.lit("ZONA_Montréal") if spec.group else text + "é").otherwise(text)
    # Everything else is ASCII, so the latin-1 encoding differs from UTF-8 only at the é (0xe9).
    return _csv_text(frame.with_columns(accented.alias(name)), spec).encode("latin-1")


def _all_null_target(frame: pl.DataFrame, spec: DatasetSpec) -> bytes:
    return _csv_text(frame.with_columns(pl.lit(None, pl.Float64).alias(spec.target.column)), spec).encode()


def _duplicate_columns(frame: pl.DataFrame, spec: DatasetSpec) -> bytes:
    target = spec.target.column
    header, body = _csv_text(frame.with_columns(pl.col(target).alias("__copy")), spec).split("\n", 1)
    return (header.replace("__copy", target) + "\n" + body).encode()


def _unparseable_timestamps(frame: pl.DataFrame, spec: DatasetSpec) -> bytes:
    text = _csv_text(frame, spec)
    frame = pl.read_csv(io.StringIO(text), infer_schema=False)
    broken = pl.when(_some_rows(frame)).then(pl.lit("31/02/2024 25:61")).otherwise(pl.col(spec.timestamp))
    return frame.with_columns(broken.alias(spec.timestamp)).write_csv().encode()


def _out_of_range(frame: pl.DataFrame, spec: DatasetSpec) -> bytes:
    bounded = [c for c in (*spec.numeric_features, spec.target) if c.min is not None or c.max is not None]
    col = bounded[0] if bounded else (spec.numeric_features or (spec.target,))[0]
    if col.max is not None:
        value = 500.0 if col.max < 500 else col.max * 10 + 1
    elif col.min is not None:
        value = col.min - 500.0
    else:
        value = 1e12
    bad = pl.when(_some_rows(frame)).then(pl.lit(value)).otherwise(pl.col(col.column))
    return _csv_text(frame.with_columns(bad.alias(col.column)), spec).encode()


def _parquet_wrong_schema(frame: pl.DataFrame, spec: DatasetSpec) -> bytes:
    buffer = io.BytesIO()
    pl.DataFrame({"foo": [1, 2], "bar": ["x", "y"]}).write_parquet(buffer)
    return buffer.getvalue()


_CORRUPTERS: dict[str, Callable[[pl.DataFrame, DatasetSpec], bytes]] = {
    "missing_column": _missing_column,
    "wrong_type": _wrong_type,
    "empty": _empty,
    "header_only": _header_only,
    "truncated": _truncated,
    "not_utf8": _not_utf8,
    "all_null_target": _all_null_target,
    "duplicate_columns": _duplicate_columns,
    "unparseable_timestamps": _unparseable_timestamps,
    "out_of_range": _out_of_range,
    "parquet_wrong_schema": _parquet_wrong_schema,
}
