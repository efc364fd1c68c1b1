"""A group the model never saw: the old behaviour (the model with an unknown one-hot) against
the group fallback (core/models/fallback.py), on real-shaped data.

    python bench/group_fallback.py [--days 150] [--max-groups 3] [--profile fast] [--out bench/results/group_fallback.json]

Two sets, each cleaned as a landed batch would be (`clean_batch`), features and the time split
as the platform builds them:
- `simulated`: the demo simulator (`mlops-assets simulate`), 8 subregions of 500..20,000 MW;
- `zones`: `core.sample_data.zone_loads`, 5 hourly zones with odd labels, one net of solar
  (crossing zero, so its MAPE is not defined: WAPE is reported for every group).

For each of up to `--max-groups` groups (from the smallest to the largest) in turn: the group is removed from train and validation (train without it), a
model (XGBoost and ridge, fixed well-converged XGBoost settings, or the `--profile`
training config's search with `--full-search`) is trained and refitted on train +
validation as training does, wrapped with the fallback (`with_group_fallback`, fitted on the
same rows), and both forecast the held-out group's test rows: `old` = the model alone (what was
served before: its one-hot unknown), `fallback` = the router (the group is unknown, so every row
goes to the fallback). `first_week` repeats it with the longer lags and rolling windows blanked,
as in a new group's first week. The known groups' test MAPE of the model is the reference.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import load_average, load_note, machine_info, now_utc  # noqa: E402

DEFAULT_OUT = ROOT / "bench" / "results" / "group_fallback.json"
SPECS = ROOT / "mlops_assets" / "specs"
FIXED_XGBOOST = {
    "n_estimators": [400], "max_depth": [6], "learning_rate": [0.1], "min_child_weight": [3],
    "reg_alpha": [0.01], "reg_lambda": [1.0],
}


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    from mlops_assets.core.metrics import regression_metrics

    m = regression_metrics(y, p)
    wape = float(np.nansum(np.abs(p - y)) / np.nansum(np.abs(y)) * 100) if len(y) else float("nan")
    clean = lambda v: None if v is None or not np.isfinite(v) else round(float(v), 3)  # noqa: E731
    return {"mape": clean(m["mape"]), "wape": clean(wape), "mae": clean(m["mae"]), "rows": int(m["n"])}


def simulated_set(days: int) -> tuple[Any, pl.DataFrame]:
    from mlops_assets.core.simulate import SimulationConfig, simulate_frame
    from mlops_assets.core.spec import load_spec

    spec = load_spec()
    raw = simulate_frame(spec, SimulationConfig(start=date(2024, 1, 1), days=days, groups=8, seed=7, defects=True))
    return spec, _landed(raw, spec, "simulated.csv", "")


def zones_set(days: int) -> tuple[Any, pl.DataFrame]:
    from mlops_assets.core.sample_data import zone_loads
    from mlops_assets.core.spec import load_spec

    spec = load_spec(SPECS / "hourly_multi_group.yaml")
    return spec, _landed(zone_loads(days=days), spec, "zones.csv", "NA")


def _landed(frame: pl.DataFrame, spec, name: str, null_value: str) -> pl.DataFrame:
    """The frame as the platform reads it: CSV bytes, parsed and cleaned like a landed batch."""
    from mlops_assets.core.cleaning import clean_batch
    from mlops_assets.core.ingest import parse_batch
    from mlops_assets.core.sample_data import to_csv

    return clean_batch(parse_batch(name, to_csv(frame, null_value)), spec, name)[0]


def _first_week(X, spec):
    """The rows as a new group's first week sees them: only the shortest lag's history."""
    from mlops_assets.core.features import lag_columns, observed_lag_columns
    from mlops_assets.core.models.fallback import window_hours

    shortest = min(spec.lags_hours)
    blank = [c for c in [*lag_columns(spec), *observed_lag_columns(spec)] if (window_hours(c) or 0) > shortest]
    out = X.copy()
    out[blank] = np.nan
    return out


def held_out(spec, splits, group: str, config, kinds: tuple[str, ...]) -> dict[str, Any]:
    from mlops_assets.core.models.data import model_data, to_split
    from mlops_assets.core.models.evaluation import refit
    from mlops_assets.core.models.fallback import with_group_fallback
    from mlops_assets.core.models.tabular import train_linear, train_xgboost

    train, validation, test = splits
    without = [s.filter(pl.col(spec.group) != group) for s in (train, validation)]
    data = model_data(*without, test.filter(pl.col(spec.group) != group), spec)
    target = to_split(test.filter(pl.col(spec.group) == group), spec)
    result: dict[str, Any] = {"group": group, "mean_load": round(float(np.nanmean(target.y)), 1), "test_rows": len(target)}
    for kind in kinds:
        started = time.perf_counter()
        model = (train_xgboost if kind == "xgboost" else train_linear)(data, config)[0]
        final = refit(model, data, config)
        fitted = time.perf_counter()
        router = with_group_fallback(final, data, config.seed)
        fallback_seconds = time.perf_counter() - fitted
        first_week = _first_week(target.X, spec)
        known = data.test
        result[kind] = {
            "old": _metrics(target.y, final.predict(target.X)),
            "fallback": _metrics(target.y, router.predict(target.X)),
            "old_first_week": _metrics(target.y, final.predict(first_week)),
            "fallback_first_week": _metrics(target.y, router.predict(first_week)),
            "known_groups_model": _metrics(known.y, router.predict(known.X)),
            "known_groups_fallback": _metrics(known.y, router.fallback.predict(known.X)),
            "served_by_fallback": float(np.mean(router.served_by(target.X) == "fallback")),
            "fit_seconds": round(fitted - started, 2), "fallback_fit_seconds": round(fallback_seconds, 2),
        }
        print(f"  {group:>24} {kind:>8}: MAPE old {result[kind]['old']['mape']} -> fallback {result[kind]['fallback']['mape']} "
              f"(WAPE {result[kind]['old']['wape']} -> {result[kind]['fallback']['wape']})", flush=True)
    return result


def _median(rows: list[dict], kind: str, which: str, metric: str) -> float | None:
    values = [r[kind][which][metric] for r in rows if r[kind][which][metric] is not None]
    return round(float(np.median(values)), 2) if values else None


def _spread_by_size(test: pl.DataFrame, spec, max_groups: int) -> list[str]:
    """Up to `max_groups` groups from the smallest to the largest mean |target|, evenly spread."""
    sizes = test.group_by(spec.group).agg(pl.col(spec.target.column).abs().mean().alias("size")).sort("size")
    labels = sizes.get_column(spec.group).to_list()
    picks = np.unique(np.round(np.linspace(0, len(labels) - 1, min(max_groups, len(labels)))).astype(int))
    return [labels[i] for i in picks]


def run_set(name: str, days: int, config, kinds: tuple[str, ...], max_groups: int) -> dict[str, Any]:
    from mlops_assets.core.features import build_features
    from mlops_assets.core.splitting import time_split

    spec, clean = (simulated_set if name == "simulated" else zones_set)(days)
    features, _ = build_features(clean, spec)
    train, validation, test, _ = time_split(features, spec)
    groups = _spread_by_size(test, spec, max_groups)
    print(f"{name}: {len(groups)} groups, {features.height} feature rows", flush=True)
    rows = [held_out(spec, (train, validation, test), g, config, kinds) for g in groups]
    summary = {
        kind: {
            f"median_{which}_{metric}": _median(rows, kind, which, metric)
            for which in ("old", "fallback", "old_first_week", "fallback_first_week", "known_groups_model", "known_groups_fallback")
            for metric in ("mape", "wape")
        }
        for kind in kinds
    }
    return {"spec": spec.name, "days": days, "groups": rows, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--max-groups", type=int, default=3, help="Groups held out in turn per set (smallest to largest).")
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--sets", default="simulated,zones")
    parser.add_argument("--kinds", default="xgboost,linear")
    parser.add_argument("--full-search", action="store_true", help="The profile's randomized search (default: fixed XGBoost settings, one ridge draw).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    from mlops_assets.core.training_config import load_training_config

    config = load_training_config(args.profile)
    if not args.full_search:
        # No search: fixed, well-converged XGBoost settings (a single random draw of the fast
        # profile can be a 30-tree model with a tiny learning rate, which is underfit everywhere).
        config = replace(config, xgboost_iterations=1, linear_iterations=1, cv_splits=2, xgboost_space=FIXED_XGBOOST)
    kinds = tuple(args.kinds.split(","))
    started, loads = time.perf_counter(), [load_average()]
    results = {}
    for name in args.sets.split(","):
        results[name] = run_set(name, args.days, config, kinds, args.max_groups)
        loads.append(load_average())
    report = {
        "what": "held-out group: MAPE/WAPE (%) of the model alone (old: unknown one-hot) vs the group fallback",
        "profile": args.profile, "search": "profile" if args.full_search else f"none: XGBoost {FIXED_XGBOOST}, ridge 1 draw", "sets": results, "seconds": round(time.perf_counter() - started, 1),
        "when": now_utc(), "machine": machine_info(("scikit-learn", "xgboost", "polars")), "load": load_note(loads),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    for name, result in results.items():
        print(name, json.dumps(result["summary"], indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
