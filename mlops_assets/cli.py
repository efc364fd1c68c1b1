"""The `mlops-assets` command."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import click

from mlops_assets import settings


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
    """Write new demo batch files (hourly load per subregion with weather) into the landing zone."""
    from mlops_assets.core.simulate import CORRUPT_KINDS, SimulationConfig, write_batches, write_corrupt
    from mlops_assets.core.spec import load_spec

    settings.ensure_local_dirs()
    spec = load_spec()
    landing = Path(settings.landing_dir())
    first = start.date() if start else _next_start()
    config = SimulationConfig(
        start=first, days=days, groups=groups, seed=seed, drift=drift, defects=not no_defects,
        batch_days=batch_days, file_format=file_format,
    )
    if corrupt:
        if corrupt not in CORRUPT_KINDS:
            raise click.BadParameter(f"{corrupt!r}; choose one of {', '.join(CORRUPT_KINDS)}", param_hint="--corrupt")
        click.echo(f"wrote {write_corrupt(spec, corrupt, landing, config)}")
        return
    paths = write_batches(spec, config, landing)
    _remember_end(first, days)
    for path in paths:
        click.echo(f"wrote {path}")


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
def demo(days: int, groups: int, no_corrupt: bool) -> None:
    """Run the whole graph on the embedded default (SQLite, local files) and print a summary."""
    from mlops_assets.demo import run_demo

    sys.exit(run_demo(days=days, groups=groups, corrupt=not no_corrupt, echo=click.echo))


@main.command()
def status() -> None:
    """Batches ingested and quarantined, and the latest prepared data."""
    from mlops_assets.status import print_status

    print_status(click.echo)


if __name__ == "__main__":
    main()
