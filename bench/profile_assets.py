"""Profile single assets with pyinstrument, against an existing MLOPS_HOME.

    python bench/profile_assets.py --home DIR --assets xgboost_model lstm_model [--partition KEY]

Each asset is materialized alone (its upstream values are read from DIR's storage, as a re-run
in the UI would) in a fresh process under pyinstrument; the call tree is written to
bench/results/profiles/<asset>.txt (and .html). Use it on the MLOPS_HOME that
`bench/end_to_end.py --keep-home DIR` leaves behind, to see where the slowest assets spend
their time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import RESULTS_DIR, load_average  # noqa: E402

PROFILE_DIR = RESULTS_DIR / "profiles"


def job_for(defs, asset: str) -> str:
    """A job whose selection contains the asset (the asset job Dagster builds if none does)."""
    import dagster as dg

    key = dg.AssetKey(asset)
    for name in ("training_job", "monitoring_job", "ingestion_job", "preparation_job"):
        job = defs.resolve_job_def(name)
        if key in job.asset_layer.executable_asset_keys:
            return name
    raise ValueError(f"no job materializes {asset}")


def profile_one(asset: str, partition: str | None, out_dir: Path) -> None:
    """In this process: materialize `asset` alone under pyinstrument."""
    import dagster as dg
    from pyinstrument import Profiler

    from mlops_assets.definitions import build_definitions
    from mlops_assets.runner import local_instance, quiet_run_config, step_errors

    instance = local_instance()
    defs = build_definitions()
    job = defs.resolve_job_def(job_for(defs, asset))
    profiler = Profiler(interval=0.002)
    start = time.perf_counter()
    profiler.start()
    result = job.execute_in_process(
        instance=instance, partition_key=partition, asset_selection=[dg.AssetKey(asset)], raise_on_error=False, run_config=quiet_run_config(),
        tags={"mlops/trigger": "bench-profile"},
    )
    profiler.stop()
    wall = time.perf_counter() - start
    header = f"# {asset}: materialized alone in {wall:.1f} s (success: {result.success}{'' if result.success else f', {step_errors(result)}'}); load average {load_average()}\n\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{asset}.txt").write_text(header + profiler.output_text(unicode=True, color=False, show_all=False))
    (out_dir / f"{asset}.html").write_text(profiler.output_html())
    print(header.strip(), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="MLOPS_HOME with the upstream assets already materialized")
    parser.add_argument("--assets", nargs="+", required=True)
    parser.add_argument("--partition", help="partition key, for partitioned assets")
    parser.add_argument("--out-dir", type=Path, default=PROFILE_DIR)
    parser.add_argument("--training-config", type=Path, help="MLOPS_TRAINING_CONFIG for the profiled run")
    parser.add_argument("--profile", default="full", help="MLOPS_PROFILE for the profiled run")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        profile_one(args.assets[0], args.partition, args.out_dir)
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "DAGSTER_"))}
    env |= {"MLOPS_HOME": str(args.home), "MLOPS_PROFILE": args.profile, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax"), "MLOPS_SETTLE_SECONDS": "0"}
    if args.training_config:
        env["MLOPS_TRAINING_CONFIG"] = str(args.training_config)
    for asset in args.assets:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--home", str(args.home), "--assets", asset, "--out-dir", str(args.out_dir)]
        if args.partition:
            cmd += ["--partition", args.partition]
        subprocess.run(cmd, env=env, cwd=ROOT, check=True)


if __name__ == "__main__":
    main()
