"""What `mlops-assets run` and `mlops-assets demo` print: one line per step, then the summary.

Lines other tools and tests read (keep them stable; docs/your_own_data.md shows them):
    nothing to do: no batch file in the landing zone <dir> (...)      (empty platform, exit 0)
    ingest    <n> new batch(es) ingested, <q> quarantined[, <f> failed (retried next run)][, <d> already received]   <s>s
      QUARANTINED <key>: <reason> (raw bytes and reason in <quarantine>/<key>)
      failed, will retry: <key or file name>: <error>
    prepare   history <rows> rows; <k>/<n> checks pass | FAILED: <step>: <error>                 <s>s
    train     <why>: v<n> approved; champion v<n> | v<n> REFUSED by <checks>; champion stays v<m> | skipped ... | not started: <why>
    monitor   <n> batch(es) scored with champion v<n> (<rows> rows[, <k> re-scored]); retrain: no|yes, <k> batch(es)[; <f> FAILED]
    models (validation RMSE / test MAPE):   ... one row per candidate
    registered <model uri> (<kind>): approved|REFUSED, then one line per blocking check
    champion: v<n> (<action>) | champion: v<n> unchanged (REFUSED v<m>: <reason>)
    result: OK | OK: <outcomes> | FAILED: <what broke> | nothing to do (...)
With -v also: the landing zone, every batch ingested, each job's materializations and checks
(`<job>: SUCCESS|FAILED|REFUSED (run <id>)`), one line per monitored batch, and the logs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import dagster as dg

from mlops_assets import settings

Echo = Callable[[str], None]


def step_text(name: str, text: str) -> str:
    """A step line without a duration (a step decided not to run)."""
    from mlops_assets.console import STEP_WIDTH

    return f"{name:<{STEP_WIDTH - 1}} {text}"


def ingest_line(summary) -> str:
    counts = f"{len(summary.succeeded)} new batch(es) ingested, {len(summary.quarantined)} quarantined"
    extra = [f"{n} {what}" for n, what in ((len(summary.failed), "failed (retried next run)"), (len(summary.duplicates), "already received"), (len(summary.in_progress), "in another run")) if n]
    return ", ".join([counts, *extra])


def print_ingest(summary, console) -> None:
    """Each quarantined or failed file in one line with its reason (and where it went); with
    -v, the counts and every batch ingested too."""
    console.detail(
        f"ingested {len(summary.succeeded)} new batch(es); {len(summary.quarantined)} quarantined; "
        f"{len(summary.failed)} failed; {len(summary.duplicates)} already received"
    )
    for key in summary.succeeded:
        console.detail(f"  ingested {key}")
    where = settings.quarantine_dir().rstrip("/")
    for key, reason in summary.quarantined.items():
        console.echo(f"  QUARANTINED {key}: {reason[:300]} (raw bytes and reason in {where}/{key})")
    for key, error in summary.failed.items():
        console.echo(f"  failed, will retry: {key}: {error}")
    for key in summary.in_progress:
        console.detail(f"  in progress in another run: {key}")


def _materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}


def _broken(result: dg.ExecuteInProcessResult) -> str:
    """What broke, in one line: each failed check (ERROR severity) with its reason, then each
    failed step that is not just a blocking check's failure."""
    from mlops_assets.runner import step_errors

    checks = [
        f"check {c.asset_key.to_user_string()}.{c.check_name}: {(c.description or 'failed')[:160]}"
        for c in result.get_asset_check_evaluations() if not c.passed and c.severity == dg.AssetCheckSeverity.ERROR
    ]
    errors = [f"{step}: {message[:160]}" for step, message in step_errors(result) if "blocking asset check" not in message]
    return "FAILED: " + ("; ".join(checks + errors) or "see the run in the Dagster UI")


def preparation_line(result: dg.ExecuteInProcessResult) -> str:
    if not result.success:
        return _broken(result)
    rows = _materializations(result).get("load_history", {}).get("dagster/row_count")
    checks = result.get_asset_check_evaluations()
    passed = sum(1 for c in checks if c.passed)
    history = f"history {rows.value:,} rows; " if rows else ""
    return f"{history}{passed}/{len(checks)} checks pass"


def refused_by_checks(result: dg.ExecuteInProcessResult) -> bool:
    """Whether the version this run registered was refused by its blocking checks."""
    decision = _materializations(result).get("registered_model", {}).get("decision")
    return bool(decision and str(decision.value).startswith("REFUSED"))


def training_line(result: dg.ExecuteInProcessResult, why: str) -> str:
    """`<why>: v<n> (<kind>) approved; champion v<n>` or `... REFUSED by <checks>; champion stays v<m>`."""
    if not result.success:
        return _broken(result)
    meta = _materializations(result)
    registered = meta.get("registered_model")
    if registered is None:
        return f"{why.split(' (')[0]}: nothing registered"
    head = f"{why.split(' (')[0]}: v{registered['version'].value}"
    champion = meta.get("champion_model")
    refused = _champion_observations(result)
    if refused_by_checks(result):
        failed = str(registered["decision"].value).removeprefix("REFUSED: ")
        return f"{head} REFUSED by {failed}; champion stays {_version(refused[0].metadata['champion_version'].value) if refused else 'unchanged'}"
    if champion is not None:
        return f"{head} approved; champion v{champion['champion_version'].value}"
    if refused:
        return f"{head} approved but not promoted ({refused[0].metadata['reason'].value[:100]})"
    return f"{head} approved"


def _version(label: str) -> str:
    return "none" if label in ("none", "", None) else f"v{label}"


def monitoring_line(results: dict[str, dg.ExecuteInProcessResult], champion: str, rescored: int) -> str:
    """Batches scored with the champion, rows, and whether any asks for retraining."""
    done = [r for r in results.values() if r.success]
    metas = [_materializations(r) for r in done]
    rows = sum(m.get("batch_predictions", {}).get("rows_scored", dg.MetadataValue.int(0)).value or 0 for m in metas)
    retrain = [m for m in metas if (flag := m.get("drift_report", {}).get("retrain")) and flag.value]
    again = f", {rescored} re-scored" if rescored else ""
    line = f"{len(done)} batch(es) scored with champion v{champion} ({rows:,} rows{again}); retrain: {'yes, ' + str(len(retrain)) + ' batch(es)' if retrain else 'no'}"
    failed = len(results) - len(done)
    return line + (f"; {failed} FAILED" if failed else "")


def print_result(name: str, result: dg.ExecuteInProcessResult, echo: Echo, verdict: str | None = None) -> None:
    """The run's verdict, every materialization (with rows), every check and every failed step."""
    from mlops_assets.runner import step_errors

    echo(f"\n{name}: {verdict or ('SUCCESS' if result.success else 'FAILED')} (run {result.run_id})")
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        rows = mat.metadata.get("dagster/row_count")
        echo(f"  materialized {mat.asset_key.to_user_string():<16} {'' if rows is None else f'{rows.value:>9,} rows'}")
    for event in result.get_asset_check_evaluations():
        echo(f"  check {event.asset_key.to_user_string()}.{event.check_name}: {'pass' if event.passed else 'FAIL'}")
    if verdict != "REFUSED":  # there the failed step is the refusal, shown with each check's reason
        for step, message in step_errors(result):
            echo(f"  FAILED step {step}: {message}")


def _number(value, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.2f}{suffix}"


def print_model(result: dg.ExecuteInProcessResult, echo: Echo) -> None:
    """The candidates compared, the registered version with each blocking check, the champion."""
    outputs = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    if "registered_model" not in outputs:
        return
    candidate = result.output_for_node("candidate_model")
    registered = result.output_for_node("registered_model")
    echo("\nmodels (validation RMSE / test MAPE):")
    for row in candidate.get("comparison", []):
        echo(
            f"  {row['model']:<8} {_number(row.get('val_rmse')):>10} / {_number(row.get('test_mape'), '%'):>7}"
            f"{'  <- candidate' if row.get('chosen') else ''}"
        )
    verdict = "approved" if registered["passed"] else "REFUSED"
    echo(f"registered {registered['model_uri']} ({registered['kind']}): {verdict}")
    for v in registered["verdicts"]:
        echo(f"  {v['check']:<26} {'pass' if v['passed'] else 'FAIL'}  {v['reason'][:110]}")
    if "champion_model" in outputs:
        events = result.get_asset_materialization_events()
        meta = next(e for e in events if e.asset_key.to_user_string() == "champion_model").materialization.metadata
        echo(f"champion: v{meta['champion_version'].value} ({meta['action'].value})")
    for seen in _champion_observations(result):
        meta = seen.metadata
        echo(f"champion: v{meta['champion_version'].value} unchanged ({meta['decision'].value}: {meta['reason'].value})")


def _champion_observations(result: dg.ExecuteInProcessResult) -> list:
    """The observations `champion_model` logs when compare-and-set refuses a promotion."""
    return [
        e.event_specific_data.asset_observation for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION" and e.asset_key and e.asset_key.to_user_string() == "champion_model"
    ]


def promotion_refusals(result: dg.ExecuteInProcessResult) -> list[str]:
    """The reasons of compare-and-set refusals in a training run ("champion changed from v1 to v2 ...")."""
    return [str(seen.metadata["reason"].value) for seen in _champion_observations(result) if "reason" in seen.metadata]


def print_monitoring(key: str, result: dg.ExecuteInProcessResult, echo: Echo) -> None:
    """One line per batch: rows scored and the drift verdict, or what failed."""
    from mlops_assets.runner import failure_message

    if not result.success:
        echo(f"  {key}: FAILED (run {result.run_id}): {failure_message(result)}")
        return
    meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    predictions, drift = meta.get("batch_predictions", {}), meta.get("drift_report", {})
    scored, awaiting = predictions.get("rows_scored"), predictions.get("rows_awaiting_history")
    retrain, reasons = drift.get("retrain"), drift.get("reasons")
    scored = scored.value if scored else 0
    if drift.get("status") and reasons:  # not judged: waiting for history, or no reference
        verdict = str(reasons.value)[:150]
    else:
        verdict = "retrain: yes" if retrain and retrain.value else "retrain: no"
        if retrain and retrain.value and reasons and reasons.value:
            verdict += f" ({reasons.value[:150]})"
    counted = f"scored {scored} rows, {awaiting.value if awaiting else 0} awaiting history"
    echo(f"  {key}: SUCCESS (run {result.run_id}) {counted}; {verdict}")


def print_next_steps(echo: Echo) -> None:
    echo(
        f"\nlocal state: {settings.mlops_home()}"
        f"\nDagster UI:  make ui         ({settings.dagster_url()}: asset graph, runs, checks, sensors)"
        f"\nMLflow UI:   make mlflow-ui  ({settings.mlflow_url()}: runs, plots, registry)"
        "\nstatus:      .venv/bin/mlops-assets status"
    )
