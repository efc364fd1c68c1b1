"""Metadata helpers: what a person wants to see on a materialization in the UI."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import dagster as dg
import polars as pl

# Significant digits of every float shown in the UI: enough to compare runs, never 16 digits.
DIGITS = 4


# Characters of a cell that Markdown would read as table syntax or HTML; escaped so a label such
# as "R&D <1>" or "a|b" shows as written.
_MARKDOWN_ESCAPES = str.maketrans({"\\": "\\\\", "|": "\\|", "<": "\\<", ">": "\\>", "\n": " "})


def significant(value: float, digits: int = DIGITS) -> float:
    """`value` rounded to `digits` significant digits (12345.678 -> 12350.0, 0.000123456 ->
    0.0001235); NaN, infinities and 0 as they are."""
    value = float(value)
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{digits}g}")


def rounded(value: Any, digits: int = DIGITS) -> Any:
    """A float rounded to significant digits (anything else as it is): for headline numbers."""
    return significant(value, digits) if isinstance(value, float) else value


def table_metadata(
    frame: pl.DataFrame, max_rows: int = 50, descriptions: Mapping[str, str] | None = None, digits: int = DIGITS
) -> dg.MetadataValue:
    """A polars frame as a Dagster table (`MetadataValue.table` with a `TableSchema`): typed,
    sortable columns in the UI, floats rounded to `digits` significant digits, NaN shown empty,
    timestamps and other values as text. `descriptions` (column -> text) become the columns'
    descriptions. At most `max_rows` rows; when rows are left out, the first column's
    description says how many were shown. Drop-in for `markdown_table(frame, max_rows)`."""
    head = frame.head(max_rows)
    described = dict(descriptions or {})
    if frame.height > max_rows and head.columns:
        first = head.columns[0]
        note = f"first {max_rows} of {frame.height} rows shown"
        described[first] = f"{described[first]} ({note})" if described.get(first) else note
    columns = [
        dg.TableColumn(name, _column_type(dtype), description=described.get(name) or None) for name, dtype in head.schema.items()
    ]
    records = [dg.TableRecord({name: _record_value(v, digits) for name, v in row.items()}) for row in head.iter_rows(named=True)]
    return dg.MetadataValue.table(records=records, schema=dg.TableSchema(columns=columns))


def _column_type(dtype: pl.DataType) -> str:
    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_integer():
        return "int"
    if dtype.is_float() or dtype.is_decimal():
        return "float"
    if dtype == pl.Datetime or dtype == pl.Date:
        return "datetime" if dtype == pl.Datetime else "date"
    return "string"  # text, categories, and lists or structs shown as JSON text


def _record_value(value: Any, digits: int) -> str | int | float | bool | None:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return significant(value, digits) if math.isfinite(value) else None
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    try:
        return significant(float(value), digits) if type(value).__name__ == "Decimal" else str(value)
    except (TypeError, ValueError):
        return str(value)


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
    """Flat numeric metadata, so the UI can plot each value over time (floats rounded to
    `DIGITS` significant digits)."""
    out: dict[str, dg.MetadataValue] = {}
    for key, value in mapping.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            out[key] = dg.MetadataValue.int(value)
        elif isinstance(value, float):
            out[key] = dg.MetadataValue.float(significant(value))
    return out


def png_markdown(png: bytes, title: str) -> dg.MetadataValue:
    """A PNG shown inline in the Dagster UI."""
    import base64

    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})")
