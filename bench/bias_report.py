"""Benchmark of the bias report: `core.fairness.bias_report` at 1M rows and 60 groups.

    python bench/bias_report.py [--rows 1000000] [--groups 60] [--out bench/results/bias_report.json]

Synthetic test data is generated once (not timed): per group a load level, hourly actuals
with a daily cycle, and predictions with a relative error of a few percent; one deliberately
worse group (4x the relative error of the others) must be flagged by the `normalized` rule.
Rows are shuffled, group sizes vary (0.5x to 1.5x the mean).

Each repetition runs `bias_report(y, pred, groups, BiasConfig(rule="normalized",
bootstrap=200))` in a fresh subprocess (`--worker`, hidden), so wall time and peak memory
belong to that call alone. The time is split into the fairlearn MetricFrame part
(`fairness.metric_frame`) and the rest (`_group_errors`, the stratified bootstrap
`_bootstrap_gaps`, and the per-group verdicts), by wrapping those module functions with
timers; the kernel's peak-RSS mark is reset around each part, so each part has its own peak.

Peak memory is VmHWM (/proc/self/status) after a /proc/self/clear_refs reset, minus the RSS
after imports and after the arrays are loaded (see bench/training.py for why not ru_maxrss).

Writes the JSON to --out and a Markdown table next to it (bias_report.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import QUIET_BUSY_CORES, busy_cores, cpu_seconds, peak_method, peak_rss_mb, reset_peak_rss, rss_mb  # noqa: E402
from bench.training import machine_info  # noqa: E402

DEFAULT_OUT = ROOT / "bench" / "results" / "bias_report.json"
WORKER_IMPORTS = ("numpy", "pandas", "polars", "fairlearn.metrics", "mlops_assets.core.fairness")
RULE = "normalized"
BOOTSTRAP = 200
BASE_RELATIVE_ERROR = 0.03  # sd of prediction error / group level
WORSE_FACTOR = 4.0
STAGES = ("metric_frame", "_group_errors", "_bootstrap_gaps")


# ============================================================================================
# data (parent, not timed)


def group_names(groups: int) -> list[str]:
    return [f"G{i:02d}" for i in range(groups)]


def generate(rows: int, groups: int, seed: int, out_dir: Path) -> dict[str, Any]:
    """y, pred, groups as .npy files; returns what was generated."""
    import numpy as np

    rng = np.random.default_rng(seed)
    names = group_names(groups)
    weights = rng.uniform(0.5, 1.5, groups)
    sizes = np.floor(weights / weights.sum() * rows).astype(int)
    sizes[: rows - sizes.sum()] += 1
    worse = int(np.argmin(rng.uniform(size=groups) + (np.arange(groups) == 0)))  # any group but the first
    level = rng.uniform(500, 5000, groups)
    code = np.repeat(np.arange(groups), sizes)
    hour = np.concatenate([np.arange(n) for n in sizes])
    lv = level[code]
    y = lv * (1 + 0.2 * np.sin(2 * np.pi * hour / 24) + 0.05 * rng.standard_normal(rows))
    rel = np.where(code == worse, BASE_RELATIVE_ERROR * WORSE_FACTOR, BASE_RELATIVE_ERROR)
    pred = y + lv * rel * rng.standard_normal(rows)
    perm = rng.permutation(rows)
    group_labels = np.asarray(names)[code]
    np.save(out_dir / "y.npy", y[perm])
    np.save(out_dir / "pred.npy", pred[perm])
    np.save(out_dir / "groups.npy", group_labels[perm])
    return {
        "rows": rows,
        "groups": groups,
        "group_rows_min": int(sizes.min()),
        "group_rows_max": int(sizes.max()),
        "worse_group": names[worse],
        "worse_group_level": round(float(level[worse]), 1),
        "base_relative_error_sd": BASE_RELATIVE_ERROR,
        "worse_factor": WORSE_FACTOR,
        "rows_shuffled": True,
    }


# ============================================================================================
# worker: one measured bias_report in a fresh process


class StageMeter:
    """Wraps module functions: time per stage, and the peak RSS of each stage and of the
    code between stages ("other"), by resetting the peak mark around every stage."""

    def __init__(self, baseline: float) -> None:
        self.baseline = baseline
        self.times: dict[str, float] = {}
        self.peaks: dict[str, float] = {}

    def _note_peak(self, name: str) -> None:
        self.peaks[name] = max(self.peaks.get(name, 0.0), peak_rss_mb())
        reset_peak_rss()

    def wrap(self, module: Any, name: str) -> None:
        inner = getattr(module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self._note_peak("other")
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t0
                self._note_peak(name)

        setattr(module, name, wrapper)

    def finish(self) -> None:
        self._note_peak("other")


def worker(input_dir: Path, result_file: Path) -> None:
    for module in WORKER_IMPORTS:  # imports belong to the baseline, not to the run
        importlib.import_module(module)
    import numpy as np

    from mlops_assets.core import fairness

    y = np.load(input_dir / "y.npy")
    pred = np.load(input_dir / "pred.npy")
    groups = np.load(input_dir / "groups.npy")
    config = fairness.BiasConfig(rule=RULE, bootstrap=BOOTSTRAP)
    gc.collect()
    baseline = rss_mb()
    meter = StageMeter(baseline)
    for name in STAGES:
        meter.wrap(fairness, name)
    reset = reset_peak_rss()
    cpu_before = cpu_seconds()
    start = time.perf_counter()
    report = fairness.bias_report(y, pred, groups, config)
    wall = time.perf_counter() - start
    cpu = cpu_seconds() - cpu_before
    meter.finish()
    peak = max([*meter.peaks.values(), baseline])
    rest_peak = max([v for k, v in meter.peaks.items() if k != "metric_frame"] + [baseline])
    result = {
        "wall_s": wall,
        "cpu_s": cpu,
        "stages_s": {**meter.times, "other": wall - sum(meter.times.values())},
        "metric_frame_s": meter.times["metric_frame"],
        "rest_s": wall - meter.times["metric_frame"],
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak,
        "peak_mb_increase": peak - baseline,
        "metric_frame_peak_mb_increase": max(meter.peaks["metric_frame"], baseline) - baseline,
        "rest_peak_mb_increase": rest_peak - baseline,
        "stage_peak_mb_increase": {k: max(v, baseline) - baseline for k, v in meter.peaks.items()},
        "peak_method": peak_method(reset) + ", reset around each stage",
        "report": {
            "rule": report["rule"], "biased": report["biased"], "passed": report["passed"], "flagged": report["flagged"],
            "overall_nmae": report["overall_nmae"], "limit": report["limit"], "groups_reported": len(report["groups"]),
            "flagged_rows": [{k: r[k] for k in ("group", "count", "nmae", "gap", "gap_ci_low", "gap_ci_high", "status")} for r in report["groups"] if r["group"] in report["flagged"]],
            "statuses": {s: sum(r["status"] == s for r in report["groups"]) for s in sorted({r["status"] for r in report["groups"]})},
        },
    }
    result_file.write_text(json.dumps(result))


# ============================================================================================
# parent


def run_worker(input_dir: Path) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        result_file = Path(fh.name)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--input-dir", str(input_dir), "--result-file", str(result_file)]
    try:
        subprocess.run(cmd, check=True, cwd=ROOT)
        return json.loads(result_file.read_text())
    finally:
        result_file.unlink(missing_ok=True)


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median times, the largest peaks."""
    med = lambda key: round(statistics.median(r[key] for r in runs), 3)  # noqa: E731
    top = lambda key: round(max(r[key] for r in runs), 1)  # noqa: E731
    stages = runs[0]["stages_s"].keys()
    return {
        "wall_s": med("wall_s"),
        "wall_s_runs": [round(r["wall_s"], 3) for r in runs],
        "cpu_s": med("cpu_s"),
        "metric_frame_s": med("metric_frame_s"),
        "rest_s": med("rest_s"),
        "stages_s": {s: round(statistics.median(r["stages_s"][s] for r in runs), 3) for s in stages},
        "peak_mb_increase": top("peak_mb_increase"),
        "peak_rss_mb": top("peak_rss_mb"),
        "metric_frame_peak_mb_increase": top("metric_frame_peak_mb_increase"),
        "rest_peak_mb_increase": top("rest_peak_mb_increase"),
        "stage_peak_mb_increase": {s: round(max(r["stage_peak_mb_increase"][s] for r in runs), 1) for s in runs[0]["stage_peak_mb_increase"]},
        "baseline_rss_mb": round(statistics.median(r["baseline_rss_mb"] for r in runs), 1),
        "peak_method": runs[0]["peak_method"],
        "repeats": len(runs),
        "background_busy_cores_runs": [r["background_busy_cores"] for r in runs],
        "report": runs[0]["report"],
    }


def markdown(result: dict[str, Any]) -> str:
    m, d, r = result["machine"], result["data"], result["result"]
    rep = r["report"]
    stage_names = {"metric_frame": "fairlearn MetricFrame (`metric_frame`)", "_group_errors": "`_group_errors`",
                   "_bootstrap_gaps": f"`_bootstrap_gaps` ({BOOTSTRAP} draws)", "other": "per-group verdicts and the rest"}
    flagged_ok = rep["flagged"] == [d["worse_group"]]
    lines = [
        f"`core.fairness.bias_report` (rule `{RULE}`, {BOOTSTRAP} bootstrap draws) on {d['rows']:,} rows and {d['groups']} groups "
        f"({d['group_rows_min']:,}–{d['group_rows_max']:,} rows per group), median of {r['repeats']} fresh-process runs; "
        f"{m['cpu_count']} CPUs ({m['cpu_model']}), Python {m['python']}, fairlearn {m['fairlearn']}, numpy {m['numpy']}, "
        f"polars {m['polars']}; {result['date'][:10]}.",
        "",
        "| part | wall (s) | share | peak MB (+) |",
        "|---|---:|---:|---:|",
        f"| **fairlearn MetricFrame (`metric_frame`)** | {r['metric_frame_s']:.2f} | {r['metric_frame_s'] / r['wall_s']:.0%} | +{r['metric_frame_peak_mb_increase']:.0f} |",
        f"| **the rest** | {r['rest_s']:.2f} | {r['rest_s'] / r['wall_s']:.0%} | +{r['rest_peak_mb_increase']:.0f} |",
        *(f"| &nbsp;&nbsp;{stage_names[s]} | {v:.2f} | {v / r['wall_s']:.0%} | +{r['stage_peak_mb_increase'].get(s, 0.0):.0f} |"
          for s, v in r["stages_s"].items() if s != "metric_frame"),
        f"| **total `bias_report`** | {r['wall_s']:.2f} (runs: {', '.join(f'{w:.2f}' for w in r['wall_s_runs'])}) | 100% | +{r['peak_mb_increase']:.0f} / {r['peak_rss_mb']:.0f} abs |",
        "",
        f"CPU time {r['cpu_s']:.2f} s. Peak + = increase over the worker's RSS after imports and after loading the arrays "
        "(VmHWM, reset around each part, so each part has its own peak); abs = peak RSS.",
        "",
        f"Verdict: the deliberately worse group {d['worse_group']} ({d['worse_factor']:.0f}× the relative error) was "
        + ("flagged, and no other group was" if flagged_ok else f"**not flagged as expected**: flagged {rep['flagged']}")
        + f" (statuses: {', '.join(f'{k} {v}' for k, v in rep['statuses'].items())}; overall NMAE {rep['overall_nmae']:.4f}, limit ±{rep['limit']:.4f}"
        + "".join(f"; {f['group']}: NMAE {f['nmae']:.4f}, gap {f['gap']:+.4f}, 95% CI {f['gap_ci_low']:+.4f}..{f['gap_ci_high']:+.4f}" for f in rep["flagged_rows"])
        + ").",
        "",
    ]
    busy = sum(b >= QUIET_BUSY_CORES for b in r["background_busy_cores_runs"])
    if busy:
        lines += [f"Note: {busy} of {r['repeats']} runs started while other processes kept ≥ {QUIET_BUSY_CORES} of the "
                  f"{m['cpu_count']} cores busy (per-run load in the JSON).", ""]
    if result.get("note"):
        lines += [f"Note: {result['note']}", ""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3, help="fresh-process runs (median)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file (the .md is written next to it)")
    parser.add_argument("--note", default="", help="a remark stored with the results (e.g. machine load)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--input-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args.input_dir, args.result_file)
        return
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_bias_") as tmp:
        data = generate(args.rows, args.groups, args.seed, Path(tmp))
        print(f"== {data['rows']:,} rows, {data['groups']} groups; worse group {data['worse_group']}", flush=True)
        runs = []
        for i in range(args.repeats):
            busy = busy_cores()
            run = run_worker(Path(tmp)) | {"background_busy_cores": round(busy, 2)}
            runs.append(run)
            print(f"   run {i + 1}: {run['wall_s']:.2f} s (metric_frame {run['metric_frame_s']:.2f} s, rest {run['rest_s']:.2f} s), "
                  f"+{run['peak_mb_increase']:.0f} MB; flagged {run['report']['flagged']} (background load {busy:.2f} cores)", flush=True)
    result = {
        "benchmark": "core.fairness.bias_report",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config": {"rule": RULE, "bootstrap": BOOTSTRAP},
        "machine": machine_info(),
        "data": data,
        "result": aggregate(runs),
        "worse_group_flagged": runs[0]["report"]["flagged"] == [data["worse_group"]],
        "note": args.note,
        "total_runtime_s": round(time.perf_counter() - began, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')} in {result['total_runtime_s']} s")


if __name__ == "__main__":
    main()
