"""How much superposition a weight matrix holds: per-matrix and per-feature measures.

Elhage et al. (2022), "Toy Models of Superposition", §2 and §6
(https://transformer-circuits.pub/2022/toy_model).

Convention: ``W`` has shape ``(..., d_hidden, n_features)``; feature ``i`` is column ``W_i`` and
``Ŵ_i = W_i / ‖W_i‖`` its direction. Leading axes (e.g. ``models``) are batch axes: every
function maps over them, so a stack of trained autoencoders is measured in one call.

Every function except :func:`as_weight_matrix` is pure ``jax.numpy``: it works under
``jax.jit``, ``jax.vmap`` and ``jax.grad``, is NaN-free for zero columns (with NaN-free
gradients), and is clean under strict rank and dtype promotion. Each also takes a keyword
``feature_axis`` (1: features are columns, the default; 0: rows, as in a PyTorch
``nn.Linear.weight`` read as a decoder) and, outside ``jax.jit``, any weight matrix a user
brings: numpy, JAX, nested lists or a PyTorch tensor (see :func:`as_weight_matrix`).

Scale (the rescaling critique): :func:`features_per_dimension` and :func:`interference` scale as
``c²`` when ``W`` is multiplied by ``c > 0``; :func:`feature_dimensionality`,
:func:`represented` and :func:`features_per_dimension_invariant` do not change.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from toylab.errors import ConfigError

__all__ = [
    "REPRESENTED_THRESHOLD",
    "as_weight_matrix",
    "checked_weight_matrix",
    "features_per_dimension",
    "dimensions_per_feature",
    "feature_scale",
    "features_per_dimension_invariant",
    "dimensions_per_feature_invariant",
    "feature_norms",
    "feature_dimensionality",
    "interference",
    "represented",
    "n_represented",
]

# Default for `represented`: a feature counts when its norm is at least this fraction of the
# largest feature norm. Trained autoencoders are bimodal: in n=20, m=5 (importance 0.9^i, AdamW,
# 10k steps, densities 0.001–1) dropped features sit at ≤ 0.02 of the largest norm and kept ones
# at ≥ 0.87. The only intermediate norms come from partial solutions (n=2, m=1 local minima:
# 0.17–0.42), where the weaker feature is still read out; 0.25 counts such weakly represented
# features (relative norm 0.3–0.6) and stays 10× above the floor where dropped features sit.
REPRESENTED_THRESHOLD = 0.25

# A column whose squared norm is below this fraction of the largest one is treated as exactly
# zero: its direction is float noise (relative norm 1e-6 ≈ float32 resolution).
_ZERO_RELATIVE_SQ_NORM = 1e-12

_FLOAT32 = np.finfo(np.float32)

# Below this absolute norm a feature is never represented, whatever the other norms are: it
# stops a matrix of all-but-zero columns from calling its largest noise column "represented".
_MIN_REPRESENTED_NORM = 1e-6


def _jit_on_floats(metric: Callable[[Array], Array]) -> Callable[..., Array]:
    """Compile ``metric`` once per shape and dtype, after checking and converting its input.

    The check runs at trace time (shapes and dtypes are static), so it also guards calls made
    under an outer ``jax.jit``/``jax.vmap``; calling the metric eagerly costs one compiled
    program instead of one dispatch per operation. The wrapper adds the keyword
    ``feature_axis`` (see :func:`as_weight_matrix`).
    """
    compiled = jax.jit(metric)

    @functools.wraps(metric)
    def checked(W: Any, *, feature_axis: int = 1) -> Array:
        return compiled(_features_last(W, feature_axis))

    return checked


def as_weight_matrix(w: Any, feature_axis: int = 1) -> Float[Array, "... d_hidden n_features"]:
    """Turn any array-like into a float JAX weight matrix with features on the last axis.

    Accepts numpy arrays, JAX arrays, nested lists, anything with ``__array__``, and PyTorch
    tensors, also ones that require grad, live on a GPU or hold bfloat16 (duck-typed through
    ``.detach().cpu().numpy()``, so toylab never imports torch). Host-side: call it outside
    ``jax.jit``, once, on matrices that come from a user.

    Args:
      w: the weight matrix, shape ``(..., d_hidden, n_features)`` (or
        ``(..., n_features, d_hidden)`` with ``feature_axis=0``). Integers are converted to
        float; float16/bfloat16 are widened to float32.
      feature_axis: which of the two matrix (trailing) axes indexes features: 1 for the
        columns (``h = W x``, the paper's ``W``), 0 for the rows (a PyTorch ``nn.Linear``
        decoder's ``weight``, shape ``(n_features, d_hidden)``).

    Returns:
      A floating JAX array of shape ``(..., d_hidden, n_features)``: float32 unless
      ``jax_enable_x64`` is on.

    Raises:
      ConfigError (a ``ValueError``): anything :func:`checked_weight_matrix` refuses, and a
        float64 matrix whose largest entry lies outside float32's normal range (about 1.2e-38
        to 3.4e38) while x64 is off: JAX would silently make it infinite, or zero. Measure
        ``W / max|W|`` instead (the scale-invariant measures do not change), or use
        :func:`toylab.metrics.measure`, which normalises first.

    Example:
      >>> as_weight_matrix([[1, 0, -1]]).shape
      (1, 3)
      >>> as_weight_matrix([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], feature_axis=0).tolist()
      [[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]]
    """
    array = checked_weight_matrix(w, feature_axis)
    _check_float32_range(array)
    # float64 stays float64 only when jax_enable_x64 is on; JAX otherwise converts it to float32.
    return jnp.asarray(array)


def checked_weight_matrix(w: Any, feature_axis: int = 1) -> np.ndarray:
    """:func:`as_weight_matrix`'s checks on the host: a numpy float array in the input's precision.

    Float64 stays float64 (JAX would truncate it to float32 with x64 off); integers and
    half precision become float32. For code that must see every float64 value as it is,
    e.g. :func:`toylab.metrics.measure`, which normalises before JAX sees the matrix.

    Raises:
      ConfigError (a ``ValueError``): fewer than 2 dimensions, an empty axis, a non-numeric or
        complex input, a NaN or infinite entry (the message names its index), or
        ``feature_axis`` not 0 or 1.

    Example:
      >>> checked_weight_matrix([[1e300, 0.0]]).dtype
      dtype('float64')
    """
    _check_feature_axis(feature_axis)
    if isinstance(w, jax.core.Tracer):
        raise ConfigError(
            "as_weight_matrix got a traced array: it is a host-side check; call it before jax.jit, "
            "or pass the array straight to the metric functions"
        )
    if hasattr(w, "detach"):  # a PyTorch tensor, possibly on a GPU and requiring grad
        w = _torch_to_numpy(w)
    try:
        array = np.asarray(w)
    except (TypeError, ValueError) as exc:  # ragged nested lists, unconvertible objects
        raise ConfigError(f"expected a numeric weight matrix, could not convert {type(w).__name__}: {exc}") from None
    kind = array.dtype.kind
    if kind not in "biuf":  # bool, signed, unsigned, float; not complex, strings or objects
        raise ConfigError(f"expected a real numeric weight matrix, got dtype {array.dtype} of shape {array.shape}")
    if array.ndim < 2:
        raise ConfigError(f"expected a 2-D weight matrix (d_hidden, n_features), got shape {array.shape}")
    if 0 in array.shape:
        raise ConfigError(f"expected a weight matrix with at least one entry, got shape {array.shape}")
    if kind != "f" or array.dtype.itemsize < 4:
        array = array.astype(np.float32)
    bad = ~np.isfinite(array)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        value = array[index]
        others = int(bad.sum()) - 1
        more = f" (and {others} more non-finite entries)" if others else ""
        raise ConfigError(
            f"weight matrix of shape {array.shape} contains {value} at index {index}{more}; "
            "a diverged training run? check the loss history"
        )
    if feature_axis == 0:
        array = np.swapaxes(array, -1, -2)
    return array


def _check_float32_range(array: np.ndarray) -> None:
    """Refuse float64 matrices that JAX (x64 off) would turn infinite or zero in float32."""
    if array.dtype != np.float64 or jax.config.jax_enable_x64 or array.ndim < 2 or not array.size:
        return
    largest = np.max(np.abs(array), axis=(-2, -1))  # per matrix of a stack
    bad = (largest > float(_FLOAT32.max)) | ((largest > 0) & (largest < float(_FLOAT32.tiny)))
    if bad.any():
        value = float(largest[bad].flat[0])
        raise ConfigError(
            f"weight matrix of shape {array.shape} has max|W| = {value:.3g}, outside float32's normal range "
            f"({float(_FLOAT32.tiny):.2g} to {float(_FLOAT32.max):.2g}), in which JAX computes with x64 off: "
            "divide W by max|W| (the scale-invariant measures do not change), or use toylab.metrics.measure, "
            "which does"
        )


@_jit_on_floats
def features_per_dimension(W: Float[ArrayLike, "... d_hidden n_features"]) -> Float[Array, "..."]:
    """Features per hidden dimension, ``‖W‖_F² / m``.

    .. math:: \\frac{\\|W\\|_F^2}{m} = \\frac{1}{m} \\sum_i \\|W_i\\|^2

    With unit-norm represented features and dropped ones at zero this counts represented
    features per dimension (the paper's §6 y-axis is its reciprocal). It scales as ``c²``
    when ``W`` is scaled by ``c``: meaningful in the tied autoencoder, where the scale changes
    the loss, but not in a bias-free ReLU classifier (the rescaling critique).

    Args:
      W: weights, shape ``(..., d_hidden, n_features)``.

    Returns:
      Shape ``(...)``.

    Example:
      >>> float(features_per_dimension([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]]))
      1.5
    """
    m = W.shape[-2]
    return jnp.sum(W**2, axis=(-2, -1)) / m


@_jit_on_floats
def dimensions_per_feature(W: Float[ArrayLike, "... d_hidden n_features"]) -> Float[Array, "..."]:
    """Dimensions per feature, ``m / ‖W‖_F²``: the reciprocal of :func:`features_per_dimension`.

    .. math:: \\frac{m}{\\|W\\|_F^2}

    The paper's Figure (§6, "Feature Dimensionality") plots this against ``1/(1−S)``: it
    "sticks" at 1 and 1/2. Infinite for an all-zero ``W``.

    Args:
      W: weights, shape ``(..., d_hidden, n_features)``.

    Returns:
      Shape ``(...)``.

    Example:
      >>> float(dimensions_per_feature([[1.0, -1.0]]))
      0.5
    """
    m = W.shape[-2]
    return m / jnp.sum(W**2, axis=(-2, -1))


@_jit_on_floats
def feature_scale(W: Float[ArrayLike, "... d_hidden n_features"]) -> Float[Array, "..."]:
    """The typical norm of a represented feature, ``s``: what :func:`features_per_dimension` divides out.

    .. math:: s^2 = \\frac{\\sum_i \\|W_i\\|^4}{\\sum_i \\|W_i\\|^2}

    ``s²`` is the mean of the squared feature norms ``q_i = ‖W_i‖²``, each weighted by its own
    share of ``‖W‖_F²``: dropped features (``q_i ≈ 0``) carry no weight, so ``s = 1`` on a
    unit-norm solution (every feature at norm 1 or 0), whatever the number of dropped ones.
    ``s(cW) = c·s(W)`` for ``c > 0``; 0 for an all-zero ``W``. Dividing a scale-dependent
    measure by the matching power of ``s`` makes it scale-invariant (the rescaling check).

    Args:
      W: weights, shape ``(..., d_hidden, n_features)``.

    Returns:
      Shape ``(...)``, ≥ 0.

    Example:
      >>> float(feature_scale([[3.0, 0.0, -3.0], [0.0, 3.0, 0.0]]))
      3.0
    """
    scale = _safe_scale(W)[..., 0, 0]  # (...): the norms of W/scale neither overflow nor underflow
    sq, total, fourth = _squared_norm_sums(W)
    nonzero = total > 0
    # Double where: sqrt's gradient at 0 is infinite, so an all-zero W takes the other branch.
    ratio = jnp.where(nonzero, fourth / jnp.where(nonzero, total, 1.0), 1.0)
    return jnp.where(nonzero, jnp.sqrt(ratio), 0.0) * scale


@_jit_on_floats
def features_per_dimension_invariant(W: Float[ArrayLike, "... d_hidden n_features"]) -> Float[Array, "..."]:
    """Features per dimension that no rescaling of ``W`` can change: ``‖W/s‖_F² / m``.

    .. math::
        \\frac{1}{m} \\frac{\\left(\\sum_i \\|W_i\\|^2\\right)^2}{\\sum_i \\|W_i\\|^4}
        = \\frac{\\|W\\|_F^2}{m\\, s^2}

    Why this formula. Elhage et al.'s ``‖W‖_F²/m`` counts represented features per dimension
    only because their trained features have norm 1 (or 0 when dropped); multiply ``W`` by
    ``c`` and it reads ``c²`` times as many, though a bias-free ReLU classifier classifies
    exactly as before (the rescaling critique). With ``q_i = ‖W_i‖²`` the numerator over
    ``m`` is the participation ratio ``(Σ q_i)² / Σ q_i²``, the effective number of features
    carrying ``‖W‖_F²``. It is

    * equal to Elhage's value on every unit-norm solution: ``k`` features at norm 1 and the rest
      at 0 give ``k²/k = k``, so ``k/m``: 2.5 for the pentagon in 2 dimensions (5/2), 1 for
      ``m`` orthonormal features, 1 for two orthogonal features with three dropped; more
      generally it equals ``‖W‖_F²/m`` whenever the represented features share one norm;
    * unchanged by ``W → cW``, ``c > 0`` (numerator and denominator both scale as ``c⁴``);
    * smooth in ``W``, unlike a count of features above a norm threshold.

    Features of unequal norm count by their share of ``‖W‖_F²``: norms 1 and 1/2 give
    ``1.25²/1.0625 ≈ 1.47`` features. Rejected alternatives: dividing by the largest ``q_i``
    (one outlier sets the scale), by the mean ``q_i`` over all features (dropped features pull
    it down: two kept of five would read 2.5 instead of 1), and ``Σ_i D_i / m`` (the fraction
    of dimensions in use: 1 for both the pentagon and orthonormal features). The per-feature
    ``D_i`` (:func:`feature_dimensionality`) is scale-invariant too.

    Args:
      W: weights, shape ``(..., d_hidden, n_features)``.

    Returns:
      Shape ``(...)``; 0 for an all-zero ``W``.

    Example:
      >>> import numpy as np
      >>> angles = 2 * np.pi * np.arange(5) / 5
      >>> pentagon = np.stack([np.cos(angles), np.sin(angles)])  # (2, 5), unit columns
      >>> round(float(features_per_dimension_invariant(pentagon)), 4)
      2.5
      >>> round(float(features_per_dimension_invariant(10 * pentagon)), 4)  # Elhage's: 250
      2.5
    """
    m = W.shape[-2]
    _, total, fourth = _squared_norm_sums(W)
    nonzero = fourth > 0
    return jnp.where(nonzero, total**2 / jnp.where(nonzero, fourth, 1.0), 0.0) / m


@_jit_on_floats
def dimensions_per_feature_invariant(W: Float[ArrayLike, "... d_hidden n_features"]) -> Float[Array, "..."]:
    """Dimensions per feature, scale-invariant: the reciprocal of :func:`features_per_dimension_invariant`.

    .. math:: \\frac{m \\sum_i \\|W_i\\|^4}{\\left(\\sum_i \\|W_i\\|^2\\right)^2}

    Equals Elhage's ``m/‖W‖_F²`` on unit-norm solutions (2/5 for the pentagon); infinite for
    an all-zero ``W``.

    Args:
      W: weights, shape ``(..., d_hidden, n_features)``.

    Returns:
      Shape ``(...)``.

    Example:
      >>> float(dimensions_per_feature_invariant([[5.0, -5.0]]))
      0.5
    """
    m = W.shape[-2]
    _, total, fourth = _squared_norm_sums(W)
    nonzero = total > 0
    return jnp.where(nonzero, m * fourth / jnp.where(nonzero, total, 1.0) ** 2, jnp.inf)


@_jit_on_floats
def feature_norms(W: Float[ArrayLike, "... d_hidden n_features"]) -> Float[Array, "... n_features"]:
    """The norm of each feature's column, ``‖W_i‖``.

    .. math:: \\|W_i\\| = \\sqrt{\\textstyle\\sum_k W_{ki}^2}

    In the trained autoencoder a represented feature has norm ≈ 1 and a dropped one ≈ 0
    (Elhage et al. 2022, §2). The gradient of a zero column's norm is 0, not NaN.

    Args:
      W: weights, shape ``(..., d_hidden, n_features)``.

    Returns:
      Shape ``(..., n_features)``.

    Example:
      >>> feature_norms([[3.0, 0.0], [4.0, 0.0]]).tolist()
      [5.0, 0.0]
    """
    scale = _safe_scale(W)  # (..., 1, 1): squares of W/scale neither overflow nor underflow
    sq = jnp.sum((W / scale) ** 2, axis=-2)  # (..., n_features)
    nonzero = sq > 0
    # Double where: sqrt's gradient at 0 is infinite, so keep 0 out of the taken branch.
    norm = jnp.sqrt(jnp.where(nonzero, sq, 1.0))
    return jnp.where(nonzero, norm, 0.0) * scale[..., 0, :]


@_jit_on_floats
def feature_dimensionality(W: Float[ArrayLike, "... d_hidden n_features"]) -> Float[Array, "... n_features"]:
    """Per-feature dimensionality ``D_i``: the fraction of a dimension feature ``i`` gets.

    .. math::
        D_i = \\frac{\\|W_i\\|^2}{\\sum_j (\\hat W_i \\cdot W_j)^2}
            = \\frac{\\|W_i\\|^2}{\\|W_i\\|^2 + \\sum_{j \\ne i} (\\hat W_i \\cdot W_j)^2}

    ``D_i = 1`` for a feature with a dedicated dimension, 1/2 for an antipodal pair, 2/3 in a
    triangle, 3/4 in a tetrahedron, 2/5 in a pentagon, 3/8 in a square antiprism, and 0 for a
    zero column (also one below 1e-6 of the largest column norm, whose direction is float
    noise). ``0 ≤ D_i ≤ 1`` and ``Σ_i D_i ≤ m``. Scale-invariant: ``D_i(cW) = D_i(W)`` for
    ``c > 0``, which makes it the measure that survives the rescaling critique.

    The second form (``D_i = ‖W_i‖²/(‖W_i‖² + interference_i)``) is what is computed: it
    keeps ``D_i ≤ 1`` exactly in floating point.

    Args:
      W: weights, shape ``(..., d_hidden, n_features)``.

    Returns:
      Shape ``(..., n_features)``, in [0, 1]. NaN-free, with NaN-free gradients.

    Reference:
      Elhage et al. (2022), "Toy Models of Superposition", §6 "Feature Dimensionality".

    Example:
      >>> import numpy as np
      >>> angles = 2 * np.pi * np.arange(5) / 5
      >>> pentagon = np.stack([np.cos(angles), np.sin(angles)])  # (2, 5)
      >>> [round(float(d), 4) for d in feature_dimensionality(pentagon)]
      [0.4, 0.4, 0.4, 0.4, 0.4]
    """
    # D is scale-invariant, so measure W / max|W_ki|: every column has a well-defined direction
    # unless it is negligible against the largest, whatever the overall scale.
    v = W / _safe_scale(W)
    w_hat, sq, is_zero = _directions(v)
    off = _off_diagonal_overlaps_sq(w_hat, v)  # (..., n_features)
    denominator = jnp.where(is_zero, 1.0, sq + off)  # ≥ sq ≥ 1e-12 · max sq for kept columns
    return jnp.where(is_zero, 0.0, sq / denominator)


@_jit_on_floats
def interference(W: Float[ArrayLike, "... d_hidden n_features"]) -> Float[Array, "... n_features"]:
    """How much the other features project onto feature ``i``'s direction.

    .. math:: \\sum_{j \\ne i} (\\hat W_i \\cdot W_j)^2

    Zero for a feature orthogonal to all others and for a zero column. Scales as ``c²``.

    Args:
      W: weights, shape ``(..., d_hidden, n_features)``.

    Returns:
      Shape ``(..., n_features)``, non-negative.

    Reference:
      Elhage et al. (2022), "Toy Models of Superposition", §2 (the interference term in the
      figures' right-hand bars).

    Example:
      >>> interference([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]]).tolist()
      [1.0, 1.0, 0.0]
    """
    w_hat, _, _ = _directions(W / _safe_scale(W))
    return _off_diagonal_overlaps_sq(w_hat, W)


def represented(
    W: Float[ArrayLike, "... d_hidden n_features"],
    threshold: float = REPRESENTED_THRESHOLD,
    *,
    feature_axis: int = 1,
) -> Bool[Array, "... n_features"]:
    """Which features the matrix represents: a norm that is not negligible against the largest.

    .. math:: \\text{represented}_i \\iff \\|W_i\\| \\ge t \\cdot \\max_j \\|W_j\\|
              \\;\\text{and}\\; \\|W_i\\| > 10^{-6}

    The test is relative, so it works for any scale (a rescaled classifier layer, as
    well as the autoencoder, whose represented features have norm ≈ 1 and dropped ones ≈ 0).
    Default ``t = 0.25``: trained autoencoders are bimodal (dropped features ≤ 0.02 of the
    largest norm, kept ones ≥ 0.87, in n=20, m=5 over densities 0.001–1); the intermediate
    norms that do occur (0.17–0.42, partial solutions of n=2, m=1) belong to a feature that is
    still read out, so a weakly represented feature of relative norm 0.3–0.6 counts, while
    the threshold stays 10× above where dropped features sit. ``t = 0.5`` would drop those.

    Args:
      W: weights, shape ``(..., d_hidden, n_features)``.
      threshold: ``t`` in [0, 1], the fraction of the largest feature norm.
      feature_axis: 1 when features are columns, 0 when they are rows.

    Returns:
      Boolean mask, shape ``(..., n_features)``.

    Example:
      >>> represented([[1.0, 0.4, 0.01]]).tolist()
      [True, True, False]
    """
    return _represented(_features_last(W, feature_axis), _checked_threshold(threshold))


def n_represented(
    W: Float[ArrayLike, "... d_hidden n_features"],
    threshold: float = REPRESENTED_THRESHOLD,
    *,
    feature_axis: int = 1,
) -> Int[Array, "..."]:
    """The number of represented features (see :func:`represented` for the test and default).

    Args:
      W: weights, shape ``(..., d_hidden, n_features)``.
      threshold: fraction of the largest feature norm a feature needs.
      feature_axis: 1 when features are columns, 0 when they are rows.

    Returns:
      Integer count, shape ``(...)``.

    Example:
      >>> int(n_represented([[1.0, 0.0, -1.0], [0.0, 0.9, 0.0]]))
      3
    """
    return jnp.sum(represented(W, threshold, feature_axis=feature_axis), axis=-1)


# ---------------------------------------------------------------------------------------------
# Internals: shared by the functions above, all jittable.


@jax.jit
def _represented(W: Float[Array, "... d_hidden n_features"], threshold: float | Array) -> Bool[Array, "... n_features"]:
    norms = feature_norms(W)  # (..., n_features)
    largest = jnp.max(norms, axis=-1, keepdims=True)  # (..., 1)
    return (norms >= threshold * largest) & (norms > _MIN_REPRESENTED_NORM)


def _check_feature_axis(feature_axis: Any) -> None:
    if isinstance(feature_axis, bool) or feature_axis not in (0, 1):
        raise ConfigError(
            f"feature_axis={feature_axis!r}: expected 0 (features are rows) or 1 (features are columns)"
        )


def _torch_to_numpy(tensor: Any) -> np.ndarray:
    """A PyTorch tensor's values as numpy, without importing torch (duck-typed)."""
    tensor = tensor.detach().cpu()  # drop the autograd graph; copy off an accelerator
    try:
        return tensor.numpy()
    except TypeError:  # bfloat16 and other dtypes numpy lacks: widen to float32 first
        return tensor.float().numpy()


def _features_last(W: Any, feature_axis: int) -> Float[Array, "... d_hidden n_features"]:
    """The metrics' input: checked, float, features on the last axis (static, trace-time)."""
    _check_feature_axis(feature_axis)
    if hasattr(W, "detach"):  # a PyTorch tensor; jnp.asarray refuses one that requires grad
        W = _torch_to_numpy(W)
    if isinstance(W, (np.ndarray, list, tuple)):  # host values: float64 ones must fit float32
        W = np.asarray(W)
        if W.dtype == np.float64:
            _check_float32_range(W)
    w = _as_float(W)
    return jnp.swapaxes(w, -1, -2) if feature_axis == 0 else w


def _as_float(W: ArrayLike) -> Float[Array, "... d_hidden n_features"]:
    w = jnp.asarray(W)
    if w.ndim < 2:  # static: raised at trace time, never inside a compiled function
        raise ConfigError(f"expected a 2-D weight matrix (d_hidden, n_features), got shape {w.shape}")
    if jnp.issubdtype(w.dtype, jnp.complexfloating):
        raise ConfigError(f"expected a real weight matrix, got dtype {w.dtype}")
    if not jnp.issubdtype(w.dtype, jnp.floating) or w.dtype.itemsize < 4:
        # Integers, and half precision whose squared norms lose 3 of 4 digits: measure in
        # float32 (float64 when x64 is on).
        w = w.astype(jax.dtypes.canonicalize_dtype(jnp.float64))
    return w


def _safe_scale(w: Float[Array, "... d_hidden n_features"]) -> Float[Array, "... 1 1"]:
    """max |w_ki| per matrix, or 1 for an all-zero matrix."""
    scale = jnp.max(jnp.abs(w), axis=(-2, -1), keepdims=True)
    return jnp.where(scale > 0, scale, 1.0)


def _squared_norm_sums(
    w: Float[Array, "... d_hidden n_features"],
) -> tuple[Float[Array, "... n_features"], Float[Array, "..."], Float[Array, "..."]]:
    """``q_i = ‖V_i‖²``, ``Σ q_i`` and ``Σ q_i²`` of ``V = w / max|w|`` (fourth powers stay finite)."""
    sq = jnp.sum((w / _safe_scale(w)) ** 2, axis=-2)  # (..., n_features)
    return sq, jnp.sum(sq, axis=-1), jnp.sum(sq**2, axis=-1)


def _directions(
    v: Float[Array, "... d_hidden n_features"],
) -> tuple[Float[Array, "... d_hidden n_features"], Float[Array, "... n_features"], Bool[Array, "... n_features"]]:
    """Unit columns Ŵ (0 for negligible ones), squared norms, and which columns are negligible."""
    sq = jnp.sum(v**2, axis=-2)  # (..., n_features)
    is_zero = sq <= _ZERO_RELATIVE_SQ_NORM * jnp.max(sq, axis=-1, keepdims=True)
    # Double where: dividing by a zero norm would put NaN into the gradient even where the
    # result is masked out, so negligible columns divide by 1 and are then replaced by 0.
    norm = jnp.sqrt(jnp.where(is_zero, 1.0, sq))[..., None, :]  # (..., 1, n_features)
    w_hat = jnp.where(is_zero[..., None, :], 0.0, v / norm)
    return w_hat, sq, is_zero


def _off_diagonal_overlaps_sq(
    w_hat: Float[Array, "... d_hidden n_features"], w: Float[Array, "... d_hidden n_features"]
) -> Float[Array, "... n_features"]:
    """Σ_{j≠i} (Ŵ_i · W_j)², summing the off-diagonal terms instead of subtracting the diagonal."""
    overlaps = jnp.einsum("...hi,...hj->...ij", w_hat, w)  # (..., n_features, n_features)
    n = overlaps.shape[-1]
    diagonal = jnp.broadcast_to(jnp.eye(n, dtype=bool), overlaps.shape)
    return jnp.sum(jnp.where(diagonal, 0.0, overlaps**2), axis=-1)


def _checked_threshold(threshold: float | Array) -> float | Array:
    """A concrete threshold as a Python float (weakly typed: no dtype promotion); tracers as is."""
    if isinstance(threshold, jax.core.Tracer):
        return threshold  # traced (e.g. vmapped over a sweep): cannot be checked here
    value = np.asarray(threshold)
    if value.shape != () or value.dtype.kind not in "iuf" or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(
            f"threshold={threshold!r}: expected a number in [0, 1], the fraction of the largest feature norm"
        )
    return float(value)
