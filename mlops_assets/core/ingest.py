"""Reading landed batch files: naming, hashing and parsing bytes into a frame.

Parsing is deliberately lenient about types (every CSV column is read as text) and strict
about structure, so that each failure names the file, the rows and the columns involved.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import PurePath
from typing import Any

import polars as pl

ROW_COLUMN = "_row"
SUPPORTED_SUFFIXES = (".csv", ".parquet")
IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".inprogress")
# Serialized Python objects can run code when loaded: they are received and quarantined, never loaded.
SERIALIZED_SUFFIXES = (".pkl", ".pickle", ".joblib", ".dill", ".cloudpickle", ".npy", ".npz", ".pt", ".pth")
DEFAULT_MAX_COLUMNS = 1000
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
HASH_PREFIX_LEN = 12
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class BatchError(Exception):
    """A landed batch that cannot be used, with what a person needs to fix it."""

    file: str
    kind: str
    message: str
    rows: list[int] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        where = []
        if self.columns:
            where.append(f"columns {self.columns}")
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows[:10])
            more = f" (+{len(self.rows) - 10} more)" if len(self.rows) > 10 else ""
            where.append(f"rows {shown}{more}")
        suffix = f" [{'; '.join(where)}]" if where else ""
        return f"{display_name(self.file)}: {self.kind}: {self.message}{suffix}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows"] = self.rows[:1000]
        out["row_count"] = len(self.rows)
        out["summary"] = str(self)
        return out


def display_name(name: str) -> str:
    """A file name for one-line messages: control characters (a newline in a landed name)
    are shown escaped, everything else as it is."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sanitize_name(name: str) -> str:
    """A file name safe to use as a path segment and partition key: no directories, no dots
    at the start, only [A-Za-z0-9._-]."""
    base = PurePath(name.replace("\\", "/")).name
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    base = _UNSAFE.sub("_", base).strip("._-")
    return base[:120] or "unnamed"


def batch_key(name: str, digest: str) -> str:
    """Partition key of a landed file: sanitized stem plus content hash, so the same bytes
    landed twice map to one batch and a changed file to a new one."""
    safe = sanitize_name(name)
    stem = safe.rsplit(".", 1)[0] if "." in safe else safe
    return f"{stem[:80]}__{digest[:HASH_PREFIX_LEN]}"


def is_candidate_file(name: str) -> bool:
    """Whether a name in the landing zone is a finished file to receive (not hidden, not
    partial): a batch file, or a serialized object that must be quarantined, not ignored."""
    base = PurePath(name).name
    lower = base.lower()
    if base.startswith(".") or lower.endswith(IN_PROGRESS_SUFFIXES):
        return False
    return lower.endswith(SUPPORTED_SUFFIXES + SERIALIZED_SUFFIXES)


def file_format(name: str) -> str:
    lower = name.lower()
    for suffix in SUPPORTED_SUFFIXES:
        if lower.endswith(suffix):
            return suffix.lstrip(".")
    if lower.endswith(SERIALIZED_SUFFIXES):
        raise BatchError(
            name,
            "unsupported_format",
            "serialized Python objects (pickle, joblib, numpy, torch) are never loaded from the landing zone, "
            f"since loading one can run arbitrary code; land {' or '.join(SUPPORTED_SUFFIXES)} files",
        )
    raise BatchError(name, "unsupported_format", f"only {', '.join(SUPPORTED_SUFFIXES)} files are read")


def parse_batch(name: str, data: bytes, max_columns: int = DEFAULT_MAX_COLUMNS) -> pl.DataFrame:
    """Parse landed bytes into a frame with a 1-based `_row` column (the data row number).

    CSV columns stay text here; casting to the spec's types happens in cleaning, where a
    failed cast can be reported per row and column. A file wider than `max_columns` is
    refused before its rows are read.
    """
    fmt = file_format(name)
    if not data:
        raise BatchError(name, "empty", "the file is empty (0 bytes)")
    frame = _parse_csv(name, data, max_columns) if fmt == "csv" else _parse_parquet(name, data, max_columns)
    if frame.height == 0:
        raise BatchError(name, "no_rows", "the file has a header but no data rows", columns=frame.columns)
    return frame.with_row_index(ROW_COLUMN, offset=1).with_columns(pl.col(ROW_COLUMN).cast(pl.Int64))


def _check_width(name: str, columns: list[str], max_columns: int) -> None:
    if len(columns) > max_columns:
        raise BatchError(
            name,
            "too_wide",
            f"{len(columns)} columns, more than the limit of {max_columns} (MLOPS_MAX_COLUMNS); "
            "is this a pivoted export? The first columns over the limit are named",
            columns=columns[max_columns : max_columns + 10],
        )


def _parse_csv(name: str, data: bytes, max_columns: int = DEFAULT_MAX_COLUMNS) -> pl.DataFrame:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith(_UTF16_BOMS):
        raise BatchError(
            name, "not_utf8", "the file starts with a UTF-16 byte-order mark; re-export the file as UTF-8", rows=[1]
        )
    try:
        data.decode("utf-8")  # validation only: polars reads the bytes themselves
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BatchError(
            name,
            "not_utf8",
            f"byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}) is not UTF-8; "
            "re-export the file as UTF-8",
            rows=[max(line - 1, 1)],
        ) from exc
    end = data.find(b"\n")
    header = _header(name, data[: end if end >= 0 else len(data)].decode("utf-8"))
    _check_width(name, header, max_columns)
    _check_truncated(name, data, header)
    try:
        return pl.read_csv(data, infer_schema=False, null_values=[""])
    except pl.exceptions.PolarsError as exc:
        raise BatchError(name, "unparseable", f"not a readable CSV file: {exc}".splitlines()[0]) from exc


def _header(name: str, first: str) -> list[str]:
    first = first.rstrip("\r")
    header = next(csv.reader([first]), [])
    if not [h for h in header if h.strip()]:
        raise BatchError(name, "no_header", "the first line holds no column names")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise BatchError(name, "duplicate_columns", "column names appear more than once", columns=dupes)
    return header


def _check_truncated(name: str, data: bytes, header: list[str]) -> None:
    if data.endswith(b"\n"):
        return
    fields = next(csv.reader([data[data.rfind(b"\n") + 1 :].decode("utf-8")]), [])
    if len(fields) != len(header):
        raise BatchError(
            name,
            "truncated",
            f"the last line has {len(fields)} of {len(header)} fields and no line end: the file was cut short",
            rows=[data.count(b"\n")],
        )


def _parse_parquet(name: str, data: bytes, max_columns: int = DEFAULT_MAX_COLUMNS) -> pl.DataFrame:
    try:
        columns = list(pl.read_parquet_schema(io.BytesIO(data)))
    except Exception as exc:  # pyarrow and polars raise several types for a broken file
        raise BatchError(name, "unparseable", f"not a readable Parquet file: {exc}".splitlines()[0]) from exc
    _check_width(name, columns, max_columns)
    try:
        return pl.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pyarrow and polars raise several types for a broken file
        raise BatchError(name, "unparseable", f"not a readable Parquet file: {exc}".splitlines()[0]) from exc
