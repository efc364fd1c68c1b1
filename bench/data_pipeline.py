"""Benchmark of the pure data pipeline "landing -> splits": polars core vs a pandas reference.

    python bench/data_pipeline.py [--rows 100000 1000000] [--out bench/results/data_pipeline.json]

For each size the landing data is generated once (not timed): CSV bytes in several batch files
whose days overlap (so "latest batch wins" in the merge matters), with the usual feed defects
and some readings written as the spec's missing-value tokens ("NA", " null ", ...).
Each implementation then runs landing -> splits in a fresh subprocess per repetition
(`--worker`, hidden), so wall time and peak memory belong to that implementation alone:

    parse_batch -> clean_batch -> validate_clean -> merge_batches -> build_features -> time_split

Peak memory is the process's peak RSS (`getrusage(RUSAGE_SELF).ru_maxrss`, after resetting the
kernel's high-water mark via /proc/self/clear_refs when allowed) minus the RSS measured after
imports and after the input bytes are loaded. The two outputs are checked to be the same work
(split row counts and columns, cleaning/merge/feature report counts, lag, rolling, baseline
and rolling-temperature values on a sample, column sums) before any figure is written.

Writes the JSON to --out and a Markdown table next to it (data_pipeline.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mlops_assets.core.spec import DatasetSpec, load_spec  # noqa: E402  (no polars import)
from bench.harness import QUIET_BUSY_CORES, cpu_seconds, machine_info, peak_method, peak_rss_mb, reset_peak_rss, rss_mb, wait_for_quiet  # noqa: E402

IMPLEMENTATIONS = ("polars", "pandas")
WORKER_IMPORTS = {
    "polars": ("polars", *(f"mlops_assets.core.{m}" for m in ("ingest", "cleaning", "schemas", "history", "features", "splitting"))),
    "pandas": ("pandas", "bench.pandas_reference"),
}
SPLITS = ("train", "validation", "test")
DEFAULT_ROWS = (100_000, 1_000_000)
DEFAULT_OUT = ROOT / "bench" / "results" / "data_pipeline.json"
ROWS_PER_GROUP = 20_000  # ~834 days of hourly data per group: more rows = more groups
OVERLAP_DAYS = 3
TOKEN_RATE = 0.001  # share of target and first-feature readings written as a missing-value token
SAMPLE_ROWS = 500
LAG_TOLERANCE = 1e-6
SUM_TOLERANCE = 1e-9
QUIET_WAIT_S = 10.0  # longest wait for a quiet machine before a run
GOAL_SPEEDUP = 3.0
GOAL_PEAK_MB_AT_1M = 1024.0


# ============================================================================================
# data generation (parent process, not timed)


def shape_for(rows: int) -> tuple[int, int]:
    """(groups, days) giving about `rows` hourly rows: a fixed history length, more groups."""
    groups = max(2, round(rows / ROWS_PER_GROUP))
    return groups, math.ceil(rows / (24 * groups))


def generate_landing(spec: DatasetSpec, rows: int, files: int, seed: int, local_offsets: bool) -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
    """About `rows` hourly series rows as `files` CSV batch files in landing order. Feed
    defects are on; every file after the first also re-sends the previous file's last
    OVERLAP_DAYS days with revised targets, so the merge's "latest batch wins" decides
    real conflicts."""
    import polars as pl

    groups, days = shape_for(rows)
    batches, source = simulated_batches(spec, groups, days, files, seed)
    batches = with_resent_days(batches, spec)
    batches, tokens = with_missing_tokens(batches, spec, seed)
    encoded = [(name, to_csv_bytes(frame, spec, local_offsets)) for name, frame in batches]
    stacked = pl.concat([frame.select(spec.key_columns) for _, frame in batches])
    meta = {
        "generator": source,
        "groups": groups,
        "days": days,
        "series_rows": stacked.unique().height,
        "landed_rows": stacked.height,
        "landed_mb": round(sum(len(data) for _, data in encoded) / 2**20, 1),
        "resent_days_per_file": OVERLAP_DAYS,
        "missing_tokens_written": tokens,
        "timestamps": "local time with UTC offset" if local_offsets else "UTC, ISO-8601 with +00:00 (as the simulator writes)",
    }
    return encoded, meta


def simulated_batches(spec: DatasetSpec, groups: int, days: int, files: int, seed: int) -> tuple[list[tuple[str, Any]], str]:
    """The platform's simulator (defects and late corrections on), cut into `files` batches;
    the bench's own generator if the simulator cannot be imported."""
    batch_days = math.ceil(days / files)
    try:
        from mlops_assets.core import simulate
    except Exception as exc:  # noqa: BLE001 - any import problem means: use the fallback
        print(f"   mlops_assets.core.simulate unavailable ({exc!r}); using the bench's own generator", flush=True)
        frame = fallback_frame(spec, groups, days, seed)
        return split_by_days(frame, spec, batch_days), "bench fallback generator"
    config = simulate.SimulationConfig(
        start=simulate.DEFAULT_START, days=days, groups=groups, seed=seed, drift=0.0, defects=True, batch_days=batch_days, file_format="csv"
    )
    return simulate.simulate_batches(spec, config), "mlops_assets.core.simulate.simulate_batches (defects on)"


def split_by_days(frame: Any, spec: DatasetSpec, batch_days: int) -> list[tuple[str, Any]]:
    """Consecutive batches of `batch_days` days (fallback generator only)."""
    import polars as pl

    ts = pl.col(spec.timestamp)
    day = (ts - ts.min()).dt.total_days() // batch_days
    parts = frame.with_columns(day.alias("__part")).partition_by("__part", maintain_order=True, include_key=False)
    return [(f"bench_{i + 1:02d}.csv", part) for i, part in enumerate(parts)]


def with_resent_days(batches: list[tuple[str, Any]], spec: DatasetSpec) -> list[tuple[str, Any]]:
    """Prefix each batch after the first with the previous batch's last OVERLAP_DAYS days,
    targets revised by +1 %. The batch's own rows follow, so a correction the simulator
    placed in the batch still wins within the file."""
    import polars as pl

    ts, y = pl.col(spec.timestamp), pl.col(spec.target.column)
    out = [batches[0]]
    for (_, previous), (name, frame) in zip(batches, batches[1:]):
        cutoff = previous.get_column(spec.timestamp).max() - dt.timedelta(days=OVERLAP_DAYS)
        resent = previous.filter(ts > cutoff).with_columns(pl.when(y > 0).then((y * 1.01).round(1)).otherwise(y).alias(spec.target.column))
        out.append((name, pl.concat([resent, frame])))
    return out


def with_missing_tokens(
    batches: list[tuple[str, Any]], spec: DatasetSpec, seed: int
) -> tuple[list[tuple[str, Any]], int]:
    """About TOKEN_RATE of the target and first numeric feature readings replaced by the spec's
    non-empty missing-value tokens (some padded with spaces), as text; and how many."""
    import numpy as np
    import polars as pl

    tokens = [t for t in spec.missing_values if t]
    if not tokens:
        return batches, 0
    columns = [spec.target.column, *spec.numeric_columns[:1]]
    choices = np.array([*tokens, *(f" {t} " for t in tokens)])
    rng = np.random.default_rng(seed + 1)
    out, written = [], 0
    for name, frame in batches:
        replaced = []
        for col in columns:
            hit = rng.random(frame.height) < TOKEN_RATE
            written += int(hit.sum())
            token = pl.Series(rng.choice(choices, frame.height))
            replaced.append(pl.when(pl.Series(hit)).then(token).otherwise(pl.col(col).cast(pl.String)).alias(col))
        out.append((name, frame.with_columns(replaced)))
    return out, written


def to_csv_bytes(frame: Any, spec: DatasetSpec, local_offsets: bool) -> bytes:
    """CSV bytes with ISO-8601 timestamps: in UTC like the simulator writes them, or in the
    spec's zone with mixed UTC offsets (--local-offsets)."""
    import polars as pl

    ts = pl.col(spec.timestamp)
    if local_offsets:
        ts = ts.dt.convert_time_zone(spec.timezone)
    return frame.with_columns(ts.dt.strftime("%Y-%m-%dT%H:%M:%S%:z")).write_csv().encode("utf-8")


def fallback_frame(spec: DatasetSpec, groups: int, days: int, seed: int) -> Any:
    """Hourly series per group with daily/yearly cycles and feed defects: negative readings,
    spikes, missing values, missing hours and re-sent (partly corrected) rows."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    hours = days * 24
    n = groups * hours
    h = np.tile(np.arange(hours), groups)
    level = np.repeat(rng.uniform(500, 5000, groups), hours)
    daily, yearly = np.sin(2 * np.pi * (h % 24) / 24), np.sin(2 * np.pi * h / (24 * 365.25))
    load = level * (1 + 0.2 * daily + 0.1 * yearly) + rng.normal(0, 0.02, n) * level
    start = np.datetime64("2024-01-01T00:00:00", "us")
    data: dict[str, Any] = {spec.timestamp: start + h.astype("timedelta64[h]"), spec.target.column: load.round(1)}
    if spec.group:
        data[spec.group] = np.repeat([f"R{i:03d}" for i in range(groups)], hours)
    for j, col in enumerate(spec.numeric_features):
        lo = col.min if col.min is not None else 0.0
        hi = col.max if col.max is not None else lo + 100
        wave = 0.5 + 0.3 * np.sin(2 * np.pi * h / (24 * 365.25) + j) + rng.normal(0, 0.05, n)
        data[col.column] = np.clip(lo + (hi - lo) * wave, lo, hi).round(1)
    frame = pl.DataFrame(data).with_columns(pl.col(spec.timestamp).dt.replace_time_zone("UTC"))
    y = spec.target.column
    u = rng.random(n)
    frame = frame.with_columns(
        pl.when(pl.Series(u < 0.002)).then(-pl.col(y))  # negative meter readings
        .when(pl.Series((u >= 0.002) & (u < 0.0025))).then(pl.col(y) * 25)  # spikes
        .when(pl.Series((u >= 0.0025) & (u < 0.0045))).then(None)  # missing values
        .otherwise(pl.col(y))
        .alias(y)
    )
    frame = frame.filter(pl.Series(rng.random(n) >= 0.005))  # missing hours
    resent = frame.sample(fraction=0.003, seed=seed).with_columns(pl.col(y) * 1.001)
    return pl.concat([frame, resent]).sort(spec.timestamp, maintain_order=True).select(spec.required_columns)


# ============================================================================================
# the two pipelines (worker process)


def _stopwatch(timings: dict[str, float]) -> Callable[[str], None]:
    """`lap(stage)` adds the seconds since the previous lap to timings[stage]."""
    clock = [time.perf_counter()]

    def lap(stage: str) -> None:
        now = time.perf_counter()
        timings[stage] = timings.get(stage, 0.0) + now - clock[0]
        clock[0] = now

    return lap


def run_polars(files: list[tuple[str, bytes]], spec: DatasetSpec, timings: dict[str, float]) -> dict[str, Any]:
    """landing bytes -> splits with the platform's own core functions."""
    from mlops_assets.core.cleaning import clean_batch
    from mlops_assets.core.features import build_features
    from mlops_assets.core.history import merge_batches
    from mlops_assets.core.ingest import parse_batch
    from mlops_assets.core.schemas import validate_clean
    from mlops_assets.core.splitting import time_split

    lap = _stopwatch(timings)
    cleaned, reports = [], []
    for name, data in files:
        parsed = parse_batch(name, data)
        lap("parse")
        frame, report = clean_batch(parsed, spec, name)
        lap("clean")
        cleaned.append((name, validate_clean(frame, spec, name)))
        reports.append(report.to_dict())
        lap("validate")
    history, merge_report = merge_batches(cleaned, spec)
    lap("merge")
    features, feature_report = build_features(history, spec)
    lap("features")
    train, validation, test, _ = time_split(features, spec)
    lap("split")
    return {
        "train": train, "validation": validation, "test": test,
        "clean": reports, "merge": merge_report.to_dict(), "features": feature_report.to_dict(),
    }


def run_pandas(files: list[tuple[str, bytes]], spec: DatasetSpec, timings: dict[str, float]) -> dict[str, Any]:
    """landing bytes -> splits with the pandas reference."""
    from bench import pandas_reference as ref

    lap = _stopwatch(timings)
    cleaned, reports = [], []
    for name, data in files:
        parsed = ref.parse_batch(name, data)
        lap("parse")
        frame, report = ref.clean_batch(parsed, spec, name)
        lap("clean")
        cleaned.append((name, ref.validate_clean(frame, spec, name)))
        reports.append(report)
        lap("validate")
    history, merge_report = ref.merge_batches(cleaned, spec)
    lap("merge")
    features, feature_report = ref.build_features(history, spec)
    lap("features")
    train, validation, test, _ = ref.time_split(features, spec)
    lap("split")
    return {
        "train": train, "validation": validation, "test": test,
        "clean": reports, "merge": merge_report, "features": feature_report,
    }


# ============================================================================================
# what the parent compares (computed in the worker after the measurement)


def sample_positions(n: int) -> list[int]:
    """SAMPLE_ROWS evenly spaced row positions, first and last included."""
    if n <= SAMPLE_ROWS:
        return list(range(n))
    return sorted({round(i * (n - 1) / (SAMPLE_ROWS - 1)) for i in range(SAMPLE_ROWS)})


def sampled_columns(spec: DatasetSpec) -> list[str]:
    """The columns compared value by value on the sample: everything computed along the time
    axis (target and observed-feature lags, rolling statistics, rolling temperature, baselines)."""
    from bench import pandas_reference as ref

    return [
        *ref.lag_columns(spec), *ref.observed_lag_columns(spec), *ref.temperature_columns(spec), *ref.BASELINE_COLUMNS
    ]


def summarize(impl: str, out: dict[str, Any], spec: DatasetSpec) -> dict[str, Any]:
    """Row counts, columns, report counts, a keyed sample of the time-axis columns and column
    sums per split."""
    lags = sampled_columns(spec)
    summary: dict[str, Any] = {"counts": {}, "columns": {}, "samples": {}, "sums": {}}
    for split in SPLITS:
        frame = out[split]
        summary["counts"][split] = len(frame)
        summary["columns"][split] = list(frame.columns)
        numeric = [c for c in frame.columns if c not in (spec.group, spec.timestamp, *spec.categorical_features)]
        pick = sample_positions(len(frame))
        if impl == "polars":
            part = frame[pick]
            keys = part.get_column(spec.timestamp).dt.epoch("us").to_list()
            groups = part.get_column(spec.group).to_list() if spec.group else [None] * len(pick)
            values = {c: part.get_column(c).to_list() for c in lags}
            sums = {c: float(frame.get_column(c).cast(float).sum()) for c in numeric}
        else:
            import pandas as pd

            part = frame.iloc[pick]
            epoch = pd.Timestamp("1970-01-01", tz="UTC")
            keys = ((part[spec.timestamp] - epoch) // pd.Timedelta(microseconds=1)).astype("int64").tolist()
            groups = part[spec.group].tolist() if spec.group else [None] * len(pick)
            values = {c: part[c].astype(float).tolist() for c in lags}
            sums = {c: float(frame[c].astype(float).sum()) for c in numeric}
        summary["samples"][split] = {"keys": list(zip(groups, keys)), "values": values}
        summary["sums"][split] = sums
    summary["reports"] = report_counts(out)
    return summary


def report_counts(out: dict[str, Any]) -> dict[str, Any]:
    """The repair, merge and feature counts both implementations report."""
    clean, features = out["clean"], out["features"]
    tokens: dict[str, int] = {}
    for r in clean:
        for col, n in r["missing_tokens"].items():
            tokens[col] = tokens.get(col, 0) + n
    return {
        "clean_rows_out": sum(r["rows_out"] for r in clean),
        "missing_tokens": tokens,
        "out_of_order_rows": sum(r["out_of_order_rows"] for r in clean),
        "out_of_range_nulled": sum(sum(r["out_of_range_nulled"].values()) for r in clean),
        "spikes_nulled": sum(r["spikes_nulled"] for r in clean),
        "exact_duplicates_dropped": sum(r["exact_duplicates_dropped"] for r in clean),
        "conflicting_duplicates_dropped": sum(r["conflicting_duplicates_dropped"] for r in clean),
        "missing_steps": sum(r["missing_steps"] for r in clean),
        "merge_rows_out": out["merge"]["rows_out"],
        "superseded_rows": out["merge"]["superseded_rows"],
        "grid_rows": features["grid_rows"],
        "missing_target_values": features["missing_target_values"],
        "interpolated_target_points": features["interpolated_target_points"],
        "rows_without_target": features["rows_without_target"],
        "rows_without_required_history": features["rows_without_required_history"],
        "rows_with_partial_history": features["rows_with_partial_history"],
        "feature_rows_out": features["rows_out"],
        "feature_null_counts": features["feature_null_counts"],
    }


# ============================================================================================
# worker: one measured run in a fresh process


def read_landing(input_dir: Path) -> list[tuple[str, bytes]]:
    """The batch files, in landing (name) order, as (name, bytes)."""
    return [(p.name, p.read_bytes()) for p in sorted(input_dir.glob("*.csv"))]


def profiled(run: Callable[..., dict[str, Any]], profile_file: Path) -> Callable[..., dict[str, Any]]:
    """`run` under pyinstrument; the call tree is written as text to `profile_file`."""
    from pyinstrument import Profiler

    def wrapper(*args: Any) -> dict[str, Any]:
        profiler = Profiler(interval=0.001)
        profiler.start()
        try:
            return run(*args)
        finally:
            profiler.stop()
            profile_file.write_text(profiler.output_text(unicode=True, color=False, show_all=False))

    return wrapper


def worker(impl: str, input_dir: Path, result_file: Path, summary: bool, profile_file: Path | None = None) -> None:
    """Import, load the bytes, take the baseline, run once, record time and memory."""
    spec = load_spec()
    for module in WORKER_IMPORTS[impl]:  # imports belong to the baseline, not to the run
        importlib.import_module(module)
    run = run_polars if impl == "polars" else run_pandas
    if profile_file is not None:
        run = profiled(run, profile_file)
    files = read_landing(input_dir)
    gc.collect()
    baseline = rss_mb()
    reset = reset_peak_rss()
    timings: dict[str, float] = {}
    cpu_before = cpu_seconds()
    start = time.perf_counter()
    out = run(files, spec, timings)
    wall = time.perf_counter() - start
    cpu = cpu_seconds() - cpu_before
    peak = max(peak_rss_mb(), baseline)
    result = {
        "impl": impl,
        "wall_s": wall,
        "cpu_s": cpu,
        "stages_s": timings,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak,
        "peak_mb_increase": peak - baseline,
        "peak_method": peak_method(reset),
    }
    if summary:
        result["summary"] = summarize(impl, out, spec)
    result_file.write_text(json.dumps(result))


# ============================================================================================
# parent: repetitions, equivalence, output


def run_worker(impl: str, input_dir: Path, summary: bool, profile_file: Path | None = None) -> dict[str, Any]:
    """One measured run of `impl` in a fresh interpreter (optionally under pyinstrument)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        result_file = Path(fh.name)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", impl, "--input-dir", str(input_dir), "--result-file", str(result_file)]
    if summary:
        cmd.append("--summary")
    if profile_file is not None:
        cmd += ["--profile-file", str(profile_file)]
    try:
        subprocess.run(cmd, check=True, cwd=ROOT)
        return json.loads(result_file.read_text())
    finally:
        result_file.unlink(missing_ok=True)


def measure(input_dir: Path, repeats: int, budget_s: float) -> dict[str, dict[str, Any]]:
    """Up to `repeats` rounds of one fresh-process run per implementation, interleaved so a
    change in background load hits both; a round is skipped when it would exceed `budget_s`."""
    runs: dict[str, list[dict[str, Any]]] = {impl: [] for impl in IMPLEMENTATIONS}
    began = time.perf_counter()
    for round_no in range(1, repeats + 1):
        last_round = sum(r[-1]["wall_s"] + 3 for r in runs.values()) if round_no > 1 else 0.0
        if round_no > 1 and time.perf_counter() - began + last_round > budget_s:
            print(f"    stopping after {round_no - 1} run(s) per implementation: the budget of {budget_s:.0f} s is used", flush=True)
            break
        for impl in IMPLEMENTATIONS:
            busy = wait_for_quiet(QUIET_WAIT_S)
            run = run_worker(impl, input_dir, summary=round_no == 1) | {"background_busy_cores": busy}
            runs[impl].append(run)
            print(
                f"    {impl:<6} run {round_no}: {run['wall_s']:.2f} s wall, {run['cpu_s']:.2f} s CPU, "
                f"+{run['peak_mb_increase']:.0f} MB (background load {busy:.2f} cores)",
                flush=True,
            )
    return {impl: aggregate(impl_runs) for impl, impl_runs in runs.items()}


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median wall, CPU and stage times; the largest peak of all runs."""
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
        "summary": runs[0]["summary"],
    }


def value_diff(x: float | None, y: float | None, relative: bool) -> float:
    """Difference of two sampled values (relative to 1 + |x| if asked); missing on both sides
    (None from polars, NaN from pandas) is no difference, on one side an infinite one."""
    x_missing, y_missing = x is None or math.isnan(x), y is None or math.isnan(y)
    if x_missing or y_missing:
        return 0.0 if x_missing and y_missing else math.inf
    return abs(x - y) / (1.0 + abs(x) if relative else 1.0)


def check_equivalence(a: dict[str, Any], b: dict[str, Any], spec: DatasetSpec) -> dict[str, Any]:
    """Assert both implementations did the same work; return what was compared."""
    assert a["counts"] == b["counts"], f"split row counts differ: polars {a['counts']} pandas {b['counts']}"
    assert a["columns"] == b["columns"], f"split columns differ: polars {a['columns']} pandas {b['columns']}"
    assert a["reports"] == b["reports"], f"report counts differ: polars {a['reports']} pandas {b['reports']}"
    lag_24h = f"{spec.target.column}_lag_24h"
    max_diff: dict[str, float] = {}
    for split in SPLITS:
        sa, sb = a["samples"][split], b["samples"][split]
        assert [tuple(k) for k in sa["keys"]] == [tuple(k) for k in sb["keys"]], f"{split}: sampled keys differ"
        for col, values in sa["values"].items():
            diffs = [value_diff(x, y, relative=col != lag_24h) for x, y in zip(values, sb["values"][col])]
            max_diff[col] = max(max_diff.get(col, 0.0), max(diffs, default=0.0))
    assert max_diff[lag_24h] <= LAG_TOLERANCE, f"{lag_24h} differs by {max_diff[lag_24h]}"
    bad = {c: d for c, d in max_diff.items() if d > LAG_TOLERANCE}
    assert not bad, f"lag/rolling/baseline columns differ on the sample: {bad}"
    sum_diff = max(
        abs(x - b["sums"][s][c]) / max(1.0, abs(x)) for s in SPLITS for c, x in a["sums"][s].items()
    )
    assert sum_diff <= SUM_TOLERANCE, f"column sums differ (max relative {sum_diff})"
    return {
        "split_rows": a["counts"],
        "report_counts": a["reports"],
        "sampled_rows_per_split": {s: len(a["samples"][s]["keys"]) for s in SPLITS},
        "max_abs_diff_lag_24h": max_diff[lag_24h],
        "max_rel_diff_lag_and_rolling": max(max_diff.values()),
        "sampled_columns": sorted(max_diff),
        "max_rel_diff_column_sums": sum_diff,
        "columns_summed": len(a["sums"]["train"]),
        "passed": True,
    }


def bench_size(
    spec: DatasetSpec, rows: int, files: int, repeats: int, budget_s: float, seed: int, local_offsets: bool,
    profile: tuple[str, ...] = (), profile_dir: Path = DEFAULT_OUT.parent,
) -> dict[str, Any]:
    """Generate once, measure both implementations, check they agree."""
    print(f"== {rows:,} rows: generating {files} batch files", flush=True)
    t0 = time.perf_counter()
    batches, meta = generate_landing(spec, rows, files, seed, local_offsets)
    print(f"   {meta['landed_rows']:,} landed rows, {meta['landed_mb']} MB CSV ({time.perf_counter() - t0:.1f} s)", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_landing_") as tmp:
        for name, data in batches:
            (Path(tmp) / name).write_bytes(data)
        del batches
        results = measure(Path(tmp), repeats, budget_s)
        for impl in profile:
            target = profile_dir / f"profile_{impl}_{rows}.txt"
            run_worker(impl, Path(tmp), summary=False, profile_file=target)
            print(f"   pyinstrument profile of {impl} (not timed) -> {target}", flush=True)
    equivalence = check_equivalence(results["polars"].pop("summary"), results["pandas"].pop("summary"), spec)
    print(f"   equivalence checks passed: split rows {equivalence['split_rows']}", flush=True)
    return {
        "rows": rows,
        "files": files,
        "data": meta,
        "polars": results["polars"],
        "pandas": results["pandas"],
        "speedup": round(results["pandas"]["wall_s"] / results["polars"]["wall_s"], 2),
        "cpu_time_ratio": round(results["pandas"]["cpu_s"] / results["polars"]["cpu_s"], 2),
        "memory_ratio_pandas_over_polars": round(results["pandas"]["peak_mb_increase"] / max(results["polars"]["peak_mb_increase"], 1e-9), 2),
        "equivalence": equivalence,
    }


def goals(sizes: list[dict[str, Any]]) -> dict[str, Any]:
    """The targets, reported (not asserted)."""
    largest = max(sizes, key=lambda s: s["rows"])
    million = next((s for s in sizes if s["rows"] >= 1_000_000), None)
    return {
        "speedup_at_least": GOAL_SPEEDUP,
        "speedup_met": all(s["speedup"] >= GOAL_SPEEDUP for s in sizes),
        "peak_mb_at_1m_at_most": GOAL_PEAK_MB_AT_1M,
        "peak_met": None if million is None else million["polars"]["peak_rss_mb"] <= GOAL_PEAK_MB_AT_1M,
        "peak_increase_met": None if million is None else million["polars"]["peak_mb_increase"] <= GOAL_PEAK_MB_AT_1M,
        "largest_rows": largest["rows"],
    }


def markdown(report: dict[str, Any]) -> str:
    """A small Markdown section for the README: results, goals, and where the time goes."""
    m, g = report["machine"], report["goals"]
    lines = [
        "Landing CSV bytes → train/validation/test (parse, clean, validate, merge, features, split), "
        f"median of {report['repeats_requested']} fresh-process runs per implementation; {m['cpu_count']} CPUs "
        f"({m['cpu_model']}), Python {m['python']}, polars {m['polars']}, pandas {m['pandas']}; {report['date'][:10]}.",
        "",
        "| rows | files | polars (s) | pandas (s) | speedup | polars peak MB (+ / abs) | pandas peak MB (+ / abs) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in report["sizes"]:
        p, q = size["polars"], size["pandas"]
        runs = "" if p["repeats"] == q["repeats"] == report["repeats_requested"] else f" ({p['repeats']} runs)"
        lines.append(
            f"| {size['rows']:,} | {size['files']} | {p['wall_s']:.2f}{runs} | {q['wall_s']:.2f}{runs} | {size['speedup']:.1f}× "
            f"| +{p['peak_mb_increase']:.0f} / {p['peak_rss_mb']:.0f} | +{q['peak_mb_increase']:.0f} / {q['peak_rss_mb']:.0f} |"
        )
    largest = max(report["sizes"], key=lambda size: size["rows"])
    stages = largest["polars"]["stages_s"]
    lines += [
        "",
        f"Where the time goes at {largest['rows']:,} rows (median s per stage):",
        "",
        "| stage | " + " | ".join(stages) + " |",
        "|---|" + "---:|" * len(stages),
        *(f"| {impl} | " + " | ".join(f"{largest[impl]['stages_s'][st]:.2f}" for st in stages) + " |" for impl in IMPLEMENTATIONS),
        "",
        f"Goals: ≥ {g['speedup_at_least']:.0f}× faster than pandas: {'met' if g['speedup_met'] else '**not met**'}; "
        "≤ 1 GB peak at 1M rows: "
        + ("not measured" if g["peak_met"] is None else ("met" if g["peak_met"] else "**not met**") + " (absolute peak RSS)")
        + ". Peak + = increase over the process's RSS after imports and after loading the input bytes; abs = peak RSS. "
        "Both implementations give the same split row counts and columns, cleaning/merge/feature counts, "
        "lag, rolling and baseline values and column sums (checked on every run of the script).",
        "",
    ]
    loads = [b for size in report["sizes"] for impl in IMPLEMENTATIONS for b in size[impl]["background_busy_cores_runs"]]
    busy = sum(b >= QUIET_BUSY_CORES for b in loads)
    if busy:
        lines += [
            f"Note: {busy} of {len(loads)} runs started while other processes kept ≥ {QUIET_BUSY_CORES} of the "
            f"{m['cpu_count']} cores busy (per-run load in the JSON); medians damp but do not remove that noise.",
            "",
        ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=list(DEFAULT_ROWS), help="series sizes to benchmark")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file (the .md is written next to it)")
    parser.add_argument("--files", type=int, default=4, help="batch files per size")
    parser.add_argument("--repeats", type=int, default=3, help="fresh-process runs per implementation (median)")
    parser.add_argument("--budget", type=float, default=150.0, help="seconds per size (both implementations) before repeats are cut")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--local-offsets", action="store_true", help="write timestamps in the spec's zone with mixed UTC offsets")
    parser.add_argument("--profile", choices=[*IMPLEMENTATIONS, "both"], help="also write a pyinstrument profile per size (extra, untimed run)")
    parser.add_argument("--worker", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--profile-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--input-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--summary", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker, args.input_dir, args.result_file, args.summary, args.profile_file)
        return
    spec = load_spec()
    began = time.perf_counter()
    profile = tuple(IMPLEMENTATIONS if args.profile == "both" else [args.profile] if args.profile else [])
    sizes = [
        bench_size(spec, rows, args.files, args.repeats, args.budget, args.seed, args.local_offsets, profile, args.out.parent)
        for rows in args.rows
    ]
    report = {
        "benchmark": "landing CSV bytes -> train/validation/test splits",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "spec": spec.name,
        "repeats_requested": args.repeats,
        "machine": machine_info(("polars", "pandas", "numpy")),
        "sizes": sizes,
        "goals": goals(sizes),
        "total_runtime_s": round(time.perf_counter() - began, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')} in {report['total_runtime_s']} s")


if __name__ == "__main__":
    main()
