"""A pandas reference implementation of the pure "landing -> splits" pipeline.

It mirrors `mlops_assets.core` step by step so the benchmark compares equal work:

    parse_batch -> clean_batch -> validate_clean -> merge_batches -> build_features -> time_split

Written the way a careful pandas user would: vectorised, `groupby(...).transform / shift /
rolling`, no Python loops over rows (only over columns and, for interpolation, over groups).
Column names come from the `DatasetSpec`. Failures raise `PandasBatchError`; the reports are
plain dicts with the same counts as the polars `CleaningReport` / `MergeReport` /
`FeatureReport`.

This module imports neither polars nor anything from the core that does, so a benchmark
worker running it carries no polars memory.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core.spec import ColumnSpec, DatasetSpec

ROW_COLUMN = "_row"
LAG_INPUT = "__lag_input"
CALENDAR_COLUMNS = ("hour", "day_of_week", "month", "day_of_year", "is_weekend", "is_holiday", "hour_sin", "hour_cos", "year_sin", "year_cos")
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


def _steps(spec: DatasetSpec, hours: int) -> int:
    """Number of grid steps in `hours` (as `features.steps`)."""
    return max(1, round(hours * 3600 / spec.frequency_delta.total_seconds()))


def _by(frame: Frame, spec: DatasetSpec) -> pd.Series | np.ndarray:
    """What to group by: the group column, or one constant group for single-series data."""
    return frame[spec.group] if spec.group else np.zeros(len(frame), dtype=np.int8)


def _bad_rows(frame: Frame, mask: pd.Series) -> list[int]:
    return frame.loc[mask, ROW_COLUMN].head(1000).tolist()


def lag_columns(spec: DatasetSpec) -> list[str]:
    y = spec.target.column
    lags = [f"{y}_lag_{h}h" for h in spec.lags_hours]
    rolls = [f"{y}_roll_{stat}_{w}h" for w in spec.rolling_windows_hours for stat in ("mean", "std")]
    return lags + rolls


def feature_columns(spec: DatasetSpec) -> list[str]:
    group = [spec.group] if spec.group else []
    return [*group, *spec.categorical_features, *spec.numeric_columns, *CALENDAR_COLUMNS, *lag_columns(spec)]


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
    frame[spec.timestamp] = _cast_timestamp(frame, spec, file)
    _cast_keys_and_categories(frame, spec, file)
    _cast_numeric(frame, spec, file)
    _apply_ranges(frame, spec, file, report)
    _null_spikes(frame, spec, report)
    frame = _deduplicate(frame, spec, report)
    _describe(frame, spec, report)
    return frame.drop(columns=ROW_COLUMN), report


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
        local = naive.dt.tz_localize(spec.timezone, ambiguous=earliest, nonexistent="NaT")
        parsed[~has_offset] = local.dt.tz_convert("UTC")
    bad = raw.notna() & parsed.isna()
    if bad.any():
        raise PandasBatchError(file, "unparseable_timestamps", "cannot read as timestamps", _bad_rows(frame, bad))
    if raw.isna().any():
        raise PandasBatchError(file, "null_timestamps", "rows without a timestamp", _bad_rows(frame, raw.isna()))
    off_grid = parsed != parsed.dt.floor(spec.frequency)
    if off_grid.any():
        raise PandasBatchError(file, "off_grid_timestamps", f"not on the {spec.frequency} grid", _bad_rows(frame, off_grid))
    return parsed


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
    gaps = (ts.groupby(_by(frame, spec)).diff() / spec.frequency_delta).dropna()
    report["rows_out"] = len(frame)
    report["missing_steps"] = int((gaps - 1).clip(lower=0).sum())
    report["largest_gap_hours"] = float(gaps.max() * spec.frequency_delta.total_seconds() / 3600) if len(gaps) else 0.0
    report["groups"] = int(frame[spec.group].nunique()) if spec.group else 1
    nulls = frame.drop(columns=ROW_COLUMN).isna().sum()
    report["null_counts"] = {c: int(n) for c, n in nulls.items() if n}
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
        mask = _range_mask(frame, col)
        if mask is not None and mask.any():
            problems.append(f"{col.column} out of range")
    if frame.duplicated(subset=spec.key_columns).any():
        problems.append(f"duplicate keys {spec.key_columns}")
    if problems:
        raise PandasBatchError(file, "schema", "; ".join(problems))
    return frame


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


def build_features(history: Frame, spec: DatasetSpec) -> tuple[Frame, Report]:
    """Rows with an observed target and complete lags; columns: keys, target, features."""
    grid = complete_grid(history, spec)
    grid[LAG_INPUT] = lag_input(grid, spec)
    y = spec.target.column
    interpolated = int((grid[y].isna() & grid[LAG_INPUT].notna()).sum())
    _fill_weather(grid, spec)
    _add_lags(grid, spec)
    _add_calendar(grid, spec)
    has_target = grid[y].notna()
    full_lags = grid[lag_columns(spec)].notna().all(axis=1)
    keep = has_target & full_lags
    columns = [*spec.key_columns, y, *(c for c in feature_columns(spec) if c not in spec.key_columns)]
    out = grid.loc[keep, columns].reset_index(drop=True)
    report: Report = {
        "rows_in": len(history),
        "grid_rows": len(grid),
        "interpolated_target_points": interpolated,
        "rows_without_target": int((~has_target).sum()),
        "rows_without_full_lags": int((has_target & ~full_lags).sum()),
        "rows_out": len(out),
    }
    return out, report


def complete_grid(history: Frame, spec: DatasetSpec) -> Frame:
    """Every step between each group's first and last timestamp; missing steps as NaN rows."""
    ts, step = spec.timestamp, pd.Timedelta(spec.frequency_delta)
    naive_utc = history[ts].dt.tz_localize(None)  # numpy datetime64 arithmetic below
    if spec.group:
        spans = naive_utc.groupby(history[spec.group], sort=True).agg(["min", "max"])
        starts, ends, names = spans["min"].to_numpy(), spans["max"].to_numpy(), spans.index.to_numpy()
    else:
        starts, ends, names = naive_utc.min(), naive_utc.max(), None
        starts, ends = np.array([starts.to_datetime64()]), np.array([ends.to_datetime64()])
    lengths = ((ends - starts) // step.to_timedelta64()).astype(np.int64) + 1
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    stamps = np.repeat(starts, lengths) + offsets * step.to_timedelta64()
    keys = pd.DataFrame({ts: pd.DatetimeIndex(stamps).tz_localize("UTC")})
    if spec.group:
        keys.insert(0, spec.group, np.repeat(names, lengths))
    return keys.merge(history, on=spec.key_columns, how="left")  # left order = sorted keys


def lag_input(grid: Frame, spec: DatasetSpec) -> pd.Series:
    """The target with null runs of at most `max_interpolate_hours` steps filled linearly
    inside each group (leading/trailing runs stay null, as polars' `interpolate`)."""
    y = grid[spec.target.column]
    limit = _steps(spec, spec.max_interpolate_hours) if spec.max_interpolate_hours else 0
    is_null = y.isna()
    by = _by(grid, spec)
    group_change = pd.Series(by, index=grid.index).ne(pd.Series(by, index=grid.index).shift())
    run_id = (is_null.ne(is_null.shift()) | group_change).cumsum()
    run_len = run_id.map(run_id.value_counts())
    fill = is_null & (run_len <= limit)
    if not fill.any():
        return y.copy()
    interpolated = y.groupby(by, sort=False).transform(lambda s: s.interpolate(limit_area="inside"))
    return y.where(~fill, interpolated)


def _fill_weather(grid: Frame, spec: DatasetSpec) -> None:
    """Forward-fill short weather gaps within a group (a past value, never a future one)."""
    if not spec.numeric_columns:
        return
    limit = _steps(spec, spec.max_interpolate_hours) if spec.max_interpolate_hours else 0
    filled = grid[spec.numeric_columns].groupby(_by(grid, spec), sort=False).ffill(limit=limit or None)
    grid[spec.numeric_columns] = filled


def _add_lags(grid: Frame, spec: DatasetSpec) -> None:
    """Per-group lags of the lag input, and rolling mean/std of it shifted by the horizon."""
    y, by = spec.target.column, _by(grid, spec)
    source = grid[LAG_INPUT].groupby(by, sort=False)
    for hours in spec.lags_hours:
        grid[f"{y}_lag_{hours}h"] = source.shift(_steps(spec, hours))
    shifted = source.shift(_steps(spec, spec.horizon_hours))
    shifted_by_group = shifted.groupby(by, sort=False)
    for window in spec.rolling_windows_hours:
        n = _steps(spec, window)
        mean = shifted_by_group.rolling(n, min_periods=max(1, n // 2)).mean()
        std = shifted_by_group.rolling(n, min_periods=max(2, n // 2)).std()
        grid[f"{y}_roll_mean_{window}h"] = mean.droplevel(0)
        grid[f"{y}_roll_std_{window}h"] = std.droplevel(0)


def _add_calendar(grid: Frame, spec: DatasetSpec) -> None:
    """Calendar in the spec's local zone (one tz conversion, then fast naive field access)."""
    wall = grid[spec.timestamp].dt.tz_convert(spec.timezone).dt.tz_localize(None)
    local_date = wall.dt.normalize()
    weekday = wall.dt.dayofweek + 1  # Monday = 1, as polars
    hour, doy = wall.dt.hour, wall.dt.dayofyear
    grid["hour"] = hour.astype(np.int8)
    grid["day_of_week"] = weekday.astype(np.int8)
    grid["month"] = wall.dt.month.astype(np.int8)
    grid["day_of_year"] = doy.astype(np.int16)
    grid["is_weekend"] = (weekday >= 6).astype(np.int8)
    grid["is_holiday"] = local_date.isin(_holidays(spec.holidays_country, local_date)).astype(np.int8)
    grid["hour_sin"] = np.sin(hour * TWO_PI / 24)
    grid["hour_cos"] = np.cos(hour * TWO_PI / 24)
    grid["year_sin"] = np.sin(doy * TWO_PI / 365.25)
    grid["year_cos"] = np.cos(doy * TWO_PI / 365.25)


def _holidays(country: str | None, local_date: pd.Series) -> pd.DatetimeIndex:
    """Public holidays of `country` in every year the data touches."""
    years = sorted(int(y) for y in local_date.dt.year.dropna().unique())
    if not country or not years:
        return pd.DatetimeIndex([])
    import holidays

    return pd.DatetimeIndex(sorted(holidays.country_holidays(country, years=years).keys()))


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
