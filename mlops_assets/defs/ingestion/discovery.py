"""Finding new batch files in the landing zone; shared by `new_data_sensor` and the CLI.

A batch counts as received only once its ingestion ended: `clean_load` was materialized, or
the batch was quarantined. A batch whose run failed for any other reason (a bug, a full disk,
an unreachable store) stays pending, and its file is offered again until one of the two."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

import dagster as dg

from mlops_assets.resources.landing import LandedFile, LandingZone

INGESTION_JOB = "ingestion_job"
PID_TAG, HOST_TAG = "mlops/cli_pid", "mlops/cli_host"
UNFINISHED = (
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING,
)


def content_id(batch_key: str) -> str:
    """The content-hash part of a batch key."""
    return batch_key.rsplit("__", 1)[-1]


@dataclass
class Discovery:
    """What the landing zone holds: `new` batches to ingest (first time or again after a failed
    run), files whose content was `already_known`, batches `in_progress` in a run that has not
    ended, files that could not be received (`failed`: name -> error), and the cursor (`seen`)."""

    new: list[LandedFile] = field(default_factory=list)
    already_known: list[LandedFile] = field(default_factory=list)
    in_progress: list[LandedFile] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seen: dict[str, list] = field(default_factory=dict)


def received_keys(instance: dg.DagsterInstance, landing: LandingZone) -> set[str]:
    """Batch keys whose ingestion ended: `clean_load` materialized, or quarantined."""
    return instance.get_materialized_partitions(dg.AssetKey("clean_load")) | set(landing.quarantined_keys())


def cli_run_tags() -> dict[str, str]:
    """Tags of an ingestion run started by this process (the CLI), so another look can tell
    a run still going from one whose process was killed (it keeps status STARTED forever)."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _alive(run: dg.DagsterRun) -> bool:
    """False only for a run started by a CLI process on this host that no longer exists; runs
    launched by the daemon are watched by Dagster's run monitoring instead."""
    pid, host = run.tags.get(PID_TAG), run.tags.get(HOST_TAG)
    if not pid or host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_keys(instance: dg.DagsterInstance) -> set[str]:
    """Batch keys with an ingestion run that has not ended (queued, starting, running)."""
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=INGESTION_JOB, statuses=list(UNFINISHED)))
    return {run.tags["dagster/partition"] for run in runs if "dagster/partition" in run.tags and _alive(run)}


def attempts(instance: dg.DagsterInstance, key: str) -> int:
    """How many ingestion runs of batch `key` there were (called only when none is going)."""
    return instance.get_runs_count(filters=dg.RunsFilter(job_name=INGESTION_JOB, tags={"dagster/partition": key}))


def discover_batches(
    landing: LandingZone, received: set[str], seen: dict[str, list], running: set[str] | frozenset = frozenset()
) -> Discovery:
    """Batches to ingest, in landing order. A file is re-hashed only when its fingerprint (size
    and mtime; size and generation on GCS) changed since the last look (`seen`). Content already
    `received` (the same bytes landed again, under any name) is never new twice; content whose
    batch is pending (known but not received) is new again unless a run of it is `running`."""
    result = Discovery()
    taken = {content_id(key) for key in received}
    busy = {content_id(key) for key in running}
    offered = set()
    for stat in landing.list_files():
        fingerprint = stat.fingerprint()
        previous = seen.get(stat.name)
        unchanged = bool(previous) and previous[:2] == fingerprint
        if unchanged and content_id(previous[2]) in taken:
            result.seen[stat.name] = previous
            continue
        try:
            landed = landing.manifest(previous[2]) if unchanged else landing.receive(stat.name)
        except Exception as error:  # one unreadable file (or a store down) must not hide the others
            result.failed[stat.name] = f"{type(error).__name__}: {error}"
            continue
        result.seen[stat.name] = [*fingerprint, landed.key]
        if content_id(landed.key) in taken or content_id(landed.key) in offered:
            result.already_known.append(landed)
        elif content_id(landed.key) in busy:
            result.in_progress.append(landed)
        else:
            offered.add(content_id(landed.key))
            result.new.append(landed)
    return result
