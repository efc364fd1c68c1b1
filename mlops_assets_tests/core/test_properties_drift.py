"""Properties of the drift statistics over random samples: PSI with the reference's quantile
bins (core/profile.py) is never negative, zero for the reference sample itself (in any order)
and zero exactly when the current sample fills the bins in the reference's proportions; KS
and Wasserstein-1 of a sample against itself are zero."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from mlops_assets.core.drift import DriftConfig, feature_drift, ks_and_wasserstein, psi
from mlops_assets.core.profile import bin_fractions, numeric_profile

# Continuous values, and few distinct ones (ties make quantile edges coincide).
value = st.one_of(st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False), st.integers(-3, 3).map(float))
samples = st.lists(value, min_size=1, max_size=200).map(np.array)
bins = st.integers(2, 20)


@given(samples, bins, st.randoms(use_true_random=False))
def test_psi_of_the_reference_sample_itself_is_zero(values: np.ndarray, count: int, rng):
    profile = numeric_profile(pl.Series(values), count)
    shuffled = values.copy()
    rng.shuffle(shuffled)
    assert psi(profile["bin_fractions"], shuffled, profile["bin_edges"]) == 0.0


@given(samples, samples, bins)
def test_psi_is_never_negative_and_zero_only_for_the_same_bin_proportions(reference: np.ndarray, current: np.ndarray, count: int):
    profile = numeric_profile(pl.Series(reference), count)
    value = psi(profile["bin_fractions"], current, profile["bin_edges"])
    assert value >= 0.0
    same_shape = np.allclose(bin_fractions(current, profile["bin_edges"]), profile["bin_fractions"], rtol=0, atol=1e-12)
    assert (value == 0.0) == same_shape, (value, same_shape)


@given(samples.filter(lambda v: v.size >= 2), bins)
def test_a_sample_against_itself_shows_no_drift(values: np.ndarray, count: int):
    d, p, w = ks_and_wasserstein(values, values)
    assert (d, p, w) == (0.0, 1.0, 0.0)
    profile = {"columns": {"x": numeric_profile(pl.Series(values), count)}}
    [row] = feature_drift(profile, {"x": values}, {"x": values[::-1]}, DriftConfig())
    assert (row["psi"], row["ks"], row["wasserstein"], row["drifted"]) == (0.0, 0.0, 0.0, False)
