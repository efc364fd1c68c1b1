"""The locks that make promotion a compare-and-set and keep trainings apart across processes."""

import os
import subprocess
import sys
import time

import pytest

from mlops_assets.locks import LockTimeout, hold, taken, try_hold

HOLDER = """
import sys, time
from mlops_assets.locks import hold
with hold("champion", "promotion of v7"):
    print("held", flush=True)
    time.sleep(float(sys.argv[1]))
"""


def test_a_move_waits_for_the_process_holding_the_champion_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    other = subprocess.Popen([sys.executable, "-c", HOLDER, "2"], env={**os.environ}, stdout=subprocess.PIPE, text=True)
    assert other.stdout.readline().strip() == "held"
    assert taken("champion")
    with pytest.raises(LockTimeout, match=rf"held by process {other.pid} on .* \(promotion of v7\)"):
        with hold("champion", timeout_seconds=0.2):
            pass
    started = time.monotonic()
    with hold("champion", timeout_seconds=60):
        waited = time.monotonic() - started
    assert waited > 1.0  # the other process held it for 2 s after saying "held"
    other.wait(timeout=30)


def test_the_locks_are_re_entrant_in_one_process(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    with hold("champion"):
        with hold("champion", timeout_seconds=0.1):  # record() inside promote() takes it again
            pass
        with try_hold("champion") as again:
            assert again
    with try_hold("training") as first:
        assert first and not taken("training")  # held by us, not by another process
