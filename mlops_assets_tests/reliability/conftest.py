"""Shared by the reliability tests: one small trained platform (a champion exists) and the
end-of-session summary of what was measured."""

import shutil
from pathlib import Path

import pytest

from mlops_assets.core.spec import load_spec
from mlops_assets_tests.builders import hourly_frame
from mlops_assets_tests.pipeline import land, local_platform
from mlops_assets_tests.reliability.counts import report_path, summary_lines
from mlops_assets_tests.reliability.scratch import memory_backed_dir

SPEC = load_spec()
TRAIN_GROUPS = ["A", "B"]
TRAIN_HOURS = 24 * 21


@pytest.fixture(scope="session")
def champion_home() -> Path:
    """MLOPS_HOME after one fast training run on three weeks of two groups: `champion` is v1."""
    from mlops_assets.runner import ingest_landed, run_job, step_errors

    home = memory_backed_dir("mlops_reliability_") / "mlops"
    try:
        with local_platform(home) as (defs, instance):
            land(home, "history.csv", hourly_frame(SPEC, TRAIN_GROUPS, TRAIN_HOURS))
            assert len(ingest_landed(defs, instance).succeeded) == 1
            result = run_job(defs, "training_job", instance)
            assert result.success, step_errors(result)
            assert defs.resources["mlflow_tracking"].registry().alias_version("champion") == "1"
        yield home
    finally:
        shutil.rmtree(home.parent, ignore_errors=True)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    lines = summary_lines()
    if not lines:
        return
    terminalreporter.write_sep("-", "reliability counts")
    for line in lines:
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(written to {report_path()})")
