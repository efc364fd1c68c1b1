"""Prediction intervals: split conformal, per group, scaled by each row's level, adapted online.

Calibration (at training): the nonconformity score of a validation row is its absolute error
divided by the row's level (the mean |value| of its target lags and rolling means, the same
level the group fallback uses), so an interval widens where the load is high; without target
lags the score is the absolute error. The validation rows are forecast by the train-only fit,
never by the model that learned them. Each group with at least `min_group_scores` scores gets
its own quantile; smaller groups (and groups the model has not seen) use the pooled one.

The interval of a row is `prediction ± q × level`, q being the conformal quantile of the
scores at the group's miscoverage α (the ceil((n + 1)(1 - α))-th smallest of n scores).

Adaptation (at monitoring): each labelled batch appends its scores to its groups' windows
(the newest `window` per group are kept) and moves each group's α by adaptive conformal
inference (Gibbs & Candès, 2021), once per batch: α ← α + γ (α_nominal - miss rate). Too many
misses shrink α (wider intervals); too few widen it back."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

POOLED = "__all__"
DEFAULT_LEVEL = 0.8
DEFAULT_WINDOW = 720  # scores kept per group: 30 days of hourly rows
DEFAULT_GAMMA = 0.2
MIN_GROUP_SCORES = 50
# α stays inside (0, 1): at the lower end the interval is the widest score in the window.
ALPHA_BOUNDS = (0.001, 0.999)
SCALE_FLOOR_SHARE = 0.05  # a level below 5 % of the typical one counts as that much


def conformal_quantile(scores: np.ndarray, alpha: float) -> float:
    """The ceil((n + 1)(1 - α))-th smallest score (the largest when that rank exceeds n);
    NaN without scores."""
    values = np.sort(np.asarray(scores, dtype=float)[np.isfinite(scores)])
    n = values.size
    if n == 0:
        return math.nan
    rank = math.ceil((n + 1) * (1.0 - alpha) - 1e-9)
    return float(values[min(max(rank, 1), n) - 1])


def row_levels(frame: Any, columns: list[str]) -> np.ndarray:
    """Each row's level: mean |value| of `columns` present in the row (NaN: none)."""
    if not columns:
        return np.full(len(frame), np.nan)
    values = np.abs(np.column_stack([np.asarray(frame[c], dtype=float) for c in columns]))
    present = np.isfinite(values)
    counts = present.sum(axis=1)
    sums = np.where(present, values, 0.0).sum(axis=1)
    return np.divide(sums, counts, out=np.full(len(frame), np.nan), where=counts > 0)


def group_labels(frame: Any, group: str | None) -> np.ndarray:
    if not group or group not in getattr(frame, "columns", ()):
        return np.full(len(frame), POOLED, dtype=object)
    return np.asarray([str(g) for g in frame[group]], dtype=object)


@dataclass
class IntervalCalibrator:
    """Conformal scores and adapted α per group; see the module docstring."""

    level: float
    group: str | None
    scale_columns: list[str]
    typical_scale: float
    scores: dict[str, np.ndarray]
    alpha: dict[str, float] = field(default_factory=dict)
    window: int = DEFAULT_WINDOW
    gamma: float = DEFAULT_GAMMA
    min_group_scores: int = MIN_GROUP_SCORES
    batches_seen: int = 0

    @property
    def nominal_alpha(self) -> float:
        return 1.0 - self.level

    @property
    def method(self) -> str:
        scaled = "scaled by each row's level (target lags)" if self.scale_columns else "absolute errors"
        return f"split conformal per group, {scaled}, adapted by ACI (γ={self.gamma:g}) over the newest {self.window} scores per group"

    def scales(self, frame: Any) -> np.ndarray:
        """Each row's scale: its level, at least a share of the typical level (1 without levels)."""
        if not self.scale_columns:
            return np.ones(len(frame))
        levels = row_levels(frame, self.scale_columns)
        floor = SCALE_FLOOR_SHARE * self.typical_scale
        return np.where(np.isfinite(levels), np.maximum(levels, floor), self.typical_scale)

    def group_quantile(self, group: str) -> float:
        own = self.scores.get(group)
        key = group if own is not None and own.size >= self.min_group_scores else POOLED
        return conformal_quantile(self.scores[key], self.alpha.get(key, self.nominal_alpha))

    def half_widths(self, frame: Any) -> np.ndarray:
        groups = group_labels(frame, self.group)
        quantiles = {g: self.group_quantile(g) for g in set(groups)}
        return np.array([quantiles[g] for g in groups], dtype=float) * self.scales(frame)

    def interval(self, predictions: np.ndarray, frame: Any) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) around `predictions` for the rows of `frame`."""
        predictions = np.asarray(predictions, dtype=float)
        half = self.half_widths(frame) if len(predictions) else np.zeros(0)
        return predictions - half, predictions + half

    def scores_of(self, y: np.ndarray, predictions: np.ndarray, frame: Any) -> np.ndarray:
        return np.abs(np.asarray(y, float) - np.asarray(predictions, float)) / self.scales(frame)

    def updated(self, y: np.ndarray, predictions: np.ndarray, frame: Any, learn_scores: bool = True) -> IntervalCalibrator:
        """A new calibrator after a labelled batch: each group's α moved by its miss rate
        (against the intervals given before the batch), its scores appended to the window
        (unless `learn_scores` is False: only α moves)."""
        y, predictions = np.asarray(y, float), np.asarray(predictions, float)
        keep = np.isfinite(y) & np.isfinite(predictions)
        if not keep.any():
            return self
        rows = _rows(frame, keep)
        y, predictions = y[keep], predictions[keep]
        lower, upper = self.interval(predictions, rows)
        missed = (y < lower) | (y > upper)
        scores = self.scores_of(y, predictions, rows)
        groups = group_labels(rows, self.group)
        alpha, windows = dict(self.alpha), dict(self.scores)
        for key, members in [(POOLED, np.ones(len(y), bool)), *[(g, groups == g) for g in np.unique(groups) if g != POOLED]]:
            current = alpha.get(key, self.nominal_alpha)
            step = current + self.gamma * (self.nominal_alpha - float(missed[members].mean()))
            alpha[key] = float(np.clip(step, *ALPHA_BOUNDS))
            if learn_scores:
                windows[key] = np.concatenate([windows.get(key, np.zeros(0)), scores[members]])[-self.window_for(key):]
        return replace(self, alpha=alpha, scores=windows, batches_seen=self.batches_seen + 1)

    def window_for(self, key: str) -> int:
        """The pooled window holds every group's share."""
        groups = max(1, len([k for k in self.scores if k != POOLED]))
        return self.window * groups if key == POOLED else self.window

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level, "group": self.group, "scale_columns": list(self.scale_columns),
            "typical_scale": self.typical_scale, "scores": {k: [float(x) for x in v] for k, v in self.scores.items()},
            "alpha": dict(self.alpha), "window": self.window, "gamma": self.gamma,
            "min_group_scores": self.min_group_scores, "batches_seen": self.batches_seen,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntervalCalibrator:
        values = dict(data)
        values["scores"] = {k: np.asarray(v, dtype=float) for k, v in data["scores"].items()}
        return cls(**values)


def _rows(frame: Any, keep: np.ndarray) -> Any:
    """The kept rows of a pandas or polars frame."""
    if hasattr(frame, "iloc"):
        return frame.iloc[np.flatnonzero(keep)].reset_index(drop=True)
    import polars as pl

    return frame.filter(pl.Series(keep))


def fit_calibrator(
    y: np.ndarray, predictions: np.ndarray, frame: Any, *, level: float = DEFAULT_LEVEL, group: str | None = None,
    scale_columns: list[str] | None = None, window: int = DEFAULT_WINDOW, gamma: float = DEFAULT_GAMMA,
    min_group_scores: int = MIN_GROUP_SCORES,
) -> IntervalCalibrator:
    """Calibrate on held-out rows (validation, forecast by a fit that did not learn them)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"interval level {level!r} must be between 0 and 1 (e.g. 0.8 for the 10th-90th percentiles)")
    y, predictions = np.asarray(y, float), np.asarray(predictions, float)
    keep = np.isfinite(y) & np.isfinite(predictions)
    if keep.sum() < 2:
        raise ValueError(f"interval calibration needs at least 2 labelled, forecast rows (got {int(keep.sum())})")
    rows = _rows(frame, keep)
    columns = [c for c in (scale_columns or []) if c in getattr(rows, "columns", rows)]
    levels = row_levels(rows, columns) if columns else np.full(int(keep.sum()), np.nan)
    typical = float(np.nanmedian(levels)) if np.isfinite(levels).any() else 1.0
    calibrator = IntervalCalibrator(
        level=level, group=group, scale_columns=columns if np.isfinite(levels).any() else [],
        typical_scale=typical if typical > 0 else 1.0, scores={}, window=window, gamma=gamma, min_group_scores=min_group_scores,
    )
    scores = calibrator.scores_of(y[keep], predictions[keep], rows)
    groups = group_labels(rows, group)
    calibrator.scores = {g: scores[groups == g][-window:] for g in np.unique(groups) if g != POOLED}
    calibrator.scores[POOLED] = scores[-calibrator.window_for(POOLED):]
    return calibrator


def rolled_intervals(
    calibrator: IntervalCalibrator, y: np.ndarray, predictions: np.ndarray, frame: Any, periods: np.ndarray,
    learn_scores: bool = True,
) -> tuple[np.ndarray, np.ndarray, IntervalCalibrator]:
    """The intervals as monitoring serves them, over labelled rows in time: the rows of each
    period (e.g. a day: one batch) get the interval adapted by the periods before, then their
    labels move it (α only, with `learn_scores` False). Returns (lower, upper, the calibrator
    after the last period)."""
    predictions = np.asarray(predictions, dtype=float)
    lower, upper = np.full(len(predictions), np.nan), np.full(len(predictions), np.nan)
    periods = np.asarray(periods)
    for period in np.unique(periods):
        rows = np.flatnonzero(periods == period)
        part = _rows(frame, periods == period)
        lower[rows], upper[rows] = calibrator.interval(predictions[rows], part)
        calibrator = calibrator.updated(np.asarray(y, float)[rows], predictions[rows], part, learn_scores)
    return lower, upper, calibrator


def pinball_loss(y: np.ndarray, lower: np.ndarray, upper: np.ndarray, level: float) -> float:
    """Mean pinball (quantile) loss of the interval's ends as the (1 - level)/2 and
    (1 + level)/2 quantile forecasts, averaged over both."""
    y, lower, upper = (np.asarray(a, float) for a in (y, lower, upper))
    keep = np.isfinite(y) & np.isfinite(lower) & np.isfinite(upper)
    if not keep.any():
        return math.nan
    y, lower, upper = y[keep], lower[keep], upper[keep]
    low_q, high_q = (1 - level) / 2, (1 + level) / 2

    def loss(q: float, forecast: np.ndarray) -> np.ndarray:
        diff = y - forecast
        return np.maximum(q * diff, (q - 1) * diff)

    return float((loss(low_q, lower).mean() + loss(high_q, upper).mean()) / 2)


def coverage_report(
    y: np.ndarray, lower: np.ndarray, upper: np.ndarray, groups: np.ndarray | None, level: float, min_group_rows: int,
    periods: np.ndarray | None = None,
) -> dict[str, Any]:
    """Empirical coverage and mean width overall and per group (rows with an actual and an
    interval), the pinball loss, and the group with the worst coverage among those with at
    least `min_group_rows` rows. With `periods` (e.g. each row's day), each coverage also gets
    its 99 % sampling interval with the periods as the independent units (`ci_low`, `ci_high`;
    see `period_bounds`)."""
    y, lower, upper = (np.asarray(a, float) for a in (y, lower, upper))
    keep = np.isfinite(y) & np.isfinite(lower) & np.isfinite(upper)
    labels = np.full(len(y), POOLED, dtype=object) if groups is None else np.asarray([str(g) for g in groups], dtype=object)
    days = None if periods is None else np.asarray(periods)[keep]
    y, lower, upper, labels = y[keep], lower[keep], upper[keep], labels[keep]
    covered = (y >= lower) & (y <= upper)

    def bounds(rows: np.ndarray) -> dict[str, Any]:
        if days is None or not rows.any():
            return {}
        low, high, count = period_bounds(covered[rows], days[rows], level)
        return {"ci_low": low, "ci_high": high, "periods": count}

    by_group = [
        {"group": str(g), "rows": int(m.sum()), "coverage": float(covered[m].mean()), "mean_width": float((upper - lower)[m].mean()), **bounds(m)}
        for g in np.unique(labels) if groups is not None
        for m in [labels == g]
    ]
    judged = [r for r in by_group if r["rows"] >= min_group_rows]
    worst = min(judged, key=lambda r: (-abs(r["coverage"] - level), r["group"])) if judged else None
    return {
        "level": level, "rows": int(keep.sum()),
        "coverage": float(covered.mean()) if keep.any() else math.nan,
        "mean_width": float((upper - lower).mean()) if keep.any() else math.nan,
        "pinball_loss": pinball_loss(y, lower, upper, level),
        "by_group": by_group, "min_group_rows": min_group_rows, "worst_group": worst, **bounds(np.ones(len(y), bool)),
    }


def period_bounds(covered: np.ndarray, periods: np.ndarray, level: float) -> tuple[float, float, int]:
    """(low, high, periods): a 99 % interval of a coverage whose misses come in runs: rows of
    one period (a day: one weather, one load pattern) are not independent, so the standard
    error is the cluster-robust one over periods, with Student's t on periods - 1 degrees of
    freedom; never narrower than the binomial one over rows."""
    from scipy import stats

    covered = np.asarray(covered, dtype=float)
    coverage, rows = float(covered.mean()), covered.size
    binomial = math.sqrt(level * (1 - level) / rows)
    labels, index = np.unique(np.asarray(periods), return_inverse=True)
    count = labels.size
    if count < 2:
        return 0.0, 1.0, count
    hits, sizes = np.bincount(index, covered), np.bincount(index)
    cluster = math.sqrt(count / (count - 1) * float(((hits - coverage * sizes) ** 2).sum())) / rows
    half = float(stats.t.ppf(0.995, count - 1)) * max(cluster, binomial)
    return coverage - half, coverage + half, count


# How sure the gate must be before it calls a coverage off: a 99 % binomial interval.
COVERAGE_Z = 2.576


def coverage_bounds(coverage: float, rows: int, level: float) -> tuple[float, float]:
    """The 99 % sampling interval of a coverage measured on `rows` rows (standard error at the
    nominal level, so it exists at 0 % and 100 % too)."""
    half = COVERAGE_Z * math.sqrt(level * (1 - level) / rows)
    return coverage - half, coverage + half


def coverage_off(coverage: float, rows: int, level: float, tolerance: float) -> bool:
    """Whether `rows` rows show the coverage is more than `tolerance` from `level`: the whole
    99 % interval lies outside level ± tolerance (fewer rows cannot refuse on noise alone)."""
    low, high = coverage_bounds(coverage, rows, level)
    return high < level - tolerance or low > level + tolerance


def coverage_shortfall(report: dict[str, Any], tolerance: float) -> str | None:
    """Why the coverage is off (overall, or the worst judged group), or None when no judged
    coverage is shown to be more than `tolerance` from the nominal level."""
    level = report["level"]
    if not report["rows"] or not math.isfinite(report["coverage"]):
        return "no row with an actual and an interval to measure coverage on"
    nominal = f"nominal {level:.0%} (±{tolerance * 100:.0f} points)"
    if _off(report, level, tolerance):
        return f"coverage {report['coverage']:.0%} overall, {nominal}{_spread(report)}"
    off = [g for g in report.get("by_group", []) if g["rows"] >= report.get("min_group_rows", 0) and _off(g, level, tolerance)]
    if off:
        worst = min(off, key=lambda g: (-abs(g["coverage"] - level), g["group"]))
        others = f" ({len(off) - 1} more group(s) off)" if len(off) > 1 else ""
        return f"coverage {worst['coverage']:.0%} for {worst['group']}, {nominal}, on {worst['rows']} rows{_spread(worst)}{others}"
    return None


def _off(entry: dict[str, Any], level: float, tolerance: float) -> bool:
    """Off by more than `tolerance`: by the entry's own sampling interval when it has one
    (periods as units), else the binomial one over rows."""
    if "ci_low" in entry:
        return entry["ci_high"] < level - tolerance or entry["ci_low"] > level + tolerance
    return coverage_off(entry["coverage"], entry["rows"], level, tolerance)


def _spread(entry: dict[str, Any]) -> str:
    if "ci_low" not in entry:
        return ""
    return f" (99% interval {max(entry['ci_low'], 0):.0%}..{min(entry['ci_high'], 1):.0%} over {entry['periods']} days)"


def interval_verdict(report: dict[str, Any] | None, tolerance: float):
    """The `interval_coverage` gate: test coverage within `tolerance` of the nominal level
    overall and in every group with enough rows; the reason names the worst group and the
    mean width."""
    from mlops_assets.core.promotion import Verdict

    name = "interval_coverage"
    if report is None:
        return Verdict(name, False, "the model was logged without a prediction interval")
    shortfall = coverage_shortfall(report, tolerance)
    if shortfall is not None and not report["rows"]:
        return Verdict(name, False, shortfall)
    width = f"mean width {report['mean_width']:.4g}, pinball loss {report['pinball_loss']:.4g}, on {report['rows']:,} rows"
    if shortfall is not None:
        return Verdict(name, False, f"{shortfall}; {width}")
    worst = report.get("worst_group")
    spread = f"; worst group {worst['group']} {worst['coverage']:.0%}" if worst else ""
    unsure = "" if abs(report["coverage"] - report["level"]) <= tolerance else ", not shown to be off: too few days to judge"
    return Verdict(
        name, True, f"coverage {report['coverage']:.0%}{_spread(report)} (nominal {report['level']:.0%} ±{tolerance * 100:.0f} points){unsure}{spread}; {width}",
    )


def batch_coverage(y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> dict[str, Any]:
    """Realized coverage and mean width of one batch's labelled rows with an interval."""
    y, lower, upper = (np.asarray(a, float) for a in (y, lower, upper))
    keep = np.isfinite(y) & np.isfinite(lower) & np.isfinite(upper)
    if not keep.any():
        return {"rows": 0, "coverage": None, "mean_width": None}
    covered = (y[keep] >= lower[keep]) & (y[keep] <= upper[keep])
    return {"rows": int(keep.sum()), "coverage": float(covered.mean()), "mean_width": float((upper[keep] - lower[keep]).mean())}


def sustained_shortfall(batches: list[dict[str, Any]], level: float, tolerance: float, count: int) -> str | None:
    """A retrain reason when each of the newest `count` labelled batches (in time order) covered
    less than the nominal level minus `tolerance`, even with the adapted intervals; else None."""
    labelled = [b for b in batches if b.get("coverage") is not None]
    recent = labelled[-count:]
    # Rounded: 0.8 - 0.1 is 0.7000000000000001, and a batch that covered exactly 70 % is not short.
    threshold = round(level - tolerance, 9)
    if count < 1 or len(recent) < count or any(b["coverage"] >= threshold for b in recent):
        return None
    shown = ", ".join(f"{b['coverage']:.0%}" for b in recent)
    return f"interval coverage below {level - tolerance:.0%} in the last {count} labelled batches ({shown}; nominal {level:.0%})"
