"""Scale-invariant superposition measures and ``metrics.measure`` on any weight matrix (the rescaling check).

Exact values on constructed solutions (pentagon, orthonormal, dropped features), invariance
under W → cW as a property, every measure's declared scaling checked against the numbers, and
identical results from numpy, JAX and PyTorch inputs.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toylab import metrics
from toylab.errors import ConfigError

pytestmark = pytest.mark.usefixtures("strict_promotion")  # conftest.py


def regular_polygon(k: int) -> np.ndarray:
    angles = 2 * np.pi * np.arange(k) / k
    return np.stack([np.cos(angles), np.sin(angles)])  # (2, k), unit columns


def pentagon() -> np.ndarray:
    return regular_polygon(5)


# ---------------------------------------------------------------------------------------------
# Exact values: the invariant equals Elhage's features per dimension on unit-norm solutions.


def test_pentagon_has_two_and_a_half_features_per_dimension_at_any_scale():
    for c in (1.0, 3.0, 0.01):
        W = c * pentagon()
        assert float(metrics.features_per_dimension_invariant(W)) == pytest.approx(2.5, rel=1e-6)
        assert float(metrics.dimensions_per_feature_invariant(W)) == pytest.approx(0.4, rel=1e-6)
        assert float(metrics.features_per_dimension(W)) == pytest.approx(2.5 * c**2, rel=1e-6)
        assert float(metrics.feature_scale(W)) == pytest.approx(c, rel=1e-6)


@pytest.mark.parametrize("m", [1, 2, 3, 7])
def test_orthonormal_features_give_one(m):
    Q = np.linalg.qr(np.random.default_rng(m).standard_normal((m, m)))[0]  # orthonormal columns
    for W in (Q, 5.0 * Q):
        assert float(metrics.features_per_dimension_invariant(W)) == pytest.approx(1.0, rel=1e-5)
    assert float(metrics.features_per_dimension(5.0 * Q)) == pytest.approx(25.0, rel=1e-5)


def test_dropped_features_do_not_count():
    # Dense inputs: the two most important features on orthogonal axes, three dropped (PCA-like).
    W = np.zeros((2, 5))
    W[0, 0], W[1, 1] = 1.0, -1.0
    assert float(metrics.features_per_dimension(W)) == pytest.approx(1.0)
    assert float(metrics.features_per_dimension_invariant(W)) == pytest.approx(1.0)
    assert float(metrics.features_per_dimension_invariant(40.0 * W)) == pytest.approx(1.0)
    assert float(metrics.feature_scale(40.0 * W)) == pytest.approx(40.0)


def test_digons_and_a_dedicated_feature():
    W = np.array([[1.0, -1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0]])
    assert float(metrics.features_per_dimension_invariant(7.0 * W)) == pytest.approx(5 / 3, rel=1e-6)


def test_unequal_norms_count_by_their_share():
    W = np.array([[1.0, 0.0], [0.0, 0.5]])  # q = 1, 1/4: (5/4)² / (17/16) = 25/17 features
    assert float(metrics.features_per_dimension_invariant(W)) == pytest.approx(25 / 17 / 2, rel=1e-6)
    assert float(metrics.feature_scale(W)) == pytest.approx(math.sqrt((1 + 1 / 16) / (5 / 4)), rel=1e-6)


def test_all_zero_matrix_and_its_gradients():
    Z = np.zeros((2, 3), dtype=np.float32)
    assert float(metrics.features_per_dimension_invariant(Z)) == 0.0
    assert float(metrics.feature_scale(Z)) == 0.0
    assert math.isinf(float(metrics.dimensions_per_feature_invariant(Z)))
    for metric in (metrics.features_per_dimension_invariant, metrics.feature_scale):
        grad = jax.grad(lambda w, metric=metric: metric(w))(jnp.asarray(Z))
        assert np.all(np.isfinite(grad))


def test_extreme_scales_neither_overflow_nor_underflow():
    for c in (1e-30, 1e30):  # ‖W_i‖⁴ alone would leave float32's range
        W = np.float32(c) * pentagon().astype(np.float32)
        assert float(metrics.features_per_dimension_invariant(W)) == pytest.approx(2.5, rel=1e-5)


# ---------------------------------------------------------------------------------------------
# Properties on random matrices.

matrices = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6),
    elements=st.floats(-10, 10, width=32),
).filter(lambda w: np.abs(w).max() > 1e-3)


@settings(max_examples=40, deadline=None)
@given(W=matrices, log_c=st.floats(-3, 3))
def test_rescaling_leaves_the_invariants_and_scales_the_rest(W, log_c):
    c = np.float32(10.0**log_c)
    cW = c * W
    np.testing.assert_allclose(metrics.features_per_dimension_invariant(cW),
                               metrics.features_per_dimension_invariant(W), rtol=1e-4)
    np.testing.assert_allclose(metrics.feature_dimensionality(cW), metrics.feature_dimensionality(W),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(metrics.features_per_dimension(cW), c**2 * metrics.features_per_dimension(W),
                               rtol=1e-4)
    np.testing.assert_allclose(metrics.feature_scale(cW), c * metrics.feature_scale(W), rtol=1e-4)


@settings(max_examples=60, deadline=None)
@given(W=matrices)
def test_invariant_lies_between_one_and_all_features_per_dimension(W):
    m, n = W.shape
    value = float(metrics.features_per_dimension_invariant(W))
    assert 1 / m - 1e-5 <= value <= n / m + 1e-5


@settings(max_examples=40, deadline=None)
@given(W=matrices, data=st.data())
def test_invariant_equals_elhage_when_kept_features_have_unit_norm(W, data):
    norms = np.linalg.norm(W, axis=0)
    keep = norms > 1e-2
    kept = data.draw(hnp.arrays(bool, keep.shape)) & keep
    unit = np.where(kept, W / np.where(keep, norms, 1.0), 0.0).astype(np.float32)  # norms 1 or 0
    if not kept.any():
        return
    np.testing.assert_allclose(metrics.features_per_dimension_invariant(unit),
                               metrics.features_per_dimension(unit), rtol=1e-5)


def test_batched_and_jitted_invariants_match_one_at_a_time():
    stack = np.random.default_rng(0).standard_normal((4, 3, 6)).astype(np.float32)
    for metric in (metrics.features_per_dimension_invariant, metrics.dimensions_per_feature_invariant,
                   metrics.feature_scale):
        batched = metric(stack)
        jitted = jax.jit(jax.vmap(metric))(stack)
        one_by_one = [float(metric(w)) for w in stack]
        np.testing.assert_allclose(batched, one_by_one, rtol=1e-6)
        np.testing.assert_allclose(jitted, one_by_one, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# feature_axis and the inputs a researcher brings.


@pytest.mark.parametrize("name", ["features_per_dimension", "features_per_dimension_invariant",
                                  "dimensions_per_feature", "feature_norms", "feature_dimensionality",
                                  "interference", "represented", "feature_scale"])
def test_every_metric_takes_feature_axis(name):
    metric = getattr(metrics, name)
    W = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32)  # (d_hidden, n_features)
    np.testing.assert_allclose(metric(W.T, feature_axis=0), metric(W), rtol=1e-6)
    with pytest.raises(ConfigError, match="feature_axis=2"):
        metric(W, feature_axis=2)


def test_metrics_take_torch_tensors_that_require_grad():
    import torch  # the test extra installs it: a missing torch must fail, not skip
    W = np.random.default_rng(2).standard_normal((3, 5)).astype(np.float32)
    tensor = torch.tensor(W, requires_grad=True)
    np.testing.assert_array_equal(metrics.feature_dimensionality(tensor), metrics.feature_dimensionality(W))
    # An nn.Linear(3, 5) used as a decoder stores weight as (out=5, in=3): features are rows.
    np.testing.assert_array_equal(metrics.features_per_dimension_invariant(tensor.T, feature_axis=0),
                                  metrics.features_per_dimension_invariant(W))


def _same_numbers(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], float):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-7), key
        elif isinstance(a[key], list) and a[key] and isinstance(a[key][0], float):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-7, err_msg=key)
        else:
            assert a[key] == b[key], key


def test_measure_gives_identical_numbers_for_numpy_jax_torch_and_lists():
    import torch  # the test extra installs it: a missing torch must fail, not skip
    W = (2.0 * pentagon() + 0.05 * np.random.default_rng(3).standard_normal((2, 5))).astype(np.float32)

    class Foreign:  # any array library that speaks numpy's __array__ protocol
        def __array__(self, dtype=None, copy=None):
            return W

    reference = metrics.measure(W)
    for other in (jnp.asarray(W), torch.tensor(W, requires_grad=True), W.tolist(), Foreign(),
                  torch.tensor(W.T.copy()).T):  # a non-contiguous view
        _same_numbers(metrics.measure(other), reference)
    _same_numbers(metrics.measure(torch.tensor(W.T.copy()), feature_axis=0), reference)


def test_bfloat16_tensors_are_widened():
    import torch  # the test extra installs it: a missing torch must fail, not skip
    tensor = torch.tensor(pentagon(), dtype=torch.bfloat16)
    assert metrics.measure(tensor)["features_per_dimension_invariant"] == pytest.approx(2.5, rel=1e-2)


def test_toylab_never_imports_torch():
    code = ("import sys, numpy as np; import toylab, toylab.cli, toylab.arrays; "
            "from toylab import metrics; metrics.measure(np.eye(2)); "
            "from toylab.experiments import rescale; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------
# measure(): every measure side by side.


def test_measure_pentagon_exact_values():
    result = metrics.measure(3.0 * pentagon())
    assert (result["d_hidden"], result["n_features"]) == (2, 5)
    assert result["features_per_dimension"] == pytest.approx(22.5, rel=1e-6)
    assert result["features_per_dimension_invariant"] == pytest.approx(2.5, rel=1e-6)
    assert result["dimensions_per_feature"] == pytest.approx(2 / 45, rel=1e-6)
    assert result["dimensions_per_feature_invariant"] == pytest.approx(0.4, rel=1e-6)
    assert result["feature_scale"] == pytest.approx(3.0, rel=1e-6)
    np.testing.assert_allclose(result["feature_norms"], 3.0, rtol=1e-6)
    np.testing.assert_allclose(result["feature_norms_relative"], 1.0, rtol=1e-6)
    np.testing.assert_allclose(result["feature_dimensionality"], 0.4, rtol=1e-5)
    np.testing.assert_allclose(result["interference_relative"], 1.5, rtol=1e-5)  # 2·cos²72° + 2·cos²144°
    assert result["mean_feature_dimensionality"] == pytest.approx(0.4, rel=1e-5)
    assert result["sum_feature_dimensionality"] == pytest.approx(2.0, rel=1e-5)
    assert result["n_represented"] == 5 and all(result["represented"])
    assert result["geometry"] == [{"features": [0, 1, 2, 3, 4], "dims": 2, "name": "pentagon", "D": 0.4}]
    json.dumps(result, allow_nan=False)  # strict JSON


@pytest.mark.parametrize("c", [0.1, 4.0])
def test_measure_declares_how_each_value_scales(c):
    W = np.random.default_rng(5).standard_normal((3, 6)).astype(np.float32)
    base, scaled = metrics.measure(W), metrics.measure(np.float32(c) * W)
    assert set(base["scaling"]) <= set(base)
    for key, power in base["scaling"].items():
        if key == "geometry":  # same groups; an "other" group's D is a measured mean
            assert [{**g, "D": None} for g in scaled[key]] == [{**g, "D": None} for g in base[key]]
            np.testing.assert_allclose([g["D"] for g in scaled[key]], [g["D"] for g in base[key]], rtol=1e-5)
            continue
        expected = np.asarray(base[key], dtype=float) * c**power
        np.testing.assert_allclose(np.asarray(scaled[key], dtype=float), expected, rtol=1e-4, atol=1e-7,
                                   err_msg=key)


def test_measure_zero_matrix_is_strict_json():
    result = metrics.measure(np.zeros((2, 3)))
    assert result["dimensions_per_feature"] is None and result["features_per_dimension_invariant"] == 0.0
    assert result["n_represented"] == 0
    json.dumps(result, allow_nan=False)


# A pentagon of unequal norms, nudged off its plane of symmetry: every measure is a distinct
# number, and D_i, interference and norms all differ between features.
SKEWED = pentagon() * np.array([1.0, 0.9, 0.8, 1.1, 0.3]) + 0.05 * np.random.default_rng(11).standard_normal((2, 5))
FLOAT64_LOG10_RANGE = (math.log10(np.finfo(np.float64).tiny), math.log10(np.finfo(np.float64).max))


@pytest.mark.parametrize("c", [1e-300, 1e-25, 1.0, 1e25, 1e200])
def test_measure_holds_over_the_whole_float64_range(c):
    # Normalised before JAX (float32) sees it: in float32, 1e-25·W read 0 features per dimension
    # and 5 not represented, 1e25·W an infinite (null) one, 1e200·W "contains inf".
    base, scaled = metrics.measure(SKEWED), metrics.measure(c * SKEWED)
    for key, power in base["scaling"].items():
        if power == 0:
            numbers = np.asarray(base[key], dtype=object).ravel()
            if key != "geometry" and all(isinstance(x, float) for x in numbers):
                np.testing.assert_allclose(scaled[key], base[key], rtol=1e-6, err_msg=key)
            else:
                assert scaled[key] == base[key], key
            continue
        values = np.atleast_1d(np.asarray(base[key], dtype=np.float64))
        fits = [v == 0 or FLOAT64_LOG10_RANGE[0] <= math.log10(abs(v)) + power * math.log10(c) <= FLOAT64_LOG10_RANGE[1]
                for v in values]
        got = scaled[key] if isinstance(scaled[key], list) else [scaled[key]]
        for value, expected, representable in zip(got, values, fits, strict=True):
            if representable:
                assert value == pytest.approx(expected * c**power if power > 0 else expected / c**-power,
                                              rel=1e-6), key
            else:  # said so, in the result and by name, instead of a silent inf or 0
                assert value is None and "beyond float64's range" in scaled["out_of_float64_range"][key], key
        assert (key in scaled["out_of_float64_range"]) == (not all(fits)), key
    assert base["n_represented"] == scaled["n_represented"] == 5


def test_the_metrics_refuse_float64_matrices_that_float32_cannot_hold():
    for W in (1e200 * pentagon(), 1e-300 * pentagon()):
        with pytest.raises(ConfigError, match=r"max\|W\| = 1e[-+]\d+, outside float32's normal range"):
            metrics.feature_dimensionality(W)
    # ... and measure what float32 can: W / max|W| leaves the invariant ones unchanged.
    np.testing.assert_allclose(metrics.feature_dimensionality(1e30 * pentagon()), 0.4, rtol=1e-5)


@pytest.mark.parametrize(("bad", "expected"), [
    (np.ones(4), "got shape (4,)"),
    (np.array([[1.0, np.nan]]), "nan at index (0, 1)"),
    (np.ones((3, 2, 5)), "a stack of 3"),
    (np.ones((0, 5)), "at least one entry, got shape (0, 5)"),
])
def test_measure_refuses_bad_matrices_in_one_line(bad, expected):
    with pytest.raises(ConfigError) as info:
        metrics.measure(bad)
    assert expected in str(info.value) and "\n" not in str(info.value)
