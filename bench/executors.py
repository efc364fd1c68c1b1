"""Benchmark of Dagster executors on the real graph: what each costs in run time and memory.

    python bench/executors.py [--jobs preparation_job training_job] [--repeats 2]
                              [--executors in_process spawn forkserver] [--out bench/results/executors.json]

Each measurement is a fresh process (`--worker`, hidden) with its own MLOPS_HOME and a
persistent SQLite Dagster instance: it lands a small simulated history (--groups groups x
--days days, hourly, one CSV file), ingests it in-process (not timed), then runs the job
through `dagster.execute_job` on the code location module (`mlops_assets.definitions`, as the
webserver and daemon load it) with the executor chosen by MLOPS_EXECUTOR, exactly as a
deployment chooses it (defs/jobs.py):

    in_process   MLOPS_EXECUTOR=in_process: every step in the run's process, one after another
    spawn        MLOPS_EXECUTOR=multiprocess, MLOPS_EXECUTOR_START_METHOD=spawn (Dagster's default)
    forkserver   MLOPS_EXECUTOR=multiprocess, MLOPS_EXECUTOR_START_METHOD=forkserver (our default;
                 the fork server imports the code location once, each step is forked from it)

Multiprocess runs use at most one step process per CPU (MLOPS_EXECUTOR_MAX_CONCURRENT unset).
The training profile is `fast` (MLOPS_PROFILE=fast), so fixed costs (process start, imports,
resource set-up) are a large share: this is the overhead a small incremental run pays.

Per run: wall time of `execute_job` (the run), the sum of the step durations the run's events
record (STEP_START to STEP_SUCCESS: the steps' own work, including each process's imports),
CPU time and peak RSS of the whole process tree (`bench.harness.run_measured`), and the load
average before and after. Executors are interleaved (one of each per round), so a busy
neighbour slows all of them alike; the machine is shared, and every figure is stored with the
load it was taken under. Nothing is asserted: numbers go to the JSON and Markdown files.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import load_average, load_note, machine_info, machine_line, now_utc, run_measured, wait_for_quiet, write_results  # noqa: E402

EXECUTORS = {
    "in_process": {"MLOPS_EXECUTOR": "in_process"},
    "spawn": {"MLOPS_EXECUTOR": "multiprocess", "MLOPS_EXECUTOR_START_METHOD": "spawn"},
    "forkserver": {"MLOPS_EXECUTOR": "multiprocess", "MLOPS_EXECUTOR_START_METHOD": "forkserver"},
}
JOBS = ("preparation_job", "training_job")
DEFAULT_OUT = ROOT / "bench" / "results" / "executors.json"
CODE_LOCATION = ("mlops_assets.definitions", "defs")
QUIET_WAIT_S = 20.0


# ============================================================================================
# worker: one run in a fresh process


def worker(job: str, groups: int, days: int, result_file: Path) -> None:
    """Land and ingest (untimed), then run `job` with the executor the environment selects."""
    import dagster as dg
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from mlops_assets import settings
    from mlops_assets.core.simulate import SimulationConfig, write_batches
    from mlops_assets.core.spec import load_spec
    from mlops_assets.definitions import defs
    from mlops_assets.runner import ingest_landed

    settings.ensure_local_dirs()
    write_batches(load_spec(), SimulationConfig(days=days, groups=groups, seed=11), Path(settings.landing_dir()))
    with dg.DagsterInstance.from_config(str(settings.dagster_home())) as instance:
        ingested = ingest_landed(defs, instance)
        if not ingested.succeeded:
            raise SystemExit(f"ingestion failed: {ingested.quarantined}")
        recon = ReconstructableRepository.for_module(*CODE_LOCATION).get_reconstructable_job(job)
        start = time.perf_counter()
        result = dg.execute_job(recon, instance)
        wall = time.perf_counter() - start
        steps = step_durations(instance, result.run_id)
        report = {
            "success": result.success,
            "run_wall_s": round(wall, 3),
            "executor": defs.resolve_job_def(job).executor_def.name,
            "steps": len(steps),
            "step_seconds_sum": round(sum(steps.values()), 3),
            "step_seconds": {k: round(v, 3) for k, v in sorted(steps.items())},
            "step_processes": len(step_pids(instance, result.run_id)),
        }
    result_file.write_text(json.dumps(report))


def step_durations(instance, run_id: str) -> dict[str, float]:
    """Seconds from STEP_START to STEP_SUCCESS (or STEP_FAILURE) of each step of a run."""
    import dagster as dg

    started: dict[str, float] = {}
    durations: dict[str, float] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or not record.step_key:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            started[record.step_key] = record.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE) and record.step_key in started:
            durations[record.step_key] = record.timestamp - started[record.step_key]
    return durations


def step_pids(instance, run_id: str) -> set[int]:
    import dagster as dg

    return {r.dagster_event.pid for r in instance.all_logs(run_id) if r.dagster_event and r.dagster_event.event_type == dg.DagsterEventType.STEP_START}


# ============================================================================================
# parent: rounds of fresh-process runs


def run_worker(job: str, executor: str, args: argparse.Namespace, scratch: Path, tag: str) -> dict[str, Any]:
    home = scratch / tag / "mlops"
    home.mkdir(parents=True)
    result_file = scratch / tag / "result.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "DAGSTER_"))}
    env.update({
        "MLOPS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"), "MLOPS_PROFILE": "fast",
        "MLOPS_SETTLE_SECONDS": "0", "MLOPS_LOG_LEVEL": "WARNING", "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax"),
        **EXECUTORS[executor],
    })
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", job, "--groups", str(args.groups), "--days", str(args.days), "--result-file", str(result_file)]
    measured = run_measured(cmd, env=env, timeout_s=args.timeout, log_file=scratch / tag / "worker.log")
    if measured["returncode"] != 0 or not result_file.exists():
        tail = (scratch / tag / "worker.log").read_text()[-2000:]
        return {**measured, "success": False, "error": tail}
    return {**measured, **json.loads(result_file.read_text())}


def measure(args: argparse.Namespace) -> dict[str, dict[str, list[dict[str, Any]]]]:
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {job: {e: [] for e in args.executors} for job in args.jobs}
    with tempfile.TemporaryDirectory(prefix="bench_executors_") as tmp:
        for job in args.jobs:
            for round_no in range(1, args.repeats + 1):
                for executor in args.executors:
                    busy = wait_for_quiet(QUIET_WAIT_S)
                    run = run_worker(job, executor, args, Path(tmp), f"{job}_{executor}_{round_no}")
                    run["background_busy_cores_before"] = round(busy, 2)
                    runs[job][executor].append(run)
                    status = "ok" if run.get("success") else "FAILED"
                    print(
                        f"{job:<16} {executor:<10} round {round_no}: {status}, run {run.get('run_wall_s', float('nan')):.1f} s, "
                        f"process {run['wall_s']:.1f} s, CPU {run['cpu_s']:.1f} s, peak {run['peak_rss_mb']:.0f} MB, "
                        f"load {run['load_average_before'][0]:.1f}->{run['load_average_after'][0]:.1f}",
                        flush=True,
                    )
    return runs


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if r.get("success")]
    if not ok:
        return {"success": False, "runs": len(runs), "error": runs[-1].get("error", "")[-500:]}

    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in ok), 2)

    return {
        "success": len(ok) == len(runs),
        "runs": len(runs),
        "executor": ok[0]["executor"],
        "run_wall_s": median("run_wall_s"),
        "run_wall_s_runs": [r["run_wall_s"] for r in ok],
        "process_wall_s": median("wall_s"),
        "cpu_s": median("cpu_s"),
        "step_seconds_sum": median("step_seconds_sum"),
        "steps": ok[0]["steps"],
        "step_processes": ok[0]["step_processes"],
        "peak_rss_mb_tree": round(max(r["peak_rss_mb"] for r in ok), 1),
        "load_average_before_runs": [r["load_average_before"] for r in runs],
        "load_average_after_runs": [r["load_average_after"] for r in runs],
        "background_busy_cores_before_runs": [r["background_busy_cores_before"] for r in runs],
    }


def markdown(report: dict[str, Any]) -> str:
    data = report["data"]
    lines = [
        f"Run time of the real graph per executor, `fast` training profile, {data['groups']} groups × {data['days']} days hourly "
        f"({data['rows']:,} rows, one batch file); median of {report['repeats']} fresh-process runs, executors interleaved; "
        f"{machine_line(report['machine'])}; {report['date'][:10]}.",
        "",
        "| job | executor | steps | run wall (s) | vs in-process | sum of step times (s) | peak RSS, process tree (MB) | runs (s) |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for job, by_executor in report["results"].items():
        base = by_executor.get("in_process", {}).get("run_wall_s")
        for executor, agg in by_executor.items():
            if not agg.get("run_wall_s"):
                lines.append(f"| {job} | {executor} | – | failed | – | – | – | {agg.get('error', '')[:80]} |")
                continue
            ratio = f"{agg['run_wall_s'] / base:.2f}×" if base else "–"
            lines.append(
                f"| {job} | {executor} | {agg['steps']} | {agg['run_wall_s']:.1f} | {ratio} | {agg['step_seconds_sum']:.1f} | "
                f"{agg['peak_rss_mb_tree']:.0f} | {', '.join(f'{x:.1f}' for x in agg['run_wall_s_runs'])} |"
            )
    lines += [
        "",
        "Run wall = `execute_job` from call to return (ingestion before it is not timed). Sum of step times = STEP_START to "
        "STEP_SUCCESS of every step: the steps' own work (a step process logs STEP_START after its start-up and imports, so "
        "run wall minus what the steps did is the executor's overhead; multiprocess steps overlap, up to one per CPU). Peak "
        "RSS is polled over the worker and all its step processes. (CPU time is in the JSON as `cpu_s` but counts only "
        "processes the worker reaped: it misses the fork server's children.)",
        "",
        load_note([r for job in report["results"].values() for agg in job.values() for r in agg.get("load_average_before_runs", [])]),
    ]
    if report.get("note"):
        lines += ["", f"Note: {report['note']}"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", nargs="+", choices=JOBS, default=list(JOBS))
    parser.add_argument("--executors", nargs="+", choices=list(EXECUTORS), default=list(EXECUTORS))
    parser.add_argument("--repeats", type=int, default=2, help="fresh-process runs per job and executor (median)")
    parser.add_argument("--groups", type=int, default=3)
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before one worker is stopped")
    parser.add_argument("--note", default="", help="a sentence stored with the results (e.g. what else ran on the machine)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file (the .md is written next to it)")
    parser.add_argument("--worker", choices=JOBS, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker, args.groups, args.days, args.result_file)
        return
    started = now_utc()
    machine_before = machine_info(("dagster", "mlflow", "polars", "xgboost", "keras", "jax"))
    runs = measure(args)
    report = {
        "benchmark": "run overhead of Dagster executors on the real graph (fast profile)",
        "date": started,
        "data": {"groups": args.groups, "days": args.days, "rows": args.groups * args.days * 24, "generator": "mlops_assets.core.simulate.write_batches (defects on)"},
        "repeats": args.repeats,
        "machine": machine_before,
        "load_average_end": load_average(),
        "results": {job: {e: aggregate(r) for e, r in by_executor.items()} for job, by_executor in runs.items()},
        "runs": runs,
        "note": args.note,
    }
    write_results(args.out, report, markdown(report))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
