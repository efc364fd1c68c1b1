"""Drift between a reference and a current batch, and the retrain decision.

Numeric columns: Kolmogorov-Smirnov, Wasserstein-1 divided by the reference standard
deviation, and PSI on the reference's quantile bins (both samples binned with the same
edges). Categorical columns: Jensen-Shannon distance and a chi-square test.

`calibrate` and `judge_batch` decide whether a batch calls for retraining with a known
false-alarm rate: with nothing drifted, P(retrain) per batch <= `alpha` (each of the three
triggers below at alpha/3). Every threshold is measured on the champion's own data
(`ReferenceData`), not set by hand:

- Reference. Each batch is compared with the champion's rows within `seasonal_window_days`
  of the batch's day of the year (any year, with rows on both sides of it), narrowed to the
  same hours of the week when there are `min_reference_rows` of them; else (less than a year
  of history) with its most recent rows (`ReferenceData.recent`). Calendar columns, the group
  and the baselines are not judged. Numeric columns are first put in units of their group's
  spread (a 20 % shift of every region is invisible next to the spread between regions of
  500 MW and 20,000 MW); rows of groups the champion never saw are left out (new groups).
- Calibration. Windows of the batch's length cut from the champion's data are judged the same
  way against references at least `calibration_gap_days` away: the statistics' distribution
  when nothing drifted. Each threshold is the (1 - alpha/3) quantile of that distribution
  (the larger of the empirical quantile and a (log-)normal fit: a short calibration errs
  towards fewer alarms). So an ordinary day that differs from the season as ordinary days do
  is not drift.
- Trigger 1, weighted drift: the SHAP-weighted mean shift (Wasserstein-1 in reference
  standard deviations, capped at 10) over the judged features.
- Trigger 2, one feature far beyond its ordinary shift: each feature's log score standardised
  by its own no-drift mean and spread; the largest over features. This catches a shift of a
  feature the model uses little today (a 12 °C warmer day for a model that leans on
  yesterday's load) without letting a heavy-tailed feature (rain) fire on every wet day.
- Trigger 3, realized error: with at least `min_labelled_rows` labelled rows, the batch's MAE
  over the MAE the champion had on its recent test rows for the same group mix. Errors of
  neighbouring hours are strongly correlated, so single rows are not independent evidence:
  the spread of that ratio under no drift is measured on windows of the batch's length in
  the recent test rows (log ratio, mean and standard deviation; batches longer than a day use
  daily windows, the standard deviation shrunk by the number of days and widened again by
  the day-to-day autocorrelation). A one-sided Student-t prediction bound at level alpha/3
  gives `ci_low`; the trigger fires when `ci_low` > 1 + `realized_mae_tolerance`, i.e. when
  the error is worse than the tolerance with confidence 1 - alpha/3. A day's MAE varies a lot
  (weather surprises), so one day of doubled error is often not enough evidence; a week is.

The older `feature_drift` and `retrain_verdict` (fixed thresholds) are kept for comparison
(bench/monitoring_alarms.py measures both)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

PSI_EPSILON = 1e-4


@dataclass(frozen=True)
class DriftConfig:
    psi_threshold: float = 0.2
    wasserstein_threshold: float = 0.25
    js_threshold: float = 0.1
    top_k: int = 3
    weighted_threshold: float = 0.25
    realized_mae_tolerance: float = 0.10
    min_rows: int = 24
    # Retrain decision with a known false-alarm rate (`calibrate`, `judge_batch`).
    alpha: float = 0.02  # P(retrain) per batch under no drift, a third per trigger
    seasonal_window_days: float = 14.0
    min_reference_rows: int = 200  # rows a seasonal (or same-hours-of-week) reference needs
    min_labelled_rows: int = 24  # labelled rows the realized-error test needs
    min_error_windows: int = 7  # windows of the recent test rows the realized-error test needs
    calibration_windows: int = 90  # windows per batch length measured by `calibrate`
    calibration_gap_days: float = 7.0  # a calibration window's reference stays this far from it
    calibration_hours: tuple[float, ...] = (24.0, 168.0)  # batch lengths `calibrate` measures


def _ecdf_gaps(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both empirical CDFs on the merged sorted values: (values, |F_ref - F_cur| at each)."""
    ref, cur = np.sort(reference), np.sort(current)
    values = np.sort(np.concatenate([ref, cur]), kind="stable")  # two sorted runs: a linear merge
    gap = np.abs(np.searchsorted(ref, values, side="right") / ref.size - np.searchsorted(cur, values, side="right") / cur.size)
    return values, gap


def _ks_p_value(d: float, n_ref: int, n_cur: int) -> float:
    """Asymptotic p-value as scipy's `ks_2samp(method="asymp")`: `kstwo` at the effective size."""
    from scipy.stats import kstwo

    n = n_ref * n_cur / (n_ref + n_cur)
    return float(np.clip(kstwo.sf(d, np.round(n)), 0.0, 1.0))


def ks_and_wasserstein(reference: np.ndarray, current: np.ndarray) -> tuple[float, float, float]:
    """(KS statistic, its p-value, Wasserstein-1 / reference SD) from one sort of each sample:
    KS is the largest CDF gap, Wasserstein-1 the area between the CDFs."""
    values, gap = _ecdf_gaps(reference, current)
    d = float(gap.max())
    scale = float(np.std(reference)) or 1.0
    w = float(np.sum(gap[:-1] * np.diff(values)) / scale)
    return d, _ks_p_value(d, reference.size, current.size), w


def ks_statistic(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic (largest gap between the empirical CDFs) and its p-value."""
    d, p, _ = ks_and_wasserstein(reference, current)
    return d, p


def wasserstein_normalized(reference: np.ndarray, current: np.ndarray) -> float:
    """Earth mover's distance in units of the reference's standard deviation."""
    return ks_and_wasserstein(reference, current)[2]


def psi(reference_fractions: list[float], current: np.ndarray, edges: list[float]) -> float:
    """Population stability index with the reference's bins: sum (c - r) * ln(c / r)."""
    counts = np.bincount(np.searchsorted(np.asarray(edges), current, side="right"), minlength=len(edges) + 1)
    cur = np.clip(counts / max(counts.sum(), 1), PSI_EPSILON, None)
    ref = np.clip(np.asarray(reference_fractions, float), PSI_EPSILON, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (0 for equal distributions, at most 1)."""
    from scipy.special import rel_entr

    m = (p + q) / 2
    return float((rel_entr(p, m).sum() + rel_entr(q, m).sum()) / (2 * math.log(2)))


def categorical_drift(reference: dict[str, float], current: list[str]) -> tuple[float, float]:
    """(Jensen-Shannon distance, chi-square p-value) over the union of categories."""
    from scipy.stats import chisquare

    values, counts = np.unique(np.asarray(current, dtype=str), return_counts=True)
    cur = dict(zip(values.tolist(), counts.tolist()))
    cats = sorted(set(reference) | set(cur))
    ref_p = np.array([reference.get(c, 0.0) for c in cats]) + PSI_EPSILON
    cur_n = np.array([cur.get(c, 0) for c in cats], dtype=float)
    # The divergence of equal distributions can round below zero: its root would be NaN.
    js = float(np.sqrt(max(_js_divergence(ref_p / ref_p.sum(), cur_n / cur_n.sum()), 0.0)))
    expected = ref_p / ref_p.sum() * cur_n.sum()
    return js, float(chisquare(cur_n, expected).pvalue)


def feature_drift(profile: dict[str, Any], reference: dict[str, np.ndarray], current: dict[str, np.ndarray], config: DriftConfig) -> list[dict[str, Any]]:
    """One row per profiled column present in the batch and the reference with values in both."""
    rows = []
    for name, stats in profile["columns"].items():
        if name not in current or name not in reference:
            continue
        cur = current[name]
        if stats["kind"] == "numeric":
            cur = cur[np.isfinite(cur)]
            ref = reference[name][np.isfinite(reference[name])]
            if cur.size == 0 or ref.size == 0:
                continue
            d, p, w = ks_and_wasserstein(ref, cur)
            value = psi(stats["bin_fractions"], cur, stats["bin_edges"])
            # PSI alone overreacts to smooth features seen over a short window (all values in a
            # few bins); the shift must also be material in units of the reference's spread.
            drifted = value > config.psi_threshold and w > config.wasserstein_threshold
            rows.append({"feature": name, "kind": "numeric", "ks": d, "ks_pvalue": p, "psi": value, "wasserstein": w, "js": None, "chi2_pvalue": None, "drifted": drifted, "score": w})
        elif len(cur):
            js, p = categorical_drift(stats["categories"], list(cur))
            rows.append({"feature": name, "kind": "categorical", "ks": None, "ks_pvalue": None, "psi": None, "wasserstein": None, "js": js, "chi2_pvalue": p, "drifted": js > config.js_threshold, "score": js})
    return rows


def retrain_verdict(rows: list[dict[str, Any]], importance: dict[str, float], realized_mae: float | None, test_mae: float | None, config: DriftConfig) -> dict[str, Any]:
    """Retrain when a top-k important feature drifts, when the importance-weighted drift
    passes its threshold, or when realized MAE is more than the tolerance worse than test MAE.
    Root causes are ranked by drift score x importance."""
    top = [f for f, _ in sorted(importance.items(), key=lambda kv: -kv[1])[: config.top_k]]
    by_feature = {r["feature"]: r for r in rows}
    drifted_top = [f for f in top if by_feature.get(f, {}).get("drifted")]
    weighted = float(sum(importance.get(r["feature"], 0.0) * min(r["score"], 10.0) for r in rows))  # shift in reference SDs
    reasons = []
    if drifted_top:
        reasons.append(f"top-{config.top_k} feature(s) drifted: {drifted_top}")
    if weighted > config.weighted_threshold:
        reasons.append(f"importance-weighted drift {weighted:.3f} > {config.weighted_threshold}")
    degraded = realized_mae is not None and test_mae and realized_mae > test_mae * (1 + config.realized_mae_tolerance)
    if degraded:
        reasons.append(f"realized MAE {realized_mae:.4g} > test MAE {test_mae:.4g} x {1 + config.realized_mae_tolerance:.2f}")
    causes = sorted(({"feature": r["feature"], "drift": r["score"], "importance": importance.get(r["feature"], 0.0), "rank_score": r["score"] * importance.get(r["feature"], 0.0)} for r in rows), key=lambda c: -c["rank_score"])
    return {
        "retrain": bool(reasons),
        "reasons": reasons or ["no retrain trigger fired"],
        "weighted_drift": weighted,
        "top_features": top,
        "root_causes": causes[:5],
    }


# ============================================================================================
# the retrain decision with a known false-alarm rate

PREDICTION = "prediction"
NOTHING_TO_JUDGE = "no rows scored: nothing to judge"
NO_TRIGGER = "no retrain trigger fired"
SCORE_CAP = 10.0  # a feature's shift counts at most 10 reference standard deviations
MIN_NULL_WINDOWS = 10  # calibration windows a threshold needs
SPREAD_FLOOR = 1e-9  # relative: log-score spreads below it are rounding noise of a constant score
# A feature's ordinary shift: this quantile of its no-drift scores (a high one, so that a
# feature with a heavy tail, such as rain, is not "far beyond ordinary" on every wet day).
FEATURE_SCALE_QUANTILE = 0.9
_TS, _DOY, _SLOT, _GROUP = "__ts", "__doy", "__slot", "__group"
_DAY = timedelta(days=1)


def judged_columns(reference: Any, spec: Any) -> tuple[list[str], list[str]]:
    """(numeric, categorical) columns drift is judged on: the profiled columns of the
    reference's training sample except calendar columns (functions of the clock), the group
    (groups come and go: core.lifecycle), the target and the baselines."""
    from mlops_assets.core.features import BASELINE_COLUMNS, CALENDAR_COLUMNS

    skip = {*CALENDAR_COLUMNS, *BASELINE_COLUMNS, spec.group, spec.target.column, spec.timestamp, PREDICTION}
    sample = reference.train_sample
    profiled = (reference.profile or {}).get("columns") or {
        c: {"kind": "categorical" if dtype in (pl.String, pl.Categorical, pl.Enum) else "numeric"} for c, dtype in sample.schema.items()
    }
    kept = {c: s.get("kind") for c, s in profiled.items() if c not in skip and c in sample.columns}
    return [c for c, k in kept.items() if k == "numeric"], [c for c, k in kept.items() if k == "categorical"]


def _weights(importance: dict[str, float] | None, columns: list[str]) -> dict[str, float]:
    """Importance shares of the judged columns, renormalised to sum to 1 (equal weights when
    the reference has no importance for them): the weighted drift is an average shift."""
    shares = {c: max(_finite((importance or {}).get(c), 0.0), 0.0) for c in columns}
    total = sum(shares.values())
    if not columns:
        return {}
    return {c: v / total for c, v in shares.items()} if total > 0 else {c: 1 / len(columns) for c in columns}


def _finite(value: Any, default: float | None = 0.0) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def _with_clock(frame: pl.DataFrame, spec: Any, columns: list[str]) -> pl.DataFrame:
    """`columns` of `frame` (missing ones null) with the instant in UTC and, on the spec's
    local clock, the day of the year and the minute of the week."""
    ts = pl.col(spec.timestamp)
    zone = getattr(frame.schema.get(spec.timestamp), "time_zone", None)
    utc = (ts.dt.convert_time_zone("UTC") if zone else ts.dt.replace_time_zone("UTC")).dt.cast_time_unit("us")
    local = pl.col(_TS).dt.convert_time_zone(spec.timezone)
    slot = (local.dt.weekday() - 1) * 1440 + local.dt.hour().cast(pl.Int32) * 60 + local.dt.minute().cast(pl.Int32)
    present = [pl.col(c) for c in columns if c in frame.columns]
    # Untyped nulls: the other frame's dtype (numeric or categorical) wins in the concat.
    absent = [pl.lit(None).alias(c) for c in columns if c not in frame.columns]
    group = pl.col(spec.group).cast(pl.String) if spec.group and spec.group in frame.columns else pl.lit("all")
    out = frame.select(utc.alias(_TS), group.alias(_GROUP), *present, *absent)
    return out.with_columns(local.dt.ordinal_day().cast(pl.Int32).alias(_DOY), slot.cast(pl.Int32).alias(_SLOT))


def _pool(reference: Any, spec: Any, columns: list[str]) -> pl.DataFrame:
    """The champion's rows drift is judged against: its training sample and its recent test
    rows, in time order, with the clock columns."""
    parts = [
        _with_clock(frame, spec, columns)
        for frame in (reference.train_sample, reference.recent)
        if frame is not None and frame.height and spec.timestamp in frame.columns
    ]
    if not parts:
        return _with_clock(pl.DataFrame({spec.timestamp: []}, schema={spec.timestamp: pl.Datetime("us", "UTC")}), spec, columns)
    return pl.concat(parts, how="diagonal_relaxed").sort(_TS)


def _group_scales(pool: pl.DataFrame, numeric: list[str]) -> pl.DataFrame:
    """Per group of the champion's rows: mean and standard deviation of each numeric column."""
    return pool.group_by(_GROUP).agg(
        *[pl.col(c).cast(pl.Float64, strict=False).mean().alias(f"{c}__mean") for c in numeric],
        *[pl.col(c).cast(pl.Float64, strict=False).std().alias(f"{c}__sd") for c in numeric],
    )


def _standardised(frame: pl.DataFrame, scales: pl.DataFrame, numeric: list[str]) -> pl.DataFrame:
    """Numeric columns in units of their group's spread around the group's mean. Groups of
    very different size pooled together would hide a shift of every group (a 20 % higher load
    is small next to the spread between a 500 MW and a 20,000 MW region). Rows of groups the
    champion never saw are left out: they are new groups (core.lifecycle), not drift."""
    joined = frame.join(scales, on=_GROUP, how="inner", maintain_order="left")
    sd = {c: pl.when(pl.col(f"{c}__sd") > 0).then(pl.col(f"{c}__sd")).otherwise(1.0) for c in numeric}
    scaled = [((pl.col(c).cast(pl.Float64, strict=False) - pl.col(f"{c}__mean").fill_null(0.0)) / sd[c]).alias(c) for c in numeric]
    return joined.with_columns(scaled).drop([c for c in scales.columns if c != _GROUP])


def _near_days(days: set[int], half_width: float) -> list[int]:
    """Days of the year within `half_width` days of any of `days` (circular)."""
    reach = int(math.ceil(half_width))
    return sorted({(d - 1 + k) % 366 + 1 for d in days for k in range(-reach, reach + 1)})


def _info(kind: str, frame: pl.DataFrame, description: str) -> dict[str, Any]:
    ts = frame.get_column(_TS) if frame.height else None
    return {
        "kind": kind, "rows": frame.height, "from": str(ts.min()) if ts is not None else None,
        "to": str(ts.max()) if ts is not None else None, "description": description,
    }


def _seasonal_reference(pool: pl.DataFrame, batch: pl.DataFrame, config: DriftConfig, gap: timedelta) -> tuple[pl.DataFrame, dict] | None:
    """The pool's rows within `seasonal_window_days` of the batch's days of the year (any
    year, none within `gap` of the batch), narrowed to the batch's minutes of the week when
    that leaves `min_reference_rows` and the batch is shorter than a week; None when fewer
    than `min_reference_rows` rows are that close in the year or they lie on one side of it
    only (less than a year of history: the recent rows are the reference then)."""
    ts = pl.col(_TS)
    start, end = batch.get_column(_TS).min(), batch.get_column(_TS).max()
    days = set(batch.get_column(_DOY).unique().to_list())
    outside = (ts < start - gap) | (ts > end + gap)
    seasonal = pool.filter(outside & pl.col(_DOY).is_in(_near_days(days, config.seasonal_window_days)))
    window = f"within ±{config.seasonal_window_days:g} days of the batch's day of the year (any year)"
    if seasonal.height < config.min_reference_rows or not _both_sides(seasonal, batch, config.min_reference_rows // 2):
        return None
    if end - start < timedelta(days=6):
        same = seasonal.filter(pl.col(_SLOT).is_in(batch.get_column(_SLOT).unique().implode()))
        if same.height >= config.min_reference_rows:
            return same, _info("seasonal", same, f"the champion's rows {window} at the same hours of the week")
    return seasonal, _info("seasonal", seasonal, f"the champion's rows {window}")


def _both_sides(rows: pl.DataFrame, batch: pl.DataFrame, least: int) -> bool:
    """Whether `rows` has `least` rows earlier and `least` later in the year than the batch's
    middle day: a season on one side only (the weeks just before the batch, in a warming
    spring) would make every batch look shifted."""
    middle = float(batch.get_column(_DOY).median())
    signed = (pl.col(_DOY) - middle + 183) % 366 - 183
    before, after = rows.select((signed < 0).sum().alias("before"), (signed > 0).sum().alias("after")).row(0)
    return before >= least and after >= least


def _recent_reference(recent: pl.DataFrame, config: DriftConfig) -> tuple[pl.DataFrame, dict]:
    why = f"fewer than {config.min_reference_rows} rows within ±{config.seasonal_window_days:g} days of the batch's day of the year"
    return recent, _info("recent", recent, f"the champion's most recent rows ({why})")


def _choose_reference(pool: pl.DataFrame, recent: pl.DataFrame, batch: pl.DataFrame, config: DriftConfig, gap: timedelta) -> tuple[pl.DataFrame, dict]:
    """The rows `batch` is compared with: a seasonal reference when the champion has enough
    rows close in the year, else `recent` (its most recent rows)."""
    return _seasonal_reference(pool, batch, config, gap) or _recent_reference(recent, config)


def _numeric_values(frame: pl.DataFrame, column: str) -> np.ndarray:
    values = frame.get_column(column).cast(pl.Float64, strict=False).to_numpy()
    return values[np.isfinite(values)]


def _numeric_row(name: str, ref: np.ndarray, cur: np.ndarray, bins: int, config: DriftConfig, limit: float | None) -> dict[str, Any]:
    d, p, w = ks_and_wasserstein(ref, cur)
    from mlops_assets.core.profile import bin_fractions, quantile_bin_edges

    edges = quantile_bin_edges(ref, bins)
    value = _finite(psi(bin_fractions(ref, edges), cur, edges))
    score = min(_finite(w), SCORE_CAP)
    drifted = score > limit if limit is not None else (value > config.psi_threshold and score > config.wasserstein_threshold)
    return {
        "feature": name, "kind": "numeric", "ks": _finite(d), "ks_pvalue": _finite(p, 1.0), "psi": value, "wasserstein": _finite(w),
        "js": None, "chi2_pvalue": None, "drifted": bool(drifted), "score": score,
    }


def _categorical_row(name: str, ref: pl.Series, cur: pl.Series, config: DriftConfig, limit: float | None) -> dict[str, Any]:
    counts = ref.value_counts()
    fractions = {str(k): v / ref.len() for k, v in counts.iter_rows()}
    js, p = categorical_drift(fractions, cur.to_list())
    js = _finite(js)
    drifted = js > (limit if limit is not None else config.js_threshold)
    return {
        "feature": name, "kind": "categorical", "ks": None, "ks_pvalue": None, "psi": None, "wasserstein": None,
        "js": js, "chi2_pvalue": _finite(p, 1.0), "drifted": bool(drifted), "score": js,
    }


def _drift_rows(ref: pl.DataFrame, cur: pl.DataFrame, numeric: list[str], categorical: list[str], bins: int, config: DriftConfig, limits: dict[str, float]) -> list[dict[str, Any]]:
    """One row per judged column with values on both sides (a column without any is left out)."""
    rows = []
    for name in numeric:
        r, c = _numeric_values(ref, name), _numeric_values(cur, name)
        if r.size >= 2 and c.size:
            rows.append(_numeric_row(name, r, c, bins, config, limits.get(name)))
    for name in categorical:
        r, c = ref.get_column(name).drop_nulls().cast(pl.String), cur.get_column(name).drop_nulls().cast(pl.String)
        if r.len() and c.len():
            rows.append(_categorical_row(name, r, c, config, limits.get(name)))
    return rows


def _weighted(rows: list[dict[str, Any]], weights: dict[str, float]) -> float:
    return _weighted_scores({r["feature"]: r["score"] for r in rows}, weights)


def _upper(values: list[float], level: float, log: bool = True) -> dict[str, Any] | None:
    """The `level` quantile of a no-drift sample: the larger of the empirical quantile and
    that of a log-normal (`log`) or normal fit (a short sample underestimates its tail)."""
    x = np.asarray([v for v in values if math.isfinite(v)], float)
    if x.size < MIN_NULL_WINDOWS:
        return None
    from scipy.stats import norm

    if log:
        logs = np.log(np.maximum(x, 1e-9))
        fitted = float(np.exp(logs.mean() + norm.ppf(level) * logs.std(ddof=1)))
    else:
        fitted = float(x.mean() + norm.ppf(level) * x.std(ddof=1))
    return {
        "threshold": max(float(np.quantile(x, level)), fitted), "windows": int(x.size),
        "median": float(np.median(x)), "max": float(x.max()),
    }


def _day_starts(pool: pl.DataFrame, spec: Any, duration: timedelta, count: int) -> list[datetime]:
    """Up to `count` evenly spread local-midnight starts of windows of `duration` inside the pool."""
    if pool.height == 0:
        return []
    local = pl.col(_TS).dt.convert_time_zone(spec.timezone).dt.truncate("1d").dt.convert_time_zone("UTC")
    starts = pool.select(local.unique().sort()).to_series()
    last = pool.get_column(_TS).max()
    step = timedelta(hours=spec.frequency_hours)
    starts = starts.filter(starts + duration <= last + step).to_list()
    if len(starts) <= count:
        return starts
    return [starts[i] for i in np.unique(np.linspace(0, len(starts) - 1, count).round().astype(int))]


def _recent_span(reference: Any, spec: Any) -> timedelta:
    recent = reference.recent
    if recent is None or recent.height < 2 or spec.timestamp not in recent.columns:
        return timedelta(days=28)
    ts = recent.get_column(spec.timestamp)
    return max(ts.max() - ts.min(), _DAY)


def _drift_null(pool: pl.DataFrame, reference: Any, spec: Any, config: DriftConfig, duration: timedelta, numeric: list[str], categorical: list[str], weights: dict[str, float]) -> dict[str, Any]:
    """Both drift statistics on windows of `duration` of the champion's own data, each window
    against a seasonal reference chosen as for a batch and against the `recent` span before
    it, both from rows at least `calibration_gap_days` away: their distribution under no
    drift, per kind of reference. The weighted drift's threshold; each feature's median score
    (its ordinary shift) and the threshold of the largest score / median over features."""
    gap, span = timedelta(days=config.calibration_gap_days), _recent_span(reference, spec)
    ts = pl.col(_TS)
    windows: dict[str, list[dict[str, float]]] = {"seasonal": [], "recent": []}
    for start in _day_starts(pool, spec, duration, config.calibration_windows):
        window = pool.filter((ts >= start) & (ts < start + duration))
        if window.height == 0:
            continue
        before = pool.filter((ts >= start - gap - span) & (ts < start - gap))
        seasonal = _seasonal_reference(pool, window, config, gap)
        for kind, ref in (("seasonal", seasonal[0] if seasonal else None), ("recent", before)):
            if ref is not None and ref.height >= 2:
                rows = _drift_rows(ref, window, numeric, categorical, spec.quantile_bins, config, {})
                windows[kind].append({r["feature"]: r["score"] for r in rows})
    level = _level(config)
    spreads = {kind: _log_spreads(found) for kind, found in windows.items()}
    return {
        "hours": duration.total_seconds() / 3600,
        **{kind: _upper([_weighted_scores(w, weights) for w in found], level) for kind, found in windows.items()},
        "feature_log_scores": spreads,
        "largest_feature_z": {kind: _upper([_largest_z(w, spreads[kind])[1] for w in found], level, log=False) for kind, found in windows.items()},
    }


def _level(config: DriftConfig) -> float:
    """Each of the three triggers (weighted drift, largest feature shift, realized error) at
    alpha/3: P(any fires | no drift) <= alpha."""
    return 1 - config.alpha / 3


def _log_spreads(windows: list[dict[str, float]]) -> dict[str, list[float]]:
    """Each feature's [mean, standard deviation] of log score over no-drift windows (features
    seen in enough of them, with some spread): its ordinary shift and how much that varies, so
    a feature with a heavy tail (rain) is not far beyond ordinary on every wet day."""
    values: dict[str, list[float]] = {}
    for w in windows:
        for f, v in w.items():
            values.setdefault(f, []).append(math.log(max(v, 1e-9)))
    spreads = {f: [float(np.mean(v)), float(np.std(v, ddof=1))] for f, v in values.items() if len(v) >= MIN_NULL_WINDOWS}
    # Identical scores have a rounding-noise SD (~1e-16), not 0: a relative floor drops them.
    return {f: ms for f, ms in spreads.items() if ms[1] > SPREAD_FLOOR * max(1.0, abs(ms[0]))}


def _largest_z(scores: dict[str, float], spreads: dict[str, list[float]]) -> tuple[str | None, float]:
    """(the feature, its standardised log score) of the feature furthest beyond its ordinary shift."""
    z = [(f, (math.log(max(v, 1e-9)) - spreads[f][0]) / spreads[f][1]) for f, v in scores.items() if f in spreads]
    return max(z, key=lambda fz: fz[1]) if z else (None, 0.0)


def _weighted_scores(scores: dict[str, float], weights: dict[str, float]) -> float:
    return float(sum(weights.get(f, 0.0) * v for f, v in scores.items()))


def calibrate(reference: Any, spec: Any, config: DriftConfig) -> dict[str, Any]:
    """How the retrain statistics of `reference`'s champion vary when nothing drifted
    (JSON-serialisable, stored with the reference): for each batch length in
    `calibration_hours` and each kind of reference (seasonal, recent), the (1 - alpha/3)
    thresholds of the weighted drift and of the largest standardised feature shift, with each
    feature's no-drift log-score mean and spread; and the spread of the realized-error ratio
    over daily windows of the recent test rows (for display: judge_batch measures it for the
    batch's own length)."""
    numeric, categorical = judged_columns(reference, spec)
    weights = _weights(reference.importance, [*numeric, *categorical])
    raw = _pool(reference, spec, [*numeric, *categorical])
    pool = _standardised(raw, _group_scales(raw, numeric), numeric)
    drift = {
        f"{hours:g}": _drift_null(pool, reference, spec, config, timedelta(hours=hours), numeric, categorical, weights)
        for hours in config.calibration_hours
    }
    logs = _error_windows(reference.recent, spec, _DAY)
    return {
        "alpha": config.alpha, "features": [*numeric, *categorical], "weights": weights, "drift": drift,
        "realized": {"window_hours": 24.0, **_spread(logs)},
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.__dict__.items()},
    }


def _spread(logs: np.ndarray) -> dict[str, Any]:
    """Mean, standard deviation and lag-1 autocorrelation of window log error ratios."""
    n = int(logs.size)
    sd = float(logs.std(ddof=1)) if n > 1 else 0.0
    rho = 0.0
    if n > 2 and float(np.std(logs[1:])) > 0 and float(np.std(logs[:-1])) > 0:
        rho = _finite(np.corrcoef(logs[:-1], logs[1:])[0, 1])
    return {"windows": n, "mean_log_ratio": float(logs.mean()) if n else 0.0, "sd_log_ratio": sd, "autocorrelation": float(np.clip(rho, 0.0, 0.9))}


def _errors(frame: pl.DataFrame | None, spec: Any) -> pl.DataFrame:
    """Labelled rows of `frame` with their absolute error: columns __ts, __g, __err."""
    empty = pl.DataFrame(schema={_TS: pl.Datetime("us", "UTC"), "__g": pl.String, "__err": pl.Float64})
    needed = (PREDICTION, spec.target.column, spec.timestamp)
    if frame is None or frame.height == 0 or any(c not in frame.columns for c in needed):
        return empty
    y = pl.col(spec.target.column).cast(pl.Float64, strict=False)
    err = (y - pl.col(PREDICTION).cast(pl.Float64, strict=False)).abs()
    group = pl.col(spec.group).cast(pl.String) if spec.group and spec.group in frame.columns else pl.lit("all")
    out = _with_clock(frame.with_columns(err.alias("__err"), group.alias("__g")), spec, ["__g", "__err"])
    return out.select(_TS, "__g", "__err").filter(pl.col("__err").is_finite())


def _error_windows(recent: pl.DataFrame | None, spec: Any, window: timedelta) -> np.ndarray:
    """log(window MAE / the MAE expected for the window's group mix) for consecutive windows
    of the recent test rows (windows with under half the usual rows are left out)."""
    errors = _errors(recent, spec)
    if errors.height == 0:
        return np.zeros(0)
    expected = errors.group_by("__g").agg(pl.col("__err").mean().alias("__exp"))
    t0 = errors.get_column(_TS).min()
    bucket = ((pl.col(_TS) - t0).dt.total_seconds() // window.total_seconds()).alias("__w")
    windows = (
        errors.join(expected, on="__g", maintain_order="left").with_columns(bucket).group_by("__w")
        .agg(pl.col("__err").sum().alias("e"), pl.col("__exp").sum().alias("x"), pl.len().alias("n")).sort("__w")
    )
    windows = windows.filter((pl.col("n") >= pl.col("n").median() / 2) & (pl.col("e") > 0) & (pl.col("x") > 0))
    return np.log((windows.get_column("e") / windows.get_column("x")).to_numpy())


def _realized(scored: pl.DataFrame, reference: Any, spec: Any, config: DriftConfig, step: timedelta) -> dict[str, Any]:
    """The realized-error test (module docstring): the batch's MAE over the MAE the champion
    had on its recent test rows for the same groups, with a one-sided bound at alpha/3."""
    out: dict[str, Any] = {"rows": 0, "mae": None, "reference_mae": None, "ratio": None, "ci_low": None, "ci_high": None, "tested": False, "why_not": None}
    reference_errors = _errors(reference.recent, spec)
    expected = reference_errors.group_by("__g").agg(pl.col("__err").mean().alias("__exp"))
    batch = _errors(scored, spec).join(expected, on="__g", maintain_order="left")
    if batch.height:
        mae, ref_mae = float(batch.get_column("__err").mean()), float(batch.get_column("__exp").mean())
        out.update(rows=batch.height, mae=mae, reference_mae=ref_mae, ratio=mae / ref_mae if ref_mae > 0 else None)
    if reference_errors.height == 0:
        return {**out, "why_not": "the champion's reference has no labelled recent rows"}
    if batch.height < config.min_labelled_rows:
        return {**out, "why_not": f"{batch.height} labelled rows of known groups; the test needs {config.min_labelled_rows}"}
    if not out["ratio"]:
        return {**out, "why_not": "the champion's reference error is 0 or the batch's error is 0"}
    ts = batch.get_column(_TS)
    duration = max(ts.max() - ts.min() + step, step)
    window = min(duration, _DAY)
    spread = _spread(_error_windows(reference.recent, spec, window))
    if spread["windows"] < config.min_error_windows:
        return {**out, "why_not": f"the reference has {spread['windows']} windows of {window}; the test needs {config.min_error_windows}"}
    from scipy.stats import t

    days, rho = duration / window, spread["autocorrelation"]
    inflation = (1 + rho) / (1 - rho) if days > 1 else 1.0
    sd = spread["sd_log_ratio"] * math.sqrt(inflation / days + 1 / spread["windows"])
    bound = float(t.ppf(_level(config), spread["windows"] - 1)) * sd
    center = math.log(out["ratio"]) - spread["mean_log_ratio"]
    return {**out, "ci_low": math.exp(center - bound), "ci_high": math.exp(center + bound), "tested": True}


def _prediction_drift(scored: pl.DataFrame, reference: Any, bins: int) -> dict[str, float]:
    """KS, PSI and normalised Wasserstein of the batch's forecasts against the champion's
    forecasts of its recent test rows ({} without both)."""
    from mlops_assets.core.profile import bin_fractions, quantile_bin_edges

    recent = reference.recent
    if recent is None or PREDICTION not in recent.columns:
        return {}
    ref, cur = _numeric_values(recent, PREDICTION), _numeric_values(scored, PREDICTION)
    if ref.size < 2 or cur.size == 0:
        return {}
    d, _, w = ks_and_wasserstein(ref, cur)
    edges = quantile_bin_edges(ref, bins)
    return {"ks": _finite(d), "psi": _finite(psi(bin_fractions(ref, edges), cur, edges)), "wasserstein": _finite(w)}


def _calibrated_drift(calibration: dict[str, Any], duration: timedelta) -> dict[str, Any]:
    """The calibration of the longest measured batch length not over 1.5 x `duration` (a
    shorter window varies more: its threshold is the cautious one), else the shortest."""
    measured = sorted((float(k), v) for k, v in (calibration.get("drift") or {}).items())
    if not measured:
        return {}
    hours = duration.total_seconds() / 3600
    fitting = [v for h, v in measured if h <= 1.5 * hours]
    return fitting[-1] if fitting else measured[0][1]


def _other(kind: str) -> str:
    return "seasonal" if kind == "recent" else "recent"


def _threshold(calibrated: dict[str, Any], kind: str, config: DriftConfig) -> tuple[float, str]:
    """(threshold of the weighted drift, where it comes from) for a reference of `kind`."""
    for name in (kind, _other(kind)):
        entry = calibrated.get(name)
        if entry:
            return float(entry["threshold"]), f"{_level(config):.1%} quantile of {entry['windows']} no-drift windows of {calibrated['hours']:g} h ({name} reference)"
    return float(config.weighted_threshold), "uncalibrated: the configured weighted_threshold"


def _single_threshold(calibrated: dict[str, Any], kind: str) -> tuple[float, dict[str, list[float]]] | None:
    """(threshold of the largest standardised log score, each feature's no-drift [mean, sd]
    of log score) for a reference of `kind`; None when not calibrated (the fixed PSI and
    Wasserstein rule then only marks features, it triggers nothing)."""
    for name in (kind, _other(kind)):
        entry = (calibrated.get("largest_feature_z") or {}).get(name)
        spreads = (calibrated.get("feature_log_scores") or {}).get(name)
        if entry and spreads:
            return float(entry["threshold"]), spreads
    return None


def _nothing_to_judge(why: str) -> dict[str, Any]:
    return {
        "features": [], "reference": {"kind": "none", "rows": 0, "from": None, "to": None, "description": why},
        "weighted_drift": 0.0, "weighted_drift_threshold": None, "prediction_drift": {},
        "realized": {"rows": 0, "mae": None, "reference_mae": None, "ratio": None, "ci_low": None, "ci_high": None, "tested": False, "why_not": why},
        "retrain": False, "reasons": [why], "top_features": [], "root_causes": [],
    }


def judge_batch(scored: pl.DataFrame, reference: Any, spec: Any, config: DriftConfig) -> dict[str, Any]:
    """Whether a scored batch calls for retraining, with a false-alarm rate of at most about
    `alpha` per batch when nothing drifted (module docstring). `scored` holds the features, the
    target (maybe null) and "prediction"; `reference` is the champion's
    `core.reference.ReferenceData` (calibrated here when it carries no calibration). Retrain
    when the importance-weighted drift or one feature's shift passes its calibrated threshold,
    or when the realized error is, with confidence, worse than the tolerance. A feature is
    `drifted` when it alone passes the second threshold. Never NaN."""
    if scored is None or PREDICTION not in scored.columns or spec.timestamp not in scored.columns:
        return _nothing_to_judge(NOTHING_TO_JUDGE)
    scored = scored.filter(pl.col(PREDICTION).cast(pl.Float64, strict=False).is_finite())
    if scored.height == 0:
        return _nothing_to_judge(NOTHING_TO_JUDGE)
    drift = _judge_features(scored, reference, spec, config)
    if drift is None:
        return _nothing_to_judge(NO_KNOWN_GROUP)
    realized = _realized(scored, reference, spec, config, timedelta(hours=spec.frequency_hours))
    degraded = bool(realized["tested"] and realized["ci_low"] > 1 + config.realized_mae_tolerance)
    rows = drift["features"]
    return {
        "features": rows, "reference": drift["reference"], "weighted_drift": drift["weighted_drift"],
        "weighted_drift_threshold": drift["weighted_drift_threshold"],
        "prediction_drift": _prediction_drift(scored, reference, spec.quantile_bins), "realized": realized,
        "retrain": bool(drift["triggers"]) or degraded, "reasons": _reasons(drift, realized, degraded, config),
        "top_features": _top(reference.importance, config.top_k), "root_causes": _root_causes(rows, reference.importance),
    }


NO_KNOWN_GROUP = "no scored row of a group the champion knows: nothing to judge (new groups are reported as such)"


def _judge_features(scored: pl.DataFrame, reference: Any, spec: Any, config: DriftConfig) -> dict[str, Any] | None:
    """Feature drift of the batch against its reference and the two drift triggers (None when
    no scored row belongs to a group the champion knows)."""
    calibration = reference.calibration or calibrate(reference, spec, config)
    numeric, categorical = judged_columns(reference, spec)
    columns = [*numeric, *categorical]
    weights = calibration.get("weights") or _weights(reference.importance, columns)
    raw = _pool(reference, spec, columns)
    scales = _group_scales(raw, numeric)
    batch = _standardised(_with_clock(scored, spec, columns), scales, numeric)
    if batch.height == 0:
        return None
    start, end = batch.get_column(_TS).min(), batch.get_column(_TS).max()
    recent = _standardised(_pool(_Recent(reference.recent), spec, columns), scales, numeric)
    recent = recent.filter((pl.col(_TS) < start) | (pl.col(_TS) > end))
    ref, info = _choose_reference(_standardised(raw, scales, numeric), recent, batch, config, timedelta(0))
    calibrated = _calibrated_drift(calibration, end - start + timedelta(hours=spec.frequency_hours))
    single = _single_threshold(calibrated, info["kind"])
    limits = {f: math.exp(m + single[0] * sd) for f, (m, sd) in single[1].items()} if single else {}
    rows = _drift_rows(ref, batch, numeric, categorical, spec.quantile_bins, config, limits) if ref.height >= 2 else []
    weighted = _weighted(rows, weights)
    threshold, basis = _threshold(calibrated, info["kind"], config)
    triggers = []
    if weighted > threshold:
        named = [r["feature"] for r in sorted(rows, key=lambda r: -r["score"]) if r["drifted"]][:5]
        triggers.append(f"importance-weighted drift {weighted:.3f} > {threshold:.3f} ({basis}); drifted: {named}")
    if any(r["drifted"] and r["feature"] in limits for r in rows):
        feature, z = _largest_z({r["feature"]: r["score"] for r in rows}, single[1])
        triggers.append(
            f"feature {feature} shifted far beyond its ordinary shift (log score {z:.1f} SD above its no-drift mean "
            f"> {single[0]:.1f}, the {_level(config):.1%} quantile of the largest feature on no-drift windows)"
        )
    if not rows:
        info = {**info, "description": f"{info['description']}; no feature could be compared ({info['rows']} rows)"}
    return {"features": rows, "reference": info, "weighted_drift": weighted, "weighted_drift_threshold": threshold, "triggers": triggers}


class _Recent:
    """A reference whose pool is its recent rows only."""

    def __init__(self, recent: pl.DataFrame | None) -> None:
        self.train_sample, self.recent = None, recent


def _reasons(drift: dict[str, Any], realized: dict[str, Any], degraded: bool, config: DriftConfig) -> list[str]:
    reasons = list(drift["triggers"])
    if degraded:
        reasons.append(
            f"realized MAE {realized['mae']:.4g} is {realized['ratio']:.2f} x the champion's {realized['reference_mae']:.4g} "
            f"on its recent test rows; {_level(config):.1%} lower bound {realized['ci_low']:.2f} > {1 + config.realized_mae_tolerance:.2f}"
        )
    if not reasons:
        reasons.append(NO_TRIGGER)
    if not realized["tested"]:
        reasons.append(f"realized error not tested: {realized['why_not']}")
    return reasons


def _top(importance: dict[str, float] | None, k: int) -> list[str]:
    return [f for f, _ in sorted((importance or {}).items(), key=lambda kv: -_finite(kv[1]))[:k]]


def _root_causes(rows: list[dict], importance: dict[str, float] | None) -> list[dict[str, Any]]:
    """Every drifted feature (one that alone passes its calibrated threshold), then the other
    judged features up to five in all, each group ranked by drift score x importance."""
    share = importance or {}
    causes = sorted(
        (
            {"feature": r["feature"], "drift": r["score"], "importance": _finite(share.get(r["feature"])),
             "rank_score": r["score"] * _finite(share.get(r["feature"])), "drifted": r["drifted"]}
            for r in rows
        ),
        key=lambda c: (not c["drifted"], -c["rank_score"]),
    )
    drifted = sum(c["drifted"] for c in causes)
    return causes[: max(drifted, 5)]
