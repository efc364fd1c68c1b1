"""Prediction intervals: how fast adaptive conformal inference regains coverage after the error
level shifts, for several step sizes γ.

    python bench/intervals.py [--gammas 0.02,0.05,0.1,0.2] [--shifts 0.5,1,1.5,2,3] [--groups 8]
                              [--days-before 20] [--days-after 90] [--seed 0]
                              [--out bench/results/intervals.json]

Synthetic hourly data, seeded, in one process, through the platform's own code
(`core.intervals`: `fit_calibrator`, then `rolled_intervals`, which serves each daily batch the
interval adapted by the batches before and then moves it with `IntervalCalibrator.updated`):

- `--groups` groups, each around its own level (50 to 5,000, log-spaced); a row's level is its
  target lag (the level × an hour-of-day profile × noise), the forecast is near it and the error is
  Gaussian with standard deviation σ × the row's level (σ = 0.08). So the ideal 80 % interval is
  ±1.2816 σ × level and the scaled conformal score has the same distribution in every group.
- calibration: 30 days × 24 hourly rows per group (the validation split; one full window of 720
  scores per group), nominal level 80 %, `DEFAULT_WINDOW`, `MIN_GROUP_SCORES`.
- then `--days-before` daily batches (24 rows × groups) at σ, and `--days-after` batches at
  σ × shift (1 is the no-shift control). The same rows for every γ.

Reported per (shift, γ): the batches after the shift until the rolling coverage over the last 5
batches (all after the shift) is within ±5 points of 80 % and stays there to the end of the run;
the coverage of the first 5 batches after the shift; the coverage of all batches after the shift;
the mean width (relative to the ideal width after the shift) of the last 10 batches before and of
the last 20 batches of the run; and the static (calibrated, never updated) interval's coverage
after the shift for comparison. Writes the JSON to --out and a Markdown table next to it, with the
machine and its load.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import load_average, load_note, write_report  # noqa: E402

DEFAULT_OUT = ROOT / "bench" / "results" / "intervals.json"
PACKAGES = ("numpy", "polars")
LEVEL = 0.8
SIGMA = 0.08
Z80 = 1.2815516  # the 90th percentile of the standard normal: the ideal 80 % half-width is Z80 σ × level
CALIBRATION_DAYS = 30
ROLLING = 5  # batches in the rolling coverage
BAND = 0.05  # ±5 points
HOURS = 24
GOALS = {
    "recovery": f"after a shift of the error level, the rolling coverage over the last {ROLLING} daily batches is back within ±{BAND * 100:.0f} points of {LEVEL:.0%} and stays there",
    "control": "without a shift (×1), the rolling coverage never leaves the band",
}


def group_levels(groups: int):
    import numpy as np

    return np.geomspace(50.0, 5000.0, groups)


def batch_frame(rng, levels, days: int, first_day: int, sigma: float):
    """`days` daily batches of 24 hourly rows per group: columns day, zone, lag_24, prediction, y."""
    import numpy as np
    import polars as pl

    groups = len(levels)
    day = np.repeat(np.arange(first_day, first_day + days), HOURS * groups)
    hour = np.tile(np.repeat(np.arange(HOURS), groups), days)
    zone = np.tile(np.arange(groups), days * HOURS)
    profile = 1.0 + 0.3 * np.sin(2 * np.pi * (hour - 6) / HOURS)
    lag = levels[zone] * profile * rng.uniform(0.9, 1.1, day.size)
    prediction = lag * rng.uniform(0.95, 1.05, day.size)
    y = prediction + rng.normal(0.0, sigma * lag)
    return pl.DataFrame({"day": day, "zone": [f"zone_{z}" for z in zone], "lag_24": lag, "prediction": prediction, "y": y})


def per_batch(frame, lower, upper) -> list[dict[str, float]]:
    """Coverage and mean width of each day's rows (served intervals), and the ideal width."""
    import numpy as np

    day = frame.get_column("day").to_numpy()
    y, lag = frame.get_column("y").to_numpy(), frame.get_column("lag_24").to_numpy()
    covered = (y >= lower) & (y <= upper)
    out = []
    for d in np.unique(day):
        m = day == d
        out.append({"day": int(d), "coverage": float(covered[m].mean()), "mean_width": float((upper - lower)[m].mean()), "rows": int(m.sum()), "mean_level": float(lag[m].mean())})
    return out


def rolling_coverage(coverage: list[float]) -> list[float]:
    """Coverage over batches t-4..t for t = ROLLING.. (equal batch sizes: the mean of the batches)."""
    return [sum(coverage[t - ROLLING + 1: t + 1]) / ROLLING for t in range(ROLLING - 1, len(coverage))]


def first_in_band(coverage: list[float]) -> int | None:
    """The first batch t (1 = the first after the shift, t ≥ ROLLING) whose rolling coverage is within the band."""
    return next((i + ROLLING for i, c in enumerate(rolling_coverage(coverage)) if LEVEL - BAND <= c <= LEVEL + BAND), None)


def furthest_after(coverage: list[float], start: int | None) -> float | None:
    """The rolling coverage furthest from LEVEL from batch `start` on (the overshoot after first reaching the band)."""
    if start is None:
        return None
    later = rolling_coverage(coverage)[start - ROLLING:]
    return max(later, key=lambda c: abs(c - LEVEL))


def recovery_batches(coverage: list[float]) -> int | None:
    """The first batch t (1 = the first after the shift, t ≥ ROLLING) from which the rolling
    coverage over batches t-4..t stays within LEVEL ± BAND to the end; None if it never does."""
    rolling = rolling_coverage(coverage)
    inside = [LEVEL - BAND <= c <= LEVEL + BAND for c in rolling]
    if not inside[-1]:
        return None
    last_out = max((i for i, ok in enumerate(inside) if not ok), default=-1)
    return last_out + 1 + ROLLING  # index i of `rolling` is batch i + ROLLING (1-based)


def run(levels, shift: float, gammas: list[float], days_before: int, days_after: int, seed: int) -> list[dict[str, Any]]:
    import numpy as np

    from mlops_assets.core.intervals import fit_calibrator, rolled_intervals

    rng = np.random.default_rng([seed, int(round(shift * 1000))])
    calibration = batch_frame(rng, levels, CALIBRATION_DAYS, -CALIBRATION_DAYS - days_before, SIGMA)
    served = batch_frame(rng, levels, days_before, -days_before, SIGMA).vstack(batch_frame(rng, levels, days_after, 0, SIGMA * shift))
    y, prediction = served.get_column("y").to_numpy(), served.get_column("prediction").to_numpy()
    days = served.get_column("day").to_numpy()
    after_rows = days >= 0
    ideal_after = 2 * Z80 * SIGMA * shift * float(served.filter(served["day"] >= 0).get_column("lag_24").mean())
    ideal_before = 2 * Z80 * SIGMA * float(served.filter(served["day"] < 0).get_column("lag_24").mean())
    rows = []
    for gamma in gammas:
        clock = time.perf_counter()
        calibrator = fit_calibrator(
            calibration.get_column("y").to_numpy(), calibration.get_column("prediction").to_numpy(), calibration,
            level=LEVEL, group="zone", scale_columns=["lag_24"], gamma=gamma,
        )
        lower, upper, final = rolled_intervals(calibrator, y, prediction, served, days)
        elapsed = time.perf_counter() - clock
        static_lower, static_upper = calibrator.interval(prediction, served)
        batches = per_batch(served, lower, upper)
        after = [b for b in batches if b["day"] >= 0]
        before = [b for b in batches if b["day"] < 0]
        cov_after = [b["coverage"] for b in after]
        static_cov = ((y >= static_lower) & (y <= static_upper))[after_rows]
        width_before = float(np.mean([b["mean_width"] for b in before[-10:]]))
        width_after = float(np.mean([b["mean_width"] for b in after[-20:]]))
        rows.append({
            "shift": shift, "gamma": gamma,
            "batches_to_recover": recovery_batches(cov_after),
            "first_in_band": first_in_band(cov_after),
            "furthest_rolling_after_first_in_band": None if (f := furthest_after(cov_after, first_in_band(cov_after))) is None else round(f, 4),
            "coverage_first_5_after": round(float(np.mean(cov_after[:ROLLING])), 4),
            "coverage_all_after": round(float(np.mean(cov_after)), 4),
            "coverage_last_20_after": round(float(np.mean(cov_after[-20:])), 4),
            "coverage_before": round(float(np.mean([b["coverage"] for b in before])), 4),
            "mean_width_before": round(width_before, 2),
            "mean_width_after_last_20": round(width_after, 2),
            "ideal_width_before": round(ideal_before, 2),
            "ideal_width_after": round(ideal_after, 2),
            "width_after_over_ideal": round(width_after / ideal_after, 3),
            "static_coverage_first_5_after": round(float(static_cov[: ROLLING * HOURS * len(levels)].mean()), 4),
            "static_coverage_all_after": round(float(static_cov.mean()), 4),
            "static_mean_width": round(float((static_upper - static_lower)[after_rows].mean()), 2),
            "final_alpha_pooled": round(final.alpha.get("__all__", 1 - LEVEL), 4),
            "rolled_intervals_s": round(elapsed, 3),
            "coverage_by_batch_after": [round(c, 4) for c in cov_after],
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gammas", default="0.02,0.05,0.1,0.2")
    parser.add_argument("--shifts", default="0.5,1,1.5,2,3", help="factors of the error level (1: the no-shift control)")
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--days-before", type=int, default=20)
    parser.add_argument("--days-after", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    began = time.perf_counter()

    from mlops_assets.core.intervals import DEFAULT_WINDOW, MIN_GROUP_SCORES

    gammas = [float(x) for x in args.gammas.split(",") if x.strip()]
    shifts = [float(x) for x in args.shifts.split(",") if x.strip()]
    levels = group_levels(args.groups)
    loads, results = [load_average()], []
    for shift in shifts:
        results += run(levels, shift, gammas, args.days_before, args.days_after, args.seed)
        loads.append(load_average())
    body = {
        "configuration": {
            "level": LEVEL, "sigma": SIGMA, "groups": args.groups, "group_levels": [round(x, 1) for x in levels],
            "rows_per_batch": HOURS * args.groups, "calibration_days": CALIBRATION_DAYS, "days_before": args.days_before,
            "days_after": args.days_after, "window": DEFAULT_WINDOW, "min_group_scores": MIN_GROUP_SCORES,
            "rolling_batches": ROLLING, "band": BAND, "seed": args.seed, "gammas": gammas, "shifts": shifts,
        },
        "results": results,
        "load_average": loads,
        "load_note": load_note(loads),
    }
    write_report(args.out, "prediction intervals: recovery of adaptive conformal coverage after a shift", began, PACKAGES, body, GOALS, render)


def render(report: dict[str, Any]) -> str:
    c = report["configuration"]
    lines = [
        f"# {report['benchmark']}",
        "",
        f"{c['groups']} synthetic groups (levels {c['group_levels'][0]:g}–{c['group_levels'][-1]:g}), Gaussian errors σ = {c['sigma']} × each row's level, "
        f"nominal {c['level']:.0%}; calibrated on {c['calibration_days']} days, then {c['days_before']} daily batches ({c['rows_per_batch']} rows) "
        f"before the shift and {c['days_after']} after, served by `rolled_intervals` (window {c['window']} scores per group); seed {c['seed']}. "
        f"Recovery: batches after the shift until the coverage over the last {c['rolling_batches']} batches is within ±{c['band'] * 100:.0f} points "
        f"of {c['level']:.0%} and stays there to the end. Widths: mean over the last 10 batches before and the last 20 of the run, "
        "and that width over the ideal (±1.2816 σ × level of the new error) in brackets.",
        "",
        "| shift | γ | batches to recover (and stay) | first in band | then furthest rolling | coverage, 5 batches after | coverage, all after | coverage, last 20 | width before | width after (× ideal) | static coverage, 5 after / all after |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        recover = r["batches_to_recover"] if r["batches_to_recover"] is not None else f"not in {c['days_after']}"
        lines.append(
            f"| ×{r['shift']:g} | {r['gamma']:g} | {recover} | {r['first_in_band'] if r['first_in_band'] is not None else '–'} "
            f"| {'–' if r['furthest_rolling_after_first_in_band'] is None else format(r['furthest_rolling_after_first_in_band'], '.1%')} | {r['coverage_first_5_after']:.1%} | {r['coverage_all_after']:.1%} | {r['coverage_last_20_after']:.1%} "
            f"| {r['mean_width_before']:.1f} | {r['mean_width_after_last_20']:.1f} ({r['width_after_over_ideal']:.2f}) "
            f"| {r['static_coverage_first_5_after']:.1%} / {r['static_coverage_all_after']:.1%} |"
        )
    lines += [
        "",
        f"A recovery of {c['rolling_batches']} means the rolling coverage was in the band at the first full window after the shift. "
        "'Then furthest rolling': the rolling coverage furthest from the nominal level from the first batch in the band on: "
        "α keeps integrating the misses while the window still holds the old scores, so once the new scores fill the window "
        f"({c['window']} per group = {c['window'] // 24} daily batches) the coverage overshoots the other way until α comes back.",
        "",
        report["load_note"], f"Total runtime {report['total_runtime_s']} s.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
