"""Time-ordered train / validation / test split: no row of a later period trains a model
that is scored on an earlier one."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from mlops_assets.core.spec import DatasetSpec


class SplitError(ValueError):
    """The data cannot be split as configured."""


@dataclass(frozen=True)
class SplitBoundaries:
    """train: ts < validation_start; validation: validation_start <= ts < test_start; test: ts >= test_start."""

    train_start: str
    validation_start: str
    test_start: str
    test_end: str

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items()}


def split_boundaries(frame: pl.DataFrame, spec: DatasetSpec) -> tuple:
    stamps = frame.get_column(spec.timestamp).unique().sort()
    n = len(stamps)
    i_val = int(n * spec.train_fraction)
    i_test = int(n * (spec.train_fraction + spec.validation_fraction))
    if n < 3 or i_val < 1 or i_test <= i_val or i_test >= n:
        raise SplitError(
            f"{n} distinct timestamps cannot be split into train {spec.train_fraction:.0%}, "
            f"validation {spec.validation_fraction:.0%} and test {spec.test_fraction:.0%}; land more history"
        )
    return stamps[0], stamps[i_val], stamps[i_test], stamps[n - 1]


def time_split(frame: pl.DataFrame, spec: DatasetSpec) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, SplitBoundaries]:
    """Cut on shared timestamps, so every group has the same boundaries."""
    start, val_start, test_start, end = split_boundaries(frame, spec)
    ts = pl.col(spec.timestamp)
    train = frame.filter(ts < val_start)
    validation = frame.filter((ts >= val_start) & (ts < test_start))
    test = frame.filter(ts >= test_start)
    return train, validation, test, SplitBoundaries(str(start), str(val_start), str(test_start), str(end))


def split_is_time_ordered(train: pl.DataFrame, validation: pl.DataFrame, test: pl.DataFrame, timestamp: str) -> tuple[bool, str]:
    """The leakage rule: max(train) < min(validation) and max(validation) < min(test)."""
    parts = {"train": train, "validation": validation, "test": test}
    empty = [name for name, part in parts.items() if part.height == 0]
    if empty:
        return False, f"empty split(s): {empty}"
    bounds = {name: (part.get_column(timestamp).min(), part.get_column(timestamp).max()) for name, part in parts.items()}
    ok = bounds["train"][1] < bounds["validation"][0] and bounds["validation"][1] < bounds["test"][0]
    text = ", ".join(f"{name} {lo} .. {hi}" for name, (lo, hi) in bounds.items())
    return ok, ("time-ordered: " if ok else "OVERLAP: ") + text
