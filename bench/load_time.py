"""Code-location load time: `import mlops_assets.definitions` in a fresh interpreter.

    python bench/load_time.py [--repeats 7] [--out bench/results/load_time.json]

This is what `dagster dev`, the daemon and every run worker pay before doing anything. Each
repetition is a new process (`python -c "import mlops_assets.definitions"`), timed from the
parent (interpreter start-up included) and from inside (the import alone). One extra run under
`-X importtime` lists the top-level packages that take the most import time, and which of the
heavy ML libraries (imported inside functions only, by design) were loaded anyway.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import RESULTS_DIR, load_average, load_note, machine_info, machine_line, now_utc, write_results  # noqa: E402

MODULE = "mlops_assets.definitions"
HEAVY = ("mlflow", "shap", "keras", "jax", "xgboost", "fairlearn", "sklearn", "torch", "tensorflow", "pandas", "scipy", "matplotlib")
BUDGET_S = 2.0
DEFAULT_OUT = RESULTS_DIR / "load_time.json"
PROBE = (
    "import sys, time, json; t = time.perf_counter(); import {module}; d = time.perf_counter() - t; "
    "print(json.dumps({{'import_s': d, 'modules': len(sys.modules), 'heavy': sorted(m for m in {heavy!r} if m in sys.modules)}}))"
)


def env() -> dict[str, str]:
    """A clean local environment (no deployment variables), MLOPS_HOME in a temp folder."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "DAGSTER_"))}
    out["MLOPS_HOME"] = str(Path(os.environ.get("TMPDIR", "/tmp")) / "bench_load_time_home")
    return out


def one_run() -> dict[str, Any]:
    """One fresh interpreter importing the code location."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PROBE.format(module=MODULE, heavy=HEAVY)], cwd=ROOT, env=env(), capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    return {"process_s": wall, **json.loads(proc.stdout.strip().splitlines()[-1])}


def import_profile(top: int = 12) -> list[dict[str, Any]]:
    """Cumulative import time of the top-level packages (from `-X importtime`), largest first."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {MODULE}"], cwd=ROOT, env=env(), capture_output=True, text=True, check=True)
    by_package: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line.split("|")
        try:
            self_us = int(parts[0].split(":")[1])
        except ValueError:
            continue  # header
        name = parts[2].strip().split(".")[0]
        by_package[name] = by_package.get(name, 0.0) + self_us / 1e6
    ranked = sorted(by_package.items(), key=lambda kv: -kv[1])[:top]
    return [{"package": name, "import_s": round(seconds, 3)} for name, seconds in ranked]


def markdown(report: dict[str, Any]) -> str:
    r = report["result"]
    heavy = ", ".join(r["heavy_loaded"]) or "none"
    lines = [
        f"Code location load (`import {MODULE}` in a fresh process), median of {r['repeats']} runs; {machine_line(report['machine'])}; {report['date'][:10]}.",
        "",
        "| measure | median (s) | min (s) | max (s) |",
        "|---|---:|---:|---:|",
        f"| import alone | {r['import_s']:.2f} | {min(r['import_s_runs']):.2f} | {max(r['import_s_runs']):.2f} |",
        f"| whole process (interpreter start-up + import) | {r['process_s']:.2f} | {min(r['process_s_runs']):.2f} | {max(r['process_s_runs']):.2f} |",
        "",
        f"Budget: under {BUDGET_S:.0f} s: {'met' if r['process_s'] < BUDGET_S else '**not met**'} (whole process). "
        f"{r['modules']} modules loaded; heavy libraries loaded at import: {heavy}. Largest packages by import time (self time, s): "
        + ", ".join(f"{p['package']} {p['import_s']:.2f}" for p in report["import_profile"][:8]) + ".",
        "",
        load_note([report["load_average_before"], report["load_average_after"]]),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    load_before = load_average()
    one_run()  # warm the OS file cache: later runs measure the import, not the disk
    runs = [one_run() for _ in range(args.repeats)]
    result = {
        "repeats": args.repeats,
        "import_s": round(statistics.median(r["import_s"] for r in runs), 3),
        "import_s_runs": [round(r["import_s"], 3) for r in runs],
        "process_s": round(statistics.median(r["process_s"] for r in runs), 3),
        "process_s_runs": [round(r["process_s"], 3) for r in runs],
        "modules": runs[0]["modules"],
        "heavy_loaded": runs[0]["heavy"],
        "budget_s": BUDGET_S,
        "met": statistics.median(r["process_s"] for r in runs) < BUDGET_S,
    }
    report = {
        "benchmark": f"fresh-process import of {MODULE}",
        "date": now_utc(),
        "machine": machine_info(("dagster", "polars")),
        "load_average_before": load_before,
        "result": result,
        "import_profile": import_profile(),
        "load_average_after": load_average(),
    }
    write_results(args.out, report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
