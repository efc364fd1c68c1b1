"""`mlops-assets run`: whatever is in the landing zone, through the graph, in this process.

The same path the daemon's sensors take, one step after the other: ingest new (and pending)
files, rebuild the prepared data when new batches were cleaned, train and promote when the
history's data version differs from the one the last training used, and predict and report
drift for every cleaned batch not yet monitored once a champion exists (and again for a batch
whose rows awaited history once the history has changed). `demo` lands its
simulated data and then takes this same path."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from mlops_assets import settings
from mlops_assets.defs.partitions import BATCHES
from mlops_assets.console import Console
from mlops_assets.summary import (
    Echo,
    ingest_line,
    monitoring_line,
    preparation_line,
    print_ingest,
    print_model,
    print_monitoring,
    print_next_steps,
    print_result,
    promotion_refusals,
    refused_by_checks,
    step_text,
    training_line,
)

PREPARATION_GROUP = "preparation"


@dataclass
class RunOutcome:
    """What one invocation did: `broken` lists what failed (the exit code is 1 when any did);
    `outcomes` lists results that are decisions, not failures (quarantine, refused promotion);
    `summary` the blocks printed after the step lines (the candidates and the verdicts)."""

    trigger: str = "cli:run"
    did_something: bool = False
    prepared_now: bool = False
    broken: list[str] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    summary: list[Callable[[Echo], None]] = field(default_factory=list)  # printed after the step lines


def _latest_record(instance: dg.DagsterInstance, asset: str, before: int | None = None):
    """The newest materialization record of `asset` (older than storage id `before`, if given)."""
    wanted = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), before_storage_id=before)
    records = instance.fetch_materializations(wanted, limit=1).records
    return records[0] if records else None


def _data_version(record) -> str | None:
    if record is None or record.asset_materialization is None:
        return None
    return record.asset_materialization.tags.get("dagster/data_version")


def history_is_stale(instance: dg.DagsterInstance, defs: dg.Definitions) -> bool:
    """A batch was cleaned after some prepared asset (history, features, splits, profile) was
    last built, or one never was."""
    clean = _latest_record(instance, "clean_load")
    if clean is None:
        return False
    for key in dg.AssetSelection.groups(PREPARATION_GROUP).resolve(defs.resolve_asset_graph()):
        record = _latest_record(instance, key.to_user_string())
        if record is None or record.storage_id < clean.storage_id:
            return True
    return False


def trained_on(instance: dg.DagsterInstance) -> tuple[bool, str | None]:
    """(whether a model was ever registered, the `load_history` data version current when the
    last one was): a refused version counts, so an unchanged history is not retrained."""
    registered = _latest_record(instance, "registered_model")
    if registered is None:
        return False, None
    return True, _data_version(_latest_record(instance, "load_history", before=registered.storage_id))


def training_decision(instance: dg.DagsterInstance, train: bool | None) -> tuple[bool, str]:
    """(train?, why), from `--train` / `--no-train` or from the history's data version."""
    if train is False:
        return False, "skipped (--no-train)"
    if train:
        return True, "forced (--train): preparation and training from the clean batches"
    current = _data_version(_latest_record(instance, "load_history"))
    if current is None:
        return False, "skipped: no history yet (no clean batch)"
    ever, used = trained_on(instance)
    if not ever:
        return True, f"first training (history data version {current})"
    if used != current:
        return True, f"history changed (data version {used} -> {current})"
    return False, f"skipped: history unchanged since the last training (data version {current})"


def wait_for_settled(landing, console: Console) -> None:
    """Files copied in just before `run` are still inside the settle window: wait it out once
    rather than say there is nothing to do."""
    if landing.unsettled_files():
        console.echo(f"waiting {landing.settle_seconds:g}s for files still being written to the landing zone")
        time.sleep(landing.settle_seconds)


def ingest(defs: dg.Definitions, instance: dg.DagsterInstance, outcome: RunOutcome, console: Console) -> None:
    from mlops_assets.runner import ingest_landed

    with console.step("ingest") as step:
        summary = ingest_landed(defs, instance)
        step.line = ingest_line(summary)
        step.broken = bool(summary.failed)
    print_ingest(summary, console)
    outcome.did_something |= bool(summary.succeeded or summary.quarantined or summary.failed)
    if summary.quarantined:
        where = settings.quarantine_dir()
        outcome.outcomes.append(f"{len(summary.quarantined)} batch(es) quarantined (reasons in {where})")
    if summary.failed:
        outcome.broken.append(f"ingestion of {len(summary.failed)} file(s) failed (left in landing, retried next run)")


def prepare(defs: dg.Definitions, instance: dg.DagsterInstance, outcome: RunOutcome, console: Console) -> bool:
    """Rebuild history, features and splits when a batch was cleaned since; False if that broke."""
    from mlops_assets.runner import run_job

    if not history_is_stale(instance, defs):
        return True
    outcome.did_something = True
    with console.step("prepare") as step:
        result = run_job(defs, "preparation_job", instance, tags={"mlops/trigger": outcome.trigger})
        step.line, step.broken = preparation_line(result), not result.success
    print_result("preparation_job", result, console.detail)
    outcome.prepared_now = result.success
    if not result.success:
        outcome.broken.append("preparation_job")
    return result.success


def train(
    defs: dg.Definitions, instance: dg.DagsterInstance, train_flag: bool | None, outcome: RunOutcome, console: Console
) -> None:
    """training_job when decided: without its preparation steps when `prepare` has just run
    them with every check passing, else the whole job (its blocking checks guard training)."""
    from mlops_assets.runner import TrainingInProgress, run_job

    go, why = training_decision(instance, train_flag)
    if not go:
        console.echo(step_text("train", why))
        return
    outcome.did_something = True
    selection = None
    if outcome.prepared_now:
        job_keys = defs.resolve_job_def("training_job").asset_layer.selected_asset_keys
        selection = set(job_keys) - dg.AssetSelection.groups(PREPARATION_GROUP).resolve(defs.resolve_asset_graph())
    with console.step("train") as step:
        try:
            result = run_job(defs, "training_job", instance, asset_selection=selection, tags={"mlops/trigger": outcome.trigger})
        except TrainingInProgress as busy:
            step.line = f"not started: {busy}"
            outcome.outcomes.append("training skipped: another training is running")
            return
        step.line, step.broken = training_line(result, why), not result.success
    refused = result.success and refused_by_checks(result)
    print_result("training_job", result, console.detail, verdict="REFUSED" if refused else None)
    outcome.summary.append(lambda echo: print_model(result, echo))
    if not refused:
        outcome.outcomes += [f"promotion refused: {reason}" for reason in promotion_refusals(result)]
    if refused:
        outcome.outcomes.append("the new model was refused by its blocking checks (champion unchanged)")
    elif not result.success:
        outcome.broken.append("training_job")


def unmonitored_batches(instance: dg.DagsterInstance) -> list[str]:
    """Cleaned batches without a drift report, in landing order."""
    cleaned = instance.get_materialized_partitions(dg.AssetKey("clean_load"))
    reported = instance.get_materialized_partitions(dg.AssetKey("drift_report"))
    return [key for key in instance.get_dynamic_partitions(BATCHES) if key in cleaned and key not in reported]


def monitor(defs: dg.Definitions, instance: dg.DagsterInstance, outcome: RunOutcome, console: Console) -> None:
    """`monitoring_job` for every cleaned batch not monitored yet and every batch whose rows
    awaited history that has changed since (as `rescore_sensor` does), once a champion exists."""
    from mlops_assets.defs.monitoring.rescore import batches_awaiting_history
    from mlops_assets.resources.registry import CHAMPION

    new = unmonitored_batches(instance)
    rescore = set(batches_awaiting_history(instance)) - set(new)
    if not new and not rescore:
        console.echo(step_text("monitor", "no new batch to monitor"))
        return
    champion = defs.resources["mlflow_tracking"].registry().alias_version(CHAMPION)
    if champion is None:
        console.echo(step_text("monitor", f"no champion yet: {len(new)} batch(es) wait for one"))
        return
    outcome.did_something = True
    again = f" ({len(rescore)} re-scored: the history they awaited changed)" if rescore else ""
    console.detail(f"\nmonitoring: {len(new) + len(rescore)} batch(es) with champion v{champion}{again}")
    keys = [k for k in instance.get_dynamic_partitions(BATCHES) if k in rescore or k in new]
    with console.step("monitor") as step:
        results = {key: _monitor_batch(defs, instance, key, outcome.trigger, console) for key in keys}
        step.line = monitoring_line(results, champion, len(rescore))
        step.broken = not all(r.success for r in results.values())
    outcome.broken += [f"monitoring_job {key}" for key, result in results.items() if not result.success]


def _monitor_batch(defs: dg.Definitions, instance: dg.DagsterInstance, key: str, trigger: str, console: Console):
    from mlops_assets.runner import quiet_run_config

    result = defs.resolve_job_def("monitoring_job").execute_in_process(
        partition_key=key, instance=instance, raise_on_error=False, run_config=quiet_run_config(),
        tags={"mlops/trigger": trigger},
    )
    print_monitoring(key, result, console.detail)
    return result


def process_landing(
    defs: dg.Definitions, instance: dg.DagsterInstance, train_flag: bool | None, console: Console, trigger: str = "cli:run"
) -> int:
    """Everything `run` does; the exit code: 1 only when something broke. `trigger` is recorded
    on the runs (and in the promotion history)."""
    outcome = RunOutcome(trigger=trigger)
    landing = defs.resources["landing"]
    wait_for_settled(landing, console)
    if not landing.list_files() and not instance.get_dynamic_partitions(BATCHES):
        console.echo(f"nothing to do: no batch file in the landing zone {landing.root} (drop CSV or Parquet files there)")
        return 0
    console.detail(f"landing zone: {landing.root}")
    ingest(defs, instance, outcome, console)
    # Forced training runs the whole training_job, preparation included.
    if train_flag or prepare(defs, instance, outcome, console):
        train(defs, instance, train_flag, outcome, console)
        monitor(defs, instance, outcome, console)
    return report(outcome, console.echo)


def report(outcome: RunOutcome, echo: Echo) -> int:
    if not outcome.did_something and not outcome.broken:
        echo("\nresult: nothing to do (no new file in the landing zone, history unchanged, every batch monitored)")
        return 0
    for block in outcome.summary:
        block(echo)
    print_next_steps(echo)
    if outcome.broken:
        echo(f"\nresult: FAILED: {'; '.join(outcome.broken)}")
        return 1
    echo(f"\nresult: OK{': ' + '; '.join(outcome.outcomes) if outcome.outcomes else ''}")
    return 0


def run_landed(train: bool | None, console: Console) -> int:
    """`mlops-assets run` on the embedded default (or the deployment the environment names)."""
    from mlops_assets.definitions import build_definitions
    from mlops_assets.runner import local_instance

    instance = local_instance()
    return process_landing(build_definitions(), instance, train, console)
