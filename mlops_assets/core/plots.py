"""PNG plots (matplotlib, headless) returned as bytes."""

from __future__ import annotations

import io

import numpy as np
import polars as pl


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def axis_labels(labels: list) -> list[str]:
    """Group labels as matplotlib shows them verbatim: `$` would start mathtext, and labels
    that look like numbers stay categories."""
    return [str(label).replace("$", r"\$") for label in labels]


def figure_png(fig) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def sensitivity_plot(results: dict[str, pl.DataFrame], log_params: set[str]) -> bytes:
    """One panel per (model, hyperparameter): value against mean CV RMSE."""
    plt = _pyplot()
    panels = [(model, col) for model, table in results.items() for col in table.columns if col.startswith("param_")]
    cols = min(3, max(1, len(panels)))
    rows = int(np.ceil(len(panels) / cols)) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (model, col) in zip(axes.flat, panels):
        table = results[model]
        name = col.removeprefix("param_")
        ax.scatter(table.get_column(col).to_numpy(), table.get_column("mean_cv_rmse").to_numpy(), s=18)
        if name in log_params:
            ax.set_xscale("log")
        ax.set_title(f"{model}: {name}", fontsize=9)
        ax.set_ylabel("mean CV RMSE", fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    return figure_png(fig)


def bar_plot(labels: list[str], values: list[float], title: str, xlabel: str, errors: tuple[list[float], list[float]] | None = None, highlight: set[str] | None = None) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(labels) + 1.2))
    colors = ["#d62728" if highlight and label in highlight else "#1f77b4" for label in labels]
    ax.barh(axis_labels(labels), values, xerr=np.array(errors) if errors else None, color=colors, capsize=3)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    fig.tight_layout()
    return figure_png(fig)


def gap_plot(groups: list[str], gaps: list[float], lows: list[float], highs: list[float], limit: float, flagged: set[str], title: str) -> bytes:
    """Each group's error gap to overall with its 95% interval and the ± limit."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(groups) + 1.4))
    gaps_a, lows_a, highs_a = np.array(gaps, float), np.array(lows, float), np.array(highs, float)
    err = np.vstack([np.nan_to_num(gaps_a - lows_a), np.nan_to_num(highs_a - gaps_a)])
    colors = ["#d62728" if g in flagged else "#1f77b4" for g in groups]
    ax.barh(axis_labels(groups), gaps_a, xerr=err, color=colors, capsize=3)
    for x in (limit, -limit):
        ax.axvline(x, color="grey", linestyle="--", linewidth=1)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("error gap to overall (95% bootstrap interval); dashed: bias limit")
    fig.tight_layout()
    return figure_png(fig)
