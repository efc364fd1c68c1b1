"""The registered model is refit on train + validation (never on test); degree days against a
balance temperature fitted on training rows; ridge sees daily and weekly shapes; missing values
imputed where a model needs it; the LSTM window is defined in time."""

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_assets.core.metrics import regression_metrics
from mlops_assets.core.models.data import ModelData, Split
from mlops_assets.core.models.evaluation import refit
from mlops_assets.core.models.tabular import fit_balance, train_linear, train_xgboost
from mlops_assets.core.training_config import load_training_config, window_steps

FAST = load_training_config("fast")
FEATURES = ["temp", "hour", "minute_of_day_sin", "minute_of_day_cos", "day_of_week", "is_weekend", "is_holiday"]
BALANCE = 18.0


def _split(frame: pd.DataFrame) -> Split:
    y = frame["y"].to_numpy(float)
    baselines = {"seasonal_naive": frame["y_week"].to_numpy(float), "day_before": frame["y_day"].to_numpy(float)}
    X = frame[["t", *FEATURES]].reset_index(drop=True)
    return Split(X=X, y=y, timestamps=frame["t"].to_numpy(), groups=None, baselines=baselines)


def calendar_data(minutes: int = 60, days: int = 56, seed: int = 0) -> ModelData:
    """A single series with a step-shaped daily profile (not a sine), a different weekend
    profile, and a V-shaped temperature response around 18 °C; 70/15/15 split in time."""
    rng = np.random.default_rng(seed)
    t = pd.date_range("2024-01-01", periods=days * 24 * 60 // minutes, freq=f"{minutes}min")
    hour = t.hour.to_numpy()
    minute = hour * 60 + t.minute.to_numpy()
    dow = t.dayofweek.to_numpy() + 1
    weekend = dow >= 6
    weekday_shape = 300.0 * ((hour >= 7) & (hour < 9)) + 500.0 * ((hour >= 17) & (hour < 21)) - 200.0 * (hour < 5)
    weekend_shape = 150.0 * ((hour >= 10) & (hour < 14)) - 250.0
    temp = 18 + 9 * np.sin(2 * np.pi * np.arange(len(t)) / len(t) * 3) + 4 * np.sin(2 * np.pi * (minute / 1440 - 0.25))
    temp = temp + rng.normal(0, 1, len(t))
    weather = 25 * np.maximum(BALANCE - temp, 0) + 40 * np.maximum(temp - BALANCE, 0)
    y = 1000 + np.where(weekend, weekend_shape, weekday_shape) + weather
    y = y + rng.normal(0, 5, len(t))
    per_day = 24 * 60 // minutes
    frame = pd.DataFrame({
        "t": t, "temp": temp, "hour": hour, "minute_of_day_sin": np.sin(2 * np.pi * minute / 1440),
        "minute_of_day_cos": np.cos(2 * np.pi * minute / 1440), "day_of_week": dow, "is_weekend": weekend.astype(int),
        "is_holiday": 0, "y": y, "y_day": pd.Series(y).shift(per_day).to_numpy(),
        "y_week": pd.Series(y).shift(7 * per_day).to_numpy(),
    })
    n = len(frame)
    a, b = int(n * 0.7), int(n * 0.85)
    return ModelData(
        _split(frame.iloc[:a]), _split(frame.iloc[a:b]), _split(frame.iloc[b:]), FEATURES, [], FEATURES, "t", None,
        train_rows_available=a, frequency=timedelta(minutes=minutes), temperature="temp",
    )


@pytest.fixture(scope="module")
def data() -> ModelData:
    return calendar_data()


def _with_split(data: ModelData, name: str, y_factor: float = 1.0, temp_shift: float = 0.0) -> ModelData:
    part = getattr(data, name)
    X = part.X.copy()
    X["temp"] = X["temp"] + temp_shift
    return replace(data, **{name: replace(part, X=X, y=part.y * y_factor)})


@pytest.mark.parametrize("kind", ["xgboost", "linear"])
def test_the_refit_learns_from_validation_and_never_from_test(data, kind):
    train = train_xgboost if kind == "xgboost" else train_linear
    forecaster = train(data, FAST)[0]
    final = refit(forecaster, data, FAST)
    assert final.fit_info["fitted_on"] == "train+validation"
    assert final.fit_info["rows"] == len(data.train) + len(data.validation)
    last, test_start = pd.Timestamp(final.fit_info["last_timestamp"]), pd.Timestamp(data.test.timestamps.min())
    assert last == pd.Timestamp(data.validation.timestamps.max()) < test_start
    before, after = forecaster.predict(data.test.X), final.predict(data.test.X)
    assert not np.allclose(before, after)
    # Different test targets and temperatures: the same refit model. Different validation targets: another one.
    same = refit(forecaster, _with_split(data, "test", y_factor=10.0, temp_shift=5.0), FAST).predict(data.test.X)
    assert np.array_equal(same, after)
    moved = refit(forecaster, _with_split(data, "validation", y_factor=1.5), FAST).predict(data.test.X)
    assert not np.allclose(moved, after)


def test_xgboost_refit_uses_the_early_stopping_iteration_without_early_stopping(data):
    forecaster, _, extra = train_xgboost(data, FAST)
    model = refit(forecaster, data, FAST).pipeline.named_steps["model"]
    assert model.get_params()["n_estimators"] == extra["best_iteration"] + 1
    assert model.get_params()["early_stopping_rounds"] is None


def test_lstm_refit_trains_on_train_and_validation_for_the_chosen_epochs(data):
    from mlops_assets.core.models.sequence import train_lstm

    config = replace(FAST, lstm_epochs=3, lstm_patience=3, lstm_max_train_rows=10_000)
    forecaster, extra = train_lstm(data, config)
    final = refit(forecaster, data, config)
    assert final.fit_info["fitted_on"] == "train+validation" and final.fit_info["best_epoch"] == extra["best_epoch"]
    assert final.fit_info["rows"] == len(data.train) + len(data.validation)
    assert pd.Timestamp(final.fit_info["last_timestamp"]) < pd.Timestamp(data.test.timestamps.min())
    assert final.y_mean == pytest.approx(np.r_[data.train.y, data.validation.y].mean())
    assert not np.allclose(forecaster.predict(data.test.X), final.predict(data.test.X))


def test_balance_temperature_is_found_from_a_v_shaped_response():
    rng = np.random.default_rng(1)
    t = rng.uniform(-5, 35, 3000)
    y = 500 + 30 * np.maximum(16 - t, 0) + 50 * np.maximum(t - 16, 0) + rng.normal(0, 5, t.size)
    assert fit_balance(t, y) == pytest.approx(16, abs=1.0)
    groups = np.where(np.arange(t.size) % 2, "a", "b")
    assert fit_balance(t, y + np.where(groups == "a", 5000, 0), groups) == pytest.approx(16, abs=1.0)


@pytest.mark.parametrize("kind", ["xgboost", "linear"])
def test_degree_day_balance_is_fitted_on_training_rows_only(data, kind):
    train = train_xgboost if kind == "xgboost" else train_linear

    def balance(d: ModelData) -> float:
        return train(d, FAST)[0].pipeline.named_steps["prep"].balance_

    fitted = balance(data)
    assert fitted == pytest.approx(BALANCE, abs=1.5)
    assert fitted == fit_balance(data.train.X["temp"].to_numpy(), data.train.y)
    assert balance(_with_split(_with_split(data, "validation", temp_shift=8.0), "test", temp_shift=-8.0)) == fitted
    assert balance(_with_split(data, "train", temp_shift=6.0)) != fitted
    names = list(train(data, FAST)[0].pipeline.named_steps["prep"].get_feature_names_out())
    # The temperature, heating and cooling degrees (for ridge also per hour of the day): SHAP folds them onto it.
    assert names.count("temp") == 3 + (2 * 24 if kind == "linear" else 0)


def test_ridge_draws_the_daily_and_weekly_shape_from_the_calendar(data):
    forecaster = train_linear(data, FAST)[0]
    metrics = regression_metrics(data.test.y, forecaster.predict(data.test.X))
    assert metrics["r2"] > 0.97, metrics


def test_missing_feature_values_are_imputed_for_ridge_and_lstm_and_kept_for_xgboost(data):
    from mlops_assets.core.models.sequence import train_lstm

    gappy = data.test.X.copy()
    gappy.loc[::3, "temp"] = np.nan
    linear = train_linear(data, FAST)[0]
    assert np.isfinite(linear.predict(gappy)).all()
    numeric = linear.pipeline.named_steps["prep"].columns_.named_transformers_["numeric"]
    medians = numeric.named_steps["impute"].statistics_
    assert medians[0] == pytest.approx(np.median(data.train.X["temp"])) and len(medians) == len(FEATURES) + 2 + 2 * 24
    assert np.isfinite(train_lstm(data, FAST)[0].predict(gappy)).all()
    xgb = train_xgboost(data, FAST)[0]
    matrix = xgb.pipeline.named_steps["prep"].transform(gappy[FEATURES])
    assert np.isnan(matrix).any() and np.isfinite(xgb.predict(gappy)).all()


def test_the_lstm_window_is_defined_in_time():
    from mlops_assets.core.models.sequence import train_lstm

    assert window_steps(24, timedelta(minutes=30)) == 48
    assert window_steps(6, timedelta(hours=1)) == 6
    assert window_steps(24, timedelta(days=1)) == 2  # never fewer than two steps
    assert load_training_config("full").lstm_window_hours == 24 and FAST.lstm_window_hours == 6
    half_hourly = calendar_data(minutes=30, days=28)
    assert train_lstm(half_hourly, FAST)[0].window == 12


def _grouped(n_major: int, n_minor: int, start: str, rng) -> Split:
    g = np.array(["a"] * n_major + ["b"] * n_major + ["c"] * n_minor)
    x = rng.uniform(0, 10, len(g))
    y = 100 + x + np.where(g == "c", 30.0, 0.0) + rng.normal(0, 0.5, len(g))
    t = pd.date_range(start, periods=len(g), freq="min")
    order = rng.permutation(len(g))
    X = pd.DataFrame({"t": t, "g": g[order], "x": x[order]})
    return Split(X=X, y=y[order], timestamps=t.to_numpy(), groups=g[order])


def test_mitigation_decides_on_train_only_fits_and_refits_the_chosen_weights():
    """A rare group's offset is shrunk by ridge; re-weighting fixes it. The candidate handed to
    mitigation is the refit on train + validation; the decision must still use train-only fits."""
    from mlops_assets.core.fairness import BiasConfig
    from mlops_assets.core.mitigation import mitigate

    rng = np.random.default_rng(0)
    data = ModelData(
        _grouped(600, 30, "2024-01-01", rng), _grouped(200, 60, "2024-03-01", rng),
        _grouped(200, 60, "2024-04-01", rng),
        ["g", "x"], ["g"], ["x"], "t", "g",
    )
    config = replace(FAST, linear_space={"alpha": [50.0]}, linear_iterations=1)
    candidate = train_linear(data, config)[0]
    final = refit(candidate, data, config)
    bias = BiasConfig(normalized_threshold=0.5, min_group_rows=10)
    chosen, variants, reason = mitigate(final, data, config, bias, 0.05, ["a", "b", "c"])
    base = variants[0]
    assert base.train_only.fit_info["fitted_on"] == "train"
    train_only_mae = regression_metrics(data.validation.y, candidate.predict(data.validation.X))["mae"]
    assert base.validation_mae == pytest.approx(train_only_mae)
    assert chosen.name in ("balanced", "error_aware"), reason
    assert chosen.forecaster.fit_info["fitted_on"] == "train+validation"
    assert chosen.train_only.fit_info["fitted_on"] == "train"
    test_mae = regression_metrics(data.test.y, chosen.forecaster.predict(data.test.X))["mae"]
    assert chosen.test_mae == pytest.approx(test_mae)
