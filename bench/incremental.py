"""Incremental path benchmark: one new daily batch through ingestion and monitoring, after 1, 2
and 4 years of history.

    python bench/incremental.py [--years 1 2 4] [--batches 3] [--out bench/results/incremental.json]

Setup per history length (not timed as part of the figure): an empty MLOPS_HOME, one history file
of `years` × 365 days for 8 subregions landed and ingested, and `training_job` run with the `fast`
training profile, so a champion exists. Then, for each of `--batches` consecutive new days, a
fresh process does what the sensors do for a new file:

    land the day's file -> ingestion_job (raw_load, clean_load) -> monitoring_job (batch_predictions, drift_report)

Timed per batch: each run's wall time in the worker, each step's time from the event log
(STEP_START to STEP_SUCCESS), and the whole fresh process (interpreter, imports, Definitions,
both runs). The batches run round-robin over the history lengths (1 y, 2 y, 4 y, 1 y, ...), so
a change in the shared machine's load hits every length alike; the process's CPU time is
recorded too. The budget: ingestion + monitoring under 10 s and flat in the history length.

The runs execute in the worker's process (`execute_in_process`), as the CLI and the tests run
them; a deployment adds a process per run and per step (bench/executors.py measures that).

Afterwards `batch_predictions` and `drift_report` of the longest history's last batch are
re-materialized under pyinstrument (bench/results/profiles/). For information, the worker also
times a refresh of `load_history` afterwards (the eager
preparation asset that merges every clean batch; it feeds retraining, not the per-batch path).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import RESULTS_DIR, load_note, machine_line, run_measured, write_report  # noqa: E402

GROUPS = 8
DEFAULT_YEARS = (1, 2, 4)
DEFAULT_OUT = RESULTS_DIR / "incremental.json"
BUDGET_S = 10.0
FLAT_TOLERANCE = 1.5  # longest history may cost at most this factor of the shortest
PACKAGES = ("dagster", "mlflow", "polars", "xgboost")


# ============================================================================================
# workers


def _history_days(years: int) -> int:
    return years * 365


def setup_worker(years: int) -> dict[str, Any]:
    """Land and ingest `years` of history, train a champion (fast profile)."""
    from mlops_assets import settings
    from mlops_assets.core.simulate import DEFAULT_START, SimulationConfig, write_batches
    from mlops_assets.core.spec import load_spec
    from mlops_assets.definitions import build_definitions
    from mlops_assets.runner import ingest_landed, local_instance, run_job

    instance = local_instance()
    defs = build_definitions()
    clock = time.perf_counter()
    write_batches(load_spec(), SimulationConfig(start=DEFAULT_START, days=_history_days(years), groups=GROUPS), Path(settings.landing_dir()))
    ingested = ingest_landed(defs, instance)
    ingest_s = time.perf_counter() - clock
    clock = time.perf_counter()
    result = run_job(defs, "training_job", instance)
    outputs = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    candidate = result.output_for_node("candidate_model") if "candidate_model" in outputs else {}
    return {
        "ingested": len(ingested.succeeded),
        "ingest_s": round(ingest_s, 2),
        "training_s": round(time.perf_counter() - clock, 2),
        "training_success": result.success,
        "champion_promoted": "champion_model" in outputs,
        "champion_kind": next((r["model"] for r in candidate.get("comparison", []) if r["chosen"]), None),
    }


def batch_worker(years: int, index: int) -> dict[str, Any]:
    """One new daily file through ingestion and monitoring, in this (fresh) process."""
    began = time.perf_counter()
    from mlops_assets import settings
    from mlops_assets.core.simulate import DEFAULT_START, SimulationConfig, write_batches
    from mlops_assets.core.spec import load_spec
    from mlops_assets.definitions import build_definitions
    from mlops_assets.runner import ingest_landed, local_instance, quiet_run_config

    from bench.end_to_end import step_times

    instance = local_instance()
    defs = build_definitions()
    startup_s = time.perf_counter() - began
    day = DEFAULT_START + timedelta(days=_history_days(years) + index)
    write_batches(load_spec(), SimulationConfig(start=day, days=1, groups=GROUPS, seed=1000 + index, batch_days=1), Path(settings.landing_dir()))
    clock = time.perf_counter()
    ingested = ingest_landed(defs, instance)
    ingestion_s = time.perf_counter() - clock
    if len(ingested.succeeded) != 1:
        raise RuntimeError(f"expected one new batch, got {ingested}")
    key = ingested.succeeded[0]
    clock = time.perf_counter()
    monitoring = defs.resolve_job_def("monitoring_job").execute_in_process(partition_key=key, instance=instance, raise_on_error=False, run_config=quiet_run_config())
    monitoring_s = time.perf_counter() - clock
    if not monitoring.success:
        from mlops_assets.runner import step_errors

        raise RuntimeError(f"monitoring_job failed: {step_errors(monitoring)}")
    steps: dict[str, float] = {}
    for run in instance.get_runs(limit=2):
        steps |= step_times(instance, run.run_id)
    import dagster as dg

    clock = time.perf_counter()
    refresh = defs.resolve_job_def("preparation_job").execute_in_process(
        instance=instance, raise_on_error=False, run_config=quiet_run_config(), asset_selection=[dg.AssetKey("load_history")]
    )
    history_refresh_s = time.perf_counter() - clock
    return {
        "batch": key,
        "startup_s": round(startup_s, 3),
        "ingestion_run_s": round(ingestion_s, 3),
        "monitoring_run_s": round(monitoring_s, 3),
        "path_s": round(ingestion_s + monitoring_s, 3),
        "steps_s": {k: round(v, 3) for k, v in steps.items()},
        "load_history_refresh_s": round(history_refresh_s, 3) if refresh.success else None,
    }


# ============================================================================================
# parent


def worker_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "DAGSTER_"))}
    return env | {"MLOPS_HOME": str(home), "MLOPS_PROFILE": "fast", "MLOPS_SETTLE_SECONDS": "0", "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax")}


def call_worker(mode: str, years: int, home: Path, index: int = 0, timeout_s: float = 1800.0) -> dict[str, Any]:
    result_file = home / f"result_{mode}_{index}.json"
    log_file = RESULTS_DIR / "logs" / f"incremental_{years}y_{mode}_{index}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", mode, "--years", str(years), "--index", str(index), "--result-file", str(result_file)]
    measured = run_measured(cmd, env=worker_env(home), timeout_s=timeout_s, log_file=log_file)
    if not result_file.exists():
        raise RuntimeError(f"{mode} worker for {years} years failed (returncode {measured['returncode']}); see {log_file}")
    return measured | json.loads(result_file.read_text())


def set_up(years: int) -> tuple[Path, dict[str, Any]]:
    """A fresh MLOPS_HOME with `years` of history ingested and a champion."""
    print(f"== {years} year(s) of history ({GROUPS} groups, {_history_days(years) * 24 * GROUPS:,} rows)", flush=True)
    home = Path(tempfile.mkdtemp(prefix=f"bench_incr_{years}y_"))
    setup = call_worker("setup", years, home)
    print(f"   setup: ingest {setup['ingest_s']} s, training {setup['training_s']} s, champion {setup['champion_kind']} (promoted: {setup['champion_promoted']})", flush=True)
    return home, setup


def run_batch(years: int, home: Path, index: int) -> dict[str, Any]:
    run = call_worker("batch", years, home, index)
    print(f"   {years} y, batch {index + 1}: ingestion {run['ingestion_run_s']:.2f} s + monitoring {run['monitoring_run_s']:.2f} s = {run['path_s']:.2f} s "
          f"(process {run['wall_s']:.1f} s, CPU {run['cpu_s']:.1f} s, peak {run['peak_rss_mb']:.0f} MB, load {run['load_average_before'][0]}); steps {run['steps_s']}", flush=True)
    return run


def summarize(years: int, setup: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the batches of one history length."""
    steps = runs[0]["steps_s"].keys()
    return {
        "years": years,
        "history_rows": _history_days(years) * 24 * GROUPS,
        "setup": {k: setup[k] for k in ("ingest_s", "training_s", "training_success", "champion_promoted", "champion_kind", "wall_s", "peak_rss_mb")},
        "batches": len(runs),
        "path_s": round(statistics.median(r["path_s"] for r in runs), 3),
        "path_s_runs": [r["path_s"] for r in runs],
        "ingestion_run_s": round(statistics.median(r["ingestion_run_s"] for r in runs), 3),
        "monitoring_run_s": round(statistics.median(r["monitoring_run_s"] for r in runs), 3),
        "process_s": round(statistics.median(r["wall_s"] for r in runs), 3),
        "process_cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 3),
        "startup_s": round(statistics.median(r["startup_s"] for r in runs), 3),
        "steps_s": {s: round(statistics.median(r["steps_s"].get(s, 0.0) for r in runs), 3) for s in steps},
        "outside_steps_s": round(statistics.median(r["path_s"] - sum(r["steps_s"].values()) for r in runs), 3),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "load_history_refresh_s": statistics.median(r["load_history_refresh_s"] or 0.0 for r in runs),
        "load_average_runs": [r["load_average_before"] for r in runs],
    }


def profile_monitoring(home: Path, partition: str) -> None:
    """pyinstrument profiles of the two monitoring assets for the last batch of the longest
    history (bench/profile_assets.py -> bench/results/profiles/)."""
    import subprocess

    print(f"   profiling batch_predictions, drift_report for {partition} -> bench/results/profiles/", flush=True)
    cmd = [sys.executable, str(ROOT / "bench" / "profile_assets.py"), "--home", str(home), "--profile", "fast", "--partition", partition, "--assets", "batch_predictions", "drift_report"]
    subprocess.run(cmd, cwd=ROOT, check=False)


def bench_histories(years: list[int], batches: int, keep: bool = False, profile: bool = True) -> list[dict[str, Any]]:
    """Set every history up first, then run the batches round-robin over the history lengths,
    so a change in the machine's load hits all of them alike."""
    homes: dict[int, tuple[Path, dict[str, Any]]] = {}
    try:
        for y in years:
            homes[y] = set_up(y)
        runs: dict[int, list[dict[str, Any]]] = {y: [] for y in years}
        for index in range(batches):
            for y in years:
                runs[y].append(run_batch(y, homes[y][0], index))
        if profile:
            longest = max(years)
            profile_monitoring(homes[longest][0], runs[longest][-1]["batch"])
        return [summarize(y, homes[y][1], runs[y]) for y in years]
    finally:
        for y, (home, _) in homes.items():
            if keep:
                print(f"   kept MLOPS_HOME for {y} y: {home}", flush=True)
            else:
                import shutil

                shutil.rmtree(home, ignore_errors=True)


def goals(histories: list[dict[str, Any]]) -> dict[str, Any]:
    shortest, longest = histories[0], histories[-1]
    ratio = longest["path_s"] / shortest["path_s"] if shortest["path_s"] else None
    return {
        "under_s": BUDGET_S,
        "under_met": all(h["path_s"] < BUDGET_S for h in histories),
        "flat_ratio_longest_over_shortest": None if ratio is None else round(ratio, 2),
        "flat_tolerance": FLAT_TOLERANCE,
        "flat_met": ratio is not None and ratio <= FLAT_TOLERANCE,
    }


def markdown(report: dict[str, Any]) -> str:
    hs = report["histories"]
    steps = list(dict.fromkeys(s for h in hs for s in h["steps_s"]))
    lines = [
        f"One new daily batch ({GROUPS} subregions × 24 h) through `ingestion_job` (raw_load, clean_load) and `monitoring_job` "
        f"(batch_predictions, drift_report), median of {hs[0]['batches']} batches, each in a fresh process, run round-robin over the history lengths; "
        "champion trained with the `fast` profile; "
        f"{machine_line(report['machine'])}; {report['date'][:10]}.",
        "",
        "| history | history rows | champion | ingestion + monitoring (s) | " + " | ".join(f"{s} (s)" for s in steps)
        + " | outside steps (s) | fresh process incl. imports: wall / CPU (s) | peak MB | load_history refresh (s, not on the path) | load avg (1 min) |",
        "|---|---:|---|---:|" + "---:|" * len(steps) + "---:|---:|---:|---:|---|",
    ]
    for h in hs:
        lines.append(
            f"| {h['years']} y | {h['history_rows']:,} | {h['setup']['champion_kind']} | {h['path_s']:.2f} | "
            + " | ".join(f"{h['steps_s'].get(s, 0.0):.2f}" for s in steps)
            + f" | {h['outside_steps_s']:.2f} | {h['process_s']:.1f} / {h.get('process_cpu_s', float('nan')):.1f} | {h['peak_rss_mb']:.0f} | {h['load_history_refresh_s']:.2f} | {', '.join(str(x[0]) for x in h['load_average_runs'])} |"
        )
    g = report["goals"]
    lines += [
        "",
        f"Budget: under {g['under_s']:.0f} s: {'met' if g['under_met'] else '**not met**'}; flat in history "
        f"(longest / shortest ≤ {g['flat_tolerance']}): {'met' if g['flat_met'] else '**not met**'} (ratio {g['flat_ratio_longest_over_shortest']}).",
        "",
        "Outside steps = the two runs' wall time minus their steps: run set-up, resource initialisation (the MLflow client: "
        "importing mlflow and opening its SQLite store) and event-log writes. The fresh process adds interpreter start-up, imports and "
        "the Definitions, and the informational `load_history` refresh.",
        "",
        load_note([x for h in hs for x in h["load_average_runs"]]),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--years", type=int, nargs="+", default=list(DEFAULT_YEARS))
    parser.add_argument("--batches", type=int, default=3, help="new daily batches per history length (median)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--no-profile", action="store_true", help="skip the pyinstrument profiles of the monitoring assets")
    parser.add_argument("--keep", action="store_true", help="keep each history's MLOPS_HOME (for bench/profile_assets.py)")
    parser.add_argument("--worker", choices=("setup", "batch"), help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        result = setup_worker(args.years[0]) if args.worker == "setup" else batch_worker(args.years[0], args.index)
        args.result_file.write_text(json.dumps(result, default=str))
        return
    began = time.perf_counter()
    histories = bench_histories(sorted(args.years), args.batches, args.keep, not args.no_profile)
    write_report(args.out, "one new daily batch: ingestion + monitoring", began, PACKAGES, {"histories": histories}, goals(histories), markdown)


if __name__ == "__main__":
    main()
