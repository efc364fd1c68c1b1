"""Forecast accuracy on real-shaped data: every candidate next to seasonal naive (one week
earlier) and the day before, on the same test rows.

    python bench/forecast_accuracy.py [--fast] [--sets half_hourly,zones] [--out bench/results/forecast_accuracy.json]

Two sets from `mlops_assets.core.sample_data` (seeded):

- `half_hourly`: a year of 30-minute Victorian demand with temperature, one series, the
  shipped spec `specs/half_hourly_demand.yaml` (day-ahead, VIC holidays);
- `zones`: a year of hourly net load for five zones with awkward labels, one crossing zero,
  one starting late, `NA` tokens, the shipped spec `specs/hourly_multi_group.yaml`.

Each set runs in a fresh process (`--worker`, hidden) on a throwaway MLOPS_HOME: the data is
landed as monthly CSV files, ingested as `mlops-assets run` does (`runner.ingest_landed`), and
`training_job` runs on the embedded default (`runner.run_job`), with the `full` training
profile (`--fast`: the `fast` profile and 120 days). Figures are read back from what the run
stored: each model's test metrics and test metrics by group (the registered refit on train +
validation), the baselines computed on the stored test split, and the registry's decision.
MAPE is reported only where the metrics module defines it (a target far from zero).

Writes the JSON to --out and a Markdown table next to it, with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import load_note, machine_line, run_measured, write_report  # noqa: E402

DEFAULT_OUT = ROOT / "bench" / "results" / "forecast_accuracy.json"
SPECS = ROOT / "mlops_assets" / "specs"
MODELS = ("xgboost", "linear", "lstm")
PACKAGES = ("dagster", "mlflow", "xgboost", "scikit-learn", "keras", "jax", "polars")
SETS: dict[str, dict[str, Any]] = {
    "half_hourly": {
        "spec": "half_hourly_demand.yaml", "prefix": "demand", "null_value": "",
        "what": "30-min single series (VIC demand)",
    },
    "zones": {
        "spec": "hourly_multi_group.yaml", "prefix": "zones", "null_value": "NA",
        "what": "hourly, 5 zones (net load crossing zero, NA tokens)",
    },
}
TIMEOUT_S = 14 * 60
LEAKED_VARIABLES = ("DAGSTER_HOME", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
GOALS = {
    "half_hourly": "champion MAPE <= 3.0 % (issue 14's target on the hidden real set)",
    "zones": "a champion that beats seasonal naive and day-before on RMSE in every group",
}


# ============================================================================================
# worker: one set through the real graph


# ============================================================================================
# worker: one set through the real graph


def dataset(name: str, days: int):
    """(frame, timestamp column) of a set, seeded."""
    from mlops_assets.core.sample_data import demand_series, zone_loads

    if name == "half_hourly":
        return demand_series(start=date(2023, 1, 1), days=days, frequency="30m", seed=11), "settlement_date"
    return zone_loads(start=date(2023, 1, 1), days=days, seed=12), "timestamp"


def _finite(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and value == value and abs(value) != float("inf")
    return float(value) if ok else None


def _stored(home: Path, name: str) -> Any:
    """What the run stored for an asset: a frame (.parquet) or a document (.json); None if absent."""
    import polars as pl

    base = home / "storage" / name
    if base.with_suffix(".parquet").exists():
        return pl.read_parquet(base.with_suffix(".parquet"))
    if base.with_suffix(".json").exists():
        return json.loads(base.with_suffix(".json").read_text())
    return None


def _column(frame, name: str):
    return frame.get_column(name).cast(float).to_numpy()


def baselines(home: Path, spec) -> dict[str, Any]:
    """Seasonal naive and day-before on the stored test split (overall and per group), MASE
    scaled by the training split's seasonal-naive MAE as the models' is."""
    from mlops_assets.core.features import BASELINE_COLUMNS
    from mlops_assets.core.metrics import baseline_metrics, group_scales

    test, train = _stored(home, "test_set"), _stored(home, "train_set")
    naive, day_before = BASELINE_COLUMNS
    base = {"seasonal_naive": _column(test, naive), "day_before": _column(test, day_before)}
    y = _column(test, spec.target.column)
    groups = test.get_column(spec.group).cast(str).to_numpy() if spec.group else None
    train_groups = train.get_column(spec.group).cast(str).to_numpy() if spec.group else None
    scales = group_scales(_column(train, spec.target.column), _column(train, naive), train_groups)
    keep = ("mape", "mase", "skill", "skill_day_before", "rmse", "mae", "n")
    overall_metrics = baseline_metrics(y, base, scales["overall"])
    overall = {name: {k: _finite(m.get(k)) for k in keep} for name, m in overall_metrics.items()}
    by_group = {}
    for g in sorted(set(groups.tolist())) if groups is not None else []:
        mask = groups == g
        metrics = baseline_metrics(y[mask], {k: v[mask] for k, v in base.items()}, scales["by_group"].get(g))
        by_group[g] = {name: {k: _finite(m.get(k)) for k in keep} for name, m in metrics.items()}
    ts = test.get_column(spec.timestamp)
    return {
        "overall": overall, "by_group": by_group, "test_rows": int(len(y)),
        "test_from": str(ts.min()), "test_to": str(ts.max()),
    }


def _group_row(g: dict[str, Any]) -> dict[str, Any]:
    rmse, naive, day = (_finite(g.get(k)) for k in ("rmse", "baseline_seasonal_naive_rmse", "baseline_day_before_rmse"))
    return {
        "group": g["group"], "rmse": rmse, "seasonal_naive_rmse": naive, "day_before_rmse": day,
        "mape": _finite(g.get("mape")), "mase": _finite(g.get("mase")), "skill": _finite(g.get("skill")),
        "beats_both": None if None in (rmse, naive, day) else bool(rmse < naive and rmse < day),
    }


def model_rows(home: Path, champion_kind: str | None) -> list[dict[str, Any]]:
    """Each candidate's test figures (the registered refit) and per-group RMSE against both baselines."""
    rows = []
    for kind in MODELS:
        summary = _stored(home, f"{kind}_model")
        if summary is None:
            rows.append({"model": kind, "error": "not materialized"})
            continue
        test = summary["metrics"]["test"]
        rows.append({
            "model": kind, "champion": kind == champion_kind,
            **{k: _finite(test.get(k)) for k in ("mape", "mase", "skill", "skill_day_before", "rmse", "mae", "r2")},
            "mape_absent_reason": test.get("mape_absent_reason"), "test_rows": test.get("n"),
            "groups": [_group_row(g) for g in summary.get("test_by_group", [])],
        })
    return rows


def _environment(name: str, home: Path, fast: bool) -> None:
    os.environ.update({
        "MLOPS_HOME": str(home), "MLOPS_SETTLE_SECONDS": "0", "MLOPS_PROFILE": "fast" if fast else "full",
        "DAGSTER_HOME": str(home / "dagster_home"), "MLOPS_DATASET_SPEC": str(SPECS / SETS[name]["spec"]),
    })


def worker(name: str, home: Path, fast: bool, days: int) -> dict[str, Any]:
    """Land the set as monthly files, ingest them and run training_job as `mlops-assets run` does;
    the figures as stored by the run."""
    _environment(name, home, fast)
    from mlops_assets.core.sample_data import delivery_files
    from mlops_assets.core.spec import load_spec
    from mlops_assets.definitions import build_definitions
    from mlops_assets.demo import land_files
    from mlops_assets.runner import ingest_landed, local_instance, run_job, step_errors

    spec, (frame, timestamp) = load_spec(), dataset(name, days)
    files = delivery_files(frame, timestamp, SETS[name]["prefix"], "1mo", SETS[name]["null_value"])
    land_files(files, str(home / "landing"))
    instance, defs = local_instance(), build_definitions()
    started = time.perf_counter()
    ingested = ingest_landed(defs, instance)
    ingest_s = time.perf_counter() - started
    result = run_job(defs, "training_job", instance)
    registered = _stored(home, "registered_model")
    champion = registered["kind"] if registered and registered["passed"] and result.success else None
    candidate = _stored(home, "candidate_model")
    return {
        "set": name, "what": SETS[name]["what"], "rows": frame.height, "days": days, "spec": SETS[name]["spec"],
        "frequency": spec.frequency, "groups": sorted(frame.get_column(spec.group).unique()) if spec.group else [],
        "profile": "fast" if fast else "full", "batches_ingested": len(ingested.succeeded),
        "quarantined": dict(getattr(ingested, "quarantined", {})), "training_job_success": result.success,
        "step_errors": step_errors(result), "ingest_s": round(ingest_s, 1),
        "training_job_s": round(time.perf_counter() - started - ingest_s, 1),
        "candidate": candidate["kind"] if candidate else None, "champion": champion,
        "verdicts": [{k: v[k] for k in ("check", "passed", "reason")} for v in (registered or {}).get("verdicts", [])],
        "models": model_rows(home, champion),
        "baselines": baselines(home, spec) if (home / "storage" / "test_set.parquet").exists() else None,
    }


# ============================================================================================
# parent


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} %"


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


def _figures(m: dict[str, Any]) -> str:
    skills = f"{_num(m['skill'])} | {_num(m['skill_day_before'])}"
    return f"{_pct(m['mape'])} | {_num(m['mase'])} | {skills} | {_num(m['rmse'], 4)}"


def _overall_table(result: dict[str, Any], base: dict[str, Any]) -> list[str]:
    lines = [
        "| forecast | MAPE | MASE | skill vs seasonal naive | skill vs day-before | RMSE | R² | champion |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in result["models"]:
        if "error" in m:
            lines.append(f"| {m['model']} | {m['error']} | | | | | | |")
        else:
            lines.append(f"| {m['model']} | {_figures(m)} | {_num(m['r2'])} | {'**yes**' if m['champion'] else 'no'} |")
    for name, m in base["overall"].items():
        lines.append(f"| baseline: {name.replace('_', ' ')} | {_figures(m)} | | |")
    absent = {m["mape_absent_reason"] for m in result["models"] if m.get("mape_absent_reason")}
    return lines + (["", "MAPE absent: " + "; ".join(sorted(absent))] if absent else [])


def _group_table(result: dict[str, Any]) -> list[str]:
    grouped = [m for m in result["models"] if len(m.get("groups") or []) > 1]
    if not grouped:
        return []
    lines = [
        "", "RMSE per group (✓ = beats seasonal naive and day-before):", "",
        "| group | " + " | ".join(m["model"] for m in grouped) + " | seasonal naive | day-before |",
        "|---|" + "---|" * (len(grouped) + 2),
    ]
    for first in grouped[0]["groups"]:
        cells = []
        for m in grouped:
            g = next((x for x in m["groups"] if x["group"] == first["group"]), {})
            cells.append(f"{_num(g.get('rmse'), 4)}{' ✓' if g.get('beats_both') else ''}")
        baselines_cells = f"{_num(first['seasonal_naive_rmse'], 4)} | {_num(first['day_before_rmse'], 4)}"
        lines.append(f"| {first['group'].replace('|', '/')} | " + " | ".join(cells) + f" | {baselines_cells} |")
    return lines


def _set_section(result: dict[str, Any]) -> list[str]:
    lines = [f"## {result['set']}: {result.get('what', '')}", ""]
    if "error" in result:
        return lines + [f"failed: {result['error']}", ""]
    base = result["baselines"] or {"overall": {}, "by_group": {}}
    job = "succeeded" if result["training_job_success"] else "FAILED"
    measured = result["measured"]
    lines += [
        f"{result['rows']} rows over {result['days']} days, frequency {result['frequency']}; "
        f"test {base.get('test_from')} .. {base.get('test_to')} ({base.get('test_rows')} rows). "
        f"training_job {job} in {result['training_job_s']} s "
        f"(worker wall {measured['wall_s']} s, peak {measured['peak_rss_mb']} MB). Goal: {GOALS[result['set']]}.", "",
    ]
    lines += _overall_table(result, base) + _group_table(result)
    failed = "; ".join(f"{v['check']}: {v['reason']}" for v in result["verdicts"] if not v["passed"])
    champion = f"champion {result['champion']}" if result["champion"] else "no champion"
    champion += f" (candidate {result['candidate']})"
    lines += ["", f"Registry: {champion}" + (f"; failed checks: {failed}" if failed else ""), ""]
    if result["step_errors"]:
        lines += ["Step errors: " + "; ".join(f"{s}: {e}" for s, e in result["step_errors"]), ""]
    return lines


def render(report: dict[str, Any]) -> str:
    lines = [
        "# Forecast accuracy on real-shaped data", "",
        f"{report['date']}, {machine_line(report['machine'])}; profile `{report['profile']}`.", "",
        report["load_note"], "",
        "Test split = the newest 15 % of each set; the models are the registered refits on train + validation.",
        "Skill = 1 − MAE / MAE(baseline) on the same rows; MASE scaled by the training split's seasonal-naive MAE.", "",
    ]
    for result in report["sets"]:
        lines += _set_section(result)
    return "\n".join(lines)


def measure_set(name: str, days: int, fast: bool) -> dict[str, Any]:
    """One set in a fresh worker process on a throwaway MLOPS_HOME, with wall time and peak memory."""
    with tempfile.TemporaryDirectory(prefix=f"accuracy_{name}_") as tmp:
        home = Path(tmp) / "mlops"
        home.mkdir()
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--home", str(home)]
        cmd += ["--days", str(days)]
        env = {k: v for k, v in os.environ.items() if k not in LEAKED_VARIABLES}
        env.setdefault("KERAS_BACKEND", "jax")
        log = Path(tmp) / "worker.log"
        measured = run_measured([*cmd, *(["--fast"] if fast else [])], env=env, timeout_s=TIMEOUT_S, log_file=log)
        if (home / "result.json").exists():
            return {**json.loads((home / "result.json").read_text()), "measured": measured}
        error = f"worker exit {measured['returncode']} (timed out: {measured['timed_out']}): {log.read_text()[-3000:]}"
        return {"set": name, "what": SETS[name]["what"], "error": error, "measured": measured}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="fast training profile and 120 days per set")
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated: " + ", ".join(SETS))
    parser.add_argument("--days", type=int, default=None, help="days per set (default 365, --fast 120)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    days = args.days or (120 if args.fast else 365)
    if args.worker:
        result = worker(args.worker, args.home, args.fast, days)
        (args.home / "result.json").write_text(json.dumps(result, indent=1, default=str))
        return
    began = time.perf_counter()
    results = [measure_set(name, days, args.fast) for name in args.sets.split(",")]
    loads = [r["measured"][k] for r in results for k in ("load_average_before", "load_average_after")]
    body = {"profile": "fast" if args.fast else "full", "days": days, "sets": results, "load_note": load_note(loads)}
    write_report(args.out, "forecast_accuracy", began, PACKAGES, body, GOALS, render)


if __name__ == "__main__":
    main()
