"""Cleaning one parsed batch: missing-value tokens, casts, UTC timestamps, range rules,
spikes, de-duplication.

Problems that make a batch untrustworthy raise `BatchError` (the batch is quarantined);
known feed defects that have a safe repair (negative readings, spikes, re-sent rows) are
repaired and counted in the `CleaningReport`, never silently. Missing readings (a null or a
token such as "NA") are counted, and refused only in a column whose spec says
`allow_missing: false`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from mlops_assets.core.ingest import ROW_COLUMN, BatchError
from mlops_assets.core.spec import ColumnSpec, DatasetSpec

_OFFSET = r"([+-]\d{2}:?\d{2})$"
_ZONED = r"(Z|[+-]\d{2}:?\d{2})$"
_DATE_TIME_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M")
MAX_REPORTED_ROWS = 1000
MOSTLY_MISSING_FRACTION = 0.5


@dataclass
class CleaningReport:
    rows_in: int = 0
    rows_out: int = 0
    exact_duplicates_dropped: int = 0
    conflicting_duplicates_dropped: int = 0
    out_of_range_nulled: dict[str, int] = field(default_factory=dict)
    spikes_nulled: int = 0
    out_of_order_rows: int = 0
    null_counts: dict[str, int] = field(default_factory=dict)
    missing_tokens: dict[str, int] = field(default_factory=dict)
    mostly_missing: dict[str, float] = field(default_factory=dict)
    missing_steps: int = 0
    largest_gap_hours: float = 0.0
    groups: int = 0
    extra_columns: list[str] = field(default_factory=list)
    first_timestamp: str | None = None
    last_timestamp: str | None = None

    @property
    def duplicates_dropped(self) -> int:
        return self.exact_duplicates_dropped + self.conflicting_duplicates_dropped

    def reconciles(self) -> bool:
        """Rows in = rows out + rows dropped with a reason."""
        return self.rows_in == self.rows_out + self.duplicates_dropped

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def clean_batch(frame: pl.DataFrame, spec: DatasetSpec, file: str) -> tuple[pl.DataFrame, CleaningReport]:
    """Turn a parsed batch (with `_row`) into typed, UTC, de-duplicated rows sorted by key."""
    report = CleaningReport(rows_in=frame.height)
    _require_columns(frame, spec, file)
    report.extra_columns = [c for c in frame.columns if c not in (*spec.required_columns, ROW_COLUMN)]
    frame = frame.select(*spec.required_columns, ROW_COLUMN)
    frame = _null_missing_tokens(frame, spec, report)
    frame = _cast_timestamp(frame, spec, file)
    frame = _cast_keys_and_categories(frame, spec, file)
    report.out_of_order_rows = _count_out_of_order(frame, spec)
    frame = _cast_numeric(frame, spec, file)
    _reject_missing(frame, spec, file)
    frame = _apply_ranges(frame, spec, file, report)
    frame = _null_spikes(frame, spec, report)
    frame = _deduplicate(frame, spec, report)
    _describe(frame, spec, report)
    return frame.drop(ROW_COLUMN), report


def _rows(frame: pl.DataFrame, mask: pl.Expr) -> list[int]:
    return frame.filter(mask).get_column(ROW_COLUMN).head(MAX_REPORTED_ROWS).to_list()


def _require_columns(frame: pl.DataFrame, spec: DatasetSpec, file: str) -> None:
    missing = [c for c in spec.required_columns if c not in frame.columns]
    if missing:
        raise BatchError(
            file,
            "missing_columns",
            f"required by dataset spec {spec.name!r}; the file has {frame.columns[:20]}",
            columns=missing,
        )


def _null_missing_tokens(frame: pl.DataFrame, spec: DatasetSpec, report: CleaningReport) -> pl.DataFrame:
    """Text equal to a missing-value token (after stripping; case-sensitive) becomes null, and
    so does a float NaN when "NaN" is a token (a Parquet writer's missing value). Group labels
    are names, never tokens ("NA" may be Namibia or North America)."""
    tokens = list(spec.missing_values)
    columns = [spec.timestamp, *[c.column for c in spec.value_columns], *spec.categorical_features]
    masks = {}
    for name in columns:
        dtype = frame.schema[name]
        if dtype == pl.String and tokens:
            masks[name] = pl.col(name).str.strip_chars().is_in(tokens).fill_null(False)
        elif dtype in (pl.Float32, pl.Float64) and "NaN" in tokens:
            masks[name] = pl.col(name).is_nan().fill_null(False)
    if not masks:
        return frame
    found = frame.select(m.sum().alias(c) for c, m in masks.items()).row(0, named=True)
    report.missing_tokens = {c: int(n) for c, n in found.items() if n}
    return frame.with_columns(
        pl.when(masks[c]).then(None).otherwise(pl.col(c)).alias(c) for c in report.missing_tokens
    )


def _reject_missing(frame: pl.DataFrame, spec: DatasetSpec, file: str) -> None:
    """A missing value (null or token) where the spec says `allow_missing: false`."""
    strict = [c.column for c in spec.value_columns if not c.allow_missing]
    refused = [c for c in strict if frame.get_column(c).null_count()]
    if refused:
        mask = pl.any_horizontal(pl.col(c).is_null() for c in refused)
        raise BatchError(
            file,
            "missing_values",
            f"missing values (empty or one of the tokens {list(spec.missing_values)}) in columns "
            "whose spec says allow_missing: false",
            rows=_rows(frame, mask),
            columns=refused,
        )


def _on_grid(spec: DatasetSpec) -> pl.Expr:
    """Whether `__ts` is on the data's grid, in the spec's local time: a whole number of steps
    after local midnight (polars truncates a zoned time on the local clock), so daily data
    sits at local midnights whatever the UTC offset of the day."""
    local = pl.col("__ts").dt.convert_time_zone(spec.timezone)
    return local.dt.truncate(spec.frequency).dt.convert_time_zone("UTC") == pl.col("__ts")


def _cast_timestamp(frame: pl.DataFrame, spec: DatasetSpec, file: str) -> pl.DataFrame:
    ts = spec.timestamp
    dtype = frame.schema[ts]
    if dtype == pl.String:
        zoned = pl.col(ts).str.strip_chars().str.contains(_ZONED).fill_null(False)
        parsed = _parse_text_column(frame.get_column(ts), spec)
    elif isinstance(dtype, pl.Datetime):
        zoned = pl.lit(dtype.time_zone is not None)
        col = pl.col(ts).dt.cast_time_unit("us")
        parsed = col.dt.convert_time_zone("UTC") if dtype.time_zone else localize(col, spec)
    else:
        raise BatchError(file, "wrong_type", f"timestamp column has type {dtype}, expected text or datetime", columns=[ts])
    out = frame.with_columns(parsed.alias("__ts"))
    bad = pl.col(ts).is_not_null() & pl.col("__ts").is_null()
    if out.select(bad.any()).item():
        _reject_nonexistent_local_times(out.filter(bad), spec, file)
        examples = out.filter(bad).get_column(ts).head(3).cast(pl.String).to_list()
        raise BatchError(
            file,
            "unparseable_timestamps",
            f"cannot read as timestamps (e.g. {examples}); use ISO-8601, with an offset or in {spec.timezone}",
            rows=_rows(out, bad),
            columns=[ts],
        )
    missing = pl.col(ts).is_null()
    if out.select(missing.any()).item():
        raise BatchError(file, "null_timestamps", "rows without a timestamp", rows=_rows(out, missing), columns=[ts])
    if _reject_mixed_offsets(out, spec, file, zoned):
        out = _resolve_ambiguous_local_times(out, spec, file)
    off_grid = ~_on_grid(spec)
    if out.select(off_grid.any()).item():
        raise BatchError(
            file,
            "off_grid_timestamps",
            f"timestamps are not on the {spec.frequency} grid (steps from local midnight in {spec.timezone})",
            rows=_rows(out, off_grid),
            columns=[ts],
        )
    return out.with_columns(pl.col("__ts").alias(ts)).drop("__ts")


def _reject_mixed_offsets(frame: pl.DataFrame, spec: DatasetSpec, file: str, zoned: pl.Expr) -> int:
    """Timestamps with a UTC offset and without one in the same file: the ones without would
    silently be read as local time, which is rarely what the exporter meant. Returns how
    many timestamps have no offset."""
    ts = spec.timestamp
    present = pl.col(ts).is_not_null()
    with_offset, without = frame.select((zoned & present).sum(), (~zoned & present).sum().alias("n")).row(0)
    if with_offset and without:
        raise BatchError(
            file,
            "mixed_timezones",
            f"{without} timestamps have no UTC offset while {with_offset} have one; without an offset a time is read as "
            f"{spec.timezone} wall-clock time, so mixing both is ambiguous: write every timestamp with its offset",
            rows=_rows(frame, present & ~zoned),
            columns=[ts],
        )
    return without


def _wall_clock(frame: pl.DataFrame, spec: DatasetSpec) -> pl.Expr:
    """The timestamp as written, as a naive wall-clock time (null where it has an offset or
    cannot be read)."""
    if frame.schema[spec.timestamp] != pl.String:
        return pl.col(spec.timestamp).dt.cast_time_unit("us")
    text = pl.col(spec.timestamp).str.strip_chars().str.replace(r"Z$", "+00:00")
    return pl.when(~text.str.contains(_OFFSET)).then(_naive_text(text, spec))


def _clock(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "?"


def _reject_nonexistent_local_times(bad: pl.DataFrame, spec: DatasetSpec, file: str) -> None:
    """Wall-clock times that do not exist in the spec's zone (skipped when the clocks spring
    forward) are named as such, not as unreadable text."""
    wall = _wall_clock(bad, spec)
    skipped = bad.with_columns(wall.alias("__wall")).filter(pl.col("__wall").is_not_null())
    if skipped.height == 0:
        return
    first = skipped.row(0, named=True)
    more = f" (and {skipped.height - 1} more)" if skipped.height > 1 else ""
    raise BatchError(
        file,
        "nonexistent_local_times",
        f"nonexistent local time {_clock(first['__wall'])} in {spec.timezone} (spring forward) at row {first[ROW_COLUMN]}, "
        f"column {spec.timestamp}{more}: the clocks skip that hour, so no instant has that time; write timestamps with "
        "their UTC offset, or check the exporter's time zone",
        rows=_rows(skipped, pl.lit(True)),
        columns=[spec.timestamp],
    )


def _resolve_ambiguous_local_times(out: pl.DataFrame, spec: DatasetSpec, file: str) -> pl.DataFrame:
    """Wall-clock times without an offset in the hour repeated when daylight saving ends name
    two instants. Hourly (or finer) data repeats that hour: when a time appears exactly twice
    for a group, the first row in the file is the first pass (daylight time) and the second
    the second pass (standard time), as a reader of the file would take them. A time that
    appears once (or more than twice) cannot be placed and rejects the batch, naming it; rows
    with an explicit offset are never ambiguous."""
    wall = _wall_clock(out, spec)
    earliest = pl.col("__wall").dt.replace_time_zone(spec.timezone, ambiguous="earliest", non_existent="null")
    latest = pl.col("__wall").dt.replace_time_zone(spec.timezone, ambiguous="latest", non_existent="null")
    ambiguous = (earliest != latest).fill_null(False)
    if spec.is_daily:  # a local midnight is the start of that day (localize)
        ambiguous = ambiguous & (pl.col("__wall") != pl.col("__wall").dt.truncate("1d"))
    marked = out.with_columns(wall.alias("__wall")).with_columns(ambiguous.alias("__amb"))
    if not marked.select(pl.col("__amb").any()).item():
        return out
    keys = [*([spec.group] if spec.group else []), "__wall"]
    order = pl.col(ROW_COLUMN).rank("ordinal").over([*keys, "__amb"]) - 1
    times = pl.len().over([*keys, "__amb"])
    marked = marked.with_columns(order.alias("__pass"), times.alias("__times"))
    unplaced = pl.col("__amb") & (pl.col("__times") != 2)
    if marked.select(unplaced.any()).item():
        _raise_ambiguous(marked.filter(unplaced).sort(ROW_COLUMN), spec, file)
    second = pl.col("__amb") & (pl.col("__pass") == 1)
    resolved = pl.when(second).then(latest.dt.convert_time_zone("UTC")).otherwise(pl.col("__ts"))
    return marked.with_columns(resolved.alias("__ts")).drop("__wall", "__amb", "__pass", "__times")


def _raise_ambiguous(unplaced: pl.DataFrame, spec: DatasetSpec, file: str) -> None:
    first = unplaced.row(0, named=True)
    whose = f" for {spec.group} {first[spec.group]!r}" if spec.group else ""
    more = f" (and {unplaced.height - 1} more)" if unplaced.height > 1 else ""
    raise BatchError(
        file,
        "ambiguous_local_times",
        f"ambiguous local time {_clock(first['__wall'])} in {spec.timezone} (fall back) at row {first[ROW_COLUMN]}, "
        f"column {spec.timestamp}{more}: the clocks repeat that hour, and the time appears {first['__times']} time(s){whose}, "
        "so it cannot be told which pass it is (two rows in order are read as the first and the second pass); "
        "write timestamps with their UTC offset",
        rows=_rows(unplaced, pl.lit(True)),
        columns=[spec.timestamp],
    )


def _count_out_of_order(frame: pl.DataFrame, spec: DatasetSpec) -> int:
    """Rows with a new key but an earlier time than a row above them in the same group. They
    are sorted into place (and counted); re-sent earlier keys are corrections, not counted."""
    ts = pl.col(spec.timestamp)
    over = [spec.group] if spec.group else None
    step_back = ts < ts.shift(1)
    step_back = step_back.over(over) if over else step_back
    if not frame.select(step_back.fill_null(False).any()).item():
        return 0  # in time order per group: the usual case, one cheap pass
    before = ts.cum_max().shift(1)
    before = before.over(over) if over else before
    new_key = pl.struct(spec.key_columns).is_first_distinct()
    return int(frame.select((new_key & (ts < before)).fill_null(False).sum()).item())


def _parse_text_column(values: pl.Series, spec: DatasetSpec) -> pl.Series:
    """The common layout (ISO-8601 with offset) in one pass; the full chain of formats only
    for the rows it could not read (pl.coalesce would run every format on every row)."""
    fast = values.str.strip_chars().str.strptime(pl.Datetime("us", "UTC"), "%Y-%m-%dT%H:%M:%S%z", strict=False)
    todo = fast.is_null() & values.is_not_null()
    if not todo.any():
        return fast
    idx = todo.arg_true()
    rest = values.gather(idx).to_frame().select(_parse_text_timestamps(pl.col(values.name), spec)).to_series()
    return fast.scatter(idx, rest)


def _parse_text_timestamps(column: pl.Expr, spec: DatasetSpec) -> pl.Expr:
    """ISO-8601 text: with an offset (or Z) it is exact; without one it is wall-clock time in
    the spec's zone. Formats are explicit so one bad value cannot change how others parse."""
    text = column.str.strip_chars().str.replace(r"Z$", "+00:00")
    has_offset = text.str.contains(_OFFSET)
    with_offset = pl.coalesce(
        pl.when(has_offset).then(text).str.strptime(pl.Datetime("us", "UTC"), f + "%z", strict=False)
        for f in _DATE_TIME_FORMATS
    )
    naive = pl.when(~has_offset).then(_naive_text(text, spec))
    return pl.coalesce(with_offset, localize(naive, spec))


def _naive_text(text: pl.Expr, spec: DatasetSpec) -> pl.Expr:
    """Text without an offset as a naive wall-clock time (the spec's format, else ISO-8601)."""
    formats = (spec.timestamp_format,) if spec.timestamp_format else (*_DATE_TIME_FORMATS, "%Y-%m-%d")
    return pl.coalesce(text.str.strptime(pl.Datetime("us"), f, strict=False) for f in formats)


def localize(naive: pl.Expr, spec: DatasetSpec) -> pl.Expr:
    """Wall-clock times of the spec's zone as UTC instants (a time skipped by a DST change is
    null). For daily data a midnight is the start of that local day, which is 01:00 where the
    clocks jump at midnight (America/Santiago on 2024-09-08)."""
    local = naive.dt.replace_time_zone(spec.timezone, ambiguous="earliest", non_existent="null")
    local = local.dt.convert_time_zone("UTC")
    if not spec.is_daily:
        return local
    return pl.when(naive == naive.dt.truncate("1d")).then(local_day_start(naive, spec.timezone)).otherwise(local)


def local_day_start(day: pl.Expr, zone: str) -> pl.Expr:
    """The first instant (UTC) of each local calendar day of `day` (a date or a naive datetime):
    found from local noon, which always exists, truncated to the day on the local clock."""
    noon = day.cast(pl.Date).cast(pl.Datetime("us")) + pl.duration(hours=12)
    return noon.dt.replace_time_zone(zone).dt.truncate("1d").dt.convert_time_zone("UTC")


def _cast_keys_and_categories(frame: pl.DataFrame, spec: DatasetSpec, file: str) -> pl.DataFrame:
    text_cols = [c for c in (spec.group, *spec.categorical_features) if c]
    frame = frame.with_columns(pl.col(c).cast(pl.String).str.strip_chars() for c in text_cols)
    if spec.group:
        missing = pl.col(spec.group).is_null() | (pl.col(spec.group) == "")
        if frame.select(missing.any()).item():
            raise BatchError(file, "null_group", "rows without a group", rows=_rows(frame, missing), columns=[spec.group])
    return frame


def _cast_numeric(frame: pl.DataFrame, spec: DatasetSpec, file: str) -> pl.DataFrame:
    columns = [c.column for c in spec.value_columns]
    casts = []
    for name in columns:
        dtype = frame.schema[name]
        if dtype == pl.String:
            casts.append(pl.col(name).str.strip_chars().cast(pl.Float64, strict=False).alias(name))
        elif dtype.is_numeric() or dtype == pl.Null:
            casts.append(pl.col(name).cast(pl.Float64).alias(name))
        else:
            raise BatchError(file, "wrong_type", f"column has type {dtype}, expected numbers", columns=[name])
    typed = frame.with_columns(casts)
    failed = [
        n for n in columns if typed.select((frame.get_column(n).is_not_null() & pl.col(n).is_null()).any()).item()
    ]
    if failed:
        mask = pl.any_horizontal(frame.get_column(n).is_not_null() & pl.col(n).is_null() for n in failed)
        examples = {n: frame.filter(typed.get_column(n).is_null() & frame.get_column(n).is_not_null()).get_column(n).head(3).to_list() for n in failed}
        raise BatchError(
            file, "wrong_type", f"values are not numbers: {examples}", rows=_rows(typed, mask), columns=failed
        )
    non_finite = [n for n in columns if typed.select(pl.col(n).is_not_null() & ~pl.col(n).is_finite()).to_series().any()]
    if non_finite:
        mask = pl.any_horizontal(pl.col(n).is_not_null() & ~pl.col(n).is_finite() for n in non_finite)
        raise BatchError(file, "non_finite", "NaN or infinite values", rows=_rows(typed, mask), columns=non_finite)
    if typed.get_column(spec.target.column).null_count() == typed.height:
        raise BatchError(file, "all_null_target", "the target has no values in this batch", columns=[spec.target.column])
    return typed


def _range_mask(col: ColumnSpec) -> pl.Expr | None:
    parts = []
    if col.min is not None:
        parts.append(pl.col(col.column) < col.min)
    if col.max is not None:
        parts.append(pl.col(col.column) > col.max)
    if not parts:
        return None
    return pl.any_horizontal(parts).fill_null(False)


def _apply_ranges(frame: pl.DataFrame, spec: DatasetSpec, file: str, report: CleaningReport) -> pl.DataFrame:
    rejected: list[str] = []
    reject_masks = []
    for col in spec.value_columns:
        mask = _range_mask(col)
        if mask is None:
            continue
        count = int(frame.select(mask.sum()).item())
        if not count:
            continue
        if col.on_out_of_range == "null":
            report.out_of_range_nulled[col.column] = count
            frame = frame.with_columns(pl.when(mask).then(None).otherwise(pl.col(col.column)).alias(col.column))
        else:
            rejected.append(col.column)
            reject_masks.append(mask)
    if rejected:
        ranges = {c.column: [c.min, c.max] for c in spec.value_columns if c.column in rejected}
        raise BatchError(
            file,
            "out_of_range",
            f"values outside the spec's ranges {ranges}",
            rows=_rows(frame, pl.any_horizontal(reject_masks)),
            columns=rejected,
        )
    return frame


def _null_spikes(frame: pl.DataFrame, spec: DatasetSpec, report: CleaningReport) -> pl.DataFrame:
    """Null target values more than `spike_mad_threshold` robust deviations from the group median."""
    if not spec.spike_mad_threshold:
        return frame
    y = pl.col(spec.target.column)
    over = [spec.group] if spec.group else None
    median = y.median().over(over) if over else y.median()
    mad = (y - median).abs().median()
    mad = mad.over(over) if over else mad
    score = (y - median).abs() / (1.4826 * mad)
    spike = (score > spec.spike_mad_threshold).fill_null(False) & (mad > 0)
    flagged = frame.select(spike.alias("spike")).get_column("spike")
    report.spikes_nulled = int(flagged.sum())
    if not report.spikes_nulled:
        return frame
    return frame.with_columns(pl.when(flagged).then(None).otherwise(y).alias(spec.target.column))


def same_key_as(offset: int, keys: list[str]) -> pl.Expr:
    """Whether the row `offset` rows away has the same key."""
    return pl.all_horizontal([pl.col(k) == pl.col(k).shift(offset) for k in keys]).fill_null(False)


def _deduplicate(frame: pl.DataFrame, spec: DatasetSpec, report: CleaningReport) -> pl.DataFrame:
    """Keep the last row per key: later rows in a file are corrections of earlier ones.
    A stable sort puts a key's rows in file order, so the last of each run wins."""
    keys = spec.key_columns
    value_cols = [c for c in frame.columns if c != ROW_COLUMN]
    ordered = frame.sort(keys, maintain_order=True)
    flags = ordered.select(same_key_as(-1, keys).alias("next"), same_key_as(1, keys).alias("prev"))
    repeated = ordered.filter(flags["next"] | flags["prev"])
    exact = repeated.height - repeated.unique(subset=value_cols).height
    deduped = ordered.filter(~flags["next"])
    report.exact_duplicates_dropped = exact
    report.conflicting_duplicates_dropped = frame.height - deduped.height - exact
    return deduped


def _describe(frame: pl.DataFrame, spec: DatasetSpec, report: CleaningReport) -> None:
    over = [spec.group] if spec.group else None
    gap = step_gaps(pl.col(spec.timestamp), spec)
    gap = gap.over(over) if over else gap
    gaps = frame.select(gap.alias("steps")).get_column("steps").drop_nulls()
    report.rows_out = frame.height
    report.missing_steps = int((gaps - 1).clip(lower_bound=0).sum()) if len(gaps) else 0
    report.largest_gap_hours = float(gaps.max() * spec.frequency_hours) if len(gaps) else 0.0
    report.groups = frame.get_column(spec.group).n_unique() if spec.group else 1
    report.null_counts = {c: n for c, n in zip(frame.columns, frame.null_count().row(0)) if n and c != ROW_COLUMN}
    report.mostly_missing = {
        c: round(n / frame.height, 4)
        for c, n in report.null_counts.items()
        if frame.height and n / frame.height > MOSTLY_MISSING_FRACTION
    }
    report.first_timestamp = str(frame.get_column(spec.timestamp).min())
    report.last_timestamp = str(frame.get_column(spec.timestamp).max())


def step_gaps(ts: pl.Expr, spec: DatasetSpec) -> pl.Expr:
    """Steps between consecutive timestamps: local calendar days for daily data (a day is 23
    or 25 hours at a DST change), else elapsed time over the step."""
    if spec.is_daily:
        return ts.dt.convert_time_zone(spec.timezone).dt.date().diff().dt.total_days()
    return (ts.diff().dt.total_microseconds() / (spec.frequency_delta.total_seconds() * 1e6)).round()
