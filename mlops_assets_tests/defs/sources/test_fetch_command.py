"""`mlops-assets fetch --start --end` against the local stand-in server: one file per UTC day
in the landing zone, taken by ingestion unchanged, and the key nowhere to be found."""

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from click.testing import CliRunner

from mlops_assets.core.spec import load_spec
from mlops_assets.runner import ingest_landed
from mlops_assets_tests.sources_server import EIA_KEY, demand_value

SPEC = load_spec()
SHIPPED_SUBREGIONS = [f"ZON{c}" for c in "ABCDEFGHIJK"]
DAYS = ["2024-01-01", "2024-01-02", "2024-01-03"]


def fetch_cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    """The command as a user runs it, in its own process (the server runs in this one)."""
    env = {**os.environ, "MLOPS_HOME": str(home)}
    env.pop("DAGSTER_HOME", None)
    return subprocess.run([sys.executable, "-m", "mlops_assets.cli", "fetch", *args], capture_output=True, text=True, env=env, timeout=300)


def files_holding(root: Path, secret: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_fetch_lands_three_days_of_24_hours_that_ingestion_takes_unchanged(source_server, mlops_home):
    done = fetch_cli(mlops_home, "--start", DAYS[0], "--end", DAYS[-1], "-v")  # -v: every Dagster event logged too
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    landing = mlops_home / "landing"
    for day in DAYS:
        assert f"landed {landing / f'eia_NYIS_{day}.csv'} (264 rows)" in done.stdout
    assert sorted(p.name for p in landing.iterdir()) == [f"eia_NYIS_{day}.csv" for day in DAYS]
    for day in DAYS:
        frame = pl.read_csv(landing / f"eia_NYIS_{day}.csv", infer_schema_length=0)
        first = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
        for subba in SHIPPED_SUBREGIONS:
            stamps = frame.filter(pl.col(SPEC.group) == subba)[SPEC.timestamp].to_list()
            assert stamps == [(first + timedelta(hours=h)).isoformat() for h in range(24)]

    from mlops_assets.definitions import build_definitions
    from mlops_assets.runner import local_instance

    instance = local_instance()
    ingested = ingest_landed(build_definitions("local"), instance)
    assert len(ingested.succeeded) == 3 and not ingested.quarantined and not ingested.failed
    for key in ingested.succeeded:
        clean = pl.read_parquet(mlops_home / "storage" / "clean_load" / f"{key}.parquet")
        assert clean.height == 24 * len(SHIPPED_SUBREGIONS)
        expected = [float(demand_value(g, t)) for g, t in clean.select(SPEC.group, SPEC.timestamp).rows()]
        assert clean[SPEC.target.column].to_list() == expected
    assert len(instance.get_materialized_partitions(dg.AssetKey("clean_load"))) == 3
    assert len(instance.get_materialized_partitions(dg.AssetKey("source_batch_file"))) == 3

    # The key: not in the command's output (every event at DEBUG), nor anywhere in the stored state.
    assert EIA_KEY not in done.stdout + done.stderr
    assert files_holding(mlops_home, EIA_KEY) == []


@pytest.fixture
def quiet_env(monkeypatch):
    """What the command sets for itself (quiet_libraries), restored after the in-process run."""
    import logging
    import warnings

    from mlops_assets.console import NOISY_LOGGERS

    for name, value in (("MLOPS_LOG_LEVEL", "CRITICAL"), ("MLFLOW_LOGGING_LEVEL", "ERROR"), ("PYTHONWARNINGS", "ignore"),
                        ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")):
        monkeypatch.setenv(name, value)
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    with warnings.catch_warnings():
        yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_a_wrong_key_fails_the_day_with_a_clear_error_and_never_shows_it(source_server, small_sources, mlops_home, monkeypatch, quiet_env):
    from mlops_assets.cli import main

    wrong = "wrong-key-0c3e9d"
    monkeypatch.setenv("EIA_API_KEY", wrong)
    done = CliRunner().invoke(main, ["fetch", "--start", DAYS[0], "--end", DAYS[0]])
    assert done.exit_code == 1
    assert "2024-01-01 FAILED: SourceError: HTTP 403 Forbidden (the API key was refused: "
    "check EIA_API_KEY, see docs/sources.md) from GET http://127.0.0.1:" in done.output
    assert "region-sub-ba-data/data/?frequency=hourly" in done.output and "API_KEY_INVALID" in done.output
    assert "Traceback" not in done.output and wrong not in done.output
    assert files_holding(mlops_home, wrong) == [] and not list((mlops_home / "landing").iterdir())


def test_a_missing_key_is_one_clear_line(mlops_home, monkeypatch):
    from mlops_assets.cli import main

    monkeypatch.delenv("EIA_API_KEY", raising=False)
    done = CliRunner().invoke(main, ["fetch", "--start", DAYS[0], "--end", DAYS[0]])
    assert done.exit_code == 1
    assert done.output.strip().splitlines() == [
        "Error: EIA_API_KEY is not set: get a free key at https://www.eia.gov/opendata/register.php (see docs/sources.md)"
    ]


def test_an_end_before_the_start_is_a_usage_error(mlops_home, monkeypatch):
    from mlops_assets.cli import main

    monkeypatch.setenv("EIA_API_KEY", EIA_KEY)
    done = CliRunner().invoke(main, ["fetch", "--start", DAYS[1], "--end", DAYS[0]])
    assert done.exit_code == 2 and "2024-01-01 is before --start 2024-01-02" in done.output


def test_a_blocked_day_fails_alone_and_gaps_are_warned_under_their_day(source_server, small_sources, mlops_home, quiet_env):
    from mlops_assets.cli import main

    first = datetime(2024, 1, 1, tzinfo=timezone.utc)
    source_server.missing_demand |= {("ZONJ", first + timedelta(hours=h)) for h in range(24)}
    source_server.missing_demand |= {("ZONA", first + timedelta(days=1, hours=3))}
    done = CliRunner().invoke(main, ["fetch", "--start", DAYS[0], "--end", DAYS[1]])
    assert done.exit_code == 1
    lines = done.output.splitlines()
    assert lines[0].startswith("2024-01-01 FAILED: eia_demand_complete_hours: 1 series without any value on 2024-01-01: ZONJ")
    assert lines[1].startswith(f"2024-01-02 landed {mlops_home / 'landing' / 'eia_NYIS_2024-01-02.csv'} (48 rows)")
    assert "warning: eia_demand_complete_hours: 1 missing hours on 2024-01-02: ZONA 03:00" in lines[2]
    assert "result: FAILED for 1 day(s): 2024-01-01" in done.output
    assert sorted(p.name for p in (mlops_home / "landing").iterdir()) == ["eia_NYIS_2024-01-02.csv"]
