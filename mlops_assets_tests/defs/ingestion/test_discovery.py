"""Finding new batches (`discover_batches`) and what counts as received, running or tried,
on a real landing zone folder and a real (temporary) Dagster instance. The sensor tests in
test_new_data_sensor.py run the same logic through `new_data_sensor` and real ingestion runs."""

import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import pytest
from upath import UPath

from mlops_assets.defs.ingestion.discovery import (
    HOST_TAG,
    INGESTION_JOB,
    PID_TAG,
    attempts,
    cli_run_tags,
    content_id,
    discover_batches,
    received_keys,
    running_keys,
)
from mlops_assets.resources.landing import LandingZone

DAY1 = b"timestamp,zone,load\n2024-01-01T00:00:00,A,1.5\n"
DAY2 = b"timestamp,zone,load\n2024-01-02T00:00:00,A,2.5\n"
DAY3 = b"timestamp,zone,load\n2024-01-03T00:00:00,A,3.5\n"


@pytest.fixture
def zone(tmp_path) -> LandingZone:
    (tmp_path / "landing").mkdir()
    return LandingZone(root=str(tmp_path / "landing"), archive_root=str(tmp_path / "archive"), quarantine_root=str(tmp_path / "quarantine"), settle_seconds=0)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def land(zone: LandingZone, name: str, data: bytes, mtime: float) -> None:
    path = UPath(zone.root) / name
    path.write_bytes(data)
    os.utime(path.path, (mtime, mtime))


def key_of(zone: LandingZone, name: str) -> str:
    return zone.receive(name).key


def add_run(instance, key: str | None, status: dg.DagsterRunStatus, tags: dict | None = None, job: str = INGESTION_JOB) -> None:
    all_tags = {**({"dagster/partition": key} if key else {}), **(tags or {})}
    instance.add_run(dg.DagsterRun(job_name=job, run_id=str(uuid.uuid4()), tags=all_tags, status=status))


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_content_id_is_the_hash_part_of_a_batch_key():
    assert content_id("day1__0123456789ab") == "0123456789ab"
    assert content_id("my__file__0123456789ab") == "0123456789ab"


def test_new_files_in_landing_order_with_the_cursor_of_what_was_seen(zone):
    land(zone, "b.csv", DAY2, 2000)
    land(zone, "a.csv", DAY1, 1000)
    found = discover_batches(zone, set(), {})
    assert [landed.name for landed in found.new] == ["a.csv", "b.csv"]
    assert found.already_known == found.in_progress == [] and found.failed == {}
    assert found.seen == {"a.csv": [len(DAY1), 1000.0, found.new[0].key], "b.csv": [len(DAY2), 2000.0, found.new[1].key]}


def test_received_content_is_never_new_again_under_any_name(zone):
    land(zone, "a.csv", DAY1, 1000)
    first = discover_batches(zone, set(), {})
    received = {first.new[0].key}
    unchanged = discover_batches(zone, received, first.seen)
    assert (unchanged.new, unchanged.already_known, unchanged.seen) == ([], [], first.seen)  # not even re-read
    land(zone, "a copy.csv", DAY1, 3000)
    copy = discover_batches(zone, received, first.seen)
    assert copy.new == [] and [landed.name for landed in copy.already_known] == ["a copy.csv"]
    forgotten = discover_batches(zone, received, {})  # cursor lost (a restarted daemon)
    assert forgotten.new == [] and sorted(landed.name for landed in forgotten.already_known) == ["a copy.csv", "a.csv"]


def test_the_same_bytes_twice_in_one_look_are_offered_once(zone):
    land(zone, "a.csv", DAY1, 1000)
    land(zone, "again.csv", DAY1, 2000)
    found = discover_batches(zone, set(), {})
    assert [landed.name for landed in found.new] == ["a.csv"]
    assert [landed.name for landed in found.already_known] == ["again.csv"]


def test_a_pending_batch_is_offered_again_from_the_cursor_without_re_reading(zone):
    land(zone, "a.csv", DAY1, 1000)
    first = discover_batches(zone, set(), {})
    land(zone, "a.csv", DAY2, 1000)  # same size and mtime: the fingerprint says unchanged
    again = discover_batches(zone, set(), first.seen)
    assert [landed.key for landed in again.new] == [first.new[0].key]
    assert again.seen == first.seen


def test_a_changed_file_is_read_again_and_is_a_new_batch(zone):
    land(zone, "a.csv", DAY1, 1000)
    first = discover_batches(zone, set(), {})
    land(zone, "a.csv", DAY2, 2000)
    second = discover_batches(zone, {first.new[0].key}, first.seen)
    assert [landed.sha256 for landed in second.new] == [zone.receive("a.csv").sha256]
    assert second.new[0].key != first.new[0].key
    assert second.seen == {"a.csv": [len(DAY2), 2000.0, second.new[0].key]}


def test_a_batch_with_a_run_going_is_in_progress_not_new(zone):
    land(zone, "a.csv", DAY1, 1000)
    land(zone, "b.csv", DAY2, 2000)
    busy = key_of(zone, "a.csv")
    found = discover_batches(zone, set(), {}, running={busy})
    assert [landed.name for landed in found.in_progress] == ["a.csv"]
    assert [landed.name for landed in found.new] == ["b.csv"]


def test_a_file_that_cannot_be_received_does_not_hide_the_others(zone, tmp_path):
    land(zone, "a.csv", DAY1, 1000)
    land(zone, "b.csv", DAY2, 2000)
    blocked = key_of(zone.model_copy(update={"archive_root": str(tmp_path / "elsewhere")}), "a.csv")
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / blocked).write_text("a file where the batch's folder should be")
    found = discover_batches(zone, set(), {})
    assert list(found.failed) == ["a.csv"] and found.failed["a.csv"].startswith("FileExistsError: ")
    assert [landed.name for landed in found.new] == ["b.csv"]
    assert list(found.seen) == ["b.csv"]  # tried again next time


def test_received_means_cleaned_or_quarantined(zone, instance):
    land(zone, "a.csv", DAY1, 1000)
    land(zone, "b.csv", DAY2, 2000)
    land(zone, "c.csv", DAY3, 3000)
    cleaned, quarantined, pending = (key_of(zone, n) for n in ("a.csv", "b.csv", "c.csv"))
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="clean_load", partition=cleaned))
    zone.quarantine(quarantined, {"kind": "schema"})
    assert received_keys(instance, zone) == {cleaned, quarantined}
    assert pending not in received_keys(instance, zone)


def test_running_keys_are_unfinished_ingestion_runs_of_live_processes(instance):
    # (a queued run needs a code location origin to be stored; QUEUED is in the same list)
    add_run(instance, "started__2", dg.DagsterRunStatus.STARTED)
    add_run(instance, "not_started__3", dg.DagsterRunStatus.NOT_STARTED)
    add_run(instance, "starting__4", dg.DagsterRunStatus.STARTING)
    add_run(instance, "canceling__5", dg.DagsterRunStatus.CANCELING)
    add_run(instance, "this_cli__6", dg.DagsterRunStatus.STARTED, cli_run_tags())
    add_run(instance, "other_host__7", dg.DagsterRunStatus.STARTED, {PID_TAG: str(dead_pid()), HOST_TAG: "another-machine"})
    add_run(instance, "killed_cli__8", dg.DagsterRunStatus.STARTED, {PID_TAG: str(dead_pid()), HOST_TAG: socket.gethostname()})
    add_run(instance, "done__9", dg.DagsterRunStatus.SUCCESS)
    add_run(instance, "failed__10", dg.DagsterRunStatus.FAILURE)
    add_run(instance, "canceled__11", dg.DagsterRunStatus.CANCELED)
    add_run(instance, "training__12", dg.DagsterRunStatus.STARTED, job="training_job")
    add_run(instance, None, dg.DagsterRunStatus.STARTED)  # no partition: not a batch run
    expected = {"started__2", "not_started__3", "starting__4", "canceling__5", "this_cli__6", "other_host__7"}
    assert running_keys(instance) == expected


def test_a_cli_run_is_tagged_with_its_process_and_host():
    assert cli_run_tags() == {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    assert (PID_TAG, HOST_TAG) == ("mlops/cli_pid", "mlops/cli_host")


def test_attempts_count_every_ingestion_run_of_the_batch(instance):
    assert attempts(instance, "day1__1") == 0
    add_run(instance, "day1__1", dg.DagsterRunStatus.FAILURE)
    add_run(instance, "day1__1", dg.DagsterRunStatus.FAILURE)
    add_run(instance, "day2__2", dg.DagsterRunStatus.FAILURE)
    add_run(instance, "day1__1", dg.DagsterRunStatus.FAILURE, job="training_job")
    assert attempts(instance, "day1__1") == 2


LISTENER = """
import signal, sys, time
def report(number, frame):
    print(f"got signal {number}", flush=True)
for number in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT):
    signal.signal(number, report)
print("ready", flush=True)
time.sleep(30)
"""


def test_looking_at_a_live_cli_run_never_signals_its_process(instance):
    """Liveness is probed with signal 0, which delivers nothing."""
    listener = subprocess.Popen([sys.executable, "-c", LISTENER], stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline() == "ready\n"
        add_run(instance, "cli__1", dg.DagsterRunStatus.STARTED, {PID_TAG: str(listener.pid), HOST_TAG: socket.gethostname()})
        assert running_keys(instance) == {"cli__1"}
    finally:
        listener.send_signal(signal.SIGKILL)
        heard = listener.communicate()[0]
    assert heard == ""


def test_a_cli_run_of_another_users_process_counts_as_alive(instance):
    """Probing another user's process raises PermissionError: it exists, so its run is going.
    The process is pid 1 (root's); as root, the look is made as user `nobody`."""
    add_run(instance, "other_user__1", dg.DagsterRunStatus.STARTED, {PID_TAG: "1", HOST_TAG: socket.gethostname()})
    if os.geteuid() != 0:
        assert running_keys(instance) == {"other_user__1"}
        return
    root = Path(instance.root_directory)
    for path in (root, *root.rglob("*")):  # the run storage, readable and writable by `nobody`
        path.chmod(0o777 if path.is_dir() else 0o666)
    os.setresuid(65534, 65534, 0)  # the saved uid lets us come back
    try:
        keys = running_keys(instance)
    finally:
        os.setresuid(0, 0, 0)
    assert keys == {"other_user__1"}
