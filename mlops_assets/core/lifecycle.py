"""The life cycle of groups: when each group started and last reported, whether it is retired
(no data for `retire_after` before the newest data), and its role in a time split.

A group's data is its rows with an observed target: a meter sending only empty readings has
stopped as far as forecasting is concerned. A retired group that reports again is active
again. A single series is one group labelled "all", always active."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from mlops_assets.core.spec import DatasetSpec, duration_label

SINGLE_SERIES_LABEL = "all"
ACTIVE, RETIRED = "active", "retired"
ROLES = ("established", "new", "retired")
LIFECYCLE_SCHEMA = {
    "group": pl.String, "first_timestamp": pl.Datetime("us", "UTC"), "last_timestamp": pl.Datetime("us", "UTC"),
    "rows": pl.Int64, "status": pl.String,
}  # fmt: skip


def group_lifecycle(history: pl.DataFrame | pl.LazyFrame, spec: DatasetSpec) -> pl.DataFrame:
    """One row per group: group (as text), first_timestamp, last_timestamp and rows (of its
    rows with an observed target; all its rows when it has none), and status: "retired" when
    its last data is more than `spec.retire_after_hours` before the newest data of any group,
    else "active". Sorted by group."""
    ts, y = pl.col(spec.timestamp), pl.col(spec.target.column)
    label = pl.col(spec.group).cast(pl.String) if spec.group else pl.lit(SINGLE_SERIES_LABEL)
    observed = y.is_not_null()
    table = (
        history.lazy()
        .group_by(label.alias("group"))
        .agg(
            ts.filter(observed).min().fill_null(ts.min()).alias("first_timestamp"),
            ts.filter(observed).max().fill_null(ts.max()).alias("last_timestamp"),
            observed.sum().cast(pl.Int64).alias("rows"),
        )
        .collect()
        .with_columns(
            pl.col("first_timestamp", "last_timestamp").dt.convert_time_zone("UTC").dt.cast_time_unit("us")
        )
    )
    if table.is_empty():
        return pl.DataFrame(schema=LIFECYCLE_SCHEMA)
    newest = table.get_column("last_timestamp").max()
    silent = pl.lit(newest) - pl.col("last_timestamp") > timedelta(hours=spec.retire_after_hours)
    status = pl.when(silent & pl.lit(spec.group is not None)).then(pl.lit(RETIRED)).otherwise(pl.lit(ACTIVE))
    return table.with_columns(status.alias("status")).sort("group").select(list(LIFECYCLE_SCHEMA))


def _train_rows(train: pl.DataFrame | pl.LazyFrame, spec: DatasetSpec) -> dict[str, int]:
    label = pl.col(spec.group).cast(pl.String) if spec.group else pl.lit(SINGLE_SERIES_LABEL)
    table = train.lazy().group_by(label.alias("group")).agg(pl.len().alias("rows")).collect()
    return dict(table.iter_rows())


def _groups(frame: pl.DataFrame | pl.LazyFrame, spec: DatasetSpec) -> set[str]:
    if not spec.group:
        return {SINGLE_SERIES_LABEL}
    return set(frame.lazy().select(pl.col(spec.group).cast(pl.String).unique()).collect().to_series().to_list())


def split_roles(
    train: pl.DataFrame | pl.LazyFrame, validation: pl.DataFrame | pl.LazyFrame, test: pl.DataFrame | pl.LazyFrame,
    lifecycle: pl.DataFrame, spec: DatasetSpec,
) -> dict[str, list[str]]:
    """Each group's role in a split, as sorted lists: "established" (active, with at least
    `min_rows_per_group` training rows: it must be in every split), "new" (active, too young
    to be in every split: listed, never failed) and "retired" (listed, never failed). Groups of
    the splits that the lifecycle does not know count as active."""
    retired = set(lifecycle.filter(pl.col("status") == RETIRED).get_column("group").to_list())
    known = set(lifecycle.get_column("group").to_list())
    in_splits = set().union(*(_groups(part, spec) for part in (train, validation, test)))
    trained = _train_rows(train, spec)
    active = (known | in_splits) - retired
    established = {g for g in active if trained.get(g, 0) >= spec.min_rows_per_group}
    return {"established": sorted(established), "new": sorted(active - established), "retired": sorted(retired)}


def group_roles(roles: dict[str, list[str]]) -> dict[str, str]:
    """group -> its role, for tables."""
    return {g: role for role in ROLES for g in roles.get(role, [])}


def retirement_text(row: dict, newest, spec: DatasetSpec) -> str:
    """Why a group is retired, in a sentence."""
    silent = (newest - row["last_timestamp"]).total_seconds() / 3600
    return (
        f"group {row['group']} has no data since {row['last_timestamp']:%Y-%m-%d %H:%M} UTC ({silent:.4g} h before the "
        f"newest data), more than preparation.retire_after ({duration_label(spec.retire_after_hours)}): retired. It is "
        "listed but no longer required in every split or by the bias gate; it becomes active again when its data returns."
    )
