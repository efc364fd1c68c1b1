"""Monitoring: per batch, the champion's predictions and a drift report against the
champion's own reference (stored with its version by `monitoring_reference`)."""

from collections.abc import Callable
from datetime import timedelta

import dagster as dg
import numpy as np
import polars as pl

from mlops_assets.defs.metadata import counts, significant, table_metadata
from mlops_assets.defs.monitoring.intervals import current_calibrator, read_state, record_batch
from mlops_assets.defs.monitoring.reference import load_model, load_reference, pandas_inputs
from mlops_assets.defs.partitions import batches
from mlops_assets.resources.alerts import Alert, AlertChannels
from mlops_assets.resources.dataset import DatasetSpecResource
from mlops_assets.resources.fairness import FairnessSettings
from mlops_assets.resources.monitoring import DriftSettings
from mlops_assets.resources.registry import CHAMPION
from mlops_assets.resources.tracking import MlflowTracking

PREDICTION = "prediction"
LOWER, UPPER = "prediction_lower", "prediction_upper"
SINGLE_SERIES = "single series: no groups to compare"
WAITING_FOR_HISTORY = "not scored: waiting for history"
EMPTY_BATCH = "not scored: the batch has no rows"
NEW_GROUP_ROWS = "not scored: only a group's first rows (no earlier history exists for their lags)"
# Each new batch once, after its clean data and the history passed their blocking checks.
per_batch_condition = dg.AutomationCondition.on_missing() & dg.AutomationCondition.all_deps_blocking_checks_passed()


def _champion(mlflow_tracking: MlflowTracking):
    """(version, pyfunc model) of the current champion. The alias is resolved on every call;
    the model of a given version never changes, so it is loaded once per process."""
    registry = mlflow_tracking.registry()
    version = registry.alias_version(CHAMPION)
    if version is None:
        raise dg.Failure("no champion model yet: run training_job (or `mlops-assets demo`) first")
    return version, load_model(mlflow_tracking.tracking_uri, registry.model_uri(version))


def latest_storage_id(instance: dg.DagsterInstance, asset: str, partition: str | None = None) -> int | None:
    """Storage id of the newest materialization of `asset` (of one partition, if given)."""
    wanted = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None)
    records = instance.fetch_materializations(wanted, limit=1).records
    return records[0].storage_id if records else None


def _batch_features(clean_load: pl.DataFrame, load_history: pl.LazyFrame, spec) -> pl.DataFrame:
    """Features of the batch's rows built on top of only the history window its lags need (so
    the cost does not grow with history); rows without the required history are left out."""
    from mlops_assets.core.features import batch_features, lookback_hours

    ts = pl.col(spec.timestamp)
    start = clean_load.get_column(spec.timestamp).min()
    lookback = timedelta(hours=lookback_hours(spec))
    window = load_history.filter((ts >= start - lookback) & (ts < start)) if start is not None else load_history.head(0)
    if spec.group:
        window = window.filter(pl.col(spec.group).is_in(clean_load.get_column(spec.group).unique().implode()))
    return batch_features(window.collect(), clean_load, spec)


def _rows_before_group_history(clean_load: pl.DataFrame, features: pl.DataFrame, load_history: pl.LazyFrame, spec) -> int:
    """Unscored rows whose required lag reaches back before their group's first row (in the
    history or the batch): no history can ever arrive for them (a group's first day), so they
    do not await it. Only the timestamp and group columns of the history are read."""
    from mlops_assets.core.features import required_lag_hours

    keys = clean_load.select(spec.key_columns)
    unscored = keys.join(features.select(spec.key_columns), on=spec.key_columns, how="anti")
    if unscored.height == 0:
        return 0
    ts = pl.col(spec.timestamp)
    by = [pl.col(spec.group).cast(pl.String).alias("__group")] if spec.group else [pl.lit("all").alias("__group")]
    firsts = [load_history.select(spec.key_columns).collect(), keys]
    seen = pl.concat([f.select(*by, ts.alias("__ts")) for f in firsts], how="vertical_relaxed")
    first = seen.group_by("__group").agg(pl.col("__ts").min().alias("__first"))
    lag = timedelta(hours=required_lag_hours(spec))
    rows = unscored.with_columns(*by).join(first, on="__group")
    return rows.filter(ts - lag < pl.col("__first")).height


def _known_groups(model, reference: Callable[[], object], spec) -> list[str] | None:
    """The groups the champion was trained on: its router's (core.pyfunc_model.known_groups),
    else its reference's training groups; None for a single series or when neither says."""
    from mlops_assets.core import pyfunc_model

    if not spec.group:
        return None
    routed = getattr(pyfunc_model, "known_groups", None)
    known = routed(model) if routed else None
    stored = reference() if known is None else None
    if stored is not None:
        known = stored.groups(spec.group) or None
    return None if known is None else [str(g) for g in known]


def _served_by(model, inputs, rows: int) -> np.ndarray:
    """"model" / "fallback" per row (core.pyfunc_model.served_by; all "model" without it)."""
    from mlops_assets.core import pyfunc_model

    route = getattr(pyfunc_model, "served_by", None)
    if rows == 0:
        return np.array([], dtype=str)
    return np.asarray(route(model, inputs), dtype=str) if route else np.full(rows, "model")


def _new_groups(frame: pl.DataFrame, known: list[str] | None, spec) -> list[str]:
    if known is None or not spec.group or frame.height == 0:
        return []
    labels = frame.get_column(spec.group).cast(pl.String).unique().to_list()
    return sorted(str(g) for g in labels if g is not None and g not in known)


def _alert_new_groups(context, groups: list[str], out: pl.DataFrame, spec, version: str, alerts: AlertChannels) -> None:
    """One WARN alert per new group, the first time any batch has it (`send_once`)."""
    for group in groups:
        rows = out.filter(pl.col(spec.group).cast(pl.String) == group)
        fallback = rows.filter(pl.col("served_by") == "fallback").height
        how = f"{rows.height} row(s) scored, {fallback} by the group-agnostic fallback" if rows.height else "no row scored yet (waiting for history)"
        alerts.send_once(
            Alert(
                kind="new_group", title=f"new group {group!r} (batch {context.partition_key})",
                reason=f"champion v{version} was not trained on group {group!r}: {how}; it joins training once it has the history its features need",
                asset="batch_predictions", partition=context.partition_key, severity="WARN", run_id=context.run_id,
            ),
            key=f"new_group:{group}",
        )


@dg.asset(
    group_name="monitoring",
    partitions_def=batches,
    kinds={"mlflow", "polars"},
    automation_condition=per_batch_condition,
    ins={"clean_load": dg.AssetIn(), "load_history": dg.AssetIn(metadata={"lazy": True})},
    # Predicted by the serving champion: on a fresh deployment, batches wait for the first one.
    deps=[dg.AssetKey("champion_model")],
)
def batch_predictions(context: dg.AssetExecutionContext, clean_load: pl.DataFrame, load_history: pl.LazyFrame, dataset: DatasetSpecResource, drift: DriftSettings, mlflow_tracking: MlflowTracking, alerts: AlertChannels):
    """The champion's forecast for every row of the batch whose required history (the shortest
    target lag) is present, with the actuals where the batch has them; the other rows await
    their history and are scored when it arrives (`rescore_sensor`), except rows whose lag
    reaches back before their group's first row (`rows_before_group_history`: a group's first
    day can never be scored). Per row: `prediction_lower` and `prediction_upper`, the
    champion's prediction interval as adapted by the labelled batches before this one
    (core/intervals.py; this batch's labels then move it), `served_by` ("model" or the
    group-agnostic "fallback") and `new_group` (a group the champion was not trained on; each
    new group is named here and in one WARN alert)."""
    from mlops_assets.core.metrics import regression_metrics
    from mlops_assets.core.pyfunc_model import predict_interval

    spec = dataset.load()
    history_id = latest_storage_id(context.instance, "load_history")
    features = _batch_features(clean_load, load_history, spec)
    version, model = _champion(mlflow_tracking)
    inputs = pandas_inputs(features, spec) if features.height else None
    calibrator = current_calibrator(drift, version, model)
    predictions, lower, upper = predict_interval(model, inputs, calibrator) if features.height else (np.zeros(0),) * 3
    known = _known_groups(model, lambda: load_reference(mlflow_tracking, version), spec)
    new = features.get_column(spec.group).cast(pl.String).is_in(known).not_() if known is not None else pl.repeat(False, features.height, eager=True)
    out = features.with_columns(
        pl.Series(PREDICTION, predictions, dtype=pl.Float64), pl.Series(LOWER, lower, dtype=pl.Float64),
        pl.Series(UPPER, upper, dtype=pl.Float64), pl.lit(version).alias("model_version"),
        pl.Series("served_by", _served_by(model, inputs, features.height), dtype=pl.String), new.alias("new_group"),
    )
    new_groups = _new_groups(clean_load, known, spec)
    _alert_new_groups(context, new_groups, out, spec, version, alerts)
    never = _rows_before_group_history(clean_load, features, load_history, spec)
    actual = pl.col(spec.target.column)
    labelled = out.filter(actual.is_not_null() & actual.cast(pl.Float64).is_not_nan())
    realized = regression_metrics(labelled.get_column(spec.target.column).to_numpy(), labelled.get_column(PREDICTION).to_numpy()) if labelled.height else {}
    coverage = _record_intervals(context, drift, version, model, labelled, spec)
    return dg.Output(
        out,
        metadata={
            "champion_version": version,
            "rows_in_batch": clean_load.height,
            "rows_scored": out.height,
            "rows_awaiting_history": clean_load.height - out.height - never,
            "rows_before_group_history": never,
            "rows_served_by_fallback": out.filter(pl.col("served_by") == "fallback").height,
            "new_groups": dg.MetadataValue.json(new_groups),
            "history_storage_id": history_id if history_id is not None else -1,
            "labelled_rows": labelled.height,
            **counts({f"realized_{k}": v for k, v in realized.items() if k != "n" and v == v}),
            "interval_level": calibrator.level if calibrator else "none",
            **counts({"realized_interval_coverage": coverage.get("coverage"), "realized_interval_width": coverage.get("mean_width")}),
        },
    )


def _record_intervals(context, drift: DriftSettings, version: str, model, labelled: pl.DataFrame, spec) -> dict:
    """Record the batch's labelled rows in the version's adapted interval; their realized
    coverage and width ({} without labelled rows or intervals)."""
    if labelled.height == 0:
        return {}
    y = labelled.get_column(spec.target.column).cast(pl.Float64).to_numpy()
    first = str(labelled.get_column(spec.timestamp).min())
    batches = record_batch(
        drift, version, model, context.partition_key, first, y, labelled.get_column(PREDICTION).to_numpy(),
        labelled.get_column(LOWER).to_numpy(), labelled.get_column(UPPER).to_numpy(), labelled,
    )
    return next((b for b in batches if b["batch"] == context.partition_key), {})


def _scoring(context: dg.AssetExecutionContext) -> dict:
    """The metadata batch_predictions recorded for this batch (rows in batch / scored / awaiting)."""
    wanted = dg.AssetRecordsFilter(asset_key=dg.AssetKey("batch_predictions"), asset_partitions=[context.partition_key])
    records = context.instance.fetch_materializations(wanted, limit=1).records
    if not records:
        return {}
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def _version(batch_predictions: pl.DataFrame, scoring: dict, mlflow_tracking: MlflowTracking) -> str:
    """The version that scored the batch (the current champion if none did)."""
    if batch_predictions.height:
        return str(batch_predictions.get_column("model_version")[0])
    return str(scoring.get("champion_version") or mlflow_tracking.registry().alias_version(CHAMPION) or "none")


@dg.asset(
    group_name="monitoring",
    partitions_def=batches,
    kinds={"polars"},
    automation_condition=per_batch_condition,
    ins={"batch_predictions": dg.AssetIn()},
    # Judged against the reference stored with the champion's version (never the current splits).
    deps=[dg.AssetKey("champion_model")],
)
def drift_report(context: dg.AssetExecutionContext, batch_predictions: pl.DataFrame, dataset: DatasetSpecResource, drift: DriftSettings, fairness: FairnessSettings, mlflow_tracking: MlflowTracking, alerts: AlertChannels):
    """Per batch, against the reference stored with the version that scored it (its training
    sample, profile, SHAP shares, recent test forecasts and MASE scales; whatever has been
    refreshed since): drift of every feature, drift per group, prediction drift, realized
    error where actuals are present, per-group bias on labelled rows, new groups, and the
    retrain verdict with root causes. A batch with no row scored (waiting for history), or a
    champion without a stored reference, gets a report that says so and triggers nothing."""
    from mlops_assets.core.drift import judge_batch

    spec, config = dataset.load(), drift.config()
    scoring = _scoring(context)
    version = _version(batch_predictions, scoring, mlflow_tracking)
    scored = batch_predictions.filter(pl.col(PREDICTION).is_not_null() & pl.col(PREDICTION).is_not_nan())
    if scored.height == 0:
        why = WAITING_FOR_HISTORY if scoring.get("rows_awaiting_history") else NEW_GROUP_ROWS if scoring.get("rows_before_group_history") else EMPTY_BATCH
        return _not_judged(context.partition_key, version, scoring, why)
    reference = load_reference(mlflow_tracking, version)
    if reference is None:
        why = f"no reference stored with champion v{version} (registered before monitoring references): retrain to record one"
        return _not_judged(context.partition_key, version, scoring, why, scored.height)
    verdict = judge_batch(scored, reference, spec, config)
    scored_new = scored.filter(pl.col("new_group")).get_column(spec.group).cast(pl.String).to_list() if spec.group else []
    new_groups = sorted({*scored_new, *(scoring.get("new_groups") or [])})
    by_group = _group_drift(scored, reference.train_sample, spec, verdict["top_features"], spec.quantile_bins)
    bias = _batch_bias(context, scored, spec, config, fairness, alerts, reference.scales, new_groups)
    used = {**verdict["reference"], **reference.describe(spec.timestamp)}
    intervals = _interval_status(context.partition_key, scored, spec, drift, version)
    if intervals.get("shortfall"):
        verdict = {**verdict, "retrain": True, "reasons": [*verdict["reasons"], intervals["shortfall"]]}
    report = {
        "batch": context.partition_key, "status": "scored", "champion_version": version,
        "rows_in_batch": scoring.get("rows_in_batch", scored.height), "rows_scored": scored.height,
        "rows_awaiting_history": scoring.get("rows_awaiting_history", 0), "new_groups": new_groups,
        "features": verdict["features"], "prediction_drift": verdict["prediction_drift"], "realized": verdict["realized"],
        "realized_mae": verdict["realized"].get("mae"), "reference_mae": verdict["realized"].get("reference_mae"),
        "by_group": by_group, "by_group_skipped": None if spec.group else SINGLE_SERIES, "bias": bias, "reference": used,
        "intervals": intervals,
        **{k: verdict[k] for k in ("retrain", "reasons", "weighted_drift", "weighted_drift_threshold", "top_features", "root_causes")},
    }
    return dg.Output(report, metadata=_report_metadata(report, verdict))


def _interval_status(batch: str, scored: pl.DataFrame, spec, drift: DriftSettings, version: str) -> dict:
    """Realized coverage and mean width of the batch's intervals on its labelled rows, and a
    retrain reason when coverage fell short in each of the last few labelled batches (as
    recorded by batch_predictions, up to this one)."""
    from mlops_assets.core.intervals import batch_coverage, sustained_shortfall

    if LOWER not in scored.columns:
        return {"rows": 0, "coverage": None, "mean_width": None, "level": None, "shortfall": None}
    actual = scored.get_column(spec.target.column).cast(pl.Float64).to_numpy()
    realized = batch_coverage(actual, scored.get_column(LOWER).to_numpy(), scored.get_column(UPPER).to_numpy())
    state = read_state(drift, version) or {}
    recorded = state.get("batches", [])
    mine = next((b for b in recorded if b["batch"] == batch), None)
    upto = recorded[: recorded.index(mine) + 1] if mine else recorded
    level = state.get("level")
    shortfall = sustained_shortfall(upto, level, drift.coverage_tolerance, drift.coverage_shortfall_batches) if level else None
    return {**realized, "level": level, "shortfall": shortfall}


# What each column of drift_report's `features` table means (shown in the UI's table header).
FEATURE_TABLE_DESCRIPTIONS = {
    "feature": "Feature column of the batch, compared with the champion's reference.",
    "verdict": "DRIFTED when the feature alone passes its calibrated threshold, else ok.",
    "score": "The feature's drift score (numeric: the capped Wasserstein distance; categorical: Jensen-Shannon).",
    "importance": "The feature's share of the champion's mean |SHAP|: how much its drift weighs.",
    "root_cause_rank": "Rank among the likely root causes (drifted first, then drift x importance); empty if not ranked.",
    "psi": "Population stability index against the reference (numeric features).",
    "ks": "Kolmogorov-Smirnov statistic against the reference (numeric features).",
    "ks_pvalue": "p-value of the Kolmogorov-Smirnov test.",
    "wasserstein": "Wasserstein distance to the reference, on standardised values (numeric features).",
    "js": "Jensen-Shannon distance to the reference (categorical features).",
    "chi2_pvalue": "p-value of the chi-squared test (categorical features).",
}


def _feature_table(rows: list[dict], root_causes: list[dict]) -> pl.DataFrame:
    """One row per judged feature: verdict, score, importance, root-cause rank and each
    statistic (a statistic no feature has is left out); drifted features first, then by score."""
    ranks = {c["feature"]: (i + 1, c.get("importance")) for i, c in enumerate(root_causes)}
    columns = [c for c in ("psi", "ks", "ks_pvalue", "wasserstein", "js", "chi2_pvalue") if any(r.get(c) is not None for r in rows)]
    records = [
        {
            "feature": r["feature"], "verdict": "DRIFTED" if r["drifted"] else "ok", "score": r.get("score"),
            "importance": ranks.get(r["feature"], (None, None))[1], "root_cause_rank": ranks.get(r["feature"], (None, None))[0],
            **{c: r.get(c) for c in columns},
        }
        for r in sorted(rows, key=lambda r: (not r["drifted"], -(r.get("score") or 0.0)))
    ]
    schema = {"feature": pl.String, "verdict": pl.String, "score": pl.Float64, "importance": pl.Float64, "root_cause_rank": pl.Int64}
    return pl.DataFrame(records, schema={**schema, **{c: pl.Float64 for c in columns}})


def _reference_text(used: dict) -> str:
    """The reference the batch was judged against, in one line."""
    text = f"{used.get('kind')}: {int(used.get('rows') or 0)} rows {used.get('from')} .. {used.get('to')}"
    return text + f"; recent test rows: {used.get('recent_rows')} ({used.get('recent_from')} .. {used.get('recent_to')})"


def _report_metadata(report: dict, verdict: dict) -> dict:
    """A few headline numbers (rounded) and one table of per-feature verdicts; the per-group
    drift as a second table. Every figure is also in the stored report."""
    rows, used = verdict["features"], report["reference"]
    drifted = sum(1 for r in rows if r["drifted"])
    metadata = {
        "retrain": bool(report["retrain"]),
        "retrain_flag": int(bool(report["retrain"])),
        "reasons": "; ".join(report["reasons"]) or "no retrain trigger",
        "drifted_features": drifted,
        "features_checked": len(rows),
        "weighted_drift": significant(report["weighted_drift"]),
        "rows_scored": report["rows_scored"],
        "rows_awaiting_history": report["rows_awaiting_history"],
        "new_groups": dg.MetadataValue.json(report["new_groups"]),
        "champion_version": report["champion_version"],
        "reference_version": used["version"],
        "reference": _reference_text(used),
        "features": table_metadata(_feature_table(rows, report["root_causes"]), max_rows=200, descriptions=FEATURE_TABLE_DESCRIPTIONS),
    }
    if report["weighted_drift_threshold"] is not None:
        metadata["weighted_drift_threshold"] = significant(report["weighted_drift_threshold"])
    if report["prediction_drift"].get("psi") is not None:
        metadata["prediction_drift_psi"] = significant(report["prediction_drift"]["psi"])
    for key in ("realized_mae", "reference_mae"):
        if report[key] is not None:
            metadata[key] = significant(report[key])
    intervals = report.get("intervals") or {}
    if intervals.get("coverage") is not None:
        metadata.update(realized_interval_coverage=significant(intervals["coverage"]), realized_interval_width=significant(intervals["mean_width"]))
        metadata["interval_level"] = intervals["level"] if intervals["level"] is not None else "none"
    if report["by_group"]:
        metadata["by_group"] = table_metadata(pl.DataFrame(report["by_group"], infer_schema_length=None), max_rows=200)
    if report["bias"] is not None:
        metadata["bias_flagged_groups"] = dg.MetadataValue.json(report["bias"]["flagged"])
    return metadata


def _not_judged(batch: str, version: str, scoring: dict, why: str, scored: int = 0) -> dg.Output:
    """The report of a batch that could not be judged (no row scored yet, or no reference for
    the champion): no drift figures and no retrain request."""
    status = why if why.startswith("not scored") else "no reference"
    report = {
        "batch": batch, "status": status, "champion_version": version, "rows_in_batch": scoring.get("rows_in_batch", 0),
        "rows_scored": scored, "rows_awaiting_history": scoring.get("rows_awaiting_history", 0),
        "new_groups": list(scoring.get("new_groups") or []), "features": [], "prediction_drift": {}, "realized": None,
        "realized_mae": None, "reference_mae": None, "by_group": [], "by_group_skipped": why, "bias": None,
        "reference": None, "intervals": {}, "retrain": False, "reasons": [why], "weighted_drift": 0.0, "weighted_drift_threshold": None,
        "top_features": [], "root_causes": [],
    }
    metadata = {
        "retrain": False, "retrain_flag": 0, "reasons": why, "status": status, "rows_in_batch": report["rows_in_batch"],
        "rows_scored": scored, "rows_awaiting_history": report["rows_awaiting_history"], "champion_version": version,
        "new_groups": dg.MetadataValue.json(report["new_groups"]),
    }
    return dg.Output(report, metadata=metadata)


def _batch_bias(
    context, scored: pl.DataFrame, spec, config, fairness: FairnessSettings, alerts: AlertChannels, scales: dict, new_groups: list[str]
) -> dict | None:
    """Per-group bias on the batch's labelled rows, scaled by the champion's own MASE scales
    (None for a single series or too few rows; new groups are listed, not judged); a crossed
    bias rule is sent as an alert."""
    from mlops_assets.core.fairness import bias_report as build_bias_report

    target = pl.col(spec.target.column)
    labelled = scored.filter(target.is_not_null() & target.cast(pl.Float64).is_not_nan())
    if not spec.group or labelled.height < config.min_rows:
        return None
    y, p = labelled.get_column(spec.target.column).to_numpy(), labelled.get_column(PREDICTION).to_numpy()
    roles = {"established": [], "new": new_groups, "retired": []} if new_groups else None
    groups = labelled.get_column(spec.group).cast(pl.String).to_numpy()
    bias = build_bias_report(y, p, groups, fairness.config(), roles, scales=(scales or {}).get("by_group") or None)
    if bias["biased"]:
        alerts.send(Alert(
            kind="bias_drift", title=f"bias rule crossed on batch {context.partition_key}", reason="; ".join(bias["reasons"]),
            asset="drift_report", partition=context.partition_key, severity="WARN", run_id=context.run_id,
        ))
    return bias


def _values(frame: pl.DataFrame, column: str) -> np.ndarray:
    series = frame.get_column(column)
    return series.cast(pl.String).to_numpy() if series.dtype == pl.String else series.cast(pl.Float64).to_numpy()


def _group_drift(current: pl.DataFrame, reference: pl.DataFrame, spec, features: list[str], bins: int) -> list[dict]:
    """PSI of the top features per group, each group against its own rows of the champion's
    training sample (a feature without values on either side is left out of that group's row;
    a new group has none)."""
    from mlops_assets.core.drift import psi
    from mlops_assets.core.profile import bin_fractions, quantile_bin_edges

    if not spec.group:
        return []
    out = []
    for group in sorted(current.get_column(spec.group).cast(pl.String).unique().to_list()):
        ref = reference.filter(pl.col(spec.group).cast(pl.String) == group)
        cur = current.filter(pl.col(spec.group).cast(pl.String) == group)
        row = {"group": group, "rows": cur.height, "new_group": ref.height == 0}
        for feature in features:
            if feature not in cur.columns or feature not in ref.columns or cur.schema[feature] == pl.String:
                continue
            values, now = _values(ref, feature), _values(cur, feature)
            values, now = values[np.isfinite(values)], now[np.isfinite(now)]
            if values.size and now.size:
                edges = quantile_bin_edges(values, bins)
                row[f"psi/{feature}"] = psi(bin_fractions(values, edges), now, edges)
        out.append(row)
    return out
