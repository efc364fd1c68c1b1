"""Merging clean batches into one history where the latest batch wins."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from mlops_assets.core.cleaning import same_key_as
from mlops_assets.core.spec import DatasetSpec


@dataclass
class MergeReport:
    batches: list[str] = field(default_factory=list)
    rows_in: int = 0
    rows_out: int = 0
    superseded_rows: int = 0
    groups: int = 0
    first_timestamp: str | None = None
    last_timestamp: str | None = None
    data_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def merge_batches(batches: list[tuple[str, pl.LazyFrame | pl.DataFrame]], spec: DatasetSpec) -> tuple[pl.DataFrame, MergeReport]:
    """Concatenate batches given in landing order; on a (group, timestamp) conflict the row
    from the later batch wins, because late files carry corrections of earlier hours. A
    stable sort keeps landing order within a key, so the last row of each key run wins."""
    report = MergeReport(batches=[key for key, _ in batches])
    if not batches:
        raise ValueError("no clean batches to merge: land a file and ingest it first")
    stacked = pl.concat([frame.lazy() for _, frame in batches], how="vertical_relaxed").collect()
    merged = stacked.sort(spec.key_columns, maintain_order=True).filter(~same_key_as(-1, spec.key_columns))
    report.rows_in = stacked.height
    del stacked
    report.rows_out = merged.height
    report.superseded_rows = report.rows_in - report.rows_out
    report.groups = merged.get_column(spec.group).n_unique() if spec.group else 1
    report.first_timestamp = str(merged.get_column(spec.timestamp).min())
    report.last_timestamp = str(merged.get_column(spec.timestamp).max())
    report.data_version = content_hash(merged)
    return merged, report


class _HashSink:
    """A file-like object that hashes what polars writes, without buffering it."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return len(data)

    def flush(self) -> None:
        pass


def content_hash(frame: pl.DataFrame) -> str:
    """A data version: SHA-256 of the frame's uncompressed Arrow IPC bytes (order-sensitive,
    so callers hash frames in a canonical sort)."""
    sink = _HashSink()
    frame.write_ipc(sink, compression="uncompressed")
    return sink.digest.hexdigest()[:16]
