"""Scratch folders for the reliability tests."""

import tempfile
from pathlib import Path


def memory_backed_dir(prefix: str) -> Path:
    """A fresh folder on /dev/shm where there is one: the SQLite stores of Dagster and MLflow
    commit on every event, and these tests are about correctness, not disk speed."""
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix=prefix, dir=shm if shm.is_dir() else None))
