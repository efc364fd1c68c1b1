"""The landing zone where batch files arrive, the archive of received bytes, and quarantine."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import dagster as dg
from upath import UPath

from mlops_assets.core.ingest import DEFAULT_MAX_COLUMNS, batch_key, is_candidate_file, sanitize_name, sha256_hex
from mlops_assets.resources.gcs import storage_path

DEFAULT_MAX_FILE_BYTES = 512 * 1024 * 1024
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class LandedFile:
    key: str
    name: str
    sha256: str
    size: int
    received_at: str
    refused: dict[str, str] | None = None  # {kind, message}: refused on arrival, bytes moved, never read

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FileStat:
    name: str
    size: int
    mtime: float
    version: str = ""  # the object generation on GCS; empty for local files

    def fingerprint(self) -> list:
        """What says the file changed since the last look: (size, generation) on GCS, else (size, mtime)."""
        return [self.size, self.version or self.mtime]


def _is_local(path: UPath) -> bool:
    return path.protocol in ("", "file", "local")


def _present(path: UPath) -> bool:
    """Whether something is at `path` (a symbolic link counts, wherever it points)."""
    return os.path.lexists(path.path) if _is_local(path) else path.exists()


def stream_sha256(path: UPath) -> str:
    """SHA-256 of a file read in chunks, never whole into memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def move_file(source: UPath, target: UPath) -> None:
    """Move a file without reading it into memory: a rename when both ends are local (a
    symbolic link moves as the link, its target untouched), else a chunked copy and delete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if _is_local(source) and _is_local(target):
        shutil.move(source.path, target.path)
        return
    with source.open("rb") as reader, target.open("wb") as writer:
        shutil.copyfileobj(reader, writer, CHUNK_BYTES)
    source.unlink()


def write_atomic(path: UPath, data: bytes) -> None:
    """Readers never see a partial file: write a temp name beside it, then rename.
    (Object stores write whole objects, so they are written directly.)"""
    if path.protocol not in ("", "file", "local"):
        path.write_bytes(data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp.path, path.path)


class LandingZone(dg.ConfigurableResource):
    """Landing zone (local folder or gs:// prefix) plus the archive and quarantine folders.

    Received files are copied, bytes intact, into the archive under their batch key, so a
    batch can always be re-read even after the landing file is changed or removed."""

    root: str
    archive_root: str
    quarantine_root: str
    settle_seconds: float = 2.0
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_columns: int = DEFAULT_MAX_COLUMNS

    def _root(self) -> UPath:
        return storage_path(self.root)

    def list_files(self) -> list[FileStat]:
        """Finished batch files, oldest first; hidden, partial and still-changing files are skipped."""
        root = self._root()
        if not root.exists():
            return []
        now = time.time()
        stats = []
        for path in root.iterdir():
            if not path.is_file() or not is_candidate_file(path.name):
                continue
            info = path.stat()
            mtime = float(getattr(info, "st_mtime", 0) or 0)
            if self.settle_seconds and now - mtime < self.settle_seconds:
                continue
            stats.append(FileStat(path.name, int(info.st_size), mtime))
        return sorted(stats, key=lambda s: (s.mtime, s.name))

    def unsettled_files(self) -> list[str]:
        """Batch files of a local landing zone changed within the last `settle_seconds` (still
        being written, perhaps); empty for an object store, where uploads are whole."""
        root = self._root()
        if not self.settle_seconds or not _is_local(root) or not root.exists():
            return []
        now = time.time()
        return sorted(
            p.name for p in root.iterdir() if p.is_file() and is_candidate_file(p.name) and now - p.stat().st_mtime < self.settle_seconds
        )

    def _landed_path(self, name: str) -> UPath:
        """The landing file `name`; anything but one plain path segment is refused."""
        if not name or name in (".", "..") or "/" in name or "\x00" in name:
            raise ValueError(f"refusing landing-zone name {name!r}: not a plain file name")
        return self._root() / name

    def _refusal(self, path: UPath) -> dict[str, str] | None:
        """Why a landed file is refused before its bytes are read, if it is."""
        if _is_local(path) and os.path.islink(path.path):
            target = os.readlink(path.path)
            return {"kind": "symlink", "message": f"is a symbolic link to {target!r}; links are never followed: land the file itself"}
        size = int(path.stat().st_size)
        if size > self.max_file_bytes:
            return {
                "kind": "too_large",
                "message": f"{size:,} bytes is over the limit of {self.max_file_bytes:,} bytes (MLOPS_MAX_FILE_BYTES); "
                "split the export into smaller files",
            }
        return None

    def _receive_refused(self, name: str, path: UPath, refusal: dict[str, str]) -> LandedFile:
        """Move a refused file, unread, into the archive under its batch key (hashed in
        chunks; a link by its target), so quarantine keeps it as it landed."""
        if refusal["kind"] == "symlink":
            digest, size = sha256_hex(f"symlink:{os.readlink(path.path)}".encode()), 0
        else:
            digest, size = stream_sha256(path), int(path.stat().st_size)
        received_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        landed = LandedFile(batch_key(name, digest), name, digest, size, received_at, refused=refusal)
        folder = storage_path(self.archive_root) / landed.key
        if not (folder / "manifest.json").exists():
            move_file(path, folder / sanitize_name(name))
            write_atomic(folder / "manifest.json", json.dumps(landed.to_dict(), indent=2).encode())
        return landed

    def receive(self, name: str) -> LandedFile:
        """Hash the file, archive its bytes under its batch key and return the record. A
        symbolic link or a file over `max_file_bytes` is moved to the archive unread and
        recorded as refused, so `raw_load` quarantines it."""
        path = self._landed_path(name)
        refusal = self._refusal(path)
        if refusal:
            return self._receive_refused(name, path, refusal)
        data = path.read_bytes()
        digest = sha256_hex(data)
        landed = LandedFile(
            key=batch_key(name, digest),
            name=name,
            sha256=digest,
            size=len(data),
            received_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        folder = storage_path(self.archive_root) / landed.key
        if not (folder / "manifest.json").exists():
            write_atomic(folder / sanitize_name(name), data)
            write_atomic(folder / "manifest.json", json.dumps(landed.to_dict(), indent=2).encode())
        return landed

    def manifest(self, key: str) -> LandedFile:
        path = storage_path(self.archive_root) / key / "manifest.json"
        if not path.exists():
            raise FileNotFoundError(f"batch {key} was never received: no {path}")
        return LandedFile(**json.loads(path.read_text()))

    def archived_path(self, key: str) -> UPath:
        return storage_path(self.archive_root) / key / sanitize_name(self.manifest(key).name)

    def read_archived(self, key: str) -> tuple[LandedFile, bytes]:
        landed = self.manifest(key)
        if landed.refused:
            raise RuntimeError(f"batch {key} was refused on arrival ({landed.refused['kind']}): its bytes are never read")
        data = self.archived_path(key).read_bytes()
        if sha256_hex(data) != landed.sha256:
            raise RuntimeError(f"archived bytes of batch {key} do not match their recorded SHA-256")
        return landed, data

    def quarantined_keys(self) -> list[str]:
        """Batch keys with a quarantine record (`<key>/reason.json`): written last, so a key is
        here only once its quarantine is complete."""
        root = storage_path(self.quarantine_root)
        if not root.exists():
            return []
        return sorted(path.parent.name for path in root.glob("*/reason.json"))

    def is_quarantined(self, key: str) -> bool:
        return (storage_path(self.quarantine_root) / key / "reason.json").exists()

    def quarantine(self, key: str, reason: dict[str, Any]) -> str:
        """Copy the batch's bytes (a file refused on arrival: move it, unread) and a JSON reason
        to quarantine/<key>/, then remove the file from the landing zone if it still holds the
        same bytes."""
        landed = self.manifest(key)
        folder = storage_path(self.quarantine_root) / key
        if landed.refused:
            archived = self.archived_path(key)
            if _present(archived):
                move_file(archived, folder / sanitize_name(landed.name))
        else:
            landed, data = self.read_archived(key)
            write_atomic(folder / sanitize_name(landed.name), data)
        record = {"batch": key, "quarantined_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **landed.to_dict(), "reason": reason}
        write_atomic(folder / "reason.json", json.dumps(record, indent=2, default=str).encode())
        source = self._root() / landed.name
        if not landed.refused and source.exists() and sha256_hex(source.read_bytes()) == landed.sha256:
            source.unlink()
        return str(folder)
