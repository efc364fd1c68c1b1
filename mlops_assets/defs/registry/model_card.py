"""The model card of each registered version: gathered from the assets that made it, logged
as Markdown and HTML on the version's MLflow run, shown in the Dagster UI."""

import os
import tempfile
from datetime import datetime, timezone

import dagster as dg
import polars as pl

from mlops_assets.defs.metadata import rounded
from mlops_assets.resources.dataset import DatasetSpecResource
from mlops_assets.resources.registry import CHAMPION
from mlops_assets.resources.tracking import MlflowTracking

ARTIFACT_DIR = "model_card"
URI_TAG = "model_card.uri"
FILES = {"md": "model_card.md", "html": "model_card.html"}
SHAP_PLOT = "plots/shap_bar.png"
SPLITS = ("train_set", "validation_set", "test_set")


@dg.asset(
    group_name="registry",
    kinds={"mlflow"},
    ins={
        "registered_model": dg.AssetIn(),
        "fair_model": dg.AssetIn(),
        "candidate_model": dg.AssetIn(),
        "model_evaluation": dg.AssetIn(),
        "bias_report": dg.AssetIn(),
        "shap_summary": dg.AssetIn(),
        **{name: dg.AssetIn(metadata={"lazy": True}) for name in SPLITS},
    },
)
def model_card(context: dg.AssetExecutionContext, registered_model: dict, fair_model: dict, candidate_model: dict, model_evaluation: dict, bias_report: dict, shap_summary: dict, train_set: pl.LazyFrame, validation_set: pl.LazyFrame, test_set: pl.LazyFrame, dataset: DatasetSpecResource, mlflow_tracking: MlflowTracking):
    """The model card of the version just registered, approved or refused (after "Model Cards
    for Model Reporting", Mitchell et al. 2019): intended use and limits, data versions and
    splits, known-in-advance and observed features, the candidates compared, metrics overall
    and per group with baselines, prediction intervals, the fairness verdict, SHAP top features
    with their plot, the blocking checks' verdicts, lineage and how to reproduce. Logged as
    `model_card/model_card.md` and `.html` (self-contained) on the version's MLflow run, whose
    URI the version's tag `model_card.uri` holds; `mlops-assets card` writes it to a file."""
    from mlops_assets.core.model_card import build_card, to_html, to_markdown

    splits = {"train_set": train_set, "validation_set": validation_set, "test_set": test_set}
    facts = card_facts(context, registered_model, fair_model, candidate_model, model_evaluation, bias_report, shap_summary, splits, dataset, mlflow_tracking)
    card = build_card(facts)
    markdown, page = to_markdown(card), to_html(card)
    version, run_id = str(registered_model["version"]), registered_model["run_id"]
    uri = log_card(mlflow_tracking, run_id, {FILES["md"]: markdown, FILES["html"]: page})
    mlflow_tracking.registry().tag_version(version, {URI_TAG: uri})
    metrics = model_evaluation["challenger"]["metrics"]
    return dg.Output(
        {"version": version, "uri": uri, "run_id": run_id, "markdown_chars": len(markdown), "html_chars": len(page)},
        metadata={
            "card": dg.MetadataValue.md(markdown),
            "version": version,
            "decision": facts["model"]["decision"],
            "card_uri": uri,
            "test_mae": rounded(metrics.get("mae")),
            "test_skill": rounded(metrics.get("skill")),
            "checks_passed": f"{sum(bool(v['passed']) for v in registered_model['verdicts'])} of {len(registered_model['verdicts'])}",
            "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(run_id)),
        },
    )


def card_facts(context, registered: dict, fair: dict, candidate: dict, evaluation: dict, bias: dict, shap: dict, splits: dict, dataset, mlflow_tracking) -> dict:
    """Everything the card states, read from the assets' outputs, the dataset spec and the
    registry (nothing recomputed but the splits' ranges and row counts)."""
    from mlops_assets.core.model_card import feature_roles

    spec, registry = dataset.load(), mlflow_tracking.registry()
    version = str(registered["version"])
    tags = registry.version_tags(version)
    split_facts = [split_summary(name, frame, spec) for name, frame in splits.items()]
    training_run = tags.get("dagster.run_id") or context.run_id
    links = {
        "dagster_run_id": training_run, "dagster_run_url": f"{mlflow_tracking.dagster_ui_url}/runs/{training_run}",
        "mlflow_run_id": registered["run_id"], "mlflow_run_url": mlflow_tracking.run_url(registered["run_id"]),
    }
    code = tags.get("code_version", "unknown")
    mitigation = fair.get("mitigation", {})
    return {
        "model": {
            "name": registry.name, "version": version, "kind": registered["kind"], "model_uri": registered["model_uri"],
            "registered_at": registered_at(registry, version), "code_version": code, "decision": decision(registered),
            "mitigation": mitigation.get("scheme", "none") if mitigation.get("applied") else "none", **links,
        },
        "spec": {
            "name": spec.name, "description": spec.description, "target": spec.target.column, "timestamp": spec.timestamp,
            "group": spec.group, "frequency": spec.frequency, "timezone": spec.timezone, "horizon_hours": spec.horizon_hours,
            "groups": sorted({g for s in split_facts for g in s["groups"]}) if spec.group else [],
            "sensitive_features": spec.extra.get("sensitive_features", []),
        },
        "features": feature_roles(spec),
        "data": {"versions": dict(fair.get("data_versions", {})), "splits": split_facts},
        "candidates": {"selection_metric": candidate["selection_metric"], "comparison": candidate["comparison"]},
        "evaluation": {
            "rows": evaluation["rows"], "metrics": evaluation["challenger"]["metrics"], "by_group": evaluation["challenger"]["by_group"],
            "baselines": evaluation["baselines"], "champion": evaluation.get("champion"), "paired_difference": evaluation.get("paired_difference"),
        },
        "intervals": registered.get("intervals"),
        "fairness": {
            "report": mitigation.get("bias_after") or bias,
            "mitigation": mitigation.get("reason", "none recorded"),
            "sensitive_features": {col: "; ".join(sub.get("reasons", [])) for col, sub in (bias.get("by_feature") or {}).items()},
        },
        "shap": {**shap, "plot_png": shap_plot(mlflow_tracking, shap.get("mlflow_run_id"))},
        "verdicts": registered["verdicts"],
        "lineage": {**links, "card_run_id": context.run_id, "code_version": code, "data_versions": dict(fair.get("data_versions", {}))},
        "reproduce": {"code_version": code, "seed": fair.get("seed"), "profile": fair.get("profile", "full")},
    }


def decision(registered: dict) -> str:
    failed = [v["check"] for v in registered["verdicts"] if not v["passed"]]
    return "approved for promotion: every blocking check passed" if not failed else "refused: " + ", ".join(failed) + " failed"


def split_summary(name: str, frame: pl.LazyFrame, spec) -> dict:
    """Rows, first and last timestamp and the groups of one split, read from its scan."""
    ts = pl.col(spec.timestamp)
    stats = frame.lazy().select(pl.len().alias("rows"), ts.min().alias("first"), ts.max().alias("last")).collect().row(0, named=True)
    groups = []
    if spec.group:
        groups = sorted(frame.lazy().select(pl.col(spec.group).cast(pl.String).unique()).collect().get_column(spec.group).drop_nulls().to_list())
    return {"split": name, "rows": stats["rows"], "first": str(stats["first"]), "last": str(stats["last"]), "groups": groups}


def registered_at(registry, version: str) -> str:
    created = registry.client.get_model_version(registry.name, version).creation_timestamp
    return datetime.fromtimestamp(created / 1000, timezone.utc).isoformat(timespec="seconds") if created else "unknown"


def shap_plot(mlflow_tracking: MlflowTracking, run_id: str | None) -> bytes | None:
    """The SHAP bar plot `shap_summary` logged on the model's run (None when it is absent)."""
    if not run_id:
        return None
    import mlflow.artifacts

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=SHAP_PLOT, dst_path=tmp, tracking_uri=mlflow_tracking.tracking_uri)
        except Exception as error:  # noqa: BLE001 - the card says the plot is missing rather than not being written
            dg.get_dagster_logger().warning(f"SHAP plot of run {run_id} not found: {error}")
            return None
        with open(path, "rb") as handle:
            return handle.read()


def log_card(mlflow_tracking: MlflowTracking, run_id: str, files: dict[str, str]) -> str:
    """Log the card's files on `run_id` under `model_card/`; their `runs:/` URI."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as handle:
                handle.write(text)
        mlflow_tracking.client().log_artifacts(run_id, tmp, artifact_path=ARTIFACT_DIR)
    return f"runs:/{run_id}/{ARTIFACT_DIR}"


class CardNotFound(Exception):
    """The version does not exist, or has no model card."""


def card_version(mlflow_tracking: MlflowTracking, version: str | None) -> str:
    """`version`, or the champion's, or the newest registered version."""
    registry = mlflow_tracking.registry()
    if version:
        return str(version)
    champion = registry.alias_version(CHAMPION)
    if champion:
        return champion
    found = registry.client.search_model_versions(f"name='{registry.name}'")
    if not found:
        raise CardNotFound(f"no version of model {registry.name} is registered yet: run `mlops-assets demo` or training_job")
    return str(max(int(v.version) for v in found))


def download_card(mlflow_tracking: MlflowTracking, version: str, file_format: str, destination: str) -> str:
    """Copy the card of `version` (format `md` or `html`) from the store to `destination`."""
    import shutil

    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    registry = mlflow_tracking.registry()
    try:
        uri = registry.version_tags(version).get(URI_TAG)
    except MlflowException:
        raise CardNotFound(f"model {registry.name} has no version {version}") from None
    if not uri:
        raise CardNotFound(f"version {version} of {registry.name} has no model card: materialize model_card (training_job) for it")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=f"{uri}/{FILES[file_format]}", dst_path=tmp, tracking_uri=mlflow_tracking.tracking_uri)
        except (MlflowException, OSError) as error:
            raise CardNotFound(f"the model card of version {version} could not be read from {uri}: {error}") from None
        shutil.copyfile(local, destination)
    return destination
