"""Metadata helpers: what a person wants to see on a materialization in the UI."""

from __future__ import annotations

from typing import Any

import dagster as dg
import polars as pl


# Characters of a cell that Markdown would read as table syntax or HTML; escaped so a label such
# as "R&D <1>" or "a|b" shows as written.
_MARKDOWN_ESCAPES = str.maketrans({"\\": "\\\\", "|": "\\|", "<": "\\<", ">": "\\>", "\n": " "})


def markdown_table(frame: pl.DataFrame, max_rows: int = 50) -> dg.MetadataValue:
    head = frame.head(max_rows)
    lines = ["| " + " | ".join(_cell(c) for c in head.columns) + " |", "|" + "---|" * len(head.columns)]
    for row in head.iter_rows():
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    if frame.height > max_rows:
        lines.append(f"\n_{frame.height - max_rows} more rows_")
    return dg.MetadataValue.md("\n".join(lines))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.4g}"
    return "" if value is None else str(value).translate(_MARKDOWN_ESCAPES)


def counts(mapping: dict[str, Any]) -> dict[str, dg.MetadataValue]:
    """Flat numeric metadata, so the UI can plot each value over time."""
    out: dict[str, dg.MetadataValue] = {}
    for key, value in mapping.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            out[key] = dg.MetadataValue.int(value)
        elif isinstance(value, float):
            out[key] = dg.MetadataValue.float(value)
    return out


def png_markdown(png: bytes, title: str) -> dg.MetadataValue:
    """A PNG shown inline in the Dagster UI."""
    import base64

    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})")
