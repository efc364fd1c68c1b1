"""The landing zone where batch files arrive, the archive of received bytes, and quarantine."""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import dagster as dg
from upath import UPath

from mlops_assets.core.ingest import batch_key, is_candidate_file, sanitize_name, sha256_hex


@dataclass(frozen=True)
class LandedFile:
    key: str
    name: str
    sha256: str
    size: int
    received_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FileStat:
    name: str
    size: int
    mtime: float


def write_atomic(path: UPath, data: bytes) -> None:
    """Readers never see a partial file: write a temp name beside it, then rename.
    (Object stores write whole objects, so they are written directly.)"""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.protocol not in ("", "file", "local"):
        path.write_bytes(data)
        return
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

    def _root(self) -> UPath:
        return UPath(self.root)

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

    def receive(self, name: str) -> LandedFile:
        """Hash the file, archive its bytes under its batch key and return the record."""
        data = (self._root() / name).read_bytes()
        digest = sha256_hex(data)
        landed = LandedFile(
            key=batch_key(name, digest),
            name=name,
            sha256=digest,
            size=len(data),
            received_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        folder = UPath(self.archive_root) / landed.key
        if not (folder / "manifest.json").exists():
            write_atomic(folder / sanitize_name(name), data)
            write_atomic(folder / "manifest.json", json.dumps(landed.to_dict(), indent=2).encode())
        return landed

    def manifest(self, key: str) -> LandedFile:
        path = UPath(self.archive_root) / key / "manifest.json"
        if not path.exists():
            raise FileNotFoundError(f"batch {key} was never received: no {path}")
        return LandedFile(**json.loads(path.read_text()))

    def archived_path(self, key: str) -> UPath:
        return UPath(self.archive_root) / key / sanitize_name(self.manifest(key).name)

    def read_archived(self, key: str) -> tuple[LandedFile, bytes]:
        landed = self.manifest(key)
        data = self.archived_path(key).read_bytes()
        if sha256_hex(data) != landed.sha256:
            raise RuntimeError(f"archived bytes of batch {key} do not match their recorded SHA-256")
        return landed, data

    def quarantine(self, key: str, reason: dict[str, Any]) -> str:
        """Copy the batch's bytes and a JSON reason to quarantine/<key>/, then remove the file
        from the landing zone if it still holds the same bytes."""
        landed, data = self.read_archived(key)
        folder = UPath(self.quarantine_root) / key
        write_atomic(folder / sanitize_name(landed.name), data)
        record = {"batch": key, "quarantined_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **landed.to_dict(), "reason": reason}
        write_atomic(folder / "reason.json", json.dumps(record, indent=2, default=str).encode())
        source = self._root() / landed.name
        if source.exists() and sha256_hex(source.read_bytes()) == landed.sha256:
            source.unlink()
        return str(folder)
