"""Promotion rules: every check gives an explicit verdict with a readable reason.

NaN, a missing metric, empty test data or too few rows always fail. The first model is held
to value thresholds; later ones also to the serving champion, re-scored on the same test
rows, with a signed margin and a paired bootstrap interval on the error difference."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


BLOCKING_CHECKS = ("performance_threshold", "no_regression_vs_champion", "bias_within_threshold", "signature_and_schema", "serving_smoke_test")


@dataclass(frozen=True)
class Verdict:
    check: str
    passed: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def short(self) -> str:
        return f"{'pass' if self.passed else 'FAIL'}: {self.reason}"


@dataclass(frozen=True)
class PromotionPolicy:
    max_mape: float = 15.0
    min_r2: float = 0.5
    min_test_rows: int = 48
    margin: float = 0.02  # the challenger's MAE may be at most 2% worse than the champion's
    bootstrap: int = 1000
    seed: int = 42


def _bad(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def performance_threshold(metrics: dict[str, float], policy: PromotionPolicy) -> Verdict:
    name = "performance_threshold"
    rows = metrics.get("n") or 0
    if rows < policy.min_test_rows:
        return Verdict(name, False, f"{rows} test rows < {policy.min_test_rows}: too little test data to judge")
    missing = [m for m in ("mape", "r2", "mae", "rmse") if _bad(metrics.get(m))]
    if missing:
        return Verdict(name, False, f"metrics missing or NaN: {missing}")
    ok = metrics["mape"] <= policy.max_mape and metrics["r2"] >= policy.min_r2
    return Verdict(
        name, ok,
        f"MAPE {metrics['mape']:.2f}% (max {policy.max_mape:.2f}%), R2 {metrics['r2']:.3f} (min {policy.min_r2:.3f}) on {rows} rows",
    )


def paired_bootstrap(err_new: np.ndarray, err_champion: np.ndarray, draws: int, seed: int) -> tuple[float, float, float]:
    """(mean, 2.5%, 97.5%) of MAE(new) - MAE(champion), resampling the same rows for both."""
    diff = np.abs(np.asarray(err_new, float)) - np.abs(np.asarray(err_champion, float))
    if diff.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.array([diff[rng.integers(0, diff.size, diff.size)].mean() for _ in range(draws)])
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def no_regression_vs_champion(evaluation: dict[str, Any], policy: PromotionPolicy) -> Verdict:
    """Pass when the challenger's MAE is no worse than the champion's by more than the margin,
    and the bootstrap interval's upper end agrees (the data do not say it is worse)."""
    name = "no_regression_vs_champion"
    champion = evaluation.get("champion")
    if not champion:
        return Verdict(name, True, "no champion yet: value thresholds decide the first model")
    new, old = evaluation["challenger"]["metrics"], champion["metrics"]
    if any(_bad(x) for x in (new.get("mae"), old.get("mae"))) or not new.get("n"):
        return Verdict(name, False, "MAE missing or NaN for the challenger or the champion")
    diff, low, high = evaluation["paired_difference"]
    allowed = policy.margin * old["mae"]
    ok = diff <= allowed and high <= allowed
    return Verdict(
        name, ok,
        f"MAE {new['mae']:.4g} vs champion v{champion['version']} {old['mae']:.4g}: difference {diff:+.4g} "
        f"(95% CI {low:+.4g}..{high:+.4g}), allowed ≤ {allowed:+.4g} (margin {policy.margin:+.1%})",
    )


def signature_and_schema(input_columns: list[str] | None, output_present: bool, expected: list[str]) -> Verdict:
    name = "signature_and_schema"
    if input_columns is None:
        return Verdict(name, False, "the model version has no signature")
    missing = [c for c in expected if c not in input_columns]
    extra = [c for c in input_columns if c not in expected]
    if missing or extra or not output_present:
        return Verdict(name, False, f"signature mismatch: missing {missing}, unexpected {extra}, output schema {'present' if output_present else 'missing'}")
    return Verdict(name, True, f"signature has the {len(expected)} expected inputs and an output schema")


def bias_verdict(report: dict[str, Any]) -> Verdict:
    reasons = "; ".join(report.get("reasons", [])) or "no reasons recorded"
    return Verdict("bias_within_threshold", bool(report.get("passed")), reasons)


def serving_verdict(result: dict[str, Any], expected_rows: int) -> Verdict:
    name = "serving_smoke_test"
    if result.get("error"):
        return Verdict(name, False, f"loading or predicting in a fresh process failed: {result['error']}")
    preds = result.get("predictions") or []
    finite = all(isinstance(p, (int, float)) and math.isfinite(p) for p in preds)
    ok = len(preds) == expected_rows and finite
    return Verdict(name, ok, f"fresh process loaded the version and returned {len(preds)}/{expected_rows} {'finite ' if finite else 'NON-FINITE '}predictions in {result.get('seconds', float('nan')):.1f}s")


def serving_stack(history: list[dict[str, Any]]) -> list[str]:
    """Versions in serving order: promotions push, rollbacks pop."""
    stack: list[str] = []
    for entry in history:
        if entry["action"] in ("promote", "force_promote"):
            if not stack or stack[-1] != entry["version"]:
                stack.append(entry["version"])
        elif entry["action"] == "rollback" and stack:
            stack.pop()
    return stack


def rollback_target(history: list[dict[str, Any]]) -> tuple[str, str]:
    """(current champion, the version that served before it) from the history."""
    stack = serving_stack(history)
    if len(stack) < 2:
        raise ValueError("nothing to roll back to: fewer than two versions have served" if stack else "no champion has been promoted yet")
    return stack[-1], stack[-2]
