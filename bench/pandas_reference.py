"""A pandas reference implementation of the pure "landing -> splits" pipeline.

It mirrors `mlops_assets.core` step by step so the benchmark compares equal work:

    parse_batch -> clean_batch -> validate_clean -> merge_batches -> build_features -> time_split

Written the way a careful pandas user would: vectorised, `groupby(...).shift / ffill /
rolling`, no Python loops over rows (only over columns and lags). Column names come from the
`DatasetSpec`. Failures raise `PandasBatchError`; the reports are plain dicts with the same
counts as the polars `CleaningReport` / `MergeReport` / `FeatureReport`.

Sub-daily data uses a grid of elapsed time; daily data (`frequency: 1d`) a grid of local
calendar days, each starting at its first local instant (as the core).

This module imports neither polars nor anything from the core that does, so a benchmark
worker running it carries no polars memory.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core.spec import ColumnSpec, DatasetSpec, duration_label, read_holiday_file

ROW_COLUMN = "_row"
CALENDAR_COLUMNS = (
    "hour", "day_of_week", "month", "day_of_year", "is_weekend",
    "is_holiday", "is_day_before_holiday", "is_day_after_holiday",
    "minute_of_day_sin", "minute_of_day_cos", "week_sin", "week_cos", "day_of_year_sin", "day_of_year_cos",
)  # fmt: skip
INTRADAY_COLUMNS = ("hour", "minute_of_day_sin", "minute_of_day_cos")  # constant within a day
BASELINE_HOURS = {"baseline_seasonal_naive": 168, "baseline_day_before": 24}
BASELINE_COLUMNS = tuple(BASELINE_HOURS)
TEMPERATURE_WINDOWS_HOURS = (3, 6, 12, 24)
MOSTLY_MISSING_FRACTION = 0.5
_OFFSET = r"[+-]\d{2}:?\d{2}$"
_BOM = b"\xef\xbb\xbf"
TWO_PI = 2 * np.pi

Frame = pd.DataFrame
Report = dict[str, Any]


class PandasBatchError(ValueError):
    """A batch that cannot be used (the pandas twin of `ingest.BatchError`)."""

    def __init__(self, file: str, kind: str, message: str, rows: list[int] | None = None) -> None:
        super().__init__(f"{file}: {kind}: {message}")
        self.file, self.kind, self.rows = file, kind, rows or []


# --------------------------------------------------------------------------------------------
# helpers


def _by(frame: Frame, spec: DatasetSpec) -> pd.Series | np.ndarray:
    """What to group by: the group column, or one constant group for single-series data."""
    return frame[spec.group] if spec.group else np.zeros(len(frame), dtype=np.int8)


def _bad_rows(frame: Frame, mask: pd.Series) -> list[int]:
    return frame.loc[mask, ROW_COLUMN].head(1000).tolist()


def calendar_columns(spec: DatasetSpec) -> list[str]:
    return [c for c in CALENDAR_COLUMNS if not (spec.is_daily and c in INTRADAY_COLUMNS)]


def target_lag_columns(spec: DatasetSpec) -> list[str]:
    return [f"{spec.target.column}_lag_{duration_label(h)}" for h in spec.lags_hours]


def lag_columns(spec: DatasetSpec) -> list[str]:
    """Target lags, then rolling mean/std of the target up to t - horizon."""
    y = spec.target.column
    rolls = [f"{y}_roll_{stat}_{duration_label(w)}" for w in spec.rolling_windows_hours for stat in ("mean", "std")]
    return target_lag_columns(spec) + rolls


def observed_lag_columns(spec: DatasetSpec) -> list[str]:
    return [f"{c}_lag_{duration_label(h)}" for c in spec.observed_only_columns for h in spec.lags_hours]


def temperature_windows(spec: DatasetSpec) -> list[float]:
    """24 h and the rolling windows, each at least two steps long (none without a temperature)."""
    if not spec.temperature_column:
        return []
    step = pd.Timedelta(spec.frequency_delta).total_seconds()
    windows = sorted({*TEMPERATURE_WINDOWS_HOURS, *spec.rolling_windows_hours})
    return [w for w in windows if (w * 3600) % step == 0 and w * 3600 / step >= 2]


def temperature_columns(spec: DatasetSpec) -> list[str]:
    return [f"{spec.temperature_column}_roll_mean_{duration_label(w)}" for w in temperature_windows(spec)]


def feature_columns(spec: DatasetSpec) -> list[str]:
    """Model inputs in the core's order (group first if any)."""
    group = [spec.group] if spec.group else []
    return [
        *group, *spec.categorical_features, *spec.known_numeric_columns, *calendar_columns(spec),
        *temperature_columns(spec), *lag_columns(spec), *observed_lag_columns(spec),
    ]  # fmt: skip


def local_day_start(day: pd.Series, zone: str) -> pd.Series:
    """The first UTC instant of each local calendar day of `day` (naive dates/datetimes): local
    noon (always exists) floored to the day, shifted forward where midnight does not exist."""
    noon = (pd.to_datetime(day).dt.normalize() + pd.Timedelta(hours=12)).dt.tz_localize(zone)
    earliest = np.ones(len(noon), dtype=bool)
    return noon.dt.floor("D", ambiguous=earliest, nonexistent="shift_forward").dt.tz_convert("UTC")


def _wall(stamps: pd.Series, spec: DatasetSpec) -> pd.Series:
    """UTC instants as naive wall-clock times of the spec's zone."""
    return stamps.dt.tz_convert(spec.timezone).dt.tz_localize(None)


# --------------------------------------------------------------------------------------------
# parse


def parse_batch(name: str, data: bytes) -> Frame:
    """CSV bytes -> frame of text columns (empty field = missing) plus a 1-based `_row`."""
    if not name.lower().endswith(".csv"):
        raise PandasBatchError(name, "unsupported_format", "the pandas reference reads CSV only")
    if not data:
        raise PandasBatchError(name, "empty", "the file is empty (0 bytes)")
    if data.startswith(_BOM):
        data = data[3:]
    try:
        data.decode("utf-8")  # validate only, as the core does; the parser reads the bytes
    except UnicodeDecodeError as exc:
        raise PandasBatchError(name, "not_utf8", f"byte at offset {exc.start} is not UTF-8") from exc
    _check_structure(name, data)
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[""], engine="c")
    if frame.empty:
        raise PandasBatchError(name, "no_rows", "the file has a header but no data rows")
    frame[ROW_COLUMN] = np.arange(1, len(frame) + 1, dtype=np.int64)
    return frame


def _check_structure(name: str, data: bytes) -> None:
    """Header present and unique; a last line without newline must be complete."""
    header = data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8").split(",")
    if not [h for h in header if h.strip()]:
        raise PandasBatchError(name, "no_header", "the first line holds no column names")
    if len(set(header)) != len(header):
        raise PandasBatchError(name, "duplicate_columns", "column names appear more than once")
    if not data.endswith(b"\n"):
        last = data.rsplit(b"\n", 1)[-1].decode("utf-8")
        if len(last.split(",")) != len(header):
            raise PandasBatchError(name, "truncated", "the last line is incomplete")


# --------------------------------------------------------------------------------------------
# clean


def clean_batch(frame: Frame, spec: DatasetSpec, file: str) -> tuple[Frame, Report]:
    """Typed, UTC, range-checked, spike-free, de-duplicated rows sorted by key."""
    report: Report = {"rows_in": len(frame)}
    missing = [c for c in spec.required_columns if c not in frame.columns]
    if missing:
        raise PandasBatchError(file, "missing_columns", f"missing {missing}")
    report["extra_columns"] = [c for c in frame.columns if c not in (*spec.required_columns, ROW_COLUMN)]
    frame = frame[[*spec.required_columns, ROW_COLUMN]].copy()
    _null_missing_tokens(frame, spec, report)
    frame[spec.timestamp] = _cast_timestamp(frame, spec, file)
    _cast_keys_and_categories(frame, spec, file)
    report["out_of_order_rows"] = _count_out_of_order(frame, spec)
    _cast_numeric(frame, spec, file)
    _reject_missing(frame, spec, file)
    _apply_ranges(frame, spec, file, report)
    _null_spikes(frame, spec, report)
    frame = _deduplicate(frame, spec, report)
    _describe(frame, spec, report)
    return frame.drop(columns=ROW_COLUMN), report


def _null_missing_tokens(frame: Frame, spec: DatasetSpec, report: Report) -> None:
    """Text equal to a missing-value token after stripping becomes missing (counted per
    column); group labels are names, never tokens."""
    report["missing_tokens"] = {}
    tokens = list(spec.missing_values)
    if not tokens:
        return
    for name in (spec.timestamp, *(c.column for c in spec.value_columns), *spec.categorical_features):
        mask = frame[name].str.strip().isin(tokens)
        if mask.any():
            report["missing_tokens"][name] = int(mask.sum())
            frame.loc[mask, name] = np.nan


def _count_out_of_order(frame: Frame, spec: DatasetSpec) -> int:
    """Rows with a new key but an earlier time than a row above them in the same group."""
    ts, by = frame[spec.timestamp], _by(frame, spec)
    if not (ts < ts.groupby(by, sort=False).shift(1)).any():
        return 0
    before = ts.groupby(by, sort=False).cummax().groupby(by, sort=False).shift(1)
    new_key = ~frame.duplicated(subset=spec.key_columns, keep="first")
    return int((new_key & (ts < before)).sum())


def _cast_timestamp(frame: Frame, spec: DatasetSpec, file: str) -> pd.Series:
    """ISO-8601 text: exact with an offset/Z; wall-clock time in the spec's zone without."""
    raw = frame[spec.timestamp]
    text = raw.str.strip().str.replace(r"Z$", "+00:00", regex=True)
    has_offset = text.str.contains(_OFFSET, regex=True, na=False)
    if has_offset.all():
        parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    else:
        parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
        parsed[has_offset] = pd.to_datetime(text[has_offset], utc=True, format="ISO8601", errors="coerce")
        naive = pd.to_datetime(text[~has_offset], format=_naive_format(spec), errors="coerce")
        earliest = np.ones(len(naive), dtype=bool)  # DST=True: the first of two ambiguous hours
        local = naive.dt.tz_localize(spec.timezone, ambiguous=earliest, nonexistent="NaT").dt.tz_convert("UTC")
        if spec.is_daily:  # a local midnight names its day, whose first instant may be 01:00
            midnight = naive.notna() & (naive == naive.dt.normalize())
            local = local.where(~midnight, local_day_start(naive.where(midnight), spec.timezone))
        parsed[~has_offset] = local
    bad = raw.notna() & parsed.isna()
    if bad.any():
        raise PandasBatchError(file, "unparseable_timestamps", "cannot read as timestamps", _bad_rows(frame, bad))
    if raw.isna().any():
        raise PandasBatchError(file, "null_timestamps", "rows without a timestamp", _bad_rows(frame, raw.isna()))
    off_grid = ~_on_grid(parsed, spec)
    if off_grid.any():
        raise PandasBatchError(file, "off_grid_timestamps", f"not on the {spec.frequency} grid", _bad_rows(frame, off_grid))
    return parsed


def _on_grid(parsed: pd.Series, spec: DatasetSpec) -> pd.Series:
    """A whole number of steps after local midnight; for daily data, the first instant of
    the local day."""
    if spec.is_daily:
        return parsed == local_day_start(_wall(parsed, spec), spec.timezone)
    wall = _wall(parsed, spec)
    return wall == wall.dt.floor(pd.Timedelta(spec.frequency_delta))


def _naive_format(spec: DatasetSpec) -> str:
    """pandas spelling of the spec's format (polars' `%.f` is pandas' `.%f`)."""
    if not spec.timestamp_format:
        return "ISO8601"
    return spec.timestamp_format.replace("%.f", ".%f")


def _cast_keys_and_categories(frame: Frame, spec: DatasetSpec, file: str) -> None:
    for name in (c for c in (spec.group, *spec.categorical_features) if c):
        frame[name] = frame[name].str.strip()
    if spec.group:
        missing = frame[spec.group].isna() | (frame[spec.group] == "")
        if missing.any():
            raise PandasBatchError(file, "null_group", "rows without a group", _bad_rows(frame, missing))


def _cast_numeric(frame: Frame, spec: DatasetSpec, file: str) -> None:
    """Text -> float64 with `pd.to_numeric(errors="coerce")` (which ignores surrounding
    whitespace, so no separate strip); a value that was present but became NaN is a failed
    cast and rejects the batch."""
    failed, non_finite = [], []
    for col in spec.value_columns:
        raw = frame[col.column]
        typed = pd.to_numeric(raw, errors="coerce").astype("float64")
        if (raw.notna() & typed.isna()).any():
            failed.append(col.column)
        if np.isinf(typed.to_numpy()).any():
            non_finite.append(col.column)
        frame[col.column] = typed
    if failed:
        raise PandasBatchError(file, "wrong_type", f"values are not numbers in {failed}")
    if non_finite:
        raise PandasBatchError(file, "non_finite", f"NaN or infinite values in {non_finite}")
    if frame[spec.target.column].isna().all():
        raise PandasBatchError(file, "all_null_target", "the target has no values in this batch")


def _reject_missing(frame: Frame, spec: DatasetSpec, file: str) -> None:
    """A missing value where the spec says `allow_missing: false`."""
    refused = [c.column for c in spec.value_columns if not c.allow_missing and frame[c.column].isna().any()]
    if refused:
        mask = frame[refused].isna().any(axis=1)
        raise PandasBatchError(file, "missing_values", f"missing values in {refused}", _bad_rows(frame, mask))


def _range_mask(frame: Frame, col: ColumnSpec) -> pd.Series | None:
    values = frame[col.column]
    if col.min is None and col.max is None:
        return None
    mask = pd.Series(False, index=frame.index)
    if col.min is not None:
        mask |= values < col.min
    if col.max is not None:
        mask |= values > col.max
    return mask


def _apply_ranges(frame: Frame, spec: DatasetSpec, file: str, report: Report) -> None:
    """Out-of-range values: nulled and counted (`on_out_of_range: null`) or the batch is rejected."""
    report["out_of_range_nulled"] = {}
    rejected = []
    for col in spec.value_columns:
        mask = _range_mask(frame, col)
        if mask is None or not mask.any():
            continue
        if col.on_out_of_range == "null":
            report["out_of_range_nulled"][col.column] = int(mask.sum())
            frame.loc[mask, col.column] = np.nan
        else:
            rejected.append(col.column)
    if rejected:
        raise PandasBatchError(file, "out_of_range", f"values outside the spec's ranges in {rejected}")


def _null_spikes(frame: Frame, spec: DatasetSpec, report: Report) -> None:
    """Null targets more than `spike_mad_threshold` robust deviations from the group median."""
    report["spikes_nulled"] = 0
    if not spec.spike_mad_threshold:
        return
    y = frame[spec.target.column]
    by = _by(frame, spec)
    deviation = (y - y.groupby(by).transform("median")).abs()
    mad = deviation.groupby(by).transform("median")
    spike = (deviation / (1.4826 * mad) > spec.spike_mad_threshold) & (mad > 0)
    report["spikes_nulled"] = int(spike.sum())
    if report["spikes_nulled"]:
        frame.loc[spike, spec.target.column] = np.nan


def _deduplicate(frame: Frame, spec: DatasetSpec, report: Report) -> Frame:
    """Keep the last row per key (later rows are corrections), then sort by key."""
    value_cols = [c for c in frame.columns if c != ROW_COLUMN]
    exact = int(frame.duplicated(subset=value_cols, keep="last").sum())
    deduped = frame.drop_duplicates(subset=spec.key_columns, keep="last")
    report["exact_duplicates_dropped"] = exact
    report["conflicting_duplicates_dropped"] = len(frame) - len(deduped) - exact
    return deduped.sort_values(spec.key_columns, kind="stable", ignore_index=True)


def _describe(frame: Frame, spec: DatasetSpec, report: Report) -> None:
    """Rows, gaps (in grid steps), groups, null counts and time range of the clean batch."""
    ts = frame[spec.timestamp]
    if spec.is_daily:
        days = _wall(ts, spec).dt.normalize()
        gaps = (days.groupby(_by(frame, spec)).diff() / pd.Timedelta(days=1)).dropna()
    else:
        gaps = (ts.groupby(_by(frame, spec)).diff() / spec.frequency_delta).round().dropna()
    report["rows_out"] = len(frame)
    report["missing_steps"] = int((gaps - 1).clip(lower=0).sum())
    report["largest_gap_hours"] = float(gaps.max() * spec.frequency_delta.total_seconds() / 3600) if len(gaps) else 0.0
    report["groups"] = int(frame[spec.group].nunique()) if spec.group else 1
    nulls = frame.drop(columns=ROW_COLUMN).isna().sum()
    report["null_counts"] = {c: int(n) for c, n in nulls.items() if n}
    share = {c: n / len(frame) for c, n in report["null_counts"].items()}
    report["mostly_missing"] = {c: round(f, 4) for c, f in share.items() if f > MOSTLY_MISSING_FRACTION}
    report["first_timestamp"], report["last_timestamp"] = str(ts.min()), str(ts.max())


# --------------------------------------------------------------------------------------------
# validate


def validate_clean(frame: Frame, spec: DatasetSpec, file: str) -> Frame:
    """The clean schema (as `schemas.clean_schema`) checked with plain vectorised pandas:
    exact column set, dtypes, non-null keys, non-empty groups, ranges, unique keys."""
    problems = []
    expected = [spec.timestamp, *([spec.group] if spec.group else []), *(c.column for c in spec.value_columns), *spec.categorical_features]
    if set(frame.columns) != set(expected):
        problems.append(f"columns {sorted(frame.columns)} != {sorted(expected)}")
    ts = frame[spec.timestamp]
    if not (isinstance(ts.dtype, pd.DatetimeTZDtype) and str(ts.dtype.tz) == "UTC") or ts.isna().any():
        problems.append("timestamp is not a non-null UTC datetime")
    if spec.group and (frame[spec.group].isna().any() or (frame[spec.group].str.len() < 1).any()):
        problems.append("group has nulls or empty names")
    for col in spec.value_columns:
        values = frame[col.column]
        if values.dtype != np.float64:
            problems.append(f"{col.column} is {values.dtype}, not float64")
        if not _may_be_null(col, spec) and values.isna().any():
            problems.append(f"{col.column} has missing values")
        mask = _range_mask(frame, col)
        if mask is not None and mask.any():
            problems.append(f"{col.column} out of range")
    if frame.duplicated(subset=spec.key_columns).any():
        problems.append(f"duplicate keys {spec.key_columns}")
    if problems:
        raise PandasBatchError(file, "schema", "; ".join(problems))
    return frame


def _may_be_null(col: ColumnSpec, spec: DatasetSpec) -> bool:
    """Missing allowed by the spec, or made by a repair (out-of-range nulled, target spike)."""
    repaired = col.on_out_of_range == "null" or (col.column == spec.target.column and bool(spec.spike_mad_threshold))
    return col.allow_missing or repaired


# --------------------------------------------------------------------------------------------
# merge


def merge_batches(batches: list[tuple[str, Frame]], spec: DatasetSpec) -> tuple[Frame, Report]:
    """Concatenate in landing order; on a key conflict the later batch wins."""
    if not batches:
        raise ValueError("no clean batches to merge")
    stacked = pd.concat([frame for _, frame in batches], ignore_index=True)
    merged = stacked.drop_duplicates(subset=spec.key_columns, keep="last")
    merged = merged.sort_values(spec.key_columns, kind="stable", ignore_index=True)
    report: Report = {
        "batches": [key for key, _ in batches],
        "rows_in": len(stacked),
        "rows_out": len(merged),
        "superseded_rows": len(stacked) - len(merged),
        "groups": int(merged[spec.group].nunique()) if spec.group else 1,
        "first_timestamp": str(merged[spec.timestamp].min()),
        "last_timestamp": str(merged[spec.timestamp].max()),
        "data_version": content_hash(merged),
    }
    return merged, report


def content_hash(frame: Frame) -> str:
    """A data version: SHA-256 over pandas' per-row hashes (order-sensitive)."""
    row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(row_hashes.tobytes()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# features


def build_features(history: Frame, spec: DatasetSpec, require_target: bool = True) -> tuple[Frame, Report]:
    """Rows with the shortest target lag (and, for training, an observed target); columns: keys,
    target, features, baselines. Longer lags and other missing feature values stay NaN."""
    y = spec.target.column
    grid = complete_grid(history, spec)
    by = _by(grid, spec)
    ffill, interp, to_next = lag_inputs(grid, spec, by)
    filled = int((grid[y].isna() & ffill.notna()).sum())
    new = {
        **_target_lags(grid, spec, by, ffill, interp, to_next),
        **_observed_lags(grid, spec, by),
        **_temperature(grid, spec, by),
        **{name: grid[y].groupby(by, sort=False).shift(spec.steps(h)) for name, h in BASELINE_HOURS.items()},
        **_calendar(grid, spec, by),
    }
    grid = pd.concat([grid, pd.DataFrame(new, index=grid.index)], axis=1)
    has_target = grid[y].notna()
    required = grid[f"{y}_lag_{duration_label(min(spec.lags_hours))}"].notna()  # the shortest lag
    full_lags = grid[lag_columns(spec)].notna().all(axis=1)
    keep = (has_target & required) if require_target else required
    candidates = has_target if require_target else pd.Series(True, index=grid.index)
    inputs = [c for c in feature_columns(spec) if c not in spec.key_columns]
    columns = [*spec.key_columns, y, *inputs, *BASELINE_COLUMNS]
    out = grid.loc[keep, columns].reset_index(drop=True)
    nulls = out.isna().sum()
    report: Report = {
        "rows_in": len(history),
        "grid_rows": len(grid),
        "missing_target_values": int(history[y].isna().sum()),
        "interpolated_target_points": filled,
        "rows_without_target": int((~has_target).sum()),
        "rows_without_required_history": int((candidates & ~required).sum()),
        "rows_with_partial_history": int((keep & ~full_lags).sum()),
        "rows_out": len(out),
        "feature_null_counts": {c: int(n) for c, n in nulls.items() if n},
    }
    return out, report


def complete_grid(history: Frame, spec: DatasetSpec) -> Frame:
    """Every step between each group's first and last timestamp; missing steps as NaN rows.
    Daily data steps through local calendar days (23 or 25 h at a DST change)."""
    ts = spec.timestamp
    if spec.is_daily:
        step = pd.Timedelta(days=1)
        stamps = _wall(history[ts], spec).dt.normalize()
    else:
        step = pd.Timedelta(spec.frequency_delta)
        stamps = history[ts].dt.tz_localize(None)  # numpy datetime64 arithmetic below
    if spec.group:
        spans = stamps.groupby(history[spec.group], sort=True).agg(["min", "max"])
        starts, ends, names = spans["min"].to_numpy(), spans["max"].to_numpy(), spans.index.to_numpy()
    else:
        starts, ends, names = np.array([stamps.min().to_datetime64()]), np.array([stamps.max().to_datetime64()]), None
    lengths = ((ends - starts) // step.to_timedelta64()).astype(np.int64) + 1
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    points = pd.Series(np.repeat(starts, lengths) + offsets * step.to_timedelta64())
    keys = pd.DataFrame({ts: local_day_start(points, spec.timezone) if spec.is_daily else points.dt.tz_localize("UTC")})
    if spec.group:
        keys.insert(0, spec.group, np.repeat(names, lengths))
    return keys.merge(history, on=spec.key_columns, how="left")  # left order = sorted keys


def lag_inputs(grid: Frame, spec: DatasetSpec, by: pd.Series | np.ndarray) -> tuple[pd.Series, pd.Series, pd.Series]:
    """What target lags read. In a null run of at most `max_interpolate` steps inside a group:
    `ffill` carries the last earlier value forward, `interp` fills linearly between the values
    around the run; `to_next` counts the steps to the group's next observed value (NaN if none)."""
    y = grid[spec.target.column]
    limit = spec.steps(spec.max_interpolate_hours)
    is_null = y.isna()
    groups = pd.Series(by, index=grid.index)
    run_id = (is_null.ne(is_null.shift()) | groups.ne(groups.shift())).cumsum()
    fill = is_null & (run_id.map(run_id.value_counts()) <= limit)
    carried = y.groupby(by, sort=False).ffill()
    position = pd.Series(np.arange(len(y), dtype=np.float64), index=grid.index)
    to_next = position.where(~is_null).groupby(by, sort=False).bfill() - position
    # Groups are contiguous: a global linear fill equals the group's own wherever the group has a
    # value on both sides (earlier: `carried`; later: `to_next`), and is dropped elsewhere.
    inside = y.interpolate(limit_area="inside").where(carried.notna() & to_next.notna())
    return y.where(~fill, carried), y.where(~fill, inside), to_next


def _target_lags(
    grid: Frame, spec: DatasetSpec, by: pd.Series | np.ndarray, ffill: pd.Series, interp: pd.Series, to_next: pd.Series
) -> dict[str, pd.Series]:
    """A lag of k steps reads the linear fill only where the next observed value is at or
    before t - horizon, else the carried-forward one; rolling stats end at t - horizon and read
    only carried-forward fills."""
    horizon = spec.steps(spec.horizon_hours)
    out = {}
    for hours, name in zip(spec.lags_hours, target_lag_columns(spec)):
        k = spec.steps(hours)
        source = interp.where(to_next <= k - horizon, ffill)
        out[name] = source.groupby(by, sort=False).shift(k)
    shifted = ffill.groupby(by, sort=False).shift(horizon).groupby(by, sort=False)
    y = spec.target.column
    for window in spec.rolling_windows_hours:
        n, label = spec.steps(window), duration_label(window)
        out[f"{y}_roll_mean_{label}"] = shifted.rolling(n, min_periods=max(1, n // 2)).mean().droplevel(0)
        out[f"{y}_roll_std_{label}"] = shifted.rolling(n, min_periods=max(2, n // 2)).std().droplevel(0)
    return out


def _observed_lags(grid: Frame, spec: DatasetSpec, by: pd.Series | np.ndarray) -> dict[str, pd.Series]:
    """Observed-only features as raw lags (no fill)."""
    return {
        f"{col}_lag_{duration_label(h)}": grid[col].groupby(by, sort=False).shift(spec.steps(h))
        for col in spec.observed_only_columns
        for h in spec.lags_hours
    }


def _temperature(grid: Frame, spec: DatasetSpec, by: pd.Series | np.ndarray) -> dict[str, pd.Series]:
    """Rolling temperature means ending at t (a forecast) or at t - horizon (only observed)."""
    if not spec.temperature_column:
        return {}
    temp = grid[spec.temperature_column]
    if spec.temperature_column not in spec.known_numeric_columns:
        temp = temp.groupby(by, sort=False).shift(spec.steps(spec.horizon_hours))
    by_group = temp.groupby(by, sort=False)
    out = {}
    for hours, name in zip(temperature_windows(spec), temperature_columns(spec)):
        n = spec.steps(hours)
        out[name] = by_group.rolling(n, min_periods=max(1, n // 2)).mean().droplevel(0)
    return out


def _calendar(grid: Frame, spec: DatasetSpec, by: pd.Series | np.ndarray) -> dict[str, pd.Series]:
    """Calendar in the spec's local zone at the data's resolution (one tz conversion, then
    naive field access)."""
    wall = _wall(grid[spec.timestamp], spec)
    weekday = wall.dt.dayofweek  # Monday = 0
    minute = (wall.dt.hour * 60 + wall.dt.minute) / 1440
    week = (weekday + minute) / 7
    year = wall.dt.dayofyear / 365.25
    cal = {
        "hour": wall.dt.hour.astype(np.int8),
        "day_of_week": (weekday + 1).astype(np.int8),  # Monday = 1, as polars
        "month": wall.dt.month.astype(np.int8),
        "day_of_year": wall.dt.dayofyear.astype(np.int16),
        "is_weekend": (weekday >= 5).astype(np.int8),
        **_holiday_flags(grid, wall.dt.normalize(), spec, by),
        "minute_of_day_sin": np.sin(minute * TWO_PI),
        "minute_of_day_cos": np.cos(minute * TWO_PI),
        "week_sin": np.sin(week * TWO_PI),
        "week_cos": np.cos(week * TWO_PI),
        "day_of_year_sin": np.sin(year * TWO_PI),
        "day_of_year_cos": np.cos(year * TWO_PI),
    }
    return {c: cal[c] for c in calendar_columns(spec)}


def _holiday_flags(grid: Frame, day: pd.Series, spec: DatasetSpec, by: pd.Series | np.ndarray) -> dict[str, pd.Series]:
    """is_holiday / is_day_before_holiday / is_day_after_holiday by local date: the calendar's
    holidays, or a day on which the group's 0/1 holiday column is 1."""
    one = pd.Timedelta(days=1)
    dates = {"is_holiday": day, "is_day_before_holiday": day + one, "is_day_after_holiday": day - one}
    known = _holidays(spec, day)
    flags = {name: d.isin(known) for name, d in dates.items()}
    if spec.holiday_column:
        marked = (grid[spec.holiday_column] >= 0.5).groupby([pd.Series(by, index=grid.index), day]).any()
        for name, d in dates.items():
            found = marked.reindex(pd.MultiIndex.from_arrays([by, d])).fillna(False).to_numpy(dtype=bool)
            flags[name] = flags[name] | found
    return {name: flag.astype(np.int8) for name, flag in flags.items()}


def _holidays(spec: DatasetSpec, day: pd.Series) -> pd.DatetimeIndex:
    """Holidays (country and subdivision, observed days included; the spec's holiday file) in
    every year the data touches, and the years either side."""
    years = {int(y) for y in day.dt.year.dropna().unique()}
    years = sorted({*years, *(y - 1 for y in years), *(y + 1 for y in years)})
    found: set = set()
    if spec.holidays_country and years:
        import holidays

        calendar = holidays.country_holidays(
            spec.holidays_country, subdiv=spec.holidays_subdivision, years=years, observed=True
        )
        found |= set(calendar.keys())
    if spec.holidays_file:
        found |= set(read_holiday_file(spec.holidays_file))
    return pd.DatetimeIndex(sorted(found))


# --------------------------------------------------------------------------------------------
# split


def time_split(frame: Frame, spec: DatasetSpec) -> tuple[Frame, Frame, Frame, dict[str, str]]:
    """Cut on shared timestamps (same fractions and index rule as `splitting.time_split`)."""
    stamps = np.sort(frame[spec.timestamp].unique())
    n = len(stamps)
    i_val = int(n * spec.train_fraction)
    i_test = int(n * (spec.train_fraction + spec.validation_fraction))
    if n < 3 or i_val < 1 or i_test <= i_val or i_test >= n:
        raise ValueError(f"{n} distinct timestamps cannot be split")
    ts = frame[spec.timestamp]
    val_start, test_start = stamps[i_val], stamps[i_test]
    train = frame[ts < val_start]
    validation = frame[(ts >= val_start) & (ts < test_start)]
    test = frame[ts >= test_start]
    bounds = {"train_start": str(stamps[0]), "validation_start": str(val_start), "test_start": str(test_start), "test_end": str(stamps[-1])}
    return train, validation, test, bounds


# --------------------------------------------------------------------------------------------
# whole pipeline


def run_pipeline(files: list[tuple[str, bytes]], spec: DatasetSpec, timings: dict[str, float] | None = None) -> dict[str, Any]:
    """landing bytes -> (train, validation, test); `timings` collects seconds per stage."""
    from time import perf_counter

    timings = {} if timings is None else timings
    clock = perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = perf_counter()
        timings[stage] = timings.get(stage, 0.0) + now - clock
        clock = now

    cleaned = []
    for name, data in files:
        parsed = parse_batch(name, data)
        lap("parse")
        frame, _ = clean_batch(parsed, spec, name)
        lap("clean")
        cleaned.append((name, validate_clean(frame, spec, name)))
        lap("validate")
    history, merge_report = merge_batches(cleaned, spec)
    lap("merge")
    features, feature_report = build_features(history, spec)
    lap("features")
    train, validation, test, bounds = time_split(features, spec)
    lap("split")
    return {"train": train, "validation": validation, "test": test, "bounds": bounds, "merge": merge_report, "features": feature_report}
