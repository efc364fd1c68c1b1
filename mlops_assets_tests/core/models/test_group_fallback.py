"""The group fallback: known groups keep the model, other groups get a scale-free,
group-agnostic forecast; single series are unchanged."""

from datetime import timedelta
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from mlops_assets.core.features import build_features, target_lag_columns, rolling_columns
from mlops_assets.core.metrics import regression_metrics
from mlops_assets.core.models.data import model_data
from mlops_assets.core.models.evaluation import refit
from mlops_assets.core.models.fallback import GroupRouter, known_min_rows, primary_of, with_group_fallback
from mlops_assets.core.models.tabular import train_linear, train_xgboost
from mlops_assets.core.spec import load_spec, spec_from_dict
from mlops_assets.core.splitting import time_split
from mlops_assets.core.training_config import load_training_config
from mlops_assets_tests.builders import hourly_frame

SPEC = load_spec()
FAST = load_training_config("fast")
ODD = "Zone A/B (ö)"


def _data(frame, spec=SPEC):
    features, _ = build_features(frame, spec)
    train, validation, test, _ = time_split(features, spec)
    return model_data(train, validation, test, spec)


@pytest.fixture(scope="module")
def grouped():
    """Three groups trained on; a fourth, ten times larger than any, only in a later frame."""
    frame = hourly_frame(SPEC, ["A", "B", ODD], 24 * 30)
    data = _data(frame)
    model, _, _ = train_xgboost(data, FAST)
    final = refit(model, data, FAST)
    big = hourly_frame(SPEC, [f"g{i}" for i in range(30)], 24 * 30).filter(pl.col(SPEC.group) == "g29")
    new, _ = build_features(big.with_columns(pl.lit("NEW").alias(SPEC.group)), SPEC)
    return data, final, with_group_fallback(final, data, seed=1), new


def test_known_groups_are_forecast_by_the_model_itself(grouped):
    data, final, router, _ = grouped
    assert isinstance(router, GroupRouter) and primary_of(router) is final
    assert router.known == tuple(sorted(["A", "B", ODD]))
    X = data.test.X
    assert np.array_equal(router.predict(X), final.predict(X))
    assert set(router.served_by(X)) == {"model"}


def test_an_unseen_group_goes_to_the_fallback_row_by_row(grouped):
    data, final, router, new = grouped
    from mlops_assets.core.models.data import to_split

    unseen = to_split(new, SPEC).X.tail(48)
    mixed = (
        __import__("pandas").concat([data.test.X.head(5), unseen.head(3), data.test.X.iloc[5:8]], ignore_index=True)
    )
    served = router.served_by(mixed)
    assert served.tolist() == ["model"] * 5 + ["fallback"] * 3 + ["model"] * 3
    predicted = router.predict(mixed)
    assert np.array_equal(predicted[served == "model"], final.predict(mixed[served == "model"]))
    assert np.array_equal(predicted[served == "fallback"], router.fallback.predict(unseen.head(3)))


def test_the_fallback_is_scale_free_and_beats_the_ignored_one_hot(grouped):
    """The new group is 10x the largest trained group: the model, blind to its one-hot and
    bounded by the loads it saw, misses; the fallback scales with the group's own lags."""
    _, final, router, new = grouped
    from mlops_assets.core.models.data import to_split

    split = to_split(new, SPEC)
    old = regression_metrics(split.y, final.predict(split.X))["mape"]
    fallback = regression_metrics(split.y, router.predict(split.X))["mape"]
    assert fallback < 5.0 < old


def test_the_fallback_accepts_a_new_groups_first_week(grouped):
    """Only the shortest lag present (the longer lags and windows still null): a forecast, near
    the truth, no NaN."""
    _, _, router, new = grouped
    from mlops_assets.core.models.data import to_split

    split = to_split(new, SPEC)
    short = target_lag_columns(SPEC)[0]
    longer = [c for c in [*target_lag_columns(SPEC), *rolling_columns(SPEC)] if c != short and "24h" not in c]
    first_week = split.X.copy()
    first_week[longer] = np.nan
    predicted = router.predict(first_week)
    assert np.isfinite(predicted).all()
    assert regression_metrics(split.y, predicted)["mape"] < 8.0


def test_a_group_with_less_than_a_week_of_fitted_rows_is_not_known():
    """A group that starts two days before the data ends has too few fitted rows: served by the
    fallback. The rule is a week of steps (168 rows hourly, 7 rows daily)."""
    frame = hourly_frame(SPEC, ["A", "B"], 24 * 30)
    young = hourly_frame(SPEC, ["A", "B", "C"], 24 * 30).filter(pl.col(SPEC.group) == "C").tail(24 * 3)
    data = _data(pl.concat([frame, young]))
    model, _, _ = train_linear(data, FAST)
    router = with_group_fallback(model, data)
    assert router.known == ("A", "B") and router.min_rows == 168
    assert [known_min_rows(SimpleNamespace(frequency=timedelta(minutes=m))) for m in (30, 60, 1440)] == [336, 168, 7]


def test_a_single_series_model_is_not_wrapped():
    single = spec_from_dict({k: v for k, v in _raw_spec().items() if k != "group"})
    data = _data(hourly_frame(single, None, 24 * 30), single)
    model, _, _ = train_linear(data, FAST)
    assert with_group_fallback(model, data) is model


def _raw_spec() -> dict:
    import yaml

    return yaml.safe_load(open(SPEC.source).read())

