"""The `mlops-assets` command."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import click

from mlops_assets import settings
from mlops_assets.console import Console, quiet_libraries, verbose_option


@click.group()
def main() -> None:
    """mlops_assets: landed data to a served, monitored, fair and explainable model."""


@main.command()
@click.option("--days", type=click.IntRange(min=1), default=7, show_default=True, help="Days of hourly data to write.")
@click.option("--start", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="First day (default: the day after the last simulated one).")
@click.option("--groups", type=click.IntRange(min=1, max=500), default=8, show_default=True, help="Number of subregions.")
@click.option("--drift", type=float, default=0.0, show_default=True, help="Shift of temperature in °C (load follows).")
@click.option("--corrupt", type=str, default=None, help="Write one deliberately broken file of this kind instead.")
@click.option("--batch-days", type=click.IntRange(min=1), default=None, help="Days per file (default: one file).")
@click.option("--format", "file_format", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--no-defects", is_flag=True, help="Leave out the feed defects (gaps, duplicates, spikes, ...).")
def simulate(days, start, groups, drift, corrupt, batch_days, file_format, seed, no_defects) -> None:
    """Write new demo batch files (hourly load per subregion with weather) into the landing zone
    (MLOPS_LANDING_DIR: a local folder or a gs://bucket/prefix)."""
    from mlops_assets.core.simulate import CORRUPT_KINDS, SimulationConfig, batch_files, corrupt_file
    from mlops_assets.core.spec import load_spec
    from mlops_assets.demo import land_files

    if corrupt and corrupt not in CORRUPT_KINDS:
        raise click.BadParameter(f"{corrupt!r}; choose one of {', '.join(CORRUPT_KINDS)}", param_hint="--corrupt")
    settings.ensure_local_dirs()
    spec = load_spec()
    first = start.date() if start else _next_start()
    config = SimulationConfig(
        start=first, days=days, groups=groups, seed=seed, drift=drift, defects=not no_defects,
        batch_days=batch_days, file_format=file_format,
    )
    files = [corrupt_file(spec, corrupt, config)] if corrupt else batch_files(spec, config)
    for landed in land_files(files, settings.landing_dir()):
        click.echo(f"wrote {landed}")
    if not corrupt:
        _remember_end(first, days)


def _state_file() -> Path:
    return settings.mlops_home() / "simulate_state.json"


def _next_start() -> date:
    from mlops_assets.core.simulate import DEFAULT_START

    if _state_file().exists():
        return date.fromisoformat(json.loads(_state_file().read_text())["next_start"])
    return DEFAULT_START


def _remember_end(first: date, days: int) -> None:
    from datetime import timedelta

    _state_file().parent.mkdir(parents=True, exist_ok=True)
    _state_file().write_text(json.dumps({"next_start": (first + timedelta(days=days)).isoformat()}))


@main.command()
@click.option("--days", type=click.IntRange(min=30), default=180, show_default=True, help="History to simulate when the landing zone is empty.")
@click.option("--groups", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--no-corrupt", is_flag=True, help="Do not land the deliberately broken demo file.")
@verbose_option
def demo(days: int, groups: int, no_corrupt: bool, verbose: bool) -> None:
    """Run the whole graph on the embedded default (SQLite, local files) and print a summary."""
    quiet_libraries(verbose)
    from mlops_assets.demo import run_demo

    sys.exit(run_demo(days=days, groups=groups, corrupt=not no_corrupt, console=Console(verbose)))


@main.command()
@click.option(
    "--train/--no-train", "train", default=None,
    help="Retrain whatever happened (--train), or never (--no-train). Default: when the history changed since the last training.",
)
@verbose_option
def run(train: bool | None, verbose: bool) -> None:
    """Process whatever is in the landing zone, without simulating anything: ingest new files,
    prepare, train and promote when the history changed, and monitor every new batch once a
    champion exists. Prints a summary; the exit code is 1 only when something broke."""
    quiet_libraries(verbose)
    from mlops_assets.local_run import run_landed

    sys.exit(run_landed(train=train, console=Console(verbose)))


@main.command()
@verbose_option
def status(verbose: bool) -> None:
    """Batches ingested and quarantined, the champion and its latest decisions, and the latest
    prepared data (-v: the whole promotion history)."""
    quiet_libraries(verbose)
    from mlops_assets.status import print_status

    print_status(click.echo, history_lines=None if verbose else 5)


@main.command()
@click.option("--reason", required=True, help="Why; recorded in the promotion history.")
@verbose_option
def rollback(reason: str, verbose: bool) -> None:
    """Move `champion` back to the version that served before the current one."""
    quiet_libraries(verbose)
    from mlops_assets.runner import change_champion

    sys.exit(change_champion("rollback_job", {"action": "rollback", "reason": reason}, Console(verbose)))


@main.command()
@click.option("--version", "version", required=True, help="Model version to make champion.")
@click.option("--force", is_flag=True, help="Required: this overrides the blocking checks.")
@click.option("--reason", required=True, help="Why; recorded in the promotion history.")
@verbose_option
def promote(version: str, force: bool, reason: str, verbose: bool) -> None:
    """The audited manual override: make VERSION champion whatever its checks said."""
    if not force:
        raise click.UsageError("promotion outside the gates needs --force (checked promotions happen in training_job)")
    quiet_libraries(verbose)
    from mlops_assets.runner import change_champion

    sys.exit(change_champion("manual_promotion_job", {"action": "force_promote", "reason": reason, "version": version}, Console(verbose)))


@main.command()
@click.option("--start", type=click.DateTime(formats=["%Y-%m-%d"]), required=True, help="First UTC day (YYYY-MM-DD).")
@click.option("--end", type=click.DateTime(formats=["%Y-%m-%d"]), required=True, help="Last UTC day, included (YYYY-MM-DD).")
@verbose_option
def fetch(start, end, verbose: bool) -> None:
    """Pull the real sources into the landing zone for each UTC day from START to END: hourly
    demand per subregion from the EIA API v2 (key in EIA_API_KEY) and hourly weather from
    Open-Meteo, checked, joined and landed as one batch file per day (one `sources_job` run per
    day, as a partition backfill in the UI). Configuration: MLOPS_SOURCES_CONFIG (docs/sources.md)."""
    import os

    if end < start:
        raise click.BadParameter(f"{end:%Y-%m-%d} is before --start {start:%Y-%m-%d}", param_hint="--end")
    if not os.environ.get("EIA_API_KEY"):
        raise click.ClickException("EIA_API_KEY is not set: get a free key at https://www.eia.gov/opendata/register.php (see docs/sources.md)")
    quiet_libraries(verbose)
    from mlops_assets.defs.sources.local_fetch import fetch_range

    sys.exit(fetch_range(start.date(), end.date(), Console(verbose)))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address (loopback by default).")
@click.option("--port", default=5001, show_default=True, type=int)
@click.option("--reload-seconds", default=30.0, show_default=True, type=float, help="How often to look for a new champion (0: never).")
def serve(host: str, port: int, reload_seconds: float) -> None:
    """Serve `models:/<name>@champion` (MLflow's /invocations protocol) behind request checks:
    a missing or null required feature, a value outside the spec's range, a wrong type or an
    empty group label gets HTTP 400 naming the column and the row; a group the champion never
    learned is forecast by the group fallback, and the response says so per row."""
    from mlops_assets.definitions import build_resources
    from mlops_assets.server import serve as run_server

    resources = build_resources()
    tracking = resources["mlflow_tracking"]
    click.echo(f"serving models:/{tracking.registered_model}@champion on http://{host}:{port}")
    run_server(
        tracking.tracking_uri, tracking.registered_model, resources["dataset"].load(), host, port, reload_seconds,
        state_dir=resources["drift"].interval_state_root(),
    )


@main.command()
@click.option("--version", "version", default=None, help="Model version (default: the champion, else the newest version).")
@click.option("--format", "file_format", type=click.Choice(["md", "html"]), default="md", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="File to write (default: model_card_v<V>.<format> here).")
def card(version: str | None, file_format: str, out: Path | None) -> None:
    """Write the model card of a registered version (as logged on its MLflow run by the
    `model_card` asset) to a file, and print its path."""
    quiet_libraries(False)
    from mlops_assets.definitions import build_resources
    from mlops_assets.defs.registry.model_card import CardNotFound, card_version, download_card

    tracking = build_resources()["mlflow_tracking"]
    try:
        chosen = card_version(tracking, version)
        path = out or Path(f"model_card_v{chosen}.{file_format}")
        click.echo(download_card(tracking, chosen, file_format, str(path)))
    except CardNotFound as error:
        raise click.ClickException(str(error)) from None


if __name__ == "__main__":
    main()
