"""The group fallback: every model of a grouped spec is logged as a `GroupRouter`, so a group
the model has never learned is forecast by a group-agnostic model instead of an ignored one-hot.

Known groups: a group is known when the rows the final model was fitted on hold at least
`KNOWN_MIN_HOURS` (one week: a whole weekly cycle) of its rows, i.e. 168 hourly rows, 336
half-hourly rows or 7 daily rows (for an LSTM, counted over the rows it learned from). Rows of
known groups go to the model (the same predictions as the model alone); rows of any other group
(new, or too young at training time) go to the fallback.

The fallback (`GroupFallback`) has no group identity and is scale-free: each row's own level
is the mean absolute value of its target lags and rolling means (whichever are present);
target-derived inputs are divided by that level, the model (scikit-learn's histogram gradient
boosting, which routes missing values natively) predicts the target divided by the level, and
the prediction is multiplied back. A group ten times larger than any seen in training is
forecast as well as one of a familiar size. It is fitted on the same rows as the model (the
training data only), plus a copy of a quarter of them with the longer lags and rolling windows
blanked, so a new group's first week (only the shortest lag present) is a case it has learned."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core.models.data import ModelData, Split

KNOWN_MIN_HOURS = 168.0
FALLBACK_MAX_ROWS = 200_000  # the newest fitted rows the fallback learns from
PARTIAL_SHARE = 0.25  # share of rows copied with only the shortest history
RATIO_LIMIT = 10.0  # |target / level| beyond this is a broken row, not a pattern to learn
# Below this many rows, OpenMP threads only add synchronisation: one thread fits 7x faster on 1k
# rows (1.3 s against 9.7 s with two threads on a busy two-core machine).
SINGLE_THREAD_ROWS = 50_000
_WINDOW = re.compile(r"_(\d+(?:\.\d+)?)(h|min)$")


def window_hours(column: str) -> float | None:
    """The lag or window of a derived column from its name ("load_lag_168h" -> 168, "x_lag_90min" -> 1.5)."""
    match = _WINDOW.search(column)
    if not match:
        return None
    value = float(match.group(1))
    return value if match.group(2) == "h" else value / 60.0


@dataclass
class ColumnRoles:
    """What the fallback does with each numeric input: `level` columns (target lags and rolling
    means) define the row's level; `relative` columns (those plus rolling std) are divided by
    it; `absolute` columns (calendar, weather, observed-only lags) are used as they are;
    `long_history` columns are blanked in the partial-history copies."""

    level: list[str]
    relative: list[str]
    absolute: list[str]
    long_history: list[str]

    @classmethod
    def of(cls, data: ModelData) -> ColumnRoles:
        numeric = list(data.numeric)
        target = data.target or _target_from_names(numeric)
        lags = [c for c in numeric if target and c.startswith(f"{target}_lag_")]
        means = [c for c in numeric if target and c.startswith(f"{target}_roll_mean_")]
        stds = [c for c in numeric if target and c.startswith(f"{target}_roll_std_")]
        relative = [*lags, *means, *stds]
        shortest = min((window_hours(c) or math.inf for c in lags), default=math.inf)
        temperature = f"{data.temperature}_roll_mean_" if data.temperature else None
        derived = [c for c in numeric if ("_lag_" in c or "_roll_" in c) and not (temperature and c.startswith(temperature))]
        long_history = [c for c in derived if (window_hours(c) or 0.0) > shortest]
        return cls(
            level=[*lags, *means], relative=relative, absolute=[c for c in numeric if c not in relative],
            long_history=long_history,
        )


def _target_from_names(columns: list[str]) -> str:
    """The target of frames built without naming it: the lagged column that also has rolling means."""
    lagged = [c.rsplit("_lag_", 1)[0] for c in columns if "_lag_" in c]
    rolled = [p for p in dict.fromkeys(lagged) if any(c.startswith(f"{p}_roll_mean_") for c in columns)]
    return (rolled or lagged or [""])[0]


def row_level(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Each row's own level: the mean |value| of its target lags and rolling means present (NaN: none)."""
    if not columns:
        return np.full(len(frame), np.nan)
    values = np.abs(frame[columns].to_numpy(dtype=float, na_value=np.nan))
    present = np.isfinite(values)
    counts = present.sum(axis=1)
    sums = np.where(present, values, 0.0).sum(axis=1)
    return np.divide(sums, counts, out=np.full(len(frame), np.nan), where=counts > 0)


@dataclass
class GroupFallback:
    """A group-agnostic, scale-free forecaster (see the module docstring)."""

    roles: ColumnRoles
    model: Any = field(repr=False)
    fit_info: dict[str, Any] = field(default_factory=dict)

    def design(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, level) of each row: relative columns over the level, absolute ones as they are."""
        level = row_level(frame, self.roles.level)
        safe = np.where(np.isfinite(level) & (level > 0), level, np.nan)
        relative = frame[self.roles.relative].to_numpy(dtype=float, na_value=np.nan) / safe[:, None]
        absolute = frame[self.roles.absolute].to_numpy(dtype=float, na_value=np.nan)
        return np.hstack([relative, absolute]), level

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        if len(frame) == 0:
            return np.zeros(0)
        X, level = self.design(frame)
        ratio = self.model.predict(X)
        # A zero level (a series at zero for the whole look-back) forecasts zero; no level at all
        # (no target history) forecasts NaN rather than a number from nowhere.
        return np.where(level > 0, ratio * level, np.where(level == 0, 0.0, np.nan))


def partial_history(frame: pd.DataFrame, roles: ColumnRoles, share: float, seed: int) -> pd.DataFrame:
    """A seeded `share` of the rows with every longer lag and rolling window blanked."""
    rows = np.random.default_rng(seed).random(len(frame)) < share
    copy = frame.loc[rows].copy()
    copy[roles.long_history] = np.nan
    return copy


def fit_fallback(X: pd.DataFrame, y: np.ndarray, roles: ColumnRoles, seed: int = 0) -> GroupFallback:
    """The fallback fitted on these rows (and their partial-history copies)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    X = X.iloc[-FALLBACK_MAX_ROWS:].reset_index(drop=True)
    y = np.asarray(y, dtype=float)[-FALLBACK_MAX_ROWS:]
    extra = partial_history(X, roles, PARTIAL_SHARE, seed)
    frame = pd.concat([X, extra], ignore_index=True)
    target = np.concatenate([y, y[extra.index.to_numpy()]])
    fallback = GroupFallback(roles, None)
    design, level = fallback.design(frame)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = target / level
    keep = np.isfinite(ratio) & (level > 0) & (np.abs(ratio) <= RATIO_LIMIT)
    model = HistGradientBoostingRegressor(
        max_iter=300, learning_rate=0.05, max_leaf_nodes=31, min_samples_leaf=40, l2_regularization=1.0,
        early_stopping=False, random_state=seed,
    )
    if keep.sum() < 2:
        raise ValueError("the group fallback needs rows with a target and target history")
    with _threads_for(int(keep.sum())):
        fallback.model = model.fit(design[keep], ratio[keep])
    fallback.fit_info = {"rows": int(len(X)), "partial_history_rows": int(len(extra)), "rows_used": int(keep.sum())}
    return fallback


def _threads_for(rows: int):
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1 if rows < SINGLE_THREAD_ROWS else None, user_api="openmp")


@dataclass
class GroupRouter:
    """Rows of `known` groups to `primary`, rows of any other group to `fallback`. Looks like the
    primary to the pyfunc wrapper (kind, feature_columns, fit_info, timestamp, group)."""

    primary: Any
    fallback: GroupFallback
    group: str
    known: tuple[str, ...]
    min_rows: int

    @property
    def kind(self) -> str:
        return self.primary.kind

    @property
    def feature_columns(self) -> list[str]:
        return self.primary.feature_columns

    @property
    def fit_info(self) -> dict[str, Any]:
        return self.primary.fit_info

    @property
    def timestamp(self) -> str | None:
        return getattr(self.primary, "timestamp", None)

    def known_rows(self, frame: pd.DataFrame) -> np.ndarray:
        if self.group not in frame.columns:
            return np.zeros(len(frame), dtype=bool)
        return frame[self.group].astype(str).isin(self.known).to_numpy()

    def served_by(self, frame: pd.DataFrame) -> np.ndarray:
        """"model" or "fallback" per row."""
        return np.where(self.known_rows(frame), "model", "fallback")

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        known = self.known_rows(frame)
        if known.all():
            return np.asarray(self.primary.predict(frame), dtype=float)
        out = np.empty(len(frame), dtype=float)
        if known.any():
            out[known] = np.asarray(self.primary.predict(frame.loc[known]), dtype=float)
        out[~known] = self.fallback.predict(frame.loc[~known])
        return out


def primary_of(forecaster: Any) -> Any:
    """The model behind a router (the forecaster itself when it is not one)."""
    return forecaster.primary if isinstance(forecaster, GroupRouter) else forecaster


def fitted_rows(forecaster: Any, data: ModelData) -> Split:
    """The rows the forecaster was fitted on: train, or train + validation for a refit; for a
    model that learned from only the newest rows (the LSTM), those rows."""
    info = getattr(forecaster, "fit_info", {}) or {}
    split = data.train_and_validation() if info.get("fitted_on") == "train+validation" else data.train
    learned = info.get("rows_learned_from")
    if learned and learned < len(split):
        start = len(split) - int(learned)
        return Split(
            X=split.X.iloc[start:].reset_index(drop=True), y=split.y[start:], timestamps=split.timestamps[start:],
            groups=None if split.groups is None else split.groups[start:],
        )
    return split


def known_min_rows(data: ModelData) -> int:
    """Rows a group needs in the fitted rows to be known: `KNOWN_MIN_HOURS` in steps (at least 1)."""
    step_hours = data.frequency.total_seconds() / 3600 if data.frequency else 1.0
    return max(1, math.ceil(KNOWN_MIN_HOURS / step_hours - 1e-9))


def known_groups(groups: np.ndarray | None, min_rows: int) -> tuple[str, ...]:
    if groups is None or len(groups) == 0:
        return ()
    labels, counts = np.unique(np.asarray(groups).astype(str), return_counts=True)
    return tuple(sorted(str(label) for label, n in zip(labels, counts) if n >= min_rows))


def with_group_fallback(forecaster: Any, data: ModelData, seed: int = 0, serves: Split | None = None) -> Any:
    """`forecaster` routed through a group fallback fitted on its own fitted rows; unchanged for
    a single series (or inputs without target lags), and returned as it is when it already is a
    router. With `serves` (the only rows it will forecast, e.g. a train-only fit scoring
    validation), unchanged too when every one of those rows is of a group it knows: the
    fallback would serve none of them."""
    roles = ColumnRoles.of(data)
    if isinstance(forecaster, GroupRouter) or not data.group or not roles.level:
        return forecaster
    rows = fitted_rows(forecaster, data)
    min_rows = known_min_rows(data)
    known = known_groups(rows.groups, min_rows)
    if serves is not None and serves.groups is not None and set(np.asarray(serves.groups).astype(str)) <= set(known):
        return forecaster
    fallback = fit_fallback(rows.X, rows.y, roles, seed)
    return GroupRouter(forecaster, fallback, data.group, known, min_rows)
