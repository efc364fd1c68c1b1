"""The summary `mlops-assets run` and `mlops-assets demo` print, block by block.

Lines other tools and tests read (keep them stable; docs/your_own_data.md shows them):
    nothing to do: no batch file in the landing zone <dir> (...)      (empty platform, exit 0)
    landing zone: <dir>
    ingested <n> new batch(es); <q> quarantined; <f> failed; <d> already received
      ingested <key>
      QUARANTINED <key>: <reason>
      failed, will retry: <key or file name>: <error>
      in progress in another run: <key>
    <job>: SUCCESS|FAILED|REFUSED (run <id>)        (preparation_job, training_job)
    training_job: NOT STARTED: <why>                (another training is queued, running or holds the lock)
      materialized <asset> [<rows> rows] / check <asset>.<check>: pass|FAIL / FAILED step <step>: <error>
    training: <why it runs or is skipped>
    registered <model uri> (<kind>): approved|REFUSED
    champion: v<n> (<action>) | champion: v<n> unchanged (REFUSED v<m>: <reason>)
    monitoring: <n> batch(es) with champion v<n>[ (<k> re-scored: the history they awaited changed)] | no new batch to monitor | no champion yet: ...
      <key>: SUCCESS (run <id>) scored <n> rows, <m> awaiting history; retrain: yes (<reasons>)|no|not scored: waiting for history
      <key>: FAILED (run <id>): <error>
    result: OK | OK: <outcomes> | FAILED: <what broke> | nothing to do (...)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import dagster as dg

from mlops_assets import settings

Echo = Callable[[str], None]


def print_ingest(summary, echo: Echo) -> None:
    """Counts, then one line per batch ingested, quarantined or failed."""
    echo(
        f"ingested {len(summary.succeeded)} new batch(es); {len(summary.quarantined)} quarantined; "
        f"{len(summary.failed)} failed; {len(summary.duplicates)} already received"
    )
    for key in summary.succeeded:
        echo(f"  ingested {key}")
    for key, reason in summary.quarantined.items():
        echo(f"  QUARANTINED {key}: {reason}")
    for key, error in summary.failed.items():
        echo(f"  failed, will retry: {key}: {error}")
    for key in summary.in_progress:
        echo(f"  in progress in another run: {key}")


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
