"""Superposition metrics and geometry: exact values on constructed polytopes, invariances,
bounds on random matrices, and jit/vmap/grad behaviour (Elhage et al. 2022, §2 and §6)."""

from __future__ import annotations

import json

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


# ---------------------------------------------------------------------------------------------
# Constructed polytopes: (d_hidden, n_features), unit columns.


def regular_polygon(k: int) -> np.ndarray:
    angles = 2 * np.pi * np.arange(k) / k
    return np.stack([np.cos(angles), np.sin(angles)])  # (2, k)


def tetrahedron() -> np.ndarray:
    vertices = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=float)
    return vertices.T / np.sqrt(3)  # (3, 4)


def square_antiprism() -> np.ndarray:
    """Two unit squares at heights ±h, the lower one turned by 45°.

    D_i = 3/8 needs a tight frame, Σ_i W_i W_iᵀ = (8/3) I: the z-entry gives 8h² = 8/3, so
    h = 1/√3 (then the x and y entries are 4r² = 4(1 − h²) = 8/3 too). This is not the antiprism
    with equal edges (that one has h² = √2/(4 + √2) ≈ 0.261, and D_i ≠ 3/8).
    """
    h = 1 / np.sqrt(3)
    r = np.sqrt(1 - h**2)
    top = 2 * np.pi * np.arange(4) / 4
    bottom = top + np.pi / 4
    angles = np.concatenate([top, bottom])
    z = np.concatenate([np.full(4, h), np.full(4, -h)])
    return np.stack([r * np.cos(angles), r * np.sin(angles), z])  # (3, 8)


POLYTOPES = {
    # name: (W, D_i, dims)
    "dedicated": (np.eye(3), 1.0, 1),
    "digon": (np.array([[1.0, -1.0]]), 1 / 2, 1),
    "triangle": (regular_polygon(3), 2 / 3, 2),
    "tetrahedron": (tetrahedron(), 3 / 4, 3),
    "pentagon": (regular_polygon(5), 2 / 5, 2),
    "square antiprism": (square_antiprism(), 3 / 8, 3),
}


def test_square_antiprism_is_a_tight_frame():
    W = square_antiprism()
    np.testing.assert_allclose(np.linalg.norm(W, axis=0), 1.0, atol=1e-12)
    np.testing.assert_allclose(W @ W.T, (8 / 3) * np.eye(3), atol=1e-12)
    overlaps = np.abs(W.T @ W)[~np.eye(8, dtype=bool)]
    # The smallest overlap, (√2 − 1)/3 ≈ 0.138, is what metrics.OVERLAP_THRESHOLD must stay under.
    assert overlaps.min() == pytest.approx((np.sqrt(2) - 1) / 3)
    assert overlaps.min() > metrics.OVERLAP_THRESHOLD


def test_regular_pentagon():
    W = regular_polygon(5)
    np.testing.assert_allclose(metrics.feature_dimensionality(W), 2 / 5, atol=1e-5)
    assert float(metrics.features_per_dimension(W)) == pytest.approx(2.5, abs=1e-5)
    assert float(metrics.dimensions_per_feature(W)) == pytest.approx(0.4, abs=1e-5)
    np.testing.assert_allclose(metrics.feature_norms(W), 1.0, atol=1e-6)
    # 2cos²72° + 2cos²144° = 3/2
    np.testing.assert_allclose(metrics.interference(W), 1.5, atol=1e-5)
    assert int(metrics.n_represented(W)) == 5
    assert metrics.geometry(W) == [metrics.FeatureGroup((0, 1, 2, 3, 4), 2, "pentagon", 0.4)]
    assert metrics.describe(metrics.geometry(W)) == "pentagon{0,1,2,3,4}"


@pytest.mark.parametrize("name", list(POLYTOPES))
def test_polytope_dimensionality_and_geometry(name):
    W, D, dims = POLYTOPES[name]
    n = W.shape[1]
    np.testing.assert_allclose(metrics.feature_dimensionality(W), D, atol=1e-5)
    groups = metrics.geometry(W)
    if name == "dedicated":
        expected = [metrics.FeatureGroup((i,), 1, "dedicated", 1.0) for i in range(n)]
    else:
        expected = [metrics.FeatureGroup(tuple(range(n)), dims, name, dims / n)]
    assert groups == expected
    assert groups[0].D == D  # the exact fraction, not a float32 measurement
    round_trip = json.loads(json.dumps([g.to_dict() for g in groups]))
    assert round_trip[0] == {"features": list(expected[0].features), "dims": dims, "name": name, "D": D}


def test_polytope_survives_small_noise():
    W = regular_polygon(5) + 0.01 * np.random.default_rng(0).standard_normal((2, 5))
    assert [g.name for g in metrics.geometry(W)] == ["pentagon"]


def test_zero_column_is_not_represented():
    W = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # feature 1 is zero
    np.testing.assert_array_equal(metrics.feature_dimensionality(W), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(metrics.feature_norms(W), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(metrics.interference(W), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(metrics.represented(W), [True, False, True])
    groups = metrics.geometry(W)
    assert groups == [
        metrics.FeatureGroup((0,), 1, "dedicated", 1.0),
        metrics.FeatureGroup((2,), 1, "dedicated", 1.0),
        metrics.FeatureGroup((1,), 0, "not represented", 0.0),
    ]
    assert metrics.describe(groups) == "2×dedicated, 1 not represented"


def test_numerically_zero_column_has_zero_dimensionality():
    W = np.array([[1.0, 1e-9], [0.0, 1e-9]], dtype=np.float32)  # 1e-9 ≪ 1e-6 relative norm
    np.testing.assert_array_equal(metrics.feature_dimensionality(W), [1.0, 0.0])


def test_all_zero_matrix():
    W = np.zeros((2, 3))
    np.testing.assert_array_equal(metrics.feature_dimensionality(W), 0.0)
    np.testing.assert_array_equal(metrics.feature_norms(W), 0.0)
    assert int(metrics.n_represented(W)) == 0
    assert metrics.describe(metrics.geometry(W)) == "3 not represented"


def test_block_diagonal_digon_and_dedicated():
    W = np.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # digon {0, 2} on axis 0, feature 1 on axis 1
    np.testing.assert_allclose(metrics.feature_dimensionality(W), [0.5, 1.0, 0.5], atol=1e-6)
    assert metrics.geometry(W) == [
        metrics.FeatureGroup((0, 2), 1, "digon", 0.5),
        metrics.FeatureGroup((1,), 1, "dedicated", 1.0),
    ]


def test_pentagon_beside_dedicated_dimension():
    W = np.zeros((3, 6))
    W[:2, [0, 2, 3, 4, 5]] = regular_polygon(5)
    W[2, 1] = 1.0
    groups = metrics.geometry(W)
    assert [(g.features, g.name) for g in groups] == [((0, 2, 3, 4, 5), "pentagon"), ((1,), "dedicated")]
    assert float(jnp.sum(metrics.feature_dimensionality(W))) == pytest.approx(3.0, abs=1e-5)


def test_lopsided_digon_is_other():
    W = np.array([[1.0, -0.4]])  # both represented (0.4 ≥ 0.25), but D = 0.86 and 0.14
    np.testing.assert_allclose(metrics.feature_dimensionality(W), [1 / 1.16, 0.16 / 1.16], atol=1e-6)
    (group,) = metrics.geometry(W)
    assert (group.name, group.dims) == ("other", 1)
    assert group.D == pytest.approx(0.5, abs=1e-6)  # measured mean for "other"


def test_represented_threshold_is_relative():
    W = np.array([[1.0, 0.3, 0.2, 0.0]])
    np.testing.assert_array_equal(metrics.represented(W), [True, True, False, False])
    np.testing.assert_array_equal(metrics.represented(W, threshold=0.5), [True, False, False, False])
    np.testing.assert_array_equal(metrics.represented(1e-3 * W), [True, True, False, False])
    assert int(metrics.n_represented(W, threshold=0.1)) == 3


@pytest.mark.parametrize("c", [1e-3, 0.5, 7.0, 1e3])
def test_scale_invariance(c):
    W = np.random.default_rng(1).standard_normal((3, 7)).astype(np.float32)
    W[:, 4] = 0.0
    cW = np.float32(c) * W
    np.testing.assert_allclose(metrics.feature_dimensionality(cW), metrics.feature_dimensionality(W), rtol=1e-5)
    np.testing.assert_allclose(
        metrics.features_per_dimension(cW), c**2 * metrics.features_per_dimension(W), rtol=1e-5
    )
    np.testing.assert_allclose(metrics.interference(cW), c**2 * metrics.interference(W), rtol=1e-4)
    np.testing.assert_allclose(metrics.feature_norms(cW), c * metrics.feature_norms(W), rtol=1e-5)
    np.testing.assert_array_equal(metrics.represented(cW), metrics.represented(W))
    pentagon = regular_polygon(5)
    assert metrics.geometry(c * pentagon) == metrics.geometry(pentagon)


def test_dimensionality_matches_float64_reference():
    W = np.random.default_rng(2).standard_normal((4, 9))
    unit = W / np.linalg.norm(W, axis=0)
    reference = np.sum(W**2, axis=0) / np.sum((unit.T @ W) ** 2, axis=1)
    np.testing.assert_allclose(metrics.feature_dimensionality(W), reference, rtol=1e-5)
    overlaps = unit.T @ W
    np.testing.assert_allclose(
        metrics.interference(W), np.sum(overlaps**2, axis=1) - np.diag(overlaps) ** 2, rtol=1e-4
    )


@st.composite
def weight_matrices(draw):
    m = draw(st.integers(1, 6))
    n = draw(st.integers(1, 12))
    W = draw(hnp.arrays(np.float32, (m, n), elements=st.floats(width=32, allow_nan=False, allow_infinity=False)))
    zero = draw(hnp.arrays(np.bool_, (n,)))
    W[:, zero] = 0.0
    return W


@settings(max_examples=100, deadline=None)
@given(weight_matrices())
def test_dimensionality_bounds(W):
    D = np.asarray(metrics.feature_dimensionality(W))
    assert D.shape == (W.shape[1],)
    assert np.all((D >= 0.0) & (D <= 1.0))
    assert D.sum() <= W.shape[0] + 1e-4
    assert np.all(D[~W.any(axis=0)] == 0.0)


# ---------------------------------------------------------------------------------------------
# jit, vmap, grad


def _stack() -> np.ndarray:
    Ws = np.random.default_rng(3).standard_normal((4, 3, 6)).astype(np.float32)  # (models, d_hidden, n_features)
    Ws[1, :, 2] = 0.0
    Ws[2, :2, :5] = regular_polygon(5)
    Ws[2, 2, :5] = 0.0
    return Ws


JITTABLE = {
    "features_per_dimension": (metrics.features_per_dimension, ()),
    "dimensions_per_feature": (metrics.dimensions_per_feature, ()),
    "feature_norms": (metrics.feature_norms, (6,)),
    "feature_dimensionality": (metrics.feature_dimensionality, (6,)),
    "interference": (metrics.interference, (6,)),
    "represented": (metrics.represented, (6,)),
    "n_represented": (metrics.n_represented, ()),
}


@pytest.mark.parametrize("name", list(JITTABLE))
def test_jit_and_vmap_match_unbatched(name):
    fn, shape = JITTABLE[name]
    Ws = _stack()
    one_by_one = np.stack([np.asarray(fn(W)) for W in Ws])
    assert one_by_one.shape == (4, *shape)
    for batched in (fn(Ws), jax.jit(fn)(Ws), jax.vmap(fn)(Ws), jax.jit(jax.vmap(fn))(jnp.asarray(Ws))):
        batched = np.asarray(batched)
        assert batched.shape == (4, *shape)
        assert batched.dtype == one_by_one.dtype
        assert np.all(np.isfinite(batched))
        np.testing.assert_allclose(batched, one_by_one, rtol=1e-6, atol=1e-6)


def test_threshold_can_be_vmapped():
    W = jnp.asarray([[1.0, 0.3, 0.2, 0.0]])
    counts = jax.vmap(metrics.n_represented, in_axes=(None, 0))(W, jnp.asarray([0.1, 0.25, 0.5]))
    np.testing.assert_array_equal(counts, [3, 2, 1])


@pytest.mark.parametrize("name", ["feature_dimensionality", "interference", "feature_norms"])
def test_gradients_are_finite_with_zero_columns(name):
    fn = JITTABLE[name][0]
    W = jnp.asarray([[1.0, 0.0, 0.5, 1e-9], [0.0, 0.0, 0.5, 0.0]])  # a zero and a negligible column
    grad = jax.jit(jax.grad(lambda w: jnp.sum(fn(w))))
    assert np.all(np.isfinite(grad(W)))
    assert np.all(np.isfinite(grad(jnp.zeros((2, 4)))))


def test_dimensionality_gradient_vanishes_for_a_polytope():
    # D_i is scale-invariant, so its gradient is orthogonal to W (Euler's theorem, degree 0).
    W = jnp.asarray(regular_polygon(5), dtype=jnp.float32)
    grad = jax.jit(jax.grad(lambda w: jnp.sum(metrics.feature_dimensionality(w))))(W)
    assert float(jnp.sum(grad * W)) == pytest.approx(0.0, abs=1e-5)


# ---------------------------------------------------------------------------------------------
# as_weight_matrix and input errors


def test_as_weight_matrix_accepts_numpy_jax_and_lists():
    W = np.random.default_rng(4).standard_normal((2, 3))
    from_numpy = metrics.as_weight_matrix(W)
    from_jax = metrics.as_weight_matrix(jnp.asarray(W, dtype=jnp.float32))
    from_list = metrics.as_weight_matrix(W.tolist())
    assert isinstance(from_numpy, jax.Array) and from_numpy.shape == (2, 3)
    assert jnp.issubdtype(from_numpy.dtype, jnp.floating)
    np.testing.assert_array_equal(from_numpy, from_jax)
    np.testing.assert_array_equal(from_numpy, from_list)
    assert metrics.as_weight_matrix([[1, 2]]).dtype == jnp.float32  # integers become float


def test_as_weight_matrix_feature_axis():
    W = np.arange(6.0).reshape(3, 2)  # (n_features, d_hidden), a PyTorch decoder's layout
    np.testing.assert_array_equal(metrics.as_weight_matrix(W, feature_axis=0), W.T)
    stack = np.arange(24.0).reshape(2, 4, 3)
    np.testing.assert_array_equal(metrics.as_weight_matrix(stack, feature_axis=0), stack.transpose(0, 2, 1))


def test_as_weight_matrix_duck_types_torch_tensors():
    class FakeTensor:  # what torch.Tensor offers, without importing torch
        def __init__(self, array):
            self.array = array

        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return self.array

    W = np.array([[1.0, -1.0]], dtype=np.float32)
    np.testing.assert_array_equal(metrics.as_weight_matrix(FakeTensor(W)), W)


@pytest.mark.parametrize(
    ("bad", "kwargs", "expected"),
    [
        (np.ones(5), {}, "got shape (5,)"),
        (3.0, {}, "got shape ()"),
        (np.array([[0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, np.nan]]), {}, "nan at index (1, 3)"),
        (np.array([[0.0, np.inf], [-np.inf, 1.0]]), {}, "inf at index (0, 1) (and 1 more"),
        ([["a", "b"], ["c", "d"]], {}, "dtype <U1"),
        ([[1.0, 2.0], [3.0]], {}, "could not convert"),
        (np.ones((2, 2), dtype=complex), {}, "complex"),
        (np.ones((2, 2)), {"feature_axis": 2}, "feature_axis=2"),
    ],
)
def test_as_weight_matrix_rejects_bad_input(bad, kwargs, expected):
    with pytest.raises(ValueError) as info:
        metrics.as_weight_matrix(bad, **kwargs)
    assert isinstance(info.value, ConfigError)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_metrics_reject_vectors_and_bad_thresholds():
    with pytest.raises(ValueError, match=r"got shape \(5,\)"):
        metrics.feature_dimensionality(jnp.ones(5))
    with pytest.raises(ValueError, match="threshold=1.5"):
        metrics.represented(np.ones((2, 2)), threshold=1.5)
    with pytest.raises(ValueError, match=r"geometry\(W\[i\]\)"):
        metrics.geometry(np.ones((2, 2, 3)))


def test_describe_counts_repeated_groups():
    W = np.array([[1.0, 0.0, -1.0, 0.0, 0.0], [0.0, 1.0, 0.0, -1.0, 0.0]])  # two digons, one dropped
    assert metrics.describe(metrics.geometry(W)) == "2×digon{0,2}{1,3}, 1 not represented"
    assert metrics.describe([]) == "no features"
    stored = json.loads(json.dumps([g.to_dict() for g in metrics.geometry(W)]))
    assert metrics.describe_dicts(stored) == "2×digon{0,2}{1,3}, 1 not represented"
