import numpy as np
import pandas as pd
import polars as pl
import pytest

from mlops_assets.core.features import build_features
from mlops_assets.core.metrics import metrics_by_group, regression_metrics
from mlops_assets.core.models.data import model_data
from mlops_assets.core.models.search import distributions, time_folds
from mlops_assets.core.models.sequence import window_positions
from mlops_assets.core.splitting import time_split
from mlops_assets.core.spec import load_spec
from mlops_assets.core.training_config import load_training_config
from mlops_assets_tests.builders import hourly_frame

SPEC = load_spec()
FAST = load_training_config("fast")


@pytest.fixture(scope="module")
def data():
    features, _ = build_features(hourly_frame(SPEC, ["A", "B", "C"], 24 * 30), SPEC)
    train, validation, test, _ = time_split(features, SPEC)
    return model_data(train, validation, test, SPEC)


def test_metrics_match_definitions():
    y, p = np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 2.0])
    m = regression_metrics(y, p)
    assert m["mse"] == pytest.approx(5 / 3) and m["rmse"] == pytest.approx(np.sqrt(5 / 3))
    assert m["mae"] == pytest.approx(1.0) and m["mape"] == pytest.approx((0 + 50 + 50) / 3)
    assert m["r2"] == pytest.approx(1 - 5 / np.sum((y - y.mean()) ** 2))
    assert np.isnan(regression_metrics(np.array([]), np.array([]))["rmse"])
    table = metrics_by_group(y, p, np.array(["a", "a", "b"]))
    assert table.get_column("group").to_list() == ["a", "b"] and table.get_column("n").to_list() == [2, 1]


def test_time_folds_validate_on_later_hours_only():
    ts = np.repeat(np.arange(100), 3)  # three groups share each hour
    folds = time_folds(ts, 5)
    assert len(folds) == 5
    for train_idx, test_idx in folds:
        assert ts[train_idx].max() < ts[test_idx].min()
        assert len(set(ts[test_idx])) * 3 == len(test_idx)  # whole hours, every group


def test_search_space_from_config():
    dists = distributions({"a": [1, 2], "b": {"low": 0.1, "high": 1.0, "log": True}})
    assert dists["a"] == [1, 2] and 0.1 <= dists["b"].rvs(random_state=0) <= 1.0
    with pytest.raises(ValueError, match="search space entry 'c'"):
        distributions({"c": 3})


def test_windows_stay_within_a_group_and_in_time_order():
    frame = pd.DataFrame({"g": ["a", "b", "a", "b", "a"], "t": [2, 1, 0, 0, 1]})
    pos = window_positions(frame, "t", "g", 3)
    # Row 0 is a@t2: its window is a@t0 (row 2), a@t1 (row 4), itself.
    assert pos[0].tolist() == [2, 4, 0]
    assert pos[3].tolist() == [-1, -1, 3] and pos[1].tolist() == [-1, 3, 1]


def test_preprocessing_is_fitted_on_training_rows_only(data):
    from mlops_assets.core.models.tabular import train_linear

    forecaster, _, _ = train_linear(data, FAST)
    columns = forecaster.pipeline.named_steps["prep"].columns_
    scaler = columns.named_transformers_["numeric"].named_steps["scale"]
    numeric = data.train.X[data.numeric].astype(float)
    # A young group's rows keep their long lags null: the scaler sees them filled with training medians.
    assert numeric.isna().any().any()
    imputed = numeric.fillna(numeric.median())
    assert np.allclose(scaler.mean_[: len(data.numeric)], imputed.mean().to_numpy())
    encoder = columns.named_transformers_["groups"]
    assert list(encoder.categories_[0]) == ["A", "B", "C"]


@pytest.mark.parametrize("kind", ["xgboost", "linear", "lstm"])
def test_same_data_config_and_seed_give_the_same_metrics(data, kind):
    from mlops_assets.core.models.sequence import train_lstm
    from mlops_assets.core.models.tabular import train_linear, train_xgboost

    def run():
        if kind == "lstm":
            return train_lstm(data, FAST)[0]
        return (train_xgboost if kind == "xgboost" else train_linear)(data, FAST)[0]

    first, second = run(), run()
    a, b = first.predict(data.test.X), second.predict(data.test.X)
    assert regression_metrics(data.test.y, a) == regression_metrics(data.test.y, b)


def test_xgboost_beats_a_naive_lag_forecast(data):
    from mlops_assets.core.models.tabular import train_xgboost

    forecaster, search, extra = train_xgboost(data, FAST)
    model_rmse = regression_metrics(data.test.y, forecaster.predict(data.test.X))["rmse"]
    naive_rmse = regression_metrics(data.test.y, data.test.X["load_mw_lag_24h"].to_numpy())["rmse"]
    assert model_rmse < naive_rmse
    assert search.cv_results.height == FAST.xgboost_iterations
    # early stopping keeps the round with the lowest validation RMSE, and the forecaster records it
    curve = forecaster.pipeline.named_steps["model"].evals_result()["validation_0"]["rmse"]
    assert extra["best_iteration"] == forecaster.fit_info["best_iteration"] == int(np.argmin(curve))


def test_training_row_cap_keeps_the_newest_whole_hours_of_every_group():
    features, _ = build_features(hourly_frame(SPEC, ["A", "B", "C"], 24 * 30), SPEC)
    train, validation, test, _ = time_split(features, SPEC)
    capped = model_data(train, validation, test, SPEC, max_train_rows=100)
    full = model_data(train, validation, test, SPEC)
    assert capped.train_rows_available == full.train_rows_available == train.height > 100
    assert len(capped.train) == 99  # 33 whole hours of 3 groups: a 34th hour would pass 100 rows
    kept = capped.train.X
    assert kept.groupby(SPEC.group).size().to_dict() == {"A": 33, "B": 33, "C": 33}
    assert kept[SPEC.timestamp].min() > full.train.X[SPEC.timestamp].iloc[: len(full.train) - 99].max()
    # the kept rows are exactly the newest 99 of the full split, in the same order, same targets
    assert kept.reset_index(drop=True).equals(full.train.X.iloc[-99:].reset_index(drop=True))
    assert np.array_equal(capped.train.y, full.train.y[-99:])
    assert len(capped.validation) == len(full.validation) and len(capped.test) == len(full.test)
    assert model_data(train, validation, test, SPEC, max_train_rows=10**9).train.X.equals(full.train.X)


def test_a_scanned_training_split_gives_the_same_model_data_as_a_loaded_one(tmp_path):
    features, _ = build_features(hourly_frame(SPEC, ["A", "B", "C"], 24 * 30), SPEC)
    train, validation, test, _ = time_split(features, SPEC)
    path = tmp_path / "train_set.parquet"
    train.sample(fraction=1.0, shuffle=True, seed=3).write_parquet(path, row_group_size=50, statistics=True)
    for cap in (100, None):
        scanned = model_data(pl.scan_parquet(path), validation, test, SPEC, max_train_rows=cap)
        loaded = model_data(train, validation, test, SPEC, max_train_rows=cap)
        assert scanned.train_rows_available == loaded.train_rows_available == train.height
        assert scanned.train.X.equals(loaded.train.X) and np.array_equal(scanned.train.y, loaded.train.y)
        assert np.array_equal(scanned.train.groups, loaded.train.groups)


def test_capped_training_fits_preprocessing_on_the_kept_rows_only():
    from mlops_assets.core.models.tabular import train_linear

    features, _ = build_features(hourly_frame(SPEC, ["A", "B", "C"], 24 * 30), SPEC)
    train, validation, test, _ = time_split(features, SPEC)
    capped = model_data(train, validation, test, SPEC, max_train_rows=300)
    forecaster, _, _ = train_linear(capped, FAST)
    scaler = forecaster.pipeline.named_steps["prep"].columns_.named_transformers_["numeric"].named_steps["scale"]
    assert np.all(scaler.n_samples_seen_ == 300)
    kept = capped.train.X[capped.numeric].astype(float)
    assert np.allclose(scaler.mean_[: len(capped.numeric)], kept.mean().to_numpy())


def test_max_train_rows_is_validated_and_overridable(tmp_path):
    path = tmp_path / "training.yaml"
    path.write_text("full:\n  max_train_rows: null\n")
    assert load_training_config("full", str(path)).max_train_rows is None
    assert load_training_config("full").max_train_rows == 250_000
    path.write_text("full:\n  max_train_rows: 0\n")
    with pytest.raises(ValueError, match="max_train_rows must be a positive"):
        load_training_config("full", str(path))


def test_chunked_prediction_equals_whole_frame_prediction(data):
    from mlops_assets.core.models.tabular import train_xgboost

    forecaster, _, _ = train_xgboost(data, FAST)
    whole = forecaster.predict(data.test.X)
    assert len(data.test) > 7
    assert np.array_equal(forecaster.predict(data.test.X, chunk_rows=7), whole)


def test_scaled_inputs_are_bounded_so_ridge_cannot_extrapolate_wildly(data):
    from mlops_assets.core.models.tabular import MAX_SCALED, train_linear

    forecaster, _, _ = train_linear(data, FAST)
    prep = forecaster.pipeline.named_steps["prep"]
    X = data.test.X[forecaster.feature_columns].head(5).copy()
    typical = forecaster.predict(X)
    X[data.numeric[0]] = 1e9  # far outside anything seen in training
    assert np.abs(prep.transform(X)).max() <= MAX_SCALED
    wild = forecaster.predict(X)
    assert np.isfinite(wild).all() and np.abs(wild - typical).max() < 100 * np.abs(data.train.y).max()
