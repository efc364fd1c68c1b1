"""Benchmark of model training: XGBoost, linear (Ridge) and LSTM on ~100k and ~1M feature rows,
plus the cost of SHAP values for a trained XGBoost model.

    python bench/training.py [--rows 100000 1000000] [--out bench/results/training.json]

For each size the model inputs are prepared once (not timed): the platform's simulator with
defects off (`core.simulate.simulate_frame`), then `build_features` -> `time_split` ->
`core.models.data.model_data`, saved as parquet in a temporary directory. Each model is then
trained in a fresh subprocess (`--worker`, hidden) with the `full` training profile
(`core.training_config.load_training_config("full")`), so wall time and peak memory belong to
that training call alone:

    xgboost  core.models.tabular.train_xgboost  (randomized search, time-series CV, refit with early stopping)
    linear   core.models.tabular.train_linear   (randomized search, time-series CV, refit)
    lstm     core.models.sequence.train_lstm    (Keras 3 on JAX; the profile caps the training rows)

More rows means more groups (a fixed ~2.3-year hourly history per group, as in
bench/data_pipeline.py), so the one-hot group columns widen the model input with the size.

Per-model time budget: when the measurement at the previous (smaller) size predicts that the
`full` profile would take longer than --budget seconds at this size, the script uses a
reduced setting (fewer search candidates for xgboost / linear, fewer epochs for the LSTM,
chosen from the estimate) and says so in the JSON and the Markdown. `--set` fixes a setting by
hand instead (e.g. `--set xgboost@1000000:xgboost_iterations=4`, with `--set-reason` saying
why); the automatic estimate is still stored next to it. A worker that runs past --timeout is
stopped and reported as such.

SHAP (in the xgboost worker, after the training measurement, so not part of its time or
peak): on the same --shap-rows transformed test rows, `shap.TreeExplainer(model).shap_values`
vs `booster.predict(DMatrix(matrix), pred_contribs=True)`, both with the trees up to the
early-stopping best iteration (as core/explain.py calls them) and the plain all-trees call;
time per 1,000 rows and the largest absolute difference (agreement to 1e-4 is the platform's
rule in core/explain.py).

Peak memory is the worker's VmHWM (/proc/self/status) after resetting the kernel's
high-water mark via /proc/self/clear_refs, minus the RSS after imports and after the model
inputs are loaded. (`ru_maxrss` is not used: in a child started by subprocess it begins at the
parent's peak RSS, which it inherits across exec.)

Writes the JSON to --out and a Markdown table next to it (training.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gc
import importlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything can import keras

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mlops_assets.core.spec import DatasetSpec, load_spec  # noqa: E402  (no polars import)
from bench.harness import QUIET_BUSY_CORES, busy_cores, cpu_seconds, peak_method, peak_rss_mb, reset_peak_rss, rss_mb  # noqa: E402
from bench.harness import machine_info as _machine_info  # noqa: E402

MODELS = ("xgboost", "linear", "lstm")
WORKER_IMPORTS = {
    "xgboost": ("pandas", "sklearn", "xgboost", "mlops_assets.core.models.tabular"),
    "linear": ("pandas", "sklearn", "mlops_assets.core.models.tabular"),
    "lstm": ("pandas", "sklearn", "keras", "jax", "mlops_assets.core.models.sequence"),
}
SPLITS = ("train", "validation", "test")
DEFAULT_ROWS = (100_000, 1_000_000)
DEFAULT_OUT = ROOT / "bench" / "results" / "training.json"
PROFILE = "full"
ROWS_PER_GROUP = 20_000  # ~841 days of hourly data per group: more rows = more groups
WARMUP_HOURS = 168  # rows without a full 168 h lag are dropped by build_features
BUDGET_S = 360.0  # per model and size: above this estimate, a reduced setting is used
TIMEOUT_S = 600.0  # a worker running longer is stopped
SHAP_ROWS = 1000
SHAP_REPEATS = 3
AGREEMENT_TOLERANCE = 1e-4  # as core/explain.py


# ============================================================================================
# data preparation (parent process, not timed)


def shape_for(rows: int) -> tuple[int, int]:
    """(groups, days) giving about `rows` feature rows: a fixed history length, more groups."""
    groups = max(2, round(rows / ROWS_PER_GROUP))
    return groups, math.ceil((rows / groups + WARMUP_HOURS) / 24)


def prepare(spec: DatasetSpec, rows: int, seed: int, out_dir: Path) -> dict[str, Any]:
    """simulate (no defects) -> build_features -> time_split -> model_data -> parquet files."""
    from mlops_assets.core import simulate
    from mlops_assets.core.features import build_features
    from mlops_assets.core.models.data import model_data
    from mlops_assets.core.splitting import time_split

    groups, days = shape_for(rows)
    config = simulate.SimulationConfig(start=simulate.DEFAULT_START, days=days, groups=groups, seed=seed, drift=0.0, defects=False)
    history = simulate.simulate_frame(spec, config)
    features, report = build_features(history, spec)
    train, validation, test, bounds = time_split(features, spec)
    data = model_data(train, validation, test, spec)
    save_model_data(data, out_dir)
    width = len(data.numeric) + sum(int(data.train.X[c].nunique()) for c in data.categorical)
    return {
        "generator": "mlops_assets.core.simulate.simulate_frame (defects off)",
        "groups": groups,
        "days": days,
        "series_rows": history.height,
        "feature_rows": report.rows_out,
        "split_rows": {s: len(getattr(data, s)) for s in SPLITS},
        "split_boundaries": bounds.as_dict(),
        "feature_columns": len(data.feature_columns),
        "model_input_width": width,  # after one-hot encoding of the group
    }


def save_model_data(data: Any, out_dir: Path) -> None:
    """One parquet file per split: X plus the target, timestamps and groups."""
    for name in SPLITS:
        split = getattr(data, name)
        frame = split.X.copy()
        frame["__y"] = split.y
        frame["__timestamps"] = split.timestamps
        if split.groups is not None:
            frame["__groups"] = split.groups
        frame.to_parquet(out_dir / f"{name}.parquet", index=False)
    meta = {
        "feature_columns": data.feature_columns, "categorical": data.categorical, "numeric": data.numeric,
        "timestamp": data.timestamp, "group": data.group, "x_columns": list(data.train.X.columns),
    }
    (out_dir / "meta.json").write_text(json.dumps(meta))


def load_model_data(in_dir: Path) -> Any:
    import numpy as np
    import pandas as pd

    from mlops_assets.core.models.data import ModelData, Split

    meta = json.loads((in_dir / "meta.json").read_text())
    splits = {}
    for name in SPLITS:
        frame = pd.read_parquet(in_dir / f"{name}.parquet")
        groups = frame["__groups"].to_numpy().astype(str) if "__groups" in frame else None
        splits[name] = Split(
            X=frame[meta["x_columns"]].copy(),
            y=frame["__y"].to_numpy(dtype=float),
            timestamps=frame["__timestamps"].to_numpy(),
            groups=groups,
        )
        del frame
    del np
    return ModelData(**splits, feature_columns=meta["feature_columns"], categorical=meta["categorical"],
                     numeric=meta["numeric"], timestamp=meta["timestamp"], group=meta["group"])


# ============================================================================================
# training configuration: the full profile, or a documented reduction


def full_config() -> Any:
    from mlops_assets.core.training_config import load_training_config

    return load_training_config(PROFILE)


def config_with(overrides: dict[str, Any]) -> Any:
    return dataclasses.replace(full_config(), **overrides)


def search_candidates(space: dict[str, Any], n_iter: int, seed: int) -> list[dict[str, Any]]:
    """The candidates RandomizedSearchCV will draw (same sampler, same seed, same key order),
    so the first k are the same whatever n_iter is."""
    from sklearn.model_selection import ParameterSampler

    from mlops_assets.core.models.search import distributions

    dists = {f"model__{k}": v for k, v in distributions(space).items()}
    return [{k.split("__", 1)[1]: v for k, v in p.items()} for p in ParameterSampler(dists, n_iter, random_state=seed)]


def candidate_costs(model: str, config: Any) -> list[float]:
    """Relative cost of each search candidate: n_estimators x max_depth for the hist trees
    (histograms per level per tree), 1 for Ridge."""
    if model == "xgboost":
        cands = search_candidates(config.xgboost_space, config.xgboost_iterations, config.seed)
        return [float(c.get("n_estimators", 100)) * float(c.get("max_depth", 6)) for c in cands]
    return [1.0] * config.linear_iterations


def plan(model: str, data: dict[str, Any], previous: dict[str, Any] | None, budget_s: float) -> dict[str, Any]:
    """Settings for `model` at this size: the full profile unless the previous size's
    measurement, scaled, predicts more than `budget_s`; then the largest reduction that fits."""
    full = full_config()
    if previous is None or previous["result"].get("status") != "ok":
        return {"overrides": {}, "reduced": False, "estimate_s": None, "basis": "first size: full profile, no estimate"}
    prev_data, prev = previous["data"], previous["result"]
    rows_ratio = data["split_rows"]["train"] / prev_data["split_rows"]["train"]
    width_ratio = data["model_input_width"] / prev_data["model_input_width"]
    if model in ("xgboost", "linear"):
        scale = rows_ratio * width_ratio  # hist / normal equations: ~ rows x columns
        costs_now = candidate_costs(model, full)
        prev_overrides = previous["plan"]["overrides"]
        prev_n = prev_overrides.get(f"{model}_iterations", len(costs_now))
        prev_cv = prev_overrides.get("cv_splits", full.cv_splits)
        per_cost = prev["stages_s"]["search"] / max(sum(costs_now[:prev_n]), 1e-9) / prev_cv
        refit = prev["stages_s"]["refit"] * scale

        def estimate(n: int, cv: int) -> float:
            return per_cost * scale * sum(costs_now[:n]) * cv + refit

        n, cv = len(costs_now), full.cv_splits
        full_estimate = estimate(n, cv)
        basis = (f"{prev_data['feature_rows']:,}-row run ({prev['wall_s']:.0f} s) x {rows_ratio:.1f} (train rows) "
                 f"x {width_ratio:.2f} (input width), candidates weighted by n_estimators x max_depth")
        if full_estimate <= budget_s:
            return {"overrides": {}, "reduced": False, "estimate_s": round(full_estimate, 1), "basis": basis}
        while n > 1 and estimate(n, cv) > budget_s:
            n -= 1
        overrides: dict[str, Any] = {f"{model}_iterations": n}
        if estimate(n, cv) > budget_s:
            cv = 3
            overrides["cv_splits"] = cv
        return {
            "overrides": overrides, "reduced": True, "estimate_s": round(estimate(n, cv), 1),
            "full_estimate_s": round(full_estimate, 1), "basis": basis,
            "reason": f"full profile estimated at {full_estimate:.0f} s > budget {budget_s:.0f} s",
        }
    # lstm: training rows are capped by the profile; validation rows (all of them) and the
    # input width grow. Cost per epoch ~ (train rows + validation rows / 3) x (width + units).
    units = full.lstm_units

    def work(d: dict[str, Any], train_used: int) -> float:
        return (train_used + d["split_rows"]["validation"] / 3) * (d["model_input_width"] + units)

    train_now = min(data["split_rows"]["train"], full.lstm_max_train_rows)
    per_epoch = prev["wall_s"] / max(prev["info"]["epochs_run"], 1)
    scale = work(data, train_now) / work(prev_data, prev["info"]["train_rows_used"])
    full_estimate = per_epoch * scale * full.lstm_epochs  # worst case: no early stop
    basis = f"{prev_data['feature_rows']:,}-row run: {per_epoch:.1f} s/epoch x {scale:.2f} x {full.lstm_epochs} epochs (no early stop)"
    if full_estimate <= budget_s:
        return {"overrides": {}, "reduced": False, "estimate_s": round(full_estimate, 1), "basis": basis}
    epochs = max(1, int(budget_s / (per_epoch * scale)))
    return {
        "overrides": {"lstm_epochs": epochs}, "reduced": True, "estimate_s": round(per_epoch * scale * epochs, 1),
        "full_estimate_s": round(full_estimate, 1), "basis": basis,
        "reason": f"full profile estimated at {full_estimate:.0f} s > budget {budget_s:.0f} s",
    }


def describe(model: str, overrides: dict[str, Any]) -> str:
    """The setting in words, for the table."""
    full = full_config()
    cfg = config_with(overrides)
    if model == "xgboost":
        text = f"{cfg.xgboost_iterations} candidates × {cfg.cv_splits} folds + refit (early stop {cfg.early_stopping_rounds})"
    elif model == "linear":
        text = f"{cfg.linear_iterations} candidates × {cfg.cv_splits} folds + refit"
    else:
        text = f"≤{cfg.lstm_epochs} epochs, window {cfg.lstm_window_hours:g} h, {cfg.lstm_units} units, ≤{cfg.lstm_max_train_rows:,} train rows"
    if overrides:
        changed = ", ".join(f"{k} {getattr(full, k)}→{v}" for k, v in overrides.items())
        return f"**reduced**: {text} ({changed})"
    return f"full: {text}"


# ============================================================================================
# worker: one measured training run in a fresh process


def timed_search(timings: dict[str, float]) -> None:
    """Time `randomized_search` inside train_xgboost / train_linear (the rest is the refit)."""
    from mlops_assets.core.models import tabular

    inner = tabular.randomized_search

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            timings["search"] = timings.get("search", 0.0) + time.perf_counter() - t0

    tabular.randomized_search = wrapper


def train(model: str, data: Any, config: Any) -> tuple[Any, dict[str, Any]]:
    if model == "xgboost":
        from mlops_assets.core.models.tabular import train_xgboost

        forecaster, search, extra = train_xgboost(data, config)
        return forecaster, {"best_params": search.best_params, "best_cv_rmse": search.best_cv_rmse, "candidates": search.cv_results.height, **extra}
    if model == "linear":
        from mlops_assets.core.models.tabular import train_linear

        forecaster, search, extra = train_linear(data, config)
        return forecaster, {"best_params": search.best_params, "best_cv_rmse": search.best_cv_rmse, "candidates": search.cv_results.height, **extra}
    from mlops_assets.core.models.sequence import train_lstm

    forecaster, extra = train_lstm(data, config)
    return forecaster, extra


def worker(model: str, input_dir: Path, result_file: Path, overrides: dict[str, Any], shap_rows: int) -> None:
    """Import, load the inputs, take the baseline, train once, record time and memory; then
    (xgboost only, not measured) the SHAP comparison."""
    for module in WORKER_IMPORTS[model]:  # imports belong to the baseline, not to the run
        importlib.import_module(module)
    config = config_with(overrides)
    data = load_model_data(input_dir)
    timings: dict[str, float] = {}
    if model != "lstm":
        timed_search(timings)
    gc.collect()
    baseline = rss_mb()
    reset = reset_peak_rss()
    cpu_before = cpu_seconds()
    start = time.perf_counter()
    forecaster, info = train(model, data, config)
    wall = time.perf_counter() - start
    cpu = cpu_seconds() - cpu_before
    peak = max(peak_rss_mb(), baseline)
    if model != "lstm":
        timings["refit"] = wall - timings.get("search", 0.0)
    result: dict[str, Any] = {
        "status": "ok",
        "model": model,
        "wall_s": wall,
        "cpu_s": cpu,
        "stages_s": timings,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak,
        "peak_mb_increase": peak - baseline,
        "peak_method": peak_method(reset),
        "info": info,
    }
    if model == "xgboost" and shap_rows:
        result["shap"] = shap_comparison(forecaster, data, shap_rows)
    result_file.write_text(json.dumps(result, default=str))


# ============================================================================================
# SHAP: TreeExplainer vs XGBoost's own TreeSHAP (worker, after the measurement)


def _median_time(fn: Any, repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def shap_comparison(forecaster: Any, data: Any, rows: int) -> dict[str, Any]:
    """Same transformed test rows through both; ms per 1,000 rows and max |difference|."""
    import numpy as np
    import shap
    import xgboost as xgb

    from mlops_assets.core.explain import tree_contributions

    X = data.test.X
    pick = np.linspace(0, len(X) - 1, min(rows, len(X))).round().astype(int)
    sample = X.iloc[pick]
    prep = forecaster.pipeline.named_steps["prep"]
    model = forecaster.pipeline.named_steps["model"]
    matrix = np.asarray(prep.transform(sample[forecaster.feature_columns]), dtype=float)
    n = len(matrix)
    per_1k = 1000.0 / n
    booster = model.get_booster()
    best = getattr(model, "best_iteration", None)
    best_range = (0, best + 1) if best is not None else (0, 0)

    t_contrib_best, contribs_best = _median_time(lambda: booster.predict(xgb.DMatrix(matrix), pred_contribs=True, iteration_range=best_range), SHAP_REPEATS)
    t_contrib_all, contribs_all = _median_time(lambda: booster.predict(xgb.DMatrix(matrix), pred_contribs=True), SHAP_REPEATS)
    t_build, explainer = _median_time(lambda: shap.TreeExplainer(model), SHAP_REPEATS)
    t_shap, shap_values = _median_time(lambda: explainer.shap_values(matrix), SHAP_REPEATS)
    t_platform, _ = _median_time(lambda: tree_contributions(forecaster, sample), 2)
    shap_values = np.asarray(shap_values)
    diff_best = float(np.max(np.abs(shap_values - contribs_best[:, :-1])))
    diff_all = float(np.max(np.abs(shap_values - contribs_all[:, :-1])))
    prediction = model.predict(matrix)  # sklearn predict uses the best iteration
    additivity = float(np.max(np.abs(contribs_best.sum(axis=1) - prediction)))
    return {
        "rows": n,
        "transformed_columns": int(matrix.shape[1]),
        "trees_total": int(booster.num_boosted_rounds()),
        "best_iteration": best,
        "shap_version": shap.__version__,
        "tree_explainer_build_s": t_build,
        "tree_explainer_shap_values_ms_per_1k": 1000 * t_shap * per_1k,
        "pred_contribs_best_iteration_ms_per_1k": 1000 * t_contrib_best * per_1k,
        "pred_contribs_all_trees_ms_per_1k": 1000 * t_contrib_all * per_1k,
        "platform_tree_contributions_ms_per_1k": 1000 * t_platform * per_1k,
        "speed_ratio_shap_values_over_pred_contribs": t_shap / t_contrib_best,
        "speed_ratio_build_plus_shap_values_over_pred_contribs": (t_build + t_shap) / t_contrib_best,
        "max_abs_diff_vs_pred_contribs_best_iteration": diff_best,
        "max_abs_diff_vs_pred_contribs_all_trees": diff_all,
        "agree_1e-4_best_iteration": diff_best <= AGREEMENT_TOLERANCE,
        "agree_1e-4_all_trees": diff_all <= AGREEMENT_TOLERANCE,
        "max_abs_shap_value": float(np.max(np.abs(shap_values))),
        "max_abs_additivity_error": additivity,
        "repeats": SHAP_REPEATS,
    }


# ============================================================================================
# parent: runs, budget, output


def run_worker(model: str, input_dir: Path, overrides: dict[str, Any], shap_rows: int, timeout_s: float) -> dict[str, Any]:
    """One measured training run in a fresh interpreter; stopped after `timeout_s`."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        result_file = Path(fh.name)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", model, "--input-dir", str(input_dir),
           "--result-file", str(result_file), "--overrides", json.dumps(overrides), "--shap-rows", str(shap_rows)]
    began = time.perf_counter()
    try:
        proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the worker's own process group only
            proc.wait()
            return {"status": "timeout", "model": model, "wall_s": time.perf_counter() - began, "timeout_s": timeout_s}
        if proc.returncode != 0:
            return {"status": f"failed (exit {proc.returncode})", "model": model, "wall_s": time.perf_counter() - began}
        return json.loads(result_file.read_text())
    finally:
        result_file.unlink(missing_ok=True)


def parse_manual(items: list[str]) -> dict[tuple[str, int], dict[str, Any]]:
    """`MODEL@ROWS:key=value[,key=value]` -> {(model, rows): overrides}."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    fields = set(full_config().__dataclass_fields__)
    for item in items:
        target, _, pairs = item.partition(":")
        model, _, rows = target.partition("@")
        if model not in MODELS or not rows.isdigit() or not pairs:
            raise SystemExit(f"--set {item!r}: expected MODEL@ROWS:key=value[,key=value]")
        overrides = {}
        for pair in pairs.split(","):
            key, _, value = pair.partition("=")
            if key not in fields:
                raise SystemExit(f"--set {item!r}: unknown training setting {key!r}")
            try:
                overrides[key] = json.loads(value)
            except json.JSONDecodeError:
                overrides[key] = value
        out[(model, int(rows))] = overrides
    return out


def bench_size(spec: DatasetSpec, rows: int, models: tuple[str, ...], seed: int, shap_rows: int, budget_s: float,
               timeout_s: float, previous: dict[str, dict[str, Any]],
               manual: dict[tuple[str, int], dict[str, Any]] | None = None, manual_reason: str = "") -> dict[str, Any]:
    print(f"== {rows:,} rows: preparing model inputs", flush=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        data = prepare(spec, rows, seed, Path(tmp))
        gc.collect()
        print(f"   {data['groups']} groups x {data['days']} days -> {data['feature_rows']:,} feature rows "
              f"(train {data['split_rows']['train']:,}, validation {data['split_rows']['validation']:,}, "
              f"test {data['split_rows']['test']:,}); input width {data['model_input_width']} ({time.perf_counter() - t0:.1f} s)", flush=True)
        results: dict[str, Any] = {}
        for model in models:
            step = plan(model, data, previous.get(model), budget_s)
            if manual and (model, rows) in manual:
                step = {"overrides": manual[(model, rows)], "reduced": True, "manual": True, "estimate_s": None,
                        "reason": manual_reason or "set by hand (--set)", "basis": "manual", "automatic_plan": step}
            if step["reduced"]:
                print(f"   {model}: {step['reason']}; using {step['overrides']} (estimate {step['estimate_s']} s)", flush=True)
            busy = busy_cores()
            run = run_worker(model, Path(tmp), step["overrides"], shap_rows if model == "xgboost" else 0, timeout_s)
            run["background_busy_cores"] = round(busy, 2)
            results[model] = {"plan": step, "setting": describe(model, step["overrides"]), "result": run}
            previous[model] = {"data": data, "plan": step, "result": run}
            if run["status"] == "ok":
                print(f"   {model:<8} {run['wall_s']:7.1f} s wall, {run['cpu_s']:7.1f} s CPU, +{run['peak_mb_increase']:.0f} MB "
                      f"(abs {run['peak_rss_mb']:.0f} MB; background load {busy:.2f} cores)", flush=True)
                if "shap" in run:
                    s = run["shap"]
                    print(f"   shap: TreeExplainer {s['tree_explainer_shap_values_ms_per_1k']:.1f} ms/1k (+ build {s['tree_explainer_build_s']:.2f} s), "
                          f"pred_contribs {s['pred_contribs_best_iteration_ms_per_1k']:.1f} ms/1k, max |diff| "
                          f"{s['max_abs_diff_vs_pred_contribs_best_iteration']:.2e} (all trees: {s['max_abs_diff_vs_pred_contribs_all_trees']:.2e})", flush=True)
            else:
                print(f"   {model:<8} {run['status']} after {run['wall_s']:.0f} s", flush=True)
    return {"rows": rows, "data": data, "models": results}


def machine_info() -> dict[str, Any]:
    """Where the numbers were taken (bench.harness), with the ML libraries' versions."""
    packages = ("polars", "pandas", "numpy", "scikit-learn", "xgboost", "keras", "jax", "shap", "fairlearn")
    return _machine_info(packages) | {"keras_backend": os.environ.get("KERAS_BACKEND", "jax")}


def _fmt_s(run: dict[str, Any]) -> str:
    return f"{run['wall_s']:.1f}" if run["status"] == "ok" else f"{run['status']} ({run['wall_s']:.0f})"


def _notes(model: str, run: dict[str, Any]) -> str:
    if run["status"] != "ok":
        return ""
    info, st = run["info"], run["stages_s"]
    if model == "xgboost":
        return f"search {st['search']:.1f} s + refit {st['refit']:.1f} s; best_iteration {info['best_iteration']} of {info['best_params'].get('n_estimators')}, max_depth {info['best_params'].get('max_depth')}"
    if model == "linear":
        return f"search {st['search']:.1f} s + refit {st['refit']:.1f} s; alpha {info['best_params'].get('alpha'):.3g}"
    return f"{info['epochs_run']} epochs run, {info['train_rows_used']:,} train rows"


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"Training with the `{report['profile']}` profile, one fresh-process run per model and size; "
        f"{m['cpu_count']} CPUs ({m['cpu_model']}), Python {m['python']}, xgboost {m['xgboost']}, scikit-learn {m['scikit-learn']}, "
        f"keras {m['keras']} ({m['keras_backend']} {m['jax']}), shap {m['shap']}; {report['date'][:10]}.",
        "",
        "| rows (train / val) | groups | input width | model | setting | wall (s) | CPU (s) | peak MB (+ / abs) | notes |",
        "|---:|---:|---:|---|---|---:|---:|---:|---|",
    ]
    for size in report["sizes"]:
        d = size["data"]
        for model, entry in size["models"].items():
            run = entry["result"]
            mem = f"+{run['peak_mb_increase']:.0f} / {run['peak_rss_mb']:.0f}" if run["status"] == "ok" else "–"
            cpu = f"{run['cpu_s']:.1f}" if run["status"] == "ok" else "–"
            lines.append(
                f"| {d['feature_rows']:,} ({d['split_rows']['train']:,} / {d['split_rows']['validation']:,}) | {d['groups']} | {d['model_input_width']} "
                f"| {model} | {entry['setting']} | {_fmt_s(run)} | {cpu} | {mem} | {_notes(model, run)} |"
            )
    reduced = [(size["rows"], model, e) for size in report["sizes"] for model, e in size["models"].items() if e["plan"]["reduced"]]
    lines.append("")
    if reduced:
        lines.append(f"Reduced settings (budget per model and size: {report['budget_s']:.0f} s):")
        lines.append("")
        for rows, model, e in reduced:
            p = e["plan"]
            if p.get("manual"):
                auto = p["automatic_plan"]
                auto_text = f"the automatic plan would have used {auto['overrides'] or 'the full profile'}" + (f" (full profile estimated at {auto.get('full_estimate_s', auto['estimate_s'])} s from: {auto['basis']})" if auto.get("estimate_s") is not None else "")
                lines.append(f"- {rows:,} rows, {model}: set by hand to {p['overrides']}: {p['reason']}. For reference, {auto_text}.")
            else:
                lines.append(f"- {rows:,} rows, {model}: {p['reason']}; ran with {p['overrides']} (estimate {p['estimate_s']:.0f} s). Basis: {p['basis']}.")
        lines.append("")
    else:
        lines += [f"All runs used the full `{report['profile']}` profile (no estimate exceeded the {report['budget_s']:.0f} s budget).", ""]
    shap_rows = [(size, size["models"]["xgboost"]["result"].get("shap")) for size in report["sizes"] if "xgboost" in size["models"]]
    shap_rows = [(size, s) for size, s in shap_rows if s]
    if shap_rows:
        lines += [
            "SHAP for the trained XGBoost model, on the same transformed test rows "
            f"(median of {shap_rows[0][1]['repeats']} calls, ms per 1,000 rows):",
            "",
            "| rows | trees (used / total) | TreeExplainer build (s) | TreeExplainer.shap_values | pred_contribs (best iter.) | pred_contribs (all trees) | platform tree_contributions | shap_values / pred_contribs | max abs diff (best iter. / all trees) | agree to 1e-4 (best / all) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for size, s in shap_rows:
            used = (s["best_iteration"] + 1) if s["best_iteration"] is not None else s["trees_total"]
            lines.append(
                f"| {size['data']['feature_rows']:,} | {used} / {s['trees_total']} | {s['tree_explainer_build_s']:.3f} "
                f"| {s['tree_explainer_shap_values_ms_per_1k']:.1f} | {s['pred_contribs_best_iteration_ms_per_1k']:.1f} "
                f"| {s['pred_contribs_all_trees_ms_per_1k']:.1f} | {s['platform_tree_contributions_ms_per_1k']:.1f} "
                f"| {s['speed_ratio_shap_values_over_pred_contribs']:.2f}× "
                f"| {s['max_abs_diff_vs_pred_contribs_best_iteration']:.2e} / {s['max_abs_diff_vs_pred_contribs_all_trees']:.2e} "
                f"| {'yes' if s['agree_1e-4_best_iteration'] else 'no'} / {'yes' if s['agree_1e-4_all_trees'] else 'no'} |"
            )
        lines += [
            "",
            "With the default `tree_path_dependent` setting and no background data, shap's TreeExplainer for an XGBoost "
            "model calls XGBoost's own `pred_contribs` (limited to the booster's best iteration) and checks additivity with a "
            "second predict; `booster.predict(..., pred_contribs=True)` without `iteration_range` uses all trees, "
            "including those after the early-stopping best iteration.",
            "",
        ]
    lines += [
        "Peak + = increase over the worker's RSS after imports and after loading the model inputs (VmHWM after a "
        "clear_refs reset); abs = peak RSS. CPU > wall means more than one core was used.",
        "",
    ]
    loads = [e["result"]["background_busy_cores"] for size in report["sizes"] for e in size["models"].values()]
    busy = sum(b >= QUIET_BUSY_CORES for b in loads)
    if busy:
        lines += [f"Note: {busy} of {len(loads)} runs started while other processes kept ≥ {QUIET_BUSY_CORES} of the "
                  f"{m['cpu_count']} cores busy (per-run load in the JSON).", ""]
    if report.get("note"):
        lines += [f"Note: {report['note']}", ""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=list(DEFAULT_ROWS), help="feature-row sizes to benchmark (ascending)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file (the .md is written next to it)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--shap-rows", type=int, default=SHAP_ROWS, help="test rows for the SHAP comparison (0: skip)")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds per model and size above which a reduced setting is used")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds after which a worker is stopped")
    parser.add_argument("--set", action="append", default=[], metavar="MODEL@ROWS:key=value[,key=value]", help="fix a (reduced) training setting by hand for one model and size")
    parser.add_argument("--set-reason", default="", help="why --set was used (stored with the results)")
    parser.add_argument("--note", default="", help="a remark stored with the results (e.g. machine load)")
    parser.add_argument("--worker", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--input-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker, args.input_dir, args.result_file, json.loads(args.overrides), args.shap_rows)
        return
    spec = load_spec()
    began = time.perf_counter()
    previous: dict[str, dict[str, Any]] = {}
    manual = parse_manual(args.set)
    sizes = [bench_size(spec, rows, tuple(args.models), args.seed, args.shap_rows, args.budget, args.timeout, previous, manual, args.set_reason)
             for rows in sorted(args.rows)]
    report = {
        "benchmark": "model training (full profile) and SHAP cost",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "spec": spec.name,
        "profile": PROFILE,
        "training_config_file": os.environ.get("MLOPS_TRAINING_CONFIG"),
        "training_config": dataclasses.asdict(full_config()),
        "budget_s": args.budget,
        "timeout_s": args.timeout,
        "machine": machine_info(),
        "sizes": sizes,
        "note": args.note,
        "total_runtime_s": round(time.perf_counter() - began, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')} in {report['total_runtime_s']} s")


if __name__ == "__main__":
    main()
