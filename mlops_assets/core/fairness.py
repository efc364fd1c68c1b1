"""Bias by group: fairlearn MetricFrame, two flagging rules, bootstrap intervals.

A group is flagged only when the whole 95% interval of its gap lies beyond the threshold,
so sampling noise in a small group is not called bias."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

RULES = ("original", "normalized")


@dataclass(frozen=True)
class BiasConfig:
    """`original`: |MAE_g - MAE| > 1.5 x MAE (the seed's rule; it mostly flags high-load
    groups). `normalized`: the same on MAE divided by the group's mean |actual| (WAPE), which
    compares groups of different scale fairly."""

    rule: str = "normalized"
    original_threshold: float = 1.5
    normalized_threshold: float = 1.0
    min_group_rows: int = 24
    bootstrap: int = 200
    seed: int = 42

    @property
    def threshold(self) -> float:
        return self.original_threshold if self.rule == "original" else self.normalized_threshold


def _group_errors(y: np.ndarray, p: np.ndarray, groups: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(absolute errors, absolute actuals) per group, in one sort instead of a mask per group."""
    names, inverse = np.unique(groups, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=len(names)))[:-1]
    err, act = np.abs(p - y)[order], np.abs(y)[order]
    return {str(n): (e, a) for n, e, a in zip(names, np.split(err, bounds), np.split(act, bounds))}


def _error_summary(y_true, y_pred) -> np.ndarray:
    """MAE, RMSE, MAPE (%) and count in one pass: fairlearn's per-row overhead is paid once,
    not once per metric."""
    y, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    err = p - y
    nonzero = y != 0
    mape = float(np.mean(np.abs(err[nonzero] / y[nonzero])) * 100) if nonzero.any() else float("nan")
    return np.array([np.mean(np.abs(err)), np.sqrt(np.mean(err**2)), mape, len(y)])


def metric_frame(y: np.ndarray, p: np.ndarray, groups: np.ndarray) -> pl.DataFrame:
    """fairlearn MetricFrame by group: MAE, RMSE, MAPE and count."""
    from fairlearn.metrics import MetricFrame

    names, codes = np.unique(groups, return_inverse=True)
    frame = MetricFrame(metrics={"errors": _error_summary}, y_true=y, y_pred=p, sensitive_features=codes)
    rows = [
        {"group": str(names[int(code)]), "mae": float(v[0]), "rmse": float(v[1]), "mape": float(v[2]), "count": int(v[3])}
        for code, v in frame.by_group["errors"].items()
    ]
    return pl.DataFrame(rows)


def _bootstrap_gaps(errors: dict[str, tuple[np.ndarray, np.ndarray]], rule: str, draws: int, seed: int) -> dict[str, np.ndarray]:
    """Stratified bootstrap (rows resampled within each group): the gap of each group's
    error measure to the overall one, `draws` times."""
    rng = np.random.default_rng(seed)
    sums_err, sums_abs, sizes = {}, {}, {}
    for g, (err, act) in errors.items():
        idx = rng.integers(0, len(err), size=(draws, len(err)))
        sums_err[g] = err[idx].sum(axis=1)
        sums_abs[g] = act[idx].sum(axis=1)
        sizes[g] = len(err)
    total_err = sum(sums_err.values())
    total_n = sum(sizes.values())
    total_abs = sum(sums_abs.values())
    overall = total_err / total_abs if rule == "normalized" else total_err / total_n
    out = {}
    for g in errors:
        value = sums_err[g] / sums_abs[g] if rule == "normalized" else sums_err[g] / sizes[g]
        out[g] = value - overall
    return out


def bias_report(y: np.ndarray, p: np.ndarray, groups: np.ndarray | None, config: BiasConfig, expected_groups: list[str] | None = None) -> dict[str, Any]:
    """Per-group metrics, gaps with 95% intervals, and a verdict with reasons."""
    if config.rule not in RULES:
        raise ValueError(f"bias rule {config.rule!r}: choose one of {RULES}")
    y, p = np.asarray(y, float), np.asarray(p, float)
    if groups is None:
        return {"rule": config.rule, "grouped": False, "biased": False, "passed": len(y) > 0,
                "reasons": ["single series: no groups to compare" if len(y) else "empty test data"], "groups": [], "flagged": []}
    groups = np.asarray(groups).astype(str)
    if len(y) == 0:
        return {"rule": config.rule, "grouped": True, "biased": False, "passed": False, "reasons": ["empty test data"], "groups": [], "flagged": []}
    table = metric_frame(y, p, groups)
    errors = _group_errors(y, p, groups)
    overall_mae = float(np.mean(np.abs(p - y)))
    overall_nmae = float(np.sum(np.abs(p - y)) / np.sum(np.abs(y))) if np.sum(np.abs(y)) else float("nan")
    overall = overall_nmae if config.rule == "normalized" else overall_mae
    boot = _bootstrap_gaps({g: e for g, e in errors.items() if len(e[0]) >= 2}, config.rule, config.bootstrap, config.seed)
    limit = config.threshold * overall
    rows, flagged, reasons = [], [], []
    for row in table.iter_rows(named=True):
        g = row["group"]
        err, act = errors[g]
        nmae = float(err.sum() / act.sum()) if act.sum() else float("nan")
        gap = (nmae if config.rule == "normalized" else row["mae"]) - overall
        low, high = (np.percentile(boot[g], [2.5, 97.5]).tolist() if g in boot else [float("nan"), float("nan")])
        status = "ok"
        if row["count"] < config.min_group_rows:
            status = "too_few_rows"
            reasons.append(f"group {g}: {row['count']} test rows < {config.min_group_rows}")
        elif (gap > 0 and low > limit) or (gap < 0 and high < -limit):
            status = "biased"
            flagged.append(g)
            reasons.append(f"group {g}: {config.rule} MAE gap {gap:+.4g} (95% CI {low:+.4g}..{high:+.4g}) beyond ±{limit:.4g}")
        elif abs(gap) > limit:
            status = "within_noise"
        rows.append({**row, "nmae": nmae, "gap": gap, "gap_ci_low": low, "gap_ci_high": high, "limit": limit, "status": status})
    missing = sorted(set(expected_groups or []) - set(table.get_column("group").to_list()))
    for g in missing:
        reasons.append(f"group {g}: no rows in the test period")
        rows.append({"group": g, "count": 0, "status": "missing_from_test"})
    biased = bool(flagged)
    passed = not biased and not missing and all(r["status"] != "too_few_rows" for r in rows)
    if passed:
        reasons.append(f"no group beyond the {config.rule} rule (limit ±{limit:.4g})")
    return {
        "rule": config.rule,
        "grouped": True,
        "threshold": config.threshold,
        "overall_mae": overall_mae,
        "overall_nmae": overall_nmae,
        "limit": limit,
        "biased": biased,
        "passed": passed,
        "flagged": flagged,
        "missing_groups": missing,
        "reasons": reasons,
        "groups": rows,
        "largest_abs_gap": max((abs(r["gap"]) for r in rows if r.get("gap") is not None), default=0.0),
    }


def report_table(report: dict[str, Any]) -> pl.DataFrame:
    cols = ["group", "count", "mae", "rmse", "mape", "nmae", "gap", "gap_ci_low", "gap_ci_high", "status"]
    return pl.DataFrame([{c: r.get(c) for c in cols} for r in report["groups"]], schema_overrides={"count": pl.Int64}) if report["groups"] else pl.DataFrame({c: [] for c in cols})


def group_weights(groups: np.ndarray, scheme: str, group_error: dict[str, float] | None = None, power: float = 1.0) -> np.ndarray:
    """Per-row training weights, mean 1. `balanced`: every group the same total weight.
    `error_aware`: each group weighted by (its relative validation error / the mean) ** power."""
    groups = np.asarray(groups).astype(str)
    names, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if scheme == "balanced":
        per_group = len(groups) / (len(names) * counts)
    elif scheme == "error_aware":
        if not group_error:
            raise ValueError("error_aware weights need per-group validation errors")
        errs = np.array([group_error.get(n, np.nan) for n in names], dtype=float)
        errs = np.where(np.isfinite(errs), errs, np.nanmean(errs))
        per_group = (errs / errs.mean()) ** power
    else:
        raise ValueError(f"unknown weighting scheme {scheme!r}")
    weights = per_group[inverse]
    return weights / weights.mean()
