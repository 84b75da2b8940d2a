"""toylab.rng: the counter-hash uniform generator the superposition data is drawn with.

Each statistic is compared with its sampling error under true uniformity (a z-score bound of 5
on fixed keys: deterministic, and far outside what a sound generator produces), so a
generator that is biased, correlated across positions or keys, or weak in some mantissa bit
fails here.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import toylab.rng
from toylab.errors import ConfigError
from toylab.rng import uniform
from toylab.tasks.superposition import superposition

N = 1 << 20


def draw(key, shape=(N,)) -> np.ndarray:
    return np.asarray(jax.jit(uniform, static_argnums=1)(key, shape), dtype=np.float64)


def z_of_correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1] * np.sqrt(a.size))


def test_range_dtype_and_determinism():
    key = jax.random.key(7)
    u = uniform(key, (3, 5))
    assert u.shape == (3, 5) and u.dtype == jnp.float32
    np.testing.assert_array_equal(u, uniform(key, (3, 5)))
    assert not np.array_equal(u, uniform(jax.random.key(8), (3, 5)))
    values = draw(key)
    assert values.min() >= 0.0 and values.max() < 1.0
    # 23 bits of resolution: every value is a multiple of 2^-23.
    np.testing.assert_array_equal(values * 2**23, np.round(values * 2**23))


def test_moments_match_the_uniform_distribution():
    values = draw(jax.random.key(0))
    assert abs(values.mean() - 0.5) / np.sqrt(1 / 12 / N) < 5
    # Var of (u − 1/2)² about its mean 1/12 is 1/80 − 1/144.
    assert abs(((values - 0.5) ** 2).mean() - 1 / 12) / np.sqrt((1 / 80 - 1 / 144) / N) < 5


def test_uniform_over_bins_and_in_every_mantissa_bit():
    values = draw(jax.random.key(1))
    counts = np.bincount((values * 1024).astype(int), minlength=1024)
    assert stats.chisquare(counts).pvalue > 1e-4
    words = (values * 2**23).astype(np.int64)
    for bit in range(23):
        ones = ((words >> bit) & 1).mean()
        assert abs(ones - 0.5) / np.sqrt(0.25 / N) < 5, f"bit {bit}: {ones}"


def test_positions_are_uncorrelated():
    values = draw(jax.random.key(2))
    for lag in (1, 2, 100, 1024):
        assert abs(z_of_correlation(values[:-lag], values[lag:])) < 5, lag


@pytest.mark.parametrize("second", [
    lambda key: jax.random.fold_in(key, 1),  # the trainer's step keys
    lambda key: jax.random.split(key)[1],  # instance keys
    lambda key: jax.random.wrap_key_data(jax.random.key_data(key) ^ np.array([0, 1], np.uint32)),  # one bit apart
])
def test_related_keys_give_unrelated_streams(second):
    key = jax.random.key(3)
    a, b = draw(key), draw(second(key))
    assert abs(z_of_correlation(a, b)) < 5
    for lag in (1, 2, 3):  # nor one stream a shifted copy of the other
        assert abs(z_of_correlation(a[lag:], b[:-lag])) < 5 and abs(z_of_correlation(a[:-lag], b[lag:])) < 5
    # Equal words at the same position: ~N · 2^-23 = 0.125 for unrelated streams.
    assert (a == b).sum() <= 3


def test_batched_keys_draw_what_each_key_draws_alone():
    keys = jax.random.split(jax.random.key(4), 3)
    together = jax.vmap(lambda k: uniform(k, (4, 6)))(keys)
    for i in range(3):
        np.testing.assert_array_equal(together[i], uniform(keys[i], (4, 6)))


def test_a_draw_beyond_the_counter_is_made_in_parts_that_do_not_repeat(monkeypatch):
    key = jax.random.key(6)
    whole = np.asarray(uniform(key, (5, 6)))
    monkeypatch.setattr(toylab.rng, "_COUNTER_LIMIT", 8)  # 30 numbers: parts of 8, 8, 8, 6
    parts = np.asarray(uniform(key, (5, 6))).ravel()
    np.testing.assert_array_equal(parts[:8], whole.ravel()[:8])  # the first part is the plain draw
    assert len(set(parts.tolist())) == 30  # a wrapped counter would repeat the first 8 numbers
    np.testing.assert_array_equal(parts[8:16], np.asarray(uniform(jax.random.fold_in(key, 1), (8,))))


def test_superposition_data_has_its_distribution_under_either_generator():
    p = 0.1
    for rng in ("hash", "threefry"):
        task = superposition(n_features=64, n_hidden=4, rng=rng)
        hyper = task.hyper({"feature_probability": p})
        x = np.asarray(task.sample(jax.random.key(5), hyper, 8192), dtype=np.float64)
        on = x > 0
        assert abs(on.mean() - p) / np.sqrt(p * (1 - p) / on.size) < 5, rng
        # Given "on", the value is U[0, 1): mean 1/2, s.e. √(1/12/k).
        assert abs(x[on].mean() - 0.5) / np.sqrt(1 / 12 / on.sum()) < 5, rng


def test_threefry_keeps_the_spec_of_runs_made_before_the_hash():
    # A store's runs are keyed by the task spec: runs written with threefry (no "rng" field then)
    # must keep matching, and hash runs must not be confused with them.
    assert "rng" not in superposition(5, 2, rng="threefry").spec
    assert superposition(5, 2).spec["rng"] == "hash"
    with pytest.raises(ConfigError, match="rng"):
        superposition(5, 2, rng="philox")
