"""Cross-process locks on the local store: `fcntl.flock` on files under MLOPS_HOME/locks.

The kernel releases a flock when the process holding it ends, however it ends (exit, crash,
SIGKILL), so a crash never leaves a stale lock. The file's content only says who holds it,
for the message the next process prints; it is never what decides. Re-entrant within one
process (a second `acquire` on the same path in the same process only counts)."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from mlops_assets import settings

_HELD: dict[str, tuple[int, int]] = {}  # resolved path -> (fd, depth), for this process
_GUARD = threading.RLock()


class LockTimeout(RuntimeError):
    """The lock stayed taken by another process for longer than we wait."""


def lock_path(name: str) -> Path:
    """MLOPS_HOME/locks/<name>.lock."""
    return settings.locks_dir() / f"{name}.lock"


def holder(path: Path) -> dict:
    """What the process holding (or that last held) the lock wrote: pid, host, since, purpose."""
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def describe_holder(path: Path) -> str:
    who = holder(path)
    if not who:
        return "another process"
    purpose = f" ({who['purpose']})" if who.get("purpose") else ""
    return f"process {who.get('pid', '?')} on {who.get('host', '?')} since {who.get('since', '?')}{purpose}"


def _try_flock(path: Path, purpose: str) -> bool:
    key = str(path.resolve())
    if key in _HELD:
        fd, depth = _HELD[key]
        _HELD[key] = (fd, depth + 1)
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    since = datetime.now(timezone.utc).isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since, "purpose": purpose}).encode(), 0)
    _HELD[key] = (fd, 1)
    return True


def _release(path: Path) -> None:
    key = str(path.resolve())
    fd, depth = _HELD[key]
    if depth > 1:
        _HELD[key] = (fd, depth - 1)
        return
    del _HELD[key]
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def taken(name: str) -> bool:
    """Whether another process holds lock `name` now (a look only: nothing is written)."""
    path = lock_path(name)
    if not path.exists():
        return False
    with _GUARD:
        if str(path.resolve()) in _HELD:
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing the descriptor drops the lock if we got it
    return False


@contextmanager
def try_hold(name: str, purpose: str = ""):
    """Take lock `name` if it is free: yields True (held until the block ends) or False (another
    process holds it; see `describe_holder(lock_path(name))`)."""
    path = lock_path(name)
    with _GUARD:
        got = _try_flock(path, purpose)
    try:
        yield got
    finally:
        if got:
            with _GUARD:
                _release(path)


@contextmanager
def hold(name: str, purpose: str = "", timeout_seconds: float = 120.0):
    """Take lock `name`, waiting up to `timeout_seconds` for another process to let it go."""
    path = lock_path(name)
    deadline = time.monotonic() + timeout_seconds
    while True:
        with _GUARD:
            if _try_flock(path, purpose):
                break
        if time.monotonic() > deadline:
            raise LockTimeout(f"lock {path} still held by {describe_holder(path)} after {timeout_seconds:g}s")
        time.sleep(0.05)
    try:
        yield
    finally:
        with _GUARD:
            _release(path)
