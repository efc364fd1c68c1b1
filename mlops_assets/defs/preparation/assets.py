"""Preparation: history, features, time-ordered splits and the training-data profile."""

from datetime import timedelta

import dagster as dg
import polars as pl

from mlops_assets.core.features import (
    BASELINE_COLUMNS, build_features, categorical_columns, feature_columns, required_feature_columns,
)
from mlops_assets.core.history import content_hash, merge_batches
from mlops_assets.core.lifecycle import RETIRED, group_lifecycle, retirement_text
from mlops_assets.core.profile import build_profile, profile_table
from mlops_assets.core.splitting import time_split
from mlops_assets.defs.metadata import counts, table_metadata
from mlops_assets.defs.partitions import BATCHES
from mlops_assets.resources.alerts import Alert, AlertChannels
from mlops_assets.resources.dataset import DatasetSpecResource

# Eager, but not blocked forever by a quarantined batch (those partitions stay missing on
# purpose). The chain runs as one run, where blocking checks already stop downstream steps.
history_condition = dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())
prepared_condition = dg.AutomationCondition.eager()


@dg.asset(
    group_name="preparation",
    kinds={"polars", "parquet"},
    automation_condition=history_condition,
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26), warn_window=timedelta(hours=2)),
    ins={"clean_load": dg.AssetIn(metadata={"allow_missing_partitions": True, "lazy": True})},
)
def load_history(
    context: dg.AssetExecutionContext,
    clean_load: dict[str, pl.LazyFrame],
    dataset: DatasetSpecResource,
    alerts: AlertChannels,
):
    """All clean batches merged in landing order, de-duplicated on (group, timestamp) with the
    latest batch winning. Its data version is a hash of its content. Shows each group's life
    cycle (first and last data, rows, active or retired); a group without data for the spec's
    `retire_after` is retired with one WARN alert, and is active again when its data returns."""
    spec = dataset.load()
    order = {key: i for i, key in enumerate(context.instance.get_dynamic_partitions(BATCHES))}
    ordered = sorted(clean_load.items(), key=lambda item: order.get(item[0], len(order)))
    frame, report = merge_batches(ordered, spec)
    skipped = [key for key in order if key not in clean_load]
    lifecycle = group_lifecycle(frame, spec)
    retired = lifecycle.filter(pl.col("status") == RETIRED).get_column("group").to_list()
    _alert_retired(context, lifecycle, spec, alerts)
    return dg.Output(
        frame,
        data_version=dg.DataVersion(report.data_version),
        metadata={
            **counts(report.to_dict()),
            "batches": len(report.batches),
            "batches_not_included": dg.MetadataValue.json(skipped),
            "first_timestamp": report.first_timestamp,
            "last_timestamp": report.last_timestamp,
            "data_version": report.data_version,
            "groups_active": lifecycle.height - len(retired),
            "groups_retired": len(retired),
            "retired_groups": dg.MetadataValue.json(retired),
            "group_lifecycle": table_metadata(lifecycle, max_rows=200),
        },
    )


def _alert_retired(context: dg.AssetExecutionContext, lifecycle: pl.DataFrame, spec, alerts: AlertChannels) -> None:
    """One WARN alert per retirement: the key names the group and its last data, so a group that
    returns and stops again is alerted again, and re-materializing is not."""
    if lifecycle.is_empty():
        return
    newest = lifecycle.get_column("last_timestamp").max()
    for row in lifecycle.filter(pl.col("status") == RETIRED).iter_rows(named=True):
        reason = retirement_text(row, newest, spec)
        sent = alerts.send_once(
            Alert(
                kind="group_retired", title=f"group {row['group']} retired", reason=reason, asset="load_history",
                severity="WARN", run_id=context.run_id,
                extra={"group": row["group"], "last_timestamp": row["last_timestamp"].isoformat()},
            ),
            key=f"retired_group:{row['group']}:{row['last_timestamp'].isoformat()}",
        )
        if sent is not None:
            context.log.warning(reason)


@dg.asset(group_name="preparation", kinds={"polars", "parquet"}, automation_condition=prepared_condition)
def features(context: dg.AssetExecutionContext, load_history: pl.DataFrame, dataset: DatasetSpecResource):
    """Calendar (local time at the data's resolution, holidays), known features, and per-group
    lag and rolling features of the target and of observed-only features. Lags are at least the
    forecast horizon (day-ahead safe) and never cross groups. A row is kept once its shortest
    target lag is present: a new group joins after one lag of history, with its longer lags
    null. Missing feature values stay null; the baselines (target a week and a day earlier)
    ride along, not as model inputs."""
    spec = dataset.load()
    frame, report = build_features(load_history, spec)
    return dg.Output(
        frame,
        data_version=dg.DataVersion(content_hash(frame)),
        metadata={
            **counts(report.to_dict()),
            "feature_columns": dg.MetadataValue.json(feature_columns(spec)),
            "baseline_columns": dg.MetadataValue.json(list(BASELINE_COLUMNS)),
            "feature_null_counts": dg.MetadataValue.json(report.feature_null_counts),
            "frequency": spec.frequency,
            "horizon_hours": spec.horizon_hours,
            "lags_hours": dg.MetadataValue.json(list(spec.lags_hours)),
            "required_feature_columns": dg.MetadataValue.json(required_feature_columns(spec)),
        },
    )


@dg.multi_asset(
    group_name="preparation",
    outs={
        name: dg.AssetOut(kinds={"polars", "parquet"}, description=text, automation_condition=prepared_condition)
        for name, text in (
            ("train_set", "Oldest share of the timestamps, for fitting."),
            ("validation_set", "The next share, for model selection and early stopping."),
            ("test_set", "The newest share, scored once per model."),
        )
    },
)
def splits(context: dg.AssetExecutionContext, features: pl.DataFrame, dataset: DatasetSpecResource):
    """Time-ordered split on shared timestamps: every group has the same boundaries and no
    row of a later period is used to fit a model scored on an earlier one."""
    spec = dataset.load()
    train, validation, test, bounds = time_split(features, spec)
    boundaries = bounds.as_dict()
    for name, part in (("train_set", train), ("validation_set", validation), ("test_set", test)):
        yield dg.Output(
            part,
            output_name=name,
            data_version=dg.DataVersion(content_hash(part)),
            metadata={
                "boundaries": dg.MetadataValue.json(boundaries),
                "first_timestamp": str(part.get_column(spec.timestamp).min()),
                "last_timestamp": str(part.get_column(spec.timestamp).max()),
                "share_of_rows": round(part.height / max(features.height, 1), 4),
            },
        )


@dg.asset(group_name="preparation", kinds={"polars", "json"}, automation_condition=prepared_condition)
def data_profile(context: dg.AssetExecutionContext, train_set: pl.DataFrame, dataset: DatasetSpecResource) -> dg.Output:
    """Reference statistics, quantile bins and inferred schema of the training data: the
    baseline that drift and serving checks compare new data with."""
    spec = dataset.load()
    categorical = categorical_columns(spec)
    numeric = [c for c in [*feature_columns(spec), spec.target.column] if c not in categorical]
    profile = build_profile(
        train_set, numeric=numeric, categorical=categorical, bins=spec.quantile_bins, group=spec.group, timestamp=spec.timestamp
    )
    return dg.Output(
        profile,
        metadata={
            "rows": profile["rows"],
            "columns_profiled": len(profile["columns"]),
            "time_range": dg.MetadataValue.json(profile["time_range"]),
            "profile": table_metadata(profile_table(profile)),
        },
    )
