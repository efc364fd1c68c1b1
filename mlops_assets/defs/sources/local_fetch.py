"""`mlops-assets fetch`: one `sources_job` run per UTC day on the local instance (the runs a
partition backfill in the UI makes), one line per day saying where its file landed."""

from __future__ import annotations

import re
from datetime import date, timedelta

import dagster as dg

from mlops_assets.console import Console

SOURCES_JOB = "sources_job"


def days_between(start: date, end: date) -> list[date]:
    """Every day from `start` to `end`, both included."""
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def failed_checks(result: dg.ExecuteInProcessResult, severity: dg.AssetCheckSeverity) -> list[str]:
    """"check: description" of each check of the run that failed with `severity` (ERROR ones
    stopped the day from landing; WARN ones list gaps)."""
    return [
        f"{e.check_name}: {e.description}" for e in result.get_asset_check_evaluations() if not e.passed and e.severity == severity
    ]


def fetch_day(defs: dg.Definitions, instance: dg.DagsterInstance, day: date, console: Console) -> bool:
    """Run `sources_job` for `day`; True when its file landed."""
    from mlops_assets.runner import failure_message, quiet_run_config

    with console.step(day.isoformat()) as step:
        result = defs.resolve_job_def(SOURCES_JOB).execute_in_process(
            partition_key=day.isoformat(), instance=instance, raise_on_error=False,
            run_config=quiet_run_config(), tags={"mlops/trigger": "cli:fetch"},
        )
        landed = result.asset_materializations_for_node("source_batch_file") if result.success else []
        if landed:
            meta = landed[0].metadata
            step.line = f"landed {meta['path'].value} ({meta['dagster/row_count'].value} rows)"
        else:
            blocked = failed_checks(result, dg.AssetCheckSeverity.ERROR)
            # "SourceError: ...", not "mlops_assets.core.sources.errors.SourceError: ...".
            error = re.sub(r"^[\w.]+\.(\w+: )", r"\1", failure_message(result))
            step.line, step.broken = f"FAILED: {blocked[0] if blocked else error}", True
    for warning in failed_checks(result, dg.AssetCheckSeverity.WARN):
        console.echo(f"{'':9} warning: {warning}"[:400])
    console.detail(f"run {result.run_id}")
    return bool(landed)


def fetch_range(start: date, end: date, console: Console) -> int:
    """Fetch every day from `start` to `end` (inclusive); exit code 1 when any day failed."""
    from mlops_assets.definitions import build_definitions
    from mlops_assets.runner import local_instance

    instance = local_instance()
    defs = build_definitions()
    failed = [day for day in days_between(start, end) if not fetch_day(defs, instance, day, console)]
    if failed:
        console.echo(f"\nresult: FAILED for {len(failed)} day(s): {', '.join(d.isoformat() for d in failed)} (details in the Dagster UI)")
        return 1
    console.echo("\nresult: OK (the new files are ingested by new_data_sensor, or now by `mlops-assets run`)")
    return 0
