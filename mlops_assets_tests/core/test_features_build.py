"""build_features on tiny hand-made series: the report's counts, where a rolling statistic
starts (its minimum number of values), and which temperature values a rolling mean reads."""

import numpy as np
import polars as pl
import pytest

from mlops_assets.core.features import build_features
from mlops_assets.core.spec import duration_label, spec_from_dict
from mlops_assets_tests.builders import T0

STEP_HOURS = {"15min": 0.25, "30min": 0.5, "1h": 1, "1d": 24}
H = 24  # lag and horizon, in steps of the data's frequency
ODD = "Zone A/B (ö)"


def step_spec(frequency: str, group: str | None, windows_steps=(2,), numeric=(), temperature=None):
    """A spec whose durations are whole numbers of steps: one lag = horizon = H steps,
    gaps of one step filled for lags."""
    step = STEP_HOURS[frequency]
    return spec_from_dict({
        "name": "steps", "frequency": frequency, "timestamp": "ts", "group": group, "target": "y",
        "features": {"numeric": list(numeric), "temperature": temperature},
        "preparation": {"horizon": H * step, "lags": [H * step], "rolling_windows": [n * step for n in windows_steps]},
        "cleaning": {"max_interpolate": step},
    })  # fmt: skip


def series(spec, y: list, groups: list[str] | None, **columns) -> pl.DataFrame:
    """The same values for every group, one row per step from T0 (UTC)."""
    ts = [T0 + i * spec.frequency_delta for i in range(len(y))]
    parts = []
    for g in groups or [None]:
        data = {"ts": ts, "y": pl.Series(y, dtype=pl.Float64), **{k: pl.Series(v, dtype=pl.Float64) for k, v in columns.items()}}
        if g is not None:
            data[spec.group] = [g] * len(y)
        parts.append(pl.DataFrame(data))
    frame = pl.concat(parts).with_columns(pl.col("ts").dt.replace_time_zone("UTC").dt.cast_time_unit("us"))
    return frame.select(spec.required_columns)


GROUPINGS = [None, [ODD], ["a", "b"]]


@pytest.mark.parametrize("frequency", list(STEP_HOURS))
@pytest.mark.parametrize("groups", GROUPINGS, ids=["single", "odd-label", "two-groups"])
@pytest.mark.parametrize(
    ("require_target", "without_history", "rows_out"),
    [(True, 24, 20), (False, 27, 21)],
    ids=["training", "scoring"],
)
def test_report_counts_missing_targets_and_missing_history_per_mode(frequency, groups, require_target, without_history, rows_out):
    """48 steps per group, target missing at steps 0-2 (before any lag exists) and at
    step 30 (lag present). Without history: steps 0-26 lack the H-step lag (3-23: nothing
    H steps back, 24-26: the missing 0-2). Training counts only those with a target (24),
    scoring counts every one (27). Kept: 27-47, less step 30 when a target is required."""
    spec = step_spec(frequency, groups and "site")
    y = [None, None, None] + [float(i) for i in range(3, 48)]
    y[30] = None
    n = len(groups or [None])
    _, report = build_features(series(spec, y, groups), spec, require_target=require_target)
    counts = {k: v for k, v in report.to_dict().items() if k != "feature_null_counts"}
    assert counts == {
        "rows_in": 48 * n, "grid_rows": 48 * n, "missing_target_values": 4 * n,
        "interpolated_target_points": 1 * n,  # step 30 (a one-step gap); 0-2 have nothing before them
        "rows_without_target": 4 * n,
        "rows_without_required_history": without_history * n,
        "rows_with_partial_history": 1 * n,  # step 27: its 2-step rolling std reads the missing step 2
        "rows_out": rows_out * n,
    }  # fmt: skip


@pytest.mark.parametrize(("require_target", "y_nulls"), [(True, {}), (False, {"y": 1})])
def test_feature_null_counts_name_each_column_with_nulls(require_target, y_nulls):
    """Hourly, same series as above: a week-old baseline never exists in 48 h, the 2-step
    rolling std is null only at step 27, and scoring keeps step 30 whose target is missing."""
    spec = step_spec("1h", None)
    y = [None, None, None] + [float(i) for i in range(3, 48)]
    y[30] = None
    out, report = build_features(series(spec, y, None), spec, require_target=require_target)
    assert report.feature_null_counts == {**y_nulls, "y_roll_std_2h": 1, "baseline_seasonal_naive": out.height}
    assert out.height == (20 if require_target else 21)


def rolling_rows(frequency: str, windows_steps, group):
    spec = step_spec(frequency, group and "site", windows_steps=windows_steps)
    y = [float(v) for v in (3, 7, 20, 1, 9, 4)] + [5.0] * (H - 6) + [0.0] * 4
    out, _ = build_features(series(spec, y, group and [group]), spec)
    step = STEP_HOURS[frequency]
    return out.sort("ts"), y, (lambda stat, n: f"y_{stat}_{duration_label(n * step)}")


@pytest.mark.parametrize("frequency", list(STEP_HOURS))
@pytest.mark.parametrize("group", [None, ODD])
def test_rolling_mean_needs_half_its_window_and_at_least_one_value(frequency, group):
    """Row H (the first feature row) ends its rolling windows at step 0, row H+1 at step 1:
    a 2-step mean needs 1 value, a 3-step mean 1, a 4-step mean 2."""
    out, y, col = rolling_rows(frequency, (2, 3, 4), group)
    first, second = out.row(0, named=True), out.row(1, named=True)
    assert first["y_lag_" + duration_label(H * STEP_HOURS[frequency])] == y[0]
    assert first[col("roll_mean", 2)] == y[0]
    assert first[col("roll_mean", 3)] == y[0]
    assert first[col("roll_mean", 4)] is None
    assert second[col("roll_mean", 4)] == pytest.approx((y[0] + y[1]) / 2, rel=1e-12)
    assert out.row(3, named=True)[col("roll_mean", 4)] == pytest.approx(np.mean(y[0:4]), rel=1e-12)


@pytest.mark.parametrize("frequency", list(STEP_HOURS))
@pytest.mark.parametrize("group", [None, ODD])
def test_rolling_std_needs_half_its_window_and_at_least_two_values(frequency, group):
    """A 2-step std needs 2 values (null at row H), a 6-step std needs 3 (null at row H+1)."""
    out, y, col = rolling_rows(frequency, (2, 6), group)
    rows = [out.row(i, named=True) for i in range(3)]
    assert rows[0][col("roll_std", 2)] is None
    assert rows[1][col("roll_std", 2)] == pytest.approx(np.std(y[0:2], ddof=1), rel=1e-12)
    assert rows[1][col("roll_std", 6)] is None
    assert rows[2][col("roll_std", 6)] == pytest.approx(np.std(y[0:3], ddof=1), rel=1e-12)
    assert rows[1][col("roll_mean", 6)] is None  # a 6-step mean needs 3 values too
    assert rows[2][col("roll_mean", 6)] == pytest.approx(np.mean(y[0:3]), rel=1e-12)


@pytest.mark.parametrize("frequency", ["30min", "1h"])
@pytest.mark.parametrize(("known", "ends_back"), [(True, 0), (False, H)], ids=["forecast", "observed-only"])
def test_temperature_rolling_mean_ends_at_t_for_a_forecast_and_at_t_minus_horizon_otherwise(frequency, known, ends_back):
    """The 3 h mean of a temperature known in advance reads up to t; an observed-only one
    only up to t - horizon (H steps), never a value the forecaster cannot have. At row H an
    observed-only window holds one value: enough for 3 hourly steps, too few for 6 half hours."""
    spec = step_spec(frequency, "site", numeric=[{"column": "temp", "known_in_advance": known}], temperature="temp")
    temp = [10.0 + 0.5 * i * i for i in range(H + 20)]
    y = [100.0 + i for i in range(H + 20)]
    out, _ = build_features(series(spec, y, [ODD], temp=temp), spec)
    n = int(3 / STEP_HOURS[frequency])
    rows = out.sort("ts").rows(named=True)
    for t in (H, H + 10, H + 19):
        end = t - ends_back
        window = temp[max(0, end - n + 1): end + 1]
        if len(window) < max(1, n // 2):  # a young window: at least half its values
            assert rows[t - H]["temp_roll_mean_3h"] is None, t
        else:
            assert rows[t - H]["temp_roll_mean_3h"] == pytest.approx(float(np.mean(window)), rel=1e-12), t
