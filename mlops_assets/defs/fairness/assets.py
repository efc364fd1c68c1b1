"""Fairness: the bias report by group, and the fair model (re-weighted when bias is found)."""

import time

import dagster as dg
import polars as pl

from mlops_assets.core.fairness import report_table
from mlops_assets.core.plots import gap_plot
from mlops_assets.core.metrics import safe_key
from mlops_assets.defs.metadata import counts, png_markdown, table_metadata
from mlops_assets.defs.training.tracking import log_candidate, log_datasets, log_png, log_table, recorded_data_versions
from mlops_assets.resources.dataset import DatasetSpecResource
from mlops_assets.resources.fairness import FairnessSettings
from mlops_assets.resources.tracking import MlflowTracking
from mlops_assets.resources.training import TrainingSettings


def _plot(report: dict, title: str) -> bytes:
    rows = [r for r in report["groups"] if r.get("gap") is not None]
    return gap_plot(
        [r["group"] for r in rows], [r["gap"] for r in rows], [r["gap_ci_low"] for r in rows], [r["gap_ci_high"] for r in rows],
        report["limit"], set(report["flagged"]), title,
    )


def _verdict(report: dict) -> str:
    if report["passed"]:
        return "PASS: " + "; ".join(report["reasons"])
    return ("BIASED: " if report["biased"] else "FAIL: ") + "; ".join(report["reasons"])


def _gap_metrics(report: dict) -> dict[str, float]:
    """Each group's gap as an MLflow metric; the label becomes a key through `safe_key`."""
    rows = [r for r in report["groups"] if r.get("gap") is not None and r["gap"] == r["gap"]]
    return {f"bias_gap.{safe_key(r['group'])}": float(r["gap"]) for r in rows}


def _expected_groups(train_set: pl.DataFrame | pl.LazyFrame, column: str | None) -> list[str]:
    if not column:
        return []
    return sorted(train_set.lazy().select(pl.col(column).cast(pl.String).unique()).collect().get_column(column).to_list())


def _group_roles(load_history: pl.LazyFrame, splits: tuple, spec) -> dict[str, list[str]] | list[str]:
    """The groups the bias gate judges (established active ones) and those it only lists (new,
    retired), from the groups' life cycle in the history; [] for a single series."""
    from mlops_assets.core.lifecycle import group_lifecycle, split_roles

    if not spec.group:
        return []
    lifecycle = group_lifecycle(load_history.lazy().select(*spec.key_columns, spec.target.column), spec)
    return split_roles(*splits, lifecycle, spec)


# train_set, validation_set and load_history are pl.LazyFrame scans: only the columns used are read.
@dg.asset(
    group_name="fairness", kinds={"fairlearn", "mlflow"},
    ins={name: dg.AssetIn() for name in ("candidate_model", "test_set", "train_set", "validation_set", "load_history")},
)
def bias_report(context: dg.AssetExecutionContext, candidate_model: dict, test_set: pl.DataFrame, train_set: pl.LazyFrame, validation_set: pl.LazyFrame, load_history: pl.LazyFrame, dataset: DatasetSpecResource, fairness: FairnessSettings, mlflow_tracking: MlflowTracking):
    """fairlearn MetricFrame of the candidate on the test set, by group (and by any sensitive
    feature the spec declares): MAE, RMSE, MAPE and rows per group, each group's gap with a
    bootstrap 95% interval, and a verdict with reasons. The `normalized` rule scales each
    group's MAE by its seasonal-naive MAE on the training split (MASE), so a net load that
    crosses zero is judged by how forecastable it is, not by its small mean. Established active
    groups are judged; new groups (too young for every split) and retired groups (no data for the
    spec's `retire_after`) are listed with their errors, never failed."""
    from mlops_assets.core.fairness import bias_report as build_report
    from mlops_assets.core.fairness import naive_scales
    from mlops_assets.core.features import BASELINE_COLUMNS
    from mlops_assets.core.models.data import to_split
    from mlops_assets.core.pyfunc_model import load_forecaster

    spec, config = dataset.load(), fairness.config()
    split = to_split(test_set, spec)
    predictions = load_forecaster(candidate_model["model_uri"]).predict(split.X)
    scales = naive_scales(train_set, spec.target.column, BASELINE_COLUMNS[0], spec.group)
    roles = _group_roles(load_history, (train_set, validation_set, test_set), spec)
    report = build_report(split.y, predictions, split.groups, config, roles, scales)
    report["by_feature"] = {
        col: build_report(split.y, predictions, split.X[col].to_numpy(), config, _expected_groups(train_set, col))
        for col in spec.extra.get("sensitive_features", [])
    }
    for col, sub in report["by_feature"].items():
        report["biased"] = report["biased"] or sub["biased"]
        report["passed"] = report["passed"] and sub["passed"]
        report["reasons"] += [f"{col}: {reason}" for reason in sub["reasons"] if not sub["passed"]]
    table = report_table(report)
    metadata = {
        "verdict": _verdict(report), "rule": config.rule, "normalized_by": report.get("normalized_by", "–"),
        "flagged_groups": dg.MetadataValue.json(report["flagged"]), "table": table_metadata(table, max_rows=200),
        "new_groups": dg.MetadataValue.json(report.get("new_groups", [])),
        "retired_groups": dg.MetadataValue.json(report.get("retired_groups", [])),
        **counts({f"overall_{k}": v for k, v in report.get("overall", {}).items() if v == v}),
    }
    with mlflow_tracking.resume_run(candidate_model["run_id"]):
        import mlflow

        mlflow.log_dict(report, "fairness/bias_report.json")
        log_table(table, "bias_by_group.csv")
        mlflow.log_metrics({
            "bias_largest_abs_gap": report.get("largest_abs_gap", 0.0), "bias_flagged_groups": len(report["flagged"]),
            **_gap_metrics(report),
        })
        if report["grouped"] and report["groups"]:
            png = _plot(report, f"{candidate_model['kind']}: {config.rule} MAE gap by group")
            log_png(png, "bias_gaps.png")
            metadata["plot"] = png_markdown(png, "error gap by group")
    metadata["mlflow_run"] = dg.MetadataValue.url(mlflow_tracking.run_url(candidate_model["run_id"]))
    return dg.Output(report, metadata=metadata)


@dg.asset(
    group_name="fairness",
    kinds={"fairlearn", "mlflow"},
    ins={
        name: dg.AssetIn()
        for name in ("candidate_model", "bias_report", "train_set", "validation_set", "test_set", "load_history")
    },
)
def fair_model(context: dg.AssetExecutionContext, candidate_model: dict, bias_report: dict, train_set: pl.LazyFrame, validation_set: pl.DataFrame, test_set: pl.DataFrame, load_history: pl.LazyFrame, dataset: DatasetSpecResource, training: TrainingSettings, fairness: FairnessSettings, mlflow_tracking: MlflowTracking):
    """The model that goes on to the registry. When the bias report flags a group, the
    candidate is re-trained with balanced and with error-aware group weights; a re-weighted
    model is kept only if it shrinks the largest gap (on validation) without raising overall
    MAE by more than the tolerance. Otherwise, or when nothing is flagged, the candidate."""
    grouped = bool(dataset.load().group)
    if not bias_report["biased"] or not grouped:
        # A single series flagged by a sensitive feature keeps the report's failing verdict.
        reason = ("no group flagged by the bias report: the candidate is the fair model" if grouped
                  else "single series: no groups to re-weight, the candidate is the fair model")
        # Still a part of the training's MLflow run: the decision, pointing at the candidate's run and model.
        with mlflow_tracking.start_run(context, "fair_model", run_name=f"{candidate_model['kind']}-fair-{context.run_id[:8]}") as run:
            log_datasets(context, candidate_model.get("data_versions") or recorded_data_versions(context, FAIR_SPLITS), mlflow_tracking.dagster_ui_url)
            mlflow_tracking.training_ended(run)
            _log_candidate_kept(candidate_model, reason, bias_report)
        return dg.Output(
            {**candidate_model, "fair_run_id": run.info.run_id, "mitigation": {"applied": False, "reason": reason, "bias_after": bias_report}},
            metadata={
                "mitigation": reason, "model": candidate_model["kind"], "model_uri": candidate_model["model_uri"],
                "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(run.info.run_id)),
            },
        )
    from mlops_assets.core.models.memory import release_memory

    release_memory()
    try:
        splits = {"train_set": train_set, "validation_set": validation_set, "test_set": test_set}
        roles = _group_roles(load_history, tuple(splits.values()), dataset.load())
        return _mitigate(context, candidate_model, splits, roles, dataset, training, fairness, mlflow_tracking)
    finally:
        release_memory()


FAIR_SPLITS = ("train_set", "validation_set", "test_set")


def _log_candidate_kept(candidate: dict, reason: str, bias: dict) -> None:
    """In the fair model's run when the candidate stays the model: the reason, the bias it was
    judged by, and the candidate's run and model (logged there, not again here)."""
    import mlflow

    mlflow.set_tags({"mitigation": "none", "model_kind": candidate["kind"], "model_run_id": candidate["run_id"], "model_uri": candidate["model_uri"]})
    mlflow.log_text(reason, "mitigation.txt")
    mlflow.log_metrics({"bias_largest_abs_gap": float(bias.get("largest_abs_gap") or 0.0), "bias_flagged_groups": len(bias.get("flagged", []))})


def _scaled_test_report(forecaster, data, bias, expected, train_set, spec) -> dict:
    """The chosen variant's test bias report by the same scale as `bias_report` (each group's
    seasonal-naive MAE on training), which is what the registry's bias check reads."""
    from mlops_assets.core.fairness import bias_report as build_report
    from mlops_assets.core.fairness import naive_scales
    from mlops_assets.core.features import BASELINE_COLUMNS

    scales = naive_scales(train_set, spec.target.column, BASELINE_COLUMNS[0], spec.group)
    return build_report(data.test.y, forecaster.predict(data.test.X), data.test.groups, bias, expected, scales)


def _mitigate(
    context, candidate: dict, splits: dict, expected, dataset, training, fairness, mlflow_tracking
) -> dg.Output:
    import mlflow

    from mlops_assets.core.mitigation import mitigate
    from mlops_assets.core.models.data import model_data
    from mlops_assets.core.models.evaluation import evaluate
    from mlops_assets.core.pyfunc_model import load_forecaster

    spec, config, bias = dataset.load(), training.load(), fairness.config()
    data = model_data(splits["train_set"], splits["validation_set"], splits["test_set"], spec, config.max_train_rows)
    versions = recorded_data_versions(context, tuple(splits))
    summary = dict(candidate)
    # The fair model's nested run spans the re-weighted trainings; the chosen variant's model is logged in it.
    with mlflow_tracking.start_run(context, "fair_model", run_name=f"{candidate['kind']}-fair-{context.run_id[:8]}", tags={"mitigates_run_id": candidate["run_id"]}) as run:
        log_datasets(context, versions, mlflow_tracking.dagster_ui_url)
        started = time.perf_counter()
        chosen, variants, reason = mitigate(load_forecaster(candidate["model_uri"]), data, config, bias, fairness.mitigation_tolerance, expected)
        fit_seconds = time.perf_counter() - started
        mlflow_tracking.training_ended(run)
        comparison = pl.DataFrame(
            [{"variant": v.name, "val_largest_gap": v.validation["largest_abs_gap"], "val_mae": v.validation_mae, "test_largest_gap": v.test["largest_abs_gap"], "test_mae": v.test_mae, "test_flagged": len(v.test["flagged"]), "chosen": v is chosen} for v in variants]
        )
        per_group = pl.concat([report_table(v.test).select("group", "mae", "gap").with_columns(pl.lit(v.name).alias("variant")) for v in variants])
        log_table(comparison, "mitigation_comparison.csv")
        if chosen.name != "candidate":
            mlflow.set_tags({"mitigation": chosen.name, "mlflow.runName": f"{candidate['kind']}-{chosen.name}-weights"})
            evaluation = evaluate(chosen.forecaster, data)
            info = log_candidate(
                kind=candidate["kind"], forecaster=chosen.forecaster, data=data, evaluation=evaluation,
                params={**candidate["params"], "sample_weights": chosen.name}, extra={}, search_table=None, config=config,
                data_versions=versions, fit_seconds=fit_seconds,
                # Intervals calibrated on validation forecasts of the variant's train-only fit, never of the refit that learned them.
                calibration_predictions=chosen.train_only.predict(data.validation.X),
            )
            summary.update(
                run_id=run.info.run_id, model_uri=info.model_uri, params={**candidate["params"], "sample_weights": chosen.name},
                metrics={"validation": evaluation["validation"], "test": evaluation["test"]}, test_by_group=evaluation["test_by_group"].to_dicts(),
            )
        else:
            _log_candidate_kept(candidate, reason, chosen.test)
    summary["fair_run_id"] = run.info.run_id
    bias_after = _scaled_test_report(chosen.forecaster, data, bias, expected, splits["train_set"], spec)
    summary["mitigation"] = {
        "applied": chosen.name != "candidate", "scheme": chosen.name, "reason": reason,
        "comparison": comparison.to_dicts(), "bias_after": bias_after,
    }
    context.log.info(reason)
    return dg.Output(
        summary,
        metadata={
            "mitigation": reason,
            "comparison": table_metadata(comparison),
            "per_group_before_after": table_metadata(per_group.pivot(on="variant", index="group", values="gap")),
            "model_uri": summary["model_uri"],
            "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(run.info.run_id)),
        },
    )
