"""Asset storage: polars frames as Parquet and small documents as JSON, under a UPath
(a local folder by default, gs://bucket/prefix in production)."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import dagster as dg
import polars as pl
from upath import UPath

from mlops_assets.core.spec import DatasetSpec, load_spec
from mlops_assets.resources.gcs import storage_path
from mlops_assets.resources.landing import write_atomic


def _is_local(path: UPath) -> bool:
    return path.protocol in ("", "file", "local")


def table_schema(frame: pl.DataFrame, descriptions: Mapping[str, str] | None = None) -> dg.TableSchema:
    """The frame's columns with their polars types and, where given, what each one means."""
    described = descriptions or {}
    return dg.TableSchema(
        columns=[dg.TableColumn(name, str(dtype), description=described.get(name)) for name, dtype in frame.schema.items()]
    )


def _missing_text(asset: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:20]) + (f" ... ({len(keys) - 20} more)" if len(keys) > 20 else "")
    return (
        f"left out {len(keys)} partition(s) of {asset} never stored (a batch never cleaned, e.g. quarantined; "
        f"allow_missing_partitions): {shown}"
    )


class PolarsParquetIOManager(dg.UPathIOManager):
    """Frames go to `<base>/<asset key>[/<partition>].parquet`, documents to `.json`.

    Inputs load eagerly by default; a parameter annotated `pl.LazyFrame`, or input metadata
    `{"lazy": True}`, gets a `pl.LazyFrame` (a Parquet scan locally), and `{"allow_missing_partitions": True}` skips partitions never materialized (a
    quarantined batch; reported once per load at INFO). Each stored frame's column schema
    describes every column (`core.columns.column_descriptions` with the dataset spec)."""

    extension: str = ".parquet"

    def __init__(self, base_path: UPath, spec_path: str = "") -> None:
        super().__init__(base_path=base_path)
        self._spec_path = spec_path
        self._spec: DatasetSpec | None | bool = False  # False: not loaded yet

    def _dataset_spec(self) -> DatasetSpec | None:
        """The dataset spec that describes the columns (loaded once; None when it cannot be
        loaded: a store never fails because of column descriptions)."""
        if self._spec is False:
            try:
                self._spec = load_spec(self._spec_path or None)
            except Exception:  # noqa: BLE001 - an unreadable spec fails the assets that read it, not every store
                self._spec = None
        return self._spec  # type: ignore[return-value]

    def column_descriptions(self, frame: pl.DataFrame) -> dict[str, str]:
        from mlops_assets.core.columns import column_descriptions

        return column_descriptions(self._dataset_spec(), frame.columns)

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        if isinstance(obj, pl.LazyFrame):
            obj = obj.collect()
        if isinstance(obj, pl.DataFrame):
            buffer = io.BytesIO()
            obj.write_parquet(buffer, compression="zstd", statistics=True)
            write_atomic(path, buffer.getvalue())
            context.add_output_metadata(
                {"dagster/row_count": obj.height, "dagster/column_schema": table_schema(obj, self.column_descriptions(obj))}
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
        """Each partition from its own file. An unpartitioned asset reading a partitioned one
        always gets a dict by partition key, even when only one partition exists yet; a
        partitioned asset reading its own partition gets the value. A partition without a stored
        value raises an error naming it and its path, unless the input's metadata says
        `allow_missing_partitions`: then it is left out, and the partitions left out are
        reported once per load at INFO (Dagster's own loader warns once per partition, on
        every load, forever, for each quarantined batch)."""
        paths = self._get_paths_for_partitions(context)
        allow_missing = bool((context.definition_metadata or {}).get("allow_missing_partitions"))
        asset = context.asset_key.to_user_string()
        loaded: dict[str, Any] = {}
        missing: list[str] = []
        for key in context.asset_partition_keys:
            path = paths[key]
            try:
                loaded[key] = self.load_from_path(context, path)
            except FileNotFoundError as error:
                if not allow_missing:
                    raise FileNotFoundError(
                        f"partition {key!r} of {asset} has no stored value at {path} (.parquet or .json): "
                        "materialize it first, or read it with input metadata allow_missing_partitions=True"
                    ) from error
                missing.append(key)
        if missing:
            context.log.info(_missing_text(asset, missing))
        if len(context.asset_partition_keys) == 1 and context.has_partition_key:
            return next(iter(loaded.values()), None)
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
    # The dataset spec whose column descriptions go into each stored frame's column schema
    # (empty: MLOPS_DATASET_SPEC, else the demo spec, as DatasetSpecResource).
    spec_path: str = ""

    def create_io_manager(self, context: dg.InitResourceContext) -> PolarsParquetIOManager:
        return PolarsParquetIOManager(base_path=storage_path(self.base_dir), spec_path=self.spec_path)
