"""End-to-end benchmark of the demo graph: what `make demo` (`mlops-assets demo`) runs, at several sizes.

    python bench/end_to_end.py [--sizes default 100k 1m 5m] [--out bench/results/end_to_end.json]

Each size runs in a fresh process with its own empty MLOPS_HOME (SQLite Dagster instance,
SQLite MLflow store, local files), exactly the demo's path (mlops_assets/demo.py):
land a history file + 7 daily files + one broken file, one `ingestion_job` run per file (the
`new_data_sensor` path, run synchronously), then `training_job` (preparation, three candidates,
fairness, SHAP, registry, promotion).

Rows are hourly series rows (groups × days × 24) before the simulator's feed defects:

| size | groups × days | rows |
|---|---|---:|
| default | 8 × 180 (the demo's defaults) | 34,560 |
| 100k | 8 × 521 | 100,032 |
| 1m | 40 × 1,042 | 1,000,320 |
| 5m | 200 × 1,042 | 5,001,600 |

Per asset (per step) time comes from the Dagster event log: STEP_START to STEP_SUCCESS (or
STEP_FAILURE) of every step, summed over the runs (raw_load/clean_load once per file). A step's
time includes loading its inputs and storing its outputs (our IO manager). Orchestration is
everything else inside the runs: run creation, planning, event-log writes between steps,
resource setup; its share = (Σ run wall − Σ step time) / Σ run wall. Landing the demo files (the
simulator) and building the Definitions are reported separately.

Training settings: `default` and `100k` use the demo's `full` profile. At 1M and 5M rows the full
randomized search (8 XGBoost candidates × 3 folds, up to 400 trees of depth 8) is estimated at
over an hour on 2 cores (bench/training.py), so those sizes run with the reduced search in
bench/large_training.yaml (MLOPS_TRAINING_CONFIG): the same graph and code, fewer candidates and
folds. The JSON records which settings each size used.

`--executor multiprocess` runs `training_job` as a deployment launches it instead: the code
location loaded from its module and each step in its own process (MLOPS_EXECUTOR=multiprocess,
start method forkserver), so memory is returned after every step; the demo's in-process run keeps every step's allocations in one process.

Peak memory: the largest single process (the worker's ru_maxrss, or a step process polled every
0.2 s) and the polled sum over the process tree. In-process runs also give each step the
worker's peak RSS while it ran (sampled every 50 ms).

After the `--profile-size` run (100k by default), the `--profile-slowest` slowest assets are
re-materialized alone on the same MLOPS_HOME under pyinstrument (bench/profile_assets.py):
bench/results/profiles/<asset>.txt.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import RESULTS_DIR, load_note, machine_line, run_measured, write_report, write_results  # noqa: E402

LARGE_CONFIG = ROOT / "bench" / "large_training.yaml"
# size -> (groups, days, training settings file or None for the demo's full profile)
SIZES: dict[str, tuple[int, int, Path | None]] = {
    "default": (8, 180, None),
    "100k": (8, 521, None),
    "1m": (40, 1042, LARGE_CONFIG),
    "5m": (200, 1042, LARGE_CONFIG),
}
DEFAULT_SIZES = ("default", "100k", "1m", "5m")
DEFAULT_OUT = RESULTS_DIR / "end_to_end.json"
BUDGET_DEFAULT_S = 180.0
BUDGET_PEAK_MB_1M = 2048.0
PACKAGES = ("dagster", "mlflow", "polars", "xgboost", "keras", "jax", "shap", "fairlearn", "scikit-learn")


# ============================================================================================
# worker: the demo in this process, timed from the event log


def step_intervals(instance: Any, run_id: str) -> list[tuple[str, float, float]]:
    """(step, STEP_START time, STEP_SUCCESS/STEP_FAILURE time) for every step of one run."""
    starts: dict[str, float] = {}
    out = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in starts:
            out.append((event.step_key, starts.pop(event.step_key), entry.timestamp))
    return out


def step_times(instance: Any, run_id: str) -> dict[str, float]:
    """Seconds from STEP_START to STEP_SUCCESS/STEP_FAILURE per step of one run."""
    out: dict[str, float] = {}
    for step, start, end in step_intervals(instance, run_id):
        out[step] = out.get(step, 0.0) + end - start
    return out


class RssSampler:
    """This process's RSS every `interval` s in a background thread, to give each step its peak."""

    def __init__(self, interval: float = 0.05) -> None:
        import threading

        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        from bench.harness import rss_mb

        while not self._stop.is_set():
            self.samples.append((time.time(), rss_mb()))
            self._stop.wait(interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def peak_between(self, start: float, end: float) -> float:
        return max((mb for t, mb in self.samples if start <= t <= end), default=0.0)


def _recon_job(name: str) -> Any:
    """A job reconstructable from the code location's module, as the webserver and daemon load it."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    return ReconstructableRepository.for_module("mlops_assets.definitions", "defs", working_directory=str(ROOT)).get_reconstructable_job(name)


def ingest_landed_deployed(defs: Any, instance: Any) -> Any:
    """What `runner.ingest_landed` does, but each ingestion run with the deployment's executor
    (each step in its own process)."""
    import dagster as dg

    from mlops_assets.defs.ingestion.discovery import discover_batches, received_keys, running_keys
    from mlops_assets.defs.partitions import BATCHES
    from mlops_assets.runner import IngestSummary, quiet_run_config

    landing = defs.resources["landing"]
    found = discover_batches(landing, received_keys(instance, landing), {}, running_keys(instance))
    summary = IngestSummary(duplicates=[f.name for f in found.already_known])
    known = set(instance.get_dynamic_partitions(BATCHES))
    instance.add_dynamic_partitions(BATCHES, [f.key for f in found.new if f.key not in known])
    for landed in found.new:
        with dg.execute_job(_recon_job("ingestion_job"), instance=instance, run_config=quiet_run_config(), tags={"dagster/partition": landed.key}) as result:
            if result.success:
                summary.succeeded.append(landed.key)
            elif landing.is_quarantined(landed.key):
                summary.quarantined[landed.key] = "quarantined (reason.json in the quarantine folder)"
            else:
                summary.failed[landed.key] = "failed, will retry (see the run in the Dagster UI)"
    return summary


def run_training_job(defs: Any, instance: Any, executor: str) -> Any:
    """`training_job` as the demo runs it (in this process), or as a deployment launches it:
    the code location loaded from its module, each step in its own process (the parent sets
    MLOPS_EXECUTOR=multiprocess, forkserver)."""
    from mlops_assets.demo import MAIN_JOB
    from mlops_assets.runner import quiet_run_config, run_job

    if executor == "in_process":
        return run_job(defs, MAIN_JOB, instance)
    import dagster as dg

    return dg.execute_job(_recon_job(MAIN_JOB), instance=instance, run_config=quiet_run_config())


def run_demo_timed(days: int, groups: int, executor: str = "in_process") -> dict[str, Any]:
    """The demo (mlops_assets/demo.py) in stages, each timed; steps from the event log."""
    t_import = time.perf_counter()
    from mlops_assets.defs.partitions import BATCHES
    from mlops_assets.definitions import build_definitions
    from mlops_assets.console import Console
    from mlops_assets.demo import land_demo_data
    from mlops_assets.runner import ingest_landed, local_instance

    timings: dict[str, float] = {"import_s": time.perf_counter() - t_import}
    sampler = RssSampler()
    clock = time.perf_counter()
    instance = local_instance()
    defs = build_definitions()
    timings["definitions_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    land_demo_data(days, groups, corrupt=True, console=Console(stream=io.StringIO()))
    timings["landing_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    ingested = ingest_landed(defs, instance) if executor == "in_process" else ingest_landed_deployed(defs, instance)
    timings["ingestion_runs_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    result = run_training_job(defs, instance, executor)
    timings["training_run_s"] = time.perf_counter() - clock
    sampler.stop()
    per_asset: dict[str, float] = {}
    peak_mb: dict[str, float] = {}
    runs = []
    for run in instance.get_runs():
        intervals = step_intervals(instance, run.run_id)
        runs.append({"job": run.job_name, "status": run.status.value, "steps_s": {s: round(b - a, 3) for s, a, b in intervals}})
        for step, start, end in intervals:
            per_asset[step] = per_asset.get(step, 0.0) + end - start
            peak_mb[step] = max(peak_mb.get(step, 0.0), sampler.peak_between(start, end))
    runs_wall = timings["ingestion_runs_s"] + timings["training_run_s"]
    in_steps = sum(per_asset.values())
    from mlops_assets.runner import step_errors

    return {
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "ingested": len(ingested.succeeded),
        "quarantined": len(ingested.quarantined),
        "batches": len(instance.get_dynamic_partitions(BATCHES)),
        "training_success": result.success,
        "failed_steps": step_errors(result),
        "per_asset_s": {k: round(v, 3) for k, v in sorted(per_asset.items(), key=lambda kv: -kv[1])},
        # Only in-process runs: with a process per step the sampler sees the orchestrating process alone.
        "per_asset_peak_rss_mb": {k: round(v, 1) for k, v in peak_mb.items()} if executor == "in_process" else {},
        "runs_wall_s": round(runs_wall, 3),
        "in_steps_s": round(in_steps, 3),
        "orchestration_s": round(runs_wall - in_steps, 3),
        "orchestration_share": round((runs_wall - in_steps) / runs_wall, 4) if runs_wall else None,
        "runs": len(runs),
        "champion": _champion_summary(result) if executor == "in_process" else {"promoted": any(e.asset_key.to_user_string() == "champion_model" for e in result.get_asset_materialization_events())},
        "executor": executor,
    }


def _champion_summary(result: Any) -> dict[str, Any]:
    outputs = {e.asset_key.to_user_string(): e for e in result.get_asset_materialization_events()}
    if "candidate_model" not in outputs:
        return {}
    candidate = result.output_for_node("candidate_model")
    return {"chosen": next((r["model"] for r in candidate["comparison"] if r["chosen"]), None), "promoted": "champion_model" in outputs}


def worker(args: argparse.Namespace) -> None:
    os.environ.setdefault("MLOPS_SETTLE_SECONDS", "0")
    result = run_demo_timed(args.days, args.groups, args.executor)
    args.result_file.write_text(json.dumps(result, indent=1, default=str))


# ============================================================================================
# parent


def worker_env(home: Path, config: Path | None) -> dict[str, str]:
    env = {**os.environ, "MLOPS_HOME": str(home), "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax"), "MLOPS_SETTLE_SECONDS": "0", "MLOPS_PROFILE": "full"}
    for name in ("DAGSTER_HOME", "MLOPS_TRACKING_URI", "MLOPS_ARTIFACT_ROOT", "MLOPS_LANDING_DIR", "MLOPS_STORAGE_DIR", "MLOPS_QUARANTINE_DIR", "MLOPS_DEPLOYMENT"):
        env.pop(name, None)
    if config is not None:
        env["MLOPS_TRAINING_CONFIG"] = str(config)
    else:
        env.pop("MLOPS_TRAINING_CONFIG", None)
    return env


def bench_size(label: str, timeout_s: float, keep_home: Path | None, max_rss_mb: float | None = None, profile_slowest: int = 0, executor: str = "in_process") -> dict[str, Any]:
    """One fresh-process demo run at this size."""
    groups, days, config = SIZES[label]
    rows = groups * days * 24
    print(f"== {label}: {groups} groups × {days} days = {rows:,} rows ({'full profile' if config is None else config.name}; training_job {executor})", flush=True)
    home = keep_home or Path(tempfile.mkdtemp(prefix=f"bench_e2e_{label}_"))
    result_file = home / "end_to_end_result.json"
    log_file = RESULTS_DIR / "logs" / f"end_to_end_{label}_{executor}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--days", str(days), "--groups", str(groups), "--result-file", str(result_file), "--executor", executor]
    env = worker_env(home, config)
    if executor == "multiprocess":  # the Definitions' executor (mlops_assets/defs/jobs.py): a process per step
        env |= {"MLOPS_EXECUTOR": "multiprocess", "MLOPS_EXECUTOR_START_METHOD": os.environ.get("MLOPS_EXECUTOR_START_METHOD", "forkserver")}
    measured = run_measured(cmd, env=env, timeout_s=timeout_s, log_file=log_file, max_rss_mb=max_rss_mb)
    out: dict[str, Any] = {
        "size": label, "executor": executor, "max_concurrent_steps": os.environ.get("MLOPS_EXECUTOR_MAX_CONCURRENT") or (None if executor == "in_process" else "one per CPU"), "groups": groups, "days": days, "rows": rows,
        "training_settings": "full profile" if config is None else f"full profile + {config.relative_to(ROOT)}",
        "mlops_home": str(home), **measured,
        "peak_rss_mb_largest_process": max(measured["peak_rss_mb_process"], measured["peak_rss_mb_largest_process_polled"]),
    }
    if result_file.exists():
        out |= json.loads(result_file.read_text())
    else:
        stop = f"stopped above {max_rss_mb:.0f} MB" if measured["stopped_over_memory_limit_mb"] else f"timed out after {timeout_s:.0f} s" if measured["timed_out"] else f"returncode {measured['returncode']}"
        out["error"] = f"worker did not finish ({stop}); log: {log_file.relative_to(ROOT)}"
    if profile_slowest and "error" not in out:
        out["profiles"] = profile_slowest_assets(out, home, config, profile_slowest)
    if keep_home is None:
        import shutil

        shutil.rmtree(home, ignore_errors=True)
        out["mlops_home"] = None
    print(f"   {out['wall_s']:.1f} s wall, peak {out['peak_rss_mb']:.0f} MB, load {out['load_average_before']} -> {out['load_average_after']}"
          + (f", orchestration {out['orchestration_share']:.1%}" if out.get("orchestration_share") is not None else f"; {out.get('error')}"), flush=True)
    return out


def profile_slowest_assets(size: dict[str, Any], home: Path, config: Path | None, count: int) -> list[dict[str, Any]]:
    """pyinstrument profiles of the `count` slowest assets (not checks) of this size, each
    re-materialized alone on the same MLOPS_HOME (bench/profile_assets.py)."""
    import subprocess

    assets = [a for a in size["per_asset_s"] if not a.startswith(("features_", "load_history_", "test_set_", "train_set_"))][:count]
    cmd = [sys.executable, str(ROOT / "bench" / "profile_assets.py"), "--home", str(home), "--assets", *assets]
    if config is not None:
        cmd += ["--training-config", str(config)]
    print(f"   profiling {', '.join(assets)} -> bench/results/profiles/", flush=True)
    subprocess.run(cmd, cwd=ROOT, check=False, env={**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax")})
    return [{"asset": a, "seconds_in_graph": size["per_asset_s"][a], "profile": f"bench/results/profiles/{a}.txt"} for a in assets]


def goals(sizes: list[dict[str, Any]]) -> dict[str, Any]:
    by = {s["size"]: s for s in sizes if s.get("executor", "in_process") == "in_process"}
    deployed = {s["size"]: s for s in sizes if s.get("executor", "in_process") != "in_process"}
    default, million, million_deployed = by.get("default"), by.get("1m"), deployed.get("1m")
    return {
        "default_under_s": BUDGET_DEFAULT_S,
        "default_met": None if default is None or "error" in default else default["wall_s"] < BUDGET_DEFAULT_S,
        "peak_mb_at_1m_under": BUDGET_PEAK_MB_1M,
        "peak_1m_met": None if million is None or "error" in million else _largest(million) < BUDGET_PEAK_MB_1M,
        "peak_1m_process_per_step_met": None if million_deployed is None or "error" in million_deployed else _largest(million_deployed) < BUDGET_PEAK_MB_1M,
    }


def markdown(report: dict[str, Any]) -> str:
    sizes = report["sizes"]
    lines = [
        f"End-to-end demo graph (`mlops-assets demo`: land files, {sizes[0].get('runs', 10) - 1 if sizes else 9} ingestion runs, `training_job`), "
        f"one fresh process per size; {machine_line(report['machine'])}; {report['date'][:10]}.",
        "",
        "| size | rows | training settings | wall (s) | peak MB (largest process / process tree) | ingestion runs (s) | training_job (s) | orchestration share | slowest assets (s) | load avg (1 min) before → after |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for s in sizes:
        if "error" in s:
            lines.append(f"| {_label(s)} | {s['rows']:,} | {s['training_settings']} | {s['wall_s']:.0f} (not finished) | {_largest(s):.0f} / {s['peak_rss_mb']:.0f} | – | – | – | {s['error']} | {s['load_average_before'][0]} → {s['load_average_after'][0]} |")
            continue
        t = s["timings_s"]
        slow = ", ".join(f"{k} {v:.1f}" for k, v in list(s["per_asset_s"].items())[:3])
        lines.append(
            f"| {_label(s)} | {s['rows']:,} | {s['training_settings']} | {s['wall_s']:.1f} | {_largest(s):.0f} / {s['peak_rss_mb']:.0f} | {t['ingestion_runs_s']:.1f} "
            f"| {t['training_run_s']:.1f} | {_share(s)} | {slow} | {s['load_average_before'][0]} → {s['load_average_after'][0]} |"
        )
    done = [s for s in sizes if "error" not in s]
    if done:
        assets = list(dict.fromkeys(a for s in done for a in s["per_asset_s"]))
        lines += ["", "Time per asset in s (summed over runs; includes loading inputs and storing outputs) / the main process's peak RSS in MB while the step ran:", "",
                  "| asset | " + " | ".join(_label(s) for s in done) + " |", "|---|" + "---:|" * len(done)]
        for asset in assets:
            lines.append(f"| {asset} | " + " | ".join(_asset_cell(s, asset) for s in done) + " |")
        lines.append(
            "| *outside steps (orchestration)* | " + " | ".join(f"{s['orchestration_s']:.2f}" if s["orchestration_s"] >= 0 else "n/a" for s in done) + " |"
        )
        lines.append(
            "| *landing the demo files (simulator)* | " + " | ".join(f"{s['timings_s']['landing_s']:.2f}" for s in done) + " |"
        )
        lines.append(
            "| *imports + Definitions* | " + " | ".join(f"{s['timings_s']['import_s'] + s['timings_s']['definitions_s']:.2f}" for s in done) + " |"
        )
    g = report["goals"]
    lines += [
        "",
        f"Budgets: default demo under {g['default_under_s']:.0f} s: {_verdict(g['default_met'])}; largest process under {g['peak_mb_at_1m_under']:.0f} MB at 1M rows: "
        f"{_verdict(g['peak_1m_met'])} with every step in one process (the demo), {_verdict(g.get('peak_1m_process_per_step_met'))} with a process per step (MLOPS_EXECUTOR=multiprocess). "
        "Wall = the whole fresh process (imports, landing the files, all runs). Peak: the largest single process (the worker's ru_maxrss, or a step process polled every 0.2 s) / the polled sum over the process tree (it adds the serving smoke test's fresh process in `registered_model` and, with a process per step, the fork server and the steps running at the same time). Orchestration share = (Σ run wall − Σ step time) / Σ run wall.",
        "",
        load_note([s["load_average_before"] for s in sizes] + [s["load_average_after"] for s in sizes]),
        "",
    ]
    return "\n".join(lines)


def _share(size: dict[str, Any]) -> str:
    """Orchestration share; not meaningful when steps ran in parallel (their times overlap)."""
    if size["in_steps_s"] > size["runs_wall_s"]:
        return "n/a (steps in parallel)"
    return f"{size['orchestration_share']:.1%}"


def _largest(size: dict[str, Any]) -> float:
    """Peak RSS of the largest single process (older results: the worker's own)."""
    return size.get("peak_rss_mb_largest_process", size["peak_rss_mb_process"])


def _key(size: dict[str, Any]) -> tuple[str, str]:
    return size["size"], size.get("executor", "in_process")


def _label(size: dict[str, Any]) -> str:
    if size.get("executor", "in_process") == "in_process":
        return size["size"]
    one = size.get("max_concurrent_steps") == "1"
    return f"{size['size']}, process per step{' (one at a time)' if one else ''}"


def _asset_cell(size: dict[str, Any], asset: str) -> str:
    seconds = size["per_asset_s"].get(asset, 0.0)
    peak = size.get("per_asset_peak_rss_mb", {}).get(asset)
    return f"{seconds:.2f}" + ("" if not peak else f" / {peak:.0f}")


def _verdict(flag: bool | None) -> str:
    return "not measured" if flag is None else ("met" if flag else "**not met**")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(DEFAULT_SIZES))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--timeout", type=float, default=2400.0, help="seconds per size before the run is stopped")
    parser.add_argument("--max-rss-mb", type=float, default=14000.0, help="stop a size whose process tree passes this RSS (shared machine)")
    parser.add_argument("--profile-slowest", type=int, default=3, help="pyinstrument profiles of this many slowest assets at --profile-size")
    parser.add_argument("--profile-size", choices=list(SIZES), default="100k")
    parser.add_argument("--keep-home", type=Path, help="use (and keep) this MLOPS_HOME; only with one size (for profiling)")
    parser.add_argument("--merge", action="store_true", help="keep other sizes' results already in --out")
    parser.add_argument("--executor", choices=("in_process", "multiprocess"), default="in_process",
                        help="run the jobs in this process (as `mlops-assets demo`) or as a deployment with MLOPS_EXECUTOR=multiprocess does (a process per step, forkserver)")
    parser.add_argument("--render-only", action="store_true", help="rewrite the .md from the existing --out JSON; run nothing")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--days", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--groups", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return
    if args.render_only:
        report = json.loads(args.out.read_text())
        report["goals"] = goals(report["sizes"])
        write_results(args.out, report, markdown(report))
        return
    began = time.perf_counter()
    previous = json.loads(args.out.read_text())["sizes"] if args.merge and args.out.exists() else []
    measured = [
        bench_size(label, args.timeout, args.keep_home, args.max_rss_mb, args.profile_slowest if label == args.profile_size and args.executor == "in_process" else 0, args.executor)
        for label in args.sizes
    ]
    fresh = {_key(s) for s in measured}
    sizes = sorted([s for s in previous if _key(s) not in fresh] + measured, key=lambda s: (s.get("executor", "in_process") != "in_process", list(SIZES).index(s["size"])))
    write_report(args.out, "end-to-end demo graph (mlops-assets demo)", began, PACKAGES, {"sizes": sizes}, goals(sizes), markdown)


if __name__ == "__main__":
    main()
