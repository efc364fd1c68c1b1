"""Benchmark of our numeric drift check against Evidently's DataDriftPreset on the same data.

    python bench/drift.py [--current-rows 1000000] [--reference-rows 100000] [--repeats 3]
                          [--evidently-python /work/evidently-venv/bin/python] [--out bench/results/drift.json]

Data (generated once in the parent, not timed, fixed seed): a reference frame of
--reference-rows rows and a current batch of --current-rows rows, each with a timestamp `ts`
and 20 numeric features `x00`..`x19` drawn from a mix of distributions (normal, lognormal,
uniform, exponential, gamma, Student-t, bimodal), each with its own location and scale. Five
columns of the current batch are shifted by +0.5 to +1.0 reference standard deviations
(SHIFTED below); the other fifteen come from exactly the same distribution as the reference.
Both frames are written as parquet files in a temp dir, and every measured run reads them in
a fresh process before its baseline is taken.

Measured (each implementation in a fresh subprocess per repetition, interleaved, median wall):

* ours (the repo's .venv): `build_profile` on the reference frame (10 quantile bins), the
  columns as numpy arrays, then `feature_drift(profile, reference, current, DriftConfig())`
  (KS + PSI + normalised Wasserstein per column; drifted = PSI > 0.2 and W > 0.25).
* Evidently (a separate virtualenv, so the repo's pins stay untouched): `Dataset.from_pandas`
  for both frames (DataDefinition: the 20 numeric columns, `ts` as timestamp), then
  `Report([DataDriftPreset()], include_tests=True).run(current, reference)`. Its default test
  for numeric columns with > 1000 reference rows is the normed Wasserstein distance, drift
  when >= 0.1. include_tests=True only adds the per-column pass/fail verdicts we compare.

Peak memory is the worker's peak RSS (`ru_maxrss` after resetting the kernel's high-water
mark via /proc/self/clear_refs) minus its RSS after imports and after loading the parquet
files. Per-column verdicts (ours `drifted` vs Evidently's per-column drift test) are compared
for the shifted and the unshifted columns. Goals (reported, not asserted): ours >= 10x
faster, and the same verdicts on the shifted columns.

Reproduce (the Evidently side is a bench-only extra, never installed into the repo's .venv;
evidently 0.7.23 does not import with pandas 3, hence the pandas pin):

    python3.11 -m venv /work/evidently-venv
    /work/evidently-venv/bin/pip install "evidently==0.7.23" "pandas==2.3.3" "numpy==2.4.6" "scipy==1.17.1" "pyarrow==26.0.1"
    .venv/bin/python bench/drift.py

Writes the JSON to --out and a Markdown summary next to it (drift.md). This module imports
only the standard library at the top, so the same file runs as the Evidently worker under the
other virtualenv's python.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib
import json
import os
import platform
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

from bench.harness import QUIET_BUSY_CORES, cpu_seconds, machine_info, peak_method, peak_rss_mb, reset_peak_rss, rss_mb, wait_for_quiet  # noqa: E402  (stdlib only: runs in either venv)

IMPLEMENTATIONS = ("ours", "evidently")
WORKER_IMPORTS = {
    "ours": ("numpy", "polars", "scipy.stats", "scipy.spatial.distance", "mlops_assets.core.profile", "mlops_assets.core.drift"),
    "evidently": ("numpy", "pandas", "pyarrow", "scipy.stats", "evidently", "evidently.presets"),
}
DEFAULT_OUT = ROOT / "bench" / "results" / "drift.json"
DEFAULT_EVIDENTLY_PYTHON = Path(os.environ.get("EVIDENTLY_PYTHON", "/work/evidently-venv/bin/python"))
EVIDENTLY_PIP = 'pip install "evidently==0.7.23" "pandas==2.3.3" "numpy==2.4.6" "scipy==1.17.1" "pyarrow==26.0.1"'
N_FEATURES = 20
BINS = 10
DISTRIBUTIONS = ("normal", "lognormal", "uniform", "exponential", "gamma", "student_t5", "bimodal")
SHIFTED = {"x01": 0.5, "x05": 0.75, "x09": 1.0, "x14": 0.6, "x17": 0.8}  # column -> shift in reference SDs
QUIET_WAIT_S = 10.0
GOAL_SPEEDUP = 10.0


def feature_names() -> list[str]:
    return [f"x{j:02d}" for j in range(N_FEATURES)]


def distribution_of(j: int) -> str:
    return DISTRIBUTIONS[j % len(DISTRIBUTIONS)]


# ============================================================================================
# data generation (parent process, not timed)


def draw(rng: Any, dist: str, n: int) -> Any:
    if dist == "normal":
        return rng.normal(size=n)
    if dist == "lognormal":
        return rng.lognormal(0.0, 0.5, n)
    if dist == "uniform":
        return rng.uniform(size=n)
    if dist == "exponential":
        return rng.exponential(size=n)
    if dist == "gamma":
        return rng.gamma(2.0, size=n)
    if dist == "student_t5":
        return rng.standard_t(5, n)
    if dist == "bimodal":
        return rng.normal(-2.0, 1.0, n) + 4.0 * (rng.random(n) < 0.5)
    raise ValueError(dist)


def generate(reference_rows: int, current_rows: int, seed: int, out_dir: Path) -> dict[str, Any]:
    """reference.parquet and current.parquet in `out_dir`; returns what was generated."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    ref: dict[str, Any] = {"ts": np.datetime64("2025-01-01T00:00:00", "us") + np.arange(reference_rows).astype("timedelta64[m]")}
    cur: dict[str, Any] = {"ts": np.datetime64("2026-01-01T00:00:00", "us") + np.arange(current_rows).astype("timedelta64[s]")}
    columns = []
    for j, name in enumerate(feature_names()):
        dist = distribution_of(j)
        loc, scale = 10.0 * j, 1.0 + j % 4
        ref[name] = loc + scale * draw(rng, dist, reference_rows)
        sd = float(ref[name].std())
        shift = SHIFTED.get(name, 0.0)
        cur[name] = loc + scale * draw(rng, dist, current_rows) + shift * sd
        columns.append({"column": name, "distribution": dist, "loc": loc, "scale": scale, "shift_sd": shift, "shifted": shift > 0})
    pl.DataFrame(ref).write_parquet(out_dir / "reference.parquet")
    pl.DataFrame(cur).write_parquet(out_dir / "current.parquet")
    return {
        "reference_rows": reference_rows,
        "current_rows": current_rows,
        "features": N_FEATURES,
        "seed": seed,
        "columns": columns,
        "parquet_mb": round(sum((out_dir / f).stat().st_size for f in ("reference.parquet", "current.parquet")) / 2**20, 1),
    }


# ============================================================================================
# the two implementations (worker process)


class Stopwatch:
    def __init__(self) -> None:
        self.stages: dict[str, float] = {}
        self.clock = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages[stage] = self.stages.get(stage, 0.0) + now - self.clock
        self.clock = now


def load_ours(input_dir: Path) -> tuple[Any, Any]:
    import polars as pl

    return pl.read_parquet(input_dir / "reference.parquet"), pl.read_parquet(input_dir / "current.parquet")


def run_ours(data: tuple[Any, Any], watch: Stopwatch) -> list[dict[str, Any]]:
    """Reference profile (build_profile, 10 quantile bins) + feature_drift with DriftConfig()."""
    from mlops_assets.core.drift import DriftConfig, feature_drift
    from mlops_assets.core.profile import build_profile

    ref_frame, cur_frame = data
    features = feature_names()
    profile = build_profile(ref_frame, numeric=features, categorical=[], bins=BINS, group=None, timestamp="ts")
    watch.lap("profile")
    reference = {c: ref_frame.get_column(c).to_numpy() for c in features}
    current = {c: cur_frame.get_column(c).to_numpy() for c in features}
    watch.lap("to_numpy")
    rows = feature_drift(profile, reference, current, DriftConfig())
    watch.lap("feature_drift")
    return rows


def verdicts_ours(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        r["feature"]: {"drifted": bool(r["drifted"]), "psi": r["psi"], "wasserstein": r["wasserstein"], "ks": r["ks"], "ks_pvalue": r["ks_pvalue"]}
        for r in rows
    }


def load_evidently(input_dir: Path) -> tuple[Any, Any]:
    import pandas as pd

    return pd.read_parquet(input_dir / "reference.parquet"), pd.read_parquet(input_dir / "current.parquet")


def run_evidently(data: tuple[Any, Any], watch: Stopwatch) -> Any:
    """Evidently datasets for both frames, then the DataDriftPreset report."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref_frame, cur_frame = data
    definition = DataDefinition(numerical_columns=feature_names(), timestamp="ts")
    reference = Dataset.from_pandas(ref_frame, data_definition=definition)
    current = Dataset.from_pandas(cur_frame, data_definition=definition)
    watch.lap("datasets")
    snapshot = Report([DataDriftPreset()], include_tests=True).run(current, reference)
    watch.lap("report")
    return snapshot


def verdicts_evidently(snapshot: Any) -> dict[str, dict[str, Any]]:
    """Per column: the ValueDrift score, method, threshold and the drift test's status."""
    d = snapshot.dict()
    by_metric: dict[str, dict[str, Any]] = {}
    out: dict[str, dict[str, Any]] = {}
    for m in d["metrics"]:
        cfg = m.get("config", {})
        if cfg.get("type", "").endswith("ValueDrift"):
            by_metric[m["id"]] = cfg
            out[cfg["column"]] = {"score": float(m["value"]), "method": cfg.get("method"), "threshold": cfg.get("threshold"), "drift_detected": None}
        elif cfg.get("type", "").endswith("DriftedColumnsCount"):
            out["__dataset__"] = {"drifted_columns": m["value"]["count"], "share": m["value"]["share"]}
    for t in d.get("tests", []):
        cfg = by_metric.get(t.get("metric_config", {}).get("metric_id"))
        if cfg is not None:
            out[cfg["column"]]["drift_detected"] = t["status"] == "FAIL"
    return out


# ============================================================================================
# worker: one measured run in a fresh process (stdlib helpers work under either venv)


def versions(impl: str) -> dict[str, str]:
    names = ("numpy", "scipy", "polars") if impl == "ours" else ("evidently", "pandas", "numpy", "scipy", "pyarrow")
    return {n: importlib.import_module(n).__version__ for n in names} | {"python": platform.python_version()}


def worker(impl: str, input_dir: Path, result_file: Path, verdicts: bool) -> None:
    """Import, load the parquet files, take the baseline, run once, record time and memory."""
    for module in WORKER_IMPORTS[impl]:  # imports belong to the baseline, not to the run
        importlib.import_module(module)
    data = load_ours(input_dir) if impl == "ours" else load_evidently(input_dir)
    gc.collect()
    baseline = rss_mb()
    reset = reset_peak_rss()
    watch = Stopwatch()
    cpu_before = cpu_seconds()
    start = watch.clock = time.perf_counter()
    out = run_ours(data, watch) if impl == "ours" else run_evidently(data, watch)
    wall = time.perf_counter() - start
    cpu = cpu_seconds() - cpu_before
    peak = max(peak_rss_mb(), baseline)
    result: dict[str, Any] = {
        "impl": impl,
        "wall_s": wall,
        "cpu_s": cpu,
        "stages_s": watch.stages,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak,
        "peak_mb_increase": peak - baseline,
        "peak_method": peak_method(reset),
        "versions": versions(impl),
    }
    if verdicts:  # after the measurement
        result["verdicts"] = verdicts_ours(out) if impl == "ours" else verdicts_evidently(out)
    result_file.write_text(json.dumps(result))


# ============================================================================================
# parent: repetitions, comparison, output


def run_worker(impl: str, input_dir: Path, verdicts: bool, evidently_python: Path) -> dict[str, Any]:
    """One measured run of `impl` in a fresh interpreter: the repo's python for ours, the
    Evidently virtualenv's python for Evidently."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        result_file = Path(fh.name)
    python = sys.executable if impl == "ours" else str(evidently_python)
    cmd = [python, str(Path(__file__).resolve()), "--worker", impl, "--input-dir", str(input_dir), "--result-file", str(result_file)]
    if verdicts:
        cmd.append("--verdicts")
    env = os.environ | {"DO_NOT_TRACK": "1"}  # Evidently's usage telemetry off
    try:
        subprocess.run(cmd, check=True, cwd=ROOT, env=env)
        return json.loads(result_file.read_text())
    finally:
        result_file.unlink(missing_ok=True)


def measure(input_dir: Path, repeats: int, budget_s: float, evidently_python: Path) -> dict[str, dict[str, Any]]:
    """Up to `repeats` interleaved rounds (one fresh-process run per implementation); a round
    is skipped when it would exceed `budget_s`."""
    runs: dict[str, list[dict[str, Any]]] = {impl: [] for impl in IMPLEMENTATIONS}
    began = time.perf_counter()
    for round_no in range(1, repeats + 1):
        last_round = sum(r[-1]["wall_s"] + 10 for r in runs.values()) if round_no > 1 else 0.0  # + import and load
        if round_no > 1 and time.perf_counter() - began + last_round > budget_s:
            print(f"    stopping after {round_no - 1} run(s) per implementation: the budget of {budget_s:.0f} s is used", flush=True)
            break
        for impl in IMPLEMENTATIONS:
            busy = wait_for_quiet(QUIET_WAIT_S)
            run = run_worker(impl, input_dir, round_no == 1, evidently_python) | {"background_busy_cores": busy}
            runs[impl].append(run)
            print(
                f"    {impl:<9} run {round_no}: {run['wall_s']:.2f} s wall, {run['cpu_s']:.2f} s CPU, "
                f"+{run['peak_mb_increase']:.0f} MB (background load {busy:.2f} cores)",
                flush=True,
            )
    return {impl: aggregate(impl_runs) for impl, impl_runs in runs.items()}


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    stages = runs[0]["stages_s"].keys()
    return {
        "wall_s": round(statistics.median(r["wall_s"] for r in runs), 3),
        "wall_s_runs": [round(r["wall_s"], 3) for r in runs],
        "cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 3),
        "repeats": len(runs),
        "stages_s": {s: round(statistics.median(r["stages_s"][s] for r in runs), 3) for s in stages},
        "peak_mb_increase": round(max(r["peak_mb_increase"] for r in runs), 1),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
        "baseline_rss_mb": round(statistics.median(r["baseline_rss_mb"] for r in runs), 1),
        "peak_method": runs[0]["peak_method"],
        "background_busy_cores_runs": [round(r["background_busy_cores"], 2) for r in runs],
        "versions": runs[0]["versions"],
        "verdicts": runs[0]["verdicts"],
    }


def compare(data: dict[str, Any], ours: dict[str, Any], evidently: dict[str, Any]) -> dict[str, Any]:
    """Per column: expected (shifted or not), ours, Evidently; agreement per group."""
    per_column = []
    for col in data["columns"]:
        name = col["column"]
        o, e = ours[name], evidently[name]
        per_column.append(
            {
                "column": name,
                "distribution": col["distribution"],
                "shift_sd": col["shift_sd"],
                "expected_drift": col["shifted"],
                "ours_drifted": o["drifted"],
                "ours_psi": round(o["psi"], 4),
                "ours_wasserstein": round(o["wasserstein"], 4),
                "ours_ks": round(o["ks"], 4),
                "evidently_drift_detected": e["drift_detected"],
                "evidently_method": e["method"],
                "evidently_threshold": e["threshold"],
                "evidently_score": round(e["score"], 4),
                "agree": o["drifted"] == e["drift_detected"],
                "wasserstein_abs_diff": abs(o["wasserstein"] - e["score"]) if e["method"] and "Wasserstein" in e["method"] else None,
            }
        )

    def group(shifted: bool) -> dict[str, Any]:
        rows = [r for r in per_column if r["expected_drift"] == shifted]
        return {
            "columns": len(rows),
            "ours_drifted": sum(r["ours_drifted"] for r in rows),
            "evidently_drifted": sum(bool(r["evidently_drift_detected"]) for r in rows),
            "agree": sum(r["agree"] for r in rows),
            "ours_correct": sum(r["ours_drifted"] == shifted for r in rows),
            "evidently_correct": sum(r["evidently_drift_detected"] == shifted for r in rows),
            "disagreements": [r["column"] for r in rows if not r["agree"]],
        }

    diffs = [r["wasserstein_abs_diff"] for r in per_column if r["wasserstein_abs_diff"] is not None]
    return {
        "shifted": group(True),
        "unshifted": group(False),
        "evidently_dataset": evidently.get("__dataset__"),
        "max_abs_diff_wasserstein_ours_vs_evidently": max(diffs) if diffs else None,
        "per_column": per_column,
    }


def goals(result: dict[str, Any]) -> dict[str, Any]:
    shifted = result["comparison"]["shifted"]
    return {
        "speedup_at_least": GOAL_SPEEDUP,
        "speedup": result["speedup"],
        "speedup_met": result["speedup"] >= GOAL_SPEEDUP,
        "same_verdicts_on_shifted": shifted["agree"] == shifted["columns"],
        "same_verdicts_on_unshifted": result["comparison"]["unshifted"]["agree"] == result["comparison"]["unshifted"]["columns"],
    }


def yes(flag: Any) -> str:
    return "—" if flag is None else ("drift" if flag else "no drift")


def markdown(report: dict[str, Any]) -> str:
    m, g, r = report["machine"], report["goals"], report["result"]
    o, e, c = r["ours"], r["evidently"], r["comparison"]
    ev = e["versions"]
    d = r["data"]
    lines = [
        f"Numeric drift, {d['current_rows']:,} current rows × {d['features']} features against a {d['reference_rows']:,}-row reference "
        f"({len(SHIFTED)} columns shifted by +0.5…+1.0 reference SD, the rest identically distributed; seed {d['seed']}). "
        f"Median of fresh-process runs per implementation; {m['cpu_count']} CPUs ({m['cpu_model']}), Python {m['python']}; "
        f"ours: polars {o['versions']['polars']}, numpy {o['versions']['numpy']}, scipy {o['versions']['scipy']}; "
        f"Evidently {ev['evidently']} (pandas {ev['pandas']}, numpy {ev['numpy']}, scipy {ev['scipy']}); {report['date'][:10]}.",
        "",
        "| implementation | what is timed | wall (s) | runs (s) | CPU (s) | peak MB (+ / abs) |",
        "|---|---|---:|---|---:|---:|",
        f"| ours | build_profile (10 bins) + feature_drift(DriftConfig()) | {o['wall_s']:.2f} | {', '.join(f'{x:.2f}' for x in o['wall_s_runs'])} "
        f"| {o['cpu_s']:.2f} | +{o['peak_mb_increase']:.0f} / {o['peak_rss_mb']:.0f} |",
        f"| Evidently {ev['evidently']} | Dataset.from_pandas ×2 + Report([DataDriftPreset()]).run | {e['wall_s']:.2f} | {', '.join(f'{x:.2f}' for x in e['wall_s_runs'])} "
        f"| {e['cpu_s']:.2f} | +{e['peak_mb_increase']:.0f} / {e['peak_rss_mb']:.0f} |",
        "",
        f"Speedup (Evidently wall / ours wall): **{r['speedup']:.1f}×**; CPU-time ratio {r['cpu_time_ratio']:.1f}×; "
        f"peak-memory increase ratio (Evidently / ours) {r['memory_ratio_evidently_over_ours']:.1f}×.",
        "",
        "Stages (median s): ours " + ", ".join(f"{k} {v:.2f}" for k, v in o["stages_s"].items())
        + "; Evidently " + ", ".join(f"{k} {v:.2f}" for k, v in e["stages_s"].items()) + ".",
        "",
        f"Per-column verdicts — ours: drifted = PSI > {report['drift_config']['psi_threshold']} and normalised Wasserstein > "
        f"{report['drift_config']['wasserstein_threshold']}; Evidently: its default for numeric columns here, "
        f"{c['per_column'][0]['evidently_method']} ≥ {c['per_column'][0]['evidently_threshold']}.",
        "",
        "| column | distribution | shift (SD) | ours PSI | ours W | ours KS | ours | Evidently score | Evidently | agree |",
        "|---|---|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for row in c["per_column"]:
        lines.append(
            f"| {row['column']} | {row['distribution']} | {row['shift_sd']:+.2f} | {row['ours_psi']:.3f} | {row['ours_wasserstein']:.3f} | {row['ours_ks']:.3f} "
            f"| {yes(row['ours_drifted'])} | {row['evidently_score']:.3f} | {yes(row['evidently_drift_detected'])} | {'yes' if row['agree'] else '**NO**'} |"
        )
    s, u = c["shifted"], c["unshifted"]
    diff = c["max_abs_diff_wasserstein_ours_vs_evidently"]
    lines += [
        "",
        f"Shifted columns: ours flags {s['ours_drifted']}/{s['columns']}, Evidently {s['evidently_drifted']}/{s['columns']}, "
        f"agree on {s['agree']}/{s['columns']}" + (f" (disagree: {', '.join(s['disagreements'])})" if s["disagreements"] else "") + ". "
        f"Unshifted columns: ours flags {u['ours_drifted']}/{u['columns']}, Evidently {u['evidently_drifted']}/{u['columns']}, "
        f"agree on {u['agree']}/{u['columns']}" + (f" (disagree: {', '.join(u['disagreements'])})" if u["disagreements"] else "") + ". "
        + ("" if diff is None else f"Our normalised Wasserstein and Evidently's score are the same statistic: largest difference {diff:.1e}. ")
        + "The two rules differ only for shifts between Evidently's 0.1 SD and the point where ours needs both W > 0.25 and PSI > 0.2 "
        "(about 0.5 SD for a normal feature): there Evidently reports drift and ours does not, by design.",
        "",
        f"Goals (reported, not asserted): ≥ {g['speedup_at_least']:.0f}× faster than Evidently: "
        + ("met" if g["speedup_met"] else f"**not met** ({g['speedup']:.1f}×)")
        + "; same verdicts on the shifted columns: " + ("met" if g["same_verdicts_on_shifted"] else "**not met**") + ".",
        "",
        "Peak + = increase over the worker's RSS after imports and after reading the parquet files; abs = peak RSS of the worker process. "
        "Data loading and imports are not timed for either side.",
        "",
    ]
    loads = [b for impl in IMPLEMENTATIONS for b in r[impl]["background_busy_cores_runs"]]
    busy = sum(b >= QUIET_BUSY_CORES for b in loads)
    if busy or report.get("note"):
        lines += [
            " ".join(
                part for part in (
                    report.get("note") or "",
                    f"{busy} of {len(loads)} runs started while other processes kept ≥ {QUIET_BUSY_CORES} of the "
                    f"{m['cpu_count']} cores busy (per-run load in the JSON)." if busy else "",
                ) if part
            ),
            "",
        ]
    lines += [
        "Reproduce (Evidently is a bench-only extra in its own virtualenv; the repo's .venv is not touched; "
        "evidently 0.7.23 fails to import with pandas 3, hence the pandas pin):",
        "",
        "```",
        "python3.11 -m venv /work/evidently-venv",
        f"/work/evidently-venv/bin/{EVIDENTLY_PIP}",
        f".venv/bin/python bench/drift.py --current-rows {d['current_rows']} --reference-rows {d['reference_rows']} --repeats {report['repeats_requested']}",
        "```",
        "",
        "(`--evidently-python` or `EVIDENTLY_PYTHON` points at another virtualenv's python.)",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--current-rows", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3, help="fresh-process runs per implementation (median)")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for all measured runs before repeats are cut")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--evidently-python", type=Path, default=DEFAULT_EVIDENTLY_PYTHON, help="python of the Evidently virtualenv")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file (the .md is written next to it)")
    parser.add_argument("--note", default="", help="a remark stored with the results (e.g. about background load)")
    parser.add_argument("--worker", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--input-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--verdicts", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker, args.input_dir, args.result_file, args.verdicts)
        return
    if not args.evidently_python.exists():
        sys.exit(
            f"no Evidently virtualenv python at {args.evidently_python}; create it with\n"
            f"    python3.11 -m venv /work/evidently-venv\n    /work/evidently-venv/bin/{EVIDENTLY_PIP}"
        )
    from mlops_assets.core.drift import DriftConfig

    began = time.perf_counter()
    machine = machine_info() | {"openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"), "loadavg_at_start": list(os.getloadavg())}
    with tempfile.TemporaryDirectory(prefix="bench_drift_") as tmp:
        print(f"== generating {args.reference_rows:,} reference + {args.current_rows:,} current rows × {N_FEATURES} features", flush=True)
        t0 = time.perf_counter()
        data = generate(args.reference_rows, args.current_rows, args.seed, Path(tmp))
        print(f"   {data['parquet_mb']} MB parquet ({time.perf_counter() - t0:.1f} s)", flush=True)
        results = measure(Path(tmp), args.repeats, args.budget, args.evidently_python)
    ours, evidently = results["ours"], results["evidently"]
    comparison = compare(data, ours.pop("verdicts"), evidently.pop("verdicts"))
    result = {
        "data": data,
        "ours": ours,
        "evidently": evidently,
        "speedup": round(evidently["wall_s"] / ours["wall_s"], 2),
        "cpu_time_ratio": round(evidently["cpu_s"] / ours["cpu_s"], 2),
        "memory_ratio_evidently_over_ours": round(evidently["peak_mb_increase"] / max(ours["peak_mb_increase"], 1e-9), 2),
        "comparison": comparison,
    }
    cfg = DriftConfig()
    report = {
        "benchmark": "numeric drift: build_profile + feature_drift vs Evidently DataDriftPreset",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "repeats_requested": args.repeats,
        "machine": machine,
        "drift_config": {"psi_threshold": cfg.psi_threshold, "wasserstein_threshold": cfg.wasserstein_threshold, "bins": BINS},
        "evidently_install": f"/work/evidently-venv/bin/{EVIDENTLY_PIP}",
        "note": args.note,
        "result": result,
        "total_runtime_s": None,
    }
    report["goals"] = goals(result)
    report["total_runtime_s"] = round(time.perf_counter() - began, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')} in {report['total_runtime_s']} s")


if __name__ == "__main__":
    main()
