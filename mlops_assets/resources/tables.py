"""Asset storage: polars frames as Parquet and small documents as JSON, under a UPath
(a local folder by default, gs://bucket/prefix in production)."""

from __future__ import annotations

import io
import json
from typing import Any

import dagster as dg
import polars as pl
from upath import UPath

from mlops_assets.resources.gcs import storage_path
from mlops_assets.resources.landing import write_atomic


def _is_local(path: UPath) -> bool:
    return path.protocol in ("", "file", "local")


def table_schema(frame: pl.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()])


class PolarsParquetIOManager(dg.UPathIOManager):
    """Frames go to `<base>/<asset key>[/<partition>].parquet`, documents to `.json`.

    Inputs load eagerly by default; a parameter annotated `pl.LazyFrame`, or input metadata
    `{"lazy": True}`, gets a `pl.LazyFrame` (a Parquet scan locally), and `{"allow_missing_partitions": True}` skips partitions never materialized (a
    quarantined batch)."""

    extension: str = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        if isinstance(obj, pl.LazyFrame):
            obj = obj.collect()
        if isinstance(obj, pl.DataFrame):
            buffer = io.BytesIO()
            obj.write_parquet(buffer, compression="zstd", statistics=True)
            write_atomic(path, buffer.getvalue())
            context.add_output_metadata(
                {"dagster/row_count": obj.height, "dagster/column_schema": table_schema(obj)}
            )
            return
        if isinstance(obj, (dict, list)):
            write_atomic(path.with_suffix(".json"), json.dumps(obj, indent=1, default=str).encode())
            return
        raise TypeError(f"cannot store {type(obj).__name__}: return a polars frame or a JSON-able dict")

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        lazy = context.definition_metadata.get("lazy") or getattr(context.dagster_type, "typing_type", None) is pl.LazyFrame
        if path.exists():
            if not _is_local(path):  # through gcsfs (its endpoint and credentials), not polars' own cloud reader
                frame = pl.read_parquet(path.read_bytes())
                return frame.lazy() if lazy else frame
            if lazy:
                return pl.scan_parquet(str(path))
            return pl.read_parquet(str(path))
        json_path = path.with_suffix(".json")
        if json_path.exists():
            return json.loads(json_path.read_text())
        raise FileNotFoundError(f"no stored value at {path} (.parquet or .json)")

    def load_partitions(self, context: dg.InputContext):
        """An unpartitioned asset reading a partitioned one always gets a dict by partition
        key, even when only one partition exists yet."""
        loaded = super().load_partitions(context)
        if len(context.asset_partition_keys) == 1 and not context.has_partition_key:
            key = context.asset_partition_keys[0]
            return {} if loaded is None else {key: loaded}
        return loaded

    def path_exists(self, path: UPath) -> bool:
        return path.exists() or path.with_suffix(".json").exists()

    def make_directory(self, path: UPath) -> None:
        """Object stores have no folders: nothing to make there."""
        if _is_local(path):
            path.mkdir(parents=True, exist_ok=True)


class TableStorage(dg.ConfigurableIOManagerFactory):
    """Where asset values are stored: a local folder or a gs:// prefix (through gcsfs; see
    `resources/gcs.py` for the endpoint and credentials). Each value is serialized whole in
    memory first, then written in one piece: a temp file renamed into place locally, one
    object upload on GCS (an object is visible only once its upload completed), so a failed
    write never leaves a partial or mixed value behind."""

    base_dir: str

    def create_io_manager(self, context: dg.InitResourceContext) -> PolarsParquetIOManager:
        return PolarsParquetIOManager(base_path=storage_path(self.base_dir))
