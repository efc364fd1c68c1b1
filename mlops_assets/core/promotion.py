"""Promotion rules: every check gives an explicit verdict with a readable reason.

NaN, a missing metric, empty test data or too few rows always fail. Every model must beat the
seasonal-naive forecast on the test rows (skill, a scale-free measure that always exists; MAPE
and R2 thresholds are options); later ones also the serving champion, re-scored on the same
test rows, with a signed margin and a paired bootstrap interval on the error difference."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


BLOCKING_CHECKS = (
    "performance_threshold", "no_regression_vs_champion", "bias_within_threshold", "interval_coverage", "signature_and_schema", "serving_smoke_test",
)


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
    """`min_skill`: the challenger must beat seasonal naive on the test rows by more than this
    (skill = 1 - MAE/MAE(seasonal naive)); always applied. `max_mape` / `min_r2`: optional
    thresholds (None = not used); a MAPE that is absent because the target reaches zero is
    reported, not failed."""

    min_skill: float = 0.0
    max_mape: float | None = None
    min_r2: float | None = None
    min_test_rows: int = 48
    margin: float = 0.02  # the challenger's MAE may be at most 2% worse than the champion's
    bootstrap: int = 1000
    seed: int = 42


def _bad(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt(value: Any, spec: str) -> str:
    return "n/a" if _bad(value) else format(value, spec)


def _optional_thresholds(metrics: dict[str, Any], policy: PromotionPolicy) -> tuple[list[str], list[str]]:
    """(failures, notes) of the optional MAPE and R2 thresholds."""
    failures, notes = [], []
    if policy.max_mape is not None:
        mape = metrics.get("mape")
        if _bad(mape) and metrics.get("mape_absent_reason"):
            notes.append(f"MAPE threshold not applied: {metrics['mape_absent_reason']}")
        elif _bad(mape):
            failures.append("MAPE missing or NaN")
        elif mape > policy.max_mape:
            failures.append(f"MAPE {mape:.2f}% > max {policy.max_mape:.2f}%")
        else:
            notes.append(f"MAPE {mape:.2f}% (max {policy.max_mape:.2f}%)")
    if policy.min_r2 is not None:
        r2 = metrics.get("r2")
        if _bad(r2):
            failures.append("R2 missing or NaN")
        elif r2 < policy.min_r2:
            failures.append(f"R2 {r2:.3f} < min {policy.min_r2:.3f}")
        else:
            notes.append(f"R2 {r2:.3f} (min {policy.min_r2:.3f})")
    return failures, notes


def performance_threshold(metrics: dict[str, Any], policy: PromotionPolicy) -> Verdict:
    """Skill against seasonal naive above `min_skill` on enough test rows that have both
    baselines, plus the optional MAPE/R2 thresholds. The reason shows skill, MASE and the MAE
    against the day-before forecast on the same rows."""
    name = "performance_threshold"
    rows = metrics.get("n") or 0
    if rows < policy.min_test_rows:
        return Verdict(name, False, f"{rows} test rows < {policy.min_test_rows}: too little test data to judge")
    missing = [m for m in ("skill", "mae", "rmse") if _bad(metrics.get(m))]
    if missing:
        why = "skill needs the seasonal-naive baseline on the test rows"
        return Verdict(name, False, f"metrics missing or NaN: {missing} ({why})")
    compared = metrics.get("baseline_rows") or 0
    if compared < policy.min_test_rows:
        too_few = f"{compared} test rows with both baselines < {policy.min_test_rows}"
        return Verdict(name, False, f"{too_few}: too little test data to judge")
    failures, notes = _optional_thresholds(metrics, policy)
    skill = metrics["skill"]
    if skill <= policy.min_skill:
        failures.insert(0, f"skill {skill:.2f} not above {policy.min_skill:.2f}: no better than seasonal naive")
    mae, day_before = _fmt(metrics.get("compared_mae", metrics["mae"]), ".4g"), _fmt(metrics.get("day_before_mae"), ".4g")
    summary = (
        f"skill {skill:.2f} vs seasonal naive (min > {policy.min_skill:.2f}), MASE {_fmt(metrics.get('mase'), '.2f')}, "
        f"MAE {mae} vs day-before {day_before}, on {compared:,} rows"
    )
    return Verdict(name, not failures, "; ".join([*failures, summary, *notes]))


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


def champion_changed(compared: str | None, current: str | None) -> str | None:
    """Compare-and-set: the reason a version evaluated against champion `compared` may not
    replace the champion `current` (None = there was none), or None when `compared` still serves."""
    if compared == current:
        return None
    label = {None: "none"}
    return f"champion changed from {label.get(compared, f'v{compared}')} to {label.get(current, f'v{current}')} during evaluation"


# History actions that moved the `champion` alias ("external": a move made outside the platform,
# recorded when it was noticed; its version is None when the alias was removed).
ALIAS_MOVES = ("promote", "force_promote", "rollback", "external")


def serving_stack(history: list[dict[str, Any]]) -> list[str]:
    """Versions in serving order: promotions (and moves made outside the platform) push,
    rollbacks pop."""
    stack: list[str] = []
    for entry in history:
        if entry["action"] in ("promote", "force_promote", "external") and entry["version"] is not None:
            if not stack or stack[-1] != entry["version"]:
                stack.append(entry["version"])
        elif entry["action"] == "rollback" and stack:
            stack.pop()
    return stack


def recorded_champion(history: list[dict[str, Any]]) -> str | None:
    """The version the last recorded move left as `champion` (None: no move yet, or the alias
    was removed outside the platform)."""
    moves = [entry for entry in history if entry["action"] in ALIAS_MOVES]
    return moves[-1]["version"] if moves else None


def rollback_target(history: list[dict[str, Any]]) -> tuple[str, str]:
    """(current champion, the version that served before it) from the history."""
    stack = serving_stack(history)
    if len(stack) < 2:
        raise ValueError("nothing to roll back to: fewer than two versions have served" if stack else "no champion has been promoted yet")
    return stack[-1], stack[-2]
