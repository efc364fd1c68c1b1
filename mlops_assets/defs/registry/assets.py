"""Registry: evaluation against the champion, the registered version with its blocking
checks, and the `champion` alias with its promotion history."""

import math

import dagster as dg
import polars as pl

from mlops_assets.core.promotion import (
    BLOCKING_CHECKS,
    Verdict,
    bias_verdict,
    no_regression_vs_champion,
    performance_threshold,
    serving_verdict,
    signature_and_schema,
)
from mlops_assets.defs.metadata import rounded, table_metadata
from mlops_assets.defs.training.tracking import log_evaluation_run
from mlops_assets.resources.alerts import ALERT_KEY, Alert, AlertChannels
from mlops_assets.resources.dataset import DatasetSpecResource
from mlops_assets.resources.promotion import PromotionSettings
from mlops_assets.resources.registry import CHALLENGER, CHAMPION, COMPARED_TAG, version_label
from mlops_assets.resources.tracking import MlflowTracking

CHECK_DESCRIPTIONS = {
    "performance_threshold": (
        "Skill against seasonal naive above the minimum on enough test rows (optional MAPE and R2 thresholds)."
    ),
    "no_regression_vs_champion": "MAE no worse than the serving champion's by more than the margin (paired bootstrap on the same test rows).",
    "bias_within_threshold": "No group beyond the bias rule; every group has enough test rows.",
    "interval_coverage": (
        "The prediction interval covers the nominal share of test rows (±5 points by default), overall and in every group with enough rows."
    ),
    "signature_and_schema": "The version's signature has exactly the inputs the dataset spec produces, and an output.",
    "serving_smoke_test": "The version loads through pyfunc in a fresh process and predicts a sample.",
}


def trigger(context: dg.AssetExecutionContext) -> str:
    tags = context.run.tags
    for key, label in (("dagster/sensor_name", "sensor"), ("dagster/schedule_name", "schedule"), ("mlops/trigger", "")):
        if key in tags:
            return f"{label}:{tags[key]}" if label else tags[key]
    return f"manual run {context.run_id[:8]}"


@dg.asset(group_name="registry", kinds={"mlflow"}, ins={"fair_model": dg.AssetIn(), "test_set": dg.AssetIn()})
def model_evaluation(context: dg.AssetExecutionContext, fair_model: dict, test_set: pl.DataFrame, dataset: DatasetSpecResource, mlflow_tracking: MlflowTracking, promotion: PromotionSettings):
    """The model headed for the registry and the current champion (`@champion`, if any),
    both loaded through pyfunc and scored on the same test rows next to the two baselines
    (seasonal naive: one week earlier; day-before): MAE, RMSE, MASE (scaled by the training
    split's seasonal-naive MAE) and skill, overall and per group, and a paired bootstrap
    interval on the difference of challenger and champion absolute errors. `compared_champion`
    is the champion version compared with (None: there was none); promotion later requires
    that it still is the champion (compare-and-set)."""
    import mlflow.pyfunc
    import numpy as np

    from mlops_assets.core.intervals import coverage_report, rolled_intervals
    from mlops_assets.core.metrics import comparison, forecast_metrics, metrics_by_group
    from mlops_assets.core.models.data import to_split
    from mlops_assets.core.promotion import paired_bootstrap
    from mlops_assets.core.pyfunc_model import interval_calibrator

    spec, policy = dataset.load(), promotion.policy()
    split = to_split(test_set, spec)
    scales = fair_model.get("mase_scales") or {}
    registry = mlflow_tracking.registry()

    def scored(predictions: np.ndarray) -> dict:
        by_group = metrics_by_group(split.y, predictions, split.groups, split.baselines, scales.get("by_group"))
        return {
            "metrics": forecast_metrics(split.y, predictions, split.baselines, scales.get("overall")),
            "by_group": by_group.to_dicts(),
        }

    def intervals(model, predictions: np.ndarray) -> dict | None:
        """Coverage of the calibrated interval day by day over the test rows, each day's labels
        moving its quantile level for the next (ACI, as monitoring does) but never its scores:
        a calibration whose largest scores cannot cover the test period stays too narrow,
        however fast serving would learn new ones. Next to it, the coverage without adaptation."""
        calibrator = interval_calibrator(model)
        if calibrator is None:
            return None
        days = np.asarray(split.timestamps, dtype="datetime64[D]")
        lower, upper, _ = rolled_intervals(calibrator, split.y, predictions, split.X, days, learn_scores=False)
        report = coverage_report(split.y, lower, upper, split.groups, calibrator.level, promotion.coverage_min_group_rows, days)
        static = coverage_report(split.y, *calibrator.interval(predictions, split.X), None, calibrator.level, 0)
        return {**report, "method": calibrator.method, "static_coverage": static["coverage"], "static_mean_width": static["mean_width"]}

    champion = registry.alias_version(CHAMPION)
    new_model = mlflow.pyfunc.load_model(fair_model["model_uri"])
    new_pred = np.asarray(new_model.predict(split.X), float)
    compared = comparison(split.y, new_pred, split.baselines, scales.get("overall"))
    result = {
        "rows": len(split),
        "challenger": {"model_uri": fair_model["model_uri"], **scored(new_pred), "intervals": intervals(new_model, new_pred)},
        "baselines": {name: compared[name] for name in ("seasonal_naive", "day_before")},
        "champion": None,
        "compared_champion": champion,
        "paired_difference": None,
    }
    if champion:
        # By version, not by alias: the alias may move while we load; we compare with `champion`.
        old_model = mlflow.pyfunc.load_model(registry.model_uri(champion))
        old_pred = np.asarray(old_model.predict(split.X), float)
        result["champion"] = {"version": champion, **scored(old_pred), "intervals": intervals(old_model, old_pred)}
        result["paired_difference"] = paired_bootstrap(new_pred - split.y, old_pred - split.y, policy.bootstrap, policy.seed)
    table = _comparison_table(result)
    run_id = log_evaluation_run(mlflow_tracking, context, result, table)
    metadata = {"comparison": table_metadata(table), "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(run_id)), "champion_version": champion or "none", "test_rows": len(split),
                "baseline_rows": result["challenger"]["metrics"]["baseline_rows"]}
    if result["paired_difference"]:
        diff, low, high = result["paired_difference"]
        metadata.update(mae_difference=rounded(diff), mae_difference_ci_low=rounded(low), mae_difference_ci_high=rounded(high))
    return dg.Output(result, metadata=metadata)


def _interval_columns(part: dict) -> dict:
    """Coverage, mean width and pinball loss of a model's intervals (None: logged without)."""
    intervals = part.get("intervals") or {}
    return {"interval_coverage": intervals.get("coverage"), "interval_width": intervals.get("mean_width"), "pinball_loss": intervals.get("pinball_loss")}


def _comparison_table(result: dict) -> pl.DataFrame:
    """Challenger, champion and both baselines: MAE/RMSE/MASE/skill (baselines on the rows that
    have both; the models on every test row, their MAE on those rows as `compared_mae`)."""
    cols = ("mae", "rmse", "mase", "skill", "skill_day_before", "compared_mae", "mape", "r2", "n", "baseline_rows")
    parts = [("challenger", result["challenger"]), ("champion", result["champion"])]
    rows = [{"forecast": name, **{k: part["metrics"].get(k) for k in cols}, **_interval_columns(part)} for name, part in parts if part]
    rows += [{"forecast": name, **{k: m.get(k) for k in cols}} for name, m in result["baselines"].items()]
    return pl.DataFrame(rows, infer_schema_length=None)


@dg.asset(
    group_name="registry",
    kinds={"mlflow"},
    ins={"fair_model": dg.AssetIn(), "model_evaluation": dg.AssetIn(), "test_set": dg.AssetIn()},
    check_specs=[dg.AssetCheckSpec(name, asset="registered_model", blocking=True, description=CHECK_DESCRIPTIONS[name]) for name in BLOCKING_CHECKS],
)
def registered_model(context: dg.AssetExecutionContext, fair_model: dict, model_evaluation: dict, test_set: pl.DataFrame, dataset: DatasetSpecResource, mlflow_tracking: MlflowTracking, promotion: PromotionSettings):
    """A new version of the registered model with alias `challenger`, tagged with data and code
    versions, the Dagster run and its metrics. Its blocking checks decide whether it may
    become champion; each verdict is written on the version and in the promotion history."""
    registry = mlflow_tracking.registry()
    metrics = model_evaluation["challenger"]["metrics"]
    compared = compared_champion(model_evaluation)
    version = registry.register(
        fair_model["model_uri"],
        tags={
            **{f"data_version.{k}": v for k, v in fair_model["data_versions"].items()},
            "dagster.run_id": context.run_id, "model_kind": fair_model["kind"], "code_version": _code_version(),
            **{f"test_{k}": f"{v:.6g}" for k, v in metrics.items() if isinstance(v, float)},
            "mitigation": fair_model.get("mitigation", {}).get("scheme", "none"),
            COMPARED_TAG: compared or "none",
        },
    )
    registry.set_alias(CHALLENGER, version)
    verdicts = _verdicts(fair_model, model_evaluation, test_set, registry.model_uri(version), dataset, mlflow_tracking, promotion)
    registry.tag_version(version, {f"check.{v.check}": v.short() for v in verdicts})
    passed = all(v.passed for v in verdicts)
    champion = registry.alias_version(CHAMPION)
    failed = [v for v in verdicts if not v.passed]
    registry.record(
        "approve" if passed else "refuse", version, champion, trigger(context),
        "all blocking checks passed" if passed else refusal_reason(verdicts),
        [v.to_dict() for v in verdicts],
    )
    yield dg.Output(
        {
            "version": version, "model_uri": registry.model_uri(version), "run_id": fair_model["run_id"], "kind": fair_model["kind"],
            "verdicts": [v.to_dict() for v in verdicts], "passed": passed, "compared_champion": compared,
            "intervals": model_evaluation["challenger"].get("intervals"),
        },
        metadata={
            "version": version,
            "checks_passed": sum(v.passed for v in verdicts),
            "compared_champion": compared or "none",
            "decision": "approved for promotion" if passed else "REFUSED: " + ", ".join(v.check for v in failed),
            "verdicts": table_metadata(pl.DataFrame([{"check": v.check, "verdict": "pass" if v.passed else "FAIL", "reason": v.reason} for v in verdicts])),
            "mlflow_model_version": dg.MetadataValue.url(mlflow_tracking.model_version_url(version)),
        },
    )
    # A refusal is an outcome, not a breakage: failed verdicts are WARN, so the run succeeds and
    # `champion_model` (which re-reads the verdicts from the version's tags) declines to promote.
    # A crash while judging still fails the step, and the run, at ERROR.
    numbers = check_numbers(model_evaluation)
    for v in verdicts:
        yield dg.AssetCheckResult(
            check_name=v.check, passed=v.passed, description=v.reason, severity=dg.AssetCheckSeverity.WARN,
            metadata={"model_version": version, **({} if v.passed else {ALERT_KEY: refusal_key(version)}), **numbers.get(v.check, {})},
        )


def check_numbers(evaluation: dict) -> dict[str, dict[str, float]]:
    """Numbers behind the verdicts, on the check results so the UI plots them run over run."""
    metrics = evaluation["challenger"]["metrics"]
    finite = {k: metrics[k] for k in ("skill", "mase", "mae") if isinstance(metrics.get(k), float) and math.isfinite(metrics[k])}
    numbers = {"performance_threshold": {k: rounded(v) for k, v in finite.items()}}
    intervals = evaluation["challenger"].get("intervals") or {}
    numbers["interval_coverage"] = {k: rounded(intervals[k]) for k in ("coverage", "mean_width", "pinball_loss") if _finite(intervals.get(k))}
    if evaluation.get("paired_difference"):
        diff, low, high = evaluation["paired_difference"]
        numbers["no_regression_vs_champion"] = {"mae_difference": rounded(diff), "mae_difference_ci_high": rounded(high)}
    return numbers


def _finite(value) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def refusal_reason(verdicts: list[Verdict]) -> str:
    return "; ".join(f"{v.check}: {v.reason}" for v in verdicts if not v.passed)


def refusal_key(version: str) -> str:
    """One incident, one alert: `champion_model` and the check-failure sensor both send the
    refusal of a version under this key, so whichever comes first is the only one."""
    return f"promotion_refused:v{version}"


def compared_champion(evaluation: dict) -> str | None:
    """The champion version `model_evaluation` compared with (outputs stored before the key
    existed: the champion it scored)."""
    if "compared_champion" in evaluation:
        return evaluation["compared_champion"]
    return (evaluation.get("champion") or {}).get("version")


def _code_version() -> str:
    from mlops_assets.core.provenance import code_version

    return code_version()


def _verdicts(fair_model, evaluation, test_set, version_uri, dataset, mlflow_tracking, promotion) -> list[Verdict]:
    from mlflow.models import get_model_info

    from mlops_assets.core.intervals import interval_verdict
    from mlops_assets.core.models.data import input_columns, to_split
    from mlops_assets.serving import smoke_test

    spec, policy = dataset.load(), promotion.policy()
    signature = get_model_info(version_uri).signature
    sample = to_split(test_set.head(promotion.smoke_rows), spec).X
    return [
        performance_threshold(evaluation["challenger"]["metrics"], policy),
        no_regression_vs_champion(evaluation, policy),
        bias_verdict(fair_model.get("mitigation", {}).get("bias_after", {"passed": False, "reasons": ["no bias report recorded"]})),
        interval_verdict(evaluation["challenger"].get("intervals"), promotion.coverage_tolerance),
        signature_and_schema(signature.inputs.input_names() if signature else None, bool(signature and signature.outputs), input_columns(spec)),
        serving_verdict(smoke_test(version_uri, mlflow_tracking.tracking_uri, sample), len(sample)),
    ]


class ChampionConfig(dg.Config):
    """`promote` (default): move `champion` to the registered version if every blocking check
    passed. `rollback`: back to the version that served before the current champion.
    `force_promote`: the audited manual override of the checks."""

    action: str = "promote"
    reason: str = ""
    version: str = ""


@dg.asset(
    group_name="registry",
    kinds={"mlflow"},
    ins={"registered_model": dg.AssetIn()},
    # The version's own monitoring reference must exist before it can serve.
    deps=[dg.AssetKey("monitoring_reference")],
    output_required=False,
)
def champion_model(context: dg.AssetExecutionContext, config: ChampionConfig, registered_model: dict, mlflow_tracking: MlflowTracking, alerts: AlertChannels):
    """Alias `champion`, moved only to a version whose blocking checks all passed and whose
    evaluation compared it with the champion that still serves (compare-and-set), or by an
    audited override or rollback; the value is the whole promotion history. A refused
    promotion (a failed blocking check, or a champion that changed during evaluation) is an
    outcome: the step succeeds without a new materialization (the champion did not change),
    the refusal is in the history, observed on this asset with its reason, and sent as one
    WARN alert."""
    from mlops_assets.registry_actions import REFUSED, force_promote, promote, rollback

    registry = mlflow_tracking.registry()
    who = trigger(context)
    if config.action == "promote" and not registered_model.get("passed", False):
        _report_refusal(context, _checks_refusal(registered_model, registry), alerts, refusal_key(registered_model["version"]))
        return
    if config.action == "promote":
        entry = promote(registry, registered_model["version"], who)
    elif config.action == "rollback":
        entry = rollback(registry, config.reason, who)
    elif config.action == "force_promote":
        entry = force_promote(registry, config.version, config.reason, who)
    else:
        raise dg.Failure(f"unknown action {config.action!r}: promote, rollback or force_promote")
    if entry["action"] == REFUSED:
        _report_refusal(context, entry, alerts)
        return
    if entry["action"] in ("rollback", "force_promote"):
        alerts.send(Alert(kind=entry["action"], title=f"{entry['action']}: champion v{entry['previous_champion']} -> v{entry['version']}", reason=entry["reason"], asset="champion_model", severity="WARN", run_id=context.run_id))
    history = _history_frame(registry)
    yield dg.Output(
        history,
        metadata={
            "champion_version": registry.alias_version(CHAMPION) or "none",
            "action": f"{entry['action']} v{entry['version']}, previous champion {version_label(entry['previous_champion'])}",
            "reason": entry["reason"],
            "history": table_metadata(history.select("at", "action", "version", "previous_champion", "trigger", "reason").reverse(), 20),
        },
    )


def _history_frame(registry) -> pl.DataFrame:
    return pl.DataFrame([{**e, "verdicts": str(e.get("verdicts", {}))} for e in registry.history()])


def _checks_refusal(registered: dict, registry) -> dict:
    """The refusal `registered_model` recorded (its failed checks and their reasons), as the
    entry `_report_refusal` shows; the history already has it, so nothing is recorded twice."""
    from datetime import datetime, timezone

    version = registered["version"]
    failed = [v for v in registered.get("verdicts", []) if not v["passed"]]
    reason = "; ".join(f"{v['check']}: {v['reason']}" for v in failed) or "no verdict recorded"
    at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return {"version": version, "previous_champion": registry.alias_version(CHAMPION), "reason": reason, "at": at}


def _report_refusal(context: dg.AssetExecutionContext, entry: dict, alerts: AlertChannels, key: str | None = None) -> None:
    """Skip the materialization (nothing changed, so nothing downstream is stale); put the
    refusal on the asset's timeline as an observation, in the run log, and in one WARN alert."""
    version, serving = entry["version"], entry["previous_champion"]
    title = f"promotion of v{version} refused: champion stays v{serving}" if serving else f"promotion of v{version} refused"
    context.log.warning(f"{title}: {entry['reason']}")
    context.log_event(
        dg.AssetObservation(
            asset_key=context.asset_key,
            metadata={"decision": f"REFUSED v{version}", "champion_version": serving or "none", "reason": entry["reason"], "at": entry["at"]},
        )
    )
    alert = Alert(kind="promotion_refused", title=title, reason=entry["reason"], asset="champion_model", severity="WARN", run_id=context.run_id)
    alerts.send_once(alert, key=key or f"promotion_refused:v{version}:{entry['reason']}")
