"""Data checks on the prepared data. Blocking ones stop training on bad data."""

import dagster as dg
import polars as pl

from mlops_assets.core.features import feature_columns, lag_mismatches, lag_sources, values_after_cutoff
from mlops_assets.core.ingest import BatchError
from mlops_assets.core.lifecycle import group_lifecycle, group_roles, split_roles
from mlops_assets.core.spec import duration_label
from mlops_assets.core.splitting import split_is_time_ordered
from mlops_assets.defs.metadata import significant, table_metadata
from mlops_assets.resources.dataset import DatasetSpecResource

MOSTLY_NULL_FRACTION = 0.5


@dg.asset_check(asset="load_history", blocking=True, description="The merged history satisfies the spec's pandera schema: types, ranges, unique (group, timestamp).")
def history_matches_schema(load_history: pl.DataFrame, dataset: DatasetSpecResource) -> dg.AssetCheckResult:
    # pandera (and with it pandas) is imported here, not when the code location loads.
    from mlops_assets.core.schemas import validate_clean

    spec = dataset.load()
    try:
        validate_clean(load_history, spec, "load_history")
    except BatchError as error:
        return dg.AssetCheckResult(
            passed=False, description=str(error)[:2000],
            metadata={"columns": ", ".join(error.columns), "failing_columns": len(error.columns), "rows": load_history.height},
        )
    return dg.AssetCheckResult(
        passed=True, description=f"{load_history.height} rows match schema {spec.name}_clean",
        metadata={"rows": load_history.height, "failing_columns": 0},
    )


# The checks below scan their inputs (`pl.LazyFrame`) and read only the columns they test.
def _lag_inputs(features: pl.LazyFrame, load_history: pl.LazyFrame, spec) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The lag columns of `features` and the history columns they read, keys included."""
    sources = lag_sources(spec)
    columns = list(dict.fromkeys(source for source, _ in sources.values()))
    rows = features.select(*spec.key_columns, *sources).collect()
    return rows, load_history.select(*spec.key_columns, *columns).collect()


@dg.asset_check(
    asset="features",
    blocking=True,
    additional_ins={"load_history": dg.AssetIn("load_history")},
    description="Every lag (of the target and of observed-only features) equals the same group's value exactly "
    "that long earlier.",
)
def lags_stay_in_group(features: pl.LazyFrame, load_history: pl.LazyFrame, dataset: DatasetSpecResource) -> dg.AssetCheckResult:
    spec = dataset.load()
    rows, history = _lag_inputs(features, load_history, spec)
    mismatches = lag_mismatches(rows, history, spec)
    total = sum(mismatches.values())
    return dg.AssetCheckResult(
        passed=total == 0 and rows.height > 0,
        description=f"{total} lag values disagree with their group's history" if rows.height else "no feature rows",
        metadata={**{col: n for col, n in mismatches.items()}, "mismatched_values": total, "checked_rows": rows.height},
    )


@dg.asset_check(
    asset="features",
    blocking=True,
    additional_ins={"load_history": dg.AssetIn("load_history")},
    description="No value observed after t - horizon reaches a row at t: every target lag and every lag of an "
    "observed-only feature is accounted for by the history at or before t - horizon (joined independently); "
    "observed-only features are inputs only as such lags.",
)
def no_observed_value_after_cutoff(
    features: pl.LazyFrame, load_history: pl.LazyFrame, dataset: DatasetSpecResource
) -> dg.AssetCheckResult:
    spec = dataset.load()
    rows, history = _lag_inputs(features, load_history, spec)
    late = values_after_cutoff(rows, history, spec)
    total = sum(late.values())
    horizon = duration_label(spec.horizon_hours)
    columns = sum(1 for n in late.values() if n)
    text = f"{total} values in {columns} columns come from after t - {horizon}" if total else (
        f"all lag values come from t - {horizon} or earlier"
    )
    return dg.AssetCheckResult(
        passed=total == 0 and rows.height > 0,
        description=text if rows.height else "no feature rows",
        metadata={
            "values_after_cutoff": dg.MetadataValue.json(late), "checked_columns": len(late),
            "late_values": total, "checked_rows": rows.height,
        },
    )


@dg.asset_check(
    asset="features",
    description=f"Warns when a feature column is more than {MOSTLY_NULL_FRACTION:.0%} null, or a column whose spec "
    "says allow_missing: false has a null; lists the null fraction of every column.",
)
def feature_null_fraction(features: pl.LazyFrame, dataset: DatasetSpecResource) -> dg.AssetCheckResult:
    spec = dataset.load()
    columns = feature_columns(spec)
    counts = features.select(pl.len().alias("__rows"), *[pl.col(c).null_count() for c in columns]).collect().row(0, named=True)
    rows = counts.pop("__rows")
    fractions = {c: counts[c] / max(rows, 1) for c in columns}
    strict = {c.column for c in spec.numeric_features if not c.allow_missing}
    flagged = [c for c, f in fractions.items() if f > MOSTLY_NULL_FRACTION or (c in strict and f > 0)]
    listed = sorted(((c, f) for c, f in fractions.items() if f), key=lambda item: -item[1])
    text = "; ".join(f"{c}: {f:.2%} null" for c, f in listed[:20]) or "no nulls"
    head = f"{len(flagged)} columns mostly null or null where not allowed: {flagged}. " if flagged else ""
    return dg.AssetCheckResult(
        passed=not flagged and rows > 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=(head + text) if rows else "no feature rows",
        metadata={
            "null_fractions": dg.MetadataValue.json({c: significant(v) for c, v in fractions.items() if v}),
            "max_null_fraction": significant(max(fractions.values(), default=0.0)),
            "flagged_columns": len(flagged),
            "rows": rows,
        },
    )


@dg.asset_check(
    asset="test_set",
    blocking=True,
    additional_ins={"train_set": dg.AssetIn("train_set"), "validation_set": dg.AssetIn("validation_set")},
    description="Leakage rule: every train timestamp < every validation timestamp < every test timestamp.",
)
def split_is_time_ordered_check(
    test_set: pl.LazyFrame, train_set: pl.LazyFrame, validation_set: pl.LazyFrame, dataset: DatasetSpecResource
) -> dg.AssetCheckResult:
    spec = dataset.load()
    train, validation, test = (part.select(spec.timestamp).collect() for part in (train_set, validation_set, test_set))
    ok, text = split_is_time_ordered(train, validation, test, spec.timestamp)
    return dg.AssetCheckResult(
        passed=ok, description=text,
        metadata={"train_rows": train.height, "validation_rows": validation.height, "test_rows": test.height},
    )


@dg.asset_check(
    asset="test_set",
    blocking=True,
    additional_ins={
        "train_set": dg.AssetIn("train_set"), "validation_set": dg.AssetIn("validation_set"),
        "load_history": dg.AssetIn("load_history"),
    },
    description="Every established active group (at least `min_rows_per_group` training rows) has at least that "
    "many rows in each split. New groups (too young to be in every split) and retired groups (no data for the "
    "spec's `retire_after`) are listed, never failed.",
)
def groups_in_every_split(
    test_set: pl.LazyFrame, train_set: pl.LazyFrame, validation_set: pl.LazyFrame, load_history: pl.LazyFrame,
    dataset: DatasetSpecResource,
) -> dg.AssetCheckResult:
    spec = dataset.load()
    parts = {"train": train_set, "validation": validation_set, "test": test_set}
    if not spec.group:
        heights = [part.select(pl.len()).collect().item() for part in parts.values()]
        ok = min(heights) >= spec.min_rows_per_group
        return dg.AssetCheckResult(
            passed=ok, description="single series: rows per split " + str(heights),
            metadata={"min_rows_in_a_split": min(heights), "short_groups": 0 if ok else 1},
        )
    lifecycle = group_lifecycle(load_history.select(*spec.key_columns, spec.target.column), spec)
    roles = split_roles(train_set, validation_set, test_set, lifecycle, spec)
    table = _rows_per_split(parts, spec, lifecycle.get_column("group")).join(
        lifecycle.select("group", "last_timestamp", "status"), on="group", how="left"
    )
    table = table.with_columns(pl.col("group").replace_strict(group_roles(roles), default="new").alias("role"))
    short = table.filter((pl.col("role") == "established") & (pl.min_horizontal(*parts) < spec.min_rows_per_group))
    listed = (
        f"new groups (listed, not required): {roles['new']}; "
        f"retired groups (listed, not required): {roles['retired']}"
    )
    if short.height:
        names = short.get_column("group").to_list()
        text = f"established groups short of rows: {names} ({_why_short(short, spec)}); {listed}"
    else:
        text = f"all {len(roles['established'])} established groups present in every split; {listed}"
    return dg.AssetCheckResult(
        passed=short.height == 0,
        description=text,
        metadata={
            "rows_per_group": table_metadata(table.sort("group"), max_rows=200),
            "established_groups": len(roles["established"]),
            "short_groups": short.height,
            "new_groups": dg.MetadataValue.json(roles["new"]),
            "retired_groups": dg.MetadataValue.json(roles["retired"]),
        },
    )


def _rows_per_split(parts: dict[str, pl.LazyFrame], spec, known: pl.Series) -> pl.DataFrame:
    """Each group (as text) of the splits and of `known`, and its rows in each split (0 where absent)."""
    label = pl.col(spec.group).cast(pl.String).alias("group")
    counted = [part.group_by(label).agg(pl.len().alias(name)).collect() for name, part in parts.items()]
    groups = pl.concat([known.cast(pl.String).alias("group").to_frame(), *(c.select("group") for c in counted)])
    groups = groups.unique()
    for name, part in zip(parts, counted):
        groups = groups.join(part, on="group", how="left")
    return groups.with_columns(pl.col(*parts).fill_null(0).cast(pl.Int64))


def _why_short(short: pl.DataFrame, spec) -> str:
    """Each short group's counts and last data: a group that stopped is retired (and no longer
    required) after `retire_after` without data."""
    label = duration_label(spec.retire_after_hours)
    return "; ".join(
        f"{row['group']}: train {row['train']}, validation {row['validation']}, test {row['test']} rows, last data "
        f"{row['last_timestamp']}; a group without data for preparation.retire_after ({label}) is retired"
        for row in short.iter_rows(named=True)
    )
