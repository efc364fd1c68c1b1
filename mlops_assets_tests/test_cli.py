"""The `mlops-assets` command, run as a user runs it: in a subprocess."""

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


def cli(home: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "MLOPS_HOME": str(home), "MLOPS_PROFILE": "fast", "MLOPS_SETTLE_SECONDS": "0"}
    for leaked in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(leaked, None)
    return subprocess.run([sys.executable, "-m", "mlops_assets.cli", *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_simulate_writes_batches_and_continues(tmp_path):
    first = cli(tmp_path, "simulate", "--days", "2", "--batch-days", "1", "--groups", "3")
    assert first.returncode == 0, first.stderr
    second = cli(tmp_path, "simulate", "--days", "1", "--groups", "3", "--format", "parquet")
    names = sorted(p.name for p in (tmp_path / "landing").iterdir())
    assert names == ["load_2024-01-01_2024-01-01.csv", "load_2024-01-02_2024-01-02.csv", "load_2024-01-03_2024-01-03.parquet"]
    assert second.returncode == 0
    bad = cli(tmp_path, "simulate", "--corrupt", "nonsense")
    assert bad.returncode == 2 and "choose one of" in bad.stderr


SUMMARY_LINES = 30  # candidates, the registered version's verdicts, champion, where to look next, result


def assert_quiet(done: subprocess.CompletedProcess, steps: list[str]) -> None:
    """No library warnings, progress bars or tracebacks; each step once, on one line with its
    duration, before the summary."""
    text = done.stdout + done.stderr
    for noise in ("Warning", "WARNING", "Traceback", "Downloading artifacts", " - ERROR - ", "it/s]"):
        assert noise not in text, f"{noise!r} in the output:\n{text[-4000:]}"
    assert done.stderr == "", done.stderr[-2000:]
    lines = done.stdout.splitlines()
    head = list(itertools.takewhile(lambda line: line.split(" ", 1)[0] in steps or line.startswith("  QUARANTINED "), lines))
    step_lines = [line for line in head if not line.startswith("  ")]
    assert [line.split(" ", 1)[0] for line in step_lines] == steps, "\n".join(lines[:20])
    assert all(re.search(r"\s\d+\.\ds$", line) for line in step_lines), step_lines
    summary = lines[len(head):]
    assert summary[-1].startswith("result: OK") and len(summary) <= SUMMARY_LINES, "\n".join(summary)


@pytest.mark.slow
def test_demo_runs_the_whole_graph_and_status_reports_it(tmp_path):
    done = cli(tmp_path, "demo", "--days", "40", "--groups", "3")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert_quiet(done, steps=["land", "ingest", "prepare", "train", "monitor"])
    quarantine = tmp_path / "quarantine"
    [quarantined] = [line for line in out.splitlines() if "QUARANTINED corrupt_wrong_type" in line]
    assert "temperature_c" in quarantined and f"in {quarantine}/corrupt_wrong_type" in quarantined
    assert "champion: v1" in out and "  serving_smoke_test         pass" in out
    assert "<- candidate" in out and "registered models:/load_forecaster/1" in out  # read back from storage
    assert (tmp_path / "mlflow.db").exists() and (tmp_path / "dagster_home" / "dagster.yaml").exists()
    reasons = [json.loads(p.read_text()) for p in (tmp_path / "quarantine").glob("*/reason.json")]
    assert len(reasons) == 1 and reasons[0]["reason"]["kind"] == "wrong_type"

    status = cli(tmp_path, "status")
    assert status.returncode == 0 and "champion     1" in status.stdout and "1 quarantined" in status.stdout
    assert "v1 (was none) by" in status.stdout and "None" not in status.stdout  # the first champion had no predecessor

    # The demo champion's model card: every section, with the values the demo recorded.
    card_path = tmp_path / "card.md"
    card = cli(tmp_path, "card", "--out", str(card_path))
    assert card.returncode == 0 and str(card_path) in card.stdout, card.stdout + card.stderr
    text = card_path.read_text()
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert [h.split(":")[0] for h in headings] == [
        "Model details", "Intended use and limits", "Factors", "Training data", "Evaluation data", "Metrics", "Quantitative analyses",
        "Prediction intervals", "Explanations", "Ethical considerations", "Release gate", "Caveats and recommendations", "Lineage",
        "How to reproduce",
    ]
    assert text.startswith("# Model card: load_forecaster version 1") and "approved for promotion" in text
    verdict_lines = [line for line in out.splitlines() if line.startswith("  ") and (" pass " in line or " FAIL " in line)]
    assert len(verdict_lines) == 6
    for line in verdict_lines:  # each gate verdict of the summary is in the card, with its reason
        check = line.split()[0]
        assert check in text, check
    assert "no prediction interval recorded" not in text and "80%" in text

    again = cli(tmp_path, "simulate", "--days", "1", "--groups", "3")
    assert again.returncode == 0 and "load_2024-02-10_2024-02-10.csv" in again.stdout  # continues after the demo's data

    rerun = cli(tmp_path, "run", "--no-train", "-v")  # -v: every detail and the run logs
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "preparation_job: SUCCESS (run " in rerun.stdout and "check features.lags_stay_in_group: pass" in rerun.stdout
    assert "  ingested load_2024-02-10_2024-02-10__" in rerun.stdout  # every batch, not just the counts
    assert " - DEBUG - preparation_job - " in rerun.stderr and "STEP_SUCCESS" in rerun.stderr  # each run's whole log
