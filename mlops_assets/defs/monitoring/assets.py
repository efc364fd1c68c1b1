"""Monitoring: per batch, the champion's predictions and a drift report against the training data."""

import functools
from datetime import timedelta

import dagster as dg
import numpy as np
import polars as pl

from mlops_assets.defs.metadata import counts, markdown_table
from mlops_assets.defs.partitions import batches
from mlops_assets.resources.alerts import Alert, AlertChannels
from mlops_assets.resources.dataset import DatasetSpecResource
from mlops_assets.resources.fairness import FairnessSettings
from mlops_assets.resources.monitoring import DriftSettings
from mlops_assets.resources.registry import CHAMPION
from mlops_assets.resources.tracking import MlflowTracking

PREDICTION = "prediction"
# Each new batch once, after its clean data and the history passed their blocking checks.
per_batch_condition = dg.AutomationCondition.on_missing() & dg.AutomationCondition.all_deps_blocking_checks_passed()


def _champion(mlflow_tracking: MlflowTracking):
    """(version, pyfunc model) of the current champion. The alias is resolved on every call;
    the model of a given version never changes, so it is loaded once per process (both
    monitoring steps of a run share it when they run in one process)."""
    registry = mlflow_tracking.registry()
    version = registry.alias_version(CHAMPION)
    if version is None:
        raise dg.Failure("no champion model yet: run training_job (or `mlops-assets demo`) first")
    return version, _load_model(mlflow_tracking.tracking_uri, registry.model_uri(version))


@functools.lru_cache(maxsize=2)
def _load_model(tracking_uri: str, model_uri: str):
    """The pyfunc model at a version URI; `tracking_uri` (the process-wide store MlflowTracking
    set up) is part of the cache key, so two stores never share an entry."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(model_uri)


def _pandas_inputs(frame: pl.DataFrame, spec):
    from mlops_assets.core.models.data import input_columns

    pdf = frame.select(input_columns(spec)).to_pandas()
    pdf[spec.timestamp] = pdf[spec.timestamp].dt.tz_convert("UTC").dt.tz_localize(None)
    return pdf


@dg.asset(
    group_name="monitoring",
    partitions_def=batches,
    kinds={"mlflow", "polars"},
    automation_condition=per_batch_condition,
    ins={"clean_load": dg.AssetIn(), "load_history": dg.AssetIn(metadata={"lazy": True})},
    # Predicted by the serving champion: on a fresh deployment, batches wait for the first one.
    deps=[dg.AssetKey("champion_model")],
)
def batch_predictions(context: dg.AssetExecutionContext, clean_load: pl.DataFrame, load_history: pl.LazyFrame, dataset: DatasetSpecResource, mlflow_tracking: MlflowTracking):
    """The champion's forecast for every row of the batch (features built from the batch on
    top of only the history window its lags need, so the cost does not grow with history),
    with the actuals where the batch has them."""
    from mlops_assets.core.features import batch_features, lookback_hours
    from mlops_assets.core.metrics import regression_metrics

    spec = dataset.load()
    ts = pl.col(spec.timestamp)
    start = clean_load.get_column(spec.timestamp).min()
    lookback = timedelta(hours=lookback_hours(spec))
    window = load_history.filter((ts >= start - lookback) & (ts < start)) if start is not None else load_history.head(0)
    if spec.group:
        window = window.filter(pl.col(spec.group).is_in(clean_load.get_column(spec.group).unique().implode()))
    features = batch_features(window.collect(), clean_load, spec)
    version, model = _champion(mlflow_tracking)
    predictions = np.asarray(model.predict(_pandas_inputs(features, spec)), float) if features.height else np.zeros(0)
    out = features.with_columns(pl.Series(PREDICTION, predictions), pl.lit(version).alias("model_version"))
    actual = pl.col(spec.target.column)
    labelled = out.filter(actual.is_not_null() & actual.cast(pl.Float64).is_not_nan())
    realized = regression_metrics(labelled.get_column(spec.target.column).to_numpy(), labelled.get_column(PREDICTION).to_numpy()) if labelled.height else {}
    return dg.Output(
        out,
        metadata={
            "champion_version": version,
            "rows_in_batch": clean_load.height,
            "rows_scored": out.height,
            "rows_without_full_history": clean_load.height - out.height,
            "labelled_rows": labelled.height,
            **counts({f"realized_{k}": v for k, v in realized.items() if k != "n" and v == v}),
        },
    )


@dg.asset(
    group_name="monitoring",
    partitions_def=batches,
    kinds={"polars"},
    automation_condition=per_batch_condition,
    ins={
        "batch_predictions": dg.AssetIn(),
        "train_set": dg.AssetIn(metadata={"lazy": True}),
        "test_set": dg.AssetIn(metadata={"lazy": True}),
        "data_profile": dg.AssetIn(),
        "shap_summary": dg.AssetIn(),
    },
)
def drift_report(context: dg.AssetExecutionContext, batch_predictions: pl.DataFrame, train_set: pl.LazyFrame, test_set: pl.LazyFrame, data_profile: dict, shap_summary: dict, dataset: DatasetSpecResource, drift: DriftSettings, fairness: FairnessSettings, mlflow_tracking: MlflowTracking, alerts: AlertChannels):
    """Per batch: drift of every feature against the training data (KS, normalised
    Wasserstein, PSI on the profile's bins; Jensen-Shannon for categories), drift per group,
    prediction drift against the champion's test predictions, realized error where actuals
    are present, per-group bias on labelled rows, and the retrain verdict with root causes.

    The cost does not grow with the history: the training reference is an evenly spaced sample
    of at most `reference_rows` rows (only the profiled columns are read), and the champion's
    reference predictions and test error come from the newest `prediction_reference_days` of
    the test set."""
    from mlops_assets.core.drift import feature_drift, retrain_verdict
    from mlops_assets.core.features import CALENDAR_COLUMNS

    spec, config = dataset.load(), drift.config()
    version, model = _champion(mlflow_tracking)
    scored = batch_predictions.filter(pl.col(PREDICTION).is_not_null() & pl.col(PREDICTION).is_not_nan())
    if scored.height == 0:
        return _nothing_to_judge(context.partition_key, version, batch_predictions.height)
    test_set = _newest_days(test_set, spec.timestamp, drift.prediction_reference_days)
    # Calendar columns are functions of the clock: a batch of two days always "drifts" in them.
    columns = [c for c in data_profile["columns"] if c not in CALENDAR_COLUMNS]
    reference = _reference_sample(train_set, [*([spec.group] if spec.group else []), *columns], drift.reference_rows)
    current = {c: _values(scored, c) for c in columns if c in scored.columns}
    profile = {**data_profile, "columns": {c: data_profile["columns"][c] for c in columns}}
    reference_values = {c: _values(reference, c) for c in columns if c in reference.columns}
    rows = feature_drift(profile, reference_values, current, config)
    importance = {r["feature"]: r["share"] for r in shap_summary["importance"]}
    prediction, test_mae = _prediction_drift(model, test_set, scored, spec)
    realized_mae, labelled = _realized_mae(scored, spec, config.min_rows)
    verdict = retrain_verdict(rows, importance, realized_mae, test_mae, config)
    by_group = _group_drift(scored, reference, spec, verdict["top_features"], spec.quantile_bins)
    bias = _batch_bias(context, labelled, spec, config, fairness, alerts, train_set)
    table = pl.DataFrame(rows)
    reference_window = _reference_window(reference, test_set, spec.timestamp)
    report = {
        "batch": context.partition_key, "champion_version": version, "rows_scored": scored.height, "features": rows,
        "prediction_drift": prediction, "realized_mae": realized_mae, "test_mae": test_mae, "by_group": by_group,
        "by_group_skipped": None if spec.group else SINGLE_SERIES, "bias": bias, "reference": reference_window,
        **verdict,
    }
    metadata = {
        "retrain": verdict["retrain"],
        "retrain_flag": int(verdict["retrain"]),
        "reasons": "; ".join(verdict["reasons"]),
        "weighted_drift": verdict["weighted_drift"],
        "rows_scored": scored.height,
        "drifted_features": int(table.get_column("drifted").sum()) if table.height else 0,
        "features": markdown_table(table.select([c for c in table.columns if c != "kind"]).sort("score", descending=True) if table.height else table),
        "root_causes": markdown_table(pl.DataFrame(verdict["root_causes"])),
        "by_group": markdown_table(pl.DataFrame(by_group)) if by_group else f"skipped: {SINGLE_SERIES}",
        "champion_version": version,
        "reference_training_rows": reference_window["training_rows"],
        "reference_test_rows": reference_window["test_rows"],
        **{f"psi/{r['feature']}": r["psi"] for r in rows if r["psi"] is not None},
        **{f"ks/{r['feature']}": r["ks"] for r in rows if r["ks"] is not None},
        **{f"wasserstein/{r['feature']}": r["wasserstein"] for r in rows if r["wasserstein"] is not None},
        **{f"prediction_{k}": v for k, v in prediction.items()},
    }
    if realized_mae is not None:
        metadata["realized_mae"] = realized_mae
    if test_mae is not None:
        metadata["test_mae"] = test_mae
    if bias is not None:
        metadata["bias_flagged_groups"] = dg.MetadataValue.json(bias["flagged"])
    return dg.Output(report, metadata=metadata)


SINGLE_SERIES = "single series: no groups to compare"
NOTHING_SCORED = "no rows scored: nothing to judge"


def _nothing_to_judge(batch: str, version: str, rows: int) -> dg.Output:
    """The report of a batch the champion scored no row of (all rows lacked the history their
    lags need, or the batch was empty): no drift figures and no retrain request."""
    report = {
        "batch": batch, "champion_version": version, "rows_scored": 0, "features": [], "prediction_drift": {},
        "realized_mae": None, "test_mae": None, "by_group": [], "by_group_skipped": NOTHING_SCORED, "bias": None,
        "reference": None, "retrain": False, "reasons": [NOTHING_SCORED], "weighted_drift": 0.0, "top_features": [],
        "root_causes": [],
    }
    metadata = {
        "retrain": False, "retrain_flag": 0, "reasons": NOTHING_SCORED, "rows_in_batch": rows, "rows_scored": 0,
        "champion_version": version,
    }
    return dg.Output(report, metadata=metadata)


def _prediction_drift(model, test_set: pl.DataFrame, scored: pl.DataFrame, spec) -> tuple[dict, float | None]:
    """(drift of the batch's predictions against the champion's on the reference test rows,
    the champion's MAE on those test rows that have an actual)."""
    from mlops_assets.core.drift import ks_statistic, psi, wasserstein_normalized
    from mlops_assets.core.profile import bin_fractions, quantile_bin_edges

    if test_set.height == 0:
        return {}, None
    test_pred = np.asarray(model.predict(_pandas_inputs(test_set, spec)), float)
    actual = test_set.get_column(spec.target.column).cast(pl.Float64).to_numpy()
    known = np.isfinite(actual) & np.isfinite(test_pred)
    test_mae = float(np.mean(np.abs(test_pred[known] - actual[known]))) if known.any() else None
    test_pred = test_pred[np.isfinite(test_pred)]
    batch_pred = scored.get_column(PREDICTION).to_numpy()
    if not test_pred.size:
        return {}, test_mae
    edges = quantile_bin_edges(test_pred, spec.quantile_bins)
    drift = {
        "ks": ks_statistic(test_pred, batch_pred)[0],
        "psi": psi(bin_fractions(test_pred, edges), batch_pred, edges),
        "wasserstein": wasserstein_normalized(test_pred, batch_pred),
    }
    return drift, test_mae


def _realized_mae(scored: pl.DataFrame, spec, min_rows: int) -> tuple[float | None, pl.DataFrame]:
    """(MAE of the batch's predictions where it has actuals, None below `min_rows`; those rows)."""
    from mlops_assets.core.metrics import regression_metrics

    target = pl.col(spec.target.column)
    labelled = scored.filter(target.is_not_null() & target.cast(pl.Float64).is_not_nan())
    if labelled.height < min_rows:
        return None, labelled
    y, p = labelled.get_column(spec.target.column).to_numpy(), labelled.get_column(PREDICTION).to_numpy()
    return regression_metrics(y, p)["mae"], labelled


def _batch_bias(
    context, labelled: pl.DataFrame, spec, config, fairness: FairnessSettings, alerts: AlertChannels, train_set: pl.LazyFrame
) -> dict | None:
    """Per-group bias on the batch's labelled rows, scaled as the training-time report is
    (None for a single series or too few rows); a crossed bias rule is sent as an alert."""
    from mlops_assets.core.fairness import bias_report as build_bias_report
    from mlops_assets.core.fairness import naive_scales
    from mlops_assets.core.features import BASELINE_COLUMNS

    if not spec.group or labelled.height < config.min_rows:
        return None
    scales = naive_scales(train_set, spec.target.column, BASELINE_COLUMNS[0], spec.group)
    y, p = labelled.get_column(spec.target.column).to_numpy(), labelled.get_column(PREDICTION).to_numpy()
    bias = build_bias_report(y, p, labelled.get_column(spec.group).to_numpy(), fairness.config(), scales=scales)
    if bias["biased"]:
        alerts.send(Alert(
            kind="bias_drift", title=f"bias rule crossed on batch {context.partition_key}", reason="; ".join(bias["reasons"]),
            asset="drift_report", partition=context.partition_key, severity="WARN", run_id=context.run_id,
        ))
    return bias


def _values(frame: pl.DataFrame, column: str) -> np.ndarray:
    series = frame.get_column(column)
    return series.cast(pl.String).to_numpy() if series.dtype == pl.String else series.cast(pl.Float64).to_numpy()


def _reference_sample(train_set: pl.LazyFrame, columns: list[str], rows: int) -> pl.DataFrame:
    """Every k-th training row (at most about `rows`); only those of `columns` the training
    data has are read from storage."""
    names = set(train_set.collect_schema().names())
    total = train_set.select(pl.len()).collect().item()
    step = max(1, total // rows)
    return train_set.select([c for c in dict.fromkeys(columns) if c in names]).gather_every(step).collect()


def _reference_window(reference: pl.DataFrame, test_rows: pl.DataFrame, timestamp: str) -> dict:
    """What the batch was compared with: the training sample's size and the test rows behind
    the prediction reference and test error."""
    ts = test_rows.get_column(timestamp)
    return {
        "training_rows": reference.height,
        "test_rows": test_rows.height,
        "test_from": str(ts.min()) if test_rows.height else None,
        "test_to": str(ts.max()) if test_rows.height else None,
    }


def _newest_days(frame: pl.LazyFrame, timestamp: str, days: int) -> pl.DataFrame:
    """The rows of the newest `days` days (all of a shorter frame)."""
    ts = pl.col(timestamp)
    return frame.filter(ts > ts.max() - pl.duration(days=days)).collect()


def _group_drift(current: pl.DataFrame, reference: pl.DataFrame, spec, features: list[str], bins: int) -> list[dict]:
    """PSI of the top features per group, each group against its own training rows (a feature
    without values on either side is left out of that group's row)."""
    from mlops_assets.core.drift import psi
    from mlops_assets.core.profile import bin_fractions, quantile_bin_edges

    if not spec.group:
        return []
    out = []
    for group in sorted(current.get_column(spec.group).unique().to_list()):
        ref = reference.filter(pl.col(spec.group) == group)
        cur = current.filter(pl.col(spec.group) == group)
        row = {"group": group, "rows": cur.height}
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
