"""pandera schemas built from the dataset spec, validated on polars frames."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from mlops_assets.core.ingest import BatchError
from mlops_assets.core.spec import ColumnSpec, DatasetSpec

UTC_TIMESTAMP = pl.Datetime("us", "UTC")


def _range_checks(col: ColumnSpec) -> list[pa.Check]:
    if col.min is not None and col.max is not None:
        return [pa.Check.in_range(col.min, col.max)]
    if col.min is not None:
        return [pa.Check.ge(col.min)]
    if col.max is not None:
        return [pa.Check.le(col.max)]
    return []


def may_be_null(col: ColumnSpec, spec: DatasetSpec) -> bool:
    """Nulls are allowed where the spec allows missing values, and where cleaning itself
    nulls a value it repairs (an out-of-range reading with `on_out_of_range: null`, a target
    spike)."""
    repaired = col.on_out_of_range == "null" or (col.column == spec.target.column and bool(spec.spike_mad_threshold))
    return col.allow_missing or repaired


def clean_schema(spec: DatasetSpec) -> pa.DataFrameSchema:
    """What a cleaned batch (and the merged history) must look like."""
    columns: dict[str, pa.Column] = {spec.timestamp: pa.Column(UTC_TIMESTAMP, nullable=False)}
    if spec.group:
        columns[spec.group] = pa.Column(pl.String, nullable=False, checks=[pa.Check.str_length(min_value=1)])
    for col in spec.value_columns:
        columns[col.column] = pa.Column(pl.Float64, nullable=may_be_null(col, spec), checks=_range_checks(col))
    for name in spec.categorical_features:
        columns[name] = pa.Column(pl.String, nullable=True)
    return pa.DataFrameSchema(columns, unique=spec.key_columns, strict=True, name=f"{spec.name}_clean")


def validate_clean(frame: pl.DataFrame, spec: DatasetSpec, file: str) -> pl.DataFrame:
    """Validate with pandera; failures become a BatchError naming rows and columns."""
    try:
        return clean_schema(spec).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        columns = sorted({c for c in cases.get_column("column").to_list() if c})
        rows = sorted({int(i) + 1 for i in cases.get_column("index").drop_nulls().to_list()})
        checks = sorted(set(cases.get_column("check").cast(pl.String).to_list()))
        raise BatchError(
            file,
            "schema",
            f"failed pandera checks {checks}; rows are positions in the cleaned batch, sorted by key",
            rows=rows,
            columns=columns or spec.key_columns,
            details={"failure_cases": cases.head(20).cast(pl.String).to_dicts()},
        ) from exc
