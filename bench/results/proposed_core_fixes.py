"""Proposed speed-ups for the polars core, as a monkeypatch prototype (nothing imports this).

Written by the data-pipeline benchmark to measure the changes before anyone edits the core:
`apply()` swaps the functions below into mlops_assets.core.{ingest,cleaning,history,features}.
With all of them applied, the 1M-row benchmark's train/validation/test frames are identical
(polars.testing.assert_frame_equal) to the unpatched core's, the data version hash is
unchanged, and mlops_assets_tests/core passes (121 tests).

Try it:  PYTHONPATH=bench/results .venv/bin/python -c "import proposed_core_fixes as f; f.apply(); ..."
"""

from __future__ import annotations

import csv
import hashlib
from typing import Any

import polars as pl

from mlops_assets.core import cleaning, features, history, ingest
from mlops_assets.core.ingest import BatchError
from mlops_assets.core.spec import DatasetSpec

# ----------------------------------------------------------------------------------------
# 1. cleaning: timestamps. pl.coalesce evaluates every input, so the current expression runs
#    all 6 offset formats + 7 naive formats (13 strptime passes) on every row. Parse the
#    common layout once; run the full chain only on the rows that pass could not read.

FAST_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


def parse_text_column(values: pl.Series, spec: DatasetSpec) -> pl.Series:
    fast = values.str.strip_chars().str.strptime(pl.Datetime("us", "UTC"), FAST_FORMAT, strict=False)
    todo = fast.is_null() & values.is_not_null()
    if not todo.any():
        return fast
    idx = todo.arg_true()
    rest = values.gather(idx).to_frame().select(cleaning._parse_text_timestamps(pl.col(values.name), spec)).to_series()
    return fast.scatter(idx, rest)


_original_cast_timestamp = cleaning._cast_timestamp


def cast_timestamp(frame: pl.DataFrame, spec: DatasetSpec, file: str) -> pl.DataFrame:
    """As cleaning._cast_timestamp; only the `parsed = ...` line changes for text columns."""
    ts = spec.timestamp
    if frame.schema[ts] != pl.String:
        return _original_cast_timestamp(frame, spec, file)
    out = frame.with_columns(parse_text_column(frame.get_column(ts), spec).alias("__ts"))
    # ... the unchanged checks of _cast_timestamp (unparseable / null / off-grid) follow here
    bad = pl.col(ts).is_not_null() & pl.col("__ts").is_null()
    if out.select(bad.any()).item():
        raise BatchError(file, "unparseable_timestamps", "cannot read as timestamps", rows=cleaning._rows(out, bad), columns=[ts])
    missing = pl.col(ts).is_null()
    if out.select(missing.any()).item():
        raise BatchError(file, "null_timestamps", "rows without a timestamp", rows=cleaning._rows(out, missing), columns=[ts])
    off_grid = pl.col("__ts") != pl.col("__ts").dt.truncate(spec.frequency)
    if out.select(off_grid.any()).item():
        raise BatchError(file, "off_grid_timestamps", f"not on the {spec.frequency} grid", rows=cleaning._rows(out, off_grid), columns=[ts])
    return out.with_columns(pl.col("__ts").alias(ts)).drop("__ts")


# ----------------------------------------------------------------------------------------
# 2. ingest: give polars the bytes. Today: data.decode() (1 copy) -> io.StringIO(text)
#    (UCS-4 buffer, ~4 copies) -> polars reads it back and re-encodes. Validate UTF-8 without
#    keeping the text and decode only the first and last line. Also drops the deprecated
#    `missing_utf8_is_empty_string` (null_values=[""] already makes empty fields null).


def parse_csv(name: str, data: bytes) -> pl.DataFrame:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        data.decode("utf-8")  # validation only; the str is dropped at once
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BatchError(
            name, "not_utf8",
            f"byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}) is not UTF-8; re-export the file as UTF-8",
            rows=[max(line - 1, 1)],
        ) from exc
    end = data.find(b"\n")
    header = ingest._header(name, data[: end if end >= 0 else len(data)].decode("utf-8"))
    check_truncated(name, data, header)
    try:
        return pl.read_csv(data, infer_schema=False, null_values=[""])
    except pl.exceptions.PolarsError as exc:
        raise BatchError(name, "unparseable", f"not a readable CSV file: {exc}".splitlines()[0]) from exc


def check_truncated(name: str, data: bytes, header: list[str]) -> None:
    if data.endswith(b"\n"):
        return
    fields = next(csv.reader([data[data.rfind(b"\n") + 1 :].decode("utf-8")]), [])
    if len(fields) != len(header):
        raise BatchError(
            name, "truncated",
            f"the last line has {len(fields)} of {len(header)} fields and no line end: the file was cut short",
            rows=[data.count(b"\n")],
        )


# ----------------------------------------------------------------------------------------
# 3. cleaning + history: keep-last de-duplication as a stable sort plus a "last row of each
#    key run" filter (no hash-unique over all columns); exact duplicates are counted only
#    among rows whose key repeats (an exact duplicate always repeats its key).


def same_key_as(offset: int, keys: list[str]) -> pl.Expr:
    return pl.all_horizontal([pl.col(k) == pl.col(k).shift(offset) for k in keys]).fill_null(False)


def deduplicate(frame: pl.DataFrame, spec: DatasetSpec, report: cleaning.CleaningReport) -> pl.DataFrame:
    keys = spec.key_columns
    value_cols = [c for c in frame.columns if c != cleaning.ROW_COLUMN]
    ordered = frame.sort(keys, maintain_order=True)
    flags = ordered.select(same_key_as(-1, keys).alias("next"), same_key_as(1, keys).alias("prev"))
    repeated = ordered.filter(flags["next"] | flags["prev"])
    exact = repeated.height - repeated.unique(subset=value_cols).height
    deduped = ordered.filter(~flags["next"])
    report.exact_duplicates_dropped = exact
    report.conflicting_duplicates_dropped = frame.height - deduped.height - exact
    return deduped


class _HashSink:
    """A file-like that hashes what polars writes: no IPC buffer and no getvalue() copy."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return len(data)

    def flush(self) -> None:
        pass


def content_hash(frame: pl.DataFrame) -> str:
    sink = _HashSink()
    frame.write_ipc(sink, compression="uncompressed")  # same bytes, same digest as today
    return sink.digest.hexdigest()[:16]


def merge_batches(batches: list[tuple[str, Any]], spec: DatasetSpec) -> tuple[pl.DataFrame, history.MergeReport]:
    """Batches concatenated in landing order + a stable sort: the latest batch's row is the
    last of each key run, so no order column and no unique() are needed."""
    report = history.MergeReport(batches=[key for key, _ in batches])
    if not batches:
        raise ValueError("no clean batches to merge: land a file and ingest it first")
    stacked = pl.concat([frame.lazy() for _, frame in batches], how="vertical_relaxed").collect()
    merged = stacked.sort(spec.key_columns, maintain_order=True).filter(~same_key_as(-1, spec.key_columns))
    report.rows_in = stacked.height
    del stacked
    report.rows_out = merged.height
    report.superseded_rows = report.rows_in - report.rows_out
    report.groups = merged.get_column(spec.group).n_unique() if spec.group else 1
    report.first_timestamp = str(merged.get_column(spec.timestamp).min())
    report.last_timestamp = str(merged.get_column(spec.timestamp).max())
    report.data_version = content_hash(merged)
    return merged, report


# ----------------------------------------------------------------------------------------
# 4. features: the grid with upsample (no hash join on (group, timestamp) and re-sort), and
#    the calendar from one time-zone conversion (today each of the 10 expressions converts
#    every timestamp to America/New_York again).


def complete_grid(frame: pl.DataFrame, spec: DatasetSpec) -> pl.DataFrame:
    ts = spec.timestamp
    if not spec.group:
        return frame.sort(ts).upsample(time_column=ts, every=spec.frequency)
    grid = frame.sort(spec.key_columns).upsample(time_column=ts, every=spec.frequency, group_by=spec.group, maintain_order=True)
    return grid.select(spec.group, ts, *[c for c in frame.columns if c not in spec.key_columns])


def calendar(grid: pl.DataFrame, spec: DatasetSpec) -> list[pl.Expr]:
    wall = grid.select(
        pl.col(spec.timestamp).dt.convert_time_zone(spec.timezone).dt.replace_time_zone(None).alias("__wall")
    )
    years = tuple(sorted(wall.get_column("__wall").dt.year().unique().drop_nulls().to_list()))
    holidays = pl.Series(sorted(features.holiday_set(spec.holidays_country, years)), dtype=pl.Date)
    w = pl.col("__wall")
    hour, doy = w.dt.hour().cast(pl.Float64), w.dt.ordinal_day().cast(pl.Float64)
    two_pi = 2 * 3.141592653589793
    cal = wall.select(
        w.dt.hour().cast(pl.Int8).alias("hour"),
        w.dt.weekday().cast(pl.Int8).alias("day_of_week"),
        w.dt.month().cast(pl.Int8).alias("month"),
        w.dt.ordinal_day().cast(pl.Int16).alias("day_of_year"),
        (w.dt.weekday() >= 6).cast(pl.Int8).alias("is_weekend"),
        w.dt.date().is_in(holidays.implode()).cast(pl.Int8).alias("is_holiday"),
        (hour * two_pi / 24).sin().alias("hour_sin"),
        (hour * two_pi / 24).cos().alias("hour_cos"),
        (doy * two_pi / 365.25).sin().alias("year_sin"),
        (doy * two_pi / 365.25).cos().alias("year_cos"),
    )
    return [pl.lit(cal.get_column(c)).alias(c) for c in cal.columns]


def apply() -> None:
    """Swap the prototypes into the core modules (this process only)."""
    ingest._parse_csv = parse_csv
    cleaning._cast_timestamp = cast_timestamp
    cleaning._deduplicate = deduplicate
    history.merge_batches = merge_batches
    history.content_hash = content_hash
    features.complete_grid = complete_grid
    features._calendar = calendar
