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
    groups). `normalized`: the same on each group's MAE divided by its mean |actual| (WAPE),
    which compares groups of different scale fairly; where some group's target reaches or
    crosses zero (a net load), its mean |actual| is no scale, and every group's MAE is divided
    by its seasonal-naive MAE on training data instead (MASE), when those `scales` are given."""

    rule: str = "normalized"
    original_threshold: float = 1.5
    normalized_threshold: float = 1.0
    min_group_rows: int = 24
    bootstrap: int = 200
    seed: int = 42

    @property
    def threshold(self) -> float:
        return self.original_threshold if self.rule == "original" else self.normalized_threshold


def _group_errors(
    y: np.ndarray, p: np.ndarray, groups: np.ndarray, scales: dict[str, float] | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(absolute errors, per-row scale) per group, in one sort instead of a mask per group. The
    scale is the group's entry of `scales` on every row when every group has a usable one
    (finite, > 0), else |actual|: sum(errors) / sum(scale) is then MASE, else WAPE."""
    names, inverse = np.unique(groups, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=len(names)))[:-1]
    err, act = np.abs(p - y)[order], np.abs(y)[order]
    if uses_scales(scales, names):
        return {str(n): (e, np.full(len(e), scales[str(n)])) for n, e in zip(names, np.split(err, bounds))}
    return {str(n): (e, a) for n, e, a in zip(names, np.split(err, bounds), np.split(act, bounds))}


def uses_scales(scales: dict[str, float] | None, names) -> bool:
    """Whether every group has a usable scale (otherwise all are compared by WAPE, not a mix)."""
    values = [(scales or {}).get(str(n)) for n in names]
    return bool(scales) and all(isinstance(v, float) and np.isfinite(v) and v > 0 for v in values)


def naive_scales(frame, target: str, seasonal_naive: str, group: str | None) -> dict[str, float]:
    """Each group's mean |target - seasonal naive| in `frame` (a polars frame or scan of the
    training split): the scale of the `normalized` rule. Single series: {}."""
    if not group:
        return {}
    error = (pl.col(target) - pl.col(seasonal_naive)).abs()
    table = frame.lazy().group_by(pl.col(group).cast(pl.String)).agg(error.mean().alias("scale")).collect()
    return {str(g): float(s) for g, s in table.iter_rows() if s is not None and s == s}


def _mape(y: np.ndarray, p: np.ndarray) -> float:
    """MAPE (%) by the rule of `core.metrics.regression_metrics`: NaN where the target is not
    strictly positive and far enough from zero (a net load crossing zero)."""
    from mlops_assets.core.metrics import regression_metrics

    return float(regression_metrics(y, p)["mape"]) if len(y) else float("nan")


def _error_summary(y_true, y_pred) -> np.ndarray:
    """MAE, RMSE, MAPE (%) and count in one pass: fairlearn's per-row overhead is paid once,
    not once per metric."""
    y, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    err = p - y
    return np.array([np.mean(np.abs(err)), np.sqrt(np.mean(err**2)), _mape(y, p), len(y)])


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


SINGLE_SERIES = "single series: nothing to compare"
MASE = "seasonal-naive MAE on training (MASE)"
WAPE = "mean |actual| (WAPE)"


def _scored(y, p, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """Rows with both an actual and a prediction (a missing reading is not scored), and how
    many were left out."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    keep = np.isfinite(y) & np.isfinite(p)
    groups = None if groups is None else np.asarray(groups).astype(str)[keep]
    return y[keep], p[keep], groups, int((~keep).sum())


def overall_errors(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, MAPE (NaN where undefined), relative MAE (WAPE) and rows, on all rows."""
    if not len(y):
        return {"mae": float("nan"), "rmse": float("nan"), "mape": float("nan"), "nmae": float("nan"), "count": 0}
    mae, rmse, mape, count = _error_summary(y, p)
    total = float(np.sum(np.abs(y)))
    nmae = float(np.sum(np.abs(p - y)) / total) if total else float("nan")
    return {"mae": float(mae), "rmse": float(rmse), "mape": float(mape), "nmae": nmae, "count": int(count)}


def _single_series(y: np.ndarray, p: np.ndarray, config: BiasConfig, excluded: int) -> dict[str, Any]:
    """The verdict without groups: nothing to compare, so the gate passes when there was
    anything to score; the overall errors are shown instead of gaps."""
    overall = overall_errors(y, p)
    if overall["count"]:
        mape = f", MAPE {overall['mape']:.3g}%" if overall["mape"] == overall["mape"] else ""
        errors = f"MAE {overall['mae']:.4g}, RMSE {overall['rmse']:.4g}{mape}"
        reason = f"{SINGLE_SERIES} (overall on {overall['count']} test rows: {errors})"
    else:
        reason = "empty test data"
    return {
        "rule": config.rule, "grouped": False, "verdict": SINGLE_SERIES, "threshold": config.threshold,
        "overall": overall,
        "overall_mae": overall["mae"], "overall_nmae": overall["nmae"], "limit": None, "biased": False,
        "passed": overall["count"] > 0, "flagged": [], "missing_groups": [], "reasons": [reason], "groups": [],
        "largest_abs_gap": 0.0, "excluded_rows": excluded,
    }


def _lifecycle_roles(
    expected_groups: list[str] | dict[str, list[str]] | None,
) -> tuple[list[str] | None, dict[str, str]]:
    """(the groups that must be judged, {group: "new_group" | "retired"} of the groups only listed).
    A list is the judged groups; a dict is `core.lifecycle.split_roles` output."""
    if not isinstance(expected_groups, dict):
        return expected_groups, {}
    listed = {str(g): "retired" for g in expected_groups.get("retired", [])}
    listed.update({str(g): "new_group" for g in expected_groups.get("new", [])})
    return [str(g) for g in expected_groups.get("established", [])], listed


def _listed_rows(
    y: np.ndarray, p: np.ndarray, groups: np.ndarray, listed: dict[str, str]
) -> tuple[list[dict], list[str]]:
    """Table rows and reasons for new and retired groups: their errors where they have test
    rows, never a verdict."""
    rows, reasons = [], []
    for g, status in sorted(listed.items()):
        mask = groups == g
        if mask.any():
            mae, rmse, mape, count = _error_summary(y[mask], p[mask])
            count = int(count)
            rows.append(
                {"group": g, "mae": float(mae), "rmse": float(rmse), "mape": float(mape), "count": count, "status": status}
            )
        else:
            count = 0
            rows.append({"group": g, "count": 0, "status": status})
        what = "new group, too young to be judged" if status == "new_group" else "retired group (no recent data)"
        reasons.append(f"group {g}: {what}; {count} test rows, listed, not judged")
    return rows, reasons


def bias_report(
    y: np.ndarray, p: np.ndarray, groups: np.ndarray | None, config: BiasConfig,
    expected_groups: list[str] | dict[str, list[str]] | None = None, scales: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Per-group metrics, gaps with 95% intervals, and a verdict with reasons. Rows without an
    actual or a prediction are left out (counted in `excluded_rows`); `groups=None` is a
    single series: nothing to compare, overall errors reported. `scales` (group -> its
    seasonal-naive MAE on training data) make the `normalized` rule MASE where WAPE has no
    meaning (a group's target reaches or crosses zero). `expected_groups` is the list of groups
    that must be in the test data, or the roles of `core.lifecycle.split_roles`: then the
    established groups are judged and must be present, while new and retired groups are listed
    (status "new_group" / "retired", with their errors where they have test rows), never failed."""
    if config.rule not in RULES:
        raise ValueError(f"bias rule {config.rule!r}: choose one of {RULES}")
    y, p, groups, excluded = _scored(y, p, groups)
    if groups is None:
        return _single_series(y, p, config, excluded)
    expected_groups, listed = _lifecycle_roles(expected_groups)
    listed_rows, listed_reasons = _listed_rows(y, p, groups, listed)
    judged = ~np.isin(groups, list(listed))
    y, p, groups = y[judged], p[judged], groups[judged]
    report = _judged_report(y, p, groups, config, expected_groups, scales, excluded)
    report["groups"] += listed_rows
    report["reasons"] = listed_reasons + report["reasons"]
    report["new_groups"] = sorted(g for g, s in listed.items() if s == "new_group")
    report["retired_groups"] = sorted(g for g, s in listed.items() if s == "retired")
    return report


def _judged_report(
    y: np.ndarray, p: np.ndarray, groups: np.ndarray, config: BiasConfig, expected_groups: list[str] | None,
    scales: dict[str, float] | None, excluded: int,
) -> dict[str, Any]:
    """The verdict on the judged groups' rows."""
    if len(y) == 0:
        return {
            "rule": config.rule, "grouped": True, "biased": False, "passed": False, "reasons": ["empty test data"],
            "groups": [], "flagged": [], "missing_groups": [], "largest_abs_gap": 0.0, "limit": None,
            "excluded_rows": excluded,
        }
    table = metric_frame(y, p, groups)
    near_zero = table.filter(pl.col("mape").is_nan()).get_column("group").to_list()
    use_scales = bool(near_zero) and uses_scales(scales, table.get_column("group").to_list())
    errors = _group_errors(y, p, groups, scales if use_scales else None)
    overall_mae = float(np.mean(np.abs(p - y)))
    total_scale = float(sum(a.sum() for _, a in errors.values()))
    overall_nmae = float(np.sum(np.abs(p - y)) / total_scale) if total_scale else float("nan")
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
        "overall": overall_errors(y, p),
        "excluded_rows": excluded,
        "overall_mae": overall_mae,
        "overall_nmae": overall_nmae,
        "normalized_by": f"{MASE}: the target of {', '.join(near_zero)} reaches or crosses zero" if use_scales
        else WAPE,
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
