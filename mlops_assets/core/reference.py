"""The reference a registered version is monitored against: what it was trained and tested on.

Built once, when the version is registered, and stored with it (artifacts of its MLflow run),
so drift and realized-error comparisons use the champion's own data whatever has been
refreshed since. Two Parquet files (the training sample, the recent test rows with the
version's forecast of them) and one JSON file (profile, SHAP shares, MASE scales,
calibration, data versions)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

PREDICTION = "prediction"
TRAIN_FILE, RECENT_FILE, META_FILE = "train_sample.parquet", "recent.parquet", "reference.json"
FILES = (TRAIN_FILE, RECENT_FILE, META_FILE)


@dataclass
class ReferenceData:
    version: str
    train_sample: pl.DataFrame  # evenly spaced <= reference_rows training rows: timestamp, group, features, target
    recent: pl.DataFrame  # newest days of the test set with baselines and this version's "prediction"
    profile: dict  # data_profile of its training data
    importance: dict[str, float]  # SHAP share per feature
    scales: dict  # MASE scales {"overall": float, "by_group": {label: float}}
    calibration: dict = field(default_factory=dict)  # core.drift.calibrate(...) output
    data_versions: dict[str, str] = field(default_factory=dict)

    def groups(self, group_column: str | None) -> list[str]:
        """The group labels of its training data (the profile's categories; [] for a single series)."""
        if not group_column:
            return []
        stats = self.profile.get("columns", {}).get(group_column, {})
        return sorted(stats.get("categories", {})) or sorted(self.train_sample.get_column(group_column).cast(pl.String).unique().to_list())

    def describe(self, timestamp: str) -> dict:
        """Which reference this is: version, rows and time window of both parts, data versions."""
        return {
            "version": self.version,
            "training_rows": self.train_sample.height,
            **_window(self.train_sample, timestamp, "training"),
            "recent_rows": self.recent.height,
            **_window(self.recent, timestamp, "recent"),
            "data_versions": dict(self.data_versions),
        }


def _window(frame: pl.DataFrame, timestamp: str, prefix: str) -> dict:
    ts = frame.get_column(timestamp) if timestamp in frame.columns and frame.height else None
    return {f"{prefix}_from": str(ts.min()) if ts is not None else None, f"{prefix}_to": str(ts.max()) if ts is not None else None}


def training_sample(train: pl.DataFrame | pl.LazyFrame, columns: list[str], rows: int) -> pl.DataFrame:
    """Every k-th training row (at most about `rows`); only those of `columns` the training
    data has are read (a lazy scan reads nothing else)."""
    lazy = train.lazy()
    names = set(lazy.collect_schema().names())
    total = lazy.select(pl.len()).collect().item()
    step = max(1, -(-total // max(rows, 1)))
    return lazy.select([c for c in dict.fromkeys(columns) if c in names]).gather_every(step).collect()


def newest_days(frame: pl.DataFrame | pl.LazyFrame, timestamp: str, days: float) -> pl.DataFrame:
    """The rows of the newest `days` days (all of a shorter frame)."""
    ts = pl.col(timestamp)
    return frame.lazy().filter(ts > ts.max() - pl.duration(seconds=round(days * 86400))).collect()


def build_reference(
    version: str,
    train: pl.DataFrame | pl.LazyFrame,
    test: pl.DataFrame | pl.LazyFrame,
    predict: Callable[[pl.DataFrame], np.ndarray],
    *,
    columns: list[str],
    timestamp: str,
    profile: dict,
    importance: dict[str, float],
    scales: dict,
    data_versions: dict[str, str],
    reference_rows: int,
    recent_days: float,
) -> ReferenceData:
    """The reference of `version`: a bounded training sample of `columns`, and the newest
    `recent_days` of the test set with `predict(rows)` (the version's forecast) as "prediction".
    The calibration is added by the caller (it is computed from this reference)."""
    recent = newest_days(test, timestamp, recent_days)
    forecast = np.asarray(predict(recent), float) if recent.height else np.zeros(0)
    return ReferenceData(
        version=str(version),
        train_sample=training_sample(train, columns, reference_rows),
        recent=recent.with_columns(pl.Series(PREDICTION, forecast, dtype=pl.Float64)),
        profile=profile,
        importance={str(k): float(v) for k, v in importance.items()},
        scales=_plain_scales(scales),
        data_versions={str(k): str(v) for k, v in data_versions.items()},
    )


def _plain_scales(scales: dict) -> dict:
    overall = scales.get("overall")
    return {
        "overall": float(overall) if overall is not None else None,
        "by_group": {str(k): float(v) for k, v in (scales.get("by_group") or {}).items()},
    }


def write_reference(reference: ReferenceData, directory: str | Path) -> list[Path]:
    """The three files of `reference` in `directory` (created); their paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    reference.train_sample.write_parquet(out / TRAIN_FILE)
    reference.recent.write_parquet(out / RECENT_FILE)
    meta = {
        "version": reference.version, "profile": reference.profile, "importance": reference.importance,
        "scales": reference.scales, "calibration": reference.calibration, "data_versions": reference.data_versions,
    }
    (out / META_FILE).write_text(json.dumps(meta, default=_json_default), encoding="utf-8")
    return [out / name for name in FILES]


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def read_reference(directory: str | Path) -> ReferenceData:
    """The reference `write_reference` stored in `directory`."""
    path = Path(directory)
    missing = [name for name in FILES if not (path / name).exists()]
    if missing:
        raise FileNotFoundError(f"reference in {path} lacks {missing}")
    meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    return ReferenceData(
        version=str(meta["version"]),
        train_sample=pl.read_parquet(path / TRAIN_FILE),
        recent=pl.read_parquet(path / RECENT_FILE),
        profile=meta["profile"],
        importance=meta["importance"],
        scales=meta["scales"],
        calibration=meta.get("calibration") or {},
        data_versions=meta.get("data_versions") or {},
    )
