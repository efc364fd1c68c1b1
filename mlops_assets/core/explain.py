"""SHAP explanations, reported per original feature (one-hot columns of a category summed).

Trees: XGBoost's own TreeSHAP (`pred_contribs`, limited to the early-stopping best
iteration) when it agrees with `shap.TreeExplainer` to 1e-4 on a probe sample, else
TreeExplainer. (With shap 0.51 both cost the same: TreeExplainer calls pred_contribs itself;
see bench/results/training.md.) Linear: LinearExplainer.
LSTM: a permutation explainer over the current hour's features, the window's earlier
hours fixed to each row's real history."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl

AGREEMENT_TOLERANCE = 1e-4


@dataclass
class Explanation:
    values: np.ndarray  # (rows, original features)
    data: np.ndarray  # feature values shown in the beeswarm (categories as codes)
    features: list[str]
    base_value: float
    method: str

    def importance(self) -> pl.DataFrame:
        mean_abs = np.abs(self.values).mean(axis=0)
        total = mean_abs.sum() or 1.0
        return pl.DataFrame({"feature": self.features, "mean_abs_shap": mean_abs, "share": mean_abs / total}).sort("mean_abs_shap", descending=True)


def _fold(values: np.ndarray, transformed_names: list[str], features: list[str], categorical: list[str]) -> np.ndarray:
    """Sum one-hot columns back into their categorical feature."""
    index = {name: i for i, name in enumerate(features)}
    out = np.zeros((values.shape[0], len(features)))
    for j, name in enumerate(transformed_names):
        owner = next((c for c in categorical if name.startswith(f"{c}_")), name)
        out[:, index[owner]] += values[:, j]
    return out


def _display_data(frame: pd.DataFrame, features: list[str], categorical: list[str]) -> np.ndarray:
    shown = frame[features].copy()
    for col in categorical:
        shown[col] = shown[col].astype("category").cat.codes
    return shown.to_numpy(dtype=float)


def tree_contributions(forecaster, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, float, str]:
    """(values, base value, method): pred_contribs when it matches TreeExplainer on a probe."""
    import shap
    import xgboost as xgb

    prep = forecaster.pipeline.named_steps["prep"]
    model = forecaster.pipeline.named_steps["model"]
    matrix = np.asarray(prep.transform(X[forecaster.feature_columns]), dtype=float)
    booster = model.get_booster()
    contribs = booster.predict(xgb.DMatrix(matrix), pred_contribs=True, iteration_range=(0, model.best_iteration + 1) if getattr(model, "best_iteration", None) is not None else (0, 0))
    probe = min(50, len(matrix))
    explainer = shap.TreeExplainer(model)
    reference = explainer.shap_values(matrix[:probe])
    agree = np.allclose(contribs[:probe, :-1], reference, atol=AGREEMENT_TOLERANCE, rtol=0)
    if agree:
        return contribs[:, :-1], float(contribs[0, -1]), "xgboost pred_contribs (TreeSHAP, checked against shap.TreeExplainer)"
    return explainer.shap_values(matrix), float(np.ravel(explainer.expected_value)[0]), "shap.TreeExplainer"


def explain(forecaster, sample: pd.DataFrame, background: pd.DataFrame, categorical: list[str], seed: int = 0) -> Explanation:
    features = list(forecaster.feature_columns)
    if forecaster.kind == "xgboost":
        values, base, method = tree_contributions(forecaster, sample)
        names = list(forecaster.pipeline.named_steps["prep"].get_feature_names_out())
        values = _fold(values, names, features, categorical)
    elif forecaster.kind == "linear":
        values, base, method = _linear(forecaster, sample, background, categorical)
    else:
        values, base, method = _sequence(forecaster, sample, background, categorical, seed)
    return Explanation(values, _display_data(sample, features, categorical), features, base, method)


def _linear(forecaster, sample, background, categorical):
    import shap

    prep = forecaster.pipeline.named_steps["prep"]
    model = forecaster.pipeline.named_steps["model"]
    cols = forecaster.feature_columns
    explainer = shap.LinearExplainer(model, np.asarray(prep.transform(background[cols]), dtype=float))
    values = explainer.shap_values(np.asarray(prep.transform(sample[cols]), dtype=float))
    names = list(prep.get_feature_names_out())
    return _fold(np.asarray(values), names, list(cols), categorical), float(np.ravel(explainer.expected_value)[0]), "shap.LinearExplainer"


def _sequence(forecaster, sample: pd.DataFrame, background: pd.DataFrame, categorical: list[str], seed: int):
    """Per row: perturb the current hour's transformed features; earlier hours stay real."""
    import shap

    from mlops_assets.core.models.sequence import window_positions, windows

    cols = forecaster.feature_columns
    prep = forecaster.prep
    names = list(prep.get_feature_names_out())
    sample = sample.reset_index(drop=True)
    feats = np.asarray(prep.transform(sample[cols]), dtype=np.float32)
    wins = windows(feats, window_positions(sample, forecaster.timestamp, forecaster.group, forecaster.window))
    masker = np.asarray(prep.transform(background[cols]), dtype=np.float32)[:50]
    values = np.zeros((len(sample), feats.shape[1]))
    base = 0.0
    for i in range(len(sample)):
        prefix = wins[i, :-1]

        def f(last: np.ndarray, prefix=prefix) -> np.ndarray:
            batch = np.concatenate([np.repeat(prefix[None], len(last), axis=0), last[:, None, :].astype(np.float32)], axis=1)
            return forecaster.model.predict(batch, verbose=0).reshape(-1) * forecaster.y_std + forecaster.y_mean

        explainer = shap.PermutationExplainer(f, masker, seed=seed)
        result = explainer(feats[i : i + 1], max_evals=2 * feats.shape[1] + 1, silent=True)
        values[i] = result.values[0]
        base = float(np.ravel(result.base_values)[0])
    return _fold(values, names, list(cols), categorical), base, "shap.PermutationExplainer (current hour; window history fixed)"


def summary_plots(explanation: Explanation, max_display: int = 15) -> tuple[bytes, bytes]:
    """(beeswarm PNG, bar PNG) drawn by shap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    from mlops_assets.core.plots import figure_png

    exp = shap.Explanation(values=explanation.values, base_values=np.full(len(explanation.values), explanation.base_value), data=explanation.data, feature_names=explanation.features)
    shap.plots.beeswarm(exp, max_display=max_display, show=False)
    beeswarm = figure_png(plt.gcf())
    shap.plots.bar(exp, max_display=max_display, show=False)
    bar = figure_png(plt.gcf())
    return beeswarm, bar
