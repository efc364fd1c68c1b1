"""`mlops-assets run`, as a user runs it (a subprocess, fast profile), on hourly demo-like data:
one MLOPS_HOME goes through the story a newcomer lives, one command after the other."""

import json
from pathlib import Path

import polars as pl
import pytest

from mlops_assets.core.ingest import batch_key, sha256_hex
from mlops_assets.core.spec import load_spec
from mlops_assets_tests.builders import hourly_frame, to_csv_bytes
from mlops_assets_tests.test_cli import cli


def cli_with(home: Path, env: dict[str, str], *args: str):
    """`cli` with extra environment settings."""
    import os

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return cli(home, *args)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)

# The story trains twice and runs the CLI nine times: on a loaded 2-core machine it takes longer than the default 900 s.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
SPEC = load_spec()
GROUPS = ["A", "B"]


def land(home: Path, name: str, data: bytes) -> str:
    (home / "landing" / name).write_bytes(data)
    return batch_key(name, sha256_hex(data))


def day(n: int) -> bytes:
    return to_csv_bytes(hourly_frame(SPEC, GROUPS, 24, start_hour=24 * n, seed=n))


def with_text_in_target(frame: pl.DataFrame) -> bytes:
    """A feed defect that is a data error: one target reading is text."""
    target = pl.col(SPEC.target.column).cast(pl.String)
    broken = pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("meter-fault")).otherwise(target)
    return to_csv_bytes(frame.with_columns(broken.alias(SPEC.target.column)))


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    home = tmp_path_factory.mktemp("run") / "mlops"
    steps = {"empty": cli(home, "run")}
    history = land(home, "history.csv", to_csv_bytes(hourly_frame(SPEC, GROUPS, 24 * 30)))
    steps["history"] = cli(home, "run", "-v")
    steps["unchanged"] = cli(home, "run")

    new = land(home, "day31.csv", day(30))
    blocker = home / "storage" / "clean_load" / f"{new}.parquet"
    blocker.mkdir(parents=True)  # storing the cleaned batch fails: an OSError, not a data error
    steps["broken"] = cli(home, "run", "--no-train", "-v")
    after_failure = {
        "in_landing": (home / "landing" / "day31.csv").exists(),
        "quarantine": sorted(p.name for p in (home / "quarantine").iterdir()),
    }
    blocker.rmdir()
    steps["retried"] = cli(home, "run", "--no-train", "-v")

    quarantined = land(home, "day32.csv", with_text_in_target(hourly_frame(SPEC, GROUPS, 24, start_hour=24 * 31)))
    steps["quarantined"] = cli(home, "run", "--no-train")
    # A margin of -100 %: the new version would have to halve the champion's error, so it is refused.
    steps["changed"] = cli_with(home, {"MLOPS_PROMOTION_MARGIN": "-1"}, "run")
    # Day 33 lands before day 32 (whose first delivery was quarantined): its rows lack the
    # 24 h lag until the corrected day 32 arrives.
    early = land(home, "day33.csv", day(32))
    steps["early"] = cli(home, "run", "--no-train", "-v")
    fixed = land(home, "day32_fixed.csv", day(31))
    steps["arrived"] = cli(home, "run", "--no-train", "-v")
    keys = {"history": history, "new": new, "bad": quarantined, "early": early, "fixed": fixed}
    return {"home": home, "steps": steps, "keys": keys, "after_failure": after_failure}


def out(story, step: str) -> str:
    done = story["steps"][step]
    return done.stdout + "\n--- stderr ---\n" + done.stderr[-3000:]


def test_empty_landing_zone_is_nothing_to_do(story):
    done = story["steps"]["empty"]
    assert done.returncode == 0, out(story, "empty")
    assert done.stdout.startswith("nothing to do: no batch file in the landing zone"), done.stdout


def test_history_is_ingested_trained_promoted_and_monitored(story):
    done, key = story["steps"]["history"], story["keys"]["history"]
    assert done.returncode == 0, out(story, "history")
    text = done.stdout
    assert "ingested 1 new batch(es); 0 quarantined; 0 failed; 0 already received" in text
    assert f"  ingested {key}" in text and "preparation_job: SUCCESS" in text
    assert "train     first training: v1 approved; champion v1" in text and "training_job: SUCCESS" in text
    assert "champion: v1" in text and "<- candidate" in text
    assert f"monitoring: 1 batch(es) with champion v1\n  {key}: SUCCESS" in text
    assert text.rstrip().endswith("result: OK"), text[-500:]


def test_nothing_new_skips_training(story):
    done = story["steps"]["unchanged"]
    assert done.returncode == 0, out(story, "unchanged")
    assert "train     skipped: history unchanged since the last training" in done.stdout
    assert "training_job" not in done.stdout and "preparation_job" not in done.stdout
    assert "1 already received" in done.stdout
    assert done.stdout.rstrip().endswith(
        "result: nothing to do (no new file in the landing zone, history unchanged, every batch monitored)"
    )


def test_ingestion_failure_is_retried_not_quarantined(story):
    broken, key = story["steps"]["broken"], story["keys"]["new"]
    assert broken.returncode == 1, out(story, "broken")
    assert f"  failed, will retry: {key}: IsADirectoryError" in broken.stdout
    assert "QUARANTINED" not in broken.stdout and "result: FAILED: ingestion of 1 file(s) failed" in broken.stdout
    assert story["after_failure"] == {"in_landing": True, "quarantine": []}

    retried = story["steps"]["retried"]
    assert retried.returncode == 0, out(story, "retried")
    assert f"ingested 1 new batch(es); 0 quarantined; 0 failed; 1 already received\n  ingested {key}" in retried.stdout


def test_new_batch_is_monitored_without_retraining(story):
    done, key, home = story["steps"]["retried"], story["keys"]["new"], story["home"]
    assert "preparation_job: SUCCESS" in done.stdout and "train     skipped (--no-train)" in done.stdout
    assert "training_job" not in done.stdout
    assert f"monitoring: 1 batch(es) with champion v1\n  {key}: SUCCESS" in done.stdout
    assert "scored 48 rows, 0 awaiting history; retrain: " in done.stdout
    assert (home / "storage" / "batch_predictions" / f"{key}.parquet").exists()
    report = json.loads((home / "storage" / "drift_report" / f"{key}.json").read_text())
    assert report["batch"] == key and report["champion_version"] == "1"


def test_quarantine_is_an_outcome_said_once(story):
    done, key, home = story["steps"]["quarantined"], story["keys"]["bad"], story["home"]
    assert done.returncode == 0, out(story, "quarantined")
    assert done.stdout.count(f"QUARANTINED {key}: ") == 1 and "load_mw" in done.stdout
    assert f"(raw bytes and reason in {home / 'quarantine' / key})" in done.stdout
    assert done.stderr == "" and "Traceback" not in done.stdout  # an outcome: one line, no stack trace
    assert "result: OK: 1 batch(es) quarantined" in done.stdout
    assert (home / "quarantine" / key / "reason.json").exists()
    assert "monitor   no new batch to monitor" in done.stdout


def test_changed_history_is_retrained_and_a_refusal_is_an_outcome(story):
    done = story["steps"]["changed"]
    assert done.returncode == 0, out(story, "changed")
    assert "train     history changed: v2 REFUSED by no_regression_vs_champion; champion stays v1" in done.stdout
    assert "registered models:/load_forecaster/2" in done.stdout and "no_regression_vs_champion  FAIL" in done.stdout
    assert "FAILED" not in done.stdout and "champion: v1 unchanged (REFUSED v2: no_regression_vs_champion: " in done.stdout
    refused = "result: OK: the new model was refused by its blocking checks (champion unchanged)"
    assert done.stdout.rstrip().endswith(refused)
    assert "preparation_job" not in done.stdout  # prepared already by the previous run


def test_a_batch_landed_before_its_history_waits_and_is_rescored_when_it_arrives(story):
    early, home = story["keys"]["early"], story["home"]
    done = story["steps"]["early"]
    assert done.returncode == 0, out(story, "early")
    assert f"monitoring: 1 batch(es) with champion v1\n  {early}: SUCCESS" in done.stdout
    assert "scored 0 rows, 48 awaiting history; not scored: waiting for history" in done.stdout

    arrived, fixed = story["steps"]["arrived"], story["keys"]["fixed"]
    assert arrived.returncode == 0, out(story, "arrived")
    text = arrived.stdout
    assert "monitoring: 2 batch(es) with champion v1 (1 re-scored: the history they awaited changed)" in text
    assert f"  {fixed}: SUCCESS" in text
    line = next(line for line in text.splitlines() if line.startswith(f"  {early}: SUCCESS"))
    assert "scored 48 rows, 0 awaiting history; retrain: " in line
    # The stored report is the re-scored one (the early step's "not scored" report is in its stdout above).
    report = json.loads((home / "storage" / "drift_report" / f"{early}.json").read_text())
    assert report["rows_awaiting_history"] == 0 and report["rows_scored"] == 48
    assert pl.read_parquet(home / "storage" / "batch_predictions" / f"{early}.parquet").height == 48
