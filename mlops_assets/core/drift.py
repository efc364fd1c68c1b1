"""Drift between a reference sample (training data) and a current batch.

Numeric columns: Kolmogorov-Smirnov, Wasserstein-1 divided by the reference standard
deviation, and PSI on the reference's quantile bins (both samples binned with the same
edges). A numeric column drifts when PSI and the normalised Wasserstein distance both pass
their thresholds. Categorical columns: Jensen-Shannon distance and a chi-square test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

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


def categorical_drift(reference: dict[str, float], current: list[str]) -> tuple[float, float]:
    """(Jensen-Shannon distance, chi-square p-value) over the union of categories."""
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chisquare

    values, counts = np.unique(np.asarray(current, dtype=str), return_counts=True)
    cur = dict(zip(values.tolist(), counts.tolist()))
    cats = sorted(set(reference) | set(cur))
    ref_p = np.array([reference.get(c, 0.0) for c in cats]) + PSI_EPSILON
    cur_n = np.array([cur.get(c, 0) for c in cats], dtype=float)
    js = float(jensenshannon(ref_p / ref_p.sum(), cur_n / cur_n.sum(), base=2))
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
