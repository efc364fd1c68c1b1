"""Counts the reliability tests measure (kinds tried, crashes survived, files and rows
reconciled): kept per session, written to a JSON file and printed at the end of the run."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

REPORT_ENV_VAR = "MLOPS_RELIABILITY_REPORT"
MEASURED: dict[str, dict[str, Any]] = {}


def report_path() -> Path:
    return Path(os.environ.get(REPORT_ENV_VAR) or Path(tempfile.gettempdir()) / "mlops_assets_reliability.json")


def record(section: str, **counts: Any) -> None:
    """Add counts under `section`, print them (visible with -s) and rewrite the JSON file."""
    MEASURED.setdefault(section, {}).update(counts)
    print(f"[reliability] {section}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    path = report_path()
    # Test workers (pytest-xdist) each hold their own sections: merge into what the others wrote.
    try:
        written = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        written = {}
    path.write_text(json.dumps({**written, **MEASURED}, indent=2, default=str))


def summary_lines() -> list[str]:
    return [f"{section}: " + ", ".join(f"{k}={v}" for k, v in counts.items()) for section, counts in MEASURED.items()]
