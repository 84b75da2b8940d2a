"""Uniform random numbers from a keyed counter hash that XLA fuses into the step that uses them.

A training step of a small superposition model draws more random numbers than it does
multiply-adds (one uniform per feature per example), and on CPU JAX's threefry makes them
several times slower than the step's matmuls run: 36–93 M floats/s against ~650 M floats/s
for this module on the same 2 cores (``benchmarks/bench_tms.py`` prints both). The generator
here is an element-wise function of ``(key, position)``, so XLA fuses it into the ops that
consume the numbers and never writes them to memory.

The construction, for a JAX key with data ``(k0, k1)`` and the flat position ``i`` of an
element (a ``uint32`` counter)::

    x = i
    x = mix(x ^ k0);  x = mix(x ^ k1);  x = mix(x ^ k0 ^ k1 ^ φ)     # φ = 0x9E3779B9
    u = (x >> 9) · 2⁻²³                                              # in [0, 1), 23 bits

where ``mix`` is Wellons' "lowbias32" integer hash (xorshift-multiply, twice). Every step of it
is a bijection of 32-bit words, so for one key ``i ↦ x`` is a keyed permutation of the
counters: one draw never repeats a word, and different keys give unrelated permutations
(three rounds, each keyed). It is a statistical generator for Monte Carlo data, not a
cryptographic one: ``tests/test_rng.py`` checks its moments, its uniformity, and that positions,
adjacent keys and ``fold_in``-derived keys are uncorrelated.

Keys come from JAX's own ``split``/``fold_in`` as before, so the trainer's streams (per
instance, per step) are unchanged in structure; a draw beyond the counter's 2³² positions is made
in parts with keys folded from its own.

Example:
    >>> import jax
    >>> u = uniform(jax.random.key(0), (2, 3))
    >>> u.shape, u.dtype.name, bool((u >= 0).all() & (u < 1).all())
    ((2, 3), 'float32', True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["uniform"]

_GOLDEN = 0x9E3779B9  # keeps the third round's key distinct from the first two when k0 ^ k1 = 0
_ONE_BITS = 0x3F800000  # the bits of 1.0f: a 23-bit mantissa under it reads as a float in [1, 2)
_COUNTER_LIMIT = 2**32  # positions a uint32 counter tells apart


def _lowbias32(x: Array) -> Array:
    # Wellons' hash-prospector "lowbias32": bias 0.17 (of 32-bit avalanche), two multiplies.
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def uniform(key: jax.Array, shape: Sequence[int]) -> Float[Array, "..."]:
    """Uniform float32 numbers in [0, 1) of ``shape``, a function of ``key`` alone.

    Drop-in for ``jax.random.uniform(key, shape)`` (default bounds, float32), with a different
    stream: the same key gives different numbers than threefry. Works under ``jit`` and ``vmap``
    (a batch of keys gives a batch of independent draws). A draw of more than 2³² numbers is
    made in parts of 2³², part ``c > 0`` with the key ``fold_in(key, c)``.
    """
    shape = tuple(int(s) for s in shape)
    size = math.prod(shape)
    if size <= _COUNTER_LIMIT:
        return _hashed(key, size).reshape(shape)
    parts = [_hashed(key if c == 0 else jax.random.fold_in(key, c), min(_COUNTER_LIMIT, size - start))
             for c, start in enumerate(range(0, size, _COUNTER_LIMIT))]
    return jnp.concatenate(parts).reshape(shape)


def _hashed(key: jax.Array, size: int) -> Float[Array, " size"]:
    words = jax.random.key_data(key).astype(jnp.uint32)
    k0, k1 = words[..., 0], words[..., -1]
    x = jax.lax.iota(jnp.uint32, size)
    x = _lowbias32(x ^ k0)
    x = _lowbias32(x ^ k1)
    x = _lowbias32(x ^ (k0 ^ k1 ^ jnp.uint32(_GOLDEN)))
    bits = (x >> 9) | jnp.uint32(_ONE_BITS)
    return jax.lax.bitcast_convert_type(bits, jnp.float32) - 1.0
